"""Safe unpacking (gafnet.data.unzip): hostile and broken archives are refused before anything is written,
and a validated tree is moved into place without overwriting different existing files."""

from __future__ import annotations

import errno
import io
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gafnet.atomic import is_stale_temporary, temp_prefix
from gafnet.data import unzip
from gafnet.data.unzip import (
    UnsafeArchiveError,
    UnzipLimits,
    content_root,
    extract_all,
    extracted,
    install_tree,
    open_zip,
)
from gafnet.errors import InputError


def make_zip(path: Path, members: list[tuple[str, bytes] | zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            if isinstance(member, tuple):
                archive.writestr(member[0], member[1])
            else:
                archive.writestr(member, b"")
    return path


def special_member(name: str, mode: int, data: bytes = b"") -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode in external_attr counts
    info.external_attr = mode << 16
    return info, data


def assert_empty(directory: Path) -> None:
    assert not directory.exists() or list(directory.iterdir()) == []


def test_a_valid_archive_is_extracted(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", [("a/b.csv", b"x,y\n1,2\n"), ("c.txt", b"hello"), ("a/d/", b"")])
    dest = tmp_path / "out"
    dest.mkdir()
    files = extract_all(archive, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in files) == ["a/b.csv", "c.txt"]
    assert (dest / "a" / "b.csv").read_bytes() == b"x,y\n1,2\n"
    assert (dest / "a" / "d").is_dir()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.csv", "points outside"),
        ("a/../../evil.csv", "points outside"),
        ("..\\evil.csv", "points outside"),
        ("/etc/evil.csv", "absolute path"),
        ("\\evil.csv", "absolute path"),
        ("C:/evil.csv", "absolute path"),
    ],
)
def test_zip_slip_names_are_refused_before_anything_is_written(tmp_path, name, message):
    archive = make_zip(tmp_path / "slip.zip", [("fine.csv", b"a,b\n"), (name, b"pwned")])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_all(archive, dest)
    assert_empty(dest)
    assert not (tmp_path / "evil.csv").exists()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFCHR | 0o600, "character device"),
        (stat.S_IFBLK | 0o600, "block device"),
        (stat.S_IFIFO | 0o600, "FIFO"),
        (stat.S_IFSOCK | 0o600, "socket"),
    ],
)
def test_links_and_special_files_are_refused(tmp_path, mode, message):
    archive = make_zip(tmp_path / "special.zip", [("fine.csv", b"a,b\n"), special_member("link", mode, b"/etc/passwd")])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_all(archive, dest)
    assert_empty(dest)


def test_regular_unix_files_with_modes_are_fine(tmp_path):
    archive = make_zip(tmp_path / "modes.zip", [special_member("run.sh", stat.S_IFREG | 0o755, b"#!/bin/sh\n")])
    dest = tmp_path / "out"
    dest.mkdir()
    extract_all(archive, dest)
    assert (dest / "run.sh").read_bytes() == b"#!/bin/sh\n"
    assert not (dest / "run.sh").stat().st_mode & 0o111  # modes from the archive are not applied


def _set_encrypted_flag(raw: bytearray) -> None:
    raw[raw.index(b"PK\x01\x02") + 8] |= 0x1  # central directory, general purpose flag bit 0: encrypted


def _flip_a_data_byte(raw: bytearray) -> None:
    raw[60] ^= 0xFF  # a byte of the compressed data


@pytest.mark.parametrize("damage,match", [(_set_encrypted_flag, "encrypted"), (_flip_a_data_byte, "corrupt")])
def test_an_encrypted_or_corrupt_member_is_refused(tmp_path, damage, match):
    raw = bytearray(make_zip(tmp_path / "ok.zip", [("a.csv", b"a,b\n" * 10_000)]).read_bytes())
    damage(raw)
    (tmp_path / "bad.zip").write_bytes(raw)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=match):
        extract_all(tmp_path / "bad.zip", dest)


def test_duplicate_members_are_refused(tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = make_zip(tmp_path / "dup.zip", [("a.csv", b"1"), ("a.csv", b"2")])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="appears twice"):
        extract_all(archive, dest)


