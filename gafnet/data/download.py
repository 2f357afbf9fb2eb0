"""Download, check and install the released data (README, "Getting the data"):

    gafnet             GAF-Net's embeddings and poses, gaf-net-data.zip (~395 MB) on Google Drive
                       -> ./embeddings/ilids/...  ./poses/splits_{pit,mgh}/...
    casia-b            GaitGraph's CASIA-B pose CSVs, data.zip of GitHub release v0.1 of tteepe/GaitGraph
                       -> ./data/casia-b/
    gaitgraph-weights  GaitGraph's checkpoint gaitgraph_resgcn-n39-r8_coco_seq_60.pth, same release
                       -> ./weights/

Downloads land in ``downloads/`` of the project's one cache (:func:`gafnet.cache.cache_root`:
``--cache_dir``, else ``$GAFNET_CACHE_DIR``, ``$XDG_CACHE_HOME/gafnet``, ``~/.cache/gafnet``). The bytes go
to ``<name>.part`` first and are resumed from there with an HTTP Range request; only a complete file
whose size, leading bytes ("magic"), structure (a zip's central directory, a complete ``torch.save``
file) and, when pinned, SHA-256 are right is renamed to ``<name>``. Google Drive goes through gdown,
which handles its large-file confirmation page and resumes its own partial file in
``downloads/.incoming/``. Archives are unpacked by :mod:`gafnet.data.unzip` and checked by
:mod:`gafnet.data.verify` before anything reaches the destination.

Every failure ends as one line (:class:`DownloadError`): what happened, what was kept (only when
something was), and what to do: run the same command to resume, or download the file in a browser
and give it with ``--from-zip FILE``.

Sources can be redirected, e.g. to a mirror or to a test server: ``$GAFNET_GDRIVE_URL`` (a template
with ``{id}``), ``$GAFNET_GAITGRAPH_RELEASE_URL`` (the release base URL), or ``--url`` for one asset.
"""

from __future__ import annotations

import glob
import hashlib
import inspect
import json
import os
import re
import shutil
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests
from tqdm import tqdm

from gafnet.atomic import atomic_path, write_json
from gafnet.cache import CACHE_ENV, cache_root, check_regular_file  # noqa: F401 (CACHE_ENV: re-exported)
from gafnet.data.unzip import (
    UnzipLimits,
    apply_install,
    content_root,
    extracted,
    plan_install,
    remove_leftovers,
)
from gafnet.data.verify import (
    GAITGRAPH_WEIGHTS_NAME,
    GET_GAFNET_HINT,
    MANIFEST_NAME,
    LayoutReport,
    check_casia_b,
    check_gafnet,
    check_weights,
    torch_file_problem,
)
from gafnet.errors import InputError

GAFNET_GDRIVE_ID = "1oop2lyLT3nceZMtPrreMjY2yUv9bGea3"
DEFAULT_GDRIVE_URL = "https://drive.google.com/uc?id={id}"
DEFAULT_GAITGRAPH_RELEASE_URL = "https://github.com/tteepe/GaitGraph/releases/download/v0.1"
GDRIVE_URL_ENV = "GAFNET_GDRIVE_URL"
GAITGRAPH_RELEASE_ENV = "GAFNET_GAITGRAPH_RELEASE_URL"
DOWNLOADS_FOLDER = "downloads"  # inside the project cache

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip starts with a local header (or is an empty archive)
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save: zip container (torch >= 1.6) or legacy pickle
_HASH_CHUNK = 4 * 1024 * 1024
MAX_RETRY_DELAY_S = 60.0  # the doubling wait between retries stops growing here
_USER_AGENT = "gafnet-data-downloader (python-requests)"


class DownloadError(InputError):
    """A download failed; the one-line message says why, what was kept (if anything), and what to do."""


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

    def fallback(self, url: str | None = None) -> str:
        """What to do when the download cannot work: get the file by hand, give it with --from-zip."""
        return (f"download it in a browser from {url or self.manual_url()} and run: "
                f"python -m gafnet.data download {self.name} --from-zip FILE")


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


def downloads_dir(cache_dir: str | Path | None = None) -> Path:
    """``downloads/`` in the project cache :func:`gafnet.cache.cache_root` (``cache_dir`` if given)."""
    return cache_root(cache_dir) / DOWNLOADS_FOLDER


def _make_dir(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the {what} {path}: {exc.strerror or exc}; "
                         "give another place with --cache_dir DIR") from None
    return path


