"""Shared test settings: one torch thread, and no network anywhere in the suite."""

import ipaddress
import os
import socket

import pytest

# Subprocesses (the scripts run as a user runs them) inherit these: any HTTP(S) request they make goes to a
# closed local port and fails at once, model hubs stay offline, and nothing writes to the user's config.
os.environ.update({"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                   "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                   "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                   "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"})


def _is_loopback(host) -> bool:
    if host in ("localhost", None, ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection to, or name lookup of, a host other than this machine fails the test."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise AssertionError(f"test tried to reach the network: {address}")
        return real_connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host if not isinstance(host, bytes) else host.decode()):
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The suite's tensors are tiny: one thread is as fast, and far faster when other processes share the
    cores (two OpenMP threads contending made the gait tests about 15x slower). Subprocesses are unaffected."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_disk(tmp_path):
    """A factory of tiny file systems (tmpfs) for full-disk tests: ``small_disk("64k")`` → a mounted folder.

    Skips the test where mounting is not permitted (not root, or no tmpfs). Everything is unmounted afterwards, and
    a file system that cannot be unmounted (a descriptor left open in it) fails the test.
    """
    import shutil
    import subprocess

    mounted = []

    def make(size: str = "64k", inodes: int | None = None):
        if shutil.which("mount") is None:
            pytest.skip("no mount command: cannot make a small file system")
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not permitted'})")
        mounted.append(where)
        return where

    yield make
    busy = []
    for where in mounted:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:  # busy: a file left open in it
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
            busy.append(where)
    if busy:
        pytest.fail(f"a file on the small disk {busy[0]} was left open (it could not be unmounted): a leaked descriptor")
