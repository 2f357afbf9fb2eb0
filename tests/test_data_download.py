"""Downloading the released data (gafnet.data.download and the CLI), entirely offline.

Every byte comes from an HTTP server started here on 127.0.0.1; a guard fails any test that tries to
reach another host. Google Drive is exercised through the real gdown code: its requests to
drive.google.com / drive.usercontent.google.com are rerouted by a transport adapter to the local
server, which plays Google's large-file confirmation page, quota page and file responses.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import torch
from requests.adapters import HTTPAdapter
from tqdm import tqdm

from gafnet.data import download as dl
from gafnet.data.__main__ import main
from gafnet.data.download import ASSETS, DownloadError, FetchOptions, fetch_url
from gafnet.data.verify import MANIFEST_NAME, check_gafnet
from gafnet.layout import expected_embedding_files, expected_pose_files

# --------------------------------------------------------------------------------------------------
# No network: only loopback connections


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """The suite's guard (tests/conftest.py) blocks every host but this one; here, no proxy and no redirect."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in (dl.GDRIVE_URL_ENV, dl.GAITGRAPH_RELEASE_ENV):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path) -> Path:
    """The project cache in tmp_path: downloads land in <cache>/downloads."""
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "downloads"


def test_the_guard_blocks_the_network():
    with pytest.raises(AssertionError, match="resolve"):
        socket.getaddrinfo("drive.google.com", 443)
    with pytest.raises(AssertionError, match="resolve"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1, never routed
    with socket.socket() as sock, pytest.raises(AssertionError, match="reach the network"):
        sock.connect(("192.0.2.1", 443))


# --------------------------------------------------------------------------------------------------
# A scriptable local HTTP server


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    ranges: bool = True  # honour "Range: bytes=N-"
    etag: str | None = None
    truncate_at: int | None = None  # announce the full length, send this many bytes, hang up
    stall_after: int | None = None  # send this many bytes, then wait (up to 60 s) before the rest
    redirect: str | None = None  # 302 to this path
    no_length: bool = False  # no Content-Length: the body ends when the connection closes


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that hangs up mid-body (gdown refusing a non-resumed answer) is expected, not news."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Route]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                path = urlsplit(self.path).path
                queue = server.routes.get(self.path) or server.routes.get(path)
                if not queue:
                    self.send_error(404, "Not Found")
                    return
                route = queue.pop(0) if len(queue) > 1 else queue[0]
                server.respond(self, route)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02})
        self.thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, *routes: Route) -> None:
        self.routes[path] = list(routes)

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def range_headers(self) -> list[str | None]:
        return [h.get("Range") for _, h in self.requests]

    @staticmethod
    def respond(handler: BaseHTTPRequestHandler, route: Route) -> None:
        if route.redirect is not None:
            handler.send_response(302)
            handler.send_header("Location", route.redirect)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body, status = route.body, route.status
        extra = dict(route.headers)
        if route.etag:
            extra["ETag"] = route.etag
        wanted = handler.headers.get("Range")
        if_range = handler.headers.get("If-Range")
        if status == 200 and route.ranges and wanted and (not if_range or if_range == route.etag):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(body)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            extra["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            body, status = body[start:], 206
        handler.send_response(status)
        handler.send_header("Content-Type", route.content_type)
        if not route.no_length:
            handler.send_header("Content-Length", str(len(body)))
        if route.ranges:
            handler.send_header("Accept-Ranges", "bytes")
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.end_headers()
        sent = body if route.truncate_at is None else body[: route.truncate_at]
        if route.stall_after is not None:
            handler.wfile.write(sent[: route.stall_after])
            handler.wfile.flush()
            time.sleep(60)
            sent = sent[route.stall_after:]
        handler.wfile.write(sent)
        handler.wfile.flush()
        if route.truncate_at is not None:
            handler.close_connection = True

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# Archives


GOOD_CSV = b"index,feat_0,feat_1,person_id,camera_id\n0,0.1,0.2,1,1\n"
POSE_CSV = b"image_name,x0,y0,c0\ncam1_person001_00319.png,1,2,0.9\n"


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def gafnet_zip(prefix: str = "", drop: int = 0, extra: dict[str, bytes] | None = None) -> bytes:
    """The released layout in small; ``drop`` leaves out that many pose files."""
    members = {f"{prefix}{p.as_posix()}": GOOD_CSV for p in expected_embedding_files(Path("embeddings"))}
    poses = expected_pose_files(Path("poses"))
    members.update({f"{prefix}{p.as_posix()}": POSE_CSV for p in poses[drop:]})
    members.update(extra or {})
    return zip_bytes(members)


def noise(n: int, seed: bytes = b"gafnet") -> bytes:
    """Incompressible but deterministic bytes, so an archive is larger than a read chunk."""
    out, block = bytearray(), seed
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


CASIA_ZIP = zip_bytes({
    "noise.bin": noise(100_000),
    "casia-b_pose_train_valid.csv": b"image_name,x0\nframes/001-nm-01-090/000042.jpg,1\n" * 500,
    "casia-b_pose_test.csv": b"image_name,x0\nframes/075-nm-05-090/000001.jpg,1\n" * 500,
})
def torch_bytes(obj, legacy: bool = False) -> bytes:
    """What torch.save writes: the zip container, or with ``legacy`` the pickle format of torch < 1.6."""
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


WEIGHTS = torch_bytes({"tcn.weight": torch.arange(4096, dtype=torch.float32)})  # ~17 kB: several read chunks
HTML_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
             b"<body>Too many users have viewed or downloaded this file recently.</body></html>")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


QUIET = FetchOptions(quiet=True, retries=0, timeout=(5.0, 5.0), chunk_size=4096)
MAX_ERROR_LINE = 300  # characters, prefix included; tmp paths in these tests are ~70 characters


def assert_one_short_line(err: str) -> None:
    """An error is one line, short, and not cut mid-word (no "..." placeholder)."""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert len(err) <= MAX_ERROR_LINE, f"{len(err)} characters: {err}"
    assert "..." not in err and "…" not in err, err


# --------------------------------------------------------------------------------------------------
# fetch_url: HTTP(S) with redirects and Range resume


def test_a_plain_download_lands_at_the_final_path_only(server, tmp_path):
    server.add("/w.pth", Route(body=WEIGHTS))
    dest = tmp_path / "cache" / "w.pth"
    fetch_url(server.url("/w.pth"), dest, ASSETS["gaitgraph-weights"], options=QUIET)
    assert dest.read_bytes() == WEIGHTS
    assert sorted(p.name for p in dest.parent.iterdir()) == ["w.pth"]  # no .part, no .part.json left
    assert server.range_headers() == [None]


