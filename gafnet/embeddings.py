"""The embedding CSVs of the released data: one reader (by header), one writer, pairs with a manifest, a parse cache.

Format (README, "Data layout"). A header row, then one row per tracklet. The last two columns are ``person_id`` and
``camera_id`` (integers); a leading ``index`` column (or pandas' unnamed index, an empty header cell) is dropped;
every other column is a feature. This covers all known variants:

    index, feat_0 … feat_{D-1}, person_id, camera_id      appearance, as documented
    feat_0 … feat_127, person_id, camera_id               gait, as documented
    0, 1, …, 127, 0, 1                                    gait, pandas' default integer header
    feat_0 … feat_{D-1}, tracklet_id, person_id, camera_id  optional tracklet id (MARS layout), by its name

A UTF-8 byte-order mark before the header is ignored. Line ends may be ``\\n`` or ``\\r\\n``; blank lines are
skipped.

Parsing. The file is read once into memory (:class:`gafnet.cache.SourceFile`). The fast path hands Arrow's
CSV reader the values as ONE column (every comma turned into a line end): Arrow converts text to float64 with
correct rounding, the same doubles as ``np.loadtxt`` or ``float()``, and is far quicker on one long column
than on 9,218 short ones. Every line's number of cells is checked first, so a ragged row can never shift
values. Anything unusual (white space around numbers, quoted cells…) falls back to ``np.loadtxt``; a file
neither accepts is scanned line by line for the message. Ids are exact int64 (ids beyond 2^53, which a
double cannot hold, are read again from their text).

Bad input raises :class:`~gafnet.errors.InputError` naming the file, the line and column, and what to do.
Parsed files are cached by :class:`ParseCache` (the project cache, :mod:`gafnet.cache`).

Pairs. :func:`write_embedding_pair` writes a query and a gallery file of one split with a manifest
(``manifest_split<N>.json``): first marked incomplete, then the two CSVs (each atomically), then complete with
both files' SHA-256. :func:`check_pair` refuses a pair whose manifest is incomplete (the writer was
interrupted) or whose files are not the ones it lists (one of them was rewritten by another run). Files without
a manifest (the released data) are read as they are.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_json
from .cache import FileCache, SourceFile
from .errors import InputError

INDEX_COLUMN_NAMES = ("", "index", "unnamed: 0")
CACHE_VERSION = 3
EXACT_FLOAT_INT = 2**53  # integers up to this magnitude are exact in a double
MANIFEST_FORMAT = "gafnet-embedding-pair"


@dataclass
class EmbeddingTable:
    """Features (N, D) float64 with their person and camera ids, as read from one CSV."""

    features: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    path: Path
    dropped_index_column: bool = False
    notes: list[str] = field(default_factory=list)
    sha256: str | None = None  # of the bytes that were parsed (set when asked for, see read_embedding_csv)
    tracklets: np.ndarray | None = None  # (N,) int64 from an optional tracklet_id column (MARS layout)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return int(self.features.shape[0])


# --------------------------------------------------------------------------------------------- reading
def _lines(path: Path, raw: bytes) -> tuple[str, list[bytes], list[int]]:
    """(header text, non-blank data lines, their 1-based line numbers). Strips a UTF-8 BOM."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.splitlines()
    header = lines[0] if lines else b""
    try:
        header_text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: line 1: byte {header[exc.start]:#04x} at column {exc.start + 1} is not UTF-8 "
                         "text; the header must be plain text (feat_0 … feat_N, person_id, camera_id)") from None
    numbers, data = [], []
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            numbers.append(number)
            data.append(line)
    return header_text, data, numbers


def _header_names(path: Path, header_text: str) -> list[str]:
    if not header_text.strip():
        raise InputError(f"{path}: line 1: the header row is empty; the file must start with a header "
                         "(feat_0 … feat_N, person_id, camera_id)")
    return [h.strip().strip('"').strip() for h in header_text.split(",")]


