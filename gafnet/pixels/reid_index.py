"""The gallery index of ``reid.py``: a folder of memory-mapped arrays, one part per input, read chunk by chunk.

Layout (the folder may have any name, e.g. ``gallery_index/`` or the ``gallery.npz`` of the examples)::

    index.json            the header: format, version, the models (appearance, gait, pose backend, with the
                          weights' SHA-256), and the list of parts with their inputs, counts and file sizes
    parts/000001/*.npy    one part per input (video, tracklet folder, pose CSV), one .npy per array:
        appearance        (n, D_app) float32  appearance embeddings as computed (normalised at search time)
        gait              (n, D_gait) float32 gait embeddings, NaN rows for tracklets without any pose
                          (D_gait = 0 when the index has no gait)
        has_pose, gait_padded (n,) bool; frames, pose_frames (n,) int32; person_id, camera_id (n,) int64 (−1 unknown)
        source            (n,) unicode        ``video#track``, a tracklet folder, or ``csv#track``
        box_offsets       (n + 1,) int64 and boxes (F, 4) float32 (``x, y, w, h`` crop boxes in frame pixels,
                          NaN for image folders), frame_numbers (F,) int64
        thumb_offsets     (4 n + 1,) int64 and thumbs (bytes,) uint8: 4 JPEG thumbnails per tracklet, decoded
                          only for the matches a contact sheet shows

Writing. Each input is embedded and its part written as soon as it is done (a temporary folder renamed into
``parts/``), then ``index.json`` is replaced atomically: an interrupted ``index`` keeps every input finished
before, and a part that ``index.json`` does not list is never read. A new index is built in a temporary folder
beside the target and renamed onto it at its first part. Adding inputs to an index embeds only inputs it does
not hold yet (same path, same size and modification time); an input that changed since is embedded again
and its old part removed.

Reading. ``index.json`` is checked (format, version, part list); every listed file must exist with the size
recorded, and its ``.npy`` header must give the shapes the header promises — a truncated, foreign or damaged
index is refused with one line before any search. Arrays are opened with ``mmap_mode="r"``: searching a
gallery reads it chunk by chunk (:meth:`GalleryIndex.chunks`), so memory stays bounded by the chunk size
whatever the number of tracklets.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, stage_dir, write_json
from ..errors import InputError

INDEX_FORMAT = "gafnet-reid-index"
INDEX_VERSION = 2
HEADER_NAME = "index.json"
PARTS_DIR = "parts"
THUMBS_PER_TRACKLET = 4
THUMB_SIZE = (128, 64)  # (height, width) of a thumbnail
REBUILD = "build it again with python reid.py index … --out"

#: Per-tracklet arrays of a record set: name → (dtype, trailing shape or None for 1-D, indexed per tracklet).
ROW_ARRAYS = {
    "appearance": np.float32, "gait": np.float32, "has_pose": np.bool_, "gait_padded": np.bool_,
    "frames": np.int32, "pose_frames": np.int32, "person_id": np.int64, "camera_id": np.int64,
}
#: Arrays with their own row counts (offsets into them are per tracklet).
OTHER_ARRAYS = ("source", "box_offsets", "boxes", "frame_numbers", "thumb_offsets", "thumbs")
ALL_ARRAYS = tuple(ROW_ARRAYS) + OTHER_ARRAYS


# --------------------------------------------------------------------------------------------------- records
def empty_records(app_dim: int, gait_dim: int) -> dict:
    """A record set with no tracklet (the shapes a part of these dimensions has)."""
    return {"appearance": np.zeros((0, app_dim), np.float32), "gait": np.zeros((0, gait_dim), np.float32),
            "has_pose": np.zeros(0, bool), "gait_padded": np.zeros(0, bool), "frames": np.zeros(0, np.int32),
            "pose_frames": np.zeros(0, np.int32), "person_id": np.zeros(0, np.int64),
            "camera_id": np.zeros(0, np.int64), "source": np.zeros(0, "<U1"), "box_offsets": np.zeros(1, np.int64),
            "boxes": np.zeros((0, 4), np.float32), "frame_numbers": np.zeros(0, np.int64),
            "thumb_offsets": np.zeros(1, np.int64), "thumbs": np.zeros(0, np.uint8)}


def check_records(rec: dict, where: str = "records") -> int:
    """The number of tracklets of a record set; ValueError if its arrays disagree (a programming error)."""
    n = len(rec["appearance"])
    for name in ROW_ARRAYS:
        if len(rec[name]) != n:
            raise ValueError(f"{where}: {name} has {len(rec[name])} rows, appearance {n}")
    if len(rec["source"]) != n or len(rec["box_offsets"]) != n + 1 or len(rec["thumb_offsets"]) != THUMBS_PER_TRACKLET * n + 1:
        raise ValueError(f"{where}: source / offsets do not match {n} tracklets")
    if rec["box_offsets"][-1] != len(rec["boxes"]) or len(rec["boxes"]) != len(rec["frame_numbers"]):
        raise ValueError(f"{where}: boxes / frame_numbers do not match box_offsets")
    if rec["thumb_offsets"][-1] != len(rec["thumbs"]):
        raise ValueError(f"{where}: thumbs do not match thumb_offsets")
    return n


def concat_records(parts: list[dict]) -> dict:
    """One record set holding the tracklets of several (offsets shifted)."""
    out = {}
    for name in ROW_ARRAYS:
        out[name] = np.concatenate([p[name] for p in parts])
    out["source"] = np.concatenate([np.asarray(p["source"], dtype=str) for p in parts])
    for offsets, data in (("box_offsets", "boxes"), ("thumb_offsets", "thumbs")):
        shifted, base = [np.zeros(1, np.int64)], 0
        for p in parts:
            shifted.append(np.asarray(p[offsets][1:], np.int64) + base)
            base += int(p[offsets][-1])
        out[offsets] = np.concatenate(shifted)
        out[data] = np.concatenate([p[data] for p in parts])
    out["frame_numbers"] = np.concatenate([p["frame_numbers"] for p in parts])
    return out


def encode_thumbnails(images: list[np.ndarray]) -> list[bytes]:
    """:data:`THUMBS_PER_TRACKLET` JPEG thumbnails of :data:`THUMB_SIZE` from BGR crops (repeated when fewer)."""
    from .media import cv2_module

    cv2 = cv2_module()
    if not images:
        images = [np.full((THUMB_SIZE[0], THUMB_SIZE[1], 3), 128, np.uint8)]
    picks = np.round(np.linspace(0, len(images) - 1, THUMBS_PER_TRACKLET)).astype(int)
    out = []
    for i in picks:
        small = cv2.resize(images[i], (THUMB_SIZE[1], THUMB_SIZE[0]), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
            raise RuntimeError("cannot encode a thumbnail")
        out.append(data.tobytes())
    return out


def decode_thumbnails(thumbs: np.ndarray, offsets: np.ndarray, row: int) -> list[np.ndarray]:
    """The BGR thumbnails of tracklet ``row`` of a record set (or of an index part)."""
    from .media import cv2_module

    cv2 = cv2_module()
    out = []
    for k in range(THUMBS_PER_TRACKLET):
        a, b = int(offsets[THUMBS_PER_TRACKLET * row + k]), int(offsets[THUMBS_PER_TRACKLET * row + k + 1])
        img = cv2.imdecode(np.asarray(thumbs[a:b], dtype=np.uint8), cv2.IMREAD_COLOR) if b > a else None
        out.append(img if img is not None else np.full((THUMB_SIZE[0], THUMB_SIZE[1], 3), 128, np.uint8))
    return out


# ------------------------------------------------------------------------------------------------- models
def models_differ(index_models: dict, run_models: dict, where: str, allow_no_gait: bool = True) -> str | None:
    """None if a run's models can be compared with an index's; else the one-line refusal naming both.

    The appearance model and its weights must be the same. The gait model must be the same, or absent in
    the run (``allow_no_gait``: the search is then by appearance alone, which the caller says).
    """
    a, b = index_models["appearance"], run_models["appearance"]
    if (a.get("model"), a.get("weights_sha256"), a.get("config")) != (b.get("model"), b.get("weights_sha256"), b.get("config")):
        return (f"{where} was built with appearance {describe_model(a)} but this run uses {describe_model(b)}; "
                "use the same --appearance and --appearance_weights, or build a new index")
    ga, gb = index_models["gait"], run_models["gait"]
    same_gait = (ga.get("model"), ga.get("weights_sha256"), ga.get("preprocessing")) == \
        (gb.get("model"), gb.get("weights_sha256"), gb.get("preprocessing"))
    if same_gait or (allow_no_gait and gb.get("model") == "off"):
        if same_gait and ga.get("model") != "off" and index_models.get("pose") != run_models.get("pose"):
            return (f"{where} has poses from {index_models.get('pose')} but this run uses {run_models.get('pose')}; "
                    "use the same pose settings or build a new index")
        return None
    if ga.get("model") == "off":
        return (f"{where} was built without gait ({ga.get('note') or 'gait off'}) but this run uses gait "
                f"{describe_model(gb)}; search with --gait off or build the index with these --gait_weights")
    return (f"{where} was built with gait {describe_model(ga)} but this run uses gait {describe_model(gb)}; "
            "use the same --gait_weights, --gait off (appearance only), or build a new index")


def describe_model(part: dict) -> str:
    sha = part.get("weights_sha256")
    return f"{part.get('model')!r}" + (f" (weights sha256 {sha[:12]})" if sha else " (no weights file)")


# ------------------------------------------------------------------------------------------------- reading
@dataclass
class Part:
    """One committed part: its id, what it came from, its tracklet count and its arrays (memory-mapped)."""

    id: int
    info: dict
    folder: Path
    count: int
    arrays: dict

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        return self.arrays[name][start:stop]


def _read_header(path: Path) -> dict:
    if not path.exists():
        raise InputError(f"{path}: no such reid index; {REBUILD} {path}")
    if path.is_file():
        import zipfile

        old = zipfile.is_zipfile(path)
        raise InputError(f"{path}: {'a one-file index of an older reid.py (format 1)' if old else 'a file, not a reid index'}"
                         f"; an index is a folder written by python reid.py index: {REBUILD} <folder>")
    header_path = path / HEADER_NAME
    if not header_path.is_file():
        raise InputError(f"{path}: not a reid index (no {HEADER_NAME} in it); {REBUILD} {path}")
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{header_path}: corrupt reid index header ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:80] if str(exc) else ''}); {REBUILD} {path}") from None
    if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise InputError(f"{header_path}: not a reid index header (format {found!r}); {REBUILD} {path}")
    if header.get("version") != INDEX_VERSION:
        raise InputError(f"{path}: written by reid index version {header.get('version')!r}, this code reads version "
                         f"{INDEX_VERSION}; {REBUILD} {path}")
    try:
        _check_header_fields(header)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{header_path}: corrupt reid index header ({exc}); {REBUILD} {path}") from None
    return header


def _check_header_fields(header: dict) -> None:
    models = header["models"]
    if not isinstance(models, dict) or not isinstance(models["appearance"], dict) or not isinstance(models["gait"], dict):
        raise ValueError("models is not a dict of appearance and gait")
    for key in ("app_dim", "gait_dim"):
        if not isinstance(header[key], int) or header[key] < 0:
            raise ValueError(f"{key} is not a non-negative integer")
    if not isinstance(header["parts"], list):
        raise ValueError("parts is not a list")
    for p in header["parts"]:
        if not isinstance(p["id"], int) or not isinstance(p["count"], int) or not isinstance(p["files"], dict):
            raise ValueError("a part lacks its id, count or files")


class GalleryIndex:
    """A committed index, opened for reading; see the module docstring."""

    def __init__(self, path, header: dict, parts: list[Part]):
        self.path = Path(path)
        self.header = header
        self.parts = parts
        self.offsets = np.cumsum([0] + [p.count for p in parts]).astype(np.int64)

    @classmethod
    def open(cls, path) -> GalleryIndex:
        path = Path(path)
        header = _read_header(path)
        parts = [_open_part(path, header, info) for info in header["parts"]]
        return cls(path, header, parts)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def models(self) -> dict:
        return self.header["models"]

    @property
    def app_dim(self) -> int:
        return int(self.header["app_dim"])

    @property
    def gait_dim(self) -> int:
        return int(self.header["gait_dim"])

    def chunks(self, names=("appearance", "gait", "has_pose"), rows: int = 20000):
        """(start, {name: array}) for consecutive blocks of ``rows`` gallery tracklets (the last may be shorter),
        read from the memory-mapped parts (several small parts joined, a large one cut)."""
        pending, count, start = [], 0, 0
        for part in self.parts:
            a = 0
            while a < part.count:
                b = min(part.count, a + rows - count)
                pending.append({n: part.rows(n, a, b) for n in names})
                count += b - a
                a = b
                if count == rows:
                    yield start, {n: np.concatenate([p[n] for p in pending]) for n in names}
                    start += count
                    pending, count = [], 0
        if pending:
            yield start, {n: np.concatenate([p[n] for p in pending]) for n in names}

    def column(self, name: str) -> np.ndarray:
        """One per-tracklet array over the whole gallery (small ones: ids, flags, counts)."""
        if not self.parts:
            return np.zeros(0, dtype=ROW_ARRAYS.get(name, np.int64))
        return np.concatenate([np.asarray(p.arrays[name]) for p in self.parts])

    def locate(self, row: int) -> tuple[Part, int]:
        k = int(np.searchsorted(self.offsets, row, side="right") - 1)
        return self.parts[k], int(row - self.offsets[k])

    def record(self, row: int, thumbnails: bool = False) -> dict:
        """Everything stored about gallery tracklet ``row`` (a global index), for results and sheets."""
        part, i = self.locate(row)
        a = part.arrays
        b0, b1 = int(a["box_offsets"][i]), int(a["box_offsets"][i + 1])
        out = {"source": str(a["source"][i]), "frames": int(a["frames"][i]), "pose_frames": int(a["pose_frames"][i]),
               "has_pose": bool(a["has_pose"][i]), "gait_padded": bool(a["gait_padded"][i]),
               "person_id": int(a["person_id"][i]), "camera_id": int(a["camera_id"][i]),
               "boxes": np.asarray(a["boxes"][b0:b1]), "frame_numbers": np.asarray(a["frame_numbers"][b0:b1]),
               "input": part.info.get("input")}
        if thumbnails:
            out["thumbnails"] = decode_thumbnails(a["thumbs"], a["thumb_offsets"], i)
        return out


def _open_part(root: Path, header: dict, info: dict) -> Part:
    folder = root / PARTS_DIR / f"{info['id']:06d}"
    n = info["count"]
    expect = {"appearance": (n, header["app_dim"]), "gait": (n, header["gait_dim"]), "box_offsets": (n + 1,),
              "thumb_offsets": (THUMBS_PER_TRACKLET * n + 1,), "boxes": (None, 4)}
    arrays = {}
    for name in ALL_ARRAYS:
        f = folder / f"{name}.npy"
        size = info["files"].get(name)
        try:
            actual = f.stat().st_size
        except OSError:
            raise InputError(f"{root}: damaged index: {f.relative_to(root)} is missing; {REBUILD} {root}") from None
        if actual != size:
            raise InputError(f"{root}: damaged index: {f.relative_to(root)} has {actual} bytes, the header says {size} "
                             f"(truncated or replaced); {REBUILD} {root}")
        try:
            arr = np.load(f, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{root}: damaged index: {f.relative_to(root)} is not a readable array "
                             f"({str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}); {REBUILD} {root}") from None
        want = expect.get(name, (n,) if name in ROW_ARRAYS or name == "source" else None)
        if want is not None and (arr.ndim != len(want) or any(w is not None and s != w for s, w in zip(arr.shape, want))):
            raise InputError(f"{root}: damaged index: {f.relative_to(root)} has shape {arr.shape}, expected {want}; "
                             f"{REBUILD} {root}")
        arrays[name] = arr
    if len(arrays["boxes"]) != int(arrays["box_offsets"][-1]) or len(arrays["thumbs"]) != int(arrays["thumb_offsets"][-1]):
        raise InputError(f"{root}: damaged index: the offsets of part {info['id']:06d} do not match its arrays; "
                         f"{REBUILD} {root}")
    return Part(info["id"], info, folder, n, arrays)


# ------------------------------------------------------------------------------------------------- writing
def input_identity(path) -> dict:
    """What says an input did not change since it was indexed: resolved path, size and mtime (files), or the
    number, total size and latest mtime of the images below a folder."""
    path = Path(path)
    st = path.stat()
    ident = {"path": str(path.resolve())}
    if path.is_dir():
        from .media import is_image_name

        count = total = latest = 0
        for dirpath, _, files in os.walk(path):
            for name in files:
                if is_image_name(name):
                    s = os.stat(os.path.join(dirpath, name))
                    count, total, latest = count + 1, total + s.st_size, max(latest, s.st_mtime_ns)
        ident.update({"images": count, "bytes": total, "latest_mtime_ns": latest})
    else:
        ident.update({"bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
    return ident


class IndexWriter:
    """Adds parts to a new or existing index; see the module docstring. ``models``: the run's description."""

    def __init__(self, path, models: dict, app_dim: int | None = None, gait_dim: int | None = None):
        self.path = Path(path)
        self.models = models
        self.existing = None
        if self.path.exists() and not (self.path.is_dir() and not any(self.path.iterdir())):
            if self.path.is_dir() and not (self.path / HEADER_NAME).exists():
                raise InputError(f"--out {self.path} exists and is not a reid index (it holds other files); choose a new "
                                 "path (nothing is deleted)")
            self.existing = GalleryIndex.open(self.path)
            problem = models_differ(self.existing.models, models, f"the index {self.path}", allow_no_gait=False)
            if problem:
                raise InputError(problem)
            self.header = self.existing.header
        else:
            if not self.path.parent.exists():
                raise InputError(f"--out {self.path}: the folder {self.path.parent} does not exist")
            self.header = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "models": models, "app_dim": app_dim,
                           "gait_dim": gait_dim, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "parts": []}
        self._new_root: Path | None = None

    def done(self, path) -> dict | None:
        """The part that holds input ``path`` unchanged, or None (not indexed yet, or changed since)."""
        ident = input_identity(path)
        for p in self.header["parts"]:
            if p.get("identity") == ident:
                return p
        return None

    def stale(self, path) -> list[dict]:
        """Parts made from the same input path whose file(s) changed since."""
        resolved = str(Path(path).resolve())
        ident = input_identity(path)
        return [p for p in self.header["parts"] if (p.get("identity") or {}).get("path") == resolved
                and p.get("identity") != ident]

    @property
    def count(self) -> int:
        return sum(p["count"] for p in self.header["parts"])

    def add(self, records: dict, info: dict, replaces: list[dict] = ()) -> dict:
        """Write one part and commit it (``index.json`` replaced); ``replaces``: parts it supersedes (removed)."""
        n = check_records(records, info.get("input", "part"))
        app_dim, gait_dim = records["appearance"].shape[1], records["gait"].shape[1]
        if self.header["app_dim"] is None:
            self.header["app_dim"], self.header["gait_dim"] = int(app_dim), int(gait_dim)
        if (app_dim, gait_dim) != (self.header["app_dim"], self.header["gait_dim"]):
            raise InputError(f"{info.get('input')}: embeddings of {app_dim}/{gait_dim} dimensions do not fit the index "
                             f"{self.path} ({self.header['app_dim']}/{self.header['gait_dim']})")
        root = self._root()
        parts_dir = root / PARTS_DIR
        parts_dir.mkdir(exist_ok=True)
        existing_ids = [p["id"] for p in self.header["parts"]] + [int(d.name) for d in parts_dir.iterdir() if d.name.isdigit()]
        part_id = max(existing_ids, default=0) + 1
        final = parts_dir / f"{part_id:06d}"
        files = {}
        with atomic_dir(final, kept="the index was left as it was") as tmp:
            for name in ALL_ARRAYS:
                arr = np.ascontiguousarray(records[name])
                if name == "source":
                    arr = np.asarray(arr, dtype=str) if arr.size else np.zeros(0, "<U1")
                with open(tmp / f"{name}.npy", "wb") as fh:
                    np.save(fh, arr, allow_pickle=False)
                    fh.flush()
                    os.fsync(fh.fileno())
                files[name] = (tmp / f"{name}.npy").stat().st_size
        entry = {**info, "id": part_id, "count": n, "files": files}
        gone = {p["id"] for p in replaces}
        header = {**self.header, "parts": [p for p in self.header["parts"] if p["id"] not in gone] + [entry],
                  "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_json(root / HEADER_NAME, header)
        self.header = header
        if self._new_root is not None:  # the first part of a new index: the folder appears complete
            self._publish()
        for pid in gone:
            shutil.rmtree(self.path / PARTS_DIR / f"{pid:06d}", ignore_errors=True)
        return entry

    def _root(self) -> Path:
        if self.existing is not None or self.path.is_dir():  # an index, or an empty folder given as --out
            return self.path
        if self._new_root is None:
            self._new_root = stage_dir(self.path)
        return self._new_root

    def _publish(self) -> None:
        try:
            os.rename(self._new_root, self.path)
        except OSError as exc:
            shutil.rmtree(self._new_root, ignore_errors=True)
            raise InputError(f"cannot create {self.path}: {exc.strerror or exc} (did another process create it?); "
                             "nothing was written") from None
        self._new_root = None
        self.existing = GalleryIndex.open(self.path)

    def abandon(self) -> None:
        """Remove the temporary folder of a new index that got no part."""
        if self._new_root is not None:
            shutil.rmtree(self._new_root, ignore_errors=True)
            self._new_root = None