def test_redirects_are_followed(server, tmp_path):
    server.add("/releases/download/v0.1/w.pth", Route(redirect="/objects/step"))
    server.add("/objects/step", Route(redirect="/objects/w.pth?signature=abc"))
    server.add("/objects/w.pth", Route(body=WEIGHTS))
    dest = tmp_path / "w.pth"
    fetch_url(server.url("/releases/download/v0.1/w.pth"), dest, ASSETS["gaitgraph-weights"], options=QUIET)
    assert dest.read_bytes() == WEIGHTS
    assert server.paths() == ["/releases/download/v0.1/w.pth", "/objects/step", "/objects/w.pth?signature=abc"]


def test_a_redirect_loop_is_one_clear_error(server, tmp_path):
    server.add("/a", Route(redirect="/b"))
    server.add("/b", Route(redirect="/a"))
    with pytest.raises(DownloadError, match="too many redirects"):
        fetch_url(server.url("/a"), tmp_path / "w.pth", ASSETS["gaitgraph-weights"], options=QUIET)
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_download_keeps_its_part_and_the_next_run_resumes_with_range(server, tmp_path):
    data = CASIA_ZIP
    server.add("/data.zip", Route(body=data, etag='"v1"', truncate_at=len(data) // 3), Route(body=data, etag='"v1"'))
    dest = tmp_path / "data.zip"
    with pytest.raises(DownloadError, match=r"(?s)after \d+ of \d+ bytes.*kept in .*data.zip.part.*resume"):
        fetch_url(server.url("/data.zip"), dest, ASSETS["casia-b"], options=QUIET)
    part = tmp_path / "data.zip.part"
    assert not dest.exists()
    kept = part.read_bytes()  # whole read chunks only: a chunk cut short is lost
    assert 0 < len(kept) <= len(data) // 3 and data.startswith(kept)
    fetch_url(server.url("/data.zip"), dest, ASSETS["casia-b"], options=QUIET)
    assert dest.read_bytes() == data
    assert not part.exists()
    assert server.range_headers() == [None, f"bytes={len(kept)}-"]
    assert server.requests[1][1].get("If-Range") == '"v1"'


def test_retries_resume_within_one_run(server, tmp_path):
    data = CASIA_ZIP
    server.add("/data.zip", Route(body=data, truncate_at=1000), Route(body=data))
    slept = []
    options = FetchOptions(quiet=True, retries=1, backoff=0.5, sleep=slept.append, timeout=(5.0, 5.0),
                           chunk_size=1000)
    fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=options)
    assert (tmp_path / "data.zip").read_bytes() == data
    assert slept == [0.5]
    assert server.range_headers() == [None, "bytes=1000-"]


def test_a_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = CASIA_ZIP
    server.add("/data.zip", Route(body=data, ranges=False))
    (tmp_path / "data.zip.part").write_bytes(b"stale bytes from elsewhere")
    fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=QUIET)
    assert (tmp_path / "data.zip").read_bytes() == data
    assert server.range_headers() == ["bytes=26-"]


def test_a_changed_remote_file_is_not_spliced(server, tmp_path):
    """If-Range with the old ETag: the server sends the whole new file, which replaces the partial one."""
    old_part = CASIA_ZIP[:500]
    new = zip_bytes({"casia-b_pose_test.csv": b"image_name,x0\nnew,1\n" * 300})
    (tmp_path / "data.zip.part").write_bytes(old_part)
    (tmp_path / "data.zip.part.json").write_text(json.dumps({"validator": '"old"'}))
    server.add("/data.zip", Route(body=new, etag='"new"'))
    fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=QUIET)
    assert (tmp_path / "data.zip").read_bytes() == new


def test_a_complete_part_answered_with_416_is_finished(server, tmp_path):
    server.add("/w.pth", Route(body=WEIGHTS))
    (tmp_path / "w.pth.part").write_bytes(WEIGHTS)
    fetch_url(server.url("/w.pth"), tmp_path / "w.pth", ASSETS["gaitgraph-weights"], options=QUIET)
    assert (tmp_path / "w.pth").read_bytes() == WEIGHTS
    assert server.range_headers() == [f"bytes={len(WEIGHTS)}-"]


def test_http_404_is_one_clear_error_and_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404 Not Found from http://127\.0\.0\.1:\d+/missing\.zip"):
        fetch_url(server.url("/missing.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=QUIET)
    assert list(tmp_path.iterdir()) == []


def test_http_500_is_retried_then_reported(server, tmp_path):
    server.add("/data.zip", Route(status=500, body=b"oops", content_type="text/plain"))
    slept = []
    options = FetchOptions(quiet=True, retries=2, backoff=1.0, sleep=slept.append)
    with pytest.raises(DownloadError, match="HTTP 500"):
        fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=options)
    assert slept == [1.0, 2.0] and len(server.requests) == 3
    assert not (tmp_path / "data.zip").exists() and not (tmp_path / "data.zip.part").exists()


def test_an_html_page_instead_of_a_zip_is_refused(server, tmp_path):
    server.add("/data.zip", Route(body=HTML_PAGE, content_type="text/html; charset=utf-8"))
    with pytest.raises(DownloadError, match="sent an HTML page titled 'Google Drive - Quota exceeded'"):
        fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=QUIET)
    assert list(tmp_path.iterdir()) == []


def test_an_html_page_with_a_binary_content_type_is_refused_by_its_bytes(server, tmp_path):
    server.add("/data.zip", Route(body=HTML_PAGE))
    with pytest.raises(DownloadError, match="it is an HTML page titled 'Google Drive - Quota exceeded'"):
        fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=QUIET)
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_digest_is_refused_and_nothing_is_kept(server, tmp_path):
    server.add("/data.zip", Route(body=CASIA_ZIP))
    wrong = "0" * 64
    with pytest.raises(DownloadError, match=f"its SHA-256 is {sha(CASIA_ZIP)}, but {wrong} was expected"):
        fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], sha256=wrong, options=QUIET)
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_size_is_refused(server, tmp_path):
    server.add("/data.zip", Route(body=CASIA_ZIP))
    with pytest.raises(DownloadError, match=f"it has {len(CASIA_ZIP)} bytes, 123 expected"):
        fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], expected_size=123,
                  options=QUIET)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_connection_is_one_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/data.zip"
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch_url(url, tmp_path / "data.zip", ASSETS["casia-b"], options=QUIET)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# The command line: GitHub release assets (casia-b, gaitgraph-weights) through $GAFNET_GAITGRAPH_RELEASE_URL


def run_cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return exc.code


@pytest.fixture
def release(server, monkeypatch):
    """GaitGraph's release v0.1 on the local server, behind GitHub-like redirects."""
    server.add("/tteepe/GaitGraph/releases/download/v0.1/data.zip", Route(redirect="/assets/data.zip"))
    server.add("/assets/data.zip", Route(body=CASIA_ZIP, etag='"casia"'))
    name = "gaitgraph_resgcn-n39-r8_coco_seq_60.pth"
    server.add(f"/tteepe/GaitGraph/releases/download/v0.1/{name}", Route(redirect=f"/assets/{name}"))
    server.add(f"/assets/{name}", Route(body=WEIGHTS))
    monkeypatch.setenv(dl.GAITGRAPH_RELEASE_ENV, server.url("/tteepe/GaitGraph/releases/download/v0.1"))
    return server