def test_a_path_that_is_both_file_and_directory_is_refused(tmp_path):
    archive = make_zip(tmp_path / "clash.zip", [("a", b"file"), ("a/b.csv", b"x")])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="both a file and a directory"):
        extract_all(archive, dest)
    assert_empty(dest)


def test_an_oversized_archive_is_refused_by_declared_size(tmp_path):
    """A zip bomb: 5 MB of zeros compress to a few kB; the cap is on the uncompressed size."""
    archive = make_zip(tmp_path / "bomb.zip", [("zeros.bin", bytes(5 * 1024 * 1024))])
    assert archive.stat().st_size < 50_000
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="exceeds the cap"):
        extract_all(archive, dest, UnzipLimits(max_total_bytes=1024 * 1024, max_files=10))
    assert_empty(dest)


def test_too_many_files_are_refused(tmp_path):
    archive = make_zip(tmp_path / "many.zip", [(f"f{i}.txt", b"x") for i in range(11)])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="more than 10 files"):
        extract_all(archive, dest, UnzipLimits(max_total_bytes=10**9, max_files=10))
    assert_empty(dest)


def test_a_member_larger_than_it_declares_is_stopped(tmp_path):
    """zipfile itself stops reading at the declared size; the byte count is a second guard."""
    archive = make_zip(tmp_path / "liar.zip", [("a.bin", b"0123456789" * 100)])
    raw = bytearray(archive.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 24:central + 28] = (10).to_bytes(4, "little")  # declared uncompressed size: 10
    (tmp_path / "liar2.zip").write_bytes(raw)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError):
        extract_all(tmp_path / "liar2.zip", dest)


