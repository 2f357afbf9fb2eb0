"""Is the data where the scripts expect it? Cheap checks of the data trees against the released layout (README, "Data layout").

    embeddings/ilids/{pit,mgh,osnet,gait1,gait2}/{query,gallery}_split{0..9}.csv   (100 files)
    poses/splits_{pit,mgh}/{train,test}_split{0..9}.csv                              (40 files)
    data/casia-b/*.csv                 GaitGraph's CASIA-B poses (layout not published: checked generically)
    weights/gaitgraph_resgcn-n39-r8_coco_seq_60.pth                                   GaitGraph's checkpoint

Every CSV check only looks at the first line(s) of each file, never parses a 400 MB tree: a full check
of the 140 released files takes a few milliseconds. A CSV file is

- *present*   when it exists and its first line looks like a CSV header followed by data;
- *missing*   when it does not exist;
- *malformed* when it is not a regular file, is empty, holds only a header, has a first line that is
  not text (binary, an HTML page) or that has no comma, or is unreadable.

A checkpoint is malformed unless it is a complete ``torch.save`` file (:func:`torch_file_problem`: the
structure is read, nothing from the file is run, torch is not imported), so a truncated download or a
half-copied ``.pth`` is caught before anything loads it.

The root ``evaluate.py`` calls :func:`check_embeddings` (``report.raise_if_incomplete()``) so a missing
file is explained before anything is loaded; ``python -m gafnet.data verify`` prints the same reports.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple

from gafnet.errors import InputError
from gafnet.layout import (
    EMBEDDING_FOLDERS,
    EMBEDDING_KINDS,
    NUM_SPLITS,
    POSE_FOLDERS,
    POSE_KINDS,
    embedding_csv,
    pose_csv,
)

GET_GAFNET_HINT = (
    "To get the released data: python -m gafnet.data download gafnet "
    "(or, with a zip downloaded by hand: python -m gafnet.data download gafnet --from-zip PATH)."
)
GET_CASIA_B_HINT = "To get GaitGraph's CASIA-B poses: python -m gafnet.data download casia-b"
GET_WEIGHTS_HINT = "To get GaitGraph's checkpoint: python -m gafnet.data download gaitgraph-weights"

#: Written by the downloader into a directory it unpacked, after the last file was moved in:
#: ``{"source": ..., "sha256": ..., "files": {relative path: size}}``. Its presence means "complete".
MANIFEST_NAME = ".gafnet-manifest.json"

#: Names GaitGraph's own scripts read from its data.zip (its experiments/*.sh); reported when absent.
CASIA_B_KNOWN_CSVS = ("casia-b_pose_train_valid.csv", "casia-b_pose_test.csv")
GAITGRAPH_WEIGHTS_NAME = "gaitgraph_resgcn-n39-r8_coco_seq_60.pth"

_MAX_HEADER_BYTES = 16 * 1024 * 1024  # a 9216-d appearance header is ~80 kB; 16 MB means "not a CSV"
_PEEK_BYTES = 4096


class Malformed(NamedTuple):
    path: Path
    reason: str


@dataclass
class LayoutReport:
    """What a check found under ``root``: ``present``, ``missing`` and ``malformed`` (path, reason) files.

    ``present`` holds only files that passed the check (a malformed file is not also "present").
    """

    name: str
    root: Path
    present: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hint: str = ""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.malformed

    @property
    def expected_count(self) -> int:
        return len(self.present) + len(self.missing) + len(self.malformed)

    def summary(self, max_lines: int = 12) -> str:
        """A human message: one status line, then at most ``max_lines`` lines of problems, then the hint."""
        if self.ok:
            lines = [f"{self.name} ({self.root}): OK, {len(self.present)} files"]
            lines += [f"  note: {n}" for n in self.notes]
            return "\n".join(lines)
        head = f"{self.name} ({self.root}): {len(self.present)} of {self.expected_count} files present"
        counts = []
        if self.missing:
            counts.append(f"{len(self.missing)} missing")
        if self.malformed:
            counts.append(f"{len(self.malformed)} malformed")
        lines = [f"{head}, {', '.join(counts)}"]
        problems = [f"  missing: {m}" for m in self._grouped_missing()]
        problems += [f"  malformed: {p.path}: {p.reason}" for p in self.malformed]
        max_lines = max(0, max_lines)
        if len(problems) > max_lines:
            hidden = len(problems) - max_lines
            problems = problems[:max_lines] + [
                f"  ... and {hidden} more (python -m gafnet.data verify --max-lines {len(problems)} lists them all)"]
        lines += problems
        lines += [f"  note: {n}" for n in self.notes]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)

    def raise_if_incomplete(self, max_lines: int = 12) -> None:
        """Raise :class:`InputError` with :meth:`summary` unless the tree is complete and well formed."""
        if not self.ok:
            raise InputError(self.summary(max_lines=max_lines))

    def _grouped_missing(self) -> list[str]:
        """Missing files, with a folder whose expected files are all missing shown as one line."""
        if len(self.missing) > 1 and not self.root.exists():
            return [f"{self.root}/ does not exist (all {len(self.missing)} files)"]
        expected_per_dir: dict[Path, int] = {}
        for path in [*self.present, *self.missing, *(m.path for m in self.malformed)]:
            expected_per_dir[path.parent] = expected_per_dir.get(path.parent, 0) + 1
        missing_per_dir: dict[Path, list[Path]] = {}
        for path in self.missing:
            missing_per_dir.setdefault(path.parent, []).append(path)
        out = []
        for folder, paths in missing_per_dir.items():
            if len(paths) > 1 and len(paths) == expected_per_dir[folder]:
                out.append(f"{folder}/ (all {len(paths)} files)")
            else:
                out.extend(str(p) for p in paths)
        return out


def _not_a_nonempty_file(path: Path) -> str | None:
    """The checks every file starts with (may raise OSError, which the callers report)."""
    if not path.is_file():
        return "not a regular file"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return None


def csv_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable CSV (None when it looks fine). Reads only the first line and a bit more."""
    try:
        if (problem := _not_a_nonempty_file(path)) is not None:
            return problem
        with open(path, "rb") as fh:
            first = fh.readline(_MAX_HEADER_BYTES)
            rest = fh.read(_PEEK_BYTES)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if b"\0" in first:
        return "binary data, not a CSV"
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        return "first line is not UTF-8 text"
    if text.lstrip().lower().startswith(("<!doctype", "<html")):
        return "an HTML page, not a CSV (a failed download?)"
    if not first.endswith(b"\n"):
        if len(first) >= _MAX_HEADER_BYTES:
            return f"first line longer than {_MAX_HEADER_BYTES // 2**20} MB: not a CSV"
        return "a single line without line break: header only, no data rows"
    if "," not in text:
        return "first line has no comma: not a CSV header"
    if not rest.strip():
        return "header only, no data rows"
    return None