def test_cli_downloads_casia_b_prints_the_digest_and_is_idempotent(release, tmp_path, capsys, cache):
    assert run_cli("download", "casia-b", "--root", str(tmp_path), "--quiet") == 0
    dest = tmp_path / "data" / "casia-b"
    assert sorted(p.name for p in dest.iterdir()) == [MANIFEST_NAME, "casia-b_pose_test.csv",
                                                     "casia-b_pose_train_valid.csv", "noise.bin"]
    manifest = json.loads((dest / MANIFEST_NAME).read_text())
    assert manifest["files"]["casia-b_pose_test.csv"] == (dest / "casia-b_pose_test.csv").stat().st_size
    out = capsys.readouterr().out
    assert f"SHA-256 {sha(CASIA_ZIP)}" in out
    assert f"python -m gafnet.data download casia-b --sha256 {sha(CASIA_ZIP)}" in out
    assert (cache / "gaitgraph-casia-b-data.zip").read_bytes() == CASIA_ZIP
    assert not list(tmp_path.rglob(".gafnet-unpack-*"))

    count = len(release.requests)
    assert run_cli("download", "casia-b", "--root", str(tmp_path)) == 0
    assert "already complete" in capsys.readouterr().out
    assert len(release.requests) == count  # nothing downloaded again


def test_cli_weights_with_a_pinned_digest(release, tmp_path, capsys):
    assert run_cli("download", "gaitgraph-weights", "--root", str(tmp_path), "--quiet",
                   "--sha256", sha(WEIGHTS).upper()) == 0
    assert (tmp_path / "weights" / "gaitgraph_resgcn-n39-r8_coco_seq_60.pth").read_bytes() == WEIGHTS


def test_cli_wrong_digest_exits_non_zero_with_one_message(release, tmp_path, capsys, cache):
    assert run_cli("download", "gaitgraph-weights", "--root", str(tmp_path), "--quiet", "--sha256", "ab" * 32) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m gafnet.data: error: the download of gaitgraph_resgcn-n39-r8_coco_seq_60.pth")
    assert "was rejected and deleted: its SHA-256 is" in err
    assert not (tmp_path / "weights").exists()
    assert list(cache.iterdir()) == []


def test_cli_refuses_to_overwrite_different_weights_without_force(release, tmp_path, capsys):
    mine = tmp_path / "weights" / "gaitgraph_resgcn-n39-r8_coco_seq_60.pth"
    mine.parent.mkdir()
    own = torch_bytes({"my": torch.ones(3)}, legacy=True)
    mine.write_bytes(own)
    assert run_cli("download", "gaitgraph-weights", "--root", str(tmp_path), "--quiet") == 0  # valid: kept
    assert mine.read_bytes() == own
    assert run_cli("download", "gaitgraph-weights", "--root", str(tmp_path), "--quiet", "--sha256", sha(WEIGHTS)) == 2
    assert "--force" in capsys.readouterr().err
    assert mine.read_bytes() == own
    assert run_cli("download", "gaitgraph-weights", "--root", str(tmp_path), "--quiet", "--sha256", sha(WEIGHTS),
                   "--force") == 0
    assert mine.read_bytes() == WEIGHTS


def test_cli_http_404_and_500_exit_non_zero(server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(dl.GAITGRAPH_RELEASE_ENV, server.url("/nothing-here"))
    assert run_cli("download", "casia-b", "--root", str(tmp_path), "--quiet") == 2
    assert "HTTP 404" in capsys.readouterr().err
    server.add("/broken/data.zip", Route(status=500, body=b"", content_type="text/plain"))
    assert run_cli("download", "casia-b", "--root", str(tmp_path), "--quiet", "--retries", "0",
                   "--url", server.url("/broken/data.zip")) == 2
    assert "HTTP 500" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_cli_network_failure_exits_non_zero(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(dl.GAITGRAPH_RELEASE_ENV, f"http://127.0.0.1:{free_port()}/v0.1")
    assert run_cli("download", "gaitgraph-weights", "--root", str(tmp_path), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert "cannot connect" in err and err.count("\n") == 1
    assert not (tmp_path / "weights").exists()


def test_cli_casia_b_archive_without_csvs_is_not_installed(server, tmp_path, capsys):
    server.add("/data.zip", Route(body=zip_bytes({"readme.txt": b"no poses here"})))
    assert run_cli("download", "casia-b", "--root", str(tmp_path), "--quiet", "--url", server.url("/data.zip")) == 2
    assert "does not hold well-formed CSV files (found: readme.txt)" in capsys.readouterr().err
    assert not (tmp_path / "data" / "casia-b").exists()


# --------------------------------------------------------------------------------------------------
# The command line: the GAF-Net zip given by hand (--from-zip)


def test_from_zip_installs_the_release_and_verify_agrees(tmp_path, capsys):
    archive = tmp_path / "gaf-net-data.zip"
    archive.write_bytes(gafnet_zip(prefix="gaf-net-data/"))  # wrapped in one folder: unwrapped
    root = tmp_path / "repo"
    (root / "embeddings").mkdir(parents=True)
    (root / "embeddings" / "README.md").write_text("what goes here")
    assert run_cli("verify", "--root", str(root)) == 1
    capsys.readouterr()
    assert run_cli("download", "gafnet", "--root", str(root), "--from-zip", str(archive)) == 0
    out = capsys.readouterr().out
    assert "installed 140 files" in out and f"SHA-256 {sha(archive.read_bytes())}" in out
    assert all(r.ok for r in check_gafnet(root))
    assert (root / "embeddings" / "README.md").read_text() == "what goes here"
    assert run_cli("verify", "--root", str(root)) == 0
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_from_zip_is_idempotent_and_force_reinstalls(tmp_path, capsys):
    archive = tmp_path / "gaf-net-data.zip"
    archive.write_bytes(gafnet_zip())
    root = tmp_path / "repo"
    assert run_cli("download", "gafnet", "--root", str(root), "--from-zip", str(archive), "--quiet") == 0
    probe = root / "poses" / "splits_pit" / "train_split0.csv"
    mtime = probe.stat().st_mtime_ns
    assert run_cli("download", "--root", str(root), "--from-zip", str(archive)) == 0
    assert "already complete" in capsys.readouterr().out
    assert probe.stat().st_mtime_ns == mtime
    probe.write_bytes(b"")  # damaged: the tree is no longer valid
    assert run_cli("download", "gafnet", "--root", str(root), "--from-zip", str(archive), "--quiet") == 2
    err = capsys.readouterr().err
    assert "1 existing file(s) differ" in err and str(probe) in err
    assert probe.read_bytes() == b""
    assert run_cli("download", "gafnet", "--root", str(root), "--from-zip", str(archive), "--quiet", "--force") == 0
    assert probe.read_bytes() == POSE_CSV


def test_from_zip_with_the_wrong_layout_installs_nothing(tmp_path, capsys):
    archive = tmp_path / "gaf-net-data.zip"
    archive.write_bytes(gafnet_zip(drop=3))
    root = tmp_path / "repo"
    assert run_cli("download", "gafnet", "--root", str(root), "--from-zip", str(archive), "--quiet") == 2
    err = capsys.readouterr().err
    assert "does not hold the released layout" in err
    assert "gaf-net-data.zip:poses/splits_pit/train_split0.csv" in err
    assert ".gafnet-unpack" not in err
    assert not (root / "embeddings").exists() and not (root / "poses").exists()


def test_from_zip_with_another_archive_says_what_it_found(tmp_path, capsys):
    archive = tmp_path / "other.zip"
    archive.write_bytes(zip_bytes({"a/x.txt": b"1", "b/y.txt": b"2"}))
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "repo"), "--from-zip", str(archive)) == 2
    assert "found: a, b" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"embeddings/../../evil.csv": b"x"}, "points outside"),
        ({"/tmp/evil.csv": b"x"}, "absolute path"),
    ],
)
def test_from_zip_refuses_a_zip_slip_archive(tmp_path, capsys, members, message):
    archive = tmp_path / "gaf-net-data.zip"
    archive.write_bytes(zip_bytes({"embeddings/ilids/pit/query_split0.csv": GOOD_CSV, **members}))
    root = tmp_path / "repo"
    assert run_cli("download", "gafnet", "--root", str(root), "--from-zip", str(archive), "--quiet") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "evil.csv").exists()
    assert list(root.iterdir()) == []


