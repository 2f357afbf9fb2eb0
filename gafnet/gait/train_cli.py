"""The command ``gaitgraph/src/train.py``: train GaitGraph (ResGCN + SupConLoss) on pose sequences.

:func:`run` reads as the stages of a run: check the arguments → load the checkpoint to resume (if any) → load the
data → build the model and its optimisation → restore the resumed state → open the run directory → train,
validate and save every epoch. The pieces of an epoch live in :mod:`gafnet.gait.training`; see
docs/training.md for the commands, resume, and what ``best.pt`` and ``last.pt`` hold.

Checkpoints: ``best.pt`` follows the validation metric (without validation: the training loss), ``last.pt`` is
every epoch; both are written atomically, ``best.pt`` FIRST, so that a kill between the two writes leaves a
``last.pt`` of the previous epoch, whose resume recomputes the epoch and rewrites ``best.pt`` identically;
``last.pt`` records which epoch ``best.pt`` holds (``extra["best_epoch"]``).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json
from ..errors import EXIT_BAD_INPUT, InputError, cli_main
from . import poses as poses_mod
from .augment import TwoViews, train_transform
from .checkpoint import (Checkpoint, check_optimizer_state, check_rng_state, check_state_like, get_rng_state,
                         initialise_from, load_checkpoint, load_model_state, set_rng_state)
from .cli_options import (MAX_SEQUENCE_LENGTH, add_data_arguments, check_float, check_int, check_preprocessing,
                          load_pose_file, preprocessing_from_args)
from .distributed import BACKEND_CHOICES, Dist, is_peer_failure, launched_by_torchrun, peer_failure_message, start
from .resgcn import DEFAULT_NETWORK, MODEL_ARG_LIMITS, build_model, use_global_batch_norm, valid_network_names
from .supcon import SupConLoss
from .training import epoch_batches, make_loader, steps_per_epoch, train_one_epoch, validate

REPO_ROOT = Path(__file__).resolve().parents[2]
NOMINAL_BODY_HEIGHT_PX = 100.0  # converts the pixel noise of the augmentations to normalised coordinates
MAX_SEED = 2**32 - 1  # numpy's legacy seeding takes 32 bits


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train GaitGraph (ResGCN + SupConLoss) on pose sequences.",
        epilog="Examples (run in gaitgraph/src):\n"
               "  python train.py casia-b ../../data/casia-b/casia-b_pose_train_valid.csv "
               "--valid_data_path ../../data/casia-b/casia-b_pose_test.csv --batch_size 128 --epochs 1000 "
               "--learning_rate 1e-2 --temp 0.01\n"
               "  python train.py iLIDS ../../poses/splits_pit/train_split0.csv --valid_data_path "
               "../../poses/splits_pit/test_split0.csv --weight_path <stage1 best.pt> --learning_rate 1e-5 "
               "--epochs 300 --temp 0.01\n"
               "See docs/training.md (resume, best.pt/last.pt, collapsed embeddings).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(poses_mod.DATASETS), help="pose file format")
    p.add_argument("train_data_path", help="training pose CSV")
    p.add_argument("--valid_data_path", default=None,
                   help="validation pose CSV, evaluated after every epoch; best.pt follows it. The original recipe "
                        "passes the TEST split here (optimistic); pass a held-out split instead (see README)")
    p.add_argument("--batch_size", type=int, default=128,
                   help="samples per batch, each seen as 2 views (default 128); under torchrun the GLOBAL batch, split "
                        "evenly among the processes")
    p.add_argument("--epochs", type=int, default=300, help="default 300")
    p.add_argument("--learning_rate", type=float, default=1e-2, help="OneCycleLR max_lr (default 1e-2)")
    p.add_argument("--lr_div_factor", type=float, default=25.0,
                   help="OneCycleLR div_factor: the first lr is learning_rate / this (default 25)")
    p.add_argument("--weight_decay", type=float, default=1e-5, help="Adam weight decay (default 1e-5)")
    p.add_argument("--temp", type=float, default=0.01, help="SupConLoss temperature (default 0.01, the recipe's)")
    p.add_argument("--network_name", default=DEFAULT_NETWORK, help=f"ResGCN name (default {DEFAULT_NETWORK})")
    p.add_argument("--embedding_layer_size", type=int, default=128,
                   help=f"embedding size, 1 to {MODEL_ARG_LIMITS['embedding_size'][1]} (default 128)")
    p.add_argument("--use_multi_branch", action="store_true", help="three input branches (joints, velocity, bones)")
    p.add_argument("--corrected_augmentation", action="store_true",
                   help="JointNoise honours its std, mirroring swaps left/right joints, MultiInput writes every angle "
                        "(default: the original's behaviour)")
    p.add_argument("--checkpoint_path", default=None,
                   help="resume from this last.pt (epoch, optimizer, scheduler, RNG), with the run's own options")
    p.add_argument("--weight_path", default=None,
                   help="initialise the weights from this checkpoint (ours or the original's), e.g. stage 1")
    p.add_argument("--use_amp", action="store_true", help="mixed precision (CUDA only; ignored with a note on CPU)")
    p.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--seed", type=int, default=0, help=f"0 to {MAX_SEED} (default 0)")
    p.add_argument("--exp_name", default=None, help="run directory name (default: <dataset>-<time>)")
    p.add_argument("--save_dir", default=str(REPO_ROOT / "runs"),
                   help="parent of the run directories (default: runs/ at the repository root, wherever the script "
                        "is started from)")
    p.add_argument("--query_list", default=None,
                   help="MARS validation: query tracklets CSV (default: the standard 1,980; torchreid's protocol)")
    p.add_argument("--max_steps_per_epoch", type=int, default=None, help="cut epochs short, at least 1 (quick tests)")
    p.add_argument("--stop_after_epoch", type=int, default=None,
                   help="stop after this epoch as if interrupted (e.g. a job time limit); continue later with "
                        "--checkpoint_path <run>/last.pt and the same options")
    p.add_argument("--log_interval", type=int, default=0,
                   help="print the loss and lr every this many steps (default 0: once per epoch)")
    p.add_argument("--float64", action="store_true",
                   help="train in double precision (slow; for numerical checks such as the distributed tests)")
    d = p.add_argument_group("distributed training (started with torchrun; see docs/training.md)")
    d.add_argument("--no_sync_bn", action="store_true",
                   help="BatchNorm statistics of each process's share of the batch instead of the global batch "
                        "(changes the numbers: the result then depends on the number of processes)")
    d.add_argument("--dist_backend", choices=BACKEND_CHOICES, default="auto",
                   help="process-group backend (default auto: nccl on CUDA, gloo on the CPU)")
    d.add_argument("--dist_timeout", type=float, default=30.0,
                   help="minutes a process waits for the others in a collective before it fails (default 30)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_arguments(p)
    return p


# ----------------------------------------------------------------------------------------------------------------
# Stage 1: arguments


def check_args(args: argparse.Namespace) -> None:
    """Every numeric option within its bounds, before anything is loaded or written (one line naming the option)."""
    if args.network_name not in valid_network_names():
        raise InputError(f"Unknown network: {args.network_name}. Must be one of {valid_network_names()}")
    check_int("--batch_size", args.batch_size, 1)
    check_int("--epochs", args.epochs, 1)
    check_int("--sequence_length", args.sequence_length, 1, MAX_SEQUENCE_LENGTH)
    check_int("--embedding_layer_size", args.embedding_layer_size, *MODEL_ARG_LIMITS["embedding_size"])
    check_int("--num_workers", args.num_workers, 0)
    check_int("--seed", args.seed, 0, MAX_SEED)
    check_int("--log_interval", args.log_interval, 0)
    for option in ("max_steps_per_epoch", "stop_after_epoch"):
        if getattr(args, option) is not None:
            check_int(f"--{option}", getattr(args, option), 1)
    check_float("--learning_rate", args.learning_rate)
    check_float("--lr_div_factor", args.lr_div_factor)
    check_float("--weight_decay", args.weight_decay, inclusive=True)
    check_float("--temp", args.temp)
    check_float("--dist_timeout", args.dist_timeout)


def check_distribution(args: argparse.Namespace, dist: Dist, num_samples: int) -> None:
    """The global batch must split evenly among the processes (so that a recipe means the same optimisation
    whatever their number); with --no_sync_bn every process needs a sample of every batch."""
    if not dist.enabled:
        return
    if args.batch_size % dist.world_size:
        lower = args.batch_size - args.batch_size % dist.world_size
        raise InputError(f"--batch_size {args.batch_size} (the global batch) does not split evenly among "
                         f"{dist.world_size} processes; use a multiple of {dist.world_size}, e.g. "
                         f"{lower or dist.world_size} or {lower + dist.world_size}")
    steps = steps_per_epoch(num_samples, args.batch_size, args.max_steps_per_epoch)
    smallest = min(args.batch_size, num_samples - (steps - 1) * args.batch_size)
    if args.no_sync_bn and smallest < dist.world_size:
        raise InputError(f"--no_sync_bn: the epoch's last batch has {smallest} sample(s) for {dist.world_size} "
                         "processes, and a process without samples has no BatchNorm statistics; drop --no_sync_bn "
                         "or choose a --batch_size that leaves at least one sample per process")


# ----------------------------------------------------------------------------------------------------------------
# Stage 2: the checkpoint to resume


RESUME_FLAGS = {"network_name": "--network_name", "embedding_size": "--embedding_layer_size",
                "num_input_branches": "--use_multi_branch", "num_channels": "--use_multi_branch",
                "epochs": "--epochs", "batch_size": "--batch_size",
                "steps_per_epoch": "--batch_size/--max_steps_per_epoch (or a different training file)",
                "dataset": "the dataset argument"}


def load_resume(args: argparse.Namespace, prep: dict) -> Checkpoint | None:
    """The checkpoint of ``--checkpoint_path``, checked to be a resumable run with this command's preprocessing."""
    if not args.checkpoint_path:
        return None
    path = args.checkpoint_path
    ckpt = load_checkpoint(path)
    if ckpt.format != "gafnet" or ckpt.optimizer_state is None or ckpt.scheduler_state is None:
        raise InputError(f"{path}: not a resumable checkpoint of this project (use --weight_path "
                         "to initialise from an original GaitGraph checkpoint or a best.pt)")
    if ckpt.epoch is None or ckpt.best_metric is None:
        raise InputError(f"{path}: not a resumable checkpoint (it records no {'epoch' if ckpt.epoch is None else 'best_metric'}"
                         "); the file is damaged")
    saved = check_preprocessing({**prep, **ckpt.preprocessing}, str(path))
    for key, value in saved.items():
        if prep[key] != value:
            raise InputError(f"--checkpoint_path {path} was trained with {key}={value!r} but the "
                             f"command line says {prep[key]!r}; resume with the same options")
    return ckpt


