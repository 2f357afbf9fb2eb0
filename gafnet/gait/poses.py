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

Speed: the file is parsed by gafnet's small C parser (:mod:`gafnet.gait.fastcsv`, compiled on first use;
pieces of the file in parallel threads), or, where no C compiler is available, by Arrow's multi-threaded C++
CSV reader; rows are grouped with numpy (no Python loop over rows). A CASIA-B-size file (1.4 M rows) parses
in under a second with the C parser, about two with Arrow. ``cache_dir`` keeps a binary copy of the parse
(an uncompressed ``.npz``, written atomically) that reloads in well under a second.
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from gafnet.atomic import atomic_path
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
_CACHE_FORMAT = 1


# --------------------------------------------------------------------------------------------------
# Dataset formats (registry)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PoseFormat:
    """How one dataset names its frames: one regex, in two parts, and the target it groups by.

    The regex is ``key_pattern + frame_pattern``: the key part holds the named groups of the target
    (``fields``, in order), the frame part (the end of the name) the frame number. ``categories`` maps a
    group's text to an integer (CASIA-B conditions). Splitting the regex lets the reader run the capturing
    part once per distinct sequence instead of once per row. ``simple_frame``: the frame part is always one
    separator character, the frame number and an extension without digits (``_00319.png``); the C parser
    then cuts it off without a regex (a test checks that this equals the regex's cut for every format).
    """

    name: str
    key_pattern: str
    frame_pattern: str
    fields: tuple[str, ...]
    example: str
    categories: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    simple_frame: bool = True

    @property
    def pattern(self) -> str:
        """The whole-name regex, anchored at both ends."""
        return f"^{self.key_pattern}{self.frame_pattern}$"

    def parse_name(self, image_name: str) -> tuple[tuple[int, ...], int] | None:
        """(target, frame) for one image name, or None when it does not match (slow path, for tools/tests)."""
        match = re.match(self.pattern, image_name)
        if match is None:
            return None
        return tuple(self.field_value(f, match.group(f)) for f in self.fields), int(match.group("frame"))

    def field_value(self, group: str, text: str) -> int:
        if group in self.categories:
            return self.categories[group][text]
        return -1 if text == JUNK_PREFIX else int(text)


_DIR = r"(?:.*[/\\])?"  # optional leading directories
_INT = r"\d{1,9}"  # bounded so every value fits int64

