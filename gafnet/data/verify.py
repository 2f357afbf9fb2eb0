"""Is the data where the scripts expect it? Cheap checks of the data trees against the released layout (README, "Data layout").

    embeddings/ilids/{pit,mgh,osnet,gait1,gait2}/{query,gallery}_split{0..9}.csv   (100 files)
    poses/splits_{pit,mgh}/{train,test}_split{0..9}.csv                              (40 files)
    data/casia-b/*.csv                 GaitGraph's CASIA-B poses (layout not published: checked generically)
    weights/gaitgraph_resgcn-n39-r8_coco_seq_60.pth                                   GaitGraph's checkpoint

Every check only looks at the first line(s) of each file, never parses a 400 MB tree: a full check of
the 140 released files takes a few milliseconds. A file is

- *present*   when it exists and its first line looks like a CSV header followed by data;
- *missing*   when it does not exist;
- *malformed* when it is not a regular file, is empty, holds only a header, has a first line that is
  not text (binary, an HTML page) or that has no comma, or is unreadable.

The root ``evaluate.py`` calls :func:`check_embeddings` (``report.raise_if_incomplete()``) so a missing
file is explained before anything is loaded; ``python -m gafnet.data verify`` prints the same reports.
"""

from __future__ import annotations

import json
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
        if len(problems) > max_lines:
            hidden = len(problems) - max_lines
            problems = problems[:max_lines] + [f"  ... and {hidden} more (python -m gafnet.data verify lists all)"]
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


def weights_problem(path: Path) -> str | None:
    """Why ``path`` is not a PyTorch checkpoint (zip container or legacy pickle), or None."""
    try:
        if (problem := _not_a_nonempty_file(path)) is not None:
            return problem
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return None
    if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        return "an HTML page, not a PyTorch checkpoint (a failed download?)"
    return "not a PyTorch checkpoint (neither a zip container nor a pickle)"


def check_weights(path: str | Path = Path("weights") / GAITGRAPH_WEIGHTS_NAME) -> LayoutReport:
    """GaitGraph's released checkpoint: exists, non-empty, starts like a ``torch.save`` file."""
    path = Path(path)
    report = LayoutReport(name="GaitGraph weights", root=path, hint=GET_WEIGHTS_HINT)
    if not path.exists():
        report.missing.append(path)
    elif (problem := weights_problem(path)) is not None:
        report.malformed.append(Malformed(path, problem))
    else:
        report.present.append(path)
    return report
