"""``reid.py``: re-identify people across videos — tracklets → appearance (+ gait) → fused ranking.

    python reid.py index gallery_cam2/*.mp4 --out gallery.npz [--gait_weights CKPT] [--appearance colour]
    python reid.py search query_cam1.mp4 --gallery gallery.npz --top 10 --out results/
    python reid.py search query_dir/ --gallery gallery.npz      # folders of frames as query tracklets
    python reid.py --demo                                       # offline, on the shipped vtest clip

Inputs (``index`` and ``search``): videos (HOG people detector + IoU/Hungarian tracker, as
``tools/extract_poses.py video``), folders (every folder below that directly holds images is one tracklet, named
by its path), and pose CSVs written by ``tools/extract_poses.py`` with their crops (``clip.csv`` with
``clip.tracks.json`` and ``clip_crops/`` from ``video --save_crops``, or a dataset CSV with its ``.report.json``,
whose dataset folder holds the crops): their poses are used as they are.

Models. Appearance: the weight-free colour descriptor (default, labelled WEIGHT-FREE) or a torchreid model with
local weights. Gait: GaitGraph from a checkpoint of ``gaitgraph/src/train.py`` or the original GaitGraph release
(``gafnet.gait.checkpoint``), with the preprocessing the checkpoint records; poses by MediaPipe (crop pixels,
as the datasets' pose CSVs). Without gait weights gait is skipped with one line saying how to get them, poses
are not estimated and the fused column is absent: nothing is computed from an untrained network.

The index (:mod:`.reid_index`), the ranking (:mod:`.reid_search`) and the pictures (:mod:`.reid_sheet`) live in
their own modules; this one turns inputs into tracklet records and runs the commands.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import stage_dir, write_json
from ..errors import InputError, cli_main
from .reid_index import (
    GalleryIndex,
    IndexWriter,
    concat_records,
    decode_thumbnails,
    empty_records,
    encode_thumbnails,
    input_identity,
    models_differ,
)
from .reid_search import DEFAULT_LAMBDA, FusionSpec, search
from .tracklet import Tracklet, sample_indices

PROG = "reid.py"
RESULTS_FORMAT = "gafnet-reid-results"
DEMO_DIR = Path(__file__).resolve().parents[1] / "data_files" / "demo"
NO_GAIT = ("gait skipped: no --gait_weights given (a checkpoint of gaitgraph/src/train.py, or the original GaitGraph "
           "release: python -m gafnet.data download gaitgraph-weights); ranked by appearance alone, no fused "
           "column; pass --gait off to say so")
GAIT_OFF = "gait off (--gait off): ranked by appearance alone, no fused column"
SHEET_PER_PAGE = 8
OWN_OUTPUT = re.compile(r"contact_sheet(_\d+)?\.png|annotated_[^/\\]+\.mp4|gallery_index")  # outputs a rerun replaces


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------- models
class Models:
    """The appearance extractor, the gait model (or none) and, when gait is on, the pose backend."""

    def __init__(self, appearance: str = "colour", appearance_weights=None, gait_weights=None, gait: str = "auto",
                 device: str = "auto", pose_upscale: float = 1.0, seq_len: int = 0, progress: bool = False):
        from ..cache import check_regular_file
        from .appearance import build_extractor, is_colour

        if seq_len < 0:
            raise InputError(f"--seq_len must be ≥ 0 (0 = every frame), got {seq_len}")
        if is_colour(appearance) and appearance_weights:
            raise InputError("--appearance_weights is not used by --appearance colour (a weight-free descriptor)")
        if not is_colour(appearance) and not appearance_weights:
            raise InputError(f"--appearance {appearance} needs --appearance_weights FILE (a torchreid model-zoo "
                             "checkpoint): without weights the network is random. --appearance colour is weight-free")
        if appearance_weights:
            check_regular_file(appearance_weights, "--appearance_weights")
        if gait == "off" and gait_weights:
            raise InputError("--gait off and --gait_weights contradict each other; give one of them")
        self.appearance = build_extractor(appearance, appearance_weights, device)
        self.appearance_name = "colour" if is_colour(appearance) else appearance
        self.appearance_sha = sha256_file(appearance_weights) if appearance_weights else None
        self.seq_len = int(seq_len)
        self.device = device
        self.pose_upscale = float(pose_upscale)
        self.progress = progress
        self.gait_model = None
        self.gait_info = {"model": "off", "weights_sha256": None, "preprocessing": None}
        self.gait_note = GAIT_OFF if gait == "off" else NO_GAIT
        if gait != "off" and gait_weights:
            self._load_gait(gait_weights)
        self._backend = None

    def _load_gait(self, path) -> None:
        from ..device import choose_device
        from ..gait.checkpoint import build_model_from_checkpoint, load_checkpoint
        from ..gait.evaluate_cli import checkpoint_preprocessing

        ckpt = load_checkpoint(path)
        prep = checkpoint_preprocessing(ckpt)
        prep = {k: prep[k] for k in ("sequence_length", "normalize_pose", "multi_branch", "all_angles")}
        self.gait_device = choose_device(self.device)
        self.gait_model = build_model_from_checkpoint(ckpt).to(self.gait_device)
        self.preprocessing = prep
        self.gait_info = {"model": f"GaitGraph {ckpt.model_args['network_name']}", "checkpoint": Path(path).name,
                          "checkpoint_format": ckpt.format, "weights_sha256": ckpt.sha256,
                          "embedding_size": int(ckpt.model_args["embedding_size"]), "preprocessing": prep,
                          "notes": list(ckpt.notes)}
        self.gait_note = ""

    @property
    def gait_on(self) -> bool:
        return self.gait_model is not None

    def describe(self) -> dict:
        app = self.appearance.describe()
        config = {"seq_len": self.seq_len}
        if app.get("weight_free"):
            config["descriptor"] = app.get("description")
        return {"appearance": {"model": self.appearance_name, "weights_sha256": self.appearance_sha,
                               "weight_free": bool(app.get("weight_free")), "label": app.get("label", app["model"]),
                               "config": config},
                "gait": {**self.gait_info, **({"note": self.gait_note} if self.gait_note else {})},
                "pose": {"backend": "mediapipe", "upscale": self.pose_upscale,
                         "coordinates": "crop pixels"} if self.gait_on else None}

    def backend(self):
        if self._backend is None:
            from .pose_backends import build_pose_backend

            self._backend = build_pose_backend("mediapipe", upscale=self.pose_upscale)
        return self._backend

    def gait_features(self, tracklets: list[Tracklet]):
        """(N, E) gait embeddings (NaN rows without any pose; E = 0 with gait off) and (N,) padded flags.

        As ``gaitgraph/src/evaluate.py`` embeds a pose CSV: the frames with a pose, in crop pixels, make the
        sequence; a sequence shorter than ``sequence_length + 1`` frames is reflect-padded (counted); the
        checkpoint's normalisation, multi-branch input and window are applied (:func:`extract_embeddings`).
        """
        n = len(tracklets)
        if not self.gait_on:
            return np.zeros((n, 0), np.float32), np.zeros(n, bool)
        from ..gait.extraction import extract_embeddings
        from ..gait.poses import PoseReport, PoseSet, finish_pose_set

        owners, sequences = [], []
        for k, t in enumerate(tracklets):
            found = t.pose_found
            if not found.any():
                continue
            poses = np.array(t.poses[found], dtype=np.float32)
            if t.boxes is not None:  # frame pixels → crop pixels, as the datasets' pose CSVs
                poses[:, :, 0] -= t.boxes[found, None, 0]
                poses[:, :, 1] -= t.boxes[found, None, 1]
            owners.append(k)
            sequences.append(poses)
        out = np.full((n, self.gait_info["embedding_size"]), np.nan, np.float32)
        padded = np.zeros(n, bool)
        if not sequences:
            return out, padded
        lengths = np.asarray([len(s) for s in sequences], np.int64)
        parsed = PoseSet("mars", ("tracklet",), np.concatenate(sequences), np.concatenate([[0], np.cumsum(lengths)]),
                         np.asarray(owners, np.int64)[:, None], lengths, PoseReport(path="(reid tracklets)"))
        prep = self.preprocessing
        normalize = False if prep["normalize_pose"] == "off" else prep["normalize_pose"]
        pose_set = finish_pose_set(parsed, sequence_length=prep["sequence_length"], normalize=normalize)
        emb = extract_embeddings(self.gait_model, pose_set, sequence_length=prep["sequence_length"],
                                 multi_branch=prep["multi_branch"], all_angles=prep["all_angles"],
                                 device=self.gait_device)
        out[owners] = emb
        padded[owners] = lengths < prep["sequence_length"] + 1
        return out, padded

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


# --------------------------------------------------------------------------------------------- tracklets
@dataclass
class InputTracklets:
    """The tracklets one input gave, what kind of input it was, and (videos) the tracking result."""

    path: Path
    kind: str
    tracklets: list[Tracklet]
    video: object | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def folder_identity(name: str) -> int:
    """``--identity folder``: the person id of a tracklet named ``name`` is its folder's name — the number in it
    if there is exactly one (T07 → 7, person007 → 7), else a stable 31-bit hash of the name."""
    last = Path(name).name
    numbers = re.findall(r"\d+", last)
    if len(numbers) == 1 and len(numbers[0]) <= 9:
        return int(numbers[0])
    return 10**9 + zlib.crc32(last.encode()) % 10**9


def read_pose_rows(path) -> dict[str, np.ndarray]:
    """A pose CSV written by tools/extract_poses.py as {image name: (17, 3) float32}; InputError naming the line."""
    from ..cache import check_regular_file

    path = check_regular_file(path, "pose CSV")
    rows = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            header = fh.readline()
            if not header.startswith("image_name"):
                raise InputError(f"{path}: line 1 is not a pose CSV header (image_name, 17 × x/y/conf); give a CSV "
                                 "written by tools/extract_poses.py")
            for line_no, line in enumerate(fh, start=2):
                cells = line.rstrip("\r\n").split(",")
                if cells == [""]:
                    continue
                if len(cells) != 52:
                    raise InputError(f"{path}, line {line_no}: {len(cells)} columns, expected 52 (name + 17 × 3)")
                try:
                    rows[cells[0]] = np.asarray(cells[1:], dtype=np.float32).reshape(17, 3)
                except ValueError:
                    raise InputError(f"{path}, line {line_no}: a value is not a number") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (not a pose CSV)") from None
    return rows


def pose_csv_tracklets(path: Path, crops=None) -> tuple[list[Tracklet], list[str]]:
    """Tracklets from a pose CSV of tools/extract_poses.py and its crops (see the module docstring)."""
    from .datasets import read_dataset
    from .video import load_tracks_json

    rows = read_pose_rows(path)
    tracks_file = path.with_name(path.stem + ".tracks.json")
    report_file = path.with_name(path.stem + ".report.json")
    used, tracklets = set(), []
    nan = np.full((17, 3), np.nan, np.float32)
    if tracks_file.is_file():
        data = load_tracks_json(tracks_file)
        crop_dir = Path(crops) if crops else path.with_name(path.stem + "_crops")
        if not crop_dir.is_dir():
            raise InputError(f"{path}: its crops are not at {crop_dir}; write them with tools/extract_poses.py video "
                             "… --save_crops, or give --crops DIR")
        video = Path(str(data.get("video", path.stem))).name
        for tr in data["tracks"]:
            tid, cam = int(tr["track_id"]), int(tr["camera_id"])
            first = str(tr.get("row_name_first") or "")
            mars = first.endswith(".jpg")
            from .video import row_name

            names = [row_name(cam, tid, int(f), "mars" if mars else "ilids") for f in tr["frames"]]
            folder = crop_dir / f"cam{cam}" / f"person{tid:04d}"
            frames = [folder / (Path(n).stem + ".png") for n in names]
            missing = next((f for f in frames if not f.is_file()), None)
            if missing is not None:
                raise InputError(f"{missing}: crop missing (listed in {tracks_file.name}); write the crops again with "
                                 "tools/extract_poses.py video … --save_crops")
            poses = np.stack([rows.get(n, nan) for n in names]) if names else np.zeros((0, 17, 3), np.float32)
            used.update(n for n in names if n in rows)
            tracklets.append(Tracklet(f"{video}#{tid}", frames, names, tr["frames"], tracklet_id=tid,
                                      boxes=np.asarray(tr["boxes_xywh"], float), poses=poses,
                                      source=f"{data.get('video', path)}#{tid}"))
    elif report_file.is_file():
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
            layout, root = report["source"], Path(crops) if crops else Path(report["root"])
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"{report_file}: not a readable pose report of tools/extract_poses.py") from None
        for t in read_dataset(layout, root):
            t.poses = np.stack([rows.get(n, nan) for n in t.row_names])
            used.update(n for n in t.row_names if n in rows)
            tracklets.append(t)
    else:
        raise InputError(f"{path}: a pose CSV needs {tracks_file.name} (videos) or {report_file.name} (datasets) "
                         "beside it, as tools/extract_poses.py writes them")
    notes = []
    if len(used) < len(rows):
        notes.append(f"{path}: {len(rows) - len(used)} pose rows match no crop and were not used")
    return tracklets, notes


def read_input(path, models: Models, camera: int, opts) -> InputTracklets:
    """One input (video, tracklet folder, pose CSV) → its tracklets; poses estimated only when gait is on."""
    from .datasets import read_tracklet_folders
    from .media import is_image_name, open_video
    from .pose_backends import estimate_tracklet_poses

    path = Path(path)
    started = time.perf_counter()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        tracklets = read_tracklet_folders(path)
        for t in tracklets:
            t.source = str(path / t.name) if t.name != path.name else str(path)
            if opts.identity == "folder":
                t.person_id = folder_identity(t.name)
            elif opts.identity == "none":
                t.person_id = None
        if models.gait_on:
            for t in tracklets:
                t.poses = estimate_tracklet_poses(models.backend(), t)
        return InputTracklets(path, "folder", tracklets, timings={"read_and_pose": time.perf_counter() - started})
    if path.suffix.lower() == ".csv":
        tracklets, notes = pose_csv_tracklets(path, getattr(opts, "crops", None))
        if opts.identity == "folder":
            for t in tracklets:
                t.person_id = folder_identity(t.name)
        return InputTracklets(path, "pose-csv", tracklets, notes=notes, timings={"read": time.perf_counter() - started})
    if is_image_name(path):
        raise InputError(f"{path}: an image; give a video, or a folder whose sub-folders hold a tracklet's frames")
    open_video(path)  # not a video, empty, truncated: one line
    from .detection import HogPeopleDetector
    from .video import track_video

    result = track_video(path, camera, models.backend() if models.gait_on else None,
                         detector=HogPeopleDetector(upscale=opts.hog_upscale, scale=opts.hog_scale),
                         max_frames=opts.max_frames, progress=models.progress)
    for t in result.tracklets:
        t.source = f"{path}#{t.tracklet_id}"
        t.camera_id = None  # the position on the command line is not a camera identity
    timings = {k: v for k, v in result.timings.items()}
    return InputTracklets(path, "video", result.tracklets, video=result, timings=timings)


def records_of(tracklets: list[Tracklet], models: Models, timings: dict | None = None) -> dict:
    """The per-tracklet arrays of an index part or a query set (see :mod:`.reid_index`)."""
    timings = {} if timings is None else timings
    if not tracklets:
        return empty_records(0, 0)
    t0 = time.perf_counter()
    app = models.appearance.features(tracklets, seq_len=models.seq_len, progress=models.progress)
    t1 = time.perf_counter()
    gait, padded = models.gait_features(tracklets)
    t2 = time.perf_counter()
    timings["appearance"] = timings.get("appearance", 0.0) + t1 - t0
    timings["gait"] = timings.get("gait", 0.0) + t2 - t1
    found = [t.pose_found for t in tracklets]
    boxes = [t.boxes.astype(np.float32) if t.boxes is not None else np.full((len(t), 4), np.nan, np.float32)
             for t in tracklets]
    thumbs = [encode_thumbnails(t.images(sample_indices(len(t), 4))) for t in tracklets]
    flat = [b for per in thumbs for b in per]
    timings["thumbnails"] = timings.get("thumbnails", 0.0) + time.perf_counter() - t2
    return {"appearance": np.asarray(app, np.float32), "gait": gait,
            "has_pose": np.asarray([f.any() for f in found], bool), "gait_padded": padded,
            "frames": np.asarray([len(t) for t in tracklets], np.int32),
            "pose_frames": np.asarray([int(f.sum()) for f in found], np.int32),
            "person_id": np.asarray([-1 if t.person_id is None else t.person_id for t in tracklets], np.int64),
            "camera_id": np.asarray([-1 if t.camera_id is None else t.camera_id for t in tracklets], np.int64),
            "source": np.asarray([t.source or t.name for t in tracklets], dtype=str),
            "box_offsets": np.concatenate([[0], np.cumsum([len(b) for b in boxes])]).astype(np.int64),
            "boxes": np.concatenate(boxes), "frame_numbers": np.concatenate([t.frame_numbers for t in tracklets]),
            "thumb_offsets": np.concatenate([[0], np.cumsum([len(b) for b in flat])]).astype(np.int64),
            "thumbs": np.frombuffer(b"".join(flat), dtype=np.uint8).copy()}


def _models(args) -> Models:
    return Models(args.appearance, args.appearance_weights, args.gait_weights, args.gait, args.device,
                  args.pose_upscale, args.seq_len, progress=not args.quiet)


def _check_inputs(inputs) -> None:
    """Every input is checked before any work: it exists; a video opens (a file that is not a video, an empty
    one, an image); a pose CSV has its tracks or report file beside it."""
    from .media import is_image_name, open_video

    for p in map(Path, inputs):
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_dir():
            continue
        if p.suffix.lower() == ".csv":
            if not (p.with_name(p.stem + ".tracks.json").is_file() or p.with_name(p.stem + ".report.json").is_file()):
                raise InputError(f"{p}: a pose CSV needs {p.stem}.tracks.json (videos) or {p.stem}.report.json "
                                 "(datasets) beside it, as tools/extract_poses.py writes them")
        elif is_image_name(p):
            raise InputError(f"{p}: an image; give a video, or a folder whose sub-folders hold a tracklet's frames")
        else:
            open_video(p)


# ------------------------------------------------------------------------------------------------- index
def run_index(args) -> dict:
    _check_inputs(args.inputs)
    _check_video_options(args)
    models = _models(args)
    desc = models.describe()
    writer = IndexWriter(args.out, desc)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    added, seen = 0, set()
    try:
        for camera, path in enumerate(args.inputs, start=1):
            key = str(Path(path).resolve())
            if key in seen:
                print(f"{path}: given twice, indexed once")
                continue
            seen.add(key)
            if writer.done(path):
                print(f"{path}: already in {args.out} (unchanged), skipped")
                continue
            stale = writer.stale(path)
            identity = input_identity(path)
            got = read_input(path, models, camera, args)
            _add_times(timings, got.timings)
            for note in got.notes:
                print(f"{PROG}: note: {note}")
            if not got.tracklets:
                print(f"{path}: no person found, nothing added")
                continue
            records = records_of(got.tracklets, models, timings)
            warn_if_collapsed(records, str(path))
            info = {"input": str(path), "kind": got.kind, "identity": identity,
                    "added": time.strftime("%Y-%m-%d %H:%M:%S"), "summary": _input_summary(got, records)}
            t = time.perf_counter()
            writer.add(records, info, replaces=stale)
            _add_times(timings, {"index_write": time.perf_counter() - t})
            added += len(got.tracklets)
            print(f"{path}: {info['summary']}" + (" (changed since it was indexed: replaced)" if stale else ""))
    finally:
        writer.abandon()
        models.close()
    if not writer.header["parts"]:
        raise InputError(f"no person found in any input ({', '.join(map(str, args.inputs))}); nothing was written")
    if models.gait_note:
        print(f"{PROG}: {models.gait_note}")
    total = writer.count
    print(f"{args.out}: {total} tracklets ({added} new) in {len(writer.header['parts'])} parts, "
          f"{time.perf_counter() - started:.1f} s; appearance {desc['appearance']['label']}; gait "
          f"{desc['gait']['model']}")
    print("  stages: " + _format_timings(timings))
    return {"index": str(args.out), "tracklets": total, "added": added, "timings_s": timings}


def warn_if_collapsed(records: dict, what: str) -> None:
    """One line on stderr when the gait embeddings are (nearly) all alike: an untrained or collapsed network."""
    from ..metrics import collapse_warning

    gait = records["gait"][records["has_pose"]] if records["gait"].shape[1] else None
    warning = collapse_warning(gait, f"gait embeddings of {what}") if gait is not None and len(gait) > 1 else None
    if warning:
        print(f"{PROG}: {warning}", file=sys.stderr)


def _input_summary(got: InputTracklets, records: dict) -> str:
    n = len(got.tracklets)
    text = f"{n} tracklet{'s' if n != 1 else ''}"
    if got.video is not None:
        text += f" from {got.video.frames} frames ({len(got.video.short)} shorter than {got.video.min_length} frames, kept)"
    has = records["has_pose"]
    if any(t.poses is not None for t in got.tracklets):
        text += f"; {int((~has).sum())} without any pose (appearance only)"
        if records["gait"].shape[1]:
            text += f", {int(records['gait_padded'].sum())} gait-padded (shorter than the window)"
    return text


def _add_times(total: dict, part: dict) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0.0) + float(v)


def _format_timings(timings: dict) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if v >= 0.05 or k in ("search",))


def _check_video_options(args) -> None:
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max_frames must be at least 1, got {args.max_frames}")
    if not args.hog_upscale > 0 or not args.hog_scale > 1:
        raise InputError("--hog_upscale must be > 0 and --hog_scale > 1")
    if not args.pose_upscale > 0:
        raise InputError(f"--pose_upscale must be > 0, got {args.pose_upscale}")


# ----------------------------------------------------------------------------------------------- outputs
class OutputFolder:
    """``--out`` of search and the demo: a new folder (built beside it, renamed at the end), an empty one, or the
    folder of an earlier run (its listed outputs are replaced). Any other file in it: refused, nothing deleted."""

    def __init__(self, path):
        self.path = Path(path)
        self.previous: list[str] = []
        if self.path.exists():
            if not self.path.is_dir():
                raise InputError(f"--out {self.path} is a file; give a folder for results.json and the contact sheet")
            entries = [e.name for e in self.path.iterdir()]
            old = self.path / "results.json"
            if old.is_file():
                try:
                    data = json.loads(old.read_text(encoding="utf-8"))
                    if data.get("format") == RESULTS_FORMAT:
                        self.previous = [n for n in map(str, data.get("outputs", [])) if OWN_OUTPUT.fullmatch(n)]
                except (OSError, ValueError, AttributeError):
                    pass
            others = sorted(set(entries) - set(self.previous) - {"results.json"} if self.previous else set(entries))
            if others:
                raise InputError(f"--out {self.path} exists and holds other files ({', '.join(others[:3])}"
                                 f"{', …' if len(others) > 3 else ''}); choose a new or empty folder (nothing is deleted)")
            self.stage = self.path
        else:
            if not self.path.parent.is_dir():
                raise InputError(f"--out {self.path}: the folder {self.path.parent} does not exist")
            self.stage = None
        self.written: list[str] = []

    def file(self, name: str) -> Path:
        """Where output ``name`` is written (a folder of an earlier run under that name is removed first)."""
        if self.stage is None:
            self.stage = stage_dir(self.path)
        target = self.stage / name
        if name in self.previous and target.is_dir():
            shutil.rmtree(target)
        self.written.append(name)
        return target

    def commit(self) -> None:
        if self.stage != self.path:
            try:
                os.rename(self.stage, self.path)
            except OSError as exc:
                raise InputError(f"cannot create {self.path}: {exc.strerror or exc} (made meanwhile by another "
                                 "process?); nothing was written") from None
        for name in set(self.previous) - set(self.written):  # an earlier run's own output this run did not remake
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)

    def abandon(self) -> None:
        if self.stage is not None and self.stage != self.path:
            shutil.rmtree(self.stage, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ search
def run_search(args) -> dict:
    fusion = _fusion(args)
    if args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}")
    _check_inputs(args.inputs)
    _check_video_options(args)
    out = OutputFolder(args.out)
    gallery = GalleryIndex.open(args.gallery)
    models = _models(args)
    desc = models.describe()
    problem = models_differ(gallery.models, desc, f"the index {args.gallery}")
    if problem:
        raise InputError(problem)
    notes = []
    if gallery.gait_dim and not models.gait_on:
        notes.append(f"the index has gait embeddings ({gallery.models['gait']['model']}) but this run has no gait "
                     f"({'--gait off' if args.gait == 'off' else 'no --gait_weights'}): ranked by appearance alone")
    elif models.gait_note:
        notes.append(models.gait_note)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    inputs, parts = [], []
    try:
        for camera, path in enumerate(args.inputs, start=1):
            got = read_input(path, models, camera, args)
            _add_times(timings, got.timings)
            notes.extend(got.notes)
            if not got.tracklets:
                notes.append(f"{path}: no person found")
                continue
            inputs.append(got)
            parts.append(records_of(got.tracklets, models, timings))
    finally:
        models.close()
    if not parts:
        raise InputError(f"no person found in {', '.join(map(str, args.inputs))}; nothing was written")
    q = concat_records(parts)
    if models.gait_on:
        notes.append(f"queries: {len(q['source'])} tracklets, {int((~q['has_pose']).sum())} without any pose "
                     f"(ranked by appearance alone), {int(q['gait_padded'].sum())} gait-padded (shorter than the "
                     f"window of {models.preprocessing['sequence_length']} + 1 frames)")
        warn_if_collapsed(q, "the queries")
    t = time.perf_counter()
    matches = search(q, gallery, args.top, fusion, use_gait=models.gait_on)
    timings["search"] = time.perf_counter() - t
    if matches.itself is not None and matches.itself.any():
        notes.append(f"{int((matches.itself > 0).sum())} of the {len(matches.itself)} queries are in the gallery "
                     "too (the same source): each is left out of its own ranking and evaluation")
    results = results_json(q, gallery, matches, desc, fusion, models.gait_on, notes, command="search")
    results["gallery"] = str(args.gallery)
    try:
        write_outputs(out, results, q, gallery, matches, inputs if args.annotate else [], timings, started,
                      max_frames=args.max_frames, sheet=not args.no_sheet)
    except BaseException:
        out.abandon()
        raise
    for note in notes:
        print(f"{PROG}: {note}")
    print_table(results)
    print(f"search: {len(results['queries'])} queries × {len(gallery)} gallery tracklets; stages: "
          + _format_timings(results["timings_s"]))
    print(f"→ {out.path}/: " + ", ".join(results["outputs"]))
    return results


def _fusion(args) -> FusionSpec:
    return FusionSpec(args.fusion, args.lambda_val, args.weight, args.score_norm).check()


def results_json(q: dict, gallery, m, models: dict, fusion: FusionSpec, use_gait: bool, notes: list[str],
                 command: str) -> dict:
    """The ``results.json`` content (see docs/reid.md for the schema)."""
    queries = []
    g_pid = gallery.column("person_id")
    for i in range(len(q["source"])):
        matches = []
        for r, j in enumerate(m.index[i].tolist()):
            rec = gallery.record(j)
            qp, gp = int(q["person_id"][i]), int(g_pid[j])
            gait = None if m.gait is None or not np.isfinite(m.gait[i, r]) else round(float(m.gait[i, r]), 6)
            matches.append({
                "rank": r + 1, "source": rec["source"],
                "fused": None if m.fused is None else round(float(m.fused[i, r]), 6),
                "appearance": round(float(m.appearance[i, r]), 6), "gait": gait,
                "appearance_rank": int(m.appearance_rank[i, r]),
                "gait_rank": None if gait is None else int(m.gait_rank[i, r]),
                "appearance_only": bool(m.appearance_only[i, r]), "frames": rec["frames"],
                "has_pose": rec["has_pose"] if use_gait else None,
                "person_id": gp if gp >= 0 else None, "same_person": (qp == gp) if qp >= 0 and gp >= 0 else None})
        qp = int(q["person_id"][i])
        queries.append({"source": str(q["source"][i]), "frames": int(q["frames"][i]),
                        "pose_frames": int(q["pose_frames"][i]) if use_gait else None,
                        "has_pose": bool(q["has_pose"][i]) if use_gait else None,
                        "gait_padded": bool(q["gait_padded"][i]) if use_gait else None,
                        "appearance_only": not (use_gait and bool(q["has_pose"][i])),
                        "person_id": qp if qp >= 0 else None,
                        "itself_in_gallery": bool(m.itself is not None and m.itself[i] > 0), "matches": matches})
    ev = None
    if m.evaluation is not None:
        e = m.evaluation
        ev = {"rank1": float(e.cmc[0]), "rank5": float(e.cmc[min(4, len(e.cmc) - 1)]), "mAP": float(e.mAP),
              "queries_evaluated": e.num_valid, "note": "queries whose person is in the gallery (gafnet.metrics)"}
    return {"format": RESULTS_FORMAT, "version": 1, "command": command, "queries": queries,
            "gallery_size": len(gallery), "models": models, "fusion": fusion.describe(use_gait),
            "lambda": fusion.lam if use_gait and fusion.kind == "concat" else None,
            "evaluation": ev, "notes": list(notes)}


def write_outputs(out: OutputFolder, results: dict, q: dict, gallery, m, inputs: list, timings: dict,
                  started: float, max_frames=None, also: tuple = (), sheet: bool = True) -> None:
    """results.json, the contact sheet page(s) and (--annotate) the annotated videos, all or nothing."""
    from .reid_sheet import annotate_video, page_name, sheet_pages

    t = time.perf_counter()
    names = []
    for p, rows in enumerate(sheet_pages(len(results["queries"]), SHEET_PER_PAGE) if sheet else []):
        names.append(page_name(p))
        draw_sheet(out.file(page_name(p)), results, q, gallery, m, rows, p)
    if sheet:
        timings["contact_sheet"] = time.perf_counter() - t
    t = time.perf_counter()
    for got in inputs:
        if got.kind != "video":
            continue
        name = f"annotated_{got.path.stem}.mp4"
        best = {}
        for qd in results["queries"]:
            if qd["source"].startswith(f"{got.path}#") and qd["matches"]:
                top = qd["matches"][0]
                d = top["fused"] if top["fused"] is not None else top["appearance"]
                best[qd["source"]] = f" -> {_short_source(top['source'], 18).replace('…', '..')} {d:.2f}"  # ASCII: OpenCV's font
        tracks = [{"track_id": tr.tracklet_id, "frame_numbers": tr.frame_numbers, "boxes": tr.boxes,
                   "label": f"{tr.tracklet_id}{best.get(tr.source, '')}"} for tr in got.tracklets]
        annotate_video(got.path, out.file(name), tracks, max_frames=max_frames)
        names.append(name)
    if inputs:
        timings["annotate"] = time.perf_counter() - t
    names.extend(also)  # written by the caller (the demo's gallery index)
    timings["total"] = time.perf_counter() - started
    results["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    results["outputs"] = ["results.json"] + names
    write_json(out.file("results.json"), results)
    out.commit()


def draw_sheet(path, results: dict, q: dict, gallery, m, rows, page: int) -> None:
    from .reid_sheet import contact_sheet

    items = []
    for i in rows:
        qd = results["queries"][i]
        thumbs = decode_thumbnails(q["thumbs"], q["thumb_offsets"], i)
        lines = [f"{qd['frames']} frames" + (f", {qd['pose_frames']} with a pose" if qd["pose_frames"] is not None else "")]
        if qd["appearance_only"] and qd["has_pose"] is not None:
            lines.append("appearance only: no pose in any frame")
        if qd.get("gait_padded"):
            lines.append("gait: padded (shorter than the window)")
        matches = []
        for r, mt in enumerate(qd["matches"]):
            j = int(m.index[i, r])
            rec = gallery.record(j, thumbnails=True)
            if mt["fused"] is not None:
                head = f"#{mt['rank']}  fused {mt['fused']:.3f}"
            else:
                head = f"#{mt['rank']}  d {mt['appearance']:.3f}"
            mlines = [_short_source(mt["source"], 30)]
            app = f"app {mt['appearance']:.3f} (#{mt['appearance_rank']})"
            if mt["gait"] is not None:
                mlines.append(f"{app}  gait {mt['gait']:.3f} (#{mt['gait_rank']})")
            elif mt["fused"] is not None:
                mlines.append(app)
                mlines.append("appearance only (no pose)")
            else:
                mlines.append(f"{mt['frames']} frames")
            matches.append({"thumbs": rec["thumbnails"], "title": head, "lines": mlines,
                            "correct": mt["same_person"], "appearance_only": mt["appearance_only"]})
        items.append({"label": f"QUERY {i + 1}", "lines": [_short_source(qd["source"], 40)] + lines, "thumbs": thumbs,
                      "matches": matches})
    total = len(results["queries"])
    app = results["models"]["appearance"]["label"]
    gait = results["models"]["gait"]
    fusion = results["fusion"]
    if fusion["kind"] == "concat":
        how = f"fused distance = GAF-Net Eq. 4, λ = {fusion['lambda']}"
    elif fusion["kind"] == "score":
        how = f"score fusion (1−w)·N(d_app) + w·N(d_gait), w = {fusion['weight']}, {fusion['norm']}"
    else:
        how = "ranked by appearance alone (squared Euclidean distance d)"
    title = f"reid.py {results['command']}: {how}"
    pages = f"  (queries {rows.start + 1}-{rows.stop} of {total})" if total > SHEET_PER_PAGE else ""
    ev = results.get("evaluation")
    score = f"; Rank-1 {100 * ev['rank1']:.1f} % over {ev['queries_evaluated']} queries" if ev else ""
    if gait["model"] != "off":
        gait_text = f"{gait['model']} ({gait.get('checkpoint')})"
    else:
        gait_text = "skipped (no weights)" if "no --gait_weights" in gait.get("note", "") else "off"
    subtitle = (f"appearance: {app}    gait: {gait_text}    gallery: {results['gallery_size']} tracklets{pages}{score}\n"
                "frames: green = same person as the query, red = another person, grey = ids unknown;  "
                "#k = rank, (#k) = rank by that distance alone")
    contact_sheet(path, items, title, subtitle)


def _short_source(source: str, width: int) -> str:
    """A source shortened for the sheet: ``clip.mp4#7`` or the last folders of a path."""
    video, sep, track = source.partition("#")
    name = (Path(video).name + sep + track) if sep else "/".join(Path(source).parts[-2:])
    return name if len(name) <= width else "…" + name[-(width - 1):]


