"""Training on several processes with torchrun (DistributedDataParallel): one process per GPU, on one or more machines,
or several CPU processes with gloo. Without torchrun (WORLD_SIZE unset or 1) nothing here does anything.

    torchrun --nproc_per_node 4 train.py casia-b TRAIN.csv …                 # 4 GPUs (nccl)
    torchrun --nproc_per_node 2 train.py iLIDS TRAIN.csv --device cpu …      # 2 CPU processes (gloo)

What makes N processes compute what one process computes (docs/training.md, "Distributed training"):

- the batch: ``--batch_size`` is the GLOBAL batch. Every process cuts the same seeded epoch order into the
  same global batches and takes its contiguous share of each (:func:`local_share`), so the union over the
  processes is the single-process epoch; augmentations are seeded per sample, so a sample gets the same two
  views whatever the number of processes;
- the loss: every process gathers the embeddings of the whole global batch with gradients
  (``torch.distributed.nn.functional.all_gather``) and computes SupConLoss on it, as one process does; each
  process thus holds W × its own share of the gradient (the gather's backward sums over processes) and DDP's
  average over the W processes gives exactly the single-process gradient;
- BatchNorm: statistics of the global batch (:class:`gafnet.gait.resgcn.GlobalBatchNorm2d`) unless
  ``--no_sync_bn``;
- validation: every process embeds a contiguous shard with rank 0's weights and running statistics
  (broadcast first), rank 0 gathers the shards in order and scores them as one process would.

Collectives of our own (gathers, BatchNorm statistics) run on a process group of their own, apart from DDP's
gradient reduction. The process group has a timeout (``--dist_timeout``), so a process that dies or hangs
cannot keep the others waiting forever; errors found while setting up are agreed on (:meth:`Dist.agree`): rank 0
prints one line and every process exits with status 2.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..device import choose_device
from ..errors import EXIT_BAD_INPUT, InputError

BACKEND_CHOICES = ("auto", "nccl", "gloo")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


@dataclass
class Dist:
    """Where this process stands: rank among world_size processes, its device, and the group for our collectives."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    group: object = None  # our collectives' process group (None when not distributed)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- agreement and teardown -------------------------------------------------------------------------------

    def agree(self, error: str | None, prog: str = "train.py") -> None:
        """Every process reports whether it failed; if any did, rank 0 prints the first failure as one line and
        every process exits with status 2, only once that line is out (torchrun stops the others as soon as one
        process exits). One process: the failure is raised as an InputError."""
        if not self.enabled:
            if error is not None:
                raise InputError(error)
            return
        errors = [None] * self.world_size
        torch.distributed.all_gather_object(errors, error, group=self.group)
        failed = [(rank, message) for rank, message in enumerate(errors) if message is not None]
        if not failed:
            return
        if self.is_main:
            rank, message = failed[0]
            print(f"{prog}: error: " + (message if rank == 0 else f"process {rank}: {message}"), file=sys.stderr,
                  flush=True)
        torch.distributed.barrier(group=self.group)
        raise SystemExit(EXIT_BAD_INPUT)

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    # -- data ------------------------------------------------------------------------------------------------

    def local_share(self, batch: np.ndarray) -> np.ndarray:
        """This process's contiguous share of a global batch (sizes differ by at most one; the first processes
        take the extra samples of a smaller last batch)."""
        return np.array_split(batch, self.world_size)[self.rank]

    def share_sizes(self, batch_size: int) -> list[int]:
        return [len(part) for part in np.array_split(np.arange(batch_size), self.world_size)]

    def gather_batch(self, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """The rows of every process, in rank order, with gradients: (Σ sizes, …) from this process's (sizes[rank], …).

        Shares may differ in size by one (a smaller last batch): they are padded to the largest for the gather
        and cut back after it."""
        if not self.enabled:
            return x
        from torch.distributed.nn.functional import all_gather

        largest = max(sizes)
        if x.shape[0] < largest:
            x = torch.cat([x, x.new_zeros(largest - x.shape[0], *x.shape[1:])])
        parts = all_gather(x.contiguous(), group=self.group)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    def gather_rows(self, array: np.ndarray) -> np.ndarray | None:
        """Rank 0: the arrays of every process concatenated in rank order; other ranks: None."""
        if not self.enabled:
            return array
        parts = [None] * self.world_size if self.is_main else None
        torch.distributed.gather_object(array, parts, dst=0, group=self.group)
        return np.concatenate(parts) if self.is_main else None

    def shard(self, count: int) -> np.ndarray:
        """This process's contiguous share of range(count) (validation)."""
        return np.array_split(np.arange(count), self.world_size)[self.rank]

    def broadcast_from_main(self, module: torch.nn.Module) -> None:
        """Give every process rank 0's parameters and buffers (e.g. its running statistics before validation)."""
        if not self.enabled:
            return
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                torch.distributed.broadcast(tensor.data, src=0, group=self.group)

    @contextlib.contextmanager
    def quiet_unless_main(self):
        """Processes other than rank 0 print nothing on stdout (reports, progress, epoch lines)."""
        if self.is_main:
            yield
            return
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield


def choose_backend(requested: str, device: torch.device) -> str:
    """nccl for CUDA, gloo for the CPU (``auto``); an explicit choice must be available and fit the device."""
    backend = ("nccl" if device.type == "cuda" else "gloo") if requested == "auto" else requested
    if backend not in BACKEND_CHOICES[1:]:
        raise InputError(f"unknown --dist_backend {requested!r}; use one of {', '.join(BACKEND_CHOICES)}")
    available = {"nccl": torch.distributed.is_nccl_available(), "gloo": torch.distributed.is_gloo_available()}
    if not available[backend]:
        raise InputError(f"the {backend} backend is not available in this torch build; use --dist_backend "
                         f"{'gloo' if backend == 'nccl' else 'nccl'} or another torch")
    if backend == "nccl" and device.type != "cuda":
        raise InputError("--dist_backend nccl needs --device cuda (NCCL runs on GPUs only); use gloo on the CPU")
    return backend


def start(device_name: str = "auto", backend: str = "auto", timeout_minutes: float = 30.0) -> Dist:
    """The Dist of this process. Under torchrun (WORLD_SIZE > 1): check the device and backend, put the process
    on its LOCAL_RANK device (CUDA) and join the process group; otherwise: one process on ``device_name``."""
    if not launched_by_torchrun():
        return Dist(device=choose_device(device_name))
    if not torch.distributed.is_available():
        raise InputError("this torch build has no torch.distributed; run train.py without torchrun")
    # torch 2.14 deprecates torch.distributed.nn.functional.all_gather (the gather with gradients that the
    # losses and the global BatchNorm use, as the DDP issue asks) in favour of a private module; it still works,
    # so every process does not print the warning
    warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
                            category=FutureWarning)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if device_name.startswith("cuda:"):
        raise InputError(f"--device {device_name}: under torchrun every process takes the GPU of its LOCAL_RANK; "
                         "pass --device cuda (or auto)")
    device = choose_device(device_name)
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        if visible < local_world:
            raise InputError(f"--device cuda with {local_world} processes per machine but {visible} visible GPU(s); "
                             f"start torchrun with --nproc_per_node {visible} or fewer")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = choose_backend(backend, device)
    if not timeout_minutes > 0:
        raise InputError(f"--dist_timeout must be a positive number of minutes, got {timeout_minutes}")
    timeout = datetime.timedelta(minutes=timeout_minutes)
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    try:
        torch.distributed.init_process_group(backend, rank=rank, world_size=world, timeout=timeout, **kwargs)
        group = torch.distributed.new_group(backend=backend, timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"cannot join the process group ({backend}, {world} processes): {first}") from None
    return Dist(rank, world, local_rank, device, backend, group)


PEER_FAILURE_TEXTS = ("Timed out", "timed out", "Connection closed by peer", "Connection reset by peer",
                      "Watchdog caught collective operation timeout", "NCCL communicator was aborted")


def is_peer_failure(exc: BaseException) -> bool:
    """True for the error a collective raises when another process died, hung past the timeout or left."""
    dist_error = getattr(torch.distributed, "DistError", ())
    if dist_error and isinstance(exc, dist_error):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in PEER_FAILURE_TEXTS)


def peer_failure_message(dist: Dist, exc: BaseException, timeout_minutes: float) -> str:
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    first = first.split("] ", 1)[-1][:160]  # without gloo's source location
    return (f"process {dist.rank} of {dist.world_size}: another process did not answer within --dist_timeout "
            f"{timeout_minutes:g} min, or stopped ({first}); it failed or hangs: see its output")


def print_main(dist: Dist, *args, **kwargs) -> None:
    if dist.is_main:
        print(*args, **kwargs)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