def test_from_zip_refuses_a_symlink_member(tmp_path, capsys):
    info = zipfile.ZipInfo("embeddings/ilids/pit/query_split0.csv")
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, b"/etc/passwd")
    (tmp_path / "gaf-net-data.zip").write_bytes(buffer.getvalue())
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "repo"), "--quiet",
                   "--from-zip", str(tmp_path / "gaf-net-data.zip")) == 2
    assert "symbolic link" in capsys.readouterr().err


def test_from_zip_refuses_an_oversized_archive(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(ASSETS, "gafnet", dl.Asset(**{**ASSETS["gafnet"].__dict__,
                                                      "unzip_limits": dl.UnzipLimits(max_total_bytes=1_000)}))
    archive = tmp_path / "gaf-net-data.zip"
    archive.write_bytes(gafnet_zip())
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "repo"), "--from-zip", str(archive)) == 2
    assert "exceeds the cap" in capsys.readouterr().err


def test_from_zip_refuses_truncated_html_and_mismatched_files(tmp_path, capsys):
    full = gafnet_zip()
    root = str(tmp_path / "repo")
    (tmp_path / "cut.zip").write_bytes(full[: len(full) - 100])
    assert run_cli("download", "gafnet", "--root", root, "--from-zip", str(tmp_path / "cut.zip")) == 2
    assert "not a complete zip archive" in capsys.readouterr().err
    (tmp_path / "page.zip").write_bytes(HTML_PAGE)
    assert run_cli("download", "gafnet", "--root", root, "--from-zip", str(tmp_path / "page.zip")) == 2
    assert "HTML page titled 'Google Drive - Quota exceeded'" in capsys.readouterr().err
    (tmp_path / "good.zip").write_bytes(full)
    assert run_cli("download", "gafnet", "--root", root, "--from-zip", str(tmp_path / "good.zip"),
                   "--sha256", "1" * 64) == 2
    assert "its SHA-256 is" in capsys.readouterr().err
    assert run_cli("download", "gafnet", "--root", root, "--from-zip", str(tmp_path / "absent.zip")) == 2
    assert "absent.zip: file not found" in capsys.readouterr().err
    assert not Path(root).exists() or list(Path(root).iterdir()) == []


