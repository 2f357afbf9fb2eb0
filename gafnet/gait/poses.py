"""Pose files (GaitGraph CSV): reading, grouping into sequences, short-sequence handling, caching.

A pose file has one header row, then one row per frame: ``image_name, 17 × (x, y, confidence)`` = 52
columns in COCO-17 order (README, "Data layout"). The image name says which sequence ("target") a frame
belongs to, one regex per dataset (:data:`DATASETS`):

- iLIDS-VID  ``cam{1|2}_person{XXX}_{FRAME}.png``                → (person, camera)
- MARS       ``{PPPP}C{c}T{TTTT}F{FFF}.jpg``                     → (person, camera, tracklet)
- CASIA-B    ``<dir>/<sss>-<cond>-<nn>-<vvv>/<frame>.jpg``       → (subject, condition 0=nm/1=bg/2=cl, sequence, view)

What the original GaitGraph ``PoseDataset`` does (the original GaitGraph code: Dataset loading) and what we do:

- It skips the header and every row whose name starts with ``00-1`` (MARS junk). Same here; junk rows are
  counted in the report.
- It prints "Invalid pose data" and skips rows without exactly 51 values or with unparsable values. We skip
  them too, and the :class:`PoseReport` counts every bad row by reason with its file line number (1-based,
  the header is line 1): wrong number of values, non-numeric value, NaN/infinite value, unparsable file name.
- Frames keep file order; targets are ordered by their first appearance in the file (the original keeps
  them in a dict in insertion order).
- It drops every target with fewer than ``sequence_length + 1`` frames, silently. We pad them by default
  (:func:`reflect_indices`: reflect padding split evenly before and after, the way GaitGraph2 pads) and
  count them; ``drop_short=True`` restores the original behaviour. Either way the report lists them.

How a file is read (docs/poses.md has the details and the measured figures):

1. Its bytes are read into memory from one open descriptor (:class:`gafnet.cache.SourceFile`: no memory
   map, so a file truncated meanwhile cannot kill the process). Line 1 is the header, whatever it holds; a
   UTF-8 byte-order mark in front of any line is dropped. Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``.
2. The data lines are cut into pieces of about 4 MB at line ends. Fast path: Arrow's CSV reader reads a
   piece with a fixed schema (the name as UTF-8 text, 51 float64 values, no quoting, no nulls, empty lines
   kept). A piece is *clean* if Arrow reads it without complaint, gives one row per line, and every value
   is finite as float32; its values are Arrow's float64 cast to float32.
3. Slow path, only for a piece that is not clean: a plain Python pass over its lines (``bytes.splitlines``,
   ``float()`` per cell) that applies the rules of :func:`cell_value` and records every problem with its
   line number. On a clean piece both paths give the same rows and bit-identical values (tested token by
   token): Arrow's float64 parse and ``float()`` are both correctly rounded, and the cast to float32 is the
   one the original's ``np.array(strings, dtype=float32)`` makes.
4. Names are checked and grouped with Arrow's regex kernels: the frame part is cut off every name, the
   distinct rest is encoded once (dictionary encoding) and the capturing regex runs once per distinct
   sequence, not once per row; numpy groups the rows (no Python loop over rows on the fast path).

``cache_dir`` keeps a binary copy of the parse in the project cache (:mod:`gafnet.cache`, kind ``poses``),
keyed by the identity of the file that was actually read and stored only if the file did not change
while it was read.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import zipfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as arrow_csv

from gafnet.atomic import atomic_path
from gafnet.cache import FileCache, SourceFile
from gafnet.errors import InputError
from gafnet.gait.graph import JOINT_NAMES

NUM_JOINTS = 17
NUM_CHANNELS = 3  # x, y, confidence
NUM_VALUES = NUM_JOINTS * NUM_CHANNELS  # 51
NUM_COLUMNS = NUM_VALUES + 1  # image name + 51 values

LEFT_HIP, RIGHT_HIP = 11, 12

#: Header written by :func:`write_pose_csv` (the reader ignores the header's content).
CSV_HEADER = ",".join(["image_name"] + [f"{j}_{c}" for j in JOINT_NAMES for c in ("x", "y", "conf")])

# Reasons a data row is rejected, in order of precedence (a row gets the first that applies).
WRONG_COUNT, NON_NUMERIC, NOT_FINITE, BAD_NAME = 1, 2, 3, 4
BAD_ROW_REASONS = {
    WRONG_COUNT: "wrong number of columns",
    NON_NUMERIC: "non-numeric value",
    NOT_FINITE: "missing, NaN or infinite value",
    BAD_NAME: "unparsable image name",
}

JUNK_PREFIX = "00-1"  # the original skips every row whose name starts with this (MARS person -1)
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark
CACHE_VERSION = 2  # layout of the cached parse; bump when it changes
PIECE_BYTES = 4 << 20  # the fast path reads pieces of about this size; a piece that is not clean is re-read slowly


# --------------------------------------------------------------------------------------------------
# Dataset formats (registry)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PoseFormat:
    """How one dataset names its frames: one regex, in two parts, and the target it groups by.

    The regex is ``key_pattern + frame_pattern``: the key part holds the named groups of the target
    (``fields``, in order), the frame part (the end of the name: a separator, the frame number, the
    extension) the frame number. ``categories`` maps a group's text to an integer (CASIA-B conditions).
    Splitting the regex lets the reader run the capturing part once per distinct sequence instead of once
    per row. Digits are ASCII digits (the regexes are compiled with ``re.ASCII``, as Arrow's RE2 reads them).
    """

    name: str
    title: str  # the dataset's usual spelling, for messages
    key_pattern: str
    frame_pattern: str
    fields: tuple[str, ...]
    example: str
    categories: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def pattern(self) -> str:
        """The whole-name regex, anchored at both ends."""
        return f"^{self.key_pattern}{self.frame_pattern}$"

    def parse_name(self, image_name: str) -> tuple[tuple[int, ...], int] | None:
        """(target, frame) for one image name, or None when it does not match (slow path, for tools/tests)."""
        match = _compiled(self.key_pattern + self.frame_pattern).fullmatch(image_name)
        if match is None:
            return None
        return tuple(self.field_value(f, match.group(f)) for f in self.fields), int(match.group("frame"))

    def field_value(self, group: str, text: str) -> int:
        if group in self.categories:
            return self.categories[group][text]
        return -1 if text == JUNK_PREFIX else int(text)


@functools.lru_cache(maxsize=None)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.ASCII)


_DIR = r"(?:.*[/\\])?"  # optional leading directories
_INT = r"\d{1,9}"  # bounded so every value fits int64

#: The dataset registry; command-line choices come from its keys.
DATASETS: dict[str, PoseFormat] = {
    "iLIDS": PoseFormat(
        name="iLIDS",
        title="iLIDS-VID",
        key_pattern=rf"{_DIR}cam(?P<camera>[12])_person(?P<person>{_INT})",
        frame_pattern=rf"_(?P<frame>{_INT})\.png",
        fields=("person", "camera"),
        example="cam1_person001_00319.png",
        aliases=("ilids", "ilids-vid", "ilidsvid", "ilids_vid"),
    ),
    "mars": PoseFormat(
        name="mars",
        title="MARS",
        key_pattern=rf"{_DIR}(?P<person>00-1|{_INT})C(?P<camera>{_INT})T(?P<tracklet>{_INT})",
        frame_pattern=rf"F(?P<frame>{_INT})\.jpg",
        fields=("person", "camera", "tracklet"),
        example="0065C1T0002F016.jpg",
    ),
    "casia-b": PoseFormat(
        name="casia-b",
        title="CASIA-B",
        key_pattern=rf"{_DIR}(?P<subject>{_INT})-(?P<condition>nm|bg|cl)-(?P<sequence>{_INT})-(?P<view>{_INT})",
        frame_pattern=rf"[/\\](?P<frame>{_INT})\.(?:jpg|png)",
        fields=("subject", "condition", "sequence", "view"),
        example="frames/001-nm-01-090/000042.jpg",
        categories={"condition": {"nm": 0, "bg": 1, "cl": 2}},
        aliases=("casiab", "casia_b", "casia"),
    ),
}


def get_format(name: str) -> PoseFormat:
    """Look a dataset up by name, case-insensitively and by alias (``ilids-vid``, ``CASIA-B``, ``MARS``...)."""
    wanted = str(name).strip().lower()
    for key, fmt in DATASETS.items():
        if wanted == key.lower() or wanted in fmt.aliases:
            return fmt
    choices = ", ".join(DATASETS)
    raise InputError(f"unknown dataset {name!r}: must be one of {choices} (case-insensitive)")


# --------------------------------------------------------------------------------------------------
# Report and result
# --------------------------------------------------------------------------------------------------

@dataclass
class PoseReport:
    """What reading a pose file found. Nothing is dropped without being counted here.

    rows_read       data rows in the file (lines after the header, empty lines excluded)
    rows_used       rows that became frames of a sequence
    junk_rows       rows skipped because the name starts with ``00-1`` (MARS person −1), as the original
    bad_rows        rows rejected, total; ``bad_by_reason`` splits it by reason (text keys)
    bad_lines       the first ``max_listed`` rejected rows as (file line number, reason); line 1 is the header
    empty_lines     blank lines, skipped
    bad_name_note   one line about the names that do not match the dataset's format (with an example of the
                    expected name and, when another registered format fits them, which one); "" if none
    sequences       sequences in the result (after padding or dropping)
    short_sequences sequences with fewer than ``min_frames`` frames; ``short_action`` says what was done
    short_targets   the first ``max_listed`` of those as (target, frames)
    """

    path: str = ""
    dataset: str = ""
    rows_read: int = 0
    rows_used: int = 0
    junk_rows: int = 0
    bad_rows: int = 0
    bad_by_reason: dict = field(default_factory=dict)
    bad_lines: list = field(default_factory=list)
    empty_lines: int = 0
    sequences: int = 0
    frames: int = 0
    min_frames: int = 0
    short_sequences: int = 0
    short_action: str = "none"
    short_targets: list = field(default_factory=list)
    padded_frames: int = 0
    normalized: str = "none"
    from_cache: bool = False
    notes: list = field(default_factory=list)
    bad_name_note: str = ""

    def summary(self) -> str:
        """A few human-readable lines for the scripts to print."""
        lines = [
            f"{self.path}: {self.rows_read} rows, {self.rows_used} used, {self.bad_rows} bad, "
            f"{self.junk_rows} junk (00-1) skipped; {self.sequences} sequences ({self.frames} frames)"
            + (" [from cache]" if self.from_cache else "")
        ]
        name_reason = BAD_ROW_REASONS[BAD_NAME]
        described = {name_reason} if self.bad_name_note else set()  # unparsable names: one line below
        for reason, count in self.bad_by_reason.items():
            if reason not in described:
                lines.append(f"  bad rows, {reason}: {count}")
        listed = [(ln, reason) for ln, reason in self.bad_lines if reason not in described]
        others = self.bad_rows - sum(self.bad_by_reason.get(r, 0) for r in described)
        if listed:
            shown = ", ".join(f"line {ln} ({reason})" for ln, reason in listed)
            more = f" … and {others - len(listed)} more" if others > len(listed) else ""
            lines.append(f"  first bad rows: {shown}{more}")
        if self.bad_name_note:
            lines.append(f"  image names: {self.bad_name_note}")
        if self.short_sequences:
            lines.append(f"  {self.short_sequences} sequences shorter than {self.min_frames} frames: {self.short_action}"
                         + (f" (+{self.padded_frames} padded frames)" if self.padded_frames else ""))
        if self.empty_lines:
            lines.append(f"  {self.empty_lines} empty lines skipped")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


@dataclass
class PoseSet:
    """Pose sequences of one file: all frames in one array, sequence ``i`` is ``poses[offsets[i]:offsets[i+1]]``.

    poses        (F, 17, 3) float32, x/y in pixels, confidence; sequences back to back
    offsets      (S + 1,) int64
    targets      (S, k) int64, one row per sequence, columns ``target_fields``
    source_lengths (S,) int64 frames each sequence had in the file (before padding)
    """

    dataset: str
    target_fields: tuple[str, ...]
    poses: np.ndarray
    offsets: np.ndarray
    targets: np.ndarray
    source_lengths: np.ndarray
    report: PoseReport

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, index: int) -> np.ndarray:
        """(T, 17, 3) float32 view of sequence ``index`` (copy it before changing it)."""
        return self.poses[self.offsets[index]:self.offsets[index + 1]]

    def target(self, index: int) -> tuple[int, ...]:
        return tuple(int(v) for v in self.targets[index])

    def target_list(self) -> list[tuple[int, ...]]:
        return [tuple(row) for row in self.targets.tolist()]

    def column(self, name: str) -> np.ndarray:
        """One target field for every sequence, e.g. ``column("person")``."""
        return self.targets[:, self.target_fields.index(name)]

    def select(self, indices) -> "PoseSet":
        """A new PoseSet with the given sequences (indices or boolean mask), in that order."""
        indices = np.arange(len(self))[np.asarray(indices)] if np.asarray(indices).dtype == bool else np.asarray(indices, dtype=np.int64)
        take = _concat_ranges(self.offsets[indices], self.offsets[indices + 1])
        lengths = self.lengths[indices]
        return PoseSet(self.dataset, self.target_fields, self.poses[take], _offsets(lengths),
                       self.targets[indices], self.source_lengths[indices], self.report)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

def load_poses(path: str | os.PathLike, dataset: str, *, sequence_length: int | None = 60,
               drop_short: bool = False, normalize: bool | str = False,
               cache_dir: str | os.PathLike | None = None, max_listed: int = 20) -> PoseSet:
    """Read a pose CSV into a :class:`PoseSet`.

    sequence_length  sequences need ``sequence_length + 1`` frames (the original's rule, so that its
                     RandomSelectSequence can draw a start); shorter ones are reflect-padded to that length,
                     or dropped with ``drop_short=True`` (the original). ``None``: keep every length as read.
    normalize        False (default, as the original: raw pixels) or True / "sequence": see
                     :func:`normalize_poses`.
    cache_dir        the project cache directory (``--cache_dir``); parses are kept in its ``poses/``
                     folder (:class:`gafnet.cache.FileCache`). None: no cache.
    Raises :class:`InputError` for a missing, unreadable or empty file; bad rows never raise, they go to the
    report.
    """
    fmt = get_format(dataset)
    cache = FileCache("poses", directory=cache_dir, enabled=cache_dir is not None, version=CACHE_VERSION,
                      suffix=".npz")
    tag = f"{fmt.name}-{int(max_listed)}"  # the report lists up to max_listed bad rows
    with SourceFile(path, "pose file") as source:
        parsed = cache.load(source, _read_cache, tag)
        if parsed is None:
            parsed = parse_pose_bytes(source.read_bytes(), fmt, path=str(path), max_listed=max_listed)
            try:
                cache.store(source, lambda tmp: _write_cache(tmp, parsed), tag)
            except InputError:
                pass  # a cache directory that cannot be written: the next run parses again
        else:
            parsed.report.from_cache = True
    parsed.report.path = str(path)
    return finish_pose_set(parsed, sequence_length=sequence_length, drop_short=drop_short,
                           normalize=normalize, max_listed=max_listed)


def finish_pose_set(parsed: PoseSet, *, sequence_length: int | None = 60, drop_short: bool = False,
                    normalize: bool | str = False, max_listed: int = 20) -> PoseSet:
    """Apply the short-sequence rule and the optional normalisation to a freshly parsed PoseSet."""
    report = parsed.report
    result = parsed
    if sequence_length is not None:
        min_frames = int(sequence_length) + 1
        report.min_frames = min_frames
        lengths = parsed.lengths
        short = np.flatnonzero(lengths < min_frames)
        report.short_sequences = int(len(short))
        report.short_targets = [(parsed.target(i), int(lengths[i])) for i in short[:max_listed]]
        if len(short) and drop_short:
            report.short_action = f"dropped (as the original: fewer than sequence_length + 1 = {min_frames} frames)"
            result = parsed.select(np.flatnonzero(lengths >= min_frames))
        elif len(short):
            report.short_action = f"reflect-padded to {min_frames} frames"
            result = pad_sequences(parsed, min_frames)
            report.padded_frames = int(result.offsets[-1] - parsed.offsets[-1])
    if normalize:
        mode = "sequence" if normalize is True else str(normalize)
        result.poses = normalize_poses(result.poses, result.offsets, mode=mode)
        report.normalized = mode
    report.sequences = len(result)
    report.frames = int(result.offsets[-1])
    result.report = report
    return result


def parse_pose_file(path: str | os.PathLike, dataset: str | PoseFormat, *, max_listed: int = 20) -> PoseSet:
    """Parse a pose CSV into sequences (no padding, no normalisation, no cache). See the module docstring."""
    with SourceFile(path, "pose file") as source:
        data = source.read_bytes()
    return parse_pose_bytes(data, dataset, path=str(path), max_listed=max_listed)


def parse_pose_bytes(data: bytes, dataset: str | PoseFormat, *, path: str = "", max_listed: int = 20) -> PoseSet:
    """Parse the bytes of a pose CSV (see the module docstring): fast path per clean piece, slow path otherwise."""
    fmt = dataset if isinstance(dataset, PoseFormat) else get_format(dataset)
    start = len(BOM) if data.startswith(BOM) else 0
    if len(data) == start:
        raise InputError(f"{path or 'pose file'}: the file is empty; expected a header row, then rows of "
                         f"image_name + {NUM_VALUES} values (e.g. {fmt.example})")
    body = _header_end(data, start)
    report = PoseReport(path=path, dataset=fmt.name)
    header_name = data[start:body].split(b",", 1)[0].strip().decode("utf-8", "replace")
    if fmt.parse_name(header_name) is not None:
        report.notes.append(f"line 1 ({header_name!r}) looks like a data row; line 1 is always read as the header, "
                            "as the original does")
    pieces, first_line = [], 2
    buffer = pa.py_buffer(data)  # zero-copy: Arrow reads the pieces from the bytes in memory
    values = _ValueRows(len(data))
    for a, b in _piece_bounds(data, body):
        piece = _read_clean_piece(buffer, a, b, first_line, values)
        if piece is None:
            piece = _read_piece_slowly(data[a:b], first_line, values, done=b)
        pieces.append(piece)
        first_line += piece.line_count
    return _build(pieces, values.filled(), fmt, report, max_listed)


def _header_end(data: bytes, start: int = 0) -> int:
    """Offset of the first byte after the header line (line ends: \\n, \\r\\n or a lone \\r)."""
    ends = [i for i in (data.find(b"\n", start), data.find(b"\r", start)) if i >= 0]
    if not ends:
        return len(data)
    end = min(ends)
    return end + 2 if data[end:end + 2] == b"\r\n" else end + 1


def _piece_bounds(data: bytes, start: int, size: int | None = None) -> list[tuple[int, int]]:
    """[start, len(data)) cut into pieces of about ``size`` (default PIECE_BYTES) bytes, each ending just after
    a ``\\n`` (a file without any ``\\n``, e.g. one with lone ``\\r`` line ends, is one piece)."""
    size = PIECE_BYTES if size is None else size
    bounds = [start]
    while bounds[-1] < len(data):
        cut = data.find(b"\n", bounds[-1] + size)
        bounds.append(len(data) if cut < 0 else cut + 1)
    return list(zip(bounds[:-1], bounds[1:]))


class _ValueRows:
    """The values of every piece's candidate rows, written piece after piece into one float32 array.

    The array is sized from the rows per byte seen so far (+5 %) and grows when a file's rows get shorter;
    :meth:`filled` is a view of the rows written, so the values are not copied once more at the end.
    """

    def __init__(self, total_bytes: int):
        self.total_bytes = total_bytes
        self.array = np.empty((0, NUM_VALUES), np.float32)
        self.count = 0

    def space(self, rows: int, done: int) -> np.ndarray:
        """Room for the next ``rows`` rows; ``done``: bytes of the file read once they are in."""
        need = self.count + rows
        if need > len(self.array):
            estimate = int(need / max(done, 1) * self.total_bytes * 1.05) + 1024
            grown = np.empty((max(need, estimate, len(self.array) * 3 // 2), NUM_VALUES), np.float32)
            grown[:self.count] = self.array[:self.count]
            self.array = grown
        return self.array[self.count:need]

    def add(self, rows: int) -> None:
        self.count += rows

    def filled(self) -> np.ndarray:
        return self.array[:self.count]


@dataclass
class _Piece:
    """The lines of one piece of the file.

    Rows with the right number of columns ("candidates") keep their name, line number and value reason (0,
    NON_NUMERIC or NOT_FINITE), their values go to :class:`_ValueRows`; their name is checked later, for every
    piece at once. Rows with the wrong number of columns are only listed (or counted as junk, if their name
    says so).
    """

    names: object  # pyarrow string array, one name per candidate row
    reasons: np.ndarray  # (n,) int8
    lines: np.ndarray  # (n,) int64 file line numbers
    line_count: int  # lines in the piece, empty ones included
    ragged_lines: Sequence[int] = ()
    ragged_columns: Sequence[int] = ()
    ragged_junk: int = 0
    empty_lines: int = 0


_COLUMN_NAMES = ["image_name"] + [f"v{j}" for j in range(NUM_VALUES)]


def _read_clean_piece(buffer, start: int, stop: int, first_line: int, out: _ValueRows) -> _Piece | None:
    """The fast path: Arrow's CSV reader on data[start:stop], values into ``out``; None unless the piece is clean.

    Clean: Arrow reads it with the fixed schema, which rejects a wrong number of columns, an empty line (as
    the options keep empty lines, an empty line is a row of one column), a cell that is not a number, a name
    that is not UTF-8 and a line longer than Arrow's block; every value is finite as float32 (which rejects
    nan, inf and numbers beyond float32's range); and no name starts with a byte-order mark. Without quoting,
    every line is then one row: row i is line ``first_line + i`` (tests pin these Arrow behaviours).
    """
    types = {name: pa.float64() for name in _COLUMN_NAMES[1:]}
    types["image_name"] = pa.string()
    try:
        table = arrow_csv.read_csv(
            pa.BufferReader(buffer.slice(start, stop - start)),
            read_options=arrow_csv.ReadOptions(column_names=_COLUMN_NAMES),
            parse_options=arrow_csv.ParseOptions(quote_char=False, double_quote=False, escape_char=False,
                                           newlines_in_values=False, ignore_empty_lines=False),
            convert_options=arrow_csv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                               quoted_strings_can_be_null=False))
    except (pa.ArrowException, ValueError):
        return None
    n = table.num_rows
    names = table.column(0).combine_chunks()
    if n and pc.any(pc.starts_with(names, "\ufeff")).as_py():
        return None
    values = out.space(n, stop)
    row = 0
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32's range: inf, rejected below
        for batch in table.to_batches():
            block = values[row:row + batch.num_rows]
            for j in range(NUM_VALUES):
                block[:, j] = _numpy(batch.column(j + 1))
            row += batch.num_rows
    if not np.isfinite(values).all():
        return None
    out.add(n)
    return _Piece(names=names, reasons=np.zeros(n, np.int8),
                  lines=np.arange(first_line, first_line + n, dtype=np.int64), line_count=n)


_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity)", re.ASCII | re.IGNORECASE)
_NULL_LIKE = frozenset(["", "nan", "+nan", "-nan", "na", "n/a", "null", "none", "#n/a", "-1.#ind", "1.#qnan"])


def cell_value(cell: bytes) -> float | None:
    """The value of one value cell, by the rules every pose file is read with (both paths give these).

    White space around the cell is ignored (what ``str.isspace`` calls white space, as ``float()`` and the
    original's conversion ignore it). A decimal number in ASCII digits (``12``, ``-1.5``, ``.5``, ``5.``,
    ``2.5e-3``) or ``inf`` / ``infinity`` → ``float()`` of it, the correctly rounded double (the reader then
    casts it to float32; a row with a value that is not finite as float32 is rejected). An empty cell or a
    null-like token (``nan``, ``NA``, ``n/a``, ``null``, ``None``, ``#N/A``, ``-1.#IND``, ``1.#QNAN``, any
    case) → NaN, which rejects the row as missing. Anything else → None: non-numeric (also ``1_000``,
    digits other than ASCII ones, and bytes that are not UTF-8).
    """
    try:
        text = cell.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if _NUMBER.fullmatch(text):
        return float(text)
    if text.isascii() and text.lower() in _NULL_LIKE:
        return math.nan
    return None


def _read_piece_slowly(piece: bytes, first_line: int, out: _ValueRows, done: int = 0) -> _Piece:
    """The slow path: the piece's lines one by one, in plain Python (see :func:`cell_value`); values into ``out``."""
    names, lines, reasons = [], [], []
    values = array("d")  # NUM_VALUES doubles per candidate row
    ragged_lines, ragged_columns = [], []
    ragged_junk = empty = 0
    line_count = 0
    missing = [math.nan] * NUM_VALUES
    for line_count, line in enumerate(piece.splitlines(), start=1):
        if line.startswith(BOM):
            line = line[len(BOM):]
        if not line:
            empty += 1
            continue
        number = first_line + line_count - 1
        name_bytes, *cells = line.split(b",")
        try:
            name = name_bytes.decode("utf-8")
        except UnicodeDecodeError:
            name = ""  # not UTF-8 text: an unparsable name
        if len(cells) != NUM_VALUES:
            if name.startswith(JUNK_PREFIX):
                ragged_junk += 1
            else:
                ragged_lines.append(number)
                ragged_columns.append(len(cells) + 1)
            continue
        row, reason = None, 0
        if line.find(b"_", len(name_bytes)) < 0:  # float() would also accept 1_000
            try:
                row = list(map(float, cells))  # on ASCII without "_": exactly what cell_value accepts
            except ValueError:
                pass
        if row is None:
            row = [cell_value(cell) for cell in cells]
            if any(v is None for v in row):
                row, reason = missing, NON_NUMERIC
        names.append(name)
        lines.append(number)
        reasons.append(reason)
        values.extend(row)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32's range: inf, rejected as not finite
        block = np.array(values, np.float64).reshape(-1, NUM_VALUES).astype(np.float32)
    reasons = np.array(reasons, np.int8)
    reasons[(reasons == 0) & ~np.isfinite(block).all(axis=1)] = NOT_FINITE
    out.space(len(block), done)[:] = block
    out.add(len(block))
    return _Piece(names=pa.array(names, pa.string()), reasons=reasons,
                  lines=np.array(lines, np.int64), line_count=line_count, ragged_lines=ragged_lines,
                  ragged_columns=ragged_columns, ragged_junk=ragged_junk, empty_lines=empty)


