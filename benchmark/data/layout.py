"""The on-disk layout the cDDPM authors publish their preprocessed data in.

    <root>/Data/Train/ixi/{t1,t2,mask}/IXI002-Guys-0828_t1.nii.gz
    <root>/Data/Test/<Set>/{t1|t2,mask,seg}/...
    <root>/Data/splits/IXI_{train,val}_fold{0-4}.csv, IXI_test.csv, avail_t2.csv,
                      <Set>_{val,test}.csv  (Brats21, MSLUB, ATLAS_v2, WMH, or any other)

Split CSVs have a leading unnamed index column and the columns
``img_name, age, label, img_path, mask_path, seg_path``; paths start with ``/Train/`` or
``/Test/`` and are joined to ``<root>/Data``. IXI CSVs list T1 paths; the T2 rows are
those named in ``avail_t2.csv`` with ``t1`` replaced by ``t2`` in the path.

This module only reads CSVs and resolves paths; :mod:`benchmark.data.loader` reads images.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Sequence = Literal["t1", "t2"]
SEQUENCES: tuple[str, ...] = ("t1", "t2")
HEALTHY_COHORT = "IXI"
REQUIRED_COLUMNS = ("img_name", "img_path", "mask_path")
N_FOLDS = 5


class DataLayoutError(ValueError):
    """A data directory that does not follow the layout; the message names the file."""


@dataclass(frozen=True)
class VolumeRecord:
    """One row of a split CSV, with paths resolved to files."""

    name: str
    cohort: str
    sequence: str
    image: Path
    mask: Path
    seg: Path | None  # None for healthy volumes
    site: str | None = None  # the split CSV's optional `site` column (scanner / centre)


def data_dir(root: Path) -> Path:
    """``root`` may be the folder that holds ``Data/`` or ``Data/`` itself."""
    root = Path(root).expanduser()
    if (root / "Data" / "splits").is_dir():
        return root / "Data"
    if (root / "splits").is_dir():
        return root
    raise DataLayoutError(
        f"{root} is not a UAD-Bench data root: expected {root / 'Data' / 'splits'} "
        "(the layout of the cDDPM authors' preprocessed data; see datasets/README.md)"
    )


def read_split(csv: Path) -> pd.DataFrame:
    """Read one split CSV, checking its columns; an empty or malformed file raises."""
    if not csv.is_file():
        raise DataLayoutError(f"split file not found: {csv}")
    try:
        df = pd.read_csv(csv)
    except pd.errors.EmptyDataError:
        raise DataLayoutError(f"split file is empty: {csv}") from None
    df = df.drop(columns=[c for c in df.columns if c.startswith("Unnamed")])
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataLayoutError(f"{csv}: missing column(s) {missing}; has {list(df.columns)}")
    if df.empty:
        raise DataLayoutError(f"split file has no rows: {csv}")
    return df


def _resolve(ddir: Path, rel: object, csv: Path, column: str) -> Path:
    if not isinstance(rel, str) or not rel.strip():
        raise DataLayoutError(f"{csv}: empty {column}")
    return ddir / rel.strip().lstrip("/")


def _to_sequence(path: str, sequence: str) -> str:
    """Swap the sequence in an IXI path: /Train/ixi/t1/X_t1.nii.gz -> /Train/ixi/t2/X_t2.nii.gz."""
    return re.sub(r"(?<![A-Za-z0-9])t1(?![A-Za-z0-9])", sequence, path)


def sequence_of(path: str) -> str | None:
    """The sequence folder of a test path (``/Test/Brats21/t2/...`` -> ``t2``)."""
    parts = [p.lower() for p in Path(path).parts]
    for seq in ("t1", "t2", "flair"):
        if seq in parts:
            return seq
    return None


def records(ddir: Path, df: pd.DataFrame, csv: Path, cohort: str, sequence: str,
            labelled: bool) -> list[VolumeRecord]:
    out = []
    for row in df.itertuples(index=False):
        seg = None
        if labelled:
            seg_rel = getattr(row, "seg_path", None)
            if not isinstance(seg_rel, str):
                raise DataLayoutError(f"{csv}: volume {row.img_name} has no seg_path")
            seg = _resolve(ddir, seg_rel, csv, "seg_path")
        out.append(VolumeRecord(
            name=str(row.img_name), cohort=cohort, sequence=sequence,
            image=_resolve(ddir, row.img_path, csv, "img_path"),
            mask=_resolve(ddir, row.mask_path, csv, "mask_path"), seg=seg,
            site=_site(getattr(row, "site", None)),
        ))
    return out


def _site(value) -> str | None:
    """A site cell of a split CSV; empty or missing (NaN) is no site."""
    return str(value) if isinstance(value, str) and value.strip() else None


def _ixi_frame(ddir: Path, csv: Path, sequence: str) -> pd.DataFrame:
    df = read_split(csv)
    if sequence == "t1":
        return df
    df = df.copy()
    df["img_path"] = df["img_path"].map(lambda p: _to_sequence(p, sequence))
    avail = ddir / "splits" / f"avail_{sequence}.csv"
    if avail.is_file():
        names = set(read_split_names(avail))
        df = df[df["img_name"].astype(str).isin(names)]
    else:  # no availability list: keep the rows whose file exists
        df = df[[(ddir / p.lstrip("/")).is_file() for p in df["img_path"]]]
    if df.empty:
        raise DataLayoutError(f"{csv}: no {sequence.upper()} volumes available")
    return df


def read_split_names(csv: Path) -> list[str]:
    df = pd.read_csv(csv)
    if "img_name" not in df.columns:
        raise DataLayoutError(f"{csv}: expected an img_name column, has {list(df.columns)}")
    return df["img_name"].astype(str).tolist()


def healthy_splits(root: Path, sequence: str, fold: int, scheme: str = "disjoint",
                   seed: int = 0) -> dict[str, list[VolumeRecord]]:
    """Train/val/test healthy volumes of one fold.

    scheme="disjoint" (default): the union of the authors' IXI train/val CSVs, minus every
    test subject, split into 5 disjoint folds by a permutation seeded with ``seed``.
    scheme="reference": the authors' ``IXI_{train,val}_fold{k}.csv`` as published (their
    folds overlap and share subjects with the test set).
    """
    if sequence not in SEQUENCES:
        raise ValueError(f"unknown sequence {sequence!r}; allowed: {', '.join(SEQUENCES)}")
    if not 0 <= fold < N_FOLDS:
        raise ValueError(f"fold must be in 0..{N_FOLDS - 1}, got {fold}")
    ddir = data_dir(root)
    splits = ddir / "splits"
    test_csv = splits / "IXI_test.csv"
    test = _ixi_frame(ddir, test_csv, sequence)
    if scheme == "reference":
        tr_csv, va_csv = splits / f"IXI_train_fold{fold}.csv", splits / f"IXI_val_fold{fold}.csv"
        train, val = _ixi_frame(ddir, tr_csv, sequence), _ixi_frame(ddir, va_csv, sequence)
    elif scheme == "disjoint":
        tr_csv = va_csv = splits / "IXI_train_fold0.csv"
        frames = [_ixi_frame(ddir, splits / f"IXI_{s}_fold{k}.csv", sequence)
                  for s in ("train", "val") for k in range(N_FOLDS)
                  if (splits / f"IXI_{s}_fold{k}.csv").is_file()]
        if not frames:
            raise DataLayoutError(f"no IXI_train_fold*.csv / IXI_val_fold*.csv in {splits}")
        pool = pd.concat(frames).drop_duplicates("img_name")
        pool = pool[~pool["img_name"].isin(set(test["img_name"]))].sort_values("img_name")
        if len(pool) < N_FOLDS:
            raise DataLayoutError(f"{splits}: only {len(pool)} healthy training volumes")
        order = np.random.default_rng(seed).permutation(len(pool))
        chunks = np.array_split(order, N_FOLDS)
        val = pool.iloc[np.sort(chunks[fold])]
        train = pool.iloc[np.sort(np.concatenate([c for k, c in enumerate(chunks) if k != fold]))]
    else:
        raise ValueError(f"unknown fold scheme {scheme!r}; allowed: disjoint, reference")
    return {
        "train": records(ddir, train, tr_csv, HEALTHY_COHORT, sequence, labelled=False),
        "val": records(ddir, val, va_csv, HEALTHY_COHORT, sequence, labelled=False),
        "test": records(ddir, test, test_csv, HEALTHY_COHORT, sequence, labelled=False),
    }


def unhealthy_cohorts(root: Path, sequence: str) -> list[str]:
    """Names of the labelled test sets of ``sequence`` (every ``<Set>_test.csv`` but IXI)."""
    ddir = data_dir(root)
    names = []
    for csv in sorted((ddir / "splits").glob("*_test.csv")):
        cohort = csv.name[: -len("_test.csv")]
        if cohort == HEALTHY_COHORT:
            continue
        df = read_split(csv)
        if sequence_of(str(df["img_path"].iloc[0])) == sequence:
            names.append(cohort)
    return names


def unhealthy_split(root: Path, cohort: str, split: Literal["val", "test"]) -> list[VolumeRecord]:
    """The labelled ``val`` or ``test`` volumes of an unhealthy cohort."""
    ddir = data_dir(root)
    csv = ddir / "splits" / f"{cohort}_{split}.csv"
    df = read_split(csv)
    seq = sequence_of(str(df["img_path"].iloc[0]))
    if seq is None:
        raise DataLayoutError(f"{csv}: cannot tell the sequence from img_path {df['img_path'].iloc[0]}")
    return records(ddir, df, csv, cohort, seq, labelled=True)
