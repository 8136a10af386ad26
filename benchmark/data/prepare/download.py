"""Fetch the openly downloadable cohorts: ``python -m benchmark data download``.

    python -m benchmark data download ixi --out ~/raw          # IXI-T1.tar, IXI-T2.tar, IXI.xls
    python -m benchmark data download mslub --out ~/raw        # 30 patients, 150 files
    python -m benchmark data download brats21                  # prints where to register

Every file is checked against a published checksum (IXI: the MD5s torchio pins for the
two archives; MSLUB: the git blob SHA-1 of each file in the pinned commit of its public
mirror). A file without one (``IXI.xls``) gets its SHA-256 recorded in
``<out>/<cohort>/checksums.json`` on first download and checked on every later run.
A broken transfer resumes where it stopped (HTTP ``Range``), also across runs: the partial
file stays as ``<name>.part``. Archives are unpacked into the folder ``data prepare``
reads (``<out>/IXI``, ``<out>/MSLUB``), and a rerun skips what is complete.

BraTS21, ATLAS and WMH need a registration or a data-use agreement: the command prints
where to get them and where to put them.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import json
import os
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

CHUNK = 1 << 20
RETRIES = 5  # resumed attempts per file after a broken transfer
USER_AGENT = "uad-bench-download/1 (+https://github.com; python urllib)"


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its checksum; the message names it."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch. ``dest`` is relative to ``<out>/<folder>``; ``checksum`` is
    ``"md5:<hex>"``, ``"sha256:<hex>"``, ``"gitsha1:<hex>"`` (git blob id) or None;
    ``unpack``: a tar archive, extracted into the same folder."""

    url: str
    dest: str
    checksum: str | None
    unpack: bool = False


@dataclass(frozen=True)
class Source:
    folder: str                  # <out>/<folder>: what --raw points at for `data prepare`
    files: tuple[RemoteFile, ...]
    about: str                   # origin and licence, printed before downloading
    next_step: str               # the prepare command, printed at the end


# IXI: brain-development.org's download links (the archive names of its IXI page); MD5s
# as pinned by torchio.datasets.IXI.
IXI_BASE = "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI/"
IXI_MD5 = {"T1": "34901a0593b41dd19c1a1f746eac2d58", "T2": "e3140d78730ecdd32ba92da48c0a9aaa"}

# MSLUB (Lesjak et al. 2018, CC-BY): the lab's page (lit.fe.uni-lj.si/en/research/resources/
# 3D-MR-MS/) offers the archive through a web page, not a stable file URL; the same files
# are mirrored one by one in github.com/muschellij2/open_ms_data. Pinned commit, so every
# file has a known git blob id. "coregistered": T1W/T2W/FLAIR on the FLAIR grid (bias
# corrected, with skull, defaced), brain mask and consensus lesion mask on the same grid.
MSLUB_COMMIT = "65704901f60650824565aa5a4818611aa89716f4"
MSLUB_BASE = ("https://raw.githubusercontent.com/muschellij2/open_ms_data/"
              f"{MSLUB_COMMIT}/cross_sectional/coregistered/")
MSLUB_LIST = Path(__file__).with_name("mslub_files.csv")


def ixi_source(sequences: tuple[str, ...] = ("T1", "T2")) -> Source:
    files = tuple(RemoteFile(f"{IXI_BASE}IXI-{s}.tar", f"IXI-{s}.tar", f"md5:{IXI_MD5[s]}",
                             unpack=True) for s in sequences)
    files += (RemoteFile(f"{IXI_BASE}IXI.xls", "IXI.xls", None),)
    return Source(
        "IXI", files,
        "IXI (brain-development.org/ixi-dataset), CC BY-SA 3.0: ~600 healthy adults; "
        "IXI-T1.tar and IXI-T2.tar are ~4.5 GB each",
        "python -m benchmark data prepare --cohort ixi --raw {folder} --out OUT",
    )