def _short(text: str, width: int = 100) -> str:
    """``text`` on one line, cut at a word boundary to at most ``width`` characters (mid-word only when a
    single word is longer than that)."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    cut = textwrap.shorten(text, width, placeholder=" …")
    return cut if cut != "…" and cut.strip() != "…" else text[: width - 1] + "…"


def _short_reason(exc: BaseException | str) -> str:
    """The useful core of a requests/urllib3 error ("Connection refused", "timed out"...), not its repr."""
    text = " ".join(str(exc).split())
    match = re.search(r"\[Errno -?\d+\] ([^'\"()\[\]]+)", text)
    if match:
        return match.group(1).strip().rstrip(".:")
    if re.search(r"timed out", text, re.IGNORECASE):
        return "timed out"
    match = re.search(r"\[SSL: [A-Z_]+\][^'\"()]*", text)
    if match:
        return match.group(0).strip()
    return _short(text)


def _short_url(url: str, width: int = 100) -> str:
    """A URL for a message: without its query (signed storage URLs are very long), at most ``width``
    characters (the middle is cut)."""
    url = url.split("?", 1)[0]
    return url if len(url) <= width else url[: width // 2] + "…" + url[-(width // 2 - 1):]


def _kept(paths: list[Path], where: Path) -> str:
    """What was kept of a failed download: "" when nothing was (empty partial files are removed)."""
    for path in paths:
        if path.is_file() and path.stat().st_size == 0:
            _remove(path)
    size = sum(p.stat().st_size for p in paths if p.is_file())
    return f"the {size} bytes received are kept in {where}" if size else ""


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
        if any(magic.startswith(head) for magic in asset.magic):
            return f"it is truncated: only {len(head)} bytes"
        title = _html_title(head)
        if title is not None:
            what = f" titled {_short(repr(title), 60)}" if title else ""
            return f"it is an HTML page{what} (a quota, login or error page), not the file"
        kind = "a zip archive" if asset.magic == ZIP_MAGIC else "a PyTorch checkpoint"
        return f"it is not {kind} (starts with {head[:8]!r})"
    if asset.magic == ZIP_MAGIC:
        try:
            zipfile.ZipFile(path).close()  # reads the central directory at the end: a cut file has none
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            return f"it is not a complete zip archive ({_short(exc, 60)}): the transfer was cut short"
    elif (problem := torch_file_problem(path)) is not None:
        return f"it is not a complete PyTorch checkpoint: {problem}"
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


class _Refused(Exception):
    """The server answered, but not with the file (HTTP 4xx, an HTML page, too many bytes)."""


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
        raise _Refused(f"too many redirects while downloading {_short_url(url)}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _Retryable(f"cannot connect to {urlsplit(url).hostname} ({_short_reason(exc)})") from None
    except requests.RequestException as exc:  # a malformed URL, an unsupported scheme...
        raise DownloadError(f"cannot download {_short_url(url)}: {_short_reason(exc)}") from None

    with response:
        if url.startswith("https://") and response.url.startswith("http://"):
            raise _Refused(f"{_short_url(url)} redirected to the insecure URL {_short_url(response.url)}; refusing")
        status = response.status_code
        if status == 416 and offset:
            match = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                return  # the partial file already holds every byte
            _remove(part, meta_path)
            raise _Retryable("the partial file did not match the remote file; starting over")
        if status >= 500:
            raise _Retryable(f"HTTP {status} {response.reason} from {_short_url(response.url)}")
        if status >= 400:
            raise _Refused(f"HTTP {status} {response.reason} from {_short_url(response.url)}")

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
            what = f" titled {_short(repr(title), 60)}" if title else ""
            raise _Refused(f"{_short_url(response.url)} sent an HTML page{what} instead of {dest.name}")

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
                                 f"({_short_reason(exc)})") from None
    if total is not None and received < total:
        raise _Retryable(f"the server closed the connection after {received} of {total} bytes")
    if total is not None and received > total:
        _remove(part, meta_path)
        raise _Refused(f"{_short_url(url)} sent {received} bytes, more than the {total} it announced")


def fetch_url(url: str, dest: str | Path, asset: Asset, *, expected_size: int | None = None,
              sha256: str | None = None, options: FetchOptions | None = None,
              session: requests.Session | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed if present; follows redirects).

    Network failures and HTTP 5xx are retried ``options.retries`` times, each attempt resuming; when
    they run out, the bytes received stay in ``dest.part`` for the next run. HTTP 4xx, an HTML page,
    a wrong size, magic or digest raise :class:`DownloadError` and leave nothing at ``dest``. Every
    error is one line saying what was kept (only when something was) and what to do.
    """
    dest = Path(dest)
    options = options or FetchOptions()
    _make_dir(dest.parent, "download folder")
    part, meta_path = _part_paths(dest)
    fallback = asset.fallback(None if url == asset.default_url() else url)
    own_session = session is None
    session = session or requests.Session()
    session.headers["User-Agent"] = _USER_AGENT
    try:
        for attempt in range(options.retries + 1):
            try:
                _fetch_once(session, url, dest, options)
                break
            except _Refused as exc:  # an HTML page or too many bytes removed the partial file; a 4xx keeps it
                kept = _kept([part], part)
                raise DownloadError(f"{exc}; " + (f"{kept}; " if kept else "") + f"check the URL, or {fallback}") from None
            except _Retryable as exc:
                if attempt == options.retries:
                    kept = _kept([part], part)
                    if not kept:
                        _remove(meta_path)
                    todo = f"{kept}: run the same command to resume" if kept else fallback
                    raise DownloadError(f"{dest.name}: {exc}; {todo}") from None
                delay = min(options.backoff * 2**attempt, MAX_RETRY_DELAY_S)
                if not options.quiet:
                    print(f"{dest.name}: {exc}; retrying in {delay:.0f} s ({attempt + 1}/{options.retries})",
                          file=sys.stderr)
                options.sleep(delay)
            except OSError as exc:  # writing dest.part: a full disk, a quota, a read-only cache
                kept = _kept([part], part)
                raise DownloadError(f"cannot write {part}: {exc.strerror or exc}; "
                                    + (f"{kept}; " if kept else "")
                                    + "free some space or use --cache_dir DIR, then run the same command") from None
    finally:
        if own_session:
            session.close()
    problem = content_problem(part, asset, expected_size, sha256)
    if problem is not None:
        _remove(part, meta_path)
        raise DownloadError(f"the download of {dest.name} from {_short_url(url)} was rejected and deleted: {problem}")
    os.replace(part, dest)
    _remove(meta_path)
    return dest