@dataclass
class _NameCodes:
    junk: np.ndarray  # (n,) bool
    matched: np.ndarray  # (n,) bool
    codes: np.ndarray  # (n,) int64 row of key_table
    key_table: np.ndarray  # (K, k) int64 target of each distinct name prefix


def _name_codes(names, fmt: PoseFormat) -> _NameCodes:
    """Per row: junk flag, whole-name match flag, code of its name prefix; and the target of each prefix.

    The frame part (``fmt.frame_pattern`` at the end) is cut off every name; a name matches if it had one
    and the rest, one of the distinct prefixes, matches ``fmt.key_pattern``, which runs once per distinct
    prefix. (A name ends with at most one frame part: it starts with a character that its digits and
    extension cannot hold, so this is the whole-name match; a test checks it against ``re.fullmatch``.)
    """
    if len(names) == 0:
        return _NameCodes(np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int64), np.zeros((0, len(fmt.fields)), np.int64))
    junk = _numpy(pc.starts_with(names, JUNK_PREFIX))
    prefixes = pc.replace_substring_regex(names, f"{fmt.frame_pattern}$", "")
    cut = _numpy(pc.less(pc.binary_length(prefixes), pc.binary_length(names)))
    encoded = pc.dictionary_encode(prefixes)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()  # one dictionary for all pieces
    codes = _numpy(encoded.indices).astype(np.int64)
    distinct = encoded.dictionary
    extracted = pc.extract_regex(distinct, f"^{fmt.key_pattern}$")
    valid = _numpy(extracted.is_valid())
    key_table = np.zeros((len(distinct), len(fmt.fields)), dtype=np.int64)
    for k, group in enumerate(fmt.fields):
        texts = extracted.field(group).to_pylist()
        key_table[:, k] = [fmt.field_value(group, t) if ok else 0 for t, ok in zip(texts, valid)]
    matched = cut & valid[codes]
    if "person" in fmt.fields:  # MARS person "00-1" is junk, whatever the name's directories
        junk |= matched & (key_table[codes, fmt.fields.index("person")] == -1)
    return _NameCodes(junk, matched, codes, key_table)


