"""The embedding CSVs of the released data: one reader (by header), one writer, a parse cache.

Format (README, "Data layout"). A header row, then one row per tracklet. The last two columns are ``person_id`` and
``camera_id`` (integers); a leading ``index`` column (or pandas' unnamed index, an empty header cell)
is dropped; every other column is a feature. This covers all known variants:

    index, feat_0 … feat_{D-1}, person_id, camera_id      appearance, as documented
    feat_0 … feat_127, person_id, camera_id               gait, as documented
    0, 1, …, 127, 0, 1                                    gait, pandas' default integer header

Files are parsed with Arrow's multi-threaded C++ CSV reader. A parsed file is cached as a ``.npy``
bundle keyed by the CSV's resolved path, size and modification time, written atomically, in a cache
directory that is never inside the data tree unless asked (``GAFNET_CACHE_DIR`` or ``--cache_dir``).
Bad input raises :class:`~gafnet.errors.InputError` naming the file, the line and column, and what to do.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import InputError

INDEX_COLUMN_NAMES = ("", "index", "unnamed: 0")
CACHE_VERSION = 1


@dataclass
class EmbeddingTable:
    """Features (N, D) float64 with their person and camera ids, as read from one CSV."""

    features: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    path: Path
    dropped_index_column: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return int(self.features.shape[0])


def default_cache_dir() -> Path:
    env = os.environ.get("GAFNET_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gafnet"


# --------------------------------------------------------------------------------------------- reading
def _read_header(path: Path) -> list[str]:
    with open(path, "r", encoding="utf-8", newline="") as fh:
        first = fh.readline()
    if not first.strip():
        raise InputError(f"{path}: line 1: the header row is empty; the file must start with a header "
                         "(feat_0 … feat_N, person_id, camera_id)")
    return [h.strip() for h in next(csv.reader([first]))]


def _diagnose(path: Path, num_columns: int, header: list[str]) -> InputError:
    """Slow scan that finds the first malformed line (called only when the fast parser refused the file)."""
    with open(path, "r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != num_columns:
                return InputError(f"{path}: line {line}: expected {num_columns} values (as in the header), "
                                  f"found {len(row)}; fix or re-export the file")
            for col, cell in enumerate(row):
                try:
                    float(cell)
                except ValueError:
                    what = "empty cell" if not cell.strip() else f"{cell!r} is not a number"
                    return InputError(f"{path}: line {line}, column {col + 1} ({header[col]!r}): {what}; "
                                      "fix or re-export the file")
    return InputError(f"{path}: could not be parsed as CSV; fix or re-export the file")


def _parse(path: Path) -> EmbeddingTable:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; re-download or re-export it")
    header = _read_header(path)
    num_columns = len(header)
    drop_index = header[0].lower() in INDEX_COLUMN_NAMES
    if num_columns < 3 + int(drop_index):
        raise InputError(f"{path}: line 1: the header has {num_columns} columns; expected features followed by "
                         "person_id and camera_id")
    # NumPy's C parser: faster than Arrow on these wide, short files (9,216 columns × 150 rows).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" is reported below
            data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2, comments=None,
                              encoding="utf-8")
    except ValueError:
        raise _diagnose(path, num_columns, header) from None
    if data.size == 0:
        raise InputError(f"{path}: the file has a header but no data rows; re-download or re-export it")
    if data.shape[1] != num_columns:
        raise InputError(f"{path}: line 2: expected {num_columns} values (as in the header), found {data.shape[1]}; "
                         "fix or re-export the file")
    first_feature = 1 if drop_index else 0
    features = np.ascontiguousarray(data[:, first_feature:-2])
    ids = data[:, -2:]
    bad = ~np.isfinite(data)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise InputError(f"{path}: line {row + 2}, column {col + 1} ({header[col]!r}): {data[row, col]} "
                         "(NaN or inf) is not a valid value; fix or re-export the file")
    not_int = ids != np.round(ids)
    if not_int.any():
        row, col = (int(v[0]) for v in np.nonzero(not_int))
        name = ("person_id", "camera_id")[col]
        raise InputError(f"{path}: line {row + 2}, column {num_columns - 1 + col} ({header[num_columns - 2 + col]!r}, "
                         f"read as {name}): {ids[row, col]} is not an integer id; the last two columns must be "
                         "person_id and camera_id")
    zero = ~features.any(axis=1)
    if zero.any():
        row = int(np.nonzero(zero)[0][0])
        raise InputError(f"{path}: line {row + 2}: all {features.shape[1]} feature values are zero; a zero vector "
                         f"cannot be L2-normalised ({int(zero.sum())} such row(s)); remove or recompute them")
    return EmbeddingTable(features=features, pids=ids[:, 0].astype(np.int64), camids=ids[:, 1].astype(np.int64),
                          path=path, dropped_index_column=drop_index)


# --------------------------------------------------------------------------------------------- cache
class ParseCache:
    """Parsed CSVs as ``.npy`` files (features with the two id columns appended).

    The entry's name carries the CSV's resolved-path hash, size and mtime, so a changed CSV simply
    misses; older entries of the same CSV are removed when a new one is stored. One file per entry,
    written atomically, loaded without a checksum pass.
    """

    def __init__(self, directory: str | Path | None = None, enabled: bool = True):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.enabled = enabled

    def _prefix(self, path: Path) -> str:
        key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:20]
        return f"{path.stem}-{key}-v{CACHE_VERSION}"

    def _entry(self, path: Path) -> Path:
        st = path.stat()
        return self.directory / "embeddings" / f"{self._prefix(path)}-{st.st_size}-{st.st_mtime_ns}.npy"

    def load(self, path: Path) -> EmbeddingTable | None:
        if not self.enabled:
            return None
        try:
            data = np.load(self._entry(path), allow_pickle=False)
        except (OSError, ValueError):
            return None
        # layout: [features..., person_id, camera_id, dropped_index_column]
        return EmbeddingTable(features=data[:, :-3], pids=data[:, -3].astype(np.int64),
                              camids=data[:, -2].astype(np.int64), path=path,
                              dropped_index_column=bool(data[0, -1]))

    def store(self, table: EmbeddingTable) -> None:
        if not self.enabled:
            return
        entry = self._entry(table.path)
        n = len(table)
        data = np.concatenate([table.features, table.pids[:, None], table.camids[:, None],
                               np.full((n, 1), float(table.dropped_index_column))], axis=1)
        try:
            with atomic_path(entry, suffix=".npy", fsync=False) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, data)
            for old in entry.parent.glob(self._prefix(table.path) + "-*.npy"):
                if old != entry:
                    old.unlink(missing_ok=True)
        except OSError:
            pass  # a cache that cannot be written is not an error: the next run parses again


def read_embedding_csv(path: str | Path, cache: ParseCache | None = None) -> EmbeddingTable:
    """Read one embedding CSV (see module docstring), through ``cache`` when given."""
    path = Path(path)
    if cache is not None and path.is_file():
        hit = cache.load(path)
        if hit is not None:
            return hit
    table = _parse(path)
    if cache is not None:
        cache.store(table)
    return table


# --------------------------------------------------------------------------------------------- writing
def write_embedding_csv(path: str | Path, features: np.ndarray, pids, camids, index_column: bool = False,
                        header: str = "feat") -> None:
    """Write features and ids in the released format, atomically.

    ``index_column`` adds the leading ``index`` column of the appearance files; ``header="pandas"`` writes
    pandas' default integer header (``0 … D-1, 0, 1``) of the original GaitGraph extractor.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    features = np.asarray(features)
    n, dim = features.shape
    if header == "pandas":
        names = [str(i) for i in range(dim)] + ["0", "1"]
    else:
        names = [f"feat_{i}" for i in range(dim)] + ["person_id", "camera_id"]
    columns = [pa.array(features[:, i]) for i in range(dim)]
    columns += [pa.array(np.asarray(pids, dtype=np.int64)), pa.array(np.asarray(camids, dtype=np.int64))]
    if index_column:
        names = ["index"] + names
        columns = [pa.array(np.arange(n, dtype=np.int64))] + columns
    # Arrow needs unique field names: write with placeholders, then our own header line.
    table = pa.Table.from_arrays(columns, names=[f"c{i}" for i in range(len(names))])
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, write_options=pacsv.WriteOptions(include_header=False))
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "wb") as fh:
            fh.write((",".join(names) + "\n").encode())
            fh.write(buf.getvalue())


