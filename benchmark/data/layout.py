"""The on-disk layout the cDDPM authors publish their preprocessed data in.

    <root>/Data/Train/ixi/{t1,t2,mask}/IXI002-Guys-0828_t1.nii.gz
    <root>/Data/Test/<Set>/{t1|t2,mask,seg}/...
    <root>/Data/splits/IXI_{train,val}_fold{0-4}.csv, IXI_test.csv, avail_t2.csv,
                      <Set>_{val,test}.csv  (Brats21, MSLUB, ATLAS_v2, WMH, or any other)

Split CSVs have a leading unnamed index column and the columns
``img_name, age, label, img_path, mask_path, seg_path``; paths start with ``/Train/`` or
``/Test/`` and are joined to ``<root>/Data``. IXI CSVs list T1 paths; the T2 rows are
those named in ``avail_t2.csv`` with ``t1`` replaced by ``t2`` in the path.

Lesion labels must hold 0 (background) and 1 (lesion) only, unless ``<root>/Data/labels.json``
declares how a cohort's values read (:class:`LabelRule`)::

    {"Brats21": {"lesion": [1, 2, 4]},                 # background: [0] unless given
     "WMH": {"lesion": [1], "background": [0, 2]},
     "ATLAS_v2": "nonzero"}                            # any value > 0 (interpolated labels)

This module owns the layout for readers and writers alike: the synthetic generator, the
test fixture and ``data prepare`` build their paths with :func:`volume_paths` and write
their CSVs with :func:`write_split`. :mod:`benchmark.data.loader` reads the images.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # pandas is imported where split files are read or written
    import pandas as pd

Sequence = Literal["t1", "t2"]
SEQUENCES: tuple[str, ...] = ("t1", "t2")             # what a run trains and tests on
IMAGE_SEQUENCES: tuple[str, ...] = ("t1", "t2", "flair")  # what a data root may hold
HEALTHY_COHORT = "IXI"
HEALTHY_FOLDER = "ixi"                                # <root>/Data/Train/ixi
SPLIT_COLUMNS: tuple[str, ...] = ("img_name", "age", "label", "img_path", "mask_path",
                                  "seg_path")
REQUIRED_COLUMNS = ("img_name", "img_path", "mask_path")
N_FOLDS = 5
LABELS_FILE = "labels.json"  # <root>/Data/labels.json: how cohorts' label values read


class DataLayoutError(ValueError):
    """A data directory that does not follow the layout; the message names the file."""


@dataclass(frozen=True)
class LabelRule:
    """How a cohort's raw lesion-label values become lesion / background.

    The default (nothing declared) accepts 0 and 1 only: any other value is an error, so
    that BraTS' {1, 2, 4}, a -1 or an interpolated 0.5 is never binarised silently.
    ``nonzero``: every value > 0 is lesion (e.g. labels warped with linear interpolation).
    """

    lesion: tuple[float, ...] = (1.0,)
    background: tuple[float, ...] = (0.0,)
    nonzero: bool = False
    source: str | None = None  # the labels.json that declared it (None: the default)

    def check(self, values: np.ndarray, path: Path, cohort: str = "<cohort>") -> None:
        """Raise DataLayoutError naming ``path`` when ``values`` holds a value the rule
        does not know."""
        if self.nonzero:
            bad = values < 0
        elif self.lesion == (1.0,) and self.background == (0.0,):
            bad = (values != 0) & (values != 1)
        else:
            bad = ~np.isin(values, self.lesion + self.background)
        if bad.any():
            found = np.unique(values[bad])
            shown = ", ".join(f"{v:g}" for v in found[:8]) + (" ..." if len(found) > 8 else "")
            allowed = ("values >= 0" if self.nonzero else
                       ", ".join(f"{v:g}" for v in sorted(self.lesion + self.background)))
            where = f"as declared in {self.source}" if self.source else "by default"
            raise DataLayoutError(
                f"{path}: lesion label values {shown} in {int(bad.sum())} voxels; allowed "
                f"{where}: {allowed}. Declare how this cohort's labels read in "
                f"Data/{LABELS_FILE}, e.g. {{\"{cohort}\": {{\"lesion\": [1, 2, 4]}}}} or "
                f"{{\"{cohort}\": \"nonzero\"}} (datasets/README.md)")

    def lesion_mask(self, values: np.ndarray) -> np.ndarray:
        """(H, W, D) bool: voxels that are lesion."""
        if self.nonzero:
            return values > 0
        if self.lesion == (1.0,):
            return values == 1
        return np.isin(values, self.lesion)


DEFAULT_LABELS = LabelRule()


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
    labels: LabelRule = DEFAULT_LABELS  # how the seg file's values read
    # how the image is smoothed when it is loaded (data option `smoothing`, set by the data
    # module); part of the record so that load_volume's cache keeps the variants apart
    smoothing: str = "none"
    # every k-th axial slice only (the smoke profile's data: Profile.slice_step), starting
    # at k // 2; set by the data module, so every reader of the record sees the same slices
    slice_step: int = 1


# ---------------------------------------------------------------------------- writing
def volume_paths(sid: str, sequences: Iterable[str], cohort: str | None = None,
                 labelled: bool | None = None) -> dict[str, str]:
    """Paths relative to ``Data/`` (leading '/') of one subject's files.

    cohort None: a healthy training subject (``/Train/ixi/<seq>/<sid>_<seq>.nii.gz``);
    otherwise a test set (``/Test/<cohort>/...``), labelled (a ``seg`` file) unless told.
    Keys: each sequence, ``mask`` and, when labelled, ``seg``.
    """
    base = f"/Train/{HEALTHY_FOLDER}" if cohort is None else f"/Test/{cohort}"
    paths = {seq: f"{base}/{seq}/{sid}_{seq}.nii.gz" for seq in sequences}
    paths["mask"] = f"{base}/mask/{sid}_mask.nii.gz"
    if labelled if labelled is not None else cohort is not None:
        paths["seg"] = f"{base}/seg/{sid}_seg.nii.gz"
    return paths


def split_file(splits_dir: Path, name: str) -> Path:
    return Path(splits_dir) / f"{name}.csv"


def ixi_split_name(kind: Literal["train", "val"], fold: int) -> str:
    return f"{HEALTHY_COHORT}_{kind}_fold{fold}"


def write_split(splits_dir: Path, name: str, rows: Iterable[Mapping] | pd.DataFrame,
                extra_columns: Iterable[str] = ()) -> str:
    """Write ``<splits_dir>/<name>.csv`` as the authors do (leading unnamed index column,
    :data:`SPLIT_COLUMNS` then ``extra_columns``); atomic; returns the text's sha256."""
    import pandas as pd

    columns = [*SPLIT_COLUMNS, *extra_columns]
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=columns)
    text = frame.reindex(columns=columns).to_csv(index=True)
    path = split_file(splits_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------- reading
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
    df = _read_csv(csv)
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed")])
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataLayoutError(f"{csv}: missing column(s) {missing}; has {list(df.columns)}")
    if df.empty:
        raise DataLayoutError(f"split file has no rows: {csv}")
    for column in REQUIRED_COLUMNS:
        blank = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if blank.any():
            row = int(blank.to_numpy().argmax())
            raise DataLayoutError(f"{csv}: {column} is empty in row {row + 1} (of {len(df)})")
    names = df["img_name"].astype(str)
    if names.duplicated().any():
        raise DataLayoutError(f"{csv}: img_name {names[names.duplicated()].iloc[0]!r} appears "
                              "twice; a volume is listed once per split")
    return df


def _read_csv(csv: Path) -> pd.DataFrame:
    """pandas' reading of a split CSV; an empty, malformed or non-UTF-8 file is a
    DataLayoutError naming it."""
    import pandas as pd

    try:
        return pd.read_csv(csv)
    except pd.errors.EmptyDataError:
        raise DataLayoutError(f"split file is empty: {csv}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataLayoutError(f"{csv}: not a readable CSV file ({detail})") from None


def _resolve(ddir: Path, rel: object, csv: Path, column: str, row: object = None) -> Path:
    """A split CSV's path joined to ``Data/``; it must stay inside ``Data/`` (checked on the
    text, so a data root made of symbolic links still reads)."""
    where = f"{csv}: row {row}, {column}" if row is not None else f"{csv}: {column}"
    if not isinstance(rel, str) or not rel.strip():
        raise DataLayoutError(f"{where} is empty or not a path: {rel!r}")
    clean = os.path.normpath(rel.strip().lstrip("/"))
    if clean == ".." or clean.startswith(".." + os.sep) or os.path.isabs(clean):
        raise DataLayoutError(f"{where} {rel!r} leaves the data directory {ddir}; paths "
                              "are relative to Data/ (e.g. /Test/Brats21/t2/x_t2.nii.gz)")
    return ddir / clean


def _to_sequence(path: str, sequence: str) -> str:
    """Swap the sequence in an IXI path: /Train/ixi/t1/X_t1.nii.gz -> /Train/ixi/t2/X_t2.nii.gz."""
    return re.sub(r"(?<![A-Za-z0-9])t1(?![A-Za-z0-9])", sequence, path)


def sequence_of(path: str) -> str | None:
    """The sequence folder of a test path (``/Test/Brats21/t2/...`` -> ``t2``)."""
    parts = [p.lower() for p in Path(path).parts]
    for seq in IMAGE_SEQUENCES:
        if seq in parts:
            return seq
    return None


def split_sequence(csv: Path, df: pd.DataFrame) -> str:
    """The one sequence of a labelled split: every row's img_path must name the same
    sequence folder (a row without one, e.g. image and label columns swapped, or a CSV
    mixing sequences is an error naming the row, never a cohort that silently drops out)."""
    seen: dict[str, str] = {}
    for name, path in zip(df["img_name"].astype(str), df["img_path"]):
        seq = sequence_of(str(path))
        if seq is None:
            raise DataLayoutError(
                f"{csv}: row {name}: img_path {path!r} has no sequence folder "
                f"({'/'.join(IMAGE_SEQUENCES)}), e.g. /Test/<Set>/t2/<name>_t2.nii.gz "
                "(image and label columns swapped?)")
        seen.setdefault(seq, name)
    if len(seen) > 1:
        rows = ", ".join(f"{seq} (row {name})" for seq, name in seen.items())
        raise DataLayoutError(f"{csv}: img_path mixes sequences: {rows}; one split CSV "
                              "holds one sequence")
    return next(iter(seen))


def label_rules(ddir: Path) -> dict[str, LabelRule]:
    """{cohort: LabelRule} declared in ``<ddir>/labels.json`` ({} without one)."""
    path = Path(ddir) / LABELS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise DataLayoutError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataLayoutError(f"{path}: expected an object {{cohort: rule}}")
    return {str(cohort): _label_rule(rule, path, cohort) for cohort, rule in data.items()}


def _label_rule(rule: object, path: Path, cohort: str) -> LabelRule:
    def values(key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        raw = rule.get(key, list(default))
        if not isinstance(raw, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            raise DataLayoutError(f"{path}: {cohort}.{key} must be a list of numbers")
        return tuple(float(v) for v in raw)

    if rule == "nonzero":
        return LabelRule(nonzero=True, source=str(path))
    if isinstance(rule, dict) and set(rule) <= {"lesion", "background"} and "lesion" in rule:
        lesion, background = values("lesion", ()), values("background", (0.0,))
        if set(lesion) & set(background):
            raise DataLayoutError(f"{path}: {cohort}: a value is both lesion and background")
        return LabelRule(lesion, background, source=str(path))
    raise DataLayoutError(f"{path}: {cohort}: expected \"nonzero\" or {{\"lesion\": [...], "
                          f"\"background\": [...]}}, got {rule!r}")


def records(ddir: Path, df: pd.DataFrame, csv: Path, cohort: str, sequence: str,
            labelled: bool) -> list[VolumeRecord]:
    out = []
    rule = label_rules(ddir).get(cohort, DEFAULT_LABELS) if labelled else DEFAULT_LABELS
    for row in df.itertuples(index=False):
        seg = None
        if labelled:
            seg_rel = getattr(row, "seg_path", None)
            if not isinstance(seg_rel, str):
                raise DataLayoutError(f"{csv}: volume {row.img_name} has no seg_path")
            seg = _resolve(ddir, seg_rel, csv, "seg_path", row.img_name)
        out.append(VolumeRecord(
            name=str(row.img_name), cohort=cohort, sequence=sequence,
            image=_resolve(ddir, row.img_path, csv, "img_path", row.img_name),
            mask=_resolve(ddir, row.mask_path, csv, "mask_path", row.img_name), seg=seg,
            site=_site(getattr(row, "site", None)), labels=rule,
        ))
    return out


def _site(value) -> str | None:
    """A site cell of a split CSV; empty or missing (NaN) is no site."""
    return str(value) if isinstance(value, str) and value.strip() else None


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(frames)


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
    df = _read_csv(csv)
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
    test_csv = split_file(splits, f"{HEALTHY_COHORT}_test")
    test = _ixi_frame(ddir, test_csv, sequence)
    if scheme == "reference":
        tr_csv = split_file(splits, ixi_split_name("train", fold))
        va_csv = split_file(splits, ixi_split_name("val", fold))
        train, val = _ixi_frame(ddir, tr_csv, sequence), _ixi_frame(ddir, va_csv, sequence)
    elif scheme == "disjoint":
        tr_csv = va_csv = split_file(splits, ixi_split_name("train", 0))
        frames = [_ixi_frame(ddir, split_file(splits, ixi_split_name(s, k)), sequence)
                  for s in ("train", "val") for k in range(N_FOLDS)
                  if split_file(splits, ixi_split_name(s, k)).is_file()]
        if not frames:
            raise DataLayoutError(f"no IXI_train_fold*.csv / IXI_val_fold*.csv in {splits}")
        pool = _concat(frames).drop_duplicates("img_name")
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
        if split_sequence(csv, read_split(csv)) == sequence:
            names.append(cohort)
    return names


def select_cohorts(root: Path, sequence: str, requested: list[str] | None = None) -> list[str]:
    """The labelled test sets a ``sequence`` part evaluates: all of them, or ``requested``
    (``--cohorts``), each of which must be a cohort of this sequence."""
    names = unhealthy_cohorts(root, sequence)
    if requested is None:
        return names
    unknown = [c for c in requested if c not in names]
    if unknown:
        from ..hparams import did_you_mean

        others = {c: s for s in SEQUENCES if s != sequence for c in unhealthy_cohorts(root, s)}
        hints = [f"{c!r} is a {others[c]} cohort" if c in others
                 else f"{c!r} is unknown{did_you_mean(c, names + list(others))}"
                 for c in unknown]
        raise DataLayoutError(f"--cohorts: {'; '.join(hints)}; the {sequence} cohorts of "
                              f"{data_dir(root)} are: {', '.join(names) or '(none)'}")
    return [n for n in names if n in requested]


def has_split(root: Path, cohort: str, split: Literal["val", "test"]) -> bool:
    return split_file(data_dir(root) / "splits", f"{cohort}_{split}").is_file()


def unhealthy_split(root: Path, cohort: str, split: Literal["val", "test"]) -> list[VolumeRecord]:
    """The labelled ``val`` or ``test`` volumes of an unhealthy cohort."""
    ddir = data_dir(root)
    csv = split_file(ddir / "splits", f"{cohort}_{split}")
    df = read_split(csv)
    return records(ddir, df, csv, cohort, split_sequence(csv, df), labelled=True)