def test_a_truncated_archive_gives_one_clear_message(tmp_path):
    full = make_zip(tmp_path / "full.zip", [("a.csv", b"a,b\n" * 10_000)]).read_bytes()
    (tmp_path / "cut.zip").write_bytes(full[: len(full) // 2])
    with pytest.raises(UnsafeArchiveError, match="not a complete zip archive.*truncated download"):
        open_zip(tmp_path / "cut.zip")


def test_an_html_page_saved_as_zip_is_named_as_such(tmp_path):
    page = tmp_path / "gaf-net-data.zip"
    page.write_text("<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>")
    with pytest.raises(UnsafeArchiveError, match="HTML page"):
        open_zip(page)


def test_macos_junk_is_skipped(tmp_path):
    archive = make_zip(tmp_path / "mac.zip", [("data/a.csv", b"a,b\n"), ("__MACOSX/data/._a.csv", b"junk"),
                                              ("data/.DS_Store", b"junk")])
    dest = tmp_path / "out"
    dest.mkdir()
    extract_all(archive, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["data", "data/a.csv"]


def test_extracted_cleans_up_after_an_error_and_after_success(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", [("a.csv", b"a,b\n")])
    near = tmp_path / "root"
    with pytest.raises(RuntimeError):
        with extracted(archive, near=near) as staged:
            assert (staged / "a.csv").exists()
            raise RuntimeError("validation failed")
    assert list(near.iterdir()) == []
    with extracted(archive, near=near) as staged:
        pass
    assert not staged.exists() and list(near.iterdir()) == []


def test_an_interrupted_extraction_leaves_nothing(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "ok.zip", [(f"d/f{i}.csv", b"a,b\n") for i in range(5)])
    calls = []
    real = unzip._extract_member

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(unzip, "_extract_member", interrupted)
    near = tmp_path / "root"
    with pytest.raises(KeyboardInterrupt):
        with extracted(archive, near=near):
            pass
    assert list(near.iterdir()) == []


def test_content_root_unwraps_a_single_folder(tmp_path):
    (tmp_path / "wrap" / "embeddings").mkdir(parents=True)
    assert content_root(tmp_path, markers=("embeddings", "poses")) == tmp_path / "wrap"
    assert content_root(tmp_path) == tmp_path / "wrap"
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="found: other, wrap"):
        content_root(tmp_path, markers=("embeddings", "poses"))


def _staged(tmp_path: Path, files: dict[str, bytes]) -> Path:
    staged = tmp_path / "staged"
    for rel, data in files.items():
        (staged / rel).parent.mkdir(parents=True, exist_ok=True)
        (staged / rel).write_bytes(data)
    return staged


def test_install_into_a_new_destination_is_one_rename(tmp_path):
    staged = _staged(tmp_path, {"a/x.csv": b"1", "b.csv": b"2"})
    result = install_tree(staged, tmp_path / "dest")
    assert (tmp_path / "dest" / "a" / "x.csv").read_bytes() == b"1"
    assert not staged.exists()
    assert sorted(p.name for p in result.installed) == ["b.csv", "x.csv"]


def test_install_merges_and_leaves_identical_files_alone(tmp_path):
    dest = tmp_path / "dest"
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "x.csv").write_bytes(b"1")
    (dest / "README.md").write_text("user notes")
    staged = _staged(tmp_path, {"a/x.csv": b"1", "a/y.csv": b"3", "c/z.csv": b"4"})
    result = install_tree(staged, dest)
    assert result.unchanged == [dest / "a" / "x.csv"]
    assert sorted(p.relative_to(dest).as_posix() for p in result.installed) == ["a/y.csv", "c/z.csv"]
    assert (dest / "README.md").read_text() == "user notes"


def test_a_different_existing_file_is_not_overwritten_without_force(tmp_path):
    dest = tmp_path / "dest"
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "x.csv").write_bytes(b"mine")
    staged = _staged(tmp_path, {"a/x.csv": b"theirs", "a/new.csv": b"new"})
    with pytest.raises(InputError, match=r"(?s)1 existing file\(s\) differ.*--force") as info:
        install_tree(staged, dest)
    assert str(dest / "a" / "x.csv") in str(info.value)
    assert (dest / "a" / "x.csv").read_bytes() == b"mine"
    assert not (dest / "a" / "new.csv").exists()  # nothing at all was moved
    install_tree(staged, dest, force=True)
    assert (dest / "a" / "x.csv").read_bytes() == b"theirs"
    assert (dest / "a" / "new.csv").read_bytes() == b"new"


def test_a_file_where_the_archive_has_a_folder_is_an_error_even_with_force(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a").write_text("a file")
    staged = _staged(tmp_path, {"a/x.csv": b"1"})
    with pytest.raises(InputError, match="not a directory"):
        install_tree(staged, dest, force=True)
    assert (dest / "a").read_text() == "a file"


# --------------------------------------------------------------------------------------------------
# Hostile names and methods (issue 10, "Unpacking"): one clear error before anything is written


@pytest.mark.parametrize(
    "name",
    [
        "embeddings/" + "a" * 256 + ".csv",  # a file name of 260 bytes
        "é" * 128 + "/x.csv",  # a folder name of 256 bytes in UTF-8 (128 characters)
    ],
)
def test_a_name_part_over_255_bytes_is_refused_before_anything_is_written(tmp_path, name):
    archive = make_zip(tmp_path / "long.zip", [("fine.csv", b"a,b\n"), (name, b"a,b\n")])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="longer than the 255 bytes file systems allow") as info:
        extract_all(archive, dest)
    assert len(str(info.value)) < 300  # the name is shortened in the message
    assert_empty(dest)


def test_a_name_part_of_exactly_255_bytes_is_fine(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", [("d/" + "a" * 251 + ".csv", b"a,b\n")])
    dest = tmp_path / "out"
    dest.mkdir()
    (written,) = extract_all(archive, dest)
    assert written.read_bytes() == b"a,b\n"


def test_a_path_longer_than_the_file_system_allows_is_one_error_and_leaves_nothing(tmp_path):
    """Each part is short, but the whole path passes Linux's PATH_MAX (4096 bytes): ENAMETOOLONG while writing."""
    deep = "/".join(["d" * 200] * 25) + "/x.csv"  # 5 KB
    archive = make_zip(tmp_path / "deep.zip", [("fine.csv", b"a,b\n"), (deep, b"a,b\n")])
    near = tmp_path / "root"
    with pytest.raises(InputError, match="File name too long.*choose a shorter --root.*nothing was installed"):
        with extracted(archive, near=near):
            pass
    assert list(near.iterdir()) == []


def test_a_name_that_is_not_utf8_although_flagged_so_is_refused(tmp_path):
    raw = bytearray(make_zip(tmp_path / "ok.zip", [("embeddings/aaaa.csv", b"a,b\n")]).read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 9] |= 0x08  # general purpose flag bit 11: names are UTF-8
    raw[raw.index(b"embeddings/aaaa.csv", central) + 11] = 0xFF  # not UTF-8
    (tmp_path / "bad.zip").write_bytes(raw)
    with pytest.raises(UnsafeArchiveError, match="not valid UTF-8"):
        open_zip(tmp_path / "bad.zip")


def test_an_unknown_compression_method_is_refused_before_anything_is_written(tmp_path):
    raw = bytearray(make_zip(tmp_path / "ok.zip", [("fine.csv", b"a,b\n"), ("b.csv", b"a,b\n" * 100)]).read_bytes())
    second = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 4)
    raw[second + 10:second + 12] = (97).to_bytes(2, "little")  # method 97 (WavPack): zipfile cannot unpack it
    (tmp_path / "method.zip").write_bytes(raw)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="compression method 97, which cannot be unpacked here"):
        extract_all(tmp_path / "method.zip", dest)
    assert_empty(dest)


