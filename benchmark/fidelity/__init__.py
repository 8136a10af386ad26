"""How close the synthetic default's lesions are to real ones (docs/fidelity.md).

:mod:`.stats` measures a volume (lesion size, contrast, texture, location; healthy tissue
contrast), :mod:`.volumes` brings real and synthetic volumes onto the benchmark's 2 mm grid
and intensity scale, ``reference.csv`` holds the cohorts' statistics from outside this
repository with their provenance. The command is ``python -m benchmark experiment fidelity``.
"""
from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .stats import lesion_statistics, tissue_statistics
from .volumes import SPACING_MM, MeasuredVolume, read_real, synthetic

__all__ = ["LESION_STATS", "TISSUE_STATS", "measure", "real_samples", "reference",
           "summarise", "synthetic_volumes"]

LESION_STATS = ("volume_ml", "n_components", "largest_share", "intensity_percentile",
                "water_share", "ratio_wm", "cnr_wm", "ratio_gm", "cnr_gm", "cv",
                "gradient_ratio", "dist_ventricles_mm", "dist_surface_mm", "wm_share",
                "gm_share")
TISSUE_STATS = ("gm_position", "gm_wm_ratio", "csf_wm_ratio", "cnr_gm_wm", "csf_share",
                "edge_density", "wm_cv")
SYNTHETIC_COHORTS = ("IXI", "Brats21", "MSLUB", "ATLAS_v2", "WMH")


def real_samples(root: Path) -> list[MeasuredVolume]:
    """The real scans of a samples folder laid out as ../shared/data/real-samples (its
    README): ms_patient07 (MSLUB; T1, T2, FLAIR + consensus lesion mask), brats2012_hg0015
    (a glioma; T1, T1C, T2, FLAIR + tumour labels) and ixi_t1_cohort (healthy IXI T1 with
    DLMUSE label maps as brain masks). Sub-folders that are missing are skipped."""
    root = Path(root)
    out: list[MeasuredVolume] = []
    ms = root / "ms_patient07"
    if ms.is_dir():
        for seq in ("T1", "T2", "FLAIR"):
            out.append(read_real(ms / f"patient07_{seq}.nii.gz", seq.lower(), "MSLUB",
                                 "patient07", lesion=ms / "patient07_seg.nii.gz"))
    brats = root / "brats2012_hg0015"
    if brats.is_dir():
        for seq in ("T1", "T1C", "T2", "FLAIR"):
            out.append(read_real(brats / f"BRATS_HG0015_{seq}.mha", seq.lower(), "Brats21",
                                 "HG0015", lesion=brats / "BRATS_HG0015_truth.mha"))
    ixi = root / "ixi_t1_cohort"
    if ixi.is_dir():
        for image in sorted(ixi.glob("IXI*_T1.nii.gz")):
            labels = image.with_name(image.name.replace("_T1.nii.gz", "_T1_DLMUSE.nii.gz"))
            if labels.is_file():
                out.append(read_real(image, "t1", "IXI", image.name.split("_")[0],
                                     brain=labels))
    return out


def synthetic_volumes(root: Path, source: str, cohorts: Iterable[str] = SYNTHETIC_COHORTS,
                      limit: int | None = None) -> list[MeasuredVolume]:
    """The test volumes of each cohort of a synthetic data root (IXI: healthy T1 and T2)."""
    out: list[MeasuredVolume] = []
    for cohort in cohorts:
        out += synthetic(root, cohort, limit=limit, source=source)
    return out


def measure(volumes: Iterable[MeasuredVolume]) -> pd.DataFrame:
    """One row per volume: its identity, the healthy tissue statistics of its non-lesion
    brain and, where it has a lesion, the lesion statistics."""
    rows = []
    for v in volumes:
        row = {"source": v.source, "cohort": v.cohort, "sequence": v.sequence,
               "subject": v.subject}
        healthy = v.brain if v.lesion is None else v.brain & ~v.lesion
        row.update(tissue_statistics(v.image, healthy, v.sequence))
        if v.lesion is not None and v.lesion.any():
            row.update(lesion_statistics(v.image, v.brain, v.lesion, SPACING_MM, v.sequence))
        rows.append(row)
    return pd.DataFrame(rows)


def summarise(per_volume: pd.DataFrame) -> pd.DataFrame:
    """Median, quartiles and n of every statistic per (source, cohort, sequence)."""
    stats = [c for c in (*TISSUE_STATS, *LESION_STATS) if c in per_volume.columns]
    long = per_volume.melt(id_vars=["source", "cohort", "sequence"], value_vars=stats,
                           var_name="statistic").dropna(subset=["value"])
    grouped = long.groupby(["cohort", "sequence", "statistic", "source"])["value"]
    out = grouped.agg(n="count", median="median",
                      q1=lambda v: float(np.quantile(v, 0.25)),
                      q3=lambda v: float(np.quantile(v, 0.75))).reset_index()
    return out


def reference() -> pd.DataFrame:
    """reference.csv: statistics of the real cohorts from outside this repository."""
    text = resources.files(__package__).joinpath("reference.csv").read_text()
    from io import StringIO

    return pd.read_csv(StringIO(text), comment="#")
