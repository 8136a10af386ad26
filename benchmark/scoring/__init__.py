"""The evaluation protocol: cached anomaly maps + labels -> result rows (docs/protocol.md).

    maps.py            a part's cached maps, post-processed once per (dataset, split)
    segmentation.py    per_volume.csv and per_dataset.csv: AUPRC/AUROC, Dice, detection
    reconstruction.py  recon_quality.csv: SSIM/PSNR/l1 on healthy scans, l1-ratio, KL
    domain_shift.py    inputs x ** cl at test time (paper Sec. 4.5.2): inference + scores
    rescore.py         the ``benchmark evaluate`` command: re-score a run, no model

Every formula comes from :mod:`benchmark.metrics` (a public numpy API), every
post-processing step from :mod:`benchmark.postprocess`, every threshold from
:mod:`benchmark.thresholds` (only the labelled ``oracle`` source reads test labels).
:func:`write_part_results` is the one writer of a part's result tables; the runner and
``evaluate`` both call it. Every row carries ``postprocess``, ``auc_region``,
``protocol_version`` and the part's result tags (``tags`` column + one column per tag).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..data.layout import VolumeRecord
from ..postprocess import PostProcess
from ..thresholds import DEFAULT_SOURCES, SOURCES

if TYPE_CHECKING:  # pandas where tables are made: `evaluate --help` needs none
    import pandas as pd

PROTOCOL_VERSION = "1.0"
AUC_REGIONS = ("brain", "all")
Sets = dict[str, dict[str, list[VolumeRecord]]]


@dataclass(frozen=True)
class ScoringOptions:
    """How cached maps are scored (defaults: the paper's post-processing, AUCs in the brain).

    auc_region: "brain" (voxels inside the brain mask, the default) or "all" (every voxel
        of the volume, background included, as the authors' code does).
    threshold_sources: names from benchmark.thresholds.SOURCES.
    """

    postprocess: PostProcess = field(default_factory=PostProcess)
    auc_region: Literal["brain", "all"] = "brain"
    threshold_sources: tuple[str, ...] = DEFAULT_SOURCES
    median_backend: Literal["fast", "scipy"] = "fast"  # equal results; not part of the tag

    def __post_init__(self):
        if self.auc_region not in AUC_REGIONS:
            raise ValueError(f"auc_region must be one of {AUC_REGIONS}, got {self.auc_region!r}")
        bad = [s for s in self.threshold_sources if s not in SOURCES]
        if bad:
            raise ValueError(f"unknown threshold source(s) {bad}; allowed: {', '.join(SOURCES)}")

    def describe(self) -> str:
        return str(self.postprocess)

    def tags(self) -> dict:
        return {"postprocess": str(self.postprocess), "auc_region": self.auc_region,
                "protocol_version": PROTOCOL_VERSION}


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def score_all(part, sets: Sets, ids: dict, opts: ScoringOptions | None = None):
    """Everything for one part's own maps: (per_volume, per_dataset, recon_quality);
    the pooled intensity histograms go to the part's histograms.npz."""
    from .reconstruction import score_reconstruction
    from .segmentation import score_part

    vol, ds = score_part(part, sets, ids, opts)
    rec, rec_ds = score_reconstruction(part, sets, ids,
                                       histograms_path=part.histograms_path())
    return vol, concat([ds, rec_ds]), rec


def part_tables(part, sets: Sets, ids: dict, opts: ScoringOptions | None = None
                ) -> dict[str, pd.DataFrame]:
    """Every result table of a part, scored from its cached maps: {file name: table}.
    Every metric is range-checked (:func:`benchmark.validate.check_metrics`: MetricError
    naming the part, line and column) before anyone can write it."""
    from ..validate import check_metrics
    from .domain_shift import score_domain_shift

    per_volume, per_dataset, recon = score_all(part, sets, ids, opts)
    tables = {"per_volume.csv": per_volume, "per_dataset.csv": per_dataset}
    if not recon.empty:
        tables["recon_quality.csv"] = recon
    shift = score_domain_shift(part, sets, ids, opts)
    if not shift.empty:
        tables["domain_shift.csv"] = shift
    check_metrics(tables, str(part.path))
    return tables


def write_part_results(part, sets: Sets, ids: dict, opts: ScoringOptions | None = None
                       ) -> dict[str, pd.DataFrame]:
    """Score a part's cached maps and write its result tables (the one writer of them).

    Everything is scored and range-checked (:func:`part_tables`) before anything is
    written, so a failure leaves the part's previous tables as they were. Returns what
    was written.
    """
    tables = part_tables(part, sets, ids, opts)
    for name, frame in tables.items():
        part.write_table(name, frame)
    return tables


__all__ = ["AUC_REGIONS", "PROTOCOL_VERSION", "ScoringOptions", "Sets", "concat", "part_tables",
           "score_all", "write_part_results"]