def test_all_goes_on_with_the_github_assets_when_google_drive_fails(release, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(dl.GDRIVE_URL_ENV, release.url("/no-such-drive?id={id}"))
    monkeypatch.setattr(importlib.import_module("gdown.download"), "DEFAULT_COOKIES_FILE",
                        str(tmp_path / "gdown-cookies.txt"))
    assert run_cli("download", "all", "--root", str(tmp_path), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("python -m gafnet.data: error: gafnet: 127.0.0.1 answered HTTP 404 for gaf-net-data.zip")
    assert err[-1] == "python -m gafnet.data: error: not complete: gafnet (see above); done: casia-b, gaitgraph-weights"
    assert (tmp_path / "weights" / "gaitgraph_resgcn-n39-r8_coco_seq_60.pth").read_bytes() == WEIGHTS
    assert (tmp_path / "data" / "casia-b" / "casia-b_pose_test.csv").exists()


def test_the_progress_bar_shows_unless_quiet(server, tmp_path, capsys):
    server.add("/w.pth", Route(body=WEIGHTS))
    fetch_url(server.url("/w.pth"), tmp_path / "w.pth", ASSETS["gaitgraph-weights"],
              options=FetchOptions(retries=0, chunk_size=4096))
    err = capsys.readouterr().err
    size = tqdm.format_sizeof(len(WEIGHTS), divisor=1024)
    assert "w.pth: 100%" in err and f"{size}/{size}" in err


def test_single_file_options_need_a_single_target(tmp_path, capsys):
    assert run_cli("download", "all", "--root", str(tmp_path), "--from-zip", "x.zip") == 2
    assert "--from-zip apply to one file" in capsys.readouterr().err
    assert run_cli("download", "gafnet", "--root", str(tmp_path), "--sha256", "xyz") == 2
    assert "not a SHA-256 digest" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Google Drive through gdown, up to the HTTP boundary


class _ToLocalServer(HTTPAdapter):
    """Sends https://<google host>/<path> to http://127.0.0.1:<port>/<google host>/<path>."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        request.url = f"{self.base}/{parts.hostname}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        return super().send(request, **kwargs)


GDRIVE_HOSTS = ("drive.google.com", "drive.usercontent.google.com", "docs.google.com")
FILE_ID = dl.GAFNET_GDRIVE_ID


@pytest.fixture
def google(server, monkeypatch, tmp_path):
    """gdown's sessions talk to the local server; gdown's cookie file lives in tmp_path."""
    real_session = requests.session

    def session_factory():
        session = real_session()
        for host in GDRIVE_HOSTS:
            session.mount(f"https://{host}/", _ToLocalServer(server.base))
        return session

    monkeypatch.setattr(requests, "session", session_factory)
    monkeypatch.setattr(importlib.import_module("gdown.download"), "DEFAULT_COOKIES_FILE",
                        str(tmp_path / "gdown-cookies.txt"))
    return server


def confirmation_page(uuid: str = "5d1e") -> bytes:
    """Google Drive's "can't scan this file for viruses" page: a form whose action downloads the file.
    (gdown reads the form from a single line.)"""
    form = (f'<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
            f'<input type="hidden" name="id" value="{FILE_ID}"><input type="hidden" name="export" value="download">'
            f'<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="{uuid}"></form>')
    return ("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>\n"
            f"{form}\n</body></html>").encode()


def gdrive_file(body: bytes, **kwargs) -> Route:
    return Route(body=body, headers={"Content-Disposition": 'attachment; filename="gaf-net-data.zip"'},
                 content_type="application/zip", **kwargs)


def test_gdrive_large_file_confirmation_is_handled(google, tmp_path, capsys, cache):
    body = gafnet_zip()
    google.add("/drive.google.com/uc", Route(body=confirmation_page(), content_type="text/html; charset=utf-8"))
    google.add("/drive.usercontent.google.com/download", gdrive_file(body))
    root = tmp_path / "repo"
    assert run_cli("download", "gafnet", "--root", str(root), "--quiet", "--retries", "0") == 0
    assert all(r.ok for r in check_gafnet(root))
    paths = google.paths()
    assert paths[0] == f"/drive.google.com/uc?id={FILE_ID}"
    assert paths[1].startswith("/drive.usercontent.google.com/download?") and "confirm=t" in paths[1]
    assert (cache / "gaf-net-data.zip").read_bytes() == body
    assert list((cache / ".incoming").iterdir()) == []
    assert f"--sha256 {sha(body)}" in capsys.readouterr().out


def test_gdrive_quota_page_points_to_from_zip(google, tmp_path, capsys, cache):
    quota = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>\n"
             b'<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. '
             b"Please try accessing the file again later.</p>\n</body></html>")
    google.add("/drive.google.com/uc", Route(body=quota, content_type="text/html; charset=utf-8"))
    root = tmp_path / "repo"
    assert run_cli("download", "gafnet", "--root", str(root), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert err == ("python -m gafnet.data: error: Google Drive refused to serve gaf-net-data.zip (its download quota "
                   f"is exceeded); download it in a browser from https://drive.google.com/file/d/{FILE_ID}/view and "
                   "run: python -m gafnet.data download gafnet --from-zip FILE\n")
    assert "kept" not in err  # nothing was received, so nothing is said to be kept
    assert not (root / "embeddings").exists()
    assert not (cache / "gaf-net-data.zip").exists()


def test_gdrive_interrupted_download_resumes_with_range(google, tmp_path, capsys, cache):
    body = gafnet_zip(extra={"noise.bin": noise(1_500_000)})  # gdown writes in 512 kB chunks
    google.add("/drive.google.com/uc", Route(body=confirmation_page(), content_type="text/html"))
    google.add("/drive.usercontent.google.com/download",
               gdrive_file(body, etag='"g1"', truncate_at=len(body) // 2), gdrive_file(body, etag='"g1"'))
    root = tmp_path / "repo"
    assert run_cli("download", "gafnet", "--root", str(root), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert not (cache / "gaf-net-data.zip").exists()
    (partial,) = (cache / ".incoming").glob("*.part")
    kept = partial.stat().st_size
    assert 0 < kept <= len(body) // 2
    assert_one_short_line(err)
    assert err.endswith(f"gaf-net-data.zip: connection lost after {kept} of {len(body)} bytes; the {kept} bytes received are "
                        f"kept in {cache / '.incoming'}: run the same command to resume\n")
    assert run_cli("download", "gafnet", "--root", str(root), "--quiet", "--retries", "0") == 0
    assert f"bytes={kept}-" in google.range_headers()
    assert (cache / "gaf-net-data.zip").read_bytes() == body
    assert all(r.ok for r in check_gafnet(root))


def test_gdrive_http_errors_are_reported(google, tmp_path, capsys):
    """gdown turns any Google answer that is not the file (404, 500, an error page) into "cannot retrieve"."""
    google.add("/drive.google.com/uc", Route(body=confirmation_page(), content_type="text/html"))
    assert run_cli("download", "gafnet", "--root", str(tmp_path), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert "Google Drive refused to serve gaf-net-data.zip (no download link" in err
    assert "--from-zip FILE" in err and "kept" not in err
    google.add("/drive.google.com/uc", Route(status=500, body=b"boom", content_type="text/plain"))
    assert run_cli("download", "gafnet", "--root", str(tmp_path), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert "Google Drive refused to serve gaf-net-data.zip" in err and "--from-zip FILE" in err
    assert not (tmp_path / "embeddings").exists()


def test_gdrive_mirror_http_404_is_reported(server, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(importlib.import_module("gdown.download"), "DEFAULT_COOKIES_FILE",
                        str(tmp_path / "gdown-cookies.txt"))
    monkeypatch.setenv(dl.GDRIVE_URL_ENV, server.url("/mirror/missing.zip?id={id}"))
    assert run_cli("download", "gafnet", "--root", str(tmp_path), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert "127.0.0.1 answered HTTP 404 for gaf-net-data.zip; download it in a browser from" in err
    assert err.endswith("--from-zip FILE\n")


def test_gdrive_file_that_is_an_html_page_is_rejected(google, tmp_path, capsys, cache):
    google.add("/drive.google.com/uc", gdrive_file(HTML_PAGE))
    assert run_cli("download", "gafnet", "--root", str(tmp_path), "--quiet", "--retries", "0") == 2
    assert "it is an HTML page titled 'Google Drive - Quota exceeded'" in capsys.readouterr().err
    assert not (cache / "gaf-net-data.zip").exists() and list((cache / ".incoming").iterdir()) == []


def test_gdrive_cut_transfer_without_content_length_is_rejected(google, tmp_path, capsys, cache):
    """Nothing announces the size, so neither gdown nor HTTP can tell; the missing zip directory does."""
    body = gafnet_zip()
    google.add("/drive.google.com/uc", gdrive_file(body, no_length=True, truncate_at=len(body) // 2))
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "repo"), "--quiet", "--retries", "0") == 2
    assert "it is not a complete zip archive" in capsys.readouterr().err
    assert not (cache / "gaf-net-data.zip").exists() and list((cache / ".incoming").iterdir()) == []


def test_gdrive_url_override_reaches_a_mirror_through_gdown(server, monkeypatch, tmp_path):
    """$GAFNET_GDRIVE_URL pointing elsewhere (a mirror, here the local server): gdown fetches it as a plain URL."""
    body = gafnet_zip()
    server.add("/mirror/gaf-net-data.zip", Route(body=body))
    monkeypatch.setattr(importlib.import_module("gdown.download"), "DEFAULT_COOKIES_FILE",
                        str(tmp_path / "gdown-cookies.txt"))
    monkeypatch.setenv(dl.GDRIVE_URL_ENV, server.url("/mirror/gaf-net-data.zip?id={id}"))
    assert run_cli("download", "gafnet", "--root", str(tmp_path), "--quiet", "--retries", "0") == 0
    assert server.paths() == [f"/mirror/gaf-net-data.zip?id={FILE_ID}"]
    assert all(r.ok for r in check_gafnet(tmp_path))


def test_gdrive_network_failure_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(importlib.import_module("gdown.download"), "DEFAULT_COOKIES_FILE",
                        str(tmp_path / "gdown-cookies.txt"))
    monkeypatch.setenv(dl.GDRIVE_URL_ENV, f"http://127.0.0.1:{free_port()}/uc?id={{id}}")
    assert run_cli("download", "gafnet", "--root", str(tmp_path), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert err.startswith("python -m gafnet.data: error: gaf-net-data.zip: cannot connect to 127.0.0.1 (Connection "
                          "refused); download it in a browser from https://drive.google.com/file/d/")
    assert not (tmp_path / "embeddings").exists()


# --------------------------------------------------------------------------------------------------
# Error lines: short, true, with the fallback (issue 9 item 9)


def test_a_refused_connection_names_nothing_kept_and_the_fallback(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(dl.GAITGRAPH_RELEASE_ENV, f"http://127.0.0.1:{free_port()}/v0.1")
    assert run_cli("download", "casia-b", "--root", str(tmp_path), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert err == ("python -m gafnet.data: error: gaitgraph-casia-b-data.zip: cannot connect to "
                   "127.0.0.1 (Connection refused); download it in a browser from "
                   f"{dl.DEFAULT_GAITGRAPH_RELEASE_URL}/data.zip and run: python -m gafnet.data download casia-b "
                   "--from-zip FILE\n")


def test_a_cut_transfer_says_exactly_how_many_bytes_were_kept(server, tmp_path, capsys, cache):
    data = CASIA_ZIP
    server.add("/data.zip", Route(body=data, truncate_at=len(data) - 1000))  # one 64 kB chunk arrives whole
    assert run_cli("download", "casia-b", "--root", str(tmp_path), "--quiet", "--retries", "0",
                   "--url", server.url("/data.zip")) == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    part = cache / "gaitgraph-casia-b-data.zip.part"
    kept = part.stat().st_size
    assert kept == 64 * 1024
    assert err == (f"python -m gafnet.data: error: gaitgraph-casia-b-data.zip: connection lost after {kept} of "
                   f"{len(data)} bytes; the {kept} bytes received are kept in {part}: run the same command to resume\n")


def test_a_transfer_cut_before_a_whole_chunk_keeps_nothing_and_says_so(server, tmp_path, capsys, cache):
    server.add("/data.zip", Route(body=CASIA_ZIP, truncate_at=1000))
    assert run_cli("download", "casia-b", "--root", str(tmp_path), "--quiet", "--retries", "0",
                   "--url", server.url("/data.zip")) == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert "kept" not in err and err.endswith(f"from {server.url('/data.zip')} and run: python -m gafnet.data "
                                              "download casia-b --from-zip FILE\n")
    assert list(cache.iterdir()) == []  # no empty .part, no .part.json


def test_gdrive_dying_before_the_first_byte_says_nothing_was_kept(google, tmp_path, capsys, cache):
    """The review's case: the message said bytes were kept in .incoming when it was empty."""
    google.add("/drive.google.com/uc", Route(body=confirmation_page(), content_type="text/html"))
    google.add("/drive.usercontent.google.com/download", gdrive_file(gafnet_zip(), truncate_at=0))
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "repo"), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert "kept" not in err
    assert err.endswith(f"/file/d/{FILE_ID}/view and run: python -m gafnet.data download gafnet --from-zip FILE\n")
    assert list((cache / ".incoming").iterdir()) == []


def test_gdrive_partial_the_server_will_not_resume_is_discarded_not_kept_forever(google, tmp_path, capsys, cache):
    body = gafnet_zip(extra={"noise.bin": noise(1_500_000)})
    google.add("/drive.google.com/uc", Route(body=confirmation_page(), content_type="text/html"))
    google.add("/drive.usercontent.google.com/download",
               gdrive_file(body, etag='"g1"', truncate_at=len(body) // 2),
               gdrive_file(body, etag='"g2"', ranges=False))  # the file changed: the whole new file comes back
    root = tmp_path / "repo"
    assert run_cli("download", "gafnet", "--root", str(root), "--quiet", "--retries", "0") == 2
    capsys.readouterr()
    assert run_cli("download", "gafnet", "--root", str(root), "--quiet", "--retries", "0") == 2
    err = capsys.readouterr().err
    assert_one_short_line(err)
    assert "could not resume the partial gaf-net-data.zip, so it was discarded" in err
    assert list((cache / ".incoming").iterdir()) == []
    assert run_cli("download", "gafnet", "--root", str(root), "--quiet", "--retries", "0") == 0  # starts over


def test_several_gdown_partials_do_not_block_the_resume(google, tmp_path, cache):
    body = gafnet_zip(extra={"noise.bin": noise(1_500_000)})
    google.add("/drive.google.com/uc", Route(body=confirmation_page(), content_type="text/html"))
    google.add("/drive.usercontent.google.com/download", gdrive_file(body, etag='"g1"'))
    incoming = cache / ".incoming"
    incoming.mkdir(parents=True)
    (incoming / "gaf-net-data.zipabcd1234.part").write_bytes(body[:1000])
    (incoming / "gaf-net-data.zipwxyz9876.part").write_bytes(body[:600_000])
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "repo"), "--quiet", "--retries", "0") == 0
    assert (cache / "gaf-net-data.zip").read_bytes() == body
    assert "bytes=600000-" in google.range_headers()