def _cell_error(path: Path, line: int, col: int, header: list[str], cell: bytes) -> InputError:
    name = header[col] if col < len(header) else f"column {col + 1}"
    try:
        text = cell.decode("utf-8")
    except UnicodeDecodeError:
        return InputError(f"{path}: line {line}, column {col + 1} ({name!r}): bytes that are not UTF-8 text; "
                          "fix or re-export the file")
    what = "empty cell" if not text.strip() else f"{text[:40]!r}{'…' if len(text) > 40 else ''} is not a number"
    return InputError(f"{path}: line {line}, column {col + 1} ({name!r}): {what}; fix or re-export the file")


def _diagnose(path: Path, data: list[bytes], numbers: list[int], header: list[str]) -> InputError:
    """Slow scan that finds the first malformed cell (called only when both parsers refused the file)."""
    for line, text in zip(numbers, data):
        cells = text.split(b",")
        for col, cell in enumerate(cells):
            try:
                float(cell.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return _cell_error(path, line, col, header, cell)
    return InputError(f"{path}: could not be parsed as CSV; fix or re-export the file")


def _parse_values(path: Path, data: list[bytes], numbers: list[int], header: list[str]) -> np.ndarray:
    """(rows, columns) float64 of the data lines (already checked to have len(header) cells each)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    num_columns = len(header)
    column = b"\n".join(data).replace(b",", b"\n") + b"\n"
    try:  # fast path: one column of numbers
        table = pacsv.read_csv(pa.py_buffer(column),
                               read_options=pacsv.ReadOptions(column_names=["v"], block_size=1 << 24),
                               parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
                               convert_options=pacsv.ConvertOptions(column_types={"v": pa.float64()},
                                                                    null_values=[], strings_can_be_null=False))
        values = table.column(0).to_numpy()
        if values.shape[0] == len(data) * num_columns:
            return values.reshape(len(data), num_columns)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # what np.loadtxt accepts (white space around numbers, …)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = b"\n".join(data).decode("utf-8")
            values = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2, comments=None)
        if values.shape == (len(data), num_columns):
            return values
    except (ValueError, UnicodeDecodeError):
        pass
    raise _diagnose(path, data, numbers, header)


def _exact_ids(path: Path, data: list[bytes], numbers: list[int], header: list[str]) -> np.ndarray:
    """(rows, 2) int64 ids read from the text of the last two cells (for ids a double cannot hold)."""
    ids = np.empty((len(data), 2), dtype=np.int64)
    for row, (line, text) in enumerate(zip(numbers, data)):
        cells = text.rsplit(b",", 2)[-2:]
        for k, cell in enumerate(cells):
            col = len(header) - 2 + k
            try:
                value = int(float(cell)) if b"." in cell or b"e" in cell.lower() else int(cell)
            except ValueError:
                raise _cell_error(path, line, col, header, cell) from None
            if not -2**63 <= value < 2**63:
                raise InputError(f"{path}: line {line}, column {col + 1} ({header[col]!r}): id {value} does not fit "
                                 "a 64-bit integer; ids must lie between -2^63 and 2^63 - 1")
            ids[row, k] = value
    return ids


def parse_embedding_bytes(path: Path, raw: bytes) -> EmbeddingTable:
    """Parse the bytes of one embedding CSV (see the module docstring); ``path`` is for messages."""
    if not raw:
        raise InputError(f"{path}: the file is empty; re-download or re-export it")
    header_text, data, numbers = _lines(path, raw)
    header = _header_names(path, header_text)
    num_columns = len(header)
    drop_index = header[0].lower() in INDEX_COLUMN_NAMES
    if num_columns < 3 + int(drop_index):
        raise InputError(f"{path}: line 1: the header has {num_columns} columns; expected features followed by "
                         "person_id and camera_id")
    if not data:
        raise InputError(f"{path}: the file has a header but no data rows; re-download or re-export it")
    for line, text in zip(numbers, data):
        count = text.count(b",") + 1
        if count != num_columns:
            raise InputError(f"{path}: line {line}: expected {num_columns} values (as in the header), found {count}; "
                             "fix or re-export the file")
    values = _parse_values(path, data, numbers, header)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise InputError(f"{path}: line {numbers[row]}, column {col + 1} ({header[col]!r}): {values[row, col]} "
                         "(NaN or inf) is not a valid value; fix or re-export the file")
    id_values = values[:, -2:]
    not_int = id_values != np.round(id_values)
    if not_int.any():
        row, col = (int(v[0]) for v in np.nonzero(not_int))
        name = ("person_id", "camera_id")[col]
        raise InputError(f"{path}: line {numbers[row]}, column {num_columns - 1 + col} "
                         f"({header[num_columns - 2 + col]!r}, read as {name}): {id_values[row, col]} is not an "
                         "integer id; the last two columns must be person_id and camera_id")
    if (np.abs(id_values) >= EXACT_FLOAT_INT).any():
        ids = _exact_ids(path, data, numbers, header)
    else:
        ids = id_values.astype(np.int64)
    has_tracklet = num_columns >= 4 + int(drop_index) and header[-3].lower() == "tracklet_id"
    tracklets = None
    if has_tracklet:
        column = values[:, -3]
        if (column != np.round(column)).any() or (np.abs(column) >= EXACT_FLOAT_INT).any():
            row = int(np.nonzero((column != np.round(column)) | (np.abs(column) >= EXACT_FLOAT_INT))[0][0])
            raise InputError(f"{path}: line {numbers[row]}, column {num_columns - 2} ('tracklet_id'): {column[row]} "
                             "is not an integer tracklet id")
        tracklets = column.astype(np.int64)
    features = values[:, (1 if drop_index else 0):(-3 if has_tracklet else -2)]  # a view: no copy of the features
    zero = ~features.any(axis=1)
    if zero.any():
        row = int(np.nonzero(zero)[0][0])
        raise InputError(f"{path}: line {numbers[row]}: all {features.shape[1]} feature values are zero; a zero "
                         f"vector cannot be L2-normalised ({int(zero.sum())} such row(s)); remove or recompute them")
    return EmbeddingTable(features=features, pids=np.ascontiguousarray(ids[:, 0]),
                          camids=np.ascontiguousarray(ids[:, 1]), path=path, dropped_index_column=drop_index,
                          tracklets=tracklets)


# --------------------------------------------------------------------------------------------- cache
class ParseCache(FileCache):
    """Parsed embedding CSVs in ``<cache root>/embeddings/`` (see :mod:`gafnet.cache` for the keys).

    An entry is three ``.npy`` arrays one after the other in one file: the features, the ids (N, 2 or 3) and a
    JSON string. The features are memory-mapped on reading (no copy, unlike an ``.npz``).
    """

    def __init__(self, directory=None, enabled: bool = True):
        super().__init__("embeddings", directory, enabled=enabled, version=CACHE_VERSION, suffix=".npy")

    @staticmethod
    def read_entry(path: Path, source: Path) -> EmbeddingTable:
        """The table of an entry; its features are memory-mapped (read-only, straight from the page cache).

        Entries are only ever replaced by a rename, never rewritten in place, so the mapped file cannot
        shrink under the reader.
        """
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unexpected .npy version {version}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
            if fortran or dtype.hasobject or len(shape) != 2:
                raise ValueError("unexpected cache entry layout")
            features = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
            fh.seek(offset + features.nbytes)
            ids = np.load(fh, allow_pickle=False)
            meta = json.loads(str(np.load(fh, allow_pickle=False)))
        return EmbeddingTable(features=features, pids=ids[:, 0].copy(), camids=ids[:, 1].copy(), path=source,
                              dropped_index_column=bool(meta["dropped_index_column"]), sha256=meta.get("sha256"),
                              tracklets=ids[:, 2].copy() if ids.shape[1] == 3 else None)

    @staticmethod
    def write_entry(path: Path, table: EmbeddingTable) -> None:
        meta = json.dumps({"dropped_index_column": table.dropped_index_column, "sha256": table.sha256})
        columns = [table.pids, table.camids] + ([table.tracklets] if table.tracklets is not None else [])
        with open(path, "wb") as fh:
            np.save(fh, table.features)
            np.save(fh, np.stack(columns, axis=1))
            np.save(fh, np.array(meta))


def read_embedding_csv(path: str | Path, cache: ParseCache | None = None, digest: bool = False) -> EmbeddingTable:
    """Read one embedding CSV (see module docstring), through ``cache`` when given.

    ``digest``: also set ``table.sha256`` (the SHA-256 of the bytes parsed; stored with the cache entry).
    """
    path = Path(path)
    with SourceFile(path) as source:
        hit = cache.load(source, lambda entry: ParseCache.read_entry(entry, path)) if cache is not None else None
        if hit is not None:
            if digest and hit.sha256 is None:
                hit.sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
            return hit
        raw = source.read_bytes()
        table = parse_embedding_bytes(path, raw)
        if digest:
            table.sha256 = hashlib.sha256(raw).hexdigest()
        if cache is not None:
            cache.store(source, lambda tmp: ParseCache.write_entry(tmp, table))
    return table


# --------------------------------------------------------------------------------------------- writing
def write_embedding_csv(path: str | Path, features: np.ndarray, pids, camids, index_column: bool = False,
                        header: str = "feat", tracklets=None) -> None:
    """Write features and ids in the released format, atomically.

    ``index_column`` adds the leading ``index`` column of the appearance files; ``header="pandas"`` writes
    pandas' default integer header (``0 … D-1, 0, 1``) of the original GaitGraph extractor; ``tracklets``
    adds a ``tracklet_id`` column before the ids (MARS layout).
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
    if tracklets is not None:
        names = names[:dim] + ["tracklet_id"] + names[dim:]
        columns.append(pa.array(np.asarray(tracklets, dtype=np.int64)))
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


# --------------------------------------------------------------------------------------------- pairs
_SPLIT_NAME = re.compile(r"^(?:query|gallery)(?P<split>_split\d+)?\.csv$")


def pair_names(split: int | None) -> tuple[str, str, str]:
    """(query file, gallery file, manifest) names of one split (``split=None``: MARS' query.csv / gallery.csv)."""
    tag = "" if split is None else f"_split{int(split)}"
    return f"query{tag}.csv", f"gallery{tag}.csv", f"manifest{tag}.json" if tag else "manifest.json"


def write_embedding_pair(out_dir: str | Path, split: int | None, query, gallery, provenance: dict | None = None,
                         index_column: bool = False, header: str = "feat") -> tuple[Path, Path]:
    """Write a query/gallery pair with its manifest (see the module docstring); returns the two paths.

    ``query`` and ``gallery`` are ``(features, pids, camids)``. ``provenance`` (JSON-serialisable: model,
    checkpoint and its digest, command…) is stored in the manifest.
    """
    out_dir = Path(out_dir)
    q_name, g_name, m_name = pair_names(split)
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "run_id": uuid.uuid4().hex,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "complete": False,
                "provenance": provenance or {}}
    write_json(out_dir / m_name, manifest)  # a reader seeing only this knows the pair is not finished
    files = {}
    for name, (features, pids, camids) in ((q_name, query), (g_name, gallery)):
        try:
            write_embedding_csv(out_dir / name, features, pids, camids, index_column=index_column, header=header)
        except InputError as exc:
            if not files:
                raise
            reason = str(exc).replace("; nothing was written", f"; {name} was not written")
            raise InputError(f"{reason}; {q_name} was, so the pair in {out_dir} is incomplete (its manifest says "
                             f"so and evaluate.py refuses it): run the command again") from None
        files[name] = {"sha256": hashlib.sha256((out_dir / name).read_bytes()).hexdigest(),
                       "rows": int(np.asarray(features).shape[0]), "dim": int(np.asarray(features).shape[1])}
    write_json(out_dir / m_name, {**manifest, "complete": True, "files": files})
    return out_dir / q_name, out_dir / g_name


