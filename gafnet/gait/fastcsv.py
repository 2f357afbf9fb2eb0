"""The C parser for pose CSV lines (``_posecsv.c``), built on first use and loaded with ctypes.

Why: Arrow's CSV reader spends most of a CASIA-B-size parse converting text to numbers in a general way;
this parser knows the file's shape (a name, then numbers) and converts the common ``123.456`` in one pass,
which makes the whole load about twice as fast. It has no dependency beyond a C compiler; it is compiled
once per machine into the project cache (``$GAFNET_CACHE_DIR/build``, else ``~/.cache/gafnet/build``) with
``$CC`` (default ``cc``), and the compiled file is named by a hash of the source, compiler and platform,
so a changed source is rebuilt. Without a compiler (e.g. on Windows without build tools) the loader uses
Arrow's reader instead: same results, slower.

``GAFNET_POSE_PARSER=c|arrow|auto`` (default ``auto``) chooses; ``python -m gafnet.gait.fastcsv`` builds
the library and says where it is, or why it cannot be built.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("_posecsv.c")
ENGINES = ("auto", "c", "arrow")

# status codes of gafnet_parse_lines (the #defines in _posecsv.c)
ROW_OK, ROW_EMPTY, ROW_WRONG_COUNT, ROW_NON_NUMERIC, ROW_NOT_FINITE = 0, 1, 2, 3, 4

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_build_error: str | None = None


def compiler() -> list[str]:
    return (os.environ.get("CC") or "cc").split()


def library_path(cache_dir: Path | None = None) -> Path:
    from gafnet.embeddings import default_cache_dir

    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join(compiler() + [platform.machine(), platform.system(), sys.version]).encode())
    suffix = ".dll" if os.name == "nt" else ".so"
    return (cache_dir or default_cache_dir() / "build") / f"posecsv-{digest.hexdigest()[:16]}{suffix}"


class CompileError(OSError):
    """No compiler, or the compiler failed (a different cache directory would not help)."""


def _compile(target: Path) -> None:
    """Compile the source into ``target`` (atomically: a temporary file, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".posecsv.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        command = compiler() + ["-O2", "-shared", "-fPIC", "-o", tmp, str(SOURCE)]
        if shutil.which(command[0]) is None:
            raise CompileError(f"no C compiler ({command[0]!r} not found; set CC to use another)")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise CompileError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    i64, i32, ptr = ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p
    lib.gafnet_count_lines.restype = i64
    lib.gafnet_count_lines.argtypes = [ptr, i64]
    lib.gafnet_parse_lines.restype = i64
    lib.gafnet_parse_lines.argtypes = [ptr, i64, i32, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.gafnet_init.restype = ctypes.c_int
    lib.gafnet_init.argtypes = []
    if not lib.gafnet_init():  # before any thread parses: numbers are read in the "C" locale
        raise OSError("the C locale is not available to the pose parser")
    return lib


def _trusted(path: Path) -> bool:
    """A library file we may load: ours, and not writable by others (POSIX)."""
    if os.name != "posix":
        return True
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def get_library() -> ctypes.CDLL | None:
    """The loaded parser, building it if needed; None if it cannot be built (see :func:`build_error`)."""
    global _library, _build_error
    with _lock:
        if _library is not None or _build_error is not None:
            return _library
        try:
            path = library_path()
            try:
                if not path.exists():
                    _compile(path)
                if not _trusted(path):
                    raise PermissionError(f"{path} belongs to another user or is writable by others")
            except CompileError:
                raise
            except OSError:  # an unusable cache (read-only, not a directory, not ours): a private one
                path = library_path(Path(tempfile.mkdtemp(prefix="gafnet_build_")))
                _compile(path)
            _library = _load(path)
        except (OSError, subprocess.SubprocessError) as exc:
            _build_error = str(exc) or type(exc).__name__
        return _library


def build_error() -> str | None:
    return _build_error


def choose_engine(engine: str | None = None) -> str:
    """``"c"`` or ``"arrow"``: ``engine``, else ``$GAFNET_POSE_PARSER``, else auto (C if it builds)."""
    engine = (engine or os.environ.get("GAFNET_POSE_PARSER") or "auto").lower()
    if engine not in ENGINES:
        raise ValueError(f"unknown pose parser {engine!r}: choose one of {', '.join(ENGINES)} "
                         "(GAFNET_POSE_PARSER)")
    if engine == "arrow":
        return "arrow"
    if get_library() is None:
        if engine == "c":
            raise RuntimeError(f"the C pose parser cannot be built: {_build_error}")
        return "arrow"
    return "c"


def _checked_library() -> ctypes.CDLL:
    lib = get_library()
    if lib is None:
        raise RuntimeError(f"the C pose parser cannot be built: {_build_error}")
    return lib


def count_lines(raw: np.ndarray, start: int, stop: int) -> int:
    """The number of lines in ``raw[start:stop]`` (line ends \\n, \\r\\n or \\r; a last unterminated line counts)."""
    return int(_checked_library().gafnet_count_lines(raw.ctypes.data + start, stop - start))


def parse_lines(raw: np.ndarray, start: int, stop: int, values: np.ndarray, status: np.ndarray,
                columns: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Parse the lines of ``raw[start:stop]`` (uint8) into the given arrays, one entry per line.

    ``values`` (n, V) float32, ``status`` (n,) int8 (ROW_*), ``columns`` (n,) int32, with n =
    :func:`count_lines`, all C-contiguous. Returns the names and the names without their frame part
    (``_00319.png``, ``F016.jpg``, ``/000042.jpg``: a separator, digits, an extension), each as
    (offsets (n + 1,) int64, bytes uint8). The GIL is released meanwhile (ctypes), so pieces of a file
    can be parsed in threads.
    """
    lib = _checked_library()
    n = len(status)
    assert values.flags.c_contiguous and values.dtype == np.float32 and values.shape[0] == n
    assert status.dtype == np.int8 and columns.dtype == np.int32 and len(columns) == n
    name_offsets, prefix_offsets = np.empty(n + 1, np.int64), np.empty(n + 1, np.int64)
    names, prefixes = np.empty(max(stop - start, 1), np.uint8), np.empty(max(stop - start, 1), np.uint8)
    found = lib.gafnet_parse_lines(raw.ctypes.data + start, stop - start, values.shape[1], n, values.ctypes.data,
                                   status.ctypes.data, columns.ctypes.data, name_offsets.ctypes.data,
                                   names.ctypes.data, prefix_offsets.ctypes.data, prefixes.ctypes.data)
    if found != n:  # pragma: no cover - count_lines and the parser agree on what a line is
        raise RuntimeError(f"pose parser: found {found} lines where {n} were counted")
    return ((name_offsets, names[:int(name_offsets[n])]), (prefix_offsets, prefixes[:int(prefix_offsets[n])]))


def main() -> int:
    lib = get_library()
    if lib is None:
        print(f"the C pose parser cannot be built: {_build_error}\npose files will be read with Arrow's CSV reader",
              file=sys.stderr)
        return 1
    print(f"C pose parser: {lib._name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
