"""Step 6: the authors' on-disk layout, split CSVs and the checksum manifest.

    <out>/Data/Train/ixi/{t1,t2,mask}/IXI002-Guys-0828_t1.nii.gz, ..._mask.nii.gz
    <out>/Data/Test/<Set>/{t1|t2|flair,mask,seg}/<sid>_t2.nii.gz, <sid>_mask..., <sid>_seg...
    <out>/Data/splits/IXI_{train,val}_fold{0-4}.csv, IXI_test.csv, avail_t2.csv,
                      <Set>_{val,test}.csv
    <out>/Data/manifest.json    sha256 + size of every file above

Split CSVs carry a leading unnamed index column and ``img_name, age, label, img_path,
mask_path, seg_path``; paths start with ``/Train/`` or ``/Test/`` and are joined to
``<out>/Data`` by the loader (as in the reference code). ``img_name`` is the subject id.

No split is ever written empty (``run`` refuses an empty CSV): a split with no subject is
not written, and a stale one from an earlier run of the same set is removed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data import layout
from benchmark.data.layout import N_FOLDS, SPLIT_COLUMNS
from benchmark.data.manifest import sha256_file
from benchmark.data.prepare.cohorts import Cohort

MANIFEST = "manifest.json"


def relative_paths(cohort: Cohort, sid: str, sequences: list[str], has_seg: bool) -> dict:
    """Paths (relative to ``Data``, with a leading '/') of one subject's output files."""
    return layout.volume_paths(sid, sequences, None if cohort.healthy else cohort.set_name,
                               labelled=has_seg)


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> str:
    """Write a gzipped NIfTI byte-reproducibly (gzip mtime 0); return its sha256."""
    import nibabel as nib  # here: `data prepare --help` needs no nibabel (nor its scipy)

    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    data = gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a killed run never leaves a half-written volume
    return hashlib.sha256(data).hexdigest()


def _order(sids: list[str], seed: int) -> list[str]:
    """Deterministic shuffle that does not depend on the Python version or the input order."""
    return sorted(sids, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())


def _scaled(n: int, size: int, total: int) -> int:
    return round(n * size / total) if total else 0


# ``run`` splits the healthy train/val pool into N_FOLDS folds: at least one subject each
MIN_HEALTHY = N_FOLDS + 1  # + one healthy test subject


def ixi_splits(sids: list[str], cohort: Cohort, seed: int = 3141) -> dict[str, list[str]]:
    """Held-out test set + 5 folds whose validation sets are pairwise disjoint.

    With the paper's 560 subjects: test 158, per fold val 44 and train 358 (paper Sec. 4.1).
    Unlike the reference CSVs, no test subject is in any train/val set and no subject is in
    two validation sets. Fewer subjects scale the sizes, keeping at least one test subject
    and N_FOLDS subjects for the folds (from MIN_HEALTHY subjects on); when 5 disjoint
    non-empty val sets do not fit (a handful of subjects), val sets rotate over the
    non-test subjects.
    """
    order = _order(sids, seed)
    n = len(order)
    n_test = _scaled(n, cohort.test, cohort.expected)
    if n >= MIN_HEALTHY:
        n_test = min(max(n_test, 1), n - N_FOLDS)
    elif n > 1 and n_test == 0:
        n_test = 1
    test, rest = order[:n_test], order[n_test:]
    n_val = _scaled(n, cohort.val, cohort.expected)
    splits = {f"{layout.HEALTHY_COHORT}_test": sorted(test)}
    for k in range(N_FOLDS):
        if n_val >= 1 and N_FOLDS * n_val <= len(rest):
            val = rest[k * n_val:(k + 1) * n_val]
        else:
            val = [rest[k % len(rest)]] if len(rest) > 1 else []
        splits[layout.ixi_split_name("train", k)] = sorted(s for s in rest if s not in val)
        splits[layout.ixi_split_name("val", k)] = sorted(val)
    return splits


# a cohort of one's own has no paper sizes: this share goes to val (as MSLUB's 10/30 ~ 1/3)
CUSTOM_VAL_SHARE = 0.25