#: The dataset registry; command-line choices come from its keys.
DATASETS: dict[str, PoseFormat] = {
    "iLIDS": PoseFormat(
        name="iLIDS",
        key_pattern=rf"{_DIR}cam(?P<camera>[12])_person(?P<person>{_INT})",
        frame_pattern=rf"_(?P<frame>{_INT})\.png",
        fields=("person", "camera"),
        example="cam1_person001_00319.png",
        aliases=("ilids", "ilids-vid", "ilidsvid", "ilids_vid"),
    ),
    "mars": PoseFormat(
        name="mars",
        key_pattern=rf"{_DIR}(?P<person>00-1|{_INT})C(?P<camera>{_INT})T(?P<tracklet>{_INT})",
        frame_pattern=rf"F(?P<frame>{_INT})\.jpg",
        fields=("person", "camera", "tracklet"),
        example="0065C1T0002F016.jpg",
    ),
    "casia-b": PoseFormat(
        name="casia-b",
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
    empty_lines     blank lines, skipped (counted only when a file has bad rows: only then is it scanned)
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

    def summary(self) -> str:
        """A few human-readable lines for the scripts to print."""
        lines = [
            f"{self.path}: {self.rows_read} rows, {self.rows_used} used, {self.bad_rows} bad, "
            f"{self.junk_rows} junk (00-1) skipped; {self.sequences} sequences ({self.frames} frames)"
            + (" [from cache]" if self.from_cache else "")
        ]
        for reason, count in self.bad_by_reason.items():
            lines.append(f"  bad rows, {reason}: {count}")
        if self.bad_lines:
            shown = ", ".join(f"line {ln} ({reason})" for ln, reason in self.bad_lines)
            more = "" if len(self.bad_lines) >= self.bad_rows else f" … and {self.bad_rows - len(self.bad_lines)} more"
            lines.append(f"  first bad rows: {shown}{more}")
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
    cache_dir        directory for the binary parse cache (None: no cache).
    Raises :class:`InputError` for a missing or empty file; bad rows never raise, they go to the report.
    """
    fmt = get_format(dataset)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pose file not found: {path}")
    parsed = None
    cache_file = cache_path(path, fmt.name, cache_dir) if cache_dir is not None else None
    if cache_file is not None and cache_file.is_file():
        parsed = _read_cache(cache_file)
    if parsed is None:
        parsed = parse_pose_file(path, fmt, max_listed=max_listed)
        if cache_file is not None:
            _write_cache(cache_file, parsed)
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


def parse_pose_file(path: str | os.PathLike, dataset: str | PoseFormat, *, max_listed: int = 20,
                    engine: str | None = None) -> PoseSet:
    """Parse a pose CSV into sequences (no padding, no normalisation). See the module docstring.

    ``engine``: ``"c"`` (gafnet's C parser, :mod:`gafnet.gait.fastcsv`), ``"arrow"`` (Arrow's CSV reader) or
    ``"auto"``/None (``$GAFNET_POSE_PARSER``, else C when it can be built). Both give the same result.

    Steps: the rows after the header are parsed (values as float32, the names as an Arrow string array);
    the whole-name regex validates every name; the capturing key regex runs once per distinct name prefix
    (Arrow dictionary encoding); numpy groups the rows. The C parser works on pieces of the file in
    threads and knows every line's number; with Arrow, file line numbers of bad rows come from a numpy
    scan of the bytes, done only if needed.
    """
    import pyarrow as pa

    from gafnet.gait import fastcsv

    fmt = dataset if isinstance(dataset, PoseFormat) else get_format(dataset)
    path = Path(path)
    try:
        engine = fastcsv.choose_engine(engine)
    except (ValueError, RuntimeError) as exc:
        raise InputError(str(exc)) from None
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; expected a header row, then rows of "
                         f"image_name + {NUM_VALUES} values (e.g. {fmt.example})")
    source = pa.memory_map(str(path), "r")
    try:
        buffer = source.read_buffer()
        raw = np.frombuffer(buffer, dtype=np.uint8)
        header_end = _header_end(raw)
        report = PoseReport(path=str(path), dataset=fmt.name)
        if engine == "arrow" and fastcsv.build_error():
            report.notes.append(f"read with Arrow's CSV reader (slower): the C parser could not be built: "
                                f"{fastcsv.build_error()}")
        header = raw[:header_end].tobytes().decode("utf-8", "replace").split(",", 1)[0].strip()
        if re.match(fmt.pattern, header):
            report.notes.append(f"line 1 ({header!r}) looks like a data row; line 1 is always read as the header, "
                                "as the original does")
        if not _has_content(raw[header_end:]):
            rows = None
        elif engine == "c":
            rows = _rows_c(raw, header_end, fmt)
        else:
            rows = _rows_arrow(raw, header_end, buffer, fmt, str(path))
        return _build(rows, fmt, report, max_listed)
    finally:
        source.close()


def _header_end(raw: np.ndarray) -> int:
    """Offset of the first byte after the header line (line ends: \\n, \\r\\n or a lone \\r)."""
    for window in (raw[: 1 << 20], raw):
        ends = np.flatnonzero((window == 10) | (window == 13))
        if len(ends):
            end = int(ends[0])
            return end + 2 if raw[end] == 13 and end + 1 < len(raw) and raw[end + 1] == 10 else end + 1
    return len(raw)


def _has_content(raw: np.ndarray) -> bool:
    """True if anything but line ends follows (looked at in growing pieces: usually only the first)."""
    start, step = 0, 1 << 12
    while start < len(raw):
        piece = raw[start:start + step]
        if np.any((piece != 10) & (piece != 13)):
            return True
        start, step = start + step, step * 4
    return False


_VALUE_NAMES = [f"v{j}" for j in range(NUM_VALUES)]
_COLUMN_NAMES = ["image_name"] + _VALUE_NAMES


def _read_table(body, where: str):
    """Arrow parse of the data lines → (table with float32 value columns, ragged row texts, non-numeric mask).

    A cell that is not a number makes Arrow's typed read fail and name the column; that column is then read
    as bytes and converted here, cell by cell (a few retries, then every column as bytes). Only empty cells
    are nulls for Arrow's typed read; other null-like tokens go through the same rules as in the C parser.
    """
    import pyarrow as pa
    from pyarrow import csv

    ragged: list[str] = []

    def skip_invalid(row) -> str:  # rows with the wrong number of columns: remember their text
        ragged.append(row.text)
        return "skip"

    parse = csv.ParseOptions(quote_char=False, invalid_row_handler=skip_invalid)
    text_columns: set[str] = set()
    block_size = 1 << 20
    for attempt in range(8):
        ragged.clear()
        # names as bytes: a name that is not UTF-8 becomes a bad row (see _utf8_names), not a failed read
        types = {n: pa.binary() if (n == "image_name" or n in text_columns) else pa.float32() for n in _COLUMN_NAMES}
        convert = csv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=False)
        read = csv.ReadOptions(column_names=_COLUMN_NAMES, block_size=block_size)
        try:
            table = csv.read_csv(pa.BufferReader(body), read_options=read, parse_options=parse, convert_options=convert)
            break
        except pa.ArrowInvalid as exc:
            message = str(exc)
            column = re.search(r"column #(\d+)", message)
            if "straddling" in message and block_size < body.size:  # a line longer than a block
                block_size = min(body.size + 1, block_size * 64)
            elif "conversion error" not in message.lower() or column is None:
                raise InputError(f"{where}: cannot be read as CSV ({message})") from None
            elif attempt < 3:
                text_columns.add(_COLUMN_NAMES[int(column.group(1))])
            else:
                text_columns.update(_VALUE_NAMES)
    else:  # pragma: no cover - every value column as bytes cannot fail to convert
        raise InputError(f"{where}: cannot be read as CSV")
    non_numeric = None
    for name in sorted(text_columns):
        floats, bad = _text_to_float(table.column(name))
        table = table.set_column(_COLUMN_NAMES.index(name), name, floats)
        non_numeric = bad if non_numeric is None else non_numeric | bad
    return table, list(ragged), non_numeric


# In a text column, a cell is a number, a null-like token (read as NaN, as Arrow's typed reader does),
# or non-numeric. Infinity parses as a number and is then rejected together with the NaNs. The C parser
# (_posecsv.c) implements the same rules.
_FLOAT_RE = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf|infinity))$"
_NULL_RE = r"^(?i:|[+-]?nan|na|n/a|null|none|#n/a|-1\.#ind|1\.#qnan)$"
# what Python's float() strips around a number (str.isspace), as the original's conversion does
_SPACES = "\t\x0b\x0c\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + \
    "\u2028\u2029\u202f\u205f\u3000"


def _text_to_float(column):
    """A bytes column → (float32 column, per-row non-numeric mask); cells that are not UTF-8 are non-numeric."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _utf8_names(column.combine_chunks(), invalid="\x00")
    column = pc.utf8_trim(column, _SPACES)
    numeric = pc.match_substring_regex(column, _FLOAT_RE)
    null_like = pc.match_substring_regex(column, _NULL_RE)
    bad = pc.invert(pc.or_(numeric, null_like)).to_numpy(zero_copy_only=False)
    floats = pc.cast(pc.if_else(numeric, column, pa.scalar(None, pa.string())), pa.float32())
    return floats, bad


def _values(table) -> tuple[np.ndarray, np.ndarray]:
    """(N, 51) float32 values, row-major, and a per-row 'all finite' mask.

    Built batch by batch (Arrow's column chunks → rows of a preallocated array), one copy of the values.
    """
    n = table.num_rows
    values = np.empty((n, NUM_VALUES), dtype=np.float32)
    finite = np.empty(n, dtype=bool)
    row = 0
    for batch in table.select(_VALUE_NAMES).to_batches():
        rows = batch.num_rows
        block = values[row:row + rows]
        for j in range(NUM_VALUES):  # nulls (empty cells, "nan") come out as NaN
            block[:, j] = batch.column(j).to_numpy(zero_copy_only=False)
        # a sum in float64 is finite iff every float32 term is
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: not finite either way
            finite[row:row + rows] = np.isfinite(block.sum(axis=1, dtype=np.float64))
        row += rows
    return values, finite


@dataclass
class _Located:
    """File line numbers of the rows (only computed when a file has bad rows)."""

    row_lines: np.ndarray | None  # (n,) line of each parsed row; None if unknown (row index + 2 is used)
    ragged_lines: np.ndarray  # lines with the wrong number of columns (junk ones excluded)
    ragged_columns: np.ndarray
    empty_lines: int
    notes: list


@dataclass
class _Rows:
    """The rows with the right number of columns, in file order, and what is known about the others."""

    values: np.ndarray  # (n, 51) float32, NaN where a cell was missing or null-like
    reason: np.ndarray  # (n,) int8: 0, NON_NUMERIC or NOT_FINITE
    junk: np.ndarray  # (n,) bool, the name starts with 00-1 (or MARS person -1)
    matched: np.ndarray  # (n,) bool, the whole name matches the dataset's regex
    group: np.ndarray  # (n,) int64 target group of each row
    target_of_group: np.ndarray  # (G, k) int64
    ragged: int  # rows with the wrong number of columns, junk ones included
    ragged_junk: int  # of those, rows whose name starts with the junk prefix
    locate: Callable[[], _Located]
    empty_lines: int | None = None  # known without locating (C parser)
    value_rows: np.ndarray | None = None  # (n,) row i's values are values[value_rows[i]]; None: values[i]


def _rows_arrow(raw, header_end, buffer, fmt: PoseFormat, where: str) -> _Rows:
    table, ragged, non_numeric = _read_table(buffer.slice(header_end), where)
    with ThreadPoolExecutor(1) as pool:  # names (Arrow kernels, no GIL) alongside the value copy
        names = pool.submit(lambda: _name_codes(_utf8_names(table.column(0).combine_chunks()), fmt))
        values, finite = _values(table)
        codes = names.result()
    group, target_of_group = _merge_groups([codes])
    reason = np.where(finite, 0, NOT_FINITE).astype(np.int8)
    if non_numeric is not None:
        reason[non_numeric] = NON_NUMERIC

    def locate() -> _Located:
        lines = _line_table(raw, header_end, ragged)
        parsed_lines = lines.number[~lines.empty & (lines.columns == NUM_COLUMNS)]
        mask = ~lines.empty & (lines.columns != NUM_COLUMNS) & ~lines.junk
        notes = []
        row_lines = parsed_lines if len(parsed_lines) == len(values) else None
        if row_lines is None:  # the line scan and Arrow disagree (e.g. lone CR line ends)
            notes.append("line numbers are approximate (unusual line endings): data row index + 2")
        ragged_junk = sum(text.startswith(JUNK_PREFIX) for text in ragged)
        if int(np.count_nonzero(mask)) + ragged_junk != len(ragged):
            notes.append(f"{len(ragged)} rows had the wrong number of columns; "
                         f"{int(np.count_nonzero(mask)) + ragged_junk} of them were located in the file")
        return _Located(row_lines, lines.number[mask], lines.columns[mask], int(np.count_nonzero(lines.empty)), notes)

    return _Rows(values, reason, codes.junk, codes.matched, group, target_of_group, len(ragged),
                 sum(text.startswith(JUNK_PREFIX) for text in ragged), locate)


def _utf8_names(names, invalid: str = ""):
    """A binary array → a string array; entries that are not UTF-8 become ``invalid`` (for names: empty,
    which is then an unparsable name)."""
    import pyarrow as pa

    try:
        return names.cast(pa.string())
    except pa.ArrowInvalid:
        def text(value: bytes) -> bytes:
            try:
                value.decode("utf-8")
                return value
            except UnicodeDecodeError:
                return invalid.encode()

        return pa.array([text(v) for v in names.to_pylist()], pa.binary()).cast(pa.string())


_MIN_PIECE = 4 << 20  # bytes: smaller files are parsed in one piece


def _pieces(raw: np.ndarray, start: int, stop: int, count: int, min_size: int = 4 << 20) -> list[tuple[int, int]]:
    """Split ``raw[start:stop]`` into up to ``count`` pieces that end just after a newline."""
    count = max(1, min(count, (stop - start) // min_size))
    bounds = [start]
    for k in range(1, count):
        at = start + (stop - start) * k // count
        if at <= bounds[-1]:
            continue
        newline = np.flatnonzero(raw[at:min(stop, at + (1 << 20))] == 10)
        if len(newline) == 0:
            continue  # a line over 1 MiB long: leave this piece joined to the next
        bounds.append(at + int(newline[0]) + 1)
    bounds.append(stop)
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _rows_c(raw: np.ndarray, header_end: int, fmt: PoseFormat) -> _Rows:
    """Parse with the C parser: pieces of the file in threads, each with its names; then merge."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from gafnet.gait import fastcsv

    pieces = _pieces(raw, header_end, len(raw), _workers(), _MIN_PIECE)
    with ThreadPoolExecutor(len(pieces)) as pool:
        counts = list(pool.map(lambda ab: fastcsv.count_lines(raw, *ab), pieces))
        first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        total = int(first[-1])
        values = np.empty((total, NUM_VALUES), np.float32)
        status = np.empty(total, np.int8)
        columns = np.empty(total, np.int32)

        def parse(k: int):
            lo, hi = first[k], first[k + 1]
            cut = fastcsv.parse_lines(raw, *pieces[k], values[lo:hi], status[lo:hi], columns[lo:hi])
            names, prefixes = (pa.LargeStringArray.from_buffers(int(hi - lo), pa.py_buffer(offsets), pa.py_buffer(data))
                               for offsets, data in cut)
            is_row = (status[lo:hi] != fastcsv.ROW_EMPTY) & (status[lo:hi] != fastcsv.ROW_WRONG_COUNT)
            ragged = status[lo:hi] == fastcsv.ROW_WRONG_COUNT
            ragged_junk = pc.starts_with(names.filter(pa.array(ragged)), JUNK_PREFIX).to_numpy(zero_copy_only=False)
            if not is_row.all():
                names, prefixes = names.filter(pa.array(is_row)), prefixes.filter(pa.array(is_row))
            return is_row, ragged_junk, _name_codes(names, fmt, prefixes if fmt.simple_frame else None)

        parts = list(pool.map(parse, range(len(pieces))))
    is_row = np.concatenate([p[0] for p in parts])
    ragged_junk = np.concatenate([p[1] for p in parts])
    codes = [p[2] for p in parts]
    group, target_of_group = _merge_groups(codes)
    value_rows = None if is_row.all() else np.flatnonzero(is_row)  # values stay per line: one copy, later
    row_status = status if value_rows is None else status[value_rows]
    reason = np.zeros(len(row_status), np.int8)
    reason[row_status == fastcsv.ROW_NON_NUMERIC] = NON_NUMERIC
    reason[row_status == fastcsv.ROW_NOT_FINITE] = NOT_FINITE
    empty = status == fastcsv.ROW_EMPTY

    def locate() -> _Located:
        ragged = np.flatnonzero(status == fastcsv.ROW_WRONG_COUNT)
        keep = ~ragged_junk
        return _Located(np.flatnonzero(is_row) + 2, ragged[keep] + 2, columns[ragged[keep]].astype(np.int64),
                        int(np.count_nonzero(empty)), [])

    return _Rows(values, reason, np.concatenate([c.junk for c in codes]), np.concatenate([c.matched for c in codes]),
                 group, target_of_group, len(ragged_junk), int(np.count_nonzero(ragged_junk)), locate,
                 empty_lines=int(np.count_nonzero(empty)), value_rows=value_rows)


@dataclass
class _NameCodes:
    junk: np.ndarray  # (n,) bool
    matched: np.ndarray  # (n,) bool
    codes: np.ndarray  # (n,) int64 row of key_table
    key_table: np.ndarray  # (K, k) int64 target of each distinct name prefix


def _name_codes(names, fmt: PoseFormat, prefixes=None) -> _NameCodes:
    """Per row: junk flag, whole-name match flag, code of its name prefix; and the target of each prefix.

    ``prefixes``: the names without their frame part, if already known (the C parser cuts them for
    ``fmt.simple_frame`` formats); else the frame regex cuts them. Only rows whose whole name matches use
    their prefix, so how an unmatched name is cut does not matter.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    junk = pc.starts_with(names, JUNK_PREFIX).to_numpy(zero_copy_only=False)
    matched = pc.match_substring_regex(names, fmt.pattern).to_numpy(zero_copy_only=False)
    if prefixes is None:
        prefixes = pc.replace_substring_regex(names, f"{fmt.frame_pattern}$", "")
    encoded = pc.dictionary_encode(prefixes)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = encoded.dictionary
    extracted = pc.extract_regex(distinct, f"^{fmt.key_pattern}$")
    valid = extracted.is_valid()
    key_table = np.zeros((len(distinct), len(fmt.fields)), dtype=np.int64)
    for k, group in enumerate(fmt.fields):
        texts = pc.if_else(valid, extracted.field(group), pa.scalar(None, pa.string())).to_pylist()
        key_table[:, k] = [0 if t is None else fmt.field_value(group, t) for t in texts]
    matched &= valid.to_numpy(zero_copy_only=False)[codes]
    if "person" in fmt.fields:  # MARS person "00-1" is junk, whatever the name's directories
        junk |= matched & (key_table[codes, fmt.fields.index("person")] == -1)
    return _NameCodes(junk, matched, codes, key_table)


def _merge_groups(parts: Sequence[_NameCodes]) -> tuple[np.ndarray, np.ndarray]:
    """One group id per row over all parts: different prefixes (e.g. other directories, or the same prefix
    in two pieces of the file) that name the same target are one group. → (group (n,), target_of_group)."""
    k = parts[0].key_table.shape[1] if parts else 0
    tables = [p.key_table for p in parts]
    key_table = np.concatenate(tables) if tables else np.zeros((0, k), np.int64)
    shift = np.concatenate([[0], np.cumsum([len(t) for t in tables])]).astype(np.int64)
    codes = np.concatenate([p.codes + shift[i] for i, p in enumerate(parts)]) if parts else np.zeros(0, np.int64)
    if len(key_table) == 0:
        return codes, np.zeros((0, k), np.int64)
    target_of_group, canonical = np.unique(key_table, axis=0, return_inverse=True)
    return canonical.reshape(-1)[codes], target_of_group


def _build(rows: _Rows | None, fmt: PoseFormat, report: PoseReport, max_listed: int) -> PoseSet:
    k = len(fmt.fields)
    if rows is None or len(rows.values) == 0 and rows.ragged == 0:
        values = np.zeros((0, NUM_VALUES), np.float32)
        junk = matched = np.zeros(0, bool)
        value_reason = np.zeros(0, np.int8)
        group = np.zeros(0, np.int64)
        target_of_group = np.zeros((0, k), np.int64)
        ragged = ragged_junk = 0
        value_rows = None
        if rows is not None and rows.empty_lines is not None:
            report.empty_lines = rows.empty_lines
    else:
        values, value_reason, junk, matched = rows.values, rows.reason, rows.junk, rows.matched
        group, target_of_group, ragged, ragged_junk = rows.group, rows.target_of_group, rows.ragged, rows.ragged_junk
        value_rows = rows.value_rows
        if rows.empty_lines is not None:
            report.empty_lines = rows.empty_lines
    n = len(values) if value_rows is None else len(value_rows)
    # the original's order of checks: junk prefix, column count, values, then (here) the name
    reason = np.where(value_reason != 0, value_reason, np.where(matched, 0, BAD_NAME)).astype(np.int8)
    reason[junk] = 0
    good = (reason == 0) & ~junk

    bad_lines = np.zeros(0, np.int64)
    bad_codes = np.zeros(0, np.int8)
    bad_columns = np.zeros(0, np.int64)
    if ragged or np.any(reason):
        located = rows.locate()
        report.empty_lines = located.empty_lines
        report.notes.extend(located.notes)
        row_bad = np.flatnonzero(reason)
        row_lines = located.row_lines[row_bad] if located.row_lines is not None else row_bad + 2
        bad_lines = np.concatenate([located.ragged_lines, row_lines])
        bad_codes = np.concatenate([np.full(len(located.ragged_lines), WRONG_COUNT, np.int8), reason[row_bad]])
        bad_columns = np.concatenate([located.ragged_columns, np.full(len(row_lines), NUM_COLUMNS)])
        order = np.argsort(bad_lines, kind="stable")
        bad_lines, bad_codes, bad_columns = bad_lines[order], bad_codes[order], bad_columns[order]

    report.rows_read = int(n + ragged)
    report.junk_rows = int(np.count_nonzero(junk) + ragged_junk)
    report.bad_rows = int(len(bad_lines))
    report.bad_by_reason = {BAD_ROW_REASONS[c]: int(np.count_nonzero(bad_codes == c))
                            for c in sorted(BAD_ROW_REASONS) if np.any(bad_codes == c)}
    report.bad_lines = [
        (int(ln), f"{int(cols)} columns, expected {NUM_COLUMNS}" if c == WRONG_COUNT else BAD_ROW_REASONS[int(c)])
        for ln, c, cols in zip(bad_lines[:max_listed], bad_codes[:max_listed], bad_columns[:max_listed])
    ]
    report.rows_used = int(np.count_nonzero(good))

    good_rows = np.flatnonzero(good)
    good_groups = group[good_rows]
    order, offsets, first = group_rows(good_groups)
    take = good_rows if value_rows is None else value_rows[good_rows]
    if order is not None:  # some target's rows are not contiguous in the file
        values = values[take[order]]
    elif len(take) < len(values):  # bad rows or lines to leave out
        values = values[take]
    poses = values.reshape(len(values), NUM_JOINTS, NUM_CHANNELS)
    targets = target_of_group[good_groups[first]] if len(first) else np.zeros((0, k), np.int64)
    report.sequences, report.frames = len(offsets) - 1, int(offsets[-1])
    return PoseSet(dataset=fmt.name, target_fields=fmt.fields, poses=poses, offsets=offsets, targets=targets,
                   source_lengths=np.diff(offsets), report=report)


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


@dataclass
class _Lines:
    number: np.ndarray  # 1-based file line numbers of the data lines (the header is line 1)
    empty: np.ndarray
    columns: np.ndarray
    junk: np.ndarray


def _line_table(raw: np.ndarray, header_end: int, ragged_texts: Sequence[str] = (),
                chunk: int = 64 << 20, max_texts: int = 256) -> _Lines:
    """Per data line: its file line number, whether it is empty, its column count and junk prefix.

    Only built when a file has bad rows, to turn Arrow's row order into file line numbers. Newlines are
    found with numpy, piece by piece. The lines Arrow skipped for their column count are found by their
    text (Arrow's invalid-row handler gives it): same length first, then the same bytes. Every other
    non-empty line is reported as having the expected 52 columns. With more than ``max_texts`` distinct
    ragged texts, every line's commas are counted instead.
    """
    body = raw[header_end:]
    size = len(body)
    newlines = []
    for a in range(0, size, chunk):  # line ends: \n, and a \r not followed by \n
        piece = body[a:a + chunk]
        cr = np.flatnonzero(piece == 13) + a
        after = np.minimum(cr + 1, size - 1)
        lone_cr = cr[(cr + 1 >= size) | (body[after] != 10)]
        newlines.append(np.sort(np.concatenate([np.flatnonzero(piece == 10) + a, lone_cr])))
    newlines = np.concatenate(newlines) if newlines else np.zeros(0, np.int64)
    starts = np.concatenate([[0], newlines + 1]).astype(np.int64)
    ends = np.concatenate([newlines, [size]]).astype(np.int64)
    if len(starts) and starts[-1] >= size:  # the file ends with a newline: no last line
        starts, ends = starts[:-1], ends[:-1]
    ends = ends - ((ends > starts) & (body[np.maximum(ends - 1, 0)] == 13))  # strip the CR of CRLF
    lengths = ends - starts
    distinct = set(ragged_texts)
    if len(distinct) > max_texts:  # many ragged rows: count every line's commas instead
        columns = np.where(lengths == 0, 0, _comma_counts(body, starts, ends, chunk) + 1)
        return _Lines(number=np.arange(len(starts), dtype=np.int64) + 2, empty=lengths == 0,
                      columns=columns, junk=_starts_with_junk(body, starts, ends))
    columns = np.where(lengths == 0, 0, NUM_COLUMNS)
    junk = np.zeros(len(starts), dtype=bool)
    for text in distinct:
        data = text.rstrip("\r").encode("utf-8")
        candidates = np.flatnonzero(lengths == len(data))
        if len(data) == 0 or len(candidates) == 0:
            continue
        probe = np.frombuffer(data, np.uint8)
        for offset in (0, len(data) // 2, len(data) - 1):  # cheap filters before the full comparison
            candidates = candidates[body[starts[candidates] + offset] == probe[offset]]
        for line in candidates.tolist():
            if body[starts[line]:ends[line]].tobytes() == data:
                columns[line] = data.count(b",") + 1
                junk[line] = data.startswith(JUNK_PREFIX.encode())
    return _Lines(number=np.arange(len(starts), dtype=np.int64) + 2, empty=lengths == 0, columns=columns, junk=junk)


def _comma_counts(body: np.ndarray, starts: np.ndarray, ends: np.ndarray, chunk: int) -> np.ndarray:
    """Commas in every line [start, end): commas before end − commas before start, piece by piece."""
    points = np.empty(2 * len(starts), np.int64)
    points[0::2], points[1::2] = starts, ends
    before = np.empty(len(points), np.int64)
    seen = done = 0
    for a in range(0, len(body), chunk):
        commas = np.flatnonzero(body[a:a + chunk] == 44) + a
        upto = int(np.searchsorted(points, a + chunk, side="left"))
        before[done:upto] = seen + np.searchsorted(commas, points[done:upto], side="left")
        seen, done = seen + len(commas), upto
    before[done:] = seen
    return before[1::2] - before[0::2]


def _starts_with_junk(body: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    junk = np.ones(len(starts), dtype=bool)
    for i, byte in enumerate(JUNK_PREFIX.encode()):
        at = np.minimum(starts + i, max(len(body) - 1, 0))
        junk &= (starts + i < ends) & (body[at] == byte)
    return junk


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
# Cache
# --------------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """``poses/`` in the project cache (``$GAFNET_CACHE_DIR``, else ``~/.cache/gafnet``), as the embedding cache."""
    from gafnet.embeddings import default_cache_dir as project_cache

    return project_cache() / "poses"


def cache_path(path: str | os.PathLike, dataset: str, cache_dir: str | os.PathLike) -> Path:
    """The cache file for ``path``: keyed by its absolute path, size, mtime and a hash of its first/last MiB.

    A changed file gets a new key, so a stale cache is never read (old entries are simply not used).
    """
    path = Path(path)
    stat = path.stat()
    digest = hashlib.sha256()
    digest.update(f"{_CACHE_FORMAT}|{dataset}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
        if stat.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            digest.update(fh.read(1 << 20))
    return Path(cache_dir) / f"{path.stem}.{dataset}.{digest.hexdigest()[:20]}.npz"


def _write_cache(cache_file: Path, parsed: PoseSet) -> None:
    import json

    report = {k: v for k, v in parsed.report.__dict__.items() if k != "from_cache"}
    with atomic_path(cache_file) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, poses=parsed.poses, offsets=parsed.offsets, targets=parsed.targets,
                     meta=np.array(json.dumps({"format": _CACHE_FORMAT, "dataset": parsed.dataset,
                                               "fields": list(parsed.target_fields), "report": report})))


def _read_cache(cache_file: Path) -> PoseSet | None:
    import json

    try:
        with np.load(cache_file, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != _CACHE_FORMAT:
                return None
            report = PoseReport(**meta["report"])
            report.bad_lines = [tuple(x) for x in report.bad_lines]
            offsets = data["offsets"]
            return PoseSet(meta["dataset"], tuple(meta["fields"]), data["poses"], offsets, data["targets"],
                           np.diff(offsets), report)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable cache: parse the CSV again


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
