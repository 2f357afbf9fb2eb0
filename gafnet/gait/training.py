"""GaitGraph training, the library: the seeded epoch order, one epoch of SupCon on two augmented views, validation.

The command ``gaitgraph/src/train.py`` (:mod:`gafnet.gait.train_cli`) strings these together.

One epoch, as the original (the original GaitGraph code: Training loop): every sample is augmented twice, the
two views go through the ResGCN together, their embeddings are stacked to (B, 2, E) for SupConLoss (Khosla et
al. 2020); Adam with weight decay; OneCycleLR stepped after every batch; optional AMP on CUDA. Validation
embeds the validation file (centre window) and scores it with the dataset's protocol (iLIDS-VID/MARS: Rank-k
and mAP with the project's one evaluator; CASIA-B: the cross-view table).

Determinism: the sample order of epoch e is a permutation drawn from a generator seeded with (seed, e)
(:func:`epoch_order`), cut into batches of ``batch_size``; the augmentation of sample i in epoch e comes from
(seed, e, i) (:class:`gafnet.gait.poses.PoseDataset`). A run resumed from ``last.pt`` therefore draws exactly
what the uninterrupted run would have drawn.

Several processes (torchrun, :mod:`gafnet.gait.distributed`): the batches are the same global batches, each
process loads its share, SupConLoss runs on the gathered global batch and validation on gathered shards, so the
numbers are those of one process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..metrics import collapse_warning
from . import poses as poses_mod
from . import protocols
from .extraction import extract_embeddings

#: Views per sample: SupCon contrasts two augmentations of every sample.
NUM_VIEWS = 2


# ----------------------------------------------------------------------------------------------------------------
# Epoch order


def epoch_order(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of one epoch: a permutation of range(num_samples) seeded with (seed, epoch)."""
    generator = torch.Generator().manual_seed(int(seed) * 100003 + int(epoch))
    return torch.randperm(int(num_samples), generator=generator).numpy()


def steps_per_epoch(num_samples: int, batch_size: int, max_steps: int | None = None) -> int:
    """Batches per epoch: ceil(N / B), the last one smaller (as the original's drop_last=False), or ``max_steps``."""
    steps = math.ceil(num_samples / batch_size)
    return min(steps, max_steps) if max_steps else steps


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int,
                  max_steps: int | None = None) -> list[np.ndarray]:
    """The batches of one epoch: consecutive pieces of :func:`epoch_order`, ``batch_size`` samples each."""
    order = epoch_order(num_samples, seed, epoch)
    steps = steps_per_epoch(num_samples, batch_size, max_steps)
    return [order[b * batch_size:(b + 1) * batch_size] for b in range(steps)]


def collate(batch):
    """[(two views, target)] → 2 × (B, I, C, T, V) tensors; None for an empty batch (a process's empty share of a
    last batch smaller than the number of processes)."""
    if not batch:
        return None
    return [torch.stack([sample[0][v] for sample in batch]) for v in range(NUM_VIEWS)]