_NUMPY_TYPES = {pa.float64(): np.float64, pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32,
                pa.int64(): np.int64, pa.uint8(): np.uint8}


def _numpy(result) -> np.ndarray:
    """A pyarrow Array or ChunkedArray of numbers or booleans without nulls, as a numpy array (a view where
    possible). Not ``to_numpy``: in pyarrow 26 its first call imports pandas, 0.3-0.6 s of every first parse."""
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    assert result.null_count == 0
    if pa.types.is_boolean(result.type):  # stored as bits: one byte each first
        return _numpy(pc.cast(result, pa.uint8())).view(bool)
    dtype = np.dtype(_NUMPY_TYPES[result.type])
    return np.frombuffer(result.buffers()[1], dtype, len(result), result.offset * dtype.itemsize)


def _build(pieces: Sequence[_Piece], values: np.ndarray, fmt: PoseFormat, report: PoseReport,
           max_listed: int) -> PoseSet:
    """Checks the names of every piece's candidate rows (their values: ``values``, in order), makes the report
    and groups the good rows."""
    k = len(fmt.fields)
    pieces = list(pieces) or [_read_piece_slowly(b"", 2, _ValueRows(0))]  # a file without data lines: no rows

    def joined(arrays):
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    chunks = [c for p in pieces for c in (p.names.chunks if isinstance(p.names, pa.ChunkedArray) else [p.names])]
    names = pa.chunked_array(chunks, pa.string())  # pa.array makes several chunks of names over 2 GB
    value_reason = joined([p.reasons for p in pieces])
    lines = joined([p.lines for p in pieces])
    ragged_lines = np.array([n for p in pieces for n in p.ragged_lines], np.int64)
    ragged_columns = np.array([c for p in pieces for c in p.ragged_columns], np.int64)
    ragged_junk = sum(p.ragged_junk for p in pieces)
    report.empty_lines = sum(p.empty_lines for p in pieces)

    codes = _name_codes(names, fmt)
    # the original's order of checks: junk prefix, column count, values, then (here) the name
    reason = np.where(value_reason != 0, value_reason, np.where(codes.matched, 0, BAD_NAME)).astype(np.int8)
    reason[codes.junk] = 0
    good = (reason == 0) & ~codes.junk

    row_bad = np.flatnonzero(reason)
    bad_lines = np.concatenate([ragged_lines, lines[row_bad]])
    bad_codes = np.concatenate([np.full(len(ragged_lines), WRONG_COUNT, np.int8), reason[row_bad]])
    bad_columns = np.concatenate([ragged_columns, np.full(len(row_bad), NUM_COLUMNS, np.int64)])
    order = np.argsort(bad_lines, kind="stable")
    bad_lines, bad_codes, bad_columns = bad_lines[order], bad_codes[order], bad_columns[order]

    report.rows_read = int(len(names) + len(ragged_lines) + ragged_junk)
    report.junk_rows = int(np.count_nonzero(codes.junk) + ragged_junk)
    report.bad_rows = int(len(bad_lines))
    report.bad_by_reason = {BAD_ROW_REASONS[c]: int(np.count_nonzero(bad_codes == c))
                            for c in sorted(BAD_ROW_REASONS) if np.any(bad_codes == c)}
    report.bad_lines = [
        (int(ln), f"{int(cols)} columns, expected {NUM_COLUMNS}" if c == WRONG_COUNT else BAD_ROW_REASONS[int(c)])
        for ln, c, cols in zip(bad_lines[:max_listed], bad_codes[:max_listed], bad_columns[:max_listed])
    ]
    report.rows_used = int(np.count_nonzero(good))
    bad_names = np.flatnonzero(reason == BAD_NAME)
    if len(bad_names):
        checked = int(np.count_nonzero((value_reason == 0) & ~codes.junk))  # rows whose name decided
        report.bad_name_note = _bad_name_note(fmt, names, bad_names, lines, checked)

    if len(codes.key_table):  # prefixes (other directories, say) that name the same target are one group
        target_of_group, canonical = np.unique(codes.key_table, axis=0, return_inverse=True)
        group = canonical.reshape(-1)[codes.codes]
    else:
        target_of_group, group = np.zeros((0, k), np.int64), codes.codes
    good_rows = np.flatnonzero(good)
    good_groups = group[good_rows]
    order, offsets, first = group_rows(good_groups)
    if order is not None:  # some target's rows are not contiguous in the file
        values = values[good_rows[order]]
    elif len(good_rows) < len(values):  # bad or junk rows to leave out
        values = values[good_rows]
    poses = values.reshape(len(values), NUM_JOINTS, NUM_CHANNELS)
    targets = target_of_group[good_groups[first]] if len(first) else np.zeros((0, k), np.int64)
    report.sequences, report.frames = len(offsets) - 1, int(offsets[-1])
    return PoseSet(dataset=fmt.name, target_fields=fmt.fields, poses=poses, offsets=offsets, targets=targets,
                   source_lengths=np.diff(offsets), report=report)


