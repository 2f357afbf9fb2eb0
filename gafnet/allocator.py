"""Keep freed memory in the process for reuse (glibc): faster CPU training and extraction, the same numbers.

PyTorch's CPU tensors come from ``malloc``. glibc serves every block above 32 MB with a fresh ``mmap`` and
returns it to the system on ``free``, so a training step, whose activations are tens of MB each, asks the
kernel for new zeroed pages again and again (millions of page faults per epoch). With ``mmap`` switched off
for ``malloc`` and a high trim threshold, freed blocks stay in the heap and are reused: the arithmetic is
unchanged, peak memory grows a little. The measured effect (training and extraction throughput with and
without the tuning, on the same machine in the same run) is printed by ``benchmarks/bench_model.py``
(``--no-malloc-tuning``) and ``benchmarks/bench_extraction.py`` (``GAFNET_MALLOC_TUNING=0``); the README's
Performance section quotes those figures. ``tests/test_allocator.py`` checks the mechanism (page faults).

The scripts call :func:`keep_freed_memory` at start. It does nothing outside Linux/glibc (other allocators
behave differently) or with ``GAFNET_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # free memory above 1 GiB at the top of the heap is still given back

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve large blocks from the heap and keep them; True if it was done."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("GAFNET_MALLOC_TUNING", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
