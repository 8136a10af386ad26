"""The embedded default data set: a synthetic brain-MRI benchmark, written like the real one.

``ensure_synthetic("quick")`` returns a data root laid out exactly as the cDDPM authors'
preprocessed data (``Data/Train/ixi/{t1,t2,mask}``, ``Data/Test/<Set>/{t1|t2,mask,seg}``,
``Data/splits/*.csv``), generating it on first use from the MNI ICBM152 2009 template in
the nilearn wheel (see the modules ``anatomy``, ``render``, ``lesions``,
``subjects`` of this package and docs/synthetic.md). A ``manifest.json`` records the generator
version, seed, parameters and the sha256 of every file; a data root whose manifest does
not match what this code would write is regenerated. Same seed, same bytes: volumes are
gzip-compressed with a zero mtime and no file name in the gzip header.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.data import layout
from benchmark.data.synth import subjects
from benchmark.data.synth.anatomy import (
    TEMPLATE_FILES,
    grid_affine,
    load_template,
    reference_anatomy,
    template_dir,
)
from benchmark.data.synth.render import SITE_SHIFTS

GENERATOR = "uad-bench synthetic brain MRI"  # manifest.json's "generator"
# Generator versions: a version's bytes never change (caches and manifests are keyed on it).
# v1: the lesion model of the first reference board; v2: lesions calibrated to measured real
# statistics (docs/synthetic.md, docs/fidelity.md). A new calibration is a new version.
VERSIONS = ("1", "2")
DEFAULT_VERSION = "2"
GENERATOR_VERSION = DEFAULT_VERSION  # the default version (kept for readers of the old name)
Size = Literal["smoke", "quick", "paper"]
SIZES_ALLOWED = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class CohortSizes:
    """How many subjects of each split; IXI folds: val = a disjoint slice of the pool."""

    ixi_pool: int  # train + val subjects, split into 5 folds
    ixi_val: int  # validation subjects per fold (folds' val sets are disjoint)
    ixi_test: int
    unhealthy: dict  # cohort name -> (n_val, n_test)
    healthy_variant: int  # healthy other-site subjects per cohort


SIZES = {
    "smoke": CohortSizes(5, 1, 2, {c: (1, 2) for c in subjects.UNHEALTHY}, 1),
    "quick": CohortSizes(40, 8, 10, {c: (5, 15) for c in subjects.UNHEALTHY}, 5),
    # the real cohorts: IXI 358/44 per fold + 158 test; BraTS 100/1151; MSLUB 10/20;
    # ATLAS 66/589; WMH 15/45
    "paper": CohortSizes(402, 44, 158, {"Brats21": (100, 1151), "MSLUB": (10, 20),
                                        "ATLAS_v2": (66, 589), "WMH": (15, 45)}, 50),
}


def _sizes(size: str) -> CohortSizes:
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; allowed: {SIZES_ALLOWED}")
    return SIZES[size]


def check_version(version: str) -> str:
    version = str(version)
    if version not in VERSIONS:
        raise ValueError(f"unknown synthetic data version {version!r}; allowed: "
                         f"{', '.join(VERSIONS)}")
    return version


def source_name(size: str, version: str = DEFAULT_VERSION) -> str:
    """A run's ``data_source`` for the synthetic default (v1 keeps its original name, so the
    first reference board's records still match)."""
    return f"synthetic-{size}" if check_version(version) == "1" else f"synthetic-{size}-v{version}"


def default_root(size: Size = "quick", seed: int = 0, version: str = DEFAULT_VERSION) -> Path:
    """``$UAD_BENCH_CACHE`` (or ``~/.cache/uad-bench``) / ``synthetic-<size>-v<version>``."""
    base = Path(os.environ.get("UAD_BENCH_CACHE", Path.home() / ".cache" / "uad-bench"))
    suffix = "" if seed == 0 else f"-seed{seed}"
    return base.expanduser() / f"synthetic-{size}-v{check_version(version)}{suffix}"


# ----------------------------------------------------------------------------- plan
def plan(size: Size, seed: int, version: str = DEFAULT_VERSION,
         anatomy_from: Path | None = None) -> dict[str, list[subjects.SubjectSpec]]:
    """Every subject to generate, per cohort folder, in split order. ``anatomy_from``: a
    prepared healthy T1 data root whose scans give the anatomies (synth.individual)."""
    sizes = _sizes(size)
    v = check_version(version)

    def anatomies(cohort: subjects.Cohort, n: int, pool: int = 0) -> list:
        if anatomy_from is None:
            return [None] * n
        from benchmark.data.synth import individual

        train, test = individual.assign(anatomy_from, pool, n - pool, salt=7 * cohort.code)
        return [(str(anatomy_from), name) for name in train + test]

    n_ixi = sizes.ixi_pool + sizes.ixi_test
    out = {"ixi": [subjects.IXI.subject(i, seed, v, a) for i, a in
                   enumerate(anatomies(subjects.IXI, n_ixi, sizes.ixi_pool))]}
    for name, cohort in subjects.UNHEALTHY.items():
        n_val, n_test = sizes.unhealthy[name]
        out[name] = [cohort.subject(i, seed, v, a)
                     for i, a in enumerate(anatomies(cohort, n_val + n_test))]
        variant = subjects.HEALTHY_VARIANTS[name]
        out[variant.name] = [variant.subject(i, seed, v, a) for i, a in
                             enumerate(anatomies(variant, sizes.healthy_variant))]
    return out


