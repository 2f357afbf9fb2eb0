"""Safe unpacking (gafnet.data.unzip): hostile and broken archives are refused before anything is written,
and a validated tree is moved into place without overwriting different existing files."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

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
