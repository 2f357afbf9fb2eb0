"""Safe unpacking of downloaded zip archives: check everything first, extract to a temporary directory,
move into place only once the result is complete and valid.

Rules (the classic zip pitfalls: zip-slip, symlink escapes, zip bombs):

- every member name is checked before anything is written: no absolute path, no drive letter, no ``..``,
  no NUL byte, no duplicate; backslashes count as separators;
- only regular files and directories: symlinks, device files, FIFOs and sockets are refused, and so are
  encrypted members;
- the declared uncompressed total and the file count are capped (:class:`UnzipLimits`), the bytes
  actually written are counted too, and the free disk space is checked first;
- macOS junk (``__MACOSX/``, ``.DS_Store``) is skipped;
- :func:`extracted` unpacks into a hidden temporary directory next to the destination and always removes
  it; :func:`install_tree` then moves the validated tree into place, never overwriting a different
  existing file unless ``force``. An interrupted or failed unpack therefore never leaves a half tree at
  the destination.
"""

from __future__ import annotations

import errno
import filecmp
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from gafnet.errors import InputError

_COPY_CHUNK = 1024 * 1024
_JUNK_DIRS = ("__MACOSX",)
_JUNK_FILES = (".DS_Store", "Thumbs.db")
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


class UnsafeArchiveError(InputError):
    """The archive is corrupt, truncated, too large, or holds a member that could escape or harm."""


@dataclass(frozen=True)
class UnzipLimits:
    """Caps against zip bombs: total declared uncompressed bytes and number of files."""

    max_total_bytes: int = 8 * 1024**3
    max_files: int = 10_000


@dataclass(frozen=True)
class Member:
    info: zipfile.ZipInfo
    path: PurePosixPath  # normalised, relative, safe
    is_dir: bool


@dataclass
class InstallResult:
    installed: list[Path] = field(default_factory=list)  # files new or replaced at the destination
    unchanged: list[Path] = field(default_factory=list)  # files already there with identical content


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def _safe_member_path(name: str, archive: Path) -> PurePosixPath | None:
    """The normalised relative path of a member, None for junk; raises for anything unsafe."""
    if "\0" in name:
        raise UnsafeArchiveError(f"{archive}: member name {name!r} contains a NUL byte; refusing to unpack")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE_LETTER.match(posix):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to unpack")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the target (..); refusing to unpack")
    if not parts:
        return None
    if parts[0] in _JUNK_DIRS or parts[-1] in _JUNK_FILES:
        return None
    return PurePosixPath(*parts)


def _member_kind_problem(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.create_system != 3:  # Unix attributes only mean something when written by a Unix zip
        return None
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == 0 or kind in (stat.S_IFREG, stat.S_IFDIR):
        return None
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    names = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO",
             stat.S_IFSOCK: "a socket"}
    return f"is {names.get(kind, f'a special file (mode {mode:o})')}"