# --------------------------------------------------------------------------------------------------
# Compression-ratio caps (issue 10, "Other": a 4 MB zip expanding to 600 MB was installed)


def random_csv(n_bytes: int, seed: int = 0) -> bytes:
    """Rows of 16 random numbers "d.dddddd": what real embedding files look like to deflate (about 2-3x)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(ord("0"), ord("9") + 1, size=(max(1, n_bytes // (9 * 16)), 16, 9), dtype=np.uint8)
    cells[:, :, 1] = ord(".")
    cells[:, :, 8] = ord(",")
    cells[:, -1, 8] = ord("\n")
    return cells.tobytes()


def test_a_member_expanding_over_100x_is_refused_before_anything_is_written(tmp_path):
    rows = b"0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1,1\n" * (20 * 1024**2 // 36)  # 20 MiB of near-constant rows
    archive = make_zip(tmp_path / "bomb.zip", [("fine.csv", b"a,b\n"), ("poses/big.csv", rows)])
    assert archive.stat().st_size < 200_000  # > 100x
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"member 'poses/big.csv' expands \d+x .* above the cap of 100x"):
        extract_all(archive, dest)
    assert_empty(dest)


def test_overlapping_members_are_caught_by_the_overall_ratio(tmp_path):
    """A Fifield-style bomb: many central-directory entries pointing at one compressed body. Each member's
    own ratio is the CSV's (about 2x), but the declared sizes add up to far more than the archive holds."""
    body = random_csv(1024**2)
    archive = make_zip(tmp_path / "one.zip", [("m00.csv", body)])
    raw = archive.read_bytes()
    start = raw.index(b"PK\x01\x02")
    end = raw.index(b"PK\x05\x06")
    entry = raw[start:end]
    directory = b"".join(entry.replace(b"m00.csv", f"m{i:02d}.csv".encode()) for i in range(40))  # one body
    eocd = bytearray(raw[end:])
    eocd[8:10] = eocd[10:12] = (40).to_bytes(2, "little")
    eocd[12:16] = len(directory).to_bytes(4, "little")
    eocd[16:20] = start.to_bytes(4, "little")
    (tmp_path / "overlap.zip").write_bytes(raw[:start] + directory + bytes(eocd))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"the archive expands \d+x .* above the cap of 50x"):
        extract_all(tmp_path / "overlap.zip", dest)
    assert_empty(dest)


