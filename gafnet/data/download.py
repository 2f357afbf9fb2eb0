"""Download, check and install the released data (README, "Getting the data"):

    gafnet             GAF-Net's embeddings and poses, gaf-net-data.zip (~395 MB) on Google Drive
                       -> ./embeddings/ilids/...  ./poses/splits_{pit,mgh}/...
    casia-b            GaitGraph's CASIA-B pose CSVs, data.zip of GitHub release v0.1 of tteepe/GaitGraph
                       -> ./data/casia-b/
    gaitgraph-weights  GaitGraph's checkpoint gaitgraph_resgcn-n39-r8_coco_seq_60.pth, same release
                       -> ./weights/

Downloads land in ``downloads/`` of the project's cache (``$GAFNET_CACHE_DIR``, else ``~/.cache/gafnet``). The bytes
go to ``<name>.part`` first and are resumed from there with an HTTP Range request; only a complete file
whose size, leading bytes ("magic") and, when pinned, SHA-256 are right is renamed to ``<name>``.
Google Drive goes through gdown, which handles its large-file confirmation page and resumes its own
partial file in ``<cache>/.incoming/``. Archives are unpacked by :mod:`gafnet.data.unzip` and checked
by :mod:`gafnet.data.verify` before anything reaches the destination.

Sources can be redirected, e.g. to a mirror or to a test server: ``$GAFNET_GDRIVE_URL`` (a template
with ``{id}``), ``$GAFNET_GAITGRAPH_RELEASE_URL`` (the release base URL), or ``--url`` for one asset.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests
from tqdm import tqdm

from gafnet.atomic import atomic_path, write_json
from gafnet.data.unzip import (
    UnzipLimits,
    apply_install,
    content_root,
    extracted,
    plan_install,
)
from gafnet.data.verify import (
    GAITGRAPH_WEIGHTS_NAME,
    GET_GAFNET_HINT,
    MANIFEST_NAME,
    LayoutReport,
    check_casia_b,
    check_gafnet,
    check_weights,
)
from gafnet.embeddings import default_cache_dir as project_cache_dir
from gafnet.errors import InputError

GAFNET_GDRIVE_ID = "1oop2lyLT3nceZMtPrreMjY2yUv9bGea3"
DEFAULT_GDRIVE_URL = "https://drive.google.com/uc?id={id}"
DEFAULT_GAITGRAPH_RELEASE_URL = "https://github.com/tteepe/GaitGraph/releases/download/v0.1"
GDRIVE_URL_ENV = "GAFNET_GDRIVE_URL"
GAITGRAPH_RELEASE_ENV = "GAFNET_GAITGRAPH_RELEASE_URL"
CACHE_ENV = "GAFNET_CACHE_DIR"

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip starts with a local header (or is an empty archive)
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save: zip container (torch >= 1.6) or legacy pickle
_HASH_CHUNK = 4 * 1024 * 1024
_USER_AGENT = "gafnet-data-downloader (python-requests)"


class DownloadError(InputError):
    """A download failed; the message says why, what was kept, and what to do."""


@dataclass(frozen=True)
class Asset:
    """One downloadable file. ``size``/``sha256`` are None where nobody has published them yet."""

    name: str
    filename: str  # its name in the cache
    description: str
    magic: tuple[bytes, ...]
    gdrive_id: str | None = None
    release_file: str | None = None  # file name in GaitGraph's GitHub release
    size: int | None = None
    sha256: str | None = None
    unzip_limits: UnzipLimits | None = None  # None: a single file, not an archive

    def default_url(self) -> str:
        if self.gdrive_id is not None:
            return os.environ.get(GDRIVE_URL_ENV, DEFAULT_GDRIVE_URL).format(id=self.gdrive_id)
        base = os.environ.get(GAITGRAPH_RELEASE_ENV, DEFAULT_GAITGRAPH_RELEASE_URL).rstrip("/")
        return f"{base}/{self.release_file}"

    def manual_url(self) -> str:
        """Where a user downloads it by hand in a browser."""
        if self.gdrive_id is not None:
            return f"https://drive.google.com/file/d/{self.gdrive_id}/view"
        return f"{DEFAULT_GAITGRAPH_RELEASE_URL}/{self.release_file}"


ASSETS: dict[str, Asset] = {
    "gafnet": Asset(
        name="gafnet",
        filename="gaf-net-data.zip",
        description="GAF-Net's released embeddings and poses (Google Drive, ~395 MB)",
        magic=ZIP_MAGIC,
        gdrive_id=GAFNET_GDRIVE_ID,
        unzip_limits=UnzipLimits(max_total_bytes=8 * 1024**3, max_files=10_000),
    ),
    "casia-b": Asset(
        name="casia-b",
        filename="gaitgraph-casia-b-data.zip",
        description="GaitGraph's CASIA-B pose CSVs (data.zip of GitHub release tteepe/GaitGraph v0.1)",
        magic=ZIP_MAGIC,
        release_file="data.zip",
        unzip_limits=UnzipLimits(max_total_bytes=32 * 1024**3, max_files=10_000),
    ),
    "gaitgraph-weights": Asset(
        name="gaitgraph-weights",
        filename=GAITGRAPH_WEIGHTS_NAME,
        description="GaitGraph's CASIA-B checkpoint (GitHub release tteepe/GaitGraph v0.1)",
        magic=TORCH_MAGIC,
        release_file=GAITGRAPH_WEIGHTS_NAME,
    ),
}
TARGETS = (*ASSETS, "all")


def casia_b_dir(root: str | Path) -> Path:
    return Path(root) / "data" / "casia-b"


def weights_path(root: str | Path) -> Path:
    return Path(root) / "weights" / GAITGRAPH_WEIGHTS_NAME


def default_cache_dir() -> Path:
    """``downloads/`` in the project's cache (``$GAFNET_CACHE_DIR``, else ``~/.cache/gafnet``), next to the
    CSV parse cache of :mod:`gafnet.embeddings`."""
    return project_cache_dir().expanduser() / "downloads"


# --------------------------------------------------------------------------------------------------
# Checks of a downloaded file


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def normalise_sha256(value: str) -> str:
    digest = value.strip().lower()
    if digest.startswith("sha256:"):
        digest = digest[len("sha256:"):]
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InputError(f"--sha256 {value!r} is not a SHA-256 digest (64 hexadecimal characters)")
    return digest


def _html_title(head: bytes) -> str | None:
    text = head.decode("utf-8", errors="replace")
    if not re.match(r"\s*<(!doctype html|html)", text, re.IGNORECASE):
        return None
    match = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return " ".join(match.group(1).split()) if match else ""


def content_problem(path: Path, asset: Asset, expected_size: int | None, sha256: str | None) -> str | None:
    """Why the complete file at ``path`` is not ``asset`` (None when it is). Size first, then the leading
    bytes (an HTML page is named as such, with its title), then, for a zip, its central directory (a
    transfer cut short without a Content-Length to tell), then the digest."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"it has {size} bytes, {expected_size} expected"
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    if not head.startswith(asset.magic):
        title = _html_title(head)
        if title is not None:
            what = f" titled {title!r}" if title else ""
            return (f"it is an HTML page{what}, not {asset.filename} (a quota, login or error page "
                    "served instead of the file)")
        kind = "a zip archive" if asset.magic == ZIP_MAGIC else "a PyTorch checkpoint"
        return f"it is not {kind} (starts with {head[:8]!r})"
    if asset.magic == ZIP_MAGIC:
        try:
            zipfile.ZipFile(path).close()  # reads the central directory at the end: a cut file has none
        except (zipfile.BadZipFile, OSError) as exc:
            return f"it is not a complete zip archive ({exc}): the transfer was cut short"
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            return f"its SHA-256 is {actual}, but {sha256} was expected"
    return None


