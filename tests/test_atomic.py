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