def test_the_retry_wait_stops_doubling_at_a_minute(server, tmp_path):
    server.add("/data.zip", Route(status=503, body=b"busy", content_type="text/plain"))
    slept = []
    options = FetchOptions(quiet=True, retries=4, backoff=20.0, sleep=slept.append)
    with pytest.raises(DownloadError, match="HTTP 503"):
        fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=options)
    assert slept == [20.0, 40.0, 60.0, 60.0]


def test_a_long_signed_redirect_url_is_not_printed_in_full(server, tmp_path):
    signed = "/objects/data.zip?" + "&".join(f"X-Amz-Param{i}={'a' * 40}" for i in range(12))
    server.add("/data.zip", Route(redirect=signed))
    server.add("/objects/data.zip", Route(status=403, body=b"expired", content_type="text/plain"))
    with pytest.raises(DownloadError) as info:
        fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=QUIET)
    message = str(info.value)
    assert message.startswith(f"HTTP 403 Forbidden from {server.url('/objects/data.zip')}; check the URL, or download")
    assert "X-Amz" not in message and len(message) < 300


# --------------------------------------------------------------------------------------------------
# --cache_dir: one spelling (the other accepted), one meaning: the project cache root (issue 9 items 10, 22)


@pytest.mark.parametrize("flag", ["--cache_dir", "--cache-dir"])
def test_cache_dir_is_the_project_cache_with_downloads_under_it(release, tmp_path, flag):
    chosen = tmp_path / "elsewhere"
    assert run_cli("download", "gaitgraph-weights", "--root", str(tmp_path / "repo"), "--quiet",
                   flag, str(chosen)) == 0
    assert (chosen / "downloads" / "gaitgraph_resgcn-n39-r8_coco_seq_60.pth").read_bytes() == WEIGHTS
    assert sorted(p.name for p in chosen.iterdir()) == ["downloads"]


