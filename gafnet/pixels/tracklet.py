"""The one in-memory tracklet type, shared by pose extraction, appearance extraction and ``reid.py``.

A tracklet is one person seen by one camera over consecutive frames:

- ``frames``: image paths (dataset crops, tracklet folders) or decoded BGR uint8 arrays (video crops);
- ``boxes``: (T, 4) float ``x, y, w, h`` in the coordinates of the frame the crop came from, or None when the
  frames are already crops (image-folder datasets: the box is the whole image);
- ``poses``: (T, 17, 3) float32 COCO-17 ``x, y, confidence`` in the same coordinates as ``boxes`` (crop pixels for
  crops), NaN for frames without a detected pose, or None before pose estimation;
- ``row_names``: the image name of each frame in a GaitGraph pose CSV (``cam1_person001_00317.png``,
  ``0001C1T0001F001.jpg``), which is how the pose readers find person, camera and tracklet;
- ``fixed_size``: the dataset layouts' crops share one size per tracklet (iLIDS-VID 64 × 128, MARS 128 × 256),
  checked as frames are decoded; tracklet folders cut from videos may vary;
- ids: ``person_id``, ``camera_id``, ``tracklet_id``; None when unknown (a video's tracks have no person id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .media import read_image


@dataclass
class Tracklet:
    name: str
    frames: list
    row_names: list[str]
    frame_numbers: np.ndarray
    person_id: int | None = None
    camera_id: int | None = None
    tracklet_id: int | None = None
    boxes: np.ndarray | None = None
    poses: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    fixed_size: bool = False  # dataset crops: one size per tracklet (checked when decoded)
    _first_size: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.frame_numbers = np.asarray(self.frame_numbers, dtype=np.int64)
        if not (len(self.frames) == len(self.row_names) == len(self.frame_numbers)):
            raise ValueError(f"tracklet {self.name}: frames, row_names and frame_numbers differ in length")
        if self.boxes is not None:
            self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(len(self.frames), 4)

    def __len__(self) -> int:
        return len(self.frames)

    def image(self, index: int) -> np.ndarray:
        """Frame ``index`` as a BGR uint8 array (decoded from its file if it is a path)."""
        frame = self.frames[index]
        if isinstance(frame, np.ndarray):
            return frame
        return read_image(frame)

    def images(self, indices=None) -> list[np.ndarray]:
        """The frames (or those at ``indices``), decoded. With ``fixed_size`` (the datasets' crops) every frame must
        have the size of the first one decoded: InputError naming both files otherwise."""
        indices = list(range(len(self)) if indices is None else indices)
        out = [self.image(i) for i in indices]
        if self.fixed_size:
            for i, img in zip(indices, out):
                if self._first_size is None:
                    self._first_size = (i, img.shape[:2])
                    continue
                j, (h, w) = self._first_size
                if img.shape[:2] != (h, w):
                    raise InputError(f"frames of mixed sizes in tracklet {self.name}: {self.frames[j]} is {w}x{h} "
                                     f"but {self.frames[i]} is {img.shape[1]}x{img.shape[0]}; one tracklet's crops "
                                     "must share one size (resize them, or split the folder)")
        return out

    @property
    def pose_found(self) -> np.ndarray:
        """(T,) bool: frames with a pose (all False before pose estimation)."""
        if self.poses is None:
            return np.zeros(len(self), dtype=bool)
        return np.isfinite(self.poses[:, :, 0]).all(axis=1)

    def label(self) -> str:
        """``name`` plus the known ids, for messages."""
        ids = [f"{k}={v}" for k, v in (("person", self.person_id), ("camera", self.camera_id)) if v is not None]
        return self.name + (f" ({', '.join(ids)})" if ids else "")

    def source_path(self) -> str:
        if self.source:
            return self.source
        first = self.frames[0] if self.frames else ""
        return str(Path(first).parent) if not isinstance(first, np.ndarray) else self.name


def sample_indices(length: int, seq_len: int) -> np.ndarray:
    """``seq_len`` frame indices spread evenly over a tracklet (all frames when ``seq_len`` is 0 or ≥ length).

    torchreid's ``evenly`` video sampling picks every (length // seq_len)-th frame; here the indices are spread
    over the whole tracklet (first and last frames included), which covers a walk cycle the same way.
    """
    if seq_len <= 0 or seq_len >= length:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, seq_len)).astype(np.int64))
