"""Raw scans -> benchmark-ready data (paper Sec. 4.2): ``python -m benchmark data prepare``.

    python -m benchmark data prepare --cohort ixi --raw ~/IXI --out ~/uad --jobs 4
    python -m benchmark data prepare --cohort custom --name MyMS --raw ~/ms --out ~/uad
    python -m benchmark data verify ~/uad

Steps per subject (each a function in ``steps``/``skull``): reorient +
1 mm resampling, affine registration to a template, skull stripping, crop + N4, pad +
downsample to 96x96x50, then the authors' layout with split CSVs and a sha256 manifest.
Subjects run in parallel processes (``pipeline.py``; the command: ``cli.py``); a subject
already prepared with the same settings is
skipped; a bad subject is reported by id and the others still run.
"""
# The pipeline (SimpleITK, nibabel, pandas, scipy) is imported when one of its names is
# used, not when a submodule is: `predict --help` needs the skull-strip choices only.
import importlib
import pkgutil
from typing import Any


def __getattr__(name: str) -> Any:
    # a submodule asked for by name (`from benchmark.data.prepare import steps` asks here
    # before importing it) is that submodule: never the pipeline, which imports it in turn
    if name in {m.name for m in pkgutil.iter_modules(__path__)}:
        return importlib.import_module(f"{__name__}.{name}")
    for part in ("pipeline", "cli"):  # the pipeline, then the command's arguments
        module = importlib.import_module(f"{__name__}.{part}")
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