def _bad_name_note(fmt: PoseFormat, names, bad_rows: np.ndarray, lines: np.ndarray, checked: int,
                   sample: int = 1000) -> str:
    """One line about the names that do not match ``fmt``: how many, an example of the expected name, the
    first one found and, when most of them match another registered format, which dataset to use."""
    first = names[int(bad_rows[0])].as_py()
    shown = repr(first if len(first) <= 80 else first[:80] + "…") if first else "no name (or one that is not UTF-8 text)"
    count = len(bad_rows)
    if count == checked:
        text = f"no image name matches the {fmt.title} format"
    elif count >= 0.9 * checked:
        text = f"{count} of {checked} image names (almost all) do not match the {fmt.title} format"
    else:
        text = f"{count} of {checked} image names do not match the {fmt.title} format"
    text += f" (expected names like {fmt.example!r}; line {int(lines[bad_rows[0]])} has {shown})"
    probe = names.take(pa.array(bad_rows[:sample]))
    fits = {other.name: int(np.count_nonzero(_name_codes(probe, other).matched))
            for other in DATASETS.values() if other.name != fmt.name}
    best = max(fits, key=fits.get) if fits else None
    if best is not None and fits[best] > len(probe) / 2:
        text += f"; they look like {DATASETS[best].title} names (use dataset {best})"
    return text