def _relpaths(spec: subjects.SubjectSpec) -> dict[str, str]:
    """Paths relative to Data/, in the authors' layout ('/Train/ixi/t1/IXI002-..._t1.nii.gz')."""
    healthy = spec.cohort == subjects.IXI
    return layout.volume_paths(spec.name, spec.cohort.sequences,
                               None if healthy else spec.cohort.name)


def parameters(size: Size, seed: int, version: str = DEFAULT_VERSION,
               anatomy_from: Path | None = None) -> dict:
    """Everything that determines the bytes: compared against a stored manifest."""
    from benchmark.data.synth.lesion_models import lesion_parameters

    tpl = template_dir()
    extra = {} if version == "1" else {"lesions": lesion_parameters(version)}
    if anatomy_from is not None:  # individual anatomies (synth.individual): their scans
        from benchmark.data.synth.individual import fingerprint

        extra["anatomy"] = fingerprint(anatomy_from)
    return {
        "size": size, "seed": seed, "sizes": asdict(_sizes(size)), **extra,
        "sites": {k: list(v) for k, v in SITE_SHIFTS.items()},
        "template": {f: _sha256((tpl / f).read_bytes()) for f in TEMPLATE_FILES.values()},
        "numpy": np.__version__.split(".")[0],
    }


# ----------------------------------------------------------------------------- writing
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def nifti_bytes(array: np.ndarray) -> bytes:
    """A .nii.gz file's bytes, reproducible: gzip header with mtime 0 and no file name."""
    import nibabel as nib

    img = nib.Nifti1Image(array, grid_affine())
    img.header.set_xyzt_units("mm")
    img.set_qform(grid_affine(), code=1)
    img.set_sform(grid_affine(), code=1)
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def write_subject(spec: subjects.SubjectSpec, data_dir: Path) -> dict[str, str]:
    """Render one subject, write its files under data_dir (= <root>/Data); returns sha256s."""
    rendered = subjects.render_subject(spec)
    arrays = dict(rendered.images, mask=rendered.mask)
    if spec.cohort != subjects.IXI:
        arrays["seg"] = rendered.seg
    hashes = {}
    for key, rel in _relpaths(spec).items():
        data = nifti_bytes(arrays[key])
        path = data_dir / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        hashes["Data" + rel] = _sha256(data)
    return hashes


def _row(spec: subjects.SubjectSpec, sequence: str) -> dict:
    paths = _relpaths(spec)
    return {"img_name": spec.name, "age": spec.age, "label": spec.label,
            "img_path": paths[sequence], "mask_path": paths["mask"],
            "seg_path": paths.get("seg", ""), "site": spec.site}


def write_splits(specs: dict, size: Size, splits_dir: Path) -> dict[str, str]:
    """The authors' split CSVs (leading unnamed index column). Returns sha256s."""
    sizes = _sizes(size)
    tables = {}
    ixi = specs["ixi"]
    pool, test = ixi[: sizes.ixi_pool], ixi[sizes.ixi_pool:]
    for fold in range(layout.N_FOLDS):
        val_ids = set(range(fold * sizes.ixi_val, (fold + 1) * sizes.ixi_val))
        tables[layout.ixi_split_name("train", fold)] = [
            _row(s, "t1") for i, s in enumerate(pool) if i not in val_ids]
        tables[layout.ixi_split_name("val", fold)] = [
            _row(s, "t1") for i, s in enumerate(pool) if i in val_ids]
    tables["IXI_test"] = [_row(s, "t1") for s in test]
    tables["avail_t2"] = [_row(s, "t2") for s in ixi]
    for name, cohort in subjects.UNHEALTHY.items():
        n_val, _ = sizes.unhealthy[name]
        seq = cohort.sequences[0]
        tables[f"{cohort.split_prefix}_val"] = [_row(s, seq) for s in specs[name][:n_val]]
        tables[f"{cohort.split_prefix}_test"] = [_row(s, seq) for s in specs[name][n_val:]]
        variant = subjects.HEALTHY_VARIANTS[name]
        # "<Set>_healthy.csv", not "_test.csv": the loader treats every *_test.csv as a
        # labelled unhealthy cohort; these are read explicitly by the domain-shift study
        tables[variant.split_prefix] = [_row(s, seq) for s in specs[variant.name]]
    return {f"Data/splits/{name}.csv": layout.write_split(splits_dir, name, rows, ["site"])
            for name, rows in tables.items()}