def make_loader(dataset, batches, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader that yields exactly ``batches`` (arrays of dataset indices, e.g. this process's shares), in order."""
    return torch.utils.data.DataLoader(dataset, batch_sampler=[b.tolist() for b in batches], num_workers=num_workers,
                                       collate_fn=collate, persistent_workers=False)


# ----------------------------------------------------------------------------------------------------------------
# One epoch


@dataclass
class EpochResult:
    """What one training epoch did: per-step losses and learning rates (the lr each step used), its size and time."""

    losses: list = field(default_factory=list)
    lrs: list = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0

    @property
    def loss(self) -> float:
        return float(np.mean(self.losses)) if self.losses else math.nan

    @property
    def lr(self) -> float:
        """The learning rate of the epoch's last step (not the scheduler's value after it)."""
        return self.lrs[-1] if self.lrs else math.nan

    @property
    def samples_per_second(self) -> float:
        return self.samples / max(self.seconds, 1e-9)


def train_one_epoch(model, loader, batches, labels, criterion, optimizer, scheduler, scaler, device, *,
                    input_shape: tuple, dist=None, use_amp: bool = False, dtype: torch.dtype = torch.float32,
                    progress: bool = False, epoch: int = 0, log_interval: int = 0, log=print) -> EpochResult:
    """One pass over the global ``batches`` (``loader`` yields this process's share of each): forward both views,
    SupConLoss on the whole global batch, backward, Adam step, OneCycleLR step per batch.

    ``labels`` (N,) are the identities of the dataset's samples; ``input_shape`` (I, C, T, V) one view's shape (for
    an empty share); ``dist`` a :class:`gafnet.gait.distributed.Dist` (None: one process). ``log_interval`` > 0
    logs every that many steps (the loss with 8 significant digits and the lr the step used).
    """
    from .distributed import Dist

    dist = dist or Dist(device=device)
    model.train()
    result = EpochResult()
    iterator = loader
    if progress:
        from tqdm import tqdm

        iterator = tqdm(loader, desc=f"epoch {epoch}", unit="batch", dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    for step, (views, batch) in enumerate(zip(iterator, batches), start=1):
        sizes = dist.share_sizes(len(batch))
        if views is None:
            views = [torch.zeros(0, *input_shape)] * NUM_VIEWS
        x = torch.cat(views, dim=0).to(device=device, dtype=dtype, non_blocking=True)  # (2b, I, C, T, V)
        with torch.autocast(device_type=device.type, enabled=use_amp):
            out = model(x)  # (2b, E), this process's share
        first, second = torch.split(out.float(), [views[0].shape[0]] * NUM_VIEWS, dim=0)
        features = torch.stack([dist.gather_batch(first, sizes), dist.gather_batch(second, sizes)], dim=1)  # (B, 2, E)
        loss = criterion(features, torch.as_tensor(labels[batch], device=device))
        lr = float(optimizer.param_groups[0]["lr"])  # what this step uses
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        result.losses.append(float(loss.detach()))
        result.lrs.append(lr)
        result.samples += len(batch)
        if log_interval and step % log_interval == 0:
            log(f"epoch {epoch} step {step}/{len(batches)}: loss {result.losses[-1]:.8g}, lr {lr:.4e}")
        if progress:
            rate = result.samples / max(time.perf_counter() - started, 1e-9)
            iterator.set_postfix(loss=f"{result.losses[-1]:.4f}", samples_per_s=f"{rate:.1f}")
    result.seconds = time.perf_counter() - started
    return result


# ----------------------------------------------------------------------------------------------------------------
# Validation


@dataclass
class Validation:
    metric: float  # what best.pt follows (Rank-1 in %, CASIA-B: mean accuracy in %)
    text: str
    scalars: dict
    warning: str | None = None  # set when the embeddings have collapsed (gafnet.metrics.collapse_warning)


def score(feats: np.ndarray, pose_set, dataset: str, query_list=None, what: str = "validation embeddings") -> Validation:
    """Score embeddings of ``pose_set`` with the dataset's protocol; warn when they have collapsed."""
    warning = collapse_warning(feats, what)
    fields = pose_set.target_fields
    if poses_mod.get_format(dataset).name == "casia-b":
        res = protocols.casia_b_table(feats, *(pose_set.column(f) for f in fields[:4]))
        means = {c: 100.0 * float(v) for c, v in zip(protocols.CASIA_CONDITIONS, res.condition_mean)}
        return Validation(100.0 * float(res.mean),
                          "CASIA-B " + " ".join(f"{c} {v:.2f}" for c, v in means.items()) + f" mean {100 * res.mean:.2f}",
                          {**{f"casia/{c}": v for c, v in means.items()}, "casia/mean": 100.0 * float(res.mean)},
                          warning)
    if poses_mod.get_format(dataset).name == "mars":
        res = protocols.evaluate_mars(feats, pose_set.column(fields[0]), pose_set.column(fields[1]),
                                      pose_set.column(fields[2]), query_list=query_list)
    else:
        res = protocols.evaluate_ilids(feats, pose_set.column(fields[0]), pose_set.column(fields[1]))
    ranks = protocols.reported_ranks(res, (1, 5))
    scalars = {f"val/rank{k}": value for k, value in ranks.items()}
    scalars["val/mAP"] = 100.0 * res.mAP
    return Validation(ranks[1], protocols.format_ranks(res, (1, 5)), scalars, warning)


def validate(model, pose_set, dataset: str, prep: dict, device, batch_size: int, query_list=None,
             what: str = "validation embeddings", dist=None) -> Validation | None:
    """Embed the validation file (centre window, as extraction) and score it with the dataset's protocol.

    With several processes (``dist``), each embeds a contiguous shard with rank 0's weights and running
    statistics and rank 0 scores the gathered embeddings (the others get None)."""
    if dist is not None and dist.enabled:
        dist.broadcast_from_main(model)
        shard = dist.shard(len(pose_set))
        part = pose_set.select(shard) if len(shard) else None
    else:
        part = pose_set
    if part is None:
        feats = np.zeros((0, model.fcn.out_features), dtype=np.float32)
    else:
        feats = extract_embeddings(model, part, sequence_length=prep["sequence_length"],
                                   multi_branch=prep["multi_branch"], all_angles=prep["all_angles"],
                                   batch_size=batch_size, device=device)
    if dist is not None and dist.enabled:
        feats = dist.gather_rows(feats)
        if feats is None:
            return None
    return score(feats, pose_set, dataset, query_list, what)