def check_same_run(path, resume: Checkpoint, model_args: dict, schedule: dict) -> None:
    """A resumed run must rebuild the same model and the same learning-rate schedule as the one it continues."""
    saved_schedule = resume.extra.get("schedule") or {}
    for saved, current in ((resume.model_args, model_args), (saved_schedule, schedule)):
        for key, value in current.items():
            if key in saved and saved[key] != value:
                raise InputError(f"--checkpoint_path {path} was trained with {key}={saved[key]!r} but this command "
                                 f"gives {value!r} ({RESUME_FLAGS.get(key, key)}); resume with the run's original "
                                 f"options (see args.json next to it)")


# ----------------------------------------------------------------------------------------------------------------
# Stage 3: data


@dataclass
class Data:
    train_set: poses_mod.PoseSet
    valid_set: poses_mod.PoseSet | None
    dataset: poses_mod.PoseDataset  # the training set with its two seeded augmented views


def load_data(args: argparse.Namespace, prep: dict) -> Data:
    train_set = load_pose_file(args.train_data_path, args.dataset, prep, args.cache_dir, "train_data_path")
    valid_set = (load_pose_file(args.valid_data_path, args.dataset, prep, args.cache_dir, "valid_data_path")
                 if args.valid_data_path else None)
    noise_scale = 1.0 if prep["normalize_pose"] == "off" else 1.0 / NOMINAL_BODY_HEIGHT_PX
    transform = TwoViews(train_transform(prep["sequence_length"], prep["multi_branch"],
                                         corrected=args.corrected_augmentation, noise_scale=noise_scale))
    return Data(train_set, valid_set, poses_mod.PoseDataset(train_set, transform=transform, seed=args.seed))