def open_zip(zip_path: str | Path) -> zipfile.ZipFile:
    """Open an archive with a clear message for a missing, truncated or non-zip file."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise InputError(f"{zip_path}: no such file")
    try:
        return zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        with open(zip_path, "rb") as fh:
            head = fh.read(512)
        if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
            raise UnsafeArchiveError(
                f"{zip_path} is an HTML page, not a zip (Google Drive's quota or warning page?): "
                "download the file again"
            ) from None
        raise UnsafeArchiveError(
            f"{zip_path} is not a complete zip archive ({exc}): a truncated download or not a zip; "
            "download it again"
        ) from None
    except OSError as exc:
        raise InputError(f"{zip_path}: cannot read ({exc.strerror or exc})") from None


def plan_extraction(archive: zipfile.ZipFile, zip_path: Path, limits: UnzipLimits) -> list[Member]:
    """Check every member of ``archive`` against the rules; returns what to extract. Writes nothing."""
    members: list[Member] = []
    seen: dict[PurePosixPath, bool] = {}
    total = 0
    files = 0
    for info in archive.infolist():
        path = _safe_member_path(info.filename, zip_path)
        if path is None:
            continue
        problem = _member_kind_problem(info)
        if problem is not None:
            raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} {problem}; refusing to unpack")
        is_dir = info.is_dir()
        if path in seen:
            if is_dir and seen[path]:
                continue
            raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} appears twice; refusing to unpack")
        seen[path] = is_dir
        if not is_dir:
            files += 1
            total += info.file_size
            if files > limits.max_files:
                raise UnsafeArchiveError(
                    f"{zip_path}: more than {limits.max_files} files; refusing to unpack (zip bomb?)"
                )
            if total > limits.max_total_bytes:
                raise UnsafeArchiveError(
                    f"{zip_path}: uncompressed size exceeds the cap of {_human(limits.max_total_bytes)}; "
                    "refusing to unpack (zip bomb?)"
                )
        members.append(Member(info, path, is_dir))
    for path, is_dir in seen.items():
        for parent in path.parents:
            if seen.get(parent) is False:
                raise UnsafeArchiveError(
                    f"{zip_path}: {parent} is both a file and a directory in the archive; refusing to unpack"
                )
    return members


def _extract_member(archive: zipfile.ZipFile, member: Member, dest: Path, zip_path: Path) -> int:
    target = dest.joinpath(*member.path.parts)
    if member.is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    # Defence in depth: the name checks above already exclude this.
    if not target.resolve().is_relative_to(dest.resolve()):
        raise UnsafeArchiveError(f"{zip_path}: member {member.info.filename!r} escapes the target; refusing")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    written = 0
    try:
        with archive.open(member.info) as src, os.fdopen(os.open(target, flags, 0o644), "wb") as out:
            while chunk := src.read(_COPY_CHUNK):
                written += len(chunk)
                if written > member.info.file_size:
                    raise UnsafeArchiveError(
                        f"{zip_path}: member {member.info.filename!r} is larger than it declares; refusing"
                    )
                out.write(chunk)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"{zip_path}: member {member.info.filename!r} is corrupt ({exc}); "
                                 "download the archive again") from None
    except (EOFError, zlib.error) as exc:
        raise UnsafeArchiveError(f"{zip_path}: member {member.info.filename!r} is truncated or corrupt ({exc}); "
                                 "download the archive again") from None
    return written


def extract_all(zip_path: str | Path, dest: str | Path, limits: UnzipLimits = UnzipLimits()) -> list[Path]:
    """Extract every safe member of ``zip_path`` into the existing, empty directory ``dest``."""
    zip_path, dest = Path(zip_path), Path(dest)
    if any(dest.iterdir()):
        raise InputError(f"{dest} is not empty; extract_all only fills a new directory")
    with open_zip(zip_path) as archive:
        members = plan_extraction(archive, zip_path, limits)
        needed = sum(m.info.file_size for m in members)
        free = shutil.disk_usage(dest).free
        if needed > free:
            raise InputError(f"unpacking {zip_path} needs {_human(needed)} but {dest} has {_human(free)} free")
        files = []
        for member in members:
            _extract_member(archive, member, dest, zip_path)
            if not member.is_dir:
                files.append(dest.joinpath(*member.path.parts))
    return files


@contextmanager
def extracted(zip_path: str | Path, near: str | Path, limits: UnzipLimits = UnzipLimits()) -> Iterator[Path]:
    """Unpack into a hidden temporary directory inside ``near`` (same file system as the destination);
    yield it; remove it afterwards whatever happens (success, error, Ctrl-C)."""
    near = Path(near)
    near.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".gafnet-unpack-", dir=near))
    try:
        extract_all(zip_path, staging, limits)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def content_root(staged: Path, markers: tuple[str, ...] = ()) -> Path:
    """The directory that holds the archive's content: ``staged`` itself, or its only subdirectory when
    the archive wraps everything in one folder. With ``markers``, the one that contains any of them."""
    entries = [p for p in staged.iterdir() if p.name not in _JUNK_FILES]
    if markers:
        if any((staged / m).exists() for m in markers):
            return staged
        dirs = [p for p in entries if p.is_dir()]
        if len(dirs) == 1 and any((dirs[0] / m).exists() for m in markers):
            return dirs[0]
        found = ", ".join(sorted(p.name for p in entries)) or "nothing"
        raise InputError(f"the archive has none of {', '.join(m + '/' for m in markers)} at its top level "
                         f"(found: {found}); is it the right file?")
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staged


def _move(src: Path, dst: Path) -> None:
    """Rename ``src`` onto ``dst``; across file systems, copy next to ``dst`` first, then rename."""
    try:
        os.replace(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = dst.parent / f".{dst.name}.gafnet-move-{os.getpid()}"
    try:
        if src.is_dir():
            shutil.copytree(src, tmp)
        else:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


@dataclass
class InstallPlan:
    """What :func:`plan_install` decided: renames to do, conflicts found, and the resulting file lists."""

    moves: list[tuple[Path, Path]] = field(default_factory=list)
    conflicts: list[Path] = field(default_factory=list)
    result: InstallResult = field(default_factory=InstallResult)


def _plan_dir(staged: Path, dest: Path, force: bool, plan: InstallPlan) -> None:
    for src in sorted(staged.iterdir()):
        dst = dest / src.name
        if not dst.exists() and not dst.is_symlink():
            plan.moves.append((src, dst))
            plan.result.installed.extend(
                [dst / p.relative_to(src) for p in src.rglob("*") if p.is_file()] if src.is_dir() else [dst]
            )
        elif src.is_dir():
            if not dst.is_dir():
                raise InputError(f"{dst} exists and is not a directory, but the archive has a folder there; "
                                 "move it away and run again")
            _plan_dir(src, dst, force, plan)
        elif dst.is_dir():
            raise InputError(f"{dst} is a directory, but the archive has a file there; move it away and run again")
        elif dst.is_file() and dst.stat().st_size == src.stat().st_size and filecmp.cmp(src, dst, shallow=False):
            plan.result.unchanged.append(dst)
        elif force:
            plan.moves.append((src, dst))
            plan.result.installed.append(dst)
        else:
            plan.conflicts.append(dst)


def plan_install(staged: str | Path, dest: str | Path, force: bool = False) -> InstallPlan:
    """Decide how the contents of ``staged`` merge into ``dest``; moves nothing.

    A folder missing at ``dest`` becomes one rename; an identical existing file is left alone; an existing
    file with different content is a conflict (replaced only with ``force``); a file where the archive
    has a folder, or the reverse, is an error even with ``force``.
    """
    staged, dest = Path(staged), Path(dest)
    plan = InstallPlan()
    if not dest.exists() and not dest.is_symlink():
        plan.moves.append((staged, dest))
        plan.result.installed = [dest / p.relative_to(staged) for p in staged.rglob("*") if p.is_file()]
    elif not dest.is_dir():
        raise InputError(f"{dest} exists and is not a directory; move it away and run again")
    else:
        _plan_dir(staged, dest, force, plan)
    return plan


def apply_install(plans: list[InstallPlan]) -> InstallResult:
    """Carry out plans, all or nothing as far as conflicts go: any conflict stops before the first move."""
    conflicts = [p for plan in plans for p in plan.conflicts]
    if conflicts:
        shown = "\n  ".join(str(p) for p in conflicts[:10])
        more = f"\n  ... and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        raise InputError(
            f"{len(conflicts)} existing file(s) differ from the archive and would be overwritten:\n  {shown}{more}\n"
            "Nothing was changed. Move them away, or run again with --force to overwrite them."
        )
    total = InstallResult()
    for plan in plans:
        for src, dst in plan.moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            _move(src, dst)
        total.installed += plan.result.installed
        total.unchanged += plan.result.unchanged
    return total


def install_tree(staged: str | Path, dest: str | Path, force: bool = False) -> InstallResult:
    """Move the contents of ``staged`` into ``dest`` (see :func:`plan_install`); on a conflict without
    ``force`` nothing is moved and :class:`InputError` lists the conflicting files."""
    return apply_install([plan_install(staged, dest, force)])
