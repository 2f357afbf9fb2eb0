"""Pose-sequence augmentations of GaitGraph (Teepe et al. 2021), vectorised over frames with numpy.

Every transform takes a (T, V, C) = (frames, 17 joints, x/y/confidence) array and returns a new array (the
input is never modified). Randomness comes from an explicit ``np.random.Generator`` passed as
``transform(data, rng=rng)``, so a training run is reproducible (see :class:`gafnet.gait.poses.PoseDataset`,
which derives one generator per (seed, epoch, index)). Without ``rng`` a fresh unseeded generator is used.

Training order and defaults are the original's (the original GaitGraph code: Augmentations):
MirrorPoses(0.5) → FlipSequence(0.5) → RandomSelectSequence(L) → ShuffleSequence(off) → PointNoise(0.05)
→ JointNoise → MultiInput → ToTensor. Validation/extraction: SelectSequenceCenter(L) → MultiInput → ToTensor.

The original has three quirks. Each is reproduced by default, and the corrected behaviour is one flag away:

=====================  ======================================  =========================================
transform              original (default here)                 corrected (flag)
=====================  ======================================  =========================================
MirrorPoses            mirrors x, keeps joint labels           also swaps left/right joints
                                                               (``swap_joints=True``, COCO flip index)
JointNoise             always std 0.25, whatever ``std`` says  honours ``std`` (``honour_std=True``)
MultiInput (3 branch)  every bone angle written to channel C   one angle per coordinate, channels C…2C−2
                       (only the last, arccos(bone_y/|bone|))  (``all_angles=True``)
=====================  ======================================  =========================================
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .graph import CONNECT_JOINT

#: For every COCO-17 joint, its mirror image (left ↔ right; the nose stays).
COCO_FLIP_INDEX = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

#: The original's default for JointNoise's (ignored) std argument.
JOINT_NOISE_STD = 0.1
#: The std the original JointNoise always uses.
JOINT_NOISE_ORIGINAL_STD = 0.25


def _generator(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


class Compose:
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, data, rng: np.random.Generator | None = None):
        rng = _generator(rng)
        for transform in self.transforms:
            data = transform(data, rng=rng)
        return data

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(t) for t in self.transforms)
        return f"Compose([\n    {inner}\n])"


class MirrorPoses:
    """With probability ``probability``: x ← 2·mean_j(x) − x in every frame (a mirror about the frame's mean x).

    The original draws ``random() <= probability`` and does not swap joint labels, so a mirrored left wrist
    is still called "left wrist" although it is now on the other side. ``swap_joints=True`` also permutes the
    joints with :data:`COCO_FLIP_INDEX` (GaitGraph2's fix), giving a proper mirror image.
    """

    def __init__(self, probability: float = 0.5, swap_joints: bool = False):
        self.probability = probability
        self.swap_joints = swap_joints

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if _generator(rng).random() > self.probability:
            return data
        out = np.array(data, copy=True)
        centre = out[:, :, 0].mean(axis=1, keepdims=True)  # (T, 1)
        out[:, :, 0] = 2 * centre - out[:, :, 0]
        if self.swap_joints:
            out = out[:, COCO_FLIP_INDEX]
        return out

    def __repr__(self) -> str:
        return f"MirrorPoses(probability={self.probability}, swap_joints={self.swap_joints})"


class FlipSequence:
    """With probability ``probability`` (``random() <= p``, as the original): reverse the frame order."""

    def __init__(self, probability: float = 0.5):
        self.probability = probability

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if _generator(rng).random() > self.probability:
            return data
        return np.ascontiguousarray(data[::-1])

    def __repr__(self) -> str:
        return f"FlipSequence(probability={self.probability})"


class RandomSelectSequence:
    """A random window of ``sequence_length`` consecutive frames; start uniform in [0, T − L).

    As the original (``randint(0, T - L)``): the last possible start T − L is never drawn, and T must exceed
    L — the loader pads (or drops) sequences to at least L + 1 frames for that reason.
    """

    def __init__(self, sequence_length: int = 60):
        self.sequence_length = sequence_length

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        frames = len(data)
        if frames <= self.sequence_length:
            raise ValueError(f"RandomSelectSequence({self.sequence_length}) needs more than "
                             f"{self.sequence_length} frames, got {frames}; pad or drop short sequences when loading")
        start = int(_generator(rng).integers(0, frames - self.sequence_length))
        return data[start:start + self.sequence_length]

    def __repr__(self) -> str:
        return f"RandomSelectSequence(sequence_length={self.sequence_length})"


def centre_window_start(frames: int, sequence_length: int) -> int:
    """First frame of the centre window of ``sequence_length`` frames in a sequence of ``frames`` frames:
    int(T/2 − L/2), as the original's SelectSequenceCenter (the one formula, also used by extraction)."""
    return int(frames / 2 - sequence_length / 2)


class SelectSequenceCenter:
    """The centre window: frames [int(T/2 − L/2), that + L), as the original (validation and extraction)."""

    def __init__(self, sequence_length: int = 60):
        self.sequence_length = sequence_length

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        frames = len(data)
        if frames < self.sequence_length:
            raise ValueError(f"SelectSequenceCenter({self.sequence_length}) needs at least "
                             f"{self.sequence_length} frames, got {frames}; pad or drop short sequences when loading")
        start = centre_window_start(frames, self.sequence_length)
        return data[start:start + self.sequence_length]

    def __repr__(self) -> str:
        return f"SelectSequenceCenter(sequence_length={self.sequence_length})"


class ShuffleSequence:
    """When enabled (off by default, as the original): shuffle the frames."""

    def __init__(self, enabled: bool = False):
        self.enabled = enabled

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if not self.enabled:
            return data
        return data[_generator(rng).permutation(len(data))]

    def __repr__(self) -> str:
        return f"ShuffleSequence(enabled={self.enabled})"


class PointNoise:
    """Add N(0, std) to every value: x, y AND confidence (as the original), independently per frame and joint."""

    def __init__(self, std: float = 0.05):
        self.std = std

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        noise = _generator(rng).normal(0.0, self.std, size=data.shape).astype(np.float32)
        return data + noise

    def __repr__(self) -> str:
        return f"PointNoise(std={self.std})"


class JointNoise:
    """One N(0, σ) offset per joint for x and y (not confidence), the same in every frame.

    The original ignores its ``std`` argument and always uses σ = 0.25; that is the default here.
    ``honour_std=True`` uses σ = ``std`` (GaitGraph2's fix). ``scale`` multiplies σ (coordinates that are
    not pixels, see :func:`train_transform`).
    """

    def __init__(self, std: float = JOINT_NOISE_STD, honour_std: bool = False, scale: float = 1.0):
        self.std = std
        self.honour_std = honour_std
        self.scale = scale

    @property
    def effective_std(self) -> float:
        return (self.std if self.honour_std else JOINT_NOISE_ORIGINAL_STD) * self.scale

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        joints = data.shape[1]
        noise = np.zeros((joints, data.shape[2]), dtype=np.float32)
        noise[:, :2] = _generator(rng).normal(0.0, self.effective_std, size=(joints, 2))
        return data + noise[np.newaxis]

    def __repr__(self) -> str:
        return f"JointNoise(std={self.std}, honour_std={self.honour_std})"


class MultiInput:
    """(T, V, C) → (I, C', T, V): the network input. Single-branch (default): (1, C, T, V), a transpose.

    Multi-branch (ResGCN's three input branches, Song et al. 2020), I = 3, C' = 2C, float64 as the original:

    - branch 0, joints:   [x, x − x[:, joint 1]]  (joint 1 = left eye, as the original; confidence included)
    - branch 1, velocity: [x[t+1] − x[t], x[t+2] − x[t]] for t < T − 2; the last two frames stay zero
    - branch 2, bones:    [b = x − x[:, connect_joint], angles]; the angle of coordinate i is
      arccos(b_i / (|b_xy| + 1e-4)) with |b_xy| the length over the C − 1 coordinate channels. The original
      writes every angle into channel C, so only arccos(b_y / …) survives and channels C+1… stay zero
      (default). ``all_angles=True`` writes coordinate i's angle to channel C + i.
    """

    def __init__(self, connect_joint: Sequence[int] = CONNECT_JOINT, enabled: bool = False, all_angles: bool = False):
        self.connect_joint = np.asarray(connect_joint, dtype=np.int64)
        self.enabled = enabled
        self.all_angles = all_angles

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        data = np.transpose(data, (2, 0, 1))  # (C, T, V)
        if not self.enabled:
            return np.ascontiguousarray(data[np.newaxis])  # (1, C, T, V)
        channels, frames, _ = data.shape
        out = np.zeros((3, 2 * channels, frames, data.shape[2]), dtype=np.float64)  # (I, 2C, T, V)
        out[0, :channels] = data
        out[0, channels:] = data - data[:, :, 1:2]
        if frames > 2:
            out[1, :channels, :frames - 2] = data[:, 1:frames - 1] - data[:, :frames - 2]
            out[1, channels:, :frames - 2] = data[:, 2:] - data[:, :frames - 2]
        bones = data - data[:, :, self.connect_joint]  # differences in the input precision, as the original
        out[2, :channels] = bones
        coords = out[2, :channels - 1]  # (C-1, T, V), float64
        length = np.sqrt(np.sum(coords ** 2, axis=0)) + 1e-4
        if self.all_angles:
            out[2, channels:2 * channels - 1] = np.arccos(coords / length)
        else:
            out[2, channels] = np.arccos(coords[-1] / length)
        return out

    def __repr__(self) -> str:
        return f"MultiInput(enabled={self.enabled}, all_angles={self.all_angles})"


class ToTensor:
    """numpy → torch.float32 tensor."""

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None):
        import torch

        return torch.as_tensor(np.asarray(data, dtype=np.float32))

    def __repr__(self) -> str:
        return "ToTensor()"


class TwoViews:
    """Apply ``transform`` twice to the same sample, for SupConLoss (the original's TwoNoiseTransform)."""

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, data: np.ndarray, rng: np.random.Generator | None = None):
        rng = _generator(rng)
        return [self.transform(data, rng=rng), self.transform(data, rng=rng)]

    def __repr__(self) -> str:
        return f"TwoViews({self.transform!r})"


