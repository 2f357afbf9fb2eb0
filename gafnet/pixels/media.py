"""Reading images and videos, with one clear :class:`~gafnet.errors.InputError` line per bad file.

OpenCV (``cv2``) decodes both; it is imported lazily. ``cv2.imread`` returns ``None`` for a file it cannot
decode and decodes a truncated JPEG silently (a grey lower part): :func:`read_image` refuses both. A video
that OpenCV cannot open, that holds no frame, or that ends before the frame count its header declares
(a truncated download) is refused by :func:`open_video` / :func:`iter_video_frames`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..cache import check_regular_file
from ..errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm", ".wmv", ".mts", ".ts")
#: A video may end this many frames before its header's count (containers round it) without being called truncated.
FRAME_COUNT_SLACK = 2


def cv2_module():
    """``import cv2`` with a one-line error saying how to install it."""
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a requirement
        raise InputError(f"OpenCV (cv2) is needed for images and videos but cannot be imported ({exc}); "
                         "install the pixel pipeline: pip install -r requirements-pixels.txt") from None
    return cv2


def is_image_name(name: str | os.PathLike) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def is_video_name(name: str | os.PathLike) -> bool:
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def _jpeg_truncated(data: bytes) -> bool:
    """A JPEG whose end-of-image marker (FF D9) is missing from its last bytes was cut short."""
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 BGR image; InputError naming the file if it is not a readable, complete image."""
    cv2 = cv2_module()
    path = check_regular_file(path, "image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if not data:
        raise InputError(f"{path}: empty file, not an image; remove it or replace it with the frame")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: not an image OpenCV can decode (damaged, or another kind of file); "
                         "remove it or replace it with the frame")
    if _jpeg_truncated(data):
        raise InputError(f"{path}: truncated JPEG (no end-of-image marker); the lower part of the picture is "
                         "missing: replace the file")
    return image


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image, by decoding it (refuses bad files as :func:`read_image`)."""
    h, w = read_image(path).shape[:2]
    return w, h


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    frame_count: int  # as the container's header says (0 when it does not say)


def _capture(path: Path):
    cv2 = cv2_module()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"{path}: not a video OpenCV can open (another kind of file, or truncated: a cut-off MP4 "
                         "loses the index at its end); check the file or convert it, e.g. ffmpeg -i IN -c:v mpeg4 OUT.mp4")
    return cap


def open_video(path: str | os.PathLike) -> VideoInfo:
    """The video's size, frame rate and declared frame count; InputError if OpenCV cannot open it."""
    cv2 = cv2_module()
    path = check_regular_file(path, "video")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file, not a video")
    cap = _capture(path)
    try:
        info = VideoInfo(str(path), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         float(cap.get(cv2.CAP_PROP_FPS) or 0.0), max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))))
        ok, _ = cap.read()
    finally:
        cap.release()
    if not ok or info.width <= 0 or info.height <= 0:
        raise InputError(f"{path}: OpenCV opens it but decodes no frame (not a video, empty, or truncated)")
    return info


def iter_video_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index from 0, BGR frame) for every frame; InputError at the end if the video was cut short."""
    info = open_video(path)
    cap = _capture(Path(path))
    count = 0
    try:
        while max_frames is None or count < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if frame.shape[0] != info.height or frame.shape[1] != info.width:
                raise InputError(f"{path}: frame {count} is {frame.shape[1]}x{frame.shape[0]} but the video is "
                                 f"{info.width}x{info.height}; re-encode it")
            yield count, frame
            count += 1
    finally:
        cap.release()
    wanted = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
    if info.frame_count and count + FRAME_COUNT_SLACK < wanted:
        raise InputError(f"{path}: truncated video: its header declares {info.frame_count} frames but only {count} "
                         "could be decoded; download or copy it again (nothing was written for it)")