def group_rows(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group rows by an integer group id: groups in order of first appearance, rows in file order within one.

    groups (N,) → (order, offsets (S+1,), first (S,) index of each group's first row). ``order`` (N,) lists
    the rows grouped, or is None when every group already is one contiguous run (the rows stay as they are).
    """
    n = len(groups)
    if n == 0:
        return None, np.zeros(1, np.int64), np.zeros(0, np.int64)
    change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    starts = np.concatenate([[0], change])
    if len(np.unique(groups[starts])) == len(starts):  # every group is one contiguous run (the usual case)
        return None, np.append(starts, n).astype(np.int64), starts.astype(np.int64)
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    ranked = rank[inverse.reshape(-1)]
    order = np.argsort(ranked, kind="stable")
    counts = np.bincount(ranked, minlength=len(first))
    return order, _offsets(counts), np.sort(first)



# --------------------------------------------------------------------------------------------------
# Short sequences, normalisation
# --------------------------------------------------------------------------------------------------

def reflect_indices(length: int, target: int) -> np.ndarray:
    """Frame indices that reflect-pad a sequence of ``length`` frames to ``target`` frames.

    The padding is split evenly before (``pad // 2``) and after (the rest), and mirrors the sequence
    about its first and last frame without repeating them (numpy's ``mode="reflect"``, repeated as often
    as needed): 0 1 2 3 → (pad to 9) 2 1 | 0 1 2 3 | 2 1 0. A single frame is repeated.
    """
    if length <= 0:
        raise ValueError("cannot pad an empty sequence")
    if target <= length:
        return np.arange(length)
    pad = target - length
    positions = np.arange(-(pad // 2), length + pad - pad // 2)
    if length == 1:
        return np.zeros(target, dtype=np.int64)
    period = 2 * (length - 1)
    folded = np.mod(positions, period)
    return np.where(folded < length, folded, period - folded).astype(np.int64)


def pad_sequences(poses: PoseSet, min_frames: int) -> PoseSet:
    """Reflect-pad every sequence shorter than ``min_frames`` (see :func:`reflect_indices`)."""
    lengths = poses.lengths
    pieces = []
    for i, length in enumerate(lengths.tolist()):
        start = int(poses.offsets[i])
        if length < min_frames:
            pieces.append(start + reflect_indices(length, min_frames))
        else:
            pieces.append(np.arange(start, start + length))
    take = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    new_lengths = np.maximum(lengths, min_frames) if len(lengths) else lengths
    return PoseSet(poses.dataset, poses.target_fields, poses.poses[take], _offsets(new_lengths),
                   poses.targets, poses.source_lengths, poses.report)


def normalize_poses(poses: np.ndarray, offsets: np.ndarray, mode: str = "sequence") -> np.ndarray:
    """Centre every frame on its hip midpoint and scale each sequence by its body height (not in the original).

    Centring is per frame (removes where the person stands in the crop); scaling is per sequence, by the
    median over its frames of the frame's vertical extent (max y − min y over the 17 joints), so a walk
    keeps its within-sequence proportions and one bad frame cannot change the scale. ``mode="frame"``
    scales every frame by its own height instead. The confidence channel is left untouched.
    A height of (almost) zero leaves the scale at 1.
    """
    if mode not in ("sequence", "frame"):
        raise ValueError(f"normalize mode must be 'sequence' or 'frame', not {mode!r}")
    out = np.array(poses, dtype=np.float32, copy=True)
    if len(out) == 0:
        return out
    hip = (out[:, LEFT_HIP, :2] + out[:, RIGHT_HIP, :2]) / 2  # (F, 2)
    out[:, :, :2] -= hip[:, None, :]
    height = out[:, :, 1].max(axis=1) - out[:, :, 1].min(axis=1)  # (F,)
    if mode == "sequence":
        height = np.repeat(segment_median(height, offsets), np.diff(offsets))
    scale = np.where(height > 1e-6, height, 1.0).astype(np.float32)
    out[:, :, :2] /= scale[:, None, None]
    return out


def segment_median(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Median of ``values[offsets[i]:offsets[i+1]]`` for every segment (vectorised; empty segments give 0)."""
    lengths = np.diff(offsets)
    segment = np.repeat(np.arange(len(lengths)), lengths)
    order = np.lexsort((values, segment))
    ordered = values[order]
    lo = offsets[:-1] + (lengths - 1) // 2
    hi = offsets[:-1] + lengths // 2
    result = np.zeros(len(lengths), dtype=np.float64)
    ok = lengths > 0
    result[ok] = (ordered[lo[ok]].astype(np.float64) + ordered[hi[ok]]) / 2
    return result


def _offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def _concat_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """np.concatenate([arange(s, e) for s, e in zip(starts, ends)]), vectorised."""
    lengths = (ends - starts).astype(np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    base = np.repeat(starts - _offsets(lengths)[:-1], lengths)
    return base + np.arange(total, dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# Cache entries (where they live and how they are keyed: gafnet.cache)
# --------------------------------------------------------------------------------------------------

def _write_cache(target: Path, parsed: PoseSet) -> None:
    """The parse as an uncompressed .npz: poses, offsets, targets and the report (JSON)."""
    report = {k: v for k, v in parsed.report.__dict__.items() if k != "from_cache"}
    meta = {"version": CACHE_VERSION, "dataset": parsed.dataset, "fields": list(parsed.target_fields), "report": report}
    with open(target, "wb") as fh:
        np.savez(fh, poses=parsed.poses, offsets=parsed.offsets, targets=parsed.targets, meta=np.array(json.dumps(meta)))


def _read_cache(entry: Path) -> PoseSet | None:
    """A cached parse, or None if the entry cannot be read (then the file is parsed again)."""
    try:
        with np.load(entry, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != CACHE_VERSION:
                return None
            report = PoseReport(**meta["report"])
            report.bad_lines = [tuple(x) for x in report.bad_lines]
            report.short_targets = [(tuple(t), n) for t, n in report.short_targets]
            offsets, poses, targets = data["offsets"], data["poses"], data["targets"]
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None
    if poses.shape[1:] != (NUM_JOINTS, NUM_CHANNELS) or len(offsets) != len(targets) + 1 or offsets[-1] != len(poses):
        return None
    return PoseSet(meta["dataset"], tuple(meta["fields"]), poses, offsets, targets, np.diff(offsets), report)


# --------------------------------------------------------------------------------------------------
# Writing (the same schema as the reader)
# --------------------------------------------------------------------------------------------------

def format_pose_rows(names: Sequence[str], poses: np.ndarray, xy_decimals: int = 3, conf_decimals: int = 4) -> str:
    """CSV text (no header) of ``image_name, 17 × (x, y, conf)`` rows; poses (N, 17, 3)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(len(names), NUM_VALUES)
    cell = [f"%.{xy_decimals}f", f"%.{xy_decimals}f", f"%.{conf_decimals}f"] * NUM_JOINTS
    row = "%s," + ",".join(cell)
    return "".join(row % (name, *values) + "\n" for name, values in zip(names, poses.tolist()))


def write_pose_csv(path: str | os.PathLike, names: Sequence[str], poses: np.ndarray, **fmt) -> None:
    """Write a pose CSV (header + rows) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(CSV_HEADER + "\n")
            fh.write(format_pose_rows(names, poses, **fmt))


# --------------------------------------------------------------------------------------------------
# torch Dataset
# --------------------------------------------------------------------------------------------------

class PoseDataset:
    """Map-style dataset over a :class:`PoseSet`: item ``i`` is ``(transform(sequence_i), target_i)``.

    As the original GaitGraph ``PoseDataset.__getitem__``: the (T, 17, 3) float32 array of the sequence's
    frames (a copy) goes through ``transform`` and is returned with its target tuple.

    A plain map-style dataset (``__len__`` / ``__getitem__``): ``torch.utils.data.DataLoader`` takes it as is,
    and importing this module does not import torch.

    Randomness: ``transform`` is called as ``transform(data, rng=rng)``. With ``seed`` set, ``rng`` is
    ``np.random.default_rng([seed, epoch, index])`` — the same augmentation for the same (seed, epoch,
    index) whatever the number of DataLoader workers; call :meth:`set_epoch` every epoch. Without a seed
    every call draws fresh OS entropy (workers never repeat each other).
    """

    def __init__(self, poses: PoseSet, transform: Callable | None = None, seed: int | None = None):
        self.poses = poses
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.targets = poses.target_list()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.poses)

    def rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([int(self.seed), self.epoch, int(index)])

    def __getitem__(self, index: int):
        data = np.array(self.poses.sequence(index), dtype=np.float32, copy=True)
        if self.transform is not None:
            data = self.transform(data, rng=self.rng(index))
        return data, self.targets[index]