def _check_files(name: str, root: Path, expected: Iterable[Path], hint: str) -> LayoutReport:
    report = LayoutReport(name=name, root=root, hint=hint)
    for path in expected:
        if not path.exists() and not path.is_symlink():
            report.missing.append(path)
            continue
        problem = csv_problem(path)
        if problem is None:
            report.present.append(path)
        else:
            report.malformed.append(Malformed(path, problem))
    return report


def check_embeddings(
    embeddings_root: str | Path = "embeddings",
    folders: Iterable[str] = EMBEDDING_FOLDERS,
    splits: Iterable[int] | None = None,
    kinds: Iterable[str] = EMBEDDING_KINDS,
) -> LayoutReport:
    """Check ``<embeddings_root>/ilids/<folder>/<kind>_split<i>.csv`` for the given folders and splits.

    ``embeddings_root`` is the directory that holds ``ilids/`` (``./embeddings`` in the repository root),
    as in :func:`gafnet.layout.embedding_csv`.
    """
    root = Path(embeddings_root)
    split_ids = list(range(NUM_SPLITS) if splits is None else splits)
    kinds = list(kinds)
    expected = [embedding_csv(root, f, k, s) for f in folders for s in split_ids for k in kinds]
    report = _check_files("embeddings", root, expected, GET_GAFNET_HINT)
    if report.missing and not (root / "ilids").exists() and (root / "embeddings" / "ilids").is_dir():
        report.notes.append(f"{root / 'embeddings'} holds the tree: pass {root / 'embeddings'} as the embeddings root")
    return report


def check_poses(
    poses_root: str | Path = "poses",
    folders: Iterable[str] = POSE_FOLDERS,
    splits: Iterable[int] | None = None,
    kinds: Iterable[str] = POSE_KINDS,
) -> LayoutReport:
    """Check ``<poses_root>/<folder>/<kind>_split<i>.csv`` (``poses_root`` is ``./poses``)."""
    root = Path(poses_root)
    split_ids = list(range(NUM_SPLITS) if splits is None else splits)
    kinds = list(kinds)
    expected = [pose_csv(root, f, k, s) for f in folders for s in split_ids for k in kinds]
    report = _check_files("poses", root, expected, GET_GAFNET_HINT)
    if report.missing and not (root / POSE_FOLDERS[0]).exists() and (root / "poses" / POSE_FOLDERS[0]).is_dir():
        report.notes.append(f"{root / 'poses'} holds the tree: pass {root / 'poses'} as the poses root")
    return report


