"""Safe unpacking of downloaded zip archives: check everything first, extract to a temporary directory,
move into place only once the result is complete and valid.

Rules (the classic zip pitfalls: zip-slip, symlink escapes, zip bombs):

- every member name is checked before anything is written: no absolute path, no drive letter, no ``..``,
  no NUL byte, no duplicate, no name part longer than the 255 bytes file systems allow; backslashes
  count as separators; a name that is not valid UTF-8 although the archive says so is refused;
- only regular files and directories: symlinks, device files, FIFOs and sockets are refused, and so are
  encrypted members and compression methods Python cannot unpack;
- zip bombs (:class:`UnzipLimits`): the declared uncompressed total, the file count and the compression
  ratio (per member and for the whole archive) are capped; the bytes actually written are counted too;
- the room needed (bytes rounded up to the file system's blocks, and one inode per file and folder) is
  checked against the free space and free inodes first; a file system that fills up anyway (another
  process writing, a quota) ends as one clear error;
- macOS junk (``__MACOSX/``, ``.DS_Store``) is skipped;
- :func:`extracted` unpacks into a hidden temporary directory next to the destination and always removes
  it; :func:`install_tree` then moves the validated tree into place, never overwriting a different
  existing file unless ``force``. An interrupted or failed unpack therefore never leaves a half tree at
  the destination.

Leftovers. The temporary directory is named ``.unpack.gafnet-<host>-<pid>-<random>.tmp``
(:func:`gafnet.atomic.temp_prefix`). A process killed during an unpack (``kill -9``, a crash, a power
cut) cannot remove it; the next unpack into the same place removes every such directory whose process
is gone (same host, pid no longer running: :func:`gafnet.atomic.remove_stale_temporaries`). Directories
of running processes and anything this project did not make are never touched. Older versions named it
``.gafnet-unpack-<random>`` without a pid; such a directory is removed only when nothing in it has
changed for :data:`OLD_STAGING_MIN_AGE_S` (a day), since no unpack runs that long, and otherwise named in
a note.
"""

from __future__ import annotations

import errno
import filecmp
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from gafnet.atomic import remove_stale_temporaries, temp_prefix
from gafnet.errors import InputError

_COPY_CHUNK = 1024 * 1024
_JUNK_DIRS = ("__MACOSX",)
_JUNK_FILES = (".DS_Store", "Thumbs.db")
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_NAME_MAX = 255  # bytes in one file or folder name: ext4, XFS, btrfs, tmpfs, APFS, NTFS (in UTF-16 units)
_SUPPORTED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
                      zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
_STAGING_NAME = "unpack"  # temporary directories: .unpack.gafnet-<host>-<pid>-<random>.tmp
_OLD_STAGING = re.compile(r"^\.gafnet-unpack-[A-Za-z0-9_]{8}$")  # older versions: no pid in the name
OLD_STAGING_MIN_AGE_S = 24 * 3600


class UnsafeArchiveError(InputError):
    """The archive is corrupt, truncated, too large, or holds a member that could escape or harm."""


@dataclass(frozen=True)
class UnzipLimits:
    """Caps against zip bombs: total declared uncompressed bytes, number of files, compression ratio.

    The ratio caps are for CSV data: deflate shrinks CSVs of floating-point numbers about 3-5x and
    repetitive ones (pose files with long image names, features that are mostly zeros) up to about
    10-20x. A member may expand at most ``max_ratio`` times (100x) and the whole archive at most
    ``max_total_ratio`` times its size on disk (50x; the total also catches overlapping members, whose
    sizes add up while their bytes are stored once). That is 5-10x headroom over real data, and it
    refuses the classic bombs (a 4 MB zip expanding to 600 MB is 150x; deflate reaches 1000x on zeros).
    Members and archives below ``ratio_min_bytes`` uncompressed (16 MiB) are not ratio-checked: a small
    file that compresses well harms nobody.
    """

    max_total_bytes: int = 8 * 1024**3
    max_files: int = 10_000
    max_ratio: float = 100.0
    max_total_ratio: float = 50.0
    ratio_min_bytes: int = 16 * 1024**2


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
        raise UnsafeArchiveError(f"{archive}: member name {_shown(name)} contains a NUL byte; refusing to unpack")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE_LETTER.match(posix):
        raise UnsafeArchiveError(f"{archive}: member {_shown(name)} has an absolute path; refusing to unpack")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {_shown(name)} points outside the target (..); refusing to unpack")
    if not parts:
        return None
    if parts[0] in _JUNK_DIRS or parts[-1] in _JUNK_FILES:
        return None
    for part in parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise UnsafeArchiveError(
                f"{archive}: member {_shown(name)} has a name part of {len(os.fsencode(part))} bytes, longer than "
                f"the {_NAME_MAX} bytes file systems allow; refusing to unpack")
    return PurePosixPath(*parts)