def test_realistic_csv_data_is_well_under_the_ratio_caps(tmp_path):
    """With the floor lowered so that these 3 MiB are checked (the default floor is 16 MiB)."""
    archive = make_zip(tmp_path / "real.zip", [("embeddings/a.csv", random_csv(2 * 1024**2)),
                                               ("poses/b.csv", random_csv(1024**2, seed=1))])
    dest = tmp_path / "out"
    dest.mkdir()
    assert len(extract_all(archive, dest, UnzipLimits(ratio_min_bytes=1024**2))) == 2


def test_small_members_are_not_ratio_checked(tmp_path):
    """Below 16 MiB a file that compresses 1000x harms nobody (the tests' own fixtures do)."""
    archive = make_zip(tmp_path / "small.zip", [("zeros.csv", bytes(8 * 1024**2))])
    dest = tmp_path / "out"
    dest.mkdir()
    assert len(extract_all(archive, dest)) == 1


# --------------------------------------------------------------------------------------------------
# A full disk (issue 10, "Unpacking"): OSError 28 becomes one line, and nothing is left behind


def test_a_write_failing_with_enospc_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "ok.zip", [(f"d/f{i}.csv", b"a,b\n" * 100) for i in range(5)])
    real_fdopen = os.fdopen
    opened = []

    class FullDisk(io.RawIOBase):
        def __init__(self, fd):
            os.close(fd)

        def writable(self):
            return True

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd, mode="r", *args, **kwargs):
        opened.append(fd)
        if "w" in mode and len(opened) == 3:  # the third file hits the full disk
            return FullDisk(fd)
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)
    near = tmp_path / "root"
    with pytest.raises(InputError) as info:
        with extracted(archive, near=near):
            pass
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"cannot unpack {archive} into {near}: No space left on device (free some space or inodes "
                       "and run again); nothing was installed")
    assert list(near.iterdir()) == []


@pytest.fixture
def small_tmpfs(small_disk):
    """A 1 MiB file system with 64 inodes (tests/conftest.py; skips where mounting is not allowed)."""
    return small_disk("1m", inodes=64)


def test_tmpfs_too_few_inodes_for_many_small_files_is_refused_first(small_tmpfs, tmp_path):
    archive = make_zip(tmp_path / "many.zip", [(f"d/f{i}.csv", b"a,b\n") for i in range(100)])
    with pytest.raises(InputError, match=r"needs 101 new files and folders but the file system of .* has only \d+ "
                                         r"free inodes; nothing was installed"):
        with extracted(archive, near=small_tmpfs):
            pass
    assert list(small_tmpfs.iterdir()) == []


def test_tmpfs_too_little_space_is_refused_first(small_tmpfs, tmp_path):
    archive = make_zip(tmp_path / "big.zip", [("a.bin", os.urandom(2 * 1024**2))])
    with pytest.raises(InputError, match=r"needs about 2\.0 MB but .* has .* free; nothing was installed"):
        with extracted(archive, near=small_tmpfs):
            pass
    assert list(small_tmpfs.iterdir()) == []


@pytest.mark.parametrize("kind", ["bytes", "inodes"])
def test_tmpfs_filling_up_while_writing_is_one_line_and_leaves_nothing(small_tmpfs, tmp_path, monkeypatch, kind):
    """The room check passes (another process fills the disk meanwhile, here: the check is skipped) and the
    kernel's own ENOSPC arrives mid-unpack."""
    monkeypatch.setattr(unzip, "check_room", lambda *args: None)
    if kind == "bytes":
        members = [(f"f{i}.bin", os.urandom(300 * 1024)) for i in range(6)]
    else:
        members = [(f"d{i // 10}/f{i}.csv", b"a,b\n") for i in range(120)]
    archive = make_zip(tmp_path / "full.zip", members)
    with pytest.raises(InputError, match=r"^cannot unpack .*: No space left on device .*; nothing was installed$"):
        with extracted(archive, near=small_tmpfs):
            pass
    assert list(small_tmpfs.iterdir()) == []