# ----------------------------------------------------------------------------- generation
def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def generate(root: Path, size: Size = "quick", seed: int = 0, progress: bool = True,
             workers: int | None = None, version: str = DEFAULT_VERSION,
             anatomy_from: Path | None = None) -> dict:
    """Write the whole data set under root (which must not exist yet); returns the manifest."""
    from tqdm.auto import tqdm

    specs = plan(size, seed, version, anatomy_from)
    jobs = [s for cohort in specs.values() for s in cohort]
    data_dir = root / "Data"
    data_dir.mkdir(parents=True)
    load_template(), reference_anatomy()  # once in the parent: forked workers share them
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    files: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc=f"synthetic {size} data v{version}", unit="subject",
               disable=not progress)
    if workers == 1:
        for spec in jobs:
            files.update(write_subject(spec, data_dir))
            bar.update()
    else:
        # fork: workers inherit the loaded template; subjects are independent of order
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            for hashes in pool.map(write_subject, jobs, [data_dir] * len(jobs), chunksize=4):
                files.update(hashes)
                bar.update()
    bar.close()
    files.update(write_splits(specs, size, data_dir / "splits"))
    manifest = {"generator": GENERATOR, "version": version,
                "parameters": parameters(size, seed, version, anatomy_from),
                "files": dict(sorted(files.items()))}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def manifest_matches(root: Path, size: Size, seed: int, verify: bool = False,
                     version: str = DEFAULT_VERSION, anatomy_from: Path | None = None) -> bool:
    """True when root holds a complete data set this code would write (sha256 if verify)."""
    path = root / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("version") != version:
        return False
    expected = parameters(size, seed, version, anatomy_from)
    if manifest.get("parameters") != json.loads(json.dumps(expected)):
        return False
    for rel, digest in manifest.get("files", {}).items():
        file = root / rel
        if not file.is_file() or (verify and _sha256(file.read_bytes()) != digest):
            return False
    return bool(manifest.get("files"))


def ensure_synthetic(size: Size = "quick", root: Path | None = None, seed: int = 0,
                     progress: bool = True, *, force: bool = False,
                     workers: int | None = None, version: str = DEFAULT_VERSION,
                     anatomy_from: Path | None = None) -> Path:
    """Return the data root (the folder holding ``Data/``), generating it if missing or stale.
    ``anatomy_from`` (a prepared healthy T1 data root; a diagnostic, synth.individual) needs
    ``root``: such a data set never goes to the default cache.

    A stale root is replaced only if it is ours (it has a manifest.json) or empty; any
    other non-empty folder is refused rather than deleted.
    """
    _sizes(size)
    version = check_version(version)
    if anatomy_from is not None and root is None:
        raise ValueError("--anatomy-from needs --out: a data set of individual anatomies "
                         "never replaces the default cache")
    root = Path(root).expanduser() if root is not None else default_root(size, seed, version)
    same = {"version": version, "anatomy_from": anatomy_from}
    if not force and manifest_matches(root, size, seed, **same):
        return root
    if root.exists() and any(root.iterdir()) and not (root / "manifest.json").exists():
        raise FileExistsError(
            f"{root} is not empty and holds no synthetic-data manifest.json; refusing to "
            "overwrite it: pass an empty or new folder (--out)"
        )
    partial = root.parent / f".{root.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        generate(partial, size, seed, progress, workers, version, anatomy_from)
        if not force and manifest_matches(root, size, seed, **same):
            return root  # another process finished the same data set meanwhile: keep it
        if root.exists():
            shutil.rmtree(root)
        partial.rename(root)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return root


# ----------------------------------------------------------------------------- CLI
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Flags of ``python -m benchmark data synth``."""
    parser.add_argument("--size", choices=SIZES_ALLOWED, default="quick",
                        help="smoke: seconds; quick: ~1-2 min; paper: the real cohort sizes")
    parser.add_argument("--out", type=Path, default=None,
                        help="data root to write (default: $UAD_BENCH_CACHE or "
                             "~/.cache/uad-bench/synthetic-<size>-v<version>)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--version", default=DEFAULT_VERSION, choices=VERSIONS,
                        help="generator version (default %(default)s; docs/synthetic.md)")
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")
    parser.add_argument("--anatomy-from", type=Path, default=None, metavar="PREPARED",
                        help="diagnostic: take each subject's anatomy from a real healthy T1 "
                             "scan of this prepared data root instead of the MNI template "
                             "(needs --out; docs/fidelity.md)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes (default: all CPU cores)")


def main(args: argparse.Namespace) -> int:
    root = ensure_synthetic(args.size, root=args.out, seed=args.seed, progress=True,
                            force=args.force, workers=getattr(args, "workers", None),
                            version=getattr(args, "version", DEFAULT_VERSION),
                            anatomy_from=getattr(args, "anatomy_from", None))
    print(root)
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    configure_parser(_parser)
    raise SystemExit(main(_parser.parse_args()))
