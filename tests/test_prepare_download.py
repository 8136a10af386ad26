"""``data download`` against a local HTTP server (127.0.0.1, started here) that serves small
archives made here, honours ``Range`` and can cut a transfer short or serve wrong bytes."""

from __future__ import annotations

import argparse
import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from benchmark.data.prepare.cohorts import COHORTS, discover
from benchmark.data.prepare.download import (
    DownloadError,
    RemoteFile,
    Source,
    configure_download_parser,
    download,
    download_main,
    fetch,
    file_digest,
    mslub_source,
)


class Files:
    """What the server serves, and what it saw."""

    def __init__(self):
        self.content: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}   # path -> bytes sent before closing (once)
        self.ranges: list[tuple[str, str | None]] = []


def _handler(files: Files):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep the test output clean
            pass

        def do_GET(self):
            body = files.content.get(self.path)
            requested = self.headers.get("Range")
            files.ranges.append((self.path, requested))
            if body is None:
                self.send_error(404)
                return
            start = int(requested.split("=")[1].rstrip("-")) if requested else 0
            if start >= len(body) and requested:
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if requested else 200)
            if requested:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            cut = files.cut_after.pop(self.path, None)
            self.wfile.write(body[start:cut] if cut is not None else body[start:])
            if cut is not None:
                self.close_connection = True

    return Handler


@pytest.fixture()
def server():
    files = Files()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield files, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _nifti_bytes(seed: int) -> bytes:
    arr = np.random.default_rng(seed).random((6, 7, 5)).astype(np.float32)
    return nib.Nifti1Image(arr, np.eye(4)).to_bytes()


def _ixi_tar(names: list[str]) -> bytes:
    """A tar laid out as IXI-T1.tar: flat IXI###-Site-####-T1.nii.gz members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i, name in enumerate(names):
            data = _nifti_bytes(i)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def test_download_unpacks_what_prepare_finds_and_resumes_a_cut_transfer(server, tmp_path):
    files, base = server
    names = ["IXI002-Guys-0828-T1.nii.gz", "IXI012-HH-1211-T1.nii.gz"]
    archive = _ixi_tar(names)
    files.content["/IXI-T1.tar"] = archive
    files.content["/IXI.xls"] = b"demographics"
    files.cut_after["/IXI-T1.tar"] = len(archive) // 3  # the first transfer breaks
    source = Source("IXI", (RemoteFile(f"{base}/IXI-T1.tar", "IXI-T1.tar", _md5(archive),
                                       unpack=True),
                            RemoteFile(f"{base}/IXI.xls", "IXI.xls", None)), "", "")
    folder = download(source, tmp_path, backoff=0, echo=lambda *_: None)
    # resumed where it broke: the second request asked for the rest only
    assert files.ranges[:2] == [("/IXI-T1.tar", None),
                                ("/IXI-T1.tar", f"bytes={len(archive) // 3}-")]
    assert (folder / "IXI-T1.tar").read_bytes() == archive
    found = discover(folder, COHORTS["ixi"])
    assert sorted(found) == ["IXI002-Guys-0828", "IXI012-HH-1211"]
    assert found["IXI012-HH-1211"].images["t1"].read_bytes() == _nifti_bytes(1)
    # no published checksum: recorded on first download, checked on later runs
    record = (folder / "checksums.json").read_text()
    assert hashlib.sha256(b"demographics").hexdigest() in record
    n = len(files.ranges)
    download(source, tmp_path, backoff=0, echo=lambda *_: None)
    assert len(files.ranges) == n  # complete and unpacked: nothing fetched again


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    files, base = server
    body = bytes(range(256)) * 40
    files.content["/f.bin"] = body
    (tmp_path / "f.bin.part").write_bytes(body[:1000])  # a run that was killed
    remote = RemoteFile(f"{base}/f.bin", "f.bin", "sha256:" + hashlib.sha256(body).hexdigest())
    fetch(remote, tmp_path / "f.bin", backoff=0, echo=lambda *_: None)
    assert files.ranges == [("/f.bin", "bytes=1000-")]
    assert (tmp_path / "f.bin").read_bytes() == body and not (tmp_path / "f.bin.part").exists()


def test_checksum_mismatch_names_the_file_and_leaves_nothing(server, tmp_path):
    files, base = server
    files.content["/IXI-T2.tar"] = b"not what was published"
    remote = RemoteFile(f"{base}/IXI-T2.tar", "IXI-T2.tar", _md5(b"the published archive"))
    with pytest.raises(DownloadError, match=r"IXI-T2.tar .*checksum mismatch, expected md5:"):
        fetch(remote, tmp_path / "IXI-T2.tar", backoff=0, echo=lambda *_: None)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_and_unreachable_server_are_clear_errors(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(RemoteFile(f"{base}/nope", "nope", None), tmp_path / "nope", backoff=0)
    dead = RemoteFile("http://127.0.0.1:9/x", "x", None)  # discard port: refused
    with pytest.raises(DownloadError, match="gave up after 2 attempts"):
        fetch(dead, tmp_path / "x", retries=1, backoff=0, echo=lambda *_: None)


def test_git_blob_checksum_matches_git():
    # `printf 'hello\n' | git hash-object --stdin`
    path = Path(__file__).parent / "_blob.tmp"
    try:
        path.write_bytes(b"hello\n")
        assert file_digest(path, "gitsha1:") == "gitsha1:ce013625030ba8dba906f756967f9e9ca394464a"
    finally:
        path.unlink()


def test_mslub_list_lands_where_prepare_looks(tmp_path):
    source = mslub_source()
    assert len(source.files) == 150 and all(f.checksum.startswith("gitsha1:")
                                            for f in source.files)
    for f in source.files:  # empty stand-ins at the download destinations
        (tmp_path / f.dest).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f.dest).touch()
    subjects = discover(tmp_path, COHORTS["mslub"])
    assert len(subjects) == 30
    assert sorted(subjects["patient07"].images) == ["flair", "t1", "t2"]
    assert subjects["patient07"].seg.name == "consensus_gt.nii.gz"


def test_cli_mirror_and_registration_text(server, tmp_path, capsys):
    files, base = server
    archive = _ixi_tar(["IXI002-Guys-0828-T2.nii.gz"])
    files.content["/IXI-T2.tar"] = archive
    files.content["/IXI.xls"] = b"x"
    parser = argparse.ArgumentParser()
    configure_download_parser(parser)
    args = parser.parse_args(["ixi", "--out", str(tmp_path), "--sequences", "t2",
                              "--mirror", base, "--no-progress"])
    # the real IXI-T2 checksum cannot match this small archive: refused, exit 1
    assert download_main(args) == 1
    assert "IXI-T2.tar" in capsys.readouterr().err
    assert download_main(parser.parse_args(["wmh", "--out", str(tmp_path)])) == 0
    text = capsys.readouterr().out
    assert "wmh.isi.uu.nl" in text and f"{tmp_path}/WMH/Utrecht/0/pre/T1.nii.gz" in text
