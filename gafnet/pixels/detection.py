"""Person detection without weights (OpenCV's HOG people detector) and multi-object tracking (IoU + Hungarian).

Detector. :class:`HogPeopleDetector` is Dalal & Triggs' HOG + linear SVM pedestrian detector (CVPR 2005) as
OpenCV ships it (``cv2.HOGDescriptor_getDefaultPeopleDetector``; OpenCV 4.x — the 5.x wheels no longer have
``cv2.HOGDescriptor``). Its window is 64 × 128 pixels with a margin around the person, so frames are enlarged
(``upscale``, default 2) to find people under ~100 px tall; overlapping boxes are merged by non-maximum
suppression (``cv2.dnn.NMSBoxes``). It runs offline on any CPU; it misses people more often than a CNN.

Tracker. No well-kept tracking library installs beside this project's dependencies with a single cv2
distribution (``trackers`` needs ``opencv-python``, ``supervision`` no longer ships ByteTrack, BoxMOT is AGPL
and pins ``gdown<6``), so :class:`IouTracker` is a small SORT-style tracker (Bewley et al., ICIP 2016) without
the Kalman filter: each track predicts its next box from its last box and a damped velocity; detections are
assigned to tracks by the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on 1 − IoU; a pair is
accepted when IoU ≥ ``iou_threshold``. As in ByteTrack (Zhang et al., ECCV 2022), low-score detections may only
continue existing tracks, never start one. A track not matched for more than ``max_age`` frames ends. Frames
a track missed inside its life are filled by linear interpolation of the box and flagged as interpolated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .media import cv2_module


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of ``x, y, w, h`` boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


WINDOW = (64, 128)  # (width, height) of the default people detector's window


class HogPeopleDetector:
    """OpenCV's default HOG people detector; :meth:`detect` → (N, 4) boxes ``x, y, w, h`` and (N,) SVM scores."""

    name = "opencv-hog"

    def __init__(self, upscale: float = 2.0, scale: float = 1.05, hit_threshold: float = 0.0,
                 min_score: float = 0.5, nms_iou: float = 0.4, win_stride: int = 8):
        cv2 = cv2_module()
        if not hasattr(cv2, "HOGDescriptor"):
            from ..errors import InputError

            raise InputError(f"this OpenCV ({cv2.__version__}) has no cv2.HOGDescriptor (removed in 5.x); install "
                             "OpenCV 4.x: pip install -r requirements-pixels.txt")
        self._cv2 = cv2
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.upscale, self.scale, self.hit_threshold = float(upscale), float(scale), float(hit_threshold)
        self.min_score, self.nms_iou, self.win_stride = float(min_score), float(nms_iou), int(win_stride)

    def describe(self) -> dict:
        return {"detector": "OpenCV HOG people detector (Dalal & Triggs 2005), no weights file",
                "upscale": self.upscale, "scale": self.scale, "min_score": self.min_score}

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cv2 = self._cv2
        image = frame if self.upscale == 1 else cv2.resize(frame, None, fx=self.upscale, fy=self.upscale,
                                                           interpolation=cv2.INTER_LINEAR)
        if image.shape[0] < WINDOW[1] or image.shape[1] < WINDOW[0]:
            return np.zeros((0, 4)), np.zeros(0)  # smaller than the detection window: OpenCV would abort the process
        rects, weights = self._hog.detectMultiScale(image, hitThreshold=self.hit_threshold,
                                                    winStride=(self.win_stride, self.win_stride), padding=(8, 8),
                                                    scale=self.scale)
        if len(rects) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / self.upscale
        scores = np.asarray(weights, dtype=np.float64).reshape(-1)
        strong = scores >= self.min_score
        boxes, scores = boxes[strong], scores[strong]
        if len(boxes) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.0, self.nms_iou)
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)
        return boxes[keep], scores[keep]


@dataclass
class Track:
    track_id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    detection_index: list[int] = field(default_factory=list)  # index into that frame's detections; −1 interpolated
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    misses: int = 0

    def predicted(self) -> np.ndarray:
        return self.boxes[-1] + self.velocity * (1 + self.misses)

    def add(self, frame: int, box: np.ndarray, score: float, det_index: int, smoothing: float = 0.5) -> None:
        if self.frames:
            gap = frame - self.frames[-1]
            step = (box - self.boxes[-1]) / gap
            self.velocity = smoothing * self.velocity + (1 - smoothing) * step
            for k in range(1, gap):  # fill the frames this track missed
                self.frames.append(self.frames[-1] + 1)
                self.boxes.append(self.boxes[-1] + step)
                self.scores.append(float("nan"))
                self.detection_index.append(-1)
        self.frames.append(frame)
        self.boxes.append(np.asarray(box, dtype=np.float64))
        self.scores.append(float(score))
        self.detection_index.append(det_index)
        self.misses = 0

    @property
    def interpolated(self) -> np.ndarray:
        return np.asarray(self.detection_index) < 0


class IouTracker:
    """Frame-by-frame IoU + Hungarian association (see the module docstring); :meth:`finish` → every track."""

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 5, new_track_score: float = 1.0):
        self.iou_threshold, self.max_age, self.new_track_score = float(iou_threshold), int(max_age), float(new_track_score)
        self.active: list[Track] = []
        self.done: list[Track] = []
        self._next_id = 1

    def update(self, frame: int, boxes: np.ndarray, scores: np.ndarray) -> list[tuple[int, int]]:
        """Feed the detections of one frame; returns (detection index, track id) of every matched or new track."""
        from scipy.optimize import linear_sum_assignment

        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        assigned: list[tuple[int, int]] = []
        free = set(range(len(boxes)))
        if self.active and len(boxes):
            predicted = np.stack([t.predicted() for t in self.active])
            iou = iou_matrix(predicted, boxes)
            rows, cols = linear_sum_assignment(1.0 - iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.iou_threshold:
                    self.active[r].add(frame, boxes[c], scores[c], int(c))
                    assigned.append((int(c), self.active[r].track_id))
                    free.discard(int(c))
        matched = {tid for _, tid in assigned}
        still = []
        for track in self.active:
            if track.track_id not in matched:
                track.misses += 1
            (still if track.misses <= self.max_age else self.done).append(track)
        self.active = still
        for c in sorted(free):
            if scores[c] >= self.new_track_score:
                track = Track(self._next_id)
                self._next_id += 1
                track.add(frame, boxes[c], scores[c], c)
                self.active.append(track)
                assigned.append((c, track.track_id))
        return assigned

    def finish(self) -> list[Track]:
        tracks = sorted(self.done + self.active, key=lambda t: t.track_id)
        self.done, self.active = [], []
        return tracks


def expand_box(box: np.ndarray, width: int, height: int, margin_x: float = 0.1, margin_y: float = 0.05) -> np.ndarray:
    """``x, y, w, h`` enlarged by a margin on every side, clipped to the frame, as integers (a crop)."""
    x, y, w, h = [float(v) for v in box]
    x0, x1 = max(0.0, x - margin_x * w), min(float(width), x + w + margin_x * w)
    y0, y1 = max(0.0, y - margin_y * h), min(float(height), y + h + margin_y * h)
    x0, y0 = int(np.floor(x0)), int(np.floor(y0))
    x1, y1 = max(x0 + 1, int(np.ceil(x1))), max(y0 + 1, int(np.ceil(y1)))
    return np.asarray([x0, y0, x1 - x0, y1 - y0], dtype=np.int64)
