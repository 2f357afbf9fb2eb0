"""Atomic file writes: write to a temporary file in the target directory, fsync, then rename.

A reader never sees a half-written result or checkpoint, and an interrupted write leaves the previous
file untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    The caller writes the temporary file by whatever means (``torch.save``, ``np.save``, ``df.to_csv``).
    On an exception the temporary file is removed and ``path`` is left as it was. ``fsync=False`` skips
    the flush to disk (for caches, whose readers treat an unreadable entry as a miss).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; results should get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