def _shown(name: str, width: int = 80) -> str:
    """A member name for a message: quoted, and shortened in the middle when very long."""
    if len(name) <= width:
        return repr(name)
    return repr(name[: width // 2] + "…" + name[-width // 2:])


def _member_kind_problem(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in _SUPPORTED_METHODS:
        return (f"uses compression method {info.compress_type}, which cannot be unpacked here "
                f"(supported: {', '.join(_SUPPORTED_METHODS.values())})")
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
    except UnicodeDecodeError:
        raise UnsafeArchiveError(f"{zip_path}: a member name is not valid UTF-8 although the archive says it is; "
                                 "refusing to unpack") from None
    except (ValueError, EOFError, NotImplementedError) as exc:  # a forged directory zipfile cannot follow
        raise UnsafeArchiveError(f"{zip_path} is not a readable zip archive ({exc}); download it again") from None
    except OSError as exc:
        raise InputError(f"{zip_path}: cannot read ({exc.strerror or exc})") from None


def plan_extraction(archive: zipfile.ZipFile, zip_path: Path, limits: UnzipLimits) -> list[Member]:
    """Check every member of ``archive`` against the rules; returns what to extract. Writes nothing."""
    members: list[Member] = []
    seen: dict[PurePosixPath, bool] = {}
    total = 0
    files = 0
    archive_bytes = max(zip_path.stat().st_size, 1)
    for info in archive.infolist():
        path = _safe_member_path(info.filename, zip_path)
        if path is None:
            continue
        problem = _member_kind_problem(info)
        if problem is not None:
            raise UnsafeArchiveError(f"{zip_path}: member {_shown(info.filename)} {problem}; refusing to unpack")
        is_dir = info.is_dir()
        if path in seen:
            if is_dir and seen[path]:
                continue
            raise UnsafeArchiveError(f"{zip_path}: member {_shown(info.filename)} appears twice; refusing to unpack")
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
            if info.file_size >= limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                raise UnsafeArchiveError(
                    f"{zip_path}: member {_shown(info.filename)} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                    f"({_human(info.compress_size)} to {_human(info.file_size)}), above the cap of "
                    f"{limits.max_ratio:.0f}x for CSV data; refusing to unpack (zip bomb?)")
        members.append(Member(info, path, is_dir))
    if total >= limits.ratio_min_bytes and total > limits.max_total_ratio * archive_bytes:
        raise UnsafeArchiveError(
            f"{zip_path}: the archive expands {total / archive_bytes:.0f}x ({_human(archive_bytes)} to {_human(total)}), "
            f"above the cap of {limits.max_total_ratio:.0f}x for CSV data; refusing to unpack (zip bomb?)")
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
        raise UnsafeArchiveError(f"{zip_path}: member {_shown(member.info.filename)} escapes the target; refusing")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    written = 0
    try:
        with archive.open(member.info) as src, os.fdopen(os.open(target, flags, 0o644), "wb") as out:
            while chunk := src.read(_COPY_CHUNK):
                written += len(chunk)
                if written > member.info.file_size:
                    raise UnsafeArchiveError(
                        f"{zip_path}: member {_shown(member.info.filename)} is larger than it declares; refusing"
                    )
                out.write(chunk)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"{zip_path}: member {_shown(member.info.filename)} is corrupt ({exc}); "
                                 "download the archive again") from None
    except (EOFError, zlib.error, ValueError, NotImplementedError) as exc:  # bz2/lzma raise OSError/ValueError too
        raise UnsafeArchiveError(f"{zip_path}: member {_shown(member.info.filename)} is truncated or corrupt ({exc}); "
                                 "download the archive again") from None
    return written


def _room_needed(members: list[Member], block: int) -> tuple[int, int]:
    """(bytes, inodes) that unpacking ``members`` takes: each file rounded up to whole blocks, one block and
    one inode per folder (those implied by file paths too), one inode per file."""
    block = max(block, 1)
    folders = {parent for m in members for parent in m.path.parents} | {m.path for m in members if m.is_dir}
    folders.discard(PurePosixPath("."))  # the staging directory itself, already made
    files = [m for m in members if not m.is_dir]
    data = sum(-(-m.info.file_size // block) * block for m in files)
    return data + len(folders) * block, len(files) + len(folders)


def check_room(members: list[Member], dest: Path, zip_path: Path) -> None:
    """InputError unless the file system holding ``dest`` has the free space and free inodes to unpack."""
    try:
        fs = os.statvfs(dest)
    except (OSError, AttributeError):  # no statvfs (Windows): fall back on the byte count
        free = shutil.disk_usage(dest).free
        needed = sum(m.info.file_size for m in members)
        if needed > free:
            raise InputError(f"unpacking {zip_path} needs {_human(needed)} but {dest.parent} has {_human(free)} free; "
                             "nothing was installed: free some space and run again") from None
        return
    needed, inodes = _room_needed(members, fs.f_frsize or fs.f_bsize)
    free = fs.f_bavail * fs.f_frsize
    if needed > free:
        raise InputError(f"unpacking {zip_path} needs about {_human(needed)} but {dest.parent} has {_human(free)} "
                         "free; nothing was installed: free some space and run again")
    if fs.f_files and inodes > fs.f_favail:  # f_files == 0: the file system does not count inodes
        raise InputError(f"unpacking {zip_path} needs {inodes} new files and folders but the file system of "
                         f"{dest.parent} has only {fs.f_favail} free inodes; nothing was installed: free some "
                         "inodes (delete many small files) and run again")


def _write_error(exc: OSError, zip_path: Path, dest: Path) -> InputError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENAMETOOLONG:
        reason += " (the path under the destination is longer than the file system allows; choose a shorter --root)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (free some space or inodes and run again)"
    elif exc.errno == errno.EEXIST:
        reason += " (two members whose names differ only in letter case, on a case-insensitive file system?)"
    return InputError(f"cannot unpack {zip_path} into {dest.parent}: {reason}; nothing was installed")


def extract_all(zip_path: str | Path, dest: str | Path, limits: UnzipLimits = UnzipLimits()) -> list[Path]:
    """Extract every safe member of ``zip_path`` into the existing, empty directory ``dest``.

    A write that fails (no space, no inodes, quota, read-only, name too long) raises one InputError
    line; the caller (:func:`extracted`) removes ``dest``."""
    zip_path, dest = Path(zip_path), Path(dest)
    if any(dest.iterdir()):
        raise InputError(f"{dest} is not empty; extract_all only fills a new directory")
    with open_zip(zip_path) as archive:
        members = plan_extraction(archive, zip_path, limits)
        check_room(members, dest, zip_path)
        files = []
        try:
            for member in members:
                _extract_member(archive, member, dest, zip_path)
                if not member.is_dir:
                    files.append(dest.joinpath(*member.path.parts))
        except OSError as exc:
            if exc.errno is None:  # bz2 / lzma: a corrupt stream
                raise UnsafeArchiveError(f"{zip_path}: a member is corrupt ({exc}); download the archive again") from None
            raise _write_error(exc, zip_path, dest) from None
    return files


def _newest_change(path: Path) -> float:
    """The latest modification time of ``path`` and everything under it (symbolic links not followed)."""
    newest = path.lstat().st_mtime
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
            except OSError:
                pass
    return newest


def remove_leftovers(near: Path, note: Callable[[str], None] | None = None) -> list[Path]:
    """Remove temporary unpack directories left in ``near`` by killed processes; returns what was removed.

    Current names carry host and pid: removed once that process is gone. Older ``.gafnet-unpack-*``
    names carry no pid: removed when untouched for :data:`OLD_STAGING_MIN_AGE_S`, else named in ``note``.
    """
    removed = remove_stale_temporaries(near)
    try:
        old = [p for p in near.iterdir() if _OLD_STAGING.match(p.name) and p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for path in old:
        try:
            age = time.time() - _newest_change(path)
        except OSError:
            continue
        if age >= OLD_STAGING_MIN_AGE_S:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif note is not None:
            note(f"note: {path} was left by an interrupted unpack of an older version; it is removed "
                 "automatically after a day, or delete it now if no other unpack is running")
    return removed


@contextmanager
def extracted(zip_path: str | Path, near: str | Path, limits: UnzipLimits = UnzipLimits(),
              note: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Unpack into a hidden temporary directory inside ``near`` (same file system as the destination);
    yield it; remove it afterwards whatever happens (success, error, Ctrl-C). Leftovers of killed earlier
    unpacks in ``near`` are removed first (:func:`remove_leftovers`; ``note`` receives what is kept)."""
    near = Path(near)
    try:
        near.mkdir(parents=True, exist_ok=True)
        remove_leftovers(near, note)
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(_STAGING_NAME), suffix=".tmp", dir=near))
    except OSError as exc:
        raise InputError(f"cannot unpack {zip_path} into {near}: {exc.strerror or exc}; nothing was installed") from None
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
    remove_stale_temporaries(dst.parent)
    tmp = dst.parent / f"{temp_prefix(dst.name)}move.tmp"  # removed by the next run if this one is killed
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
    moved = 0
    for plan in plans:
        for src, dst in plan.moves:
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                _move(src, dst)
            except OSError as exc:
                done = f"{moved} of {sum(len(p.moves) for p in plans)} files or folders were moved in before it"
                raise InputError(f"cannot install {dst}: {exc.strerror or exc}; {done}; fix the cause and run "
                                 "the same command again (files already in place are kept)") from None
            moved += 1
        total.installed += plan.result.installed
        total.unchanged += plan.result.unchanged
    return total


def install_tree(staged: str | Path, dest: str | Path, force: bool = False) -> InstallResult:
    """Move the contents of ``staged`` into ``dest`` (see :func:`plan_install`); on a conflict without
    ``force`` nothing is moved and :class:`InputError` lists the conflicting files."""
    return apply_install([plan_install(staged, dest, force)])