def print_table(results: dict) -> None:
    for qd in results["queries"]:
        extra = "" if not qd["appearance_only"] or qd["has_pose"] is None else ", no pose: appearance only"
        print(f"query {qd['source']} ({qd['frames']} frames{extra}):")
        for mt in qd["matches"]:
            fused = "" if mt["fused"] is None else f"fused {mt['fused']:.3f}  "
            gait = "" if mt["gait"] is None else f"  gait {mt['gait']:.3f} (#{mt['gait_rank']})"
            mark = "" if mt["same_person"] is None else ("  ✓" if mt["same_person"] else "  ✗")
            only = "  [appearance only]" if mt["appearance_only"] and mt["fused"] is not None else ""
            print(f"  {mt['rank']:>3}  {_short_source(mt['source'], 44):<44}  {fused}appearance {mt['appearance']:.3f} "
                  f"(#{mt['appearance_rank']}){gait}{only}{mark}")
    ev = results.get("evaluation")
    if ev:
        print(f"Rank-1 {100 * ev['rank1']:.1f} %, Rank-5 {100 * ev['rank5']:.1f} %, mAP {100 * ev['mAP']:.1f} % over "
              f"{ev['queries_evaluated']} queries whose person is in the gallery")


# -------------------------------------------------------------------------------------------------- demo
def run_demo(args) -> dict:
    """Track every walker of the shipped clip; each track's second half goes into an index (the gallery), its
    first half is the query; the track id is the identity (green/red frames, Rank-1)."""
    from .detection import HogPeopleDetector
    from .video import track_video

    fusion = _fusion(args)
    if args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}")
    _check_video_options(args)
    clip = next(iter(sorted(DEMO_DIR.glob("*.mp4"))), None)
    if clip is None:
        raise InputError(f"the demo clip is missing from {DEMO_DIR}")
    out = OutputFolder(args.out or "reid_demo")
    started = time.perf_counter()
    models = _models(args)
    desc = models.describe()
    timings: dict[str, float] = {}
    try:
        result = track_video(clip, 1, models.backend() if models.gait_on else None,
                             detector=HogPeopleDetector(upscale=args.hog_upscale, scale=args.demo_hog_scale),
                             max_frames=args.max_frames, progress=not args.quiet)
    finally:
        models.close()
    _add_times(timings, {k: v for k, v in result.timings.items() if v > 0 or k != "pose"})
    half = max(1, args.demo_min_half)
    long_ = [t for t in result.tracklets if len(t) >= 2 * half]
    halves = {"first": [], "second": []}
    for t in long_:
        h = len(t) // 2
        for part, sl in (("first", slice(0, h)), ("second", slice(h, None))):
            halves[part].append(Tracklet(
                f"{clip.name}#{t.tracklet_id}:{part}", t.frames[sl], t.row_names[sl], t.frame_numbers[sl],
                person_id=t.tracklet_id, camera_id=1 if part == "first" else 2, tracklet_id=t.tracklet_id,
                boxes=t.boxes[sl], poses=None if t.poses is None else t.poses[sl],
                source=f"{clip.name}#{t.tracklet_id} ({part} half)"))
    if not long_:
        raise InputError(f"{clip}: no track of at least {2 * half} frames in the first {result.frames} frames; "
                         "read more frames (--max_frames)")
    gallery_records = records_of(halves["second"], models, timings)
    q = records_of(halves["first"], models, timings)
    warn_if_collapsed(concat_records([gallery_records, q]), clip.name)
    try:
        index_dir = out.file("gallery_index")
        t = time.perf_counter()
        writer = IndexWriter(index_dir, desc)
        writer.add(gallery_records, {"input": f"{clip.name} (second halves)", "kind": "demo",
                                     "identity": input_identity(clip), "summary": f"{len(long_)} second halves"})
        gallery = GalleryIndex.open(index_dir)
        timings["index_write"] = time.perf_counter() - t
        t = time.perf_counter()
        matches = search(q, gallery, min(args.top, len(gallery)), fusion, use_gait=models.gait_on)
        timings["search"] = time.perf_counter() - t
        notes = [models.gait_note] if models.gait_note else []
        results = results_json(q, gallery, matches, desc, fusion, models.gait_on, notes, command="demo")
        results["gallery"] = f"{clip.name}: second half of every track of ≥ {2 * half} frames (index: gallery_index/)"
        results["demo"] = {"clip": clip.name, "frames": result.frames, "tracks": len(result.tracklets),
                           "tracks_used": len(long_), "detector": result.detector,
                           "split": "first half of each track = query, second half = gallery; track id = identity"}
        annotated = InputTracklets(clip, "video", result.tracklets, video=result)
        write_outputs(out, results, q, gallery, matches, [annotated] if not args.no_annotate else [], timings,
                      started, max_frames=args.max_frames, also=("gallery_index",))
    except BaseException:
        out.abandon()
        raise
    a = desc["appearance"]
    print(f"demo: {clip.name} ({result.frames} frames of OpenCV's vtest.avi, see ATTRIBUTION.txt): "
          f"{len(result.tracklets)} tracks, {len(long_)} of at least {2 * half} frames; first halves = queries, "
          "second halves = gallery (the track id is the identity)")
    print(f"  appearance: {a['label']}" + ("" if a["weight_free"] else f" ({a['model']})"))
    print(f"  gait: {desc['gait']['model']}" + (f" — {models.gait_note}" if models.gait_note else ""))
    print("  detector: OpenCV HOG people detector (no weights file); tracker: IoU + Hungarian")
    print_table(results)
    print(f"demo total {results['timings_s']['total']:.1f} s; stages: " + _format_timings(results["timings_s"]))
    print(f"→ {out.path}/: " + ", ".join(results["outputs"]))
    return results


