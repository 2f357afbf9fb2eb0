"""Atomic file writes: write to a temporary file in the target directory, fsync, then rename.

A reader never sees a half-written result or checkpoint, and an interrupted write leaves the previous
file untouched. A write that fails for want of space or permission ends as one :class:`InputError` line
that says the previous file (if any) was left as it was.

Temporary files are named ``.<target>.gafnet-<host>-<pid>-<random><suffix>.tmp``: a process killed while
writing (``kill -9``) leaves one behind, and the next atomic write in that directory removes the ones whose
process is gone (same host, pid no longer running). Temporary files of running processes and files this
project did not make are never touched.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import InputError

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TEMP = re.compile(r"^\..*\.gafnet-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[^/]*\.tmp$")
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENAMETOOLONG,
                 errno.EISDIR, errno.ENOTDIR, errno.EIO}


def temp_prefix(name: str) -> str:
    """The prefix of this process's temporary files for a target named ``name`` (also used for directories)."""
    return f".{name}.gafnet-{_HOST}-{os.getpid()}-"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale_temporary(name: str) -> bool:
    """True for a temporary file or directory of this project whose process (on this host) is gone."""
    match = _TEMP.match(name)
    if match is None or match.group("host") != _HOST:
        return False
    pid = int(match.group("pid"))
    return pid != os.getpid() and not pid_alive(pid)


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Remove this project's temporaries left in ``directory`` by killed processes; returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not is_stale_temporary(entry.name):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def disk_full(path: str | os.PathLike, margin: int = 1 << 20) -> bool:
    """True when the file system holding ``path`` has (almost) no free space left."""
    try:
        return shutil.disk_usage(Path(path).parent).free < margin
    except OSError:
        return False


def write_failure(path: str | os.PathLike, exc: BaseException, existed: bool) -> InputError | None:
    """The one-line error for a failed write of ``path``, or None if ``exc`` is not a write failure.

    Covers OSError (no space, quota, read-only, permission, name too long…) and the RuntimeError that
    torch.save raises on a full disk.
    """
    kept = f"the previous {Path(path).name} was left as it was" if existed else "nothing was written"
    if isinstance(exc, OSError) and (exc.errno in _WRITE_ERRNOS or exc.errno is None):
        reason = exc.strerror or str(exc)
        return InputError(f"cannot write {path}: {reason}; {kept}")
    if isinstance(exc, RuntimeError) and disk_full(path):
        return InputError(f"cannot write {path}: no space left on the device; {kept}")
    return None


def check_target(path: str | os.PathLike, what: str = "cannot write") -> None:
    """Refuse to replace anything but a regular file: a directory, a device (``/dev/null``, ``/dev/full``), a FIFO
    or a socket at ``path`` would be replaced by the renamed temporary file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError:
        return  # e.g. a dangling link or no permission: the write itself says what is wrong
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise InputError(f"{what} {path}: it is {kind}, not a regular file; nothing was written: give a file name")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    The caller writes the temporary file by whatever means (``torch.save``, ``np.save``, ``df.to_csv``).
    On an exception the temporary file is removed and ``path`` is left as it was; a write failure (no
    space, no permission…) is raised as an InputError saying so. ``fsync=False`` skips the flush to disk
    (for caches, whose readers treat an unreadable entry as a miss).
    """
    path = Path(path)
    check_target(path)
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=suffix + ".tmp", dir=path.parent)
    except OSError as exc:  # the directory cannot hold a new file: always a write failure
        kept = f"the previous {path.name} was left as it was" if existed else "nothing was written"
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; {kept}") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; results should get the usual permissions
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
        check_target(path)  # again: something may have been put there while the file was written
        os.replace(tmp_path, path)
    except (OSError, RuntimeError) as exc:
        error = write_failure(path, exc, existed)
        if error is None:
            raise
        raise error from None
    finally:
        try:
            tmp_path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


def stage_dir(path: str | os.PathLike) -> Path:
    """A new, empty staging folder next to ``path`` (named with :func:`temp_prefix`, so one left by a killed process
    is removed by the next write there), for outputs filled step by step and renamed onto ``path`` at the end."""
    path = Path(path)
    remove_stale_temporaries(path.parent)
    stage = path.parent / (temp_prefix(path.name) + "dir.tmp")
    try:
        stage.mkdir()
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; nothing was written") from None
    return stage


@contextmanager
def atomic_dir(path: str | os.PathLike, kept: str = "nothing was written there") -> Iterator[Path]:
    """Yield a new temporary directory next to ``path``; on success it is renamed to ``path`` (which must not exist).

    The directory is named with :func:`temp_prefix`, so one left by a killed process is removed by the next atomic
    write there. On an exception it is removed; a write failure is raised as one InputError line ending in
    ``kept`` (what the caller left as it was).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; {kept}") from None
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; {kept}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