# ----------------------------------------------------------------------------------------------------------------
# Stage 4: model and optimisation


@dataclass
class Training:
    module: torch.nn.Module  # the ResGCN itself: its state_dict is the checkpoint's, validation runs it
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    model_args: dict
    schedule: dict  # what the learning-rate schedule depends on: a resumed run must give the same
    device: torch.device
    use_amp: bool
    dtype: torch.dtype
    model: torch.nn.Module | None = None  # what the training step calls: the module, or its DDP wrapper

    def wrap(self, dist: Dist) -> None:
        """DistributedDataParallel around the module when there are several processes (after agreement: it
        broadcasts rank 0's weights, a collective)."""
        if not dist.enabled:
            self.model = self.module
            return
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        self.model = torch.nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        # The gradients of the 1×1 kernels come back channels-last: strides that differ from the bucket's only in
        # the size-1 dimensions, i.e. the same memory layout; DDP's stride check warns about them regardless.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")


def build_training(args: argparse.Namespace, prep: dict, data: Data, dist: Dist, resume: Checkpoint | None) -> Training:
    device = dist.device
    use_amp = bool(args.use_amp and device.type == "cuda")
    steps = steps_per_epoch(len(data.dataset), args.batch_size, args.max_steps_per_epoch)
    model_args = {"network_name": args.network_name, "num_input_branches": 3 if prep["multi_branch"] else 1,
                  "num_channels": 6 if prep["multi_branch"] else 3, "embedding_size": args.embedding_layer_size}
    schedule = {"epochs": int(args.epochs), "batch_size": int(args.batch_size), "steps_per_epoch": int(steps),
                "dataset": args.dataset}
    if resume is not None:
        check_same_run(args.checkpoint_path, resume, model_args, schedule)
    dtype = torch.float64 if args.float64 else torch.float32
    module = build_model(**model_args).to(device=device, dtype=dtype)
    if args.weight_path and resume is None:
        print(initialise_from(module, args.weight_path).summary())
    if dist.enabled and not args.no_sync_bn:
        use_global_batch_norm(module, dist.group)
    optimizer = torch.optim.Adam(module.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate, epochs=args.epochs,
                                                    steps_per_epoch=steps, div_factor=args.lr_div_factor)
    return Training(module, SupConLoss(temperature=args.temp), optimizer, scheduler,
                    torch.amp.GradScaler(device.type, enabled=use_amp), model_args, schedule, device, use_amp, dtype)