# ---------------------------------------------------------------------------------------------------- CLI
def _common(p):
    add = p.add_argument
    add("--appearance", default="colour", metavar="MODEL", help="appearance model: colour (WEIGHT-FREE colour histograms, default) "
        "or a torchreid model name (osnet_x1_0, …) with --appearance_weights")
    add("--appearance_weights", default=None, metavar="FILE", help="torchreid checkpoint file for --appearance (a model-zoo .pth)")
    add("--gait_weights", default=None, metavar="CKPT", help="GaitGraph checkpoint: best.pt of gaitgraph/src/train.py or the original "
        "GaitGraph release (python -m gafnet.data download gaitgraph-weights); without it gait is skipped")
    add("--gait", choices=("auto", "off"), default="auto", help="auto: gait when --gait_weights is given (default); "
        "off: no gait, said explicitly")
    add("--seq_len", type=int, default=0, metavar="N", help="appearance: frames per tracklet, spread evenly (default 0 = all)")
    add("--pose_upscale", type=float, default=1.0, help="gait: enlarge each crop by this factor before MediaPipe "
        "(default 1)")
    add("--hog_upscale", type=float, default=2.0, help="videos: HOG frame enlargement (default 2: people down to "
        "~60 px tall)")
    add("--hog_scale", type=float, default=1.05, help="videos: HOG pyramid step (default 1.05; 1.1 is about twice "
        "as fast and finds fewer people)")
    add("--max_frames", type=int, default=None, metavar="N", help="videos: read at most this many frames (default all)")
    add("--identity", choices=("path", "folder", "none"), default="path", help="person ids of tracklet folders: path "
        "= from iLIDS/PRID-style names (cam2/person007 → 7; default), folder = the tracklet folder's name "
        "(query/T07 and gallery/T07 are one person), none = unknown")
    add("--crops", default=None, metavar="DIR", help="pose CSV inputs: the crops' folder (default: <csv>_crops/ for videos, the "
        "dataset folder of the .report.json for datasets)")
    add("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    add("--quiet", action="store_true", help="no progress bars")


def _fusion_options(p):
    p.add_argument("--fusion", choices=("concat", "score"), default="concat", help="concat: GAF-Net Eq. 4 "
                   "(d²_app + λ²·d²_gait)/(1 + λ²) (default); score: sum rule (1−w)·N(d_app) + w·N(d_gait) of "
                   "per-query normalised Euclidean distances")
    p.add_argument("--lambda_val", type=float, default=DEFAULT_LAMBDA, metavar="λ", help=f"concat: gait weight λ (default "
                   f"{DEFAULT_LAMBDA}, the paper's for PiT)")
    p.add_argument("--weight", type=float, default=None, metavar="W", help="score: gait weight w in [0, 1] (required with "
                   "--fusion score)")
    p.add_argument("--score_norm", choices=("minmax", "zscore"), default="minmax",
                   help="score: per-query normalisation N (default minmax)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Re-identify people across videos: tracklets → appearance + "
                                "gait → fused ranking (GAF-Net Eq. 4). See docs/reid.md.",
                                epilog="options of index/search go after the command: reid.py search --help")
    p.add_argument("--demo", action="store_true", help="run offline on the shipped vtest clip (outputs in --out, "
                   "default reid_demo/)")
    p.add_argument("--out", default=None, metavar="DIR", help="demo: output folder (default reid_demo/)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="demo: matches per query (default 5)")
    p.add_argument("--demo_min_half", type=int, default=8, metavar="N", help="demo: frames a track's half needs (default 8)")
    p.add_argument("--demo_hog_scale", type=float, default=1.1, help="demo: HOG pyramid step (default 1.1)")
    p.add_argument("--no_annotate", action="store_true", help="demo: no annotated copy of the clip")
    _fusion_options(p)
    _common(p)
    sub = p.add_subparsers(dest="command", metavar="{index,search}")
    pi = sub.add_parser("index", help="add videos, tracklet folders or pose CSVs to a gallery index",
                        description="Add videos, tracklet folders or pose CSVs (+ crops) to a gallery index (a "
                        "folder); inputs already in it, unchanged, are skipped.")
    pi.add_argument("inputs", nargs="+", help="videos, folders of tracklet folders, pose CSVs of "
                    "tools/extract_poses.py")
    pi.add_argument("--out", required=True, metavar="INDEX", help="the index folder (created, or extended if it exists), e.g. "
                    "gallery.npz or gallery_index/")
    _common(pi)
    ps = sub.add_parser("search", help="rank query tracklets against an index",
                        description="Rank every query tracklet against a gallery index; writes results.json and "
                        "contact_sheet.png.")
    ps.add_argument("inputs", nargs="+", help="query videos, folders of tracklet folders, pose CSVs")
    ps.add_argument("--gallery", required=True, metavar="INDEX", help="index folder written by reid.py index")
    ps.add_argument("--top", type=int, default=10, metavar="K", help="matches per query (default 10)")
    ps.add_argument("--out", default="results", metavar="DIR", help="output folder: results.json + contact_sheet.png (default "
                    "results/); must be new, empty, or an earlier results folder")
    ps.add_argument("--no_sheet", action="store_true", help="results.json only, no contact sheet (scripts)")
    ps.add_argument("--annotate", action="store_true", help="also write a copy of each query video with the track "
                    "ids and best matches drawn (annotated_<video>.mp4)")
    _fusion_options(ps)
    _common(ps)
    return p


def run(args):
    if args.demo:
        if args.command:
            raise InputError("--demo takes no command; run reid.py --demo, or reid.py index/search")
        return run_demo(args)
    if args.command == "index":
        return run_index(args)
    if args.command == "search":
        return run_search(args)
    raise InputError("give a command: index, search, or --demo (see --help)")


def main(argv=None) -> int:
    return cli_main(PROG, build_parser(), run, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