# --------------------------------------------------------------------------------------------------
# HTTP(S) download with Range resume


@dataclass
class FetchOptions:
    quiet: bool = False
    timeout: tuple[float, float] = (15.0, 60.0)  # (connect, read) seconds
    retries: int = 2  # extra attempts after a network failure or HTTP 5xx; each resumes from .part
    backoff: float = 2.0  # seconds before the first retry, doubled after each
    chunk_size: int = 64 * 1024  # bytes of an unfinished chunk are lost when a connection breaks
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


class _Retryable(Exception):
    """A failure worth another attempt (network, truncated body, HTTP 5xx)."""


def _part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")


def _read_meta(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _fetch_once(session: requests.Session, url: str, dest: Path, options: FetchOptions) -> None:
    part, meta_path = _part_paths(dest)
    offset = part.stat().st_size if part.exists() else 0
    meta = _read_meta(meta_path) if offset else {}
    headers = {"Accept-Encoding": "identity"}  # byte offsets must count the bytes on disk
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if meta.get("validator"):
            headers["If-Range"] = meta["validator"]  # a changed remote file restarts instead of splicing
    try:
        response = session.get(url, headers=headers, stream=True, timeout=options.timeout)
    except requests.TooManyRedirects:
        raise DownloadError(f"too many redirects while downloading {url}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _Retryable(f"cannot connect: {_reason(exc)}") from None
    except requests.RequestException as exc:
        raise DownloadError(f"download of {url} failed: {_reason(exc)}") from None

    with response:
        if url.startswith("https://") and response.url.startswith("http://"):
            raise DownloadError(f"{url} redirected to the insecure URL {response.url}; refusing")
        status = response.status_code
        if status == 416 and offset:
            match = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                return  # the partial file already holds every byte
            _remove(part, meta_path)
            raise _Retryable("the partial file did not match the remote file; starting over")
        if status >= 500:
            raise _Retryable(f"HTTP {status} {response.reason} from {response.url}")
        if status >= 400:
            raise DownloadError(f"HTTP {status} {response.reason} from {response.url}")

        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                _remove(part, meta_path)
                raise _Retryable("the server answered a different byte range; starting over")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            if offset and not options.quiet:
                print(f"{dest.name}: the server sent the whole file instead of the rest; starting over",
                      file=sys.stderr)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
            validator = response.headers.get("ETag")
            if not validator or validator.startswith("W/"):
                validator = response.headers.get("Last-Modified")
            write_json(meta_path, {"url": url, "total": total, "validator": validator})

        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("text/html"):
            head = response.raw.read(64 * 1024, decode_content=True)
            _remove(part, meta_path)
            title = _html_title(head)
            what = f" titled {title!r}" if title else ""
            raise DownloadError(f"{response.url} sent an HTML page{what} instead of {dest.name}; "
                                "nothing was kept. Check the URL or download the file by hand (--from-zip).")

        received = offset
        with open(part, mode) as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=dest.name, disable=options.quiet, file=sys.stderr, mininterval=0.5,
        ) as bar:
            try:
                for chunk in response.iter_content(chunk_size=options.chunk_size):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except requests.exceptions.ChunkedEncodingError:  # urllib3's IncompleteRead: peer hung up
                raise _Retryable(f"connection lost after {received} of {total or '?'} bytes") from None
            except requests.RequestException as exc:
                raise _Retryable(f"connection lost after {received} of {total or '?'} bytes "
                                 f"({_reason(exc)})") from None
    if total is not None and received < total:
        raise _Retryable(f"the server closed the connection after {received} of {total} bytes")
    if total is not None and received > total:
        _remove(part, meta_path)
        raise DownloadError(f"{url} sent {received} bytes, more than the {total} it announced; nothing was kept")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def fetch_url(url: str, dest: str | Path, asset: Asset, *, expected_size: int | None = None,
              sha256: str | None = None, options: FetchOptions | None = None,
              session: requests.Session | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed if present; follows redirects).

    Network failures and HTTP 5xx are retried ``options.retries`` times, each attempt resuming; when
    they run out, the bytes received stay in ``dest.part`` for the next run. HTTP 4xx, an HTML page,
    a wrong size, magic or digest raise :class:`DownloadError` and leave nothing at ``dest``.
    """
    dest = Path(dest)
    options = options or FetchOptions()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, meta_path = _part_paths(dest)
    own_session = session is None
    session = session or requests.Session()
    session.headers["User-Agent"] = _USER_AGENT
    try:
        for attempt in range(options.retries + 1):
            try:
                _fetch_once(session, url, dest, options)
                break
            except _Retryable as exc:
                kept = part.stat().st_size if part.exists() else 0
                if attempt == options.retries:
                    keep = (f" The {kept} bytes received so far are kept in {part}; run the same command "
                            "again to resume." if kept else "")
                    raise DownloadError(f"download of {dest.name} from {url} failed: {exc}.{keep}") from None
                delay = options.backoff * 2**attempt
                if not options.quiet:
                    print(f"{dest.name}: {exc}; retrying in {delay:.0f} s ({attempt + 1}/{options.retries})",
                          file=sys.stderr)
                options.sleep(delay)
    finally:
        if own_session:
            session.close()
    problem = content_problem(part, asset, expected_size, sha256)
    if problem is not None:
        _remove(part, meta_path)
        raise DownloadError(f"the download of {dest.name} from {url} was rejected: {problem}. "
                            "Nothing was kept.")
    os.replace(part, dest)
    _remove(meta_path)
    return dest


# --------------------------------------------------------------------------------------------------
# Google Drive through gdown


def _gdown_reason(exc: BaseException) -> str:
    """The reason inside gdown's message, without its advice about gdown's own command line."""
    text = " ".join(str(exc).split())
    match = re.search(r"Failed to retrieve file url: (.*?) You may still be able", text)
    if match:
        text = match.group(1)
    text = re.split(r"\. The received bytes are kept in ", text)[0]
    return _reason(text.rstrip("."))


def fetch_gdrive(url: str, dest: str | Path, asset: Asset, *, expected_size: int | None = None,
                 sha256: str | None = None, options: FetchOptions | None = None) -> Path:
    """Download a Google Drive file with gdown (large-file confirmation, cookies, resume) into
    ``<cache>/.incoming/``, check it, then rename it to ``dest``."""
    import gdown  # imported here: only this path needs it

    dest = Path(dest)
    options = options or FetchOptions()
    incoming = dest.parent / ".incoming" / dest.name
    incoming.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"url": url, "output": str(incoming), "quiet": options.quiet, "resume": True}
    accepted = inspect.signature(gdown.download).parameters
    if "timeout" in accepted:
        kwargs["timeout"] = options.timeout
    if "retries" in accepted:
        kwargs["retries"] = options.retries
    retrieval_error = getattr(gdown.exceptions, "FileURLRetrievalError", ())
    gdown_error = getattr(gdown.exceptions, "DownloadError", ())
    manual = (f"Download it in a browser from {asset.manual_url()} and run: "
              f"python -m gafnet.data download {asset.name} --from-zip PATH")
    try:
        gdown.download(**kwargs)
    except retrieval_error as exc:
        raise DownloadError(f"Google Drive did not serve {dest.name} ({_gdown_reason(exc)}). This usually means "
                            f"its download quota is exceeded or a firewall blocks it. {manual}") from None
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(f"HTTP {code} while downloading {dest.name} from {url}. {manual}") from None
    except gdown_error as exc:
        raise DownloadError(f"download of {dest.name} from {url} failed: {_gdown_reason(exc)}. The bytes "
                            f"received are kept in {incoming.parent}; run the same command again to resume.") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise DownloadError(f"network error while downloading {dest.name} from {url}: {_reason(exc)}. "
                            "Run the same command again to resume.") from None
    except requests.RequestException as exc:
        raise DownloadError(f"download of {dest.name} from {url} failed: {_reason(exc)}") from None
    if not incoming.is_file():
        raise DownloadError(f"gdown reported success but wrote no {incoming}")
    problem = content_problem(incoming, asset, expected_size, sha256)
    if problem is not None:
        _remove(incoming)
        raise DownloadError(f"the download of {dest.name} from {url} was rejected: {problem}. "
                            f"Nothing was kept. {manual}")
    os.replace(incoming, dest)
    return dest


# --------------------------------------------------------------------------------------------------
# Getting an asset: cache, --from-zip, download; then installing it


@dataclass
class DownloadRequest:
    """What ``python -m gafnet.data download`` was asked to do."""

    root: Path = Path(".")
    cache_dir: Path | None = None  # default: default_cache_dir()
    from_file: Path | None = None  # a file downloaded by hand (--from-zip)
    sha256: str | None = None  # pinned digest (--sha256); default: the asset's, if known
    url: str | None = None  # source override (--url)
    force: bool = False
    fetch: FetchOptions = field(default_factory=FetchOptions)


def _say(request: DownloadRequest, message: str) -> None:
    if not request.fetch.quiet:
        print(message)


def _print_digest(request: DownloadRequest, asset: Asset, path: Path, pinned: str | None) -> None:
    if pinned is not None:
        _say(request, f"{path.name}: SHA-256 matches the pinned {pinned}")
        return
    digest = sha256_file(path)
    print(f"{path.name}: SHA-256 {digest} ({path.stat().st_size} bytes). To pin it next time:\n"
          f"  python -m gafnet.data download {asset.name} --sha256 {digest}")


def obtain(asset: Asset, request: DownloadRequest) -> Path:
    """A checked local copy of ``asset``: the --from-zip file, the cached download, or a new download."""
    pinned = request.sha256 or asset.sha256
    if request.from_file is not None:
        path = Path(request.from_file).expanduser()
        if not path.is_file():
            raise InputError(f"--from-zip {path}: no such file")
        problem = content_problem(path, asset, asset.size, pinned)
        if problem is not None:
            raise InputError(f"--from-zip {path} is not usable: {problem}")
        _print_digest(request, asset, path, pinned)
        return path
    cache = request.cache_dir or default_cache_dir()
    dest = cache / asset.filename
    if dest.is_file():
        problem = content_problem(dest, asset, asset.size, pinned)
        if problem is None:
            _say(request, f"using the cached {dest}")
            return dest
        raise InputError(f"the cached {dest} is not usable: {problem}. "
                         "Delete it (or fix the pinned digest) and run again.")
    url = request.url or asset.default_url()
    _say(request, f"downloading {asset.description}\n  from {url}\n  to {dest}")
    if asset.gdrive_id is not None and request.url is None:
        fetch_gdrive(url, dest, asset, expected_size=asset.size, sha256=pinned, options=request.fetch)
    else:
        fetch_url(url, dest, asset, expected_size=asset.size, sha256=pinned, options=request.fetch)
    _print_digest(request, asset, dest, pinned)
    return dest


def _relabel(text: str, staged: Path, label: str) -> str:
    return text.replace(f"{staged}/", label).replace(str(staged), label.rstrip(":/"))


def _install_gafnet(archive: Path, request: DownloadRequest) -> None:
    root = Path(request.root)
    with extracted(archive, near=root, limits=ASSETS["gafnet"].unzip_limits) as staged:
        content = content_root(staged, markers=("embeddings", "poses"))
        bad = [r for r in check_gafnet(content) if not r.ok]
        if bad:
            detail = "\n".join(_relabel(r.summary(max_lines=8), content, f"{archive.name}:") for r in bad)
            raise InputError(f"{archive} does not hold the released layout (README, 'Data layout'); nothing was installed.\n"
                             + detail.replace("\n" + GET_GAFNET_HINT, ""))
        plans = [plan_install(content / sub, root / sub, request.force) for sub in ("embeddings", "poses")]
        result = apply_install(plans)
    _say(request, f"installed {len(result.installed)} files under {root / 'embeddings'} and {root / 'poses'}"
         + (f" ({len(result.unchanged)} identical files were already there)" if result.unchanged else ""))


def _install_casia_b(archive: Path, request: DownloadRequest) -> None:
    dest = casia_b_dir(request.root)
    with extracted(archive, near=dest.parent, limits=ASSETS["casia-b"].unzip_limits) as staged:
        content = content_root(staged)
        report = check_casia_b(content)
        if not report.present or report.malformed:
            found = ", ".join(sorted(p.name for p in content.iterdir())) or "nothing"
            detail = _relabel(report.summary(max_lines=8), content, f"{archive.name}:")
            raise InputError(f"{archive} does not hold well-formed CSV files (found: {found}); "
                             f"nothing was installed.\n{detail}")
        files = {p.relative_to(content).as_posix(): p.stat().st_size
                 for p in sorted(content.rglob("*")) if p.is_file() and p.name != MANIFEST_NAME}
        result = apply_install([plan_install(content, dest, request.force)])
    write_json(dest / MANIFEST_NAME, {"source": archive.name, "files": files})
    _say(request, f"installed {len(result.installed)} files under {dest}"
         + (f" ({len(result.unchanged)} identical files were already there)" if result.unchanged else ""))


def _install_weights(source: Path, request: DownloadRequest) -> None:
    dest = weights_path(request.root)
    if dest.exists() and not request.force:
        if dest.is_file() and dest.stat().st_size == source.stat().st_size and sha256_file(dest) == sha256_file(source):
            return
        raise InputError(f"{dest} exists and differs from the download; nothing was changed. "
                         "Move it away, or run again with --force to overwrite it.")
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
    _say(request, f"installed {dest}")


def current_reports(name: str, root: str | Path) -> list[LayoutReport]:
    """What is at the destination of asset ``name`` now."""
    if name == "gafnet":
        return check_gafnet(root)
    if name == "casia-b":
        return [check_casia_b(casia_b_dir(root))]
    return [check_weights(weights_path(root))]


def _already_installed(name: str, request: DownloadRequest, reports: list[LayoutReport]) -> bool:
    if not all(r.ok for r in reports):
        return False
    if name == "gaitgraph-weights":
        pinned = request.sha256 or ASSETS[name].sha256
        if pinned is not None and sha256_file(weights_path(request.root)) != pinned:
            return False
    return True


def download(name: str, request: DownloadRequest) -> list[LayoutReport]:
    """Get asset ``name`` to its place under ``request.root``; returns the final reports (all ok).

    A complete, valid destination is left alone and nothing is downloaded, unless ``request.force``.
    """
    asset = ASSETS[name]
    if request.sha256 is not None:
        request.sha256 = normalise_sha256(request.sha256)
    reports = current_reports(name, request.root)
    if not request.force and _already_installed(name, request, reports):
        _say(request, f"{name}: already complete, nothing to do (--force to install it again)")
        return reports
    source = obtain(asset, request)
    if name == "gafnet":
        _install_gafnet(source, request)
    elif name == "casia-b":
        _install_casia_b(source, request)
    else:
        _install_weights(source, request)
    reports = current_reports(name, request.root)
    bad = [r for r in reports if not r.ok]
    if bad:
        raise InputError("after installing, the data is still incomplete:\n"
                         + "\n".join(r.summary() for r in bad))
    return reports