# --------------------------------------------------------------------------------------------------
# Google Drive through gdown


def _gdown_reason(exc: BaseException) -> str:
    """The reason inside gdown's message, short, without its advice about gdown's own command line."""
    text = " ".join(str(exc).split())
    if re.search(r"too many users|quota", text, re.IGNORECASE):
        return "its download quota is exceeded"
    if "Cannot retrieve the public link" in text:
        return "no download link: quota exceeded or access restricted"
    match = re.search(r"received (\d+) bytes but the server announced (\d+) bytes", text)
    if match:
        return f"connection lost after {match.group(1)} of {match.group(2)} bytes"
    if text.startswith("Download is incomplete"):
        return "connection lost"
    match = re.search(r"Failed to retrieve file url: (.*?) You may still be able", text)
    if match:
        text = match.group(1)
    text = re.sub(r"^Download failed after \d+ retries: ", "", text)
    return _short_reason(text.rstrip("."))


def _gdown_partials(incoming: Path) -> list[Path]:
    """gdown's partial files for ``incoming``: ``<name><8 random characters>.part`` in its folder."""
    pattern = glob.escape(incoming.name) + "*.part"
    return [p for p in incoming.parent.glob(pattern) if len(p.name) == len(incoming.name) + 8 + len(".part")]


def _keep_one_partial(incoming: Path) -> None:
    """gdown refuses to resume when several partial files exist: keep the largest."""
    partials = sorted(_gdown_partials(incoming), key=lambda p: p.stat().st_size)
    for extra in partials[:-1]:
        _remove(extra)


