"""Videos → person tracklets: decode, detect, track, crop, estimate poses; and their files.

Per video (camera id = the video's position on the command line, from 1; person = track id):

1. decode every frame (:func:`gafnet.pixels.media.iter_video_frames`; a truncated video is refused);
2. detect people: OpenCV HOG (:class:`~.detection.HogPeopleDetector`) for the single-person ``mediapipe``
   backend, or the backend itself (``torchvision`` / ``yolo`` give boxes and poses together);
3. track (:class:`~.detection.IouTracker`); frames a track missed are interpolated and flagged;
4. crop each track's box (enlarged by a margin) and, for ``mediapipe``, estimate the pose on the crop;
   poses are stored in frame pixels.

Tracklets shorter than ``min_length`` frames (default :data:`MIN_TRACKLET_FRAMES`) are usually false
detections or people crossing the picture edge: they are kept, flagged ``short`` and counted, never dropped.

Files under ``--out`` for ``clip.mp4``: ``clip.csv`` (GaitGraph pose CSV, one row per frame with a pose, named
``cam1_person0007_00042.png``: camera, track, frame index from 0), ``clip.tracks.json`` (every track's
frames, boxes, interpolation flags, pose flags, detector and backend), and with ``--save_crops``
``clip_crops/cam1/person0007/cam1_person0007_00042.png`` (an iLIDS-VID-style tree, readable as tracklet folders).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, write_json
from ..errors import InputError
from .detection import HogPeopleDetector, IouTracker, expand_box
from .media import cv2_module, iter_video_frames, open_video
from .pose_backends import PoseBackend, empty_poses
from .tracklet import Tracklet

MIN_TRACKLET_FRAMES = 8
TRACKS_FORMAT = "gafnet-video-tracks"


def row_name(camera: int, track: int, frame: int, style: str = "ilids") -> str:
    """The pose-CSV image name of one frame of a video track (``ilids``: cam1_person0007_00042.png; ``mars``:
    0007C1T0001F042.jpg)."""
    if style == "mars":
        return f"{track:04d}C{camera}T0001F{frame:03d}.jpg"
    return f"cam{camera}_person{track:04d}_{frame:05d}.png"


@dataclass
class VideoTracks:
    """What one video gave: its tracklets (crops as arrays, boxes and poses in frame pixels) and timings."""

    path: str
    camera_id: int
    width: int
    height: int
    fps: float
    frames: int
    tracklets: list[Tracklet]
    interpolated: dict[int, np.ndarray]
    short: set[int]
    timings: dict[str, float] = field(default_factory=dict)
    detector: dict = field(default_factory=dict)
    backend: dict = field(default_factory=dict)
    min_length: int = MIN_TRACKLET_FRAMES

    @property
    def stem(self) -> str:
        return Path(self.path).stem

    def summary(self) -> str:
        poses = sum(int(t.pose_found.sum()) for t in self.tracklets)
        crops = sum(len(t) for t in self.tracklets)
        return (f"{self.path}: {self.frames} frames, {len(self.tracklets)} tracklets ({len(self.short)} shorter than "
                f"{self.min_length} frames, kept and flagged), {crops} crops, {crops - poses} without a pose")


def track_video(path, camera_id: int, backend: PoseBackend | None, detector: HogPeopleDetector | None = None,
                tracker: IouTracker | None = None, min_length: int = MIN_TRACKLET_FRAMES, max_frames: int | None = None,
                name_style: str = "ilids", progress: bool = False, margin: tuple[float, float] = (0.1, 0.05),
                pose_batch: int = 16) -> VideoTracks:
    """Detect, track and (with ``backend``) estimate poses in one video; see the module docstring."""
    info = open_video(path)
    multi = backend is not None and backend.multi_person
    if not multi and detector is None:
        detector = HogPeopleDetector()
    tracker = tracker or IouTracker()
    timings = {"decode": 0.0, "detect": 0.0, "track": 0.0, "crop": 0.0, "pose": 0.0}
    buffer: deque = deque(maxlen=tracker.max_age + 2)  # recent frames, to crop interpolated boxes
    crops: dict[int, list[np.ndarray]] = {}
    det_poses: dict[int, list[np.ndarray]] = {}
    tracks_by_id = {}
    frames_iter = iter_video_frames(path, max_frames)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=info.frame_count or None, desc=Path(path).name, unit="frame", dynamic_ncols=True)
    count = 0
    t0 = time.perf_counter()
    try:
        for index, frame in frames_iter:
            t1 = time.perf_counter()
            timings["decode"] += t1 - t0
            buffer.append((index, frame))
            if multi:
                det = backend.detect(frame)
                boxes, scores, poses = det.boxes, det.scores, det.poses
            else:
                boxes, scores = detector.detect(frame)
                poses = None
            t2 = time.perf_counter()
            timings["detect"] += t2 - t1
            assigned = tracker.update(index, boxes, scores)
            t3 = time.perf_counter()
            timings["track"] += t3 - t2
            frames_by_index = dict(buffer)
            for det_index, tid in assigned:
                track = next(t for t in tracker.active if t.track_id == tid)
                tracks_by_id[tid] = track
                have = crops.setdefault(tid, [])
                pose_list = det_poses.setdefault(tid, [])
                for k in range(len(have), len(track.frames)):
                    f = track.frames[k]
                    image = frames_by_index.get(f)
                    if image is None:  # cannot happen while the buffer holds max_age + 2 frames
                        raise RuntimeError(f"frame {f} left the buffer")
                    x, y, w, h = expand_box(track.boxes[k], info.width, info.height, *margin)
                    have.append(np.ascontiguousarray(image[y:y + h, x:x + w]))
                    if multi:
                        di = track.detection_index[k]
                        pose_list.append(poses[di] if di >= 0 and poses is not None else empty_poses(1)[0])
            timings["crop"] += time.perf_counter() - t3
            count += 1
            if bar is not None:
                bar.update(1)
            t0 = time.perf_counter()
    finally:  # a bad frame ends the bar before its error line is printed
        if bar is not None:
            bar.close()
    tracks = tracker.finish()
    tracklets, interpolated, short = [], {}, set()
    t4 = time.perf_counter()
    for track in tracks:
        tid = track.track_id
        n = len(crops.get(tid, []))
        frames = track.frames[:n]
        crop_boxes = np.stack([expand_box(b, info.width, info.height, *margin) for b in track.boxes[:n]]).astype(float)
        if multi:
            poses = np.stack(det_poses[tid]).astype(np.float32)
        elif backend is not None:
            poses = np.concatenate([backend.estimate_crops(crops[tid][b:b + pose_batch])
                                    for b in range(0, n, pose_batch)]).astype(np.float32)
            poses[:, :, 0] += crop_boxes[:, None, 0]
            poses[:, :, 1] += crop_boxes[:, None, 1]
        else:
            poses = None
        tracklet = Tracklet(name=f"{Path(path).name}#{tid}", frames=crops[tid],
                            row_names=[row_name(camera_id, tid, f, name_style) for f in frames],
                            frame_numbers=frames, camera_id=camera_id, tracklet_id=tid, boxes=crop_boxes,
                            poses=poses, source=str(path))
        tracklets.append(tracklet)
        interpolated[tid] = track.interpolated[:n]
        if n < min_length:
            short.add(tid)
    timings["pose"] = time.perf_counter() - t4 if (backend is not None and not multi) else 0.0
    return VideoTracks(str(path), camera_id, info.width, info.height, info.fps, count, tracklets, interpolated, short,
                       timings, (detector.describe() if detector is not None else
                                 {"detector": f"{backend.name} pose backend (boxes and poses together)"}),
                       backend.describe() if backend is not None else {}, min_length)


# ---------------------------------------------------------------------------------------------------- files
def tracks_json(result: VideoTracks) -> dict:
    """The ``<video>.tracks.json`` content: per track, frames, crop boxes and flags."""
    tracks = []
    for t in result.tracklets:
        tid = t.tracklet_id
        found = t.pose_found
        tracks.append({
            "track_id": tid, "camera_id": result.camera_id, "frames": t.frame_numbers.tolist(),
            "boxes_xywh": np.round(t.boxes, 1).tolist(), "interpolated": result.interpolated[tid].astype(bool).tolist(),
            "pose_found": found.tolist(), "frames_without_pose": int((~found).sum()) if t.poses is not None else None,
            "short": tid in result.short, "row_name_first": t.row_names[0] if t.row_names else None})
    return {"format": TRACKS_FORMAT, "version": 1, "video": result.path, "camera_id": result.camera_id,
            "width": result.width, "height": result.height, "fps": result.fps, "frames": result.frames,
            "min_length": result.min_length, "short_tracklets": len(result.short), "tracklets": len(result.tracklets),
            "detector": result.detector, "pose_backend": result.backend,
            "timings_s": {k: round(v, 3) for k, v in result.timings.items()}, "tracks": tracks}


def output_paths(out_dir, video_path) -> dict[str, Path]:
    stem = Path(video_path).stem
    out_dir = Path(out_dir)
    return {"csv": out_dir / f"{stem}.csv", "json": out_dir / f"{stem}.tracks.json", "crops": out_dir / f"{stem}_crops"}


def write_crops(result: VideoTracks, target: Path) -> None:
    """The crops as ``target/cam<c>/person<t>/<row name>.png``, written in a temporary folder, then renamed."""
    cv2 = cv2_module()
    if target.exists():
        raise InputError(f"{target} exists; remove it or choose another --out (crops are never overwritten)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(target, kept=f"nothing was kept in {target}") as tmp:
        for t in result.tracklets:
            folder = tmp / f"cam{result.camera_id}" / f"person{t.tracklet_id:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for name, crop in zip(t.row_names, t.frames):
                png = folder / (Path(name).stem + ".png")
                if not cv2.imwrite(str(png), crop):
                    raise InputError(f"cannot write {png}; nothing was kept in {target}")


def write_video_outputs(result: VideoTracks, out_dir, save_crops: bool = False) -> dict[str, Path]:
    """Pose CSV + tracks JSON (+ crops): each file atomic."""
    from ..gait.poses import write_pose_csv

    paths = output_paths(out_dir, result.path)
    names, rows = [], []
    for t in result.tracklets:
        if t.poses is None:
            continue
        keep = t.pose_found
        names.extend(n for n, k in zip(t.row_names, keep) if k)
        rows.append(t.poses[keep])
    if save_crops:
        write_crops(result, paths["crops"])
    write_pose_csv(paths["csv"], names, np.concatenate(rows) if rows else np.zeros((0, 17, 3)))
    write_json(paths["json"], tracks_json(result))
    return paths


def load_tracks_json(path) -> dict:
    """Read a ``.tracks.json`` written here; InputError if it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable tracks JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != TRACKS_FORMAT:
        raise InputError(f"{path}: not a tracks file written by tools/extract_poses.py video")
    return data