def test_the_default_location_comes_from_gafnet_cache(monkeypatch, tmp_path):
    from gafnet import cache as project_cache

    monkeypatch.delenv(dl.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.downloads_dir() == project_cache.cache_root() / "downloads" == tmp_path / "xdg" / "gafnet" / "downloads"
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "env"))
    assert dl.downloads_dir() == tmp_path / "env" / "downloads"
    assert dl.downloads_dir(tmp_path / "flag") == tmp_path / "flag" / "downloads"
    assert dl.CACHE_ENV is project_cache.CACHE_ENV
    source = Path(dl.__file__).read_text()
    assert "gafnet.embeddings" not in source and not hasattr(dl, "default_cache_dir")


def test_every_command_has_a_description_in_its_help(capsys):
    for argv in (["--help"], ["download", "--help"], ["verify", "--help"]):
        assert run_cli(*argv) == 0
        out = capsys.readouterr().out
        rest = out.partition("\n\n")[2]
        description = rest.split("\n\n")[0]
        assert not description.startswith(("positional arguments", "options")), f"{argv}: no description\n{out}"
    assert run_cli("download", "--help") == 0
    out = capsys.readouterr().out
    assert "--cache_dir DIR, --cache-dir DIR" in out and "downloads/" in out and "--from-zip FILE" in out


# --------------------------------------------------------------------------------------------------
# Bad options and places: one line, exit 2, nothing written (issue 10, found in this review)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["download", "casia-b", "--timeout", "0"], "must be a positive number of seconds"),
        (["download", "casia-b", "--timeout", "-1"], "must be a positive number of seconds"),
        (["download", "casia-b", "--timeout", "nan"], "must be a positive number of seconds"),
        (["download", "casia-b", "--timeout", "inf"], "must be a positive number of seconds"),
        (["download", "casia-b", "--retries", "-1"], "must be between 0 and 100"),
        (["download", "casia-b", "--retries", "100000000000000000000"], "must be between 0 and 100"),
        (["verify", "--max-lines", "-5"], "must be between 0 and"),
    ],
)
def test_meaningless_numbers_are_refused_by_the_parser(tmp_path, capsys, argv, message):
    assert run_cli(*argv, "--root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_root_that_is_a_file_is_one_line(tmp_path, capsys):
    archive = tmp_path / "gaf-net-data.zip"
    archive.write_bytes(gafnet_zip())
    (tmp_path / "afile").write_text("not a directory")
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "afile"), "--from-zip", str(archive)) == 2
    assert capsys.readouterr().err == (f"python -m gafnet.data: error: {tmp_path / 'afile'} is not a directory; "
                                       "give a directory with --root\n")
    assert run_cli("verify", "--root", str(tmp_path / "afile")) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "not a directory"


def test_a_cache_dir_that_is_a_file_is_one_line(release, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert run_cli("download", "casia-b", "--root", str(tmp_path / "repo"), "--quiet",
                   "--cache_dir", str(tmp_path / "afile")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create the download folder" in err and "--cache_dir DIR" in err
    (tmp_path / "c" / "downloads").parent.mkdir()
    (tmp_path / "c" / "downloads").write_text("x")
    assert run_cli("download", "casia-b", "--root", str(tmp_path / "repo"), "--quiet", "--cache_dir", str(tmp_path / "c")) == 2
    assert "the download folder" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_from_zip_that_is_not_a_regular_file_is_named_as_such(tmp_path, capsys, kind):
    path = tmp_path / "gaf-net-data.zip"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "repo"), "--from-zip", str(path)) == 2  # no hang
    err = capsys.readouterr().err
    assert ("is a directory" if kind == "directory" else "is not a regular file") in err
    assert not (tmp_path / "repo").exists()


def test_writing_the_download_on_a_full_disk_is_one_line(server, tmp_path, monkeypatch):
    server.add("/data.zip", Route(body=CASIA_ZIP))
    real_open = open
    writes = []

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            writes.append(len(data))
            if len(writes) > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.handle.write(data)

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return Full(handle) if str(path).endswith(".part") and "b" in mode and "w" in mode or "a" in mode else handle

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(DownloadError) as info:
        fetch_url(server.url("/data.zip"), tmp_path / "data.zip", ASSETS["casia-b"], options=QUIET)
    part = tmp_path / "data.zip.part"
    assert str(info.value) == (f"cannot write {part}: No space left on device; the 8192 bytes received are kept "
                               f"in {part}; free some space or use --cache_dir DIR, then run the same command")
    assert not (tmp_path / "data.zip").exists()


@pytest.fixture
def small_tmpfs(small_disk):
    """A 1 MiB file system with 64 inodes (tests/conftest.py; skips where mounting is not allowed)."""
    return small_disk("1m", inodes=64)


def test_tmpfs_full_cache_during_a_download_is_one_line(server, small_tmpfs, tmp_path, capsys):
    body = zip_bytes({"casia-b_pose_test.csv": noise(2 * 1024**2)})  # does not fit in 1 MiB
    server.add("/data.zip", Route(body=body))
    assert run_cli("download", "casia-b", "--root", str(tmp_path / "repo"), "--quiet", "--retries", "0",
                   "--url", server.url("/data.zip"), "--cache_dir", str(small_tmpfs)) == 2
    err = capsys.readouterr().err
    part = small_tmpfs / "downloads" / "gaitgraph-casia-b-data.zip.part"
    kept = part.stat().st_size
    assert 0 < kept < len(body)
    assert err == (f"python -m gafnet.data: error: cannot write {part}: No space left on device; the {kept} bytes "
                   f"received are kept in {part}; free some space or use --cache_dir DIR, then run the same command\n")
    assert not (tmp_path / "repo").exists()