def mslub_source() -> Source:
    with open(MSLUB_LIST, newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = tuple(RemoteFile(MSLUB_BASE + r["path"], _mslub_dest(r["path"]),
                             f"gitsha1:{r['git_blob_sha1']}") for r in rows)
    return Source(
        "MSLUB", files,
        "MSLUB (Lesjak et al., Neuroinformatics 2018; lit.fe.uni-lj.si), CC-BY: 30 MS "
        f"patients, co-registered T1W/T2W/FLAIR + brain and lesion masks, from the "
        f"open_ms_data mirror at commit {MSLUB_COMMIT[:10]}",
        "python -m benchmark data prepare --cohort mslub --raw {folder} --mask-dir {folder} "
        "--skull-strip mask --no-n4 --out OUT   # images are bias-corrected, masks given",
    )


def _mslub_dest(path: str) -> str:
    """``patient01/brainmask.nii.gz`` -> ``patient01/patient01_brainmask.nii.gz`` (a mask
    file whose name starts with the subject id is what ``--mask-dir`` matches); images and
    the lesion mask keep the names the MSLUB naming table expects."""
    sid, name = path.split("/")
    return f"{sid}/{sid}_brainmask.nii.gz" if name == "brainmask.nii.gz" else path


@dataclass(frozen=True)
class Registration:
    """A cohort behind a registration: where to get it, where to put it, what to run."""

    where: str
    put: str      # {out}: the --out folder
    prepare: str


REGISTRATION = {
    "brats21": Registration(
        where=("BraTS 2021 Task 1 training data (1251 cases): register for the "
               "RSNA-ASNR-MICCAI BraTS 2021 challenge on Synapse (synapse.org, 'BraTS 2021') "
               "and download RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021.tar (or its "
               "Kaggle mirror)."),
        put=("tar -xf RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021.tar -C "
             "{out}/BraTS21  -> {out}/BraTS21/BraTS2021_00000/"
             "BraTS2021_00000_{{t1,t2,flair,seg}}.nii.gz"),
        prepare="python -m benchmark data prepare --cohort brats21 --raw {out}/BraTS21 --out OUT",
    ),
    "atlas": Registration(
        where=("ATLAS v2.0 (Liew et al. 2022): accept the data-use agreement on the ATLAS "
               "page of INDI/NITRC (fcon_1000.projects.nitrc.org/indi/retro/atlas.html); you "
               "receive an encrypted archive (ATLAS_R2.0_encrypted.tar.gz) and its password."),
        put=("openssl aes-256-cbc -md sha256 -d -a -in ATLAS_R2.0_encrypted.tar.gz -out "
             "ATLAS_R2.0.tar.gz && tar -xzf ATLAS_R2.0.tar.gz -C {out}/ATLAS  -> "
             "{out}/ATLAS/.../sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz + "
             "..._label-L_desc-T1lesion_mask.nii.gz"),
        prepare="python -m benchmark data prepare --cohort atlas --raw {out}/ATLAS --out OUT",
    ),
    "wmh": Registration(
        where=("WMH Segmentation Challenge 2017 (Kuijf et al. 2019): request the training "
               "data on the challenge site (wmh.isi.uu.nl) or download it from its "
               "DataverseNL release (doi:10.34894/AECRSD) after accepting its terms."),
        put=("unzip the training archive into {out}/WMH  -> "
             "{out}/WMH/Utrecht/0/pre/T1.nii.gz and {out}/WMH/Utrecht/0/wmh.nii.gz "
             "(likewise Singapore/, GE3T/)"),
        prepare="python -m benchmark data prepare --cohort wmh --raw {out}/WMH --out OUT",
    ),
}
DOWNLOADABLE = ("ixi", "mslub")


# ---------------------------------------------------------------------------- checksums
def file_digest(path: Path, checksum: str) -> str:
    """The digest of ``path`` in the algorithm of ``checksum`` (``algo:hex``)."""
    algo = checksum.split(":", 1)[0]
    if algo == "gitsha1":  # git blob id: sha1 over "blob <size>\0" + content
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    elif algo in ("md5", "sha256"):
        digest = hashlib.new(algo)
    else:
        raise ValueError(f"unknown checksum algorithm {algo!r} (md5, sha256, gitsha1)")
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return f"{algo}:{digest.hexdigest()}"


# ---------------------------------------------------------------------------- transfer
def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _transfer(url: str, part: Path, progress, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (resuming at its size); raise on a short read."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the part is complete
            return
        raise
    with response:
        if offset and response.status != 206:  # the server ignored Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        bar = progress(total, offset, part.name[: -len(".part")])
        received = 0
        try:
            with open(part, "ab" if offset else "wb") as fh:
                while chunk := response.read(CHUNK):
                    fh.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    if length is not None and received < int(length):
        raise DownloadError(f"{url}: connection closed after {offset + received} of "
                            f"{total} bytes")


def fetch(remote: RemoteFile, dest: Path, *, progress=None, retries: int = RETRIES,
          timeout: float = 60.0, backoff: float = 1.0, known: dict[str, str] | None = None,
          echo=print) -> Path:
    """Download ``remote`` to ``dest`` (resuming a ``.part``), check it, return ``dest``.

    ``known``: recorded SHA-256s for files without a published checksum (updated in
    place). A checksum mismatch deletes the partial file and raises :class:`DownloadError`
    naming the file, the expected and the received digest; nothing is left as ``dest``.
    A broken transfer is resumed up to ``retries`` times, ``backoff * 2**attempt`` s apart.
    """
    progress = progress or _no_progress
    checksum = remote.checksum or (known or {}).get(dest.name)
    if dest.exists() and (checksum is None or file_digest(dest, checksum) == checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(remote.url, part, progress, timeout)
            break
        except (DownloadError, OSError, http.client.HTTPException) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code < 500:
                raise DownloadError(f"{remote.url}: HTTP {err.code} {err.reason}") from None
            if attempt == retries:
                raise DownloadError(f"{remote.url}: gave up after {retries + 1} attempts "
                                    f"({err}); rerun to resume from {part}") from None
            wait = min(backoff * 2 ** attempt, 60.0)
            echo(f"{dest.name}: {type(err).__name__}: {err}; resuming in {wait:g} s")
            time.sleep(wait)
    if checksum is not None:
        got = file_digest(part, checksum)
        if got != checksum:
            part.unlink()
            raise DownloadError(f"{dest.name} from {remote.url}: checksum mismatch, expected "
                                f"{checksum}, got {got}; the partial file was deleted, "
                                "rerun to download it again")
    elif known is not None:
        known[dest.name] = file_digest(part, "sha256:")
        echo(f"{dest.name}: no published checksum; recorded {known[dest.name]}")
    os.replace(part, dest)
    return dest


def unpack(archive: Path, into: Path) -> Path:
    """Extract a tar archive once (a marker file records it); refuses unsafe member paths."""
    marker = into / f".{archive.name}.unpacked"
    if marker.exists():
        return into
    into.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise DownloadError(f"cannot unpack {archive}: {err}") from None
    marker.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    return into


def _no_progress(total, initial, name):
    class _Bar:
        def update(self, n):
            pass

        def close(self):
            pass

    return _Bar()


def tqdm_progress(total, initial, name):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, file=sys.stderr, leave=False)


def download(source: Source, out: Path, *, progress=None, remove_archives: bool = False,
             timeout: float = 60.0, backoff: float = 1.0, echo=print) -> Path:
    """Fetch, check and unpack every file of ``source`` into ``out/<folder>``."""
    folder = Path(out) / source.folder
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "checksums.json"
    known = json.loads(record.read_text()) if record.is_file() else {}
    for i, remote in enumerate(source.files, 1):
        dest = folder / remote.dest
        marker = folder / f".{dest.name}.unpacked"
        if remote.unpack and marker.exists():
            echo(f"[{i}/{len(source.files)}] {remote.dest}: already unpacked")
            continue
        fetch(remote, dest, progress=progress, timeout=timeout, backoff=backoff, known=known,
              echo=echo)
        record.write_text(json.dumps(known, indent=1, sort_keys=True))
        if remote.unpack:
            unpack(dest, folder)
            if remove_archives:
                dest.unlink()
        echo(f"[{i}/{len(source.files)}] {remote.dest}: ok")
    return folder


def with_mirror(source: Source, mirror: str) -> Source:
    """The same files from another base URL (``<mirror>/<dest>``), same checksums."""
    base = mirror.rstrip("/") + "/"
    return replace(source, files=tuple(replace(f, url=base + f.dest) for f in source.files))


SOURCES: dict[str, Callable[[], Source]] = {"ixi": ixi_source, "mslub": mslub_source}


# ---------------------------------------------------------------------------- command
def configure_download_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m benchmark data download``."""
    parser.add_argument("cohort", choices=[*DOWNLOADABLE, *REGISTRATION],
                        help="ixi and mslub download; brats21, atlas and wmh print where "
                             "to register and what to put where")
    parser.add_argument("--out", type=Path, default=Path("raw"),
                        help="folder for the raw cohorts (default ./raw): OUT/IXI, OUT/MSLUB")
    parser.add_argument("--sequences", default="T1,T2",
                        help="IXI archives to fetch (T1,T2; default both)")
    parser.add_argument("--remove-archives", action="store_true",
                        help="delete each IXI tar after unpacking it")
    parser.add_argument("--mirror", default=None,
                        help="fetch the same files (same checksums) from MIRROR/<name>")
    parser.add_argument("--no-progress", action="store_true")


def download_main(args: argparse.Namespace) -> int:
    """0: all files present and checked; 1: a download failed; 2: bad arguments."""
    if args.cohort in REGISTRATION:
        reg, out = REGISTRATION[args.cohort], str(args.out)
        print(f"{args.cohort} cannot be downloaded automatically.\n1. {reg.where}\n"
              f"2. {reg.put.format(out=out)}\n3. {reg.prepare.format(out=out)}")
        return 0
    try:
        if args.cohort == "ixi":
            seqs = tuple(s.strip().upper() for s in args.sequences.split(",") if s.strip())
            bad = [s for s in seqs if s not in IXI_MD5]
            if bad or not seqs:
                raise ValueError(f"--sequences {args.sequences!r}: allowed T1, T2")
            source = ixi_source(seqs)
        else:
            source = SOURCES[args.cohort]()
        if args.mirror:
            source = with_mirror(source, args.mirror)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(source.about)
    try:
        folder = download(source, args.out, remove_archives=args.remove_archives,
                          progress=None if args.no_progress else tqdm_progress)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"done: {folder}\nnext: {source.next_step.format(folder=folder)}")
    return 0