def train_transform(sequence_length: int = 60, multi_branch: bool = False, *, corrected: bool = False,
                    swap_joints: bool | None = None, honour_joint_noise_std: bool | None = None,
                    all_angles: bool | None = None, mirror_probability: float = 0.5,
                    flip_probability: float = 0.5, shuffle: bool = False, point_noise_std: float = 0.05,
                    joint_noise_std: float = JOINT_NOISE_STD, noise_scale: float = 1.0) -> Compose:
    """The original training pipeline (one view; wrap it in :class:`TwoViews` for SupCon).

    ``corrected=True`` turns on all three corrections; each flag (``swap_joints``,
    ``honour_joint_noise_std``, ``all_angles``) overrides it individually. The noise standard deviations
    are in pixels, as the original; ``noise_scale`` converts them when coordinates are not pixels (with
    normalised poses, in units of body height, training passes 1 / 100: a person about 100 pixels tall).
    """
    swap_joints = corrected if swap_joints is None else swap_joints
    honour_joint_noise_std = corrected if honour_joint_noise_std is None else honour_joint_noise_std
    all_angles = corrected if all_angles is None else all_angles
    return Compose([
        MirrorPoses(mirror_probability, swap_joints=swap_joints),
        FlipSequence(flip_probability),
        RandomSelectSequence(sequence_length),
        ShuffleSequence(shuffle),
        PointNoise(point_noise_std * noise_scale),
        JointNoise(joint_noise_std, honour_std=honour_joint_noise_std, scale=noise_scale),
        MultiInput(CONNECT_JOINT, enabled=multi_branch, all_angles=all_angles),
        ToTensor(),
    ])


def eval_transform(sequence_length: int = 60, multi_branch: bool = False, *, corrected: bool = False,
                   all_angles: bool | None = None) -> Compose:
    """The original validation/extraction pipeline: centre window, MultiInput, ToTensor (no randomness)."""
    all_angles = corrected if all_angles is None else all_angles
    return Compose([
        SelectSequenceCenter(sequence_length),
        MultiInput(CONNECT_JOINT, enabled=multi_branch, all_angles=all_angles),
        ToTensor(),
    ])
