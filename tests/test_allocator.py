"""gafnet.allocator: glibc keeps freed large blocks (no page faults on reuse); opt-out; no-op elsewhere."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from gafnet import allocator

ROOT = Path(__file__).resolve().parents[1]
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# malloc, touch and free a 64 MB block 30 times (as PyTorch's CPU allocator does); print the page faults
PROBE = """
import ctypes, resource
from gafnet.allocator import keep_freed_memory
print(keep_freed_memory())
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)
    libc.free(block)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_probe(tuning: str) -> tuple[str, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), GAFNET_MALLOC_TUNING=tuning)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    applied, faults = done.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not GLIBC, reason="the tuning is for glibc's malloc (Linux)")
def test_freed_large_blocks_are_reused_without_page_faults():
    applied, faults = run_probe("1")
    default, default_faults = run_probe("0")
    assert applied == "True" and default == "False"
    pages = 30 * (64 << 20) // 4096
    assert default_faults > pages // 2  # glibc maps and unmaps every 64 MB block: every page faults again
    assert faults < pages // 10  # tuned: the first block's pages are reused


def test_opt_out_and_once_only(monkeypatch):
    monkeypatch.setattr(allocator, "_done", None)
    monkeypatch.setenv("GAFNET_MALLOC_TUNING", "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.setenv("GAFNET_MALLOC_TUNING", "1")
    assert allocator.keep_freed_memory() is False  # decided once per process