# ----------------------------------------------------------------------------------------------------------------
# Stage 5: restore a resumed run


@dataclass
class Progress:
    start_epoch: int = 1
    best: float = -math.inf
    best_epoch: int | None = None


def restore(training: Training, resume: Checkpoint | None) -> Progress:
    """Load the resumed state into ``training``: every part is checked against a fresh one before it is loaded."""
    if resume is None:
        return Progress()
    where = resume.path
    load_model_state(training.module, resume)
    check_optimizer_state(training.optimizer, resume.optimizer_state, where)
    check_state_like(training.scheduler.state_dict(), resume.scheduler_state, f"{where} (scheduler)")
    training.optimizer.load_state_dict(resume.optimizer_state)
    training.scheduler.load_state_dict(resume.scheduler_state)
    if training.use_amp and resume.scaler_state:
        check_state_like(training.scaler.state_dict(), resume.scaler_state, f"{where} (AMP scaler)")
        training.scaler.load_state_dict(resume.scaler_state)
    if resume.rng_state is not None:
        check_rng_state(resume.rng_state, where)
        set_rng_state(resume.rng_state)
    best_epoch = resume.extra.get("best_epoch")
    return Progress(int(resume.epoch) + 1, float(resume.best_metric),
                    best_epoch if isinstance(best_epoch, int) and not isinstance(best_epoch, bool) else None)


