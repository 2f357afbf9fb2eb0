"""Atomic writes of files and folders, and the removal of temporaries left by killed processes."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gafnet.atomic import atomic_dir, atomic_path, is_stale_temporary, remove_stale_temporaries, temp_prefix
from gafnet.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_a_file_appears_only_complete_and_a_failed_write_leaves_the_old_one(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the writer failed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def special_files(tmp_path):
    """A FIFO, a socket and (where mknod is allowed) a null device of our own: never replace them."""
    import socket
    import stat

    os.mkfifo(tmp_path / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    found = {"fifo": "a FIFO", "sock": "a socket"}
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        found["null"] = "a device"
    except OSError:
        pass  # not root: FIFOs and sockets still show the rule
    return found, server


def test_a_device_fifo_or_socket_is_never_replaced(tmp_path):
    found, server = special_files(tmp_path)
    try:
        before = {name: os.lstat(tmp_path / name) for name in found}
        for name, kind in found.items():
            with pytest.raises(InputError, match=f"it is {kind}, not a regular file; nothing was written"):
                with atomic_path(tmp_path / name) as tmp:
                    tmp.write_text("x")
            after = os.lstat(tmp_path / name)
            assert (after.st_mode, after.st_ino) == (before[name].st_mode, before[name].st_ino)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(found)  # no temporary left
    finally:
        server.close()


def test_evaluate_refuses_a_device_or_fifo_output_before_any_work(tmp_path):
    found, server = special_files(tmp_path)
    try:
        for name, kind in found.items():
            r = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--demo", "--demo_small", "--quiet",
                                "--cache_dir", str(tmp_path / "cache"), "--output", str(tmp_path / name)],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 2 and r.stderr.strip() == (f"evaluate.py: error: --output {tmp_path / name}: it is "
                                                              f"{kind}, not a regular file; nothing was written: give "
                                                              "a file name"), r.stderr
            assert not (tmp_path / "cache").exists()  # refused before the demo tree was made
    finally:
        server.close()


def test_a_folder_appears_only_complete(tmp_path):
    target = tmp_path / "crops"
    with pytest.raises(KeyError):
        with atomic_dir(target) as tmp:
            (tmp / "a.png").write_bytes(b"x")
            raise KeyError("the writer failed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a.png").write_bytes(b"x")
    assert sorted(p.name for p in target.iterdir()) == ["a.png"] and list(tmp_path.iterdir()) == [target]


def test_a_full_disk_is_one_line_for_files_and_folders(small_disk):
    disk = small_disk("16k")
    with pytest.raises(InputError, match=r"cannot write .*big: No space left on device; nothing was written"):
        with atomic_path(disk / "big") as tmp:
            tmp.write_bytes(b"\0" * 100_000)
    with pytest.raises(InputError, match=r"cannot write .*folder: No space left on device; the index was left"):
        with atomic_dir(disk / "folder", kept="the index was left as it was") as tmp:
            (tmp / "x").write_bytes(b"\0" * 100_000)
    assert list(disk.iterdir()) == []


def test_a_directory_is_never_replaced_by_a_file(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        with atomic_path(tmp_path / "out"):
            pass


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_temporaries_of_a_killed_process_are_removed_by_the_next_write_and_live_ones_are_kept(tmp_path, kind):
    code = ("import os, signal, sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "from gafnet.atomic import atomic_dir, atomic_path; "
            f"ctx = atomic_{'path' if kind == 'file' else 'dir'}(Path(sys.argv[2]) / 'result'); tmp = ctx.__enter__(); "
            f"{'tmp.write_text(chr(120))' if kind == 'file' else '(tmp / chr(120)).write_text(chr(120))'}; "
            "os.kill(os.getpid(), signal.SIGKILL)")
    r = subprocess.run([sys.executable, "-c", code, str(ROOT), str(tmp_path)], capture_output=True)
    assert r.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir()]
    assert len(left) == 1 and is_stale_temporary(left[0].name)  # the killed writer's temporary
    live = tmp_path / (temp_prefix("other") + "x.tmp")  # this process's own, still being written
    live.write_text("mine")
    stranger = tmp_path / ".notes.txt.tmp"  # not this project's
    stranger.write_text("theirs")
    with atomic_path(tmp_path / "next.json") as tmp:
        tmp.write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, stranger.name, "next.json"])
    assert remove_stale_temporaries(tmp_path) == []
    os.unlink(live)