def check_gafnet(root: str | Path = ".") -> list[LayoutReport]:
    """The released GAF-Net tree under a repository root: [embeddings report, poses report]."""
    root = Path(root)
    return [check_embeddings(root / "embeddings"), check_poses(root / "poses")]


def read_manifest(directory: Path) -> dict | None:
    try:
        data = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def check_casia_b(directory: str | Path = "data/casia-b") -> LayoutReport:
    """GaitGraph's CASIA-B pose CSVs, checked generically (the content of its data.zip is not published).

    With the manifest the downloader writes, every file it unpacked must be there with its size;
    without one (unpacked by hand), at least one well-formed CSV must be there. Every CSV found gets the
    first-line check. Absent names that GaitGraph's own scripts read are reported as notes.
    """
    root = Path(directory)
    report = LayoutReport(name="CASIA-B poses", root=root, hint=GET_CASIA_B_HINT)
    if not root.is_dir():
        report.missing.append(root / "*.csv")
        return report
    manifest = read_manifest(root)
    if manifest is not None:
        for rel, size in sorted(manifest["files"].items()):
            path = root / rel
            if not path.exists():
                report.missing.append(path)
            elif not path.is_file() or path.stat().st_size != size:
                report.malformed.append(Malformed(path, f"size {path.stat().st_size} bytes, the archive had {size}"))
            elif path.suffix.lower() == ".csv" and (problem := csv_problem(path)) is not None:
                report.malformed.append(Malformed(path, problem))
            else:
                report.present.append(path)
    else:
        csvs = sorted(p for p in root.rglob("*.csv") if not p.name.startswith("."))
        if not csvs:
            report.missing.append(root / "*.csv")
        for path in csvs:
            problem = csv_problem(path)
            if problem is None:
                report.present.append(path)
            else:
                report.malformed.append(Malformed(path, problem))
        if csvs:
            report.notes.append(f"no {MANIFEST_NAME} (unpacked by hand?): checked the CSVs found, not completeness")
    names = {p.name for p in report.present}
    absent = [n for n in CASIA_B_KNOWN_CSVS if n not in names]
    if absent and (report.present or manifest is not None):
        report.notes.append(f"not found: {', '.join(absent)} (the files GaitGraph's own scripts read)")
    return report


# --------------------------------------------------------------------------------------------------
# Is a .pth file a complete torch.save file? Checked without torch and without running the pickle.

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, first pickle of a legacy file
_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION, second pickle
_MAX_PICKLE_BYTES = 256 * 1024**2  # a state dict's data.pkl is kilobytes to a few megabytes
#: Bytes per element of the storage classes a torch.save pickle names ("torch.FloatStorage"...).
_STORAGE_ELEMENT_BYTES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8, "QInt8Storage": 1, "QUInt8Storage": 1,
    "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1, "UntypedStorage": 1,
}


class _InertType(type):
    """Metaclass of the stand-ins: calling one (REDUCE) or filling one (SETITEMS) runs nothing."""

    def __call__(cls, *args, **kwargs):
        return _RESULT

    def __setitem__(cls, key, value):
        pass


class _Inert(metaclass=_InertType):
    """Stands in for every class, function and object a pickle names or builds. Every stand-in is a class,
    so whatever the pickle does with it next (call it, build an instance of it, set its state, fill it)
    works and does nothing; instances made by NEWOBJ behave the same."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _RESULT

    def __setitem__(self, key, value):
        pass

    append = staticmethod(lambda value: None)
    extend = staticmethod(lambda values: None)
    __setstate__ = staticmethod(lambda state: None)


_RESULT = _InertType("result", (_Inert,), {})  # what calling any stand-in returns


class _SkeletonUnpickler(pickle.Unpickler):
    """Reads a pickle's structure without importing or calling anything: every global becomes an inert
    stand-in, and the storages a torch.save pickle refers to are recorded as {key: (type name, numel)}."""

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, tuple[str, int]] = {}
        self._classes: dict[tuple[str, str], type] = {}

    def find_class(self, module, name):
        key = (module, name)
        if key not in self._classes:
            self._classes[key] = _InertType(str(name), (_Inert,), {})
        return self._classes[key]

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind = getattr(pid[1], "__name__", str(pid[1]))
            self.storages[str(pid[2])] = (kind, pid[4] if isinstance(pid[4], int) else -1)
        return _RESULT


def _read_skeleton(unpickler: _SkeletonUnpickler):
    try:
        return unpickler.load()
    except RecursionError:
        raise ValueError("the pickle nests too deeply") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a hostile or cut pickle means "not complete"
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


def _torch_zip_problem(path: Path) -> str | None:
    """torch >= 1.6: a zip whose central directory is complete and that holds <name>/data.pkl, a complete
    pickle whose storages <name>/data/<key> are all present with at least their size."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            pickles = [name for name in infos if name.endswith("data.pkl") and name.count("/") == 1]
            if not pickles:
                return "a zip archive without data.pkl: not a torch.save file"
            prefix = pickles[0][: -len("data.pkl")]
            if infos[pickles[0]].file_size > _MAX_PICKLE_BYTES:  # torch's pickles hold no tensor data: small
                return f"{pickles[0]} declares {infos[pickles[0]].file_size} bytes: not a checkpoint's pickle"
            unpickler = _SkeletonUnpickler(io.BytesIO(archive.read(pickles[0])))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        return f"truncated or corrupt zip container ({exc})"
    try:
        _read_skeleton(unpickler)
    except ValueError as exc:
        return f"truncated or corrupt: its data.pkl is not a complete pickle ({exc})"
    for key, (kind, numel) in unpickler.storages.items():
        info = infos.get(f"{prefix}data/{key}")
        if info is None:
            return f"truncated or corrupt: tensor data {prefix}data/{key} is missing"
        needed = numel * _STORAGE_ELEMENT_BYTES.get(kind, 0)
        if info.file_size < needed:
            return f"truncated or corrupt: tensor data {prefix}data/{key} has {info.file_size} of {needed} bytes"
    return None


