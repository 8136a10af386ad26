"""Per-cohort raw naming conventions: how to find each subject's images and label in a download.

Each pattern is a regular expression matched (case-insensitively) against a file's path
relative to ``--raw`` (POSIX separators, whole path); the named group ``sid`` is the subject
id and ``seq`` the sequence. Several conventions per cohort are accepted (the official
release and common re-distributions). Cohort cards in ``datasets/<cohort>.md`` repeat this.

| cohort  | image (per sequence)                                   | lesion label                   |
|---------|--------------------------------------------------------|--------------------------------|
| ixi     | ``IXI002-Guys-0828-T1.nii.gz`` (also ``_T1``)          | none (healthy)                 |
| brats21 | ``BraTS2021_00000/BraTS2021_00000_t2.nii.gz``          | ``..._seg.nii.gz`` (1,2,4 -> 1)|
| mslub   | ``patient01_T2W.nii.gz``, ``patient01/T2W.nii.gz``,    | ``patient01_consensus_gt``     |
|         | ``patient01_T2.nii.gz``                                | or ``patient01_seg`` (> 0)     |
| atlas   | ``sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w``    | ``..._label-L_desc-T1lesion_mask`` |
| wmh     | ``Utrecht/0/pre/T1.nii.gz`` (id = site_number)         | ``Utrecht/0/wmh.nii.gz`` (1 -> 1, 2 = other pathology -> 0) |
| custom  | ``<sid>/<seq>.nii.gz`` or ``<sid>_<seq>.nii.gz``       | ``<sid>/seg`` or ``<sid>_seg`` (> 0) |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.data.layout import HEALTHY_COHORT, HEALTHY_FOLDER, IMAGE_SEQUENCES

CohortName = Literal["ixi", "brats21", "mslub", "atlas", "wmh", "custom"]
SEQUENCES = IMAGE_SEQUENCES
NII = r"\.nii(?:\.gz)?$"


@dataclass(frozen=True)
class Cohort:
    """What the pipeline needs to know about one cohort.

    ``set_name``: folder under ``Data/Test`` (``Data/Train/ixi`` for IXI) and split-file
    prefix; ``val``/``test``: the paper's split sizes (``test`` = held-out healthy for IXI);
    ``label_values``: raw label values that count as lesion (``None`` = any value > 0).
    """

    name: str
    set_name: str
    healthy: bool
    default_sequences: tuple[str, ...]
    image_patterns: tuple[str, ...]
    label_patterns: tuple[str, ...] = ()
    label_values: tuple[int, ...] | None = None
    skull_stripped: bool = False
    val: int = 0
    test: int = 0
    expected: int = 0
    seq_alias: dict[str, str] = field(default_factory=dict)
    example: str = ""


COHORTS: dict[str, Cohort] = {
    "ixi": Cohort(
        "ixi", "IXI", True, ("t1", "t2"),
        (r"(?:.*/)?(?P<sid>IXI\d{3}-[A-Za-z]+-\d{4})[-_](?P<seq>T1|T2)" + NII,),
        val=44, test=158, expected=560,
        example="IXI002-Guys-0828-T1.nii.gz",
    ),
    "brats21": Cohort(
        "brats21", "Brats21", False, ("t2",),
        (r"(?:.*/)?(?P<sid>BraTS2021_\d{5})_(?P<seq>t1|t2|flair)" + NII,),
        (r"(?:.*/)?(?P<sid>BraTS2021_\d{5})_seg" + NII,),
        skull_stripped=True, val=100, test=1151, expected=1251,
        example="BraTS2021_00000/BraTS2021_00000_t2.nii.gz + ..._seg.nii.gz",
    ),
    "mslub": Cohort(
        "mslub", "MSLUB", False, ("t2",),
        (r"(?:.*/)?(?P<sid>patient\d{2})(?:/raw)?[_/](?P<seq>T1W|T2W|FLAIR|T1|T2)" + NII,),
        (r"(?:.*/)?(?P<sid>patient\d{2})(?:/raw)?[_/](?:consensus_gt|seg)" + NII,),
        val=10, test=20, expected=30, seq_alias={"t1w": "t1", "t2w": "t2"},
        example="patient01_T2W.nii.gz + patient01_consensus_gt.nii.gz",
    ),
    "atlas": Cohort(
        "atlas", "ATLAS_v2", False, ("t1",),
        (r"(?:.*/)?(?P<sid>sub-r\d{3}s\d{3})_ses-\d+_space-MNI152NLin2009aSym_(?P<seq>T1w)" + NII,),
        (r"(?:.*/)?(?P<sid>sub-r\d{3}s\d{3})_ses-\d+_space-MNI152NLin2009aSym_label-L_desc-"
         r"T1lesion_mask" + NII,),
        val=66, test=589, expected=655, seq_alias={"t1w": "t1"},
        example="sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz + ..._label-L_desc-T1lesion_mask.nii.gz",
    ),
    "wmh": Cohort(
        "wmh", "WMH", False, ("t1",),
        (r"(?:.*/)?(?P<site>Utrecht|Singapore|GE3T|Amsterdam/GE3T|Amsterdam_GE3T)/(?P<num>\d+)"
         r"/pre/(?P<seq>T1|FLAIR)" + NII,),
        (r"(?:.*/)?(?P<site>Utrecht|Singapore|GE3T|Amsterdam/GE3T|Amsterdam_GE3T)/(?P<num>\d+)"
         r"/wmh" + NII,),
        label_values=(1,), val=15, test=45, expected=60,
        example="Utrecht/0/pre/T1.nii.gz + Utrecht/0/wmh.nii.gz",
    ),
    "custom": Cohort(
        "custom", "custom", False, ("t2",),
        (r"(?:.*/)?(?P<sid>[^/]+)/(?P<seq>t1|t2|flair)" + NII,
         r"(?:.*/)?(?P<sid>[^/]+?)_(?P<seq>t1|t2|flair)" + NII),
        (r"(?:.*/)?(?P<sid>[^/]+)/seg" + NII, r"(?:.*/)?(?P<sid>[^/]+?)_seg" + NII),
        example="<sid>/t2.nii.gz + <sid>/seg.nii.gz",
    ),
}


def get_cohort(name: str) -> Cohort:
    if name not in COHORTS:
        raise ValueError(f"unknown cohort {name!r}; known: {sorted(COHORTS)}")
    return COHORTS[name]


SET_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*(?:_[A-Za-z0-9-]+)*")


def with_set_name(cohort: Cohort, name: str) -> Cohort:
    """``cohort`` written as set ``name`` (``--name``): ``Data/Test/<name>``,
    ``<name>_{val,test}.csv``, records under ``Data/.prepare/<name>``.

    Only labelled cohorts: the healthy set's folder and split names are fixed by the
    layout (``Train/ixi``, ``IXI_*.csv``).
    """
    if cohort.healthy:
        raise ValueError(f"--name: the healthy cohort is always written as "
                         f"{HEALTHY_COHORT} (Data/Train/{HEALTHY_FOLDER}); drop --name")
    if not SET_NAME.fullmatch(name) or name.upper() == HEALTHY_COHORT:
        raise ValueError(f"--name {name!r}: letters, digits, '-' and '_' (starting with a "
                         f"letter, not ending in '_'), and not {HEALTHY_COHORT!r}")
    if name.lower().endswith(("_val", "_test", "_healthy")):
        raise ValueError(f"--name {name!r} must not end in _val/_test/_healthy (split suffixes)")
    return replace(cohort, set_name=name)


@dataclass
class SubjectFiles:
    """Raw files of one subject: ``images[seq]`` paths, ``seg`` path or None, ``mask`` path."""

    sid: str
    images: dict[str, Path] = field(default_factory=dict)
    seg: Path | None = None
    mask: Path | None = None


def _subject_id(match: re.Match) -> str:
    groups = match.groupdict()
    if groups.get("sid"):
        return groups["sid"]
    # WMH: ids are only unique per site
    return f"{groups['site'].replace('/', '_')}_{groups['num']}"


def _sequence(cohort: Cohort, raw_seq: str) -> str:
    seq = raw_seq.lower()
    return cohort.seq_alias.get(seq, seq)


def discover(raw: str | Path, cohort: Cohort) -> dict[str, SubjectFiles]:
    """Walk ``raw`` and group matching files by subject id (sorted by id)."""
    raw = Path(raw)
    if not raw.is_dir():
        raise FileNotFoundError(f"--raw {raw} is not a directory")
    images = [re.compile(p, re.IGNORECASE) for p in cohort.image_patterns]
    labels = [re.compile(p, re.IGNORECASE) for p in cohort.label_patterns]
    subjects: dict[str, SubjectFiles] = {}
    for path in _nifti_files(raw):
        rel = path.relative_to(raw).as_posix()
        for rx in labels:
            if m := rx.fullmatch(rel):
                subjects.setdefault(_subject_id(m), SubjectFiles(_subject_id(m))).seg = path
                break
        else:
            for rx in images:
                if m := rx.fullmatch(rel):
                    sub = subjects.setdefault(_subject_id(m), SubjectFiles(_subject_id(m)))
                    sub.images.setdefault(_sequence(cohort, m["seq"]), path)
                    break
    return dict(sorted(subjects.items()))


def _nifti_files(root: Path) -> list[Path]:
    """Every NIfTI under ``root``, following symlinked folders (downloads often are links)."""
    found = []
    for folder, _, names in os.walk(root, followlinks=True):
        found += [Path(folder) / n for n in names if re.search(NII, n, re.IGNORECASE)]
    return sorted(found)


def find_user_masks(mask_dir: str | Path | None, subjects: dict[str, SubjectFiles]) -> Path | None:
    """Attach per-subject masks from ``mask_dir`` (file name starts with the subject id).

    Returns the path of a cohort-wide mask when ``mask_dir`` is a single file (template space).
    """
    if mask_dir is None:
        return None
    mask_dir = Path(mask_dir)
    if mask_dir.is_file():
        return mask_dir
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"--mask-dir {mask_dir} does not exist")
    files = _nifti_files(mask_dir)
    for sid, sub in subjects.items():
        own = set(sub.images.values()) | {sub.seg}
        hits = [f for f in files if f.name.startswith(sid) and f not in own
                and not re.match(re.escape(sid) + r"[-_]\d", f.name)]
        if hits:  # a name saying "mask" wins (e.g. patient01_brainmask over patient01_T1WKS)
            sub.mask = min(hits, key=lambda f: ("mask" not in f.name.lower(), f.name))
    return None


def lesion_from_label(label: np.ndarray, cohort: Cohort) -> np.ndarray:
    """Raw label -> binary lesion mask (BraTS sub-regions fused; WMH class 1 only)."""
    if cohort.label_values is None:
        return (label > 0).astype(np.uint8)
    return np.isin(np.rint(label), cohort.label_values).astype(np.uint8)