def test_tmpfs_full_disk_through_the_command_line(small_tmpfs, tmp_path):
    """python -m gafnet.data download gafnet --from-zip into a root with too few inodes: exit 2, one line."""
    archive = tmp_path / "gaf-net-data.zip"
    from gafnet.layout import expected_embedding_files, expected_pose_files

    files = expected_embedding_files(Path("embeddings")) + expected_pose_files(Path("poses"))
    make_zip(archive, [(p.as_posix(), b"index,feat_0,person_id,camera_id\n0,0.1,1,1\n") for p in files])
    done = subprocess.run([sys.executable, "-m", "gafnet.data", "download", "gafnet", "--root", str(small_tmpfs),
                           "--from-zip", str(archive), "--quiet", "--cache_dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "free inodes; nothing was installed" in done.stderr
    assert list(small_tmpfs.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Leftovers of a killed unpack (issue 10, "Other"): removed by the next run, never a live process's


REPO = Path(__file__).resolve().parents[1]

_SLOW_UNPACK = """
import sys, time
from gafnet.data import unzip
real = unzip._extract_member
def slow(*args):
    written = real(*args)
    print("unpacking", flush=True)
    time.sleep(60)
    return written
unzip._extract_member = slow
with unzip.extracted(sys.argv[1], near=sys.argv[2]):
    pass
"""


def _start_slow_unpack(archive: Path, near: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", _SLOW_UNPACK, str(archive), str(near)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "unpacking"  # a first member is on disk
    return child


def test_staging_directories_carry_host_and_pid(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", [("a.csv", b"a,b\n")])
    with extracted(archive, near=tmp_path / "root") as staged:
        assert staged.name.startswith(temp_prefix("unpack")) and staged.name.endswith(".tmp")
        assert f"-{os.getpid()}-" in staged.name


def test_a_kill_9_mid_unpack_leaves_a_directory_that_the_next_run_removes(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", [(f"d/f{i}.csv", b"a,b\n" * 1000) for i in range(5)])
    near = tmp_path / "root"
    near.mkdir()
    (near / "mine.txt").write_text("the user's file")
    child = _start_slow_unpack(archive, near)
    child.kill()  # SIGKILL: no finally clause runs
    child.wait(timeout=30)
    child.stdout.close()
    (left,) = [p for p in near.iterdir() if p.name != "mine.txt"]
    assert f"-{child.pid}-" in left.name and list(left.rglob("*.csv"))  # a half tree was left
    assert is_stale_temporary(left.name)
    with extracted(archive, near=near) as staged:  # the next run
        assert sorted(p.name for p in near.iterdir()) == sorted(["mine.txt", staged.name])
    assert [p.name for p in near.iterdir()] == ["mine.txt"]
    assert (near / "mine.txt").read_text() == "the user's file"


def test_a_running_unpack_is_never_cleaned_up_by_another(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", [(f"d/f{i}.csv", b"a,b\n") for i in range(3)])
    near = tmp_path / "root"
    near.mkdir()
    child = _start_slow_unpack(archive, near)
    try:
        (live,) = list(near.iterdir())
        assert not is_stale_temporary(live.name)
        with extracted(archive, near=near):
            assert live.is_dir() and list(live.rglob("*.csv"))
        assert live.is_dir()  # still there after the other run
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()


def test_old_style_staging_directories_are_removed_only_when_untouched_for_a_day(tmp_path):
    near = tmp_path / "root"
    old, fresh = near / ".gafnet-unpack-ab12cd34", near / ".gafnet-unpack-zz99yy88"
    for folder in (old, fresh):
        (folder / "embeddings").mkdir(parents=True)
        (folder / "embeddings" / "a.csv").write_text("a,b\n")
    day_ago = time.time() - unzip.OLD_STAGING_MIN_AGE_S - 60
    for path in (old / "embeddings" / "a.csv", old / "embeddings", old):
        os.utime(path, (day_ago, day_ago))
    not_ours = near / ".gafnet-unpack-of-someone-else"  # does not match the old pattern
    not_ours.mkdir()
    os.utime(not_ours, (day_ago, day_ago))
    notes = []
    removed = unzip.remove_leftovers(near, note=notes.append)
    assert removed == [old] and not old.exists()
    assert fresh.is_dir() and not_ours.is_dir()
    assert len(notes) == 1 and str(fresh) in notes[0] and "older version" in notes[0]
