"""Gait embeddings of pose sequences: batched model inference on CPU or GPU (the library; one function used by
validation in training and by the command ``gaitgraph/src/evaluate.py``, :mod:`gafnet.gait.evaluate_cli`).

The default is what the original extractor computes: the model output on the centre window of
``sequence_length`` frames (frames [int(T/2 − L/2), that + L)). The original's "flip" test-time
augmentation flips the input-branch axis of (N, I, C, T, V), a no-op for single-branch input, so it is
not reproduced (the original GaitGraph code). New, optional:

- ``tta="time_flip"``: average the embedding of the window and of the time-reversed window;
- ``windows="all"``: average over sliding windows (stride L/2, the last one flush with the end) that
  cover the whole tracklet.

Averaged embeddings are L2-normalised again. Sequences shorter than the window never reach this
function unpadded: the pose loader pads them (and counts them) by default.
"""

from __future__ import annotations

import numpy as np
import torch

from .augment import MultiInput, centre_window_start
from .graph import CONNECT_JOINT

TTA_CHOICES = ("none", "time_flip")
WINDOW_CHOICES = ("center", "all")


def window_starts(length: int, sequence_length: int, windows: str = "center") -> list[int]:
    """Start frames of the windows used for one sequence of ``length`` frames."""
    if length < sequence_length:
        raise ValueError(f"a sequence of {length} frames is shorter than the window ({sequence_length}); "
                         "load poses with padding (the default)")
    if windows == "center":
        return [centre_window_start(length, sequence_length)]
    if windows == "all":
        stride = max(1, sequence_length // 2)
        starts = list(range(0, length - sequence_length + 1, stride))
        if starts[-1] != length - sequence_length:
            starts.append(length - sequence_length)
        return starts
    raise ValueError(f"unknown windows {windows!r}; use one of {WINDOW_CHOICES}")


@torch.inference_mode()
def extract_embeddings(model: torch.nn.Module, poses, *, sequence_length: int = 60, multi_branch: bool = False,
                       all_angles: bool = False, batch_size: int = 256, device: torch.device | str = "cpu",
                       tta: str = "none", windows: str = "center", progress: bool = False) -> np.ndarray:
    """(S, E) float32 embeddings of every sequence of a :class:`~gafnet.gait.poses.PoseSet`, in order."""
    if tta not in TTA_CHOICES:
        raise ValueError(f"unknown tta {tta!r}; use one of {TTA_CHOICES}")
    device = torch.device(device)
    model.eval()
    dtype = next(model.parameters()).dtype  # float32, or float64 for numerical checks
    to_input = MultiInput(CONNECT_JOINT, enabled=multi_branch, all_angles=all_angles)
    # every (sequence, start) window, as flat lists: owner[i] is the sequence of window i
    owner, starts = [], []
    for index, length in enumerate(poses.lengths.tolist()):
        for start in window_starts(int(length), sequence_length, windows):
            owner.append(index)
            starts.append(start)
    owner_arr = np.asarray(owner, dtype=np.int64)
    passes = [False, True] if tta == "time_flip" else [False]
    sums = None
    batches = range(0, len(owner), batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="extracting", unit="batch", dynamic_ncols=True)
    for b in batches:
        chunk = range(b, min(b + batch_size, len(owner)))
        windows_np = [poses.sequence(owner[i])[starts[i]:starts[i] + sequence_length] for i in chunk]  # (L, V, C)
        for reverse in passes:
            batch = np.stack([to_input(w[::-1] if reverse else w) for w in windows_np])  # (B, I, C, T, V)
            x = torch.from_numpy(batch.astype(np.float32, copy=False)).to(device=device, dtype=dtype)
            out = model(x).float().cpu().numpy()  # (B, E)
            if sums is None:
                sums = np.zeros((len(poses), out.shape[1]), dtype=np.float64)
                counts = np.zeros(len(poses), dtype=np.int64)
            np.add.at(sums, owner_arr[b:b + len(out)], out)
            np.add.at(counts, owner_arr[b:b + len(out)], 1)
    if sums is None:
        return np.zeros((0, 0), dtype=np.float32)
    if len(passes) == 1 and windows == "center":
        return sums.astype(np.float32)  # exactly the model output (already L2-normalised)
    mean = sums / counts[:, None]
    return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)