def manifest_path(csv_path: str | Path) -> Path | None:
    """The manifest that belongs to a query/gallery file, or None for other file names."""
    csv_path = Path(csv_path)
    match = _SPLIT_NAME.match(csv_path.name)
    if match is None:
        return None
    split = match.group("split")
    return csv_path.parent / (f"manifest{split}.json" if split else "manifest.json")


def read_manifest(path: Path) -> dict | None:
    """The manifest at ``path`` (None if there is none); InputError if it is damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc}); delete it or run the extraction again") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{path}: not a manifest of this project (damaged?); delete it or run the extraction again")
    return data


def check_pair(query: EmbeddingTable, gallery: EmbeddingTable) -> None:
    """Refuse a query/gallery pair that its manifest says is unfinished or that mixes two runs.

    Tables must have been read with ``digest=True`` when a manifest exists (:func:`needs_digest`).
    """
    where = manifest_path(query.path)
    if where is None or manifest_path(gallery.path) != where:
        return
    manifest = read_manifest(where)
    if manifest is None:
        return
    folder = where.parent
    if not manifest.get("complete"):
        raise InputError(f"{where}: the extraction that writes {query.path.name} and {gallery.path.name} in {folder} "
                         "did not finish (interrupted, or it failed); the two files may come from different runs: run "
                         "it again")
    files = manifest.get("files") or {}
    for table in (query, gallery):
        listed = files.get(table.path.name) or {}
        if table.sha256 is None or listed.get("sha256") != table.sha256:
            other = gallery if table is query else query
            raise InputError(f"{table.path} is not the file that {where.name} lists (it was rewritten after the run "
                             f"that wrote {other.path.name}); the pair would mix two runs: run the extraction for it "
                             "again, or delete the manifest if you replaced the file on purpose")


def needs_digest(csv_path: str | Path) -> bool:
    """True when a manifest lists this file, so its digest must be checked."""
    where = manifest_path(csv_path)
    return where is not None and where.is_file()


# --------------------------------------------------------------------------------------------- alignment
def _key_rows(table: EmbeddingTable) -> dict[tuple[int, int], int]:
    rows: dict[tuple[int, int], int] = {}
    for i, key in enumerate(zip(table.pids.tolist(), table.camids.tolist())):
        if key in rows:
            count = sum(1 for k in zip(table.pids.tolist(), table.camids.tolist()) if k == key)
            raise InputError(f"{table.path}: (person_id, camera_id) = {key} appears {count} times; each tracklet "
                             "must appear once")
        rows[key] = i
    return rows


def align_rows(reference: EmbeddingTable, other: EmbeddingTable) -> tuple[EmbeddingTable, bool]:
    """Reorder ``other``'s rows to match ``reference`` on the pair (person_id, camera_id), never on row order.

    Returns (aligned table, whether it had to be reordered). Fails naming the ids that are not in both.
    """
    ref_rows, other_rows = _key_rows(reference), _key_rows(other)
    ref_keys = list(ref_rows)
    if ref_keys == list(other_rows):
        return other, False
    missing = [k for k in ref_keys if k not in other_rows]
    extra = [k for k in other_rows if k not in ref_rows]
    if missing or extra:
        def fmt(keys):
            shown = ", ".join(f"({p}, {c})" for p, c in sorted(keys)[:5])
            return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        parts = []
        if missing:
            parts.append(f"{len(missing)} (person_id, camera_id) of {reference.path} are missing from "
                         f"{other.path}: {fmt(missing)}")
        if extra:
            parts.append(f"{len(extra)} of {other.path} are not in {reference.path}: {fmt(extra)}")
        raise InputError("; ".join(parts) + "; the appearance and gait files must describe the same tracklets")
    position = np.array([other_rows[k] for k in ref_keys], dtype=np.int64)
    aligned = EmbeddingTable(features=other.features[position], pids=other.pids[position],
                             camids=other.camids[position], path=other.path,
                             dropped_index_column=other.dropped_index_column, sha256=other.sha256,
                             notes=other.notes + [f"{other.path.parent.name}/{other.path.name}: rows reordered to "
                                                  f"match {reference.path.parent.name}/{reference.path.name} on "
                                                  "(person_id, camera_id)"])
    return aligned, True