def fetch_gdrive(url: str, dest: str | Path, asset: Asset, *, expected_size: int | None = None,
                 sha256: str | None = None, options: FetchOptions | None = None) -> Path:
    """Download a Google Drive file with gdown (large-file confirmation, cookies, resume) into
    ``<downloads>/.incoming/``, check it, then rename it to ``dest``. Errors are one line, ending with
    what to do: resume (when bytes were kept) or download by hand and use --from-zip."""
    import gdown  # imported here: only this path needs it

    dest = Path(dest)
    options = options or FetchOptions()
    incoming = _make_dir(dest.parent / ".incoming", "download folder") / dest.name
    _keep_one_partial(incoming)
    kwargs = {"url": url, "output": str(incoming), "quiet": options.quiet, "resume": True}
    accepted = inspect.signature(gdown.download).parameters
    if "timeout" in accepted:
        kwargs["timeout"] = options.timeout
    if "retries" in accepted:
        kwargs["retries"] = options.retries
    retrieval_error = getattr(gdown.exceptions, "FileURLRetrievalError", ())
    gdown_error = getattr(gdown.exceptions, "DownloadError", ())
    fallback = asset.fallback()
    host = urlsplit(url).hostname or url

    def kept_or_fallback() -> str:
        kept = _kept(_gdown_partials(incoming), incoming.parent)
        return f"{kept}: run the same command to resume" if kept else fallback

    try:
        gdown.download(**kwargs)
    except retrieval_error as exc:
        raise DownloadError(f"Google Drive refused to serve {dest.name} ({_gdown_reason(exc)}); {fallback}") from None
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(f"{host} answered HTTP {code} for {dest.name}; {fallback}") from None
    except gdown_error as exc:
        if "did not honor the requested byte range" in str(exc):  # a changed file or a server without Range
            for partial in _gdown_partials(incoming):
                _remove(partial)
            raise DownloadError(f"{host} could not resume the partial {dest.name}, so it was discarded; run the "
                                "same command to download it from the start") from None
        raise DownloadError(f"{dest.name}: {_gdown_reason(exc)}; {kept_or_fallback()}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise DownloadError(f"{dest.name}: cannot connect to {host} ({_short_reason(exc)}); {kept_or_fallback()}") from None
    except requests.RequestException as exc:
        raise DownloadError(f"{dest.name}: {_short_reason(exc)}; {kept_or_fallback()}") from None
    except OSError as exc:  # writing the partial file: a full disk, a quota, a read-only cache
        kept = _kept(_gdown_partials(incoming), incoming.parent)
        raise DownloadError(f"cannot write {incoming.parent}: {exc.strerror or exc}; " + (f"{kept}; " if kept else "")
                            + "free some space or use --cache_dir DIR, then run the same command") from None
    if not incoming.is_file():
        raise DownloadError(f"gdown reported success but wrote no {incoming}; {fallback}")
    problem = content_problem(incoming, asset, expected_size, sha256)
    if problem is not None:
        _remove(incoming)
        raise DownloadError(f"the download of {dest.name} was rejected and deleted: {problem}; {fallback}")
    os.replace(incoming, dest)
    return dest


# --------------------------------------------------------------------------------------------------
# Getting an asset: cache, --from-zip, download; then installing it


@dataclass
class DownloadRequest:
    """What ``python -m gafnet.data download`` was asked to do."""

    root: Path = Path(".")
    cache_dir: Path | None = None  # the project cache root (--cache_dir); downloads go to its downloads/
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
        path = check_regular_file(Path(request.from_file).expanduser(), "--from-zip")
        problem = content_problem(path, asset, asset.size, pinned)
        if problem is not None:
            raise InputError(f"--from-zip {path} is not usable: {problem}")
        _print_digest(request, asset, path, pinned)
        return path
    cache = downloads_dir(request.cache_dir)
    if cache.exists() and not cache.is_dir():
        raise InputError(f"the download folder {cache} is a file; give another cache with --cache_dir DIR")
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


def _install_dir(path: Path) -> Path:
    """``path`` as a directory to install into, or one clear error (it is a file, it cannot be created)."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path} is not a directory; give a directory with --root")
    return path


def _note(request: DownloadRequest) -> Callable[[str], None]:
    return lambda message: None if request.fetch.quiet else print(message, file=sys.stderr)


def _relabel(text: str, staged: Path, label: str) -> str:
    return text.replace(f"{staged}/", label).replace(str(staged), label.rstrip(":/"))


def _install_gafnet(archive: Path, request: DownloadRequest) -> None:
    root = Path(request.root)
    with extracted(archive, near=_install_dir(root), limits=ASSETS["gafnet"].unzip_limits) as staged:
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
    with extracted(archive, near=_install_dir(dest.parent), limits=ASSETS["casia-b"].unzip_limits) as staged:
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
    for place in (Path(request.root), casia_b_dir(request.root).parent):  # where unpacks of any target stage
        if place.is_dir():
            remove_leftovers(place, _note(request))
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
