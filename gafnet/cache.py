"""The project's one cache: where it lives, how an entry is keyed, atomic writes and pruning.

Location (every script): ``--cache_dir`` (``--cache-dir`` is accepted too), else ``$GAFNET_CACHE_DIR``, else
``$XDG_CACHE_HOME/gafnet``, else ``~/.cache/gafnet``. Inside it, one folder per kind of entry:

    embeddings/   parsed embedding CSVs (.npy)            gafnet.embeddings
    poses/        parsed pose CSVs (.npz)                 gafnet.gait.poses
    demo/         the generated --demo trees              gafnet.synthetic
    downloads/    downloaded archives and checkpoints     gafnet.data.download

Keys. An entry is named after the source file's resolved path and the identity of the file that was
actually read: device, inode, size, modification time and status-change time, taken with ``fstat`` on the
open descriptor *before* the file is read. After parsing, the entry is stored only if nothing changed while
it was read (the same identity on the descriptor and at the path), so a file replaced or rewritten during a
parse is never cached under either version's key. The status-change time (ctime) cannot be set back by user
tools (``touch -d`` or ``cp -p`` change it), so a changed file always gets a new key and a stale entry is
never read.

Writes are atomic (temporary file + rename, :mod:`gafnet.atomic`); a reader treats an unreadable entry as a
miss. Storing an entry removes the older entries of the same source path, so the cache holds at most one
entry per (source file, kind, tag). Nothing here is an error: a cache that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from .atomic import atomic_path
from .errors import InputError

T = TypeVar("T")

CACHE_ENV = "GAFNET_CACHE_DIR"


def cache_root(directory: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``directory`` if given, else ``$GAFNET_CACHE_DIR``, ``$XDG_CACHE_HOME/gafnet``, ``~/.cache/gafnet``."""
    if directory:
        return Path(directory).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "gafnet"


@dataclass(frozen=True)
class FileIdentity:
    """What identifies one version of a file: (device, inode, size, mtime, ctime), all from one stat."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "FileIdentity":
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def token(self) -> str:
        text = f"{self.dev}:{self.ino}:{self.size}:{self.mtime_ns}:{self.ctime_ns}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def check_regular_file(path: str | os.PathLike, what: str = "") -> Path:
    """``path`` as a Path if it names a regular file; InputError otherwise (missing, a directory, a FIFO...).

    Called before opening, so that a FIFO or a device never blocks a script.
    """
    path = Path(path)
    label = f"{what}: " if what else ""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{label}{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{label}{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{label}{path} is a directory; give the path of a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{label}{path} is not a regular file (a FIFO, socket or device); give the path of a file")
    return path


class SourceFile:
    """An input file opened once: its identity is taken before it is read, and it is read from that descriptor.

    Reading copies the bytes into memory (no memory map), so a file truncated by another process while it
    is read cannot crash this one (SIGBUS); the change is seen by :meth:`unchanged` instead.
    """

    def __init__(self, path: str | os.PathLike, what: str = ""):
        self.path = check_regular_file(path, what)
        try:
            self._fh = open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"{(what + ': ') if what else ''}{self.path}: cannot be read ({exc.strerror})") from None
        self.identity = FileIdentity.of(os.fstat(self._fh.fileno()))

    def read_bytes(self) -> bytes:
        self._fh.seek(0)
        return self._fh.read()

    def unchanged(self) -> bool:
        """True if the open file and the file at the path are still the version that was identified."""
        try:
            now_fd = FileIdentity.of(os.fstat(self._fh.fileno()))
            now_path = FileIdentity.of(os.stat(self.path))
        except OSError:
            return False
        return now_fd == self.identity and now_path == self.identity

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "SourceFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileCache:
    """Parsed files of one kind (``embeddings``, ``poses``), one entry per source file, keyed as above.

    ``tag`` distinguishes entries of one source that depend on how it was read (e.g. the pose dataset);
    ``version`` is bumped when the stored layout changes, so older entries are simply misses.
    """

    def __init__(self, kind: str, directory: str | os.PathLike | None = None, enabled: bool = True,
                 version: int = 1, suffix: str = ".npy"):
        self.directory = cache_root(directory) / kind
        self.enabled = enabled
        self.version = version
        self.suffix = suffix

    def _prefix(self, source: SourceFile, tag: str) -> str:
        path_key = hashlib.sha1(str(source.path.resolve()).encode()).hexdigest()[:16]
        return f"{source.path.stem}-{path_key}-{tag + '-' if tag else ''}v{self.version}-"

    def entry(self, source: SourceFile, tag: str = "") -> Path:
        """The cache file for this version of ``source``."""
        return self.directory / f"{self._prefix(source, tag)}{source.identity.token()}{self.suffix}"

    def load(self, source: SourceFile, reader: Callable[[Path], T], tag: str = "") -> T | None:
        """``reader(entry)`` if an entry for this version of ``source`` exists and reads; else None."""
        if not self.enabled:
            return None
        entry = self.entry(source, tag)
        if not entry.is_file():
            return None
        try:
            return reader(entry)
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            return None  # unreadable entry: a miss

    def store(self, source: SourceFile, writer: Callable[[Path], None], tag: str = "") -> bool:
        """Write the entry with ``writer(tmp_path)`` if ``source`` did not change while it was read.

        Older entries of the same source are removed. Returns whether the entry was stored.
        """
        if not self.enabled or not source.unchanged():
            return False
        entry = self.entry(source, tag)
        try:
            with atomic_path(entry, suffix=self.suffix, fsync=False) as tmp:
                writer(tmp)
            for old in entry.parent.glob(self._prefix(source, tag) + "*" + self.suffix):
                if old != entry:
                    old.unlink(missing_ok=True)
        except (OSError, InputError):  # atomic_path reports write failures as InputError
            return False  # a cache that cannot be written is not an error: the next run parses again
        return True