def val_test_split(sids: list[str], cohort: Cohort, seed: int = 3141,
                   n_val: int | None = None) -> dict[str, list[str]]:
    """Unhealthy cohorts: the paper's val/test sizes when complete, else the same proportion
    (a cohort of one's own: 25 %), at least one val subject from 2 subjects on, always at
    least one test subject. ``n_val`` overrides (0 = no val split)."""
    order = _order(sids, seed)
    n = len(order)
    if n_val is None:
        if n == cohort.expected:
            n_val = cohort.val
        elif cohort.val + cohort.test:
            n_val = _scaled(n, cohort.val, cohort.val + cohort.test)
        else:
            n_val = round(n * CUSTOM_VAL_SHARE)
        n_val = max(n_val, 1) if n >= 2 else 0
    if not 0 <= n_val < max(n, 1):
        raise ValueError(f"--n-val {n_val}: {cohort.set_name} has {n} subject(s); the test "
                         "split needs at least one")
    return {f"{cohort.set_name}_val": sorted(order[:n_val]),
            f"{cohort.set_name}_test": sorted(order[n_val:])}


def split_table(sids: list[str], records: dict[str, dict], cohort: Cohort) -> pd.DataFrame:
    """One CSV's rows; ``records[sid]["files"]`` maps roles to relative paths."""
    rows = []
    for sid in sids:
        files = records[sid]["files"]
        seqs = [s for s in ("t1", "t2", "flair") if s in files]
        img = files[seqs[0]]  # t1 first: the reference loader swaps 't1'->'t2' for T2 runs
        rows.append({
            "img_name": sid,
            "age": records[sid].get("age", np.nan),
            "label": 0 if cohort.healthy else 1,
            "img_path": img, "mask_path": files["mask"], "seg_path": files.get("seg", ""),
        })
    return pd.DataFrame(rows, columns=list(SPLIT_COLUMNS))


def write_splits(data: Path, cohort: Cohort, records: dict[str, dict], seed: int,
                 n_val: int | None = None) -> dict[str, list[str]]:
    """Write every non-empty split CSV of ``cohort`` for the subjects in ``records``.

    Returns {split name: subject ids}, the empty ones included (they are not written, and
    an earlier file of that name is removed).
    """
    sids = sorted(records)
    splits = (ixi_splits(sids, cohort, seed) if cohort.healthy
              else val_test_split(sids, cohort, seed, n_val))
    if cohort.healthy:
        # the T2 rows of T2 runs: same img_name as the T1 rows of the folds (the loader
        # matches them) and the T2 path
        t2 = [s for s in sids if "t2" in records[s]["files"]]
        splits["avail_t2"] = t2
    out = data / "splits"
    out.mkdir(parents=True, exist_ok=True)
    for name, members in splits.items():
        path = layout.split_file(out, name)
        if not members:
            path.unlink(missing_ok=True)
            continue
        table = split_table(members, records, cohort)
        if name == "avail_t2":
            table["img_path"] = [records[s]["files"]["t2"] for s in members]
        layout.write_split(out, name, table)
    return splits



def _payload_files(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*") if p.is_file() and p.name != MANIFEST
                  and not p.name.endswith(".part")
                  and not any(part.startswith(".") for part in p.relative_to(data).parts))


def write_manifest(data: Path, info: dict, choices: dict | None = None) -> Path:
    """sha256 and size of every file under ``data`` (all cohorts prepared there), and
    ``choices``: {set name: what the tool chose for the user} (merged with the cohorts an
    earlier manifest records)."""
    files = {p.relative_to(data).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in _payload_files(data)}
    path = data / MANIFEST
    merged = {}
    if path.is_file():
        try:
            merged = dict(json.loads(path.read_text()).get("choices") or {})
        except (ValueError, AttributeError):  # a damaged manifest is rewritten whole
            merged = {}
    merged.update(choices or {})
    payload = {"format": 1, **info, **({"choices": merged} if merged else {}), "files": files}
    path.write_text(json.dumps(payload, indent=1, sort_keys=True))
    return path


def verify(data: Path) -> dict[str, list[str]]:
    """Compare ``data`` with its manifest; also check every split-CSV path exists."""
    manifest_path = data / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: is {data} a prepared Data folder?")
    manifest = json.loads(manifest_path.read_text())
    problems: dict[str, list[str]] = {"missing": [], "changed": [], "extra": [], "broken": []}
    for rel, entry in manifest["files"].items():
        path = data / rel
        if not path.is_file():
            problems["missing"].append(rel)
        elif sha256_file(path) != entry["sha256"]:
            problems["changed"].append(rel)
    known = set(manifest["files"])
    problems["extra"] = [p.relative_to(data).as_posix() for p in _payload_files(data)
                         if p.relative_to(data).as_posix() not in known]
    for csv in sorted((data / "splits").glob("*.csv")):
        table = pd.read_csv(csv, index_col=0)
        for col in ("img_path", "mask_path", "seg_path"):
            for rel in table.get(col, pd.Series(dtype=str)).dropna():
                if rel and not (data / str(rel).lstrip("/")).is_file():
                    problems["broken"].append(f"{csv.name}: {rel}")
    return problems
