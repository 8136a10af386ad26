"""Everything one (sequence, fold) of a run needs: loaders for training and the test sets.

The sequence (T1 or T2) decides the test sets: every labelled cohort whose split CSV
points at that sequence (paper: BraTS21 and MSLUB for T2, ATLAS and WMH for T1).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from . import layout
from .loader import SliceDataset, Volume, VolumeDataset, load_volumes, paper_augmentation
from .options import DataOptions


@dataclass
class DataConfig:
    root: Path
    sequence: str
    fold: int
    fold_scheme: str = "disjoint"
    split_seed: int = 0
    batch_size: int = 32
    num_workers: int = 0
    augment: bool = True
    repeats: int = 1            # random slices per training volume per epoch
    val_slices: int = 10        # fixed slices per validation volume
    max_train_volumes: int | None = None
    max_test_volumes: int | None = None
    max_val_volumes: int | None = None  # None: max_test_volumes
    progress: bool = False
    cohorts: list[str] | None = field(default=None)  # None: every cohort of the sequence
    slice_step: int = 1         # every k-th axial slice of every volume (smoke profile)
    options: DataOptions = field(default_factory=DataOptions)  # smoothing, augmentation, ...


class BenchmarkDataModule(L.LightningDataModule):
    """Healthy train/val slices for training; labelled test sets for evaluation."""

    def __init__(self, cfg: DataConfig, sampling: str = "slice") -> None:
        super().__init__()
        self.cfg, self.sampling = cfg, sampling
        splits = layout.healthy_splits(cfg.root, cfg.sequence, cfg.fold, cfg.fold_scheme,
                                       cfg.split_seed)
        self.records = {split: self._read_as_configured(recs) for split, recs in splits.items()}
        if cfg.max_train_volumes is not None:
            self.records["train"] = self.records["train"][: cfg.max_train_volumes]
            self.records["val"] = self.records["val"][: max(1, cfg.max_train_volumes // 4)]
        self._train: list[Volume] | None = None
        self._val: list[Volume] | None = None

    @property
    def train_volumes(self) -> list[Volume]:
        if self._train is None:
            self._train = load_volumes(self.records["train"], self.cfg.progress)
        return self._train

    @property
    def val_volumes(self) -> list[Volume]:
        if self._val is None:
            self._val = load_volumes(self.records["val"], self.cfg.progress)
        return self._val

    def _read_as_configured(self, records: list[layout.VolumeRecord]
                            ) -> list[layout.VolumeRecord]:
        return self.as_configured(self.cfg, records)

    @staticmethod
    def as_configured(cfg: DataConfig, records: list[layout.VolumeRecord]
                      ) -> list[layout.VolumeRecord]:
        """Records that load as the data options and the slice step say (both travel with
        the record, to inference and scoring too, and key load_volume's cache)."""
        smoothing, step = cfg.options.smoothing, cfg.slice_step
        if step < 1:
            raise ValueError(f"slice_step must be >= 1, got {step}")
        if smoothing == "none" and step == 1:
            return records
        return [replace(r, smoothing=smoothing, slice_step=step) for r in records]

    def _loader(self, volumes: list[Volume], train: bool) -> DataLoader:
        cfg, opts = self.cfg, self.cfg.options
        augment = paper_augmentation() if (train and cfg.augment) else None
        if self.sampling == "volume":
            ds = VolumeDataset(volumes, repeats=cfg.repeats if train else 1, augment=augment,
                               clamp=opts.augment_clamp, voxel_mm=opts.augment_voxel_mm)
            batch_size = max(1, min(cfg.batch_size, 4))
        else:
            ds = SliceDataset(volumes, repeats=cfg.repeats if train else 1,
                              fixed_slices=None if train else cfg.val_slices, augment=augment,
                              augment_space=opts.augment_space, clamp=opts.augment_clamp,
                              voxel_mm=opts.augment_voxel_mm)
            batch_size = cfg.batch_size
        drop_last = train and opts.drop_last  # the authors drop it in training only
        if drop_last and len(ds) < batch_size:
            raise ValueError(f"data option drop_last=true: {len(ds)} training items per epoch "
                             f"are fewer than the batch size {batch_size}, so no batch would "
                             "be trained; use drop_last=false or a smaller batch")
        return DataLoader(ds, batch_size=batch_size, shuffle=train, drop_last=drop_last,
                          num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_volumes, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_volumes, train=False)

    def statistics_dataloader(self) -> DataLoader:
        """Healthy training slices without augmentation, for Method.fit_statistics."""
        return self._loader(self.train_volumes, train=False)

    # ------------------------------------------------------------------ evaluation sets
    def test_cohorts(self) -> list[str]:
        return layout.select_cohorts(self.cfg.root, self.cfg.sequence, self.cfg.cohorts)

    def evaluation_sets(self) -> dict[str, dict[str, list[layout.VolumeRecord]]]:
        """{dataset: {split: records}}: the healthy test set (IXI) and each labelled cohort's
        val and test splits (val is only for choosing thresholds, never scored as a result)."""
        sets = {layout.HEALTHY_COHORT: self.healthy_evaluation_set()}
        for cohort in self.test_cohorts():
            sets[cohort] = self.evaluation_set(cohort)
        return sets

    def healthy_evaluation_set(self) -> dict[str, list[layout.VolumeRecord]]:
        """{split: records} of the healthy test set and the healthy validation volumes
        scored for thresholds (capped)."""
        cap = self.cfg.max_test_volumes
        return {"test": self.records["test"][:cap], "val": self.records["val"][:self.val_cap()]}

    def evaluation_set(self, cohort: str) -> dict[str, list[layout.VolumeRecord]]:
        """{split: records} of one labelled cohort, as evaluated (capped)."""
        cap = self.cfg.max_test_volumes
        entry = {"test": layout.unhealthy_split(self.cfg.root, cohort, "test")[:cap]}
        if layout.has_split(self.cfg.root, cohort, "val"):
            entry["val"] = layout.unhealthy_split(self.cfg.root, cohort, "val")[:self.val_cap()]
        return {split: self._read_as_configured(recs) for split, recs in entry.items()}

    def val_cap(self) -> int | None:
        """How many validation volumes per set are scored (max_val_volumes, else the test cap)."""
        cfg = self.cfg
        return cfg.max_test_volumes if cfg.max_val_volumes is None else cfg.max_val_volumes