def check_best(run_dir: Path, resume: Checkpoint, progress: Progress) -> None:
    """On resume: best.pt must hold the epoch last.pt records as the best (or a later one, from an epoch that was
    interrupted between the two writes and is recomputed now). Repairs best.pt from last.pt when last.pt is itself
    the best; otherwise says what it found."""
    if progress.best_epoch is None:
        return
    best_path = run_dir / "best.pt"
    try:
        held = load_checkpoint(best_path).epoch if best_path.is_file() else None
    except InputError:
        held = None
    if held == progress.best_epoch or (held is not None and held > resume.epoch):
        return
    if progress.best_epoch == resume.epoch:
        resume.save(best_path)
        print(f"note: repaired {best_path} from {resume.path} (epoch {resume.epoch}, the best so far)")
    else:
        found = "is missing or unreadable" if held is None else f"holds epoch {held}"
        print(f"warning: {best_path} {found} but {resume.path} records the best at epoch {progress.best_epoch}; "
              "it is rewritten at the next improvement", file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------------
# Stage 6: the run directory


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def open_run_dir(args: argparse.Namespace, training: Training, prep: dict, resume: Checkpoint | None,
                 commit: str, dist: Dist) -> Path | None:
    """The resumed run's directory, or a new one with args.json (refusing one that already holds a run).
    Only rank 0 writes: the other processes get None."""
    if resume is not None:
        return Path(resume.path).resolve().parent
    if not dist.is_main:
        return None
    name = args.exp_name or f"{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(args.save_dir) / name
    if (run_dir / "last.pt").exists():
        raise InputError(f"{run_dir} already holds a run; resume it with --checkpoint_path {run_dir / 'last.pt'} "
                         "or choose another --exp_name")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the run directory {run_dir}: {exc.strerror or exc}") from None
    write_json(run_dir / "args.json", {**vars(args), "git_commit": commit, "device": str(training.device),
                                       "processes": dist.world_size, "preprocessing": prep,
                                       "model": training.model_args})
    return run_dir


def tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
    except Exception:  # tensorboard is optional
        return None


# ----------------------------------------------------------------------------------------------------------------
# Stage 7: the loop


def save_epoch(run_dir: Path, checkpoint: Checkpoint, improved: bool) -> None:
    """best.pt (if improved) BEFORE last.pt: a kill between the writes leaves last.pt of the previous epoch."""
    if improved:
        checkpoint.save(run_dir / "best.pt")
    checkpoint.save(run_dir / "last.pt")


def epoch_checkpoint(args, training: Training, prep: dict, epoch: int, best: float, best_epoch, metric: float):
    run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return Checkpoint(model_args=training.model_args, model_state=training.module.state_dict(), run_args=run_args,
                      epoch=epoch, best_metric=best, optimizer_state=training.optimizer.state_dict(),
                      scheduler_state=training.scheduler.state_dict(),
                      scaler_state=training.scaler.state_dict() if training.use_amp else None,
                      rng_state=get_rng_state(),
                      extra={"preprocessing": prep, "dataset": args.dataset, "metric": metric,
                             "schedule": training.schedule, "best_epoch": best_epoch})


def train_loop(args: argparse.Namespace, training: Training, data: Data, prep: dict, progress: Progress,
               run_dir: Path | None, writer, dist: Dist) -> None:
    """Train, validate and save every epoch; with several processes only rank 0 validates the gathered
    embeddings, prints, logs and saves (the others wait for its verdict on the save)."""
    best, best_epoch = progress.best, progress.best_epoch
    labels = np.asarray([target[0] for target in data.dataset.targets], dtype=np.int64)
    input_shape = (training.model_args["num_input_branches"], training.model_args["num_channels"],
                   prep["sequence_length"], 17)
    for epoch in range(progress.start_epoch, args.epochs + 1):
        data.dataset.set_epoch(epoch)
        batches = epoch_batches(len(data.dataset), args.batch_size, args.seed, epoch, args.max_steps_per_epoch)
        loader = make_loader(data.dataset, [dist.local_share(b) for b in batches], args.num_workers)
        result = train_one_epoch(training.model, loader, batches, labels, training.criterion, training.optimizer,
                                 training.scheduler, training.scaler, training.device, input_shape=input_shape,
                                 dist=dist, use_amp=training.use_amp, dtype=training.dtype,
                                 progress=not args.quiet and dist.is_main, epoch=epoch,
                                 log_interval=args.log_interval)
        line = (f"epoch {epoch}/{args.epochs}: loss {result.loss:.4f}, lr {result.lr:.2e}, {result.seconds:.1f} s "
                f"({result.samples_per_second:.1f} samples/s"
                + (f", {result.samples_per_second / dist.world_size:.1f} per process)" if dist.enabled else ")"))
        if not math.isfinite(result.loss):  # the same on every process
            raise InputError(f"epoch {epoch}: the training loss is {result.loss}; stopping before any checkpoint is "
                             f"overwritten (last.pt holds epoch {epoch - 1}); try a lower --learning_rate or a "
                             "higher --temp")
        val = None
        if data.valid_set is not None:
            val = validate(training.module, data.valid_set, args.dataset, prep, training.device,
                           batch_size=max(args.batch_size, 64), query_list=args.query_list,
                           what=f"validation embeddings after epoch {epoch}", dist=dist)
        error = None
        if dist.is_main:
            metric = val.metric if val is not None else -result.loss  # without validation: the training loss
            improved = metric > best
            if improved:
                best, best_epoch = metric, epoch
            try:
                save_epoch(run_dir, epoch_checkpoint(args, training, prep, epoch, best, best_epoch, metric), improved)
            except InputError as exc:
                error = str(exc)
        dist.agree(error)
        if dist.is_main:
            if val is not None:
                line += f"; validation: {val.text}"
            print(line + ("  (best)" if improved else ""), flush=True)
            if val is not None and val.warning:
                print(val.warning, file=sys.stderr, flush=True)
            if writer is not None:
                writer.add_scalar("train/loss", result.loss, epoch)
                writer.add_scalar("train/lr", result.lr, epoch)
                writer.add_scalar("train/samples_per_s", result.samples_per_second, epoch)
                for key, value in (val.scalars if val is not None else {}).items():
                    writer.add_scalar(key, value, epoch)
        if args.stop_after_epoch is not None and epoch >= args.stop_after_epoch and epoch < args.epochs:
            if dist.is_main:
                print(f"stopping after epoch {epoch} (--stop_after_epoch); resume with --checkpoint_path "
                      f"{run_dir / 'last.pt'}")
            break


# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    prep: dict
    resume: Checkpoint | None
    data: Data
    training: Training
    progress: Progress
    run_dir: Path | None
    commit: str


def set_up(args: argparse.Namespace, dist: Dist) -> Setup:
    """Stages 2–6, with no collective inside: a process that fails here reports at the agreement after it."""
    prep = preprocessing_from_args(args)
    resume = load_resume(args, prep)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    data = load_data(args, prep)
    check_distribution(args, dist, len(data.dataset))
    training = build_training(args, prep, data, dist, resume)
    progress = restore(training, resume)
    commit = git_commit() if dist.is_main else ""
    run_dir = open_run_dir(args, training, prep, resume, commit, dist)
    return Setup(prep, resume, data, training, progress, run_dir, commit)


def train(args: argparse.Namespace, dist: Dist) -> Path | None:
    error, setup = None, None
    try:
        setup = set_up(args, dist)
    except InputError as exc:
        error = str(exc)
    dist.agree(error)
    training, run_dir = setup.training, setup.run_dir
    training.wrap(dist)
    if dist.is_main:
        if args.use_amp and not training.use_amp:
            print("note: --use_amp needs CUDA; training in float32 on the CPU")
        if setup.resume is not None:
            print(f"resuming {run_dir} after epoch {setup.progress.start_epoch - 1} (best {setup.progress.best:.2f})")
            check_best(run_dir, setup.resume, setup.progress)
        print(f"run directory: {run_dir}")
        print("arguments: " + ", ".join(f"{k}={v}" for k, v in sorted(vars(args).items())))
        processes = (f"{dist.world_size} processes ({dist.backend}, global batch {args.batch_size} = "
                     f"{dist.world_size} × {args.batch_size // dist.world_size}, "
                     f"{'per-process' if args.no_sync_bn else 'global'} BatchNorm statistics)"
                     if dist.enabled else "1 process")
        print(f"git commit: {setup.commit}; device: {training.device}; {processes}; {len(setup.data.train_set)} "
              f"training sequences, {training.schedule['steps_per_epoch']} steps per epoch")
    writer = tensorboard_writer(run_dir) if dist.is_main else None
    try:
        train_loop(args, training, setup.data, setup.prep, setup.progress, run_dir, writer, dist)
    finally:
        if writer is not None:
            writer.close()
    return run_dir


def run(args: argparse.Namespace) -> Path | None:
    """The whole command; under torchrun every process runs it, and only rank 0 prints or writes."""
    torchrun_rank = int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0
    dist = Dist()
    try:
        check_args(args)
        dist = start(args.device, args.dist_backend, args.dist_timeout)
        with dist.quiet_unless_main():
            return train(args, dist)
    except InputError:
        if torchrun_rank != 0:  # rank 0 prints the one line
            raise SystemExit(EXIT_BAD_INPUT) from None
        raise
    except Exception as exc:  # a collective that timed out or lost a peer: one line from every process that saw it
        if not (dist.enabled and is_peer_failure(exc)):
            raise
        print(f"train.py: error: {peer_failure_message(dist, exc, args.dist_timeout)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        dist.close()


def main(argv: list[str] | None = None) -> int:
    return cli_main("train.py", build_parser(), run, argv, keep_freed_memory=True)


if __name__ == "__main__":
    sys.exit(main())