def test_tmpfs_full_cache_during_a_gdrive_download_is_one_line(google, small_tmpfs, tmp_path, capsys):
    body = gafnet_zip(extra={"noise.bin": noise(2 * 1024**2)})
    google.add("/drive.google.com/uc", gdrive_file(body))
    assert run_cli("download", "gafnet", "--root", str(tmp_path / "repo"), "--quiet", "--retries", "0",
                   "--cache_dir", str(small_tmpfs)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot write {small_tmpfs / 'downloads' / '.incoming'}: No space left on device; the " in err
    assert err.endswith("free some space or use --cache_dir DIR, then run the same command\n")
    assert not (tmp_path / "repo").exists()


# --------------------------------------------------------------------------------------------------
# A truncated checkpoint is never installed or reported OK (issue 10, "Other")


def _cuts(size: int) -> list[int]:
    return [1, 100, size // 3, size // 2, size - 22, size - 1]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_from_zip_half_a_checkpoint_is_refused_at_several_cut_points(tmp_path, capsys, legacy):
    full = torch_bytes({"tcn.weight": torch.arange(4096, dtype=torch.float32)}, legacy=legacy)
    root = tmp_path / "repo"
    for cut in _cuts(len(full)):
        half = tmp_path / "half.pth"
        half.write_bytes(full[:cut])
        assert run_cli("download", "gaitgraph-weights", "--root", str(root), "--quiet", "--from-zip", str(half)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not usable" in err and "truncated" in err, (cut, err)
        assert not (root / "weights").exists()
    (tmp_path / "full.pth").write_bytes(full)
    assert run_cli("download", "gaitgraph-weights", "--root", str(root), "--quiet", "--from-zip",
                   str(tmp_path / "full.pth")) == 0
    assert run_cli("verify", "--root", str(root), "--all") == 1  # no embeddings here, but the weights are fine
    assert "GaitGraph weights" in capsys.readouterr().out.split("OK")[-2]


def test_verify_all_reports_an_installed_truncated_checkpoint(tmp_path, capsys):
    dest = tmp_path / "weights" / "gaitgraph_resgcn-n39-r8_coco_seq_60.pth"
    dest.parent.mkdir()
    dest.write_bytes(WEIGHTS[: len(WEIGHTS) // 2])
    assert run_cli("verify", "--root", str(tmp_path), "--all") == 1
    out = capsys.readouterr().out
    assert f"malformed: {dest}: truncated or corrupt zip container" in out


def test_a_download_of_the_checkpoint_cut_without_a_length_is_rejected(server, tmp_path, cache):
    server.add("/w.pth", Route(body=WEIGHTS, no_length=True, truncate_at=len(WEIGHTS) - 100))
    with pytest.raises(DownloadError, match="was rejected and deleted: it is not a complete PyTorch checkpoint: truncated"):
        fetch_url(server.url("/w.pth"), tmp_path / "w.pth", ASSETS["gaitgraph-weights"], options=QUIET)
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_cached_checkpoint_is_not_used(release, tmp_path, capsys, cache):
    cache.mkdir(parents=True)
    (cache / "gaitgraph_resgcn-n39-r8_coco_seq_60.pth").write_bytes(WEIGHTS[:-10])
    assert run_cli("download", "gaitgraph-weights", "--root", str(tmp_path), "--quiet") == 2
    err = capsys.readouterr().err
    assert "the cached" in err and "not a complete PyTorch checkpoint" in err and "Delete it" in err
    assert not (tmp_path / "weights").exists()


# --------------------------------------------------------------------------------------------------
# Faults through real processes


REPO = Path(__file__).resolve().parents[1]


def test_ctrl_c_mid_download_exits_130_keeps_the_part_and_the_next_run_resumes(server, tmp_path, cache):
    data = zip_bytes({"casia-b_pose_test.csv": b"image_name,x0\nframes/001-nm-01-090/000001.jpg,1\n",
                      "noise.bin": noise(600_000)})
    server.add("/data.zip", Route(body=data, stall_after=300_000), Route(body=data))
    command = [sys.executable, "-m", "gafnet.data", "download", "casia-b", "--root", str(tmp_path / "repo"),
               "--url", server.url("/data.zip"), "--retries", "0"]
    part = cache / "gaitgraph-casia-b-data.zip.part"
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "GAFNET_CACHE_DIR": str(cache.parent)})
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size >= 4 * 64 * 1024) and time.monotonic() < deadline:
        time.sleep(0.05)  # four 64 kB chunks written, the server now stalls
    child.send_signal(signal.SIGINT)
    err = child.communicate(timeout=60)[1]
    assert child.returncode == 130
    assert err.splitlines()[-1] == "python -m gafnet.data: interrupted" and "Traceback" not in err
    kept = part.stat().st_size
    assert kept >= 4 * 64 * 1024 and data.startswith(part.read_bytes())
    assert not (tmp_path / "repo").exists()
    assert run_cli("download", "casia-b", "--root", str(tmp_path / "repo"), "--quiet", "--url",
                   server.url("/data.zip")) == 0
    assert server.range_headers()[-1] == f"bytes={kept}-"
    assert (cache / "gaitgraph-casia-b-data.zip").read_bytes() == data


def test_cli_refuses_a_small_zip_that_expands_over_the_ratio_cap(tmp_path, capsys):
    """The review's case in small: a zip of the released layout plus one member that expands > 100x."""
    rows = b"0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1,1\n" * (40 * 1024**2 // 36)
    archive = tmp_path / "gaf-net-data.zip"
    buffer = io.BytesIO(gafnet_zip())
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("poses/splits_pit/extra.csv", rows)
    archive.write_bytes(buffer.getvalue())
    assert archive.stat().st_size < 400_000
    root = tmp_path / "repo"
    assert run_cli("download", "gafnet", "--root", str(root), "--from-zip", str(archive), "--quiet") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "member 'poses/splits_pit/extra.csv' expands" in err and "above the cap of 100x for CSV data" in err
    assert not root.exists() or list(root.iterdir()) == []


def test_any_download_removes_unpack_leftovers_of_dead_processes_in_the_root(tmp_path, capsys):
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    make = ("import os, sys; from gafnet.atomic import temp_prefix; "
            "[os.makedirs(os.path.join(d, temp_prefix('unpack') + 'x1y2.tmp', 'embeddings')) for d in sys.argv[1:]]")
    subprocess.run([sys.executable, "-c", make, str(root), str(root / "data")], cwd=REPO, check=True)  # then exits
    old = root / ".gafnet-unpack-abcd1234"  # an older version's name: recent, so kept and named
    old.mkdir()
    (root / "weights.pth").write_bytes(WEIGHTS)
    assert run_cli("download", "gaitgraph-weights", "--root", str(root), "--from-zip", str(root / "weights.pth")) == 0
    assert sorted(p.name for p in root.iterdir()) == [".gafnet-unpack-abcd1234", "data", "weights", "weights.pth"]
    assert list((root / "data").iterdir()) == []
    assert f"note: {old} was left by an interrupted unpack of an older version" in capsys.readouterr().err