# --------------------------------------------------------------------------------------------- alignment
def _keys(table: EmbeddingTable) -> np.ndarray:
    keys = table.pids * 1_000_003 + table.camids
    uniq, counts = np.unique(keys, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        raise InputError(f"{table.path}: (person_id, camera_id) = ({dup // 1_000_003}, {dup % 1_000_003}) appears "
                         f"{counts.max()} times; each tracklet must appear once")
    return keys


def align_rows(reference: EmbeddingTable, other: EmbeddingTable) -> tuple[EmbeddingTable, bool]:
    """Reorder ``other``'s rows to match ``reference`` on (person_id, camera_id), never on row order.

    Returns (aligned table, whether it had to be reordered). Fails naming the ids that are not in both.
    """
    ref_keys, other_keys = _keys(reference), _keys(other)
    if np.array_equal(ref_keys, other_keys):
        return other, False
    missing = np.setdiff1d(ref_keys, other_keys)
    extra = np.setdiff1d(other_keys, ref_keys)
    if missing.size or extra.size:
        def fmt(keys):
            shown = ", ".join(f"({k // 1_000_003}, {k % 1_000_003})" for k in keys[:5])
            return shown + (f" and {keys.size - 5} more" if keys.size > 5 else "")
        parts = []
        if missing.size:
            parts.append(f"{missing.size} (person_id, camera_id) of {reference.path.name} are missing from "
                         f"{other.path}: {fmt(missing)}")
        if extra.size:
            parts.append(f"{extra.size} of {other.path} are not in {reference.path}: {fmt(extra)}")
        raise InputError("; ".join(parts) + "; the appearance and gait files must describe the same tracklets")
    order = np.argsort(other_keys)
    position = order[np.searchsorted(other_keys[order], ref_keys)]
    aligned = EmbeddingTable(features=other.features[position], pids=other.pids[position],
                             camids=other.camids[position], path=other.path,
                             dropped_index_column=other.dropped_index_column,
                             notes=other.notes + [f"{other.path.name}: rows reordered to match {reference.path.name} "
                                                  "on (person_id, camera_id)"])
    return aligned, True