def _legacy_torch_problem(path: Path) -> str | None:
    """torch < 1.6 (or ``_use_new_zipfile_serialization=False``): five pickles (magic number, protocol,
    system info, the object, its storage keys), each ending with STOP, then each storage as an 8-byte
    element count and its bytes, up to the end of the file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        try:
            magic = _read_skeleton(_SkeletonUnpickler(fh))
            if magic != _LEGACY_MAGIC:
                return "a pickle, but not a torch.save file (no torch magic number)"
            if _read_skeleton(_SkeletonUnpickler(fh)) != _LEGACY_PROTOCOL:
                return "a torch.save file of an unknown legacy protocol"
            _read_skeleton(_SkeletonUnpickler(fh))  # system info
            main = _SkeletonUnpickler(fh)
            _read_skeleton(main)
            keys = _read_skeleton(_SkeletonUnpickler(fh))
        except ValueError as exc:
            return f"truncated or corrupt: its pickle stream ends early ({exc})"
        if not isinstance(keys, list):
            return "truncated or corrupt: no storage key list after the pickled object"
        position = fh.tell()
        for key in keys:
            kind, _ = main.storages.get(str(key), ("", -1))
            element = _STORAGE_ELEMENT_BYTES.get(kind)
            if element is None:
                return None  # a storage type this check does not know: the pickles were complete
            count = fh.read(8)
            if len(count) < 8:
                return f"truncated: the data of tensor storage {key} is missing ({size} bytes in all)"
            elements = int.from_bytes(count, "little", signed=True)
            if elements < 0:
                return f"corrupt: tensor storage {key} has a negative length"
            position += 8 + elements * element
            if position > size:
                return f"truncated: tensor storage {key} needs bytes up to {position}, the file has {size}"
            fh.seek(position)
    return None


def torch_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete ``torch.save`` file, or None. Reads the structure only (no torch, no
    code from the file is run): for a zip container its central directory, data.pkl and the size of every
    tensor it names; for a legacy file its pickles and the length of every storage."""
    try:
        if (problem := _not_a_nonempty_file(path)) is not None:
            return problem
        with open(path, "rb") as fh:
            head = fh.read(64)
        if head.startswith(b"PK\x03\x04"):
            return _torch_zip_problem(path)
        if head.startswith(b"\x80"):
            return _legacy_torch_problem(path)
        if b"PK\x03\x04".startswith(head):
            return f"truncated: only {len(head)} bytes"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        return "an HTML page, not a PyTorch checkpoint (a failed download?)"
    return "not a PyTorch checkpoint (neither a zip container nor a pickle)"


def weights_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable PyTorch checkpoint, or None (see :func:`torch_file_problem`)."""
    return torch_file_problem(path)


def check_weights(path: str | Path = Path("weights") / GAITGRAPH_WEIGHTS_NAME) -> LayoutReport:
    """GaitGraph's released checkpoint: exists and is a complete ``torch.save`` file (:func:`torch_file_problem`)."""
    path = Path(path)
    report = LayoutReport(name="GaitGraph weights", root=path, hint=GET_WEIGHTS_HINT)
    if not path.exists():
        report.missing.append(path)
    elif (problem := weights_problem(path)) is not None:
        report.malformed.append(Malformed(path, problem))
    else:
        report.present.append(path)
    return report
