"""GaitGraph training (the logic of ``gaitgraph/src/train.py``): SupCon on two augmented views.

Stages, as the original (the original GaitGraph code: Training loop): every sample is augmented twice, the two
views go through the ResGCN together, their embeddings are stacked to (B, 2, E) for SupConLoss (Khosla et
al. 2020); Adam with weight decay; OneCycleLR stepped after every batch; optional AMP on CUDA; validation
after every epoch (iLIDS-VID/MARS: Rank-1, Rank-5, mAP with the project's one evaluator; CASIA-B: the
cross-view protocol table). ``best.pt`` follows the validation metric, ``last.pt`` every epoch, both written
atomically with everything needed to resume exactly.

Determinism: the sample order of epoch e comes from a generator seeded with (seed, e) and the
augmentation of sample i in epoch e from (seed, e, i), so a run resumed from ``last.pt`` draws exactly what
the uninterrupted run would have drawn.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_json
from ..device import DEVICE_CHOICES, choose_device
from ..errors import InputError, cli_main
from . import poses as poses_mod
from .augment import TwoViews, train_transform
from .checkpoint import (get_rng_state, initialise_from, load_checkpoint, save_checkpoint, set_rng_state)
from .extract import extract_embeddings
from .resgcn import DEFAULT_NETWORK, build_model, valid_network_names
from .supcon import SupConLoss

REPO_ROOT = Path(__file__).resolve().parents[2]
NORMALIZE_CHOICES = ("off", "sequence", "frame")
NOMINAL_BODY_HEIGHT_PX = 100.0  # converts the pixel noise of the augmentations to normalised coordinates


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by train.py and evaluate.py (pose loading and preprocessing)."""
    p.add_argument("--sequence_length", type=int, default=60, help="frames per window (default 60)")
    p.add_argument("--drop_short", action="store_true",
                   help="drop sequences shorter than sequence_length + 1 frames, as the original "
                        "(default: reflect-pad them and report how many)")
    p.add_argument("--normalize_pose", choices=NORMALIZE_CHOICES, default="off",
                   help="centre poses on the hips and scale by body height, per sequence or per frame "
                        "(default off, as the original: raw pixel coordinates)")
    p.add_argument("--cache_dir", default=None, help="directory for the binary cache of parsed pose files (default: none)")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} or cuda:N (default auto)")


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
               "--epochs 300 --temp 0.01",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(poses_mod.DATASETS), help="pose file format")
    p.add_argument("train_data_path", help="training pose CSV")
    p.add_argument("--valid_data_path", default=None,
                   help="validation pose CSV, evaluated after every epoch; best.pt follows it. The original recipe "
                        "passes the TEST split here (optimistic); pass a held-out split instead (see README)")
    p.add_argument("--batch_size", type=int, default=128, help="samples per batch, each seen as 2 views (default 128)")
    p.add_argument("--epochs", type=int, default=300, help="default 300")
    p.add_argument("--learning_rate", type=float, default=1e-2, help="OneCycleLR max_lr (default 1e-2)")
    p.add_argument("--lr_div_factor", type=float, default=25.0, help="OneCycleLR div_factor (default 25)")
    p.add_argument("--weight_decay", type=float, default=1e-5, help="Adam weight decay (default 1e-5)")
    p.add_argument("--temp", type=float, default=0.01, help="SupConLoss temperature (default 0.01, the recipe's)")
    p.add_argument("--network_name", default=DEFAULT_NETWORK, help=f"ResGCN name (default {DEFAULT_NETWORK})")
    p.add_argument("--embedding_layer_size", type=int, default=128, help="embedding size (default 128)")
    p.add_argument("--use_multi_branch", action="store_true", help="three input branches (joints, velocity, bones)")
    p.add_argument("--corrected_augmentation", action="store_true",
                   help="JointNoise honours its std, mirroring swaps left/right joints, MultiInput writes every angle "
                        "(default: the original's behaviour)")
    p.add_argument("--checkpoint_path", default=None, help="resume from this last.pt (epoch, optimizer, scheduler, RNG)")
    p.add_argument("--weight_path", default=None,
                   help="initialise the weights from this checkpoint (ours or the original's), e.g. stage 1")
    p.add_argument("--use_amp", action="store_true", help="mixed precision (CUDA only; ignored with a note on CPU)")
    p.add_argument("--num_workers", type=int, default=0, help="DataLoader workers (default 0)")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--exp_name", default=None, help="run directory name (default: <dataset>-<time>)")
    p.add_argument("--save_dir", default=str(REPO_ROOT / "runs"), help="parent of the run directories (default: runs/ at the repository root, "
                   "wherever the script is started from)")
    p.add_argument("--query_list", default=None,
                   help="MARS validation: query tracklets CSV (default: the standard 1,980; torchreid's protocol)")
    p.add_argument("--max_steps_per_epoch", type=int, default=None, help="cut epochs short (quick tests)")
    p.add_argument("--stop_after_epoch", type=int, default=None,
                   help="stop after this epoch as if interrupted (e.g. a job time limit); continue later with "
                        "--checkpoint_path <run>/last.pt and the same options")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_arguments(p)
    return p


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def preprocessing_args(args) -> dict:
    """Every choice that changes the network input; saved in checkpoints and applied again at extraction."""
    return {"sequence_length": int(args.sequence_length), "normalize_pose": args.normalize_pose,
            "multi_branch": bool(args.use_multi_branch), "all_angles": bool(args.corrected_augmentation),
            "drop_short": bool(args.drop_short)}


def load_pose_file(path, dataset: str, prep: dict, cache_dir=None, label: str = "poses"):
    if not Path(path).is_file():
        raise InputError(f"{label}: file not found: {path}")
    normalize = False if prep["normalize_pose"] == "off" else prep["normalize_pose"]
    data = poses_mod.load_poses(path, dataset, sequence_length=prep["sequence_length"], drop_short=prep["drop_short"],
                                normalize=normalize, cache_dir=cache_dir)
    print(data.report.summary())
    if len(data) == 0:
        raise InputError(f"{path}: no usable pose sequence (see the report above)")
    return data


def labels_of(pose_set) -> np.ndarray:
    """The identity of every sequence: person (iLIDS-VID, MARS) or subject (CASIA-B), the targets' first field."""
    return pose_set.targets[:, 0].astype(np.int64)


@dataclass
class Validation:
    metric: float  # what best.pt follows (Rank-1 in %, CASIA-B: mean accuracy in %)
    text: str
    scalars: dict


def validate(model, pose_set, dataset: str, prep: dict, device, batch_size: int, query_list=None) -> Validation:
    """Embed the validation file and score it with the dataset's protocol."""
    from . import protocols

    feats = extract_embeddings(model, pose_set, sequence_length=prep["sequence_length"],
                               multi_branch=prep["multi_branch"], all_angles=prep["all_angles"],
                               batch_size=batch_size, device=device)
    fields = pose_set.target_fields
    if poses_mod.get_format(dataset).name == "casia-b":
        res = protocols.casia_b_table(feats, pose_set.column(fields[0]), pose_set.column(fields[1]),
                                      pose_set.column(fields[2]), pose_set.column(fields[3]))
        means = {c: 100.0 * float(v) for c, v in zip(("NM", "BG", "CL"), res.condition_mean)}
        return Validation(100.0 * float(res.mean),
                          "CASIA-B " + " ".join(f"{c} {v:.2f}" for c, v in means.items()) + f" mean {100 * res.mean:.2f}",
                          {**{f"casia/{c}": v for c, v in means.items()}, "casia/mean": 100.0 * float(res.mean)})
    if poses_mod.get_format(dataset).name == "mars":
        res = protocols.evaluate_mars(feats, pose_set.column(fields[0]), pose_set.column(fields[1]),
                                      pose_set.column(fields[2]), query_list=query_list)
    else:
        res = protocols.evaluate_ilids(feats, pose_set.column(fields[0]), pose_set.column(fields[1]))
    r1, r5, mAP = 100.0 * float(res.cmc[0]), 100.0 * float(res.cmc[min(4, len(res.cmc) - 1)]), 100.0 * res.mAP
    return Validation(r1, f"Rank-1 {r1:.2f}  Rank-5 {r5:.2f}  mAP {mAP:.2f}",
                      {"val/rank1": r1, "val/rank5": r5, "val/mAP": mAP})


def _collate(batch):
    views = [torch.stack([sample[0][v] for sample in batch]) for v in range(2)]  # 2 × (B, I, C, T, V)
    targets = [sample[1] for sample in batch]
    return views, targets


def make_loader(dataset, batch_size: int, seed: int, epoch: int, num_workers: int):
    generator = torch.Generator().manual_seed(int(seed) * 100003 + int(epoch))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                                       num_workers=num_workers, collate_fn=_collate, drop_last=False,
                                       persistent_workers=False)


def train_one_epoch(model, loader, criterion, optimizer, scheduler, scaler, device, use_amp: bool,
                    max_steps: int | None, progress: bool, epoch: int) -> float:
    model.train()
    losses = []
    iterator = loader
    if progress:
        from tqdm import tqdm

        iterator = tqdm(loader, desc=f"epoch {epoch}", unit="batch", dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    seen = 0
    for step, (views, targets) in enumerate(iterator):
        if max_steps is not None and step >= max_steps:
            break
        labels = torch.as_tensor([t[0] for t in targets], device=device)
        x = torch.cat(views, dim=0).to(device, non_blocking=True)  # (2B, I, C, T, V)
        batch = views[0].shape[0]
        with torch.autocast(device_type=device.type, enabled=use_amp):
            out = model(x)  # (2B, E)
        f1, f2 = torch.split(out.float(), [batch, batch], dim=0)
        loss = criterion(torch.stack([f1, f2], dim=1), labels)  # features (B, 2, E)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        losses.append(float(loss.detach()))
        seen += batch
        if progress:
            rate = seen / max(time.perf_counter() - started, 1e-9)
            iterator.set_postfix(loss=f"{losses[-1]:.4f}", samples_per_s=f"{rate:.1f}")
    return float(np.mean(losses)) if losses else math.nan


def _check_resume(path, resume: dict, model_args: dict, schedule: dict) -> None:
    """A resumed run must rebuild the same model and the same learning-rate schedule as the one it continues."""
    flags = {"network_name": "--network_name", "embedding_size": "--embedding_layer_size",
             "num_input_branches": "--use_multi_branch", "num_channels": "--use_multi_branch",
             "epochs": "--epochs", "batch_size": "--batch_size", "steps_per_epoch": "--batch_size/--max_steps_per_epoch "
             "(or a different training file)", "dataset": "the dataset argument"}
    saved_schedule = (resume.get("extra") or {}).get("schedule") or {}
    for saved, current in ((resume.get("model_args") or {}, model_args), (saved_schedule, schedule)):
        for key, value in current.items():
            if key in saved and saved[key] != value:
                raise InputError(f"--checkpoint_path {path} was trained with {key}={saved[key]!r} but this command "
                                 f"gives {value!r} ({flags.get(key, key)}); resume with the run's original options "
                                 f"(see args.json next to it)")


def run(args: argparse.Namespace) -> Path:
    device = choose_device(args.device)
    use_amp = bool(args.use_amp and device.type == "cuda")
    if args.use_amp and not use_amp:
        print("note: --use_amp needs CUDA; training in float32 on the CPU")
    if args.network_name not in valid_network_names():
        raise InputError(f"Unknown network: {args.network_name}. Must be one of {valid_network_names()}")
    for name in ("batch_size", "epochs", "sequence_length", "embedding_layer_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.temp > 0:
        raise InputError(f"--temp must be > 0, got {args.temp}")
    prep = preprocessing_args(args)
    resume = load_checkpoint(args.checkpoint_path) if args.checkpoint_path else None
    if resume is not None:
        if resume.get("format") != "gafnet" or resume.get("optimizer_state") is None:
            raise InputError(f"{args.checkpoint_path}: not a resumable checkpoint of this project (use --weight_path "
                             "to initialise from an original GaitGraph checkpoint)")
        saved = resume.get("extra", {}).get("preprocessing", {})
        for key, value in saved.items():
            if key in prep and prep[key] != value:
                raise InputError(f"--checkpoint_path {args.checkpoint_path} was trained with {key}={value!r} but the "
                                 f"command line says {prep[key]!r}; resume with the same options")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    # data
    train_set = load_pose_file(args.train_data_path, args.dataset, prep, args.cache_dir, "train_data_path")
    valid_set = (load_pose_file(args.valid_data_path, args.dataset, prep, args.cache_dir, "valid_data_path")
                 if args.valid_data_path else None)
    noise_scale = 1.0 if prep["normalize_pose"] == "off" else 1.0 / NOMINAL_BODY_HEIGHT_PX
    transform = TwoViews(train_transform(prep["sequence_length"], prep["multi_branch"],
                                         corrected=args.corrected_augmentation, noise_scale=noise_scale))
    dataset = poses_mod.PoseDataset(train_set, transform=transform, seed=args.seed)
    steps_per_epoch = math.ceil(len(dataset) / args.batch_size)
    if args.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.max_steps_per_epoch)

    # model, optimisation
    model_args = {"network_name": args.network_name, "num_input_branches": 3 if prep["multi_branch"] else 1,
                  "num_channels": 6 if prep["multi_branch"] else 3, "embedding_size": args.embedding_layer_size}
    schedule = {"epochs": int(args.epochs), "batch_size": int(args.batch_size), "steps_per_epoch": int(steps_per_epoch),
                "dataset": args.dataset}
    if resume is not None:
        _check_resume(args.checkpoint_path, resume, model_args, schedule)
    model = build_model(**model_args).to(device)
    if args.weight_path and resume is None:
        report = initialise_from(model, args.weight_path)
        print(report if isinstance(report, str) else getattr(report, "summary", lambda: report)())
    criterion = SupConLoss(temperature=args.temp)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate, epochs=args.epochs,
                                                    steps_per_epoch=steps_per_epoch, div_factor=args.lr_div_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    start_epoch, best = 1, -math.inf
    if resume is not None:
        model.load_state_dict(resume["model_state"])
        optimizer.load_state_dict(resume["optimizer_state"])
        scheduler.load_state_dict(resume["scheduler_state"])
        if resume.get("scaler_state"):
            scaler.load_state_dict(resume["scaler_state"])
        start_epoch = int(resume["epoch"]) + 1
        best = float(resume.get("best_metric", -math.inf))
        if resume.get("rng_state") is not None:
            set_rng_state(resume["rng_state"])
        run_dir = Path(args.checkpoint_path).resolve().parent
        print(f"resuming {run_dir} after epoch {start_epoch - 1} (best {best:.2f})")
    else:
        name = args.exp_name or f"{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(args.save_dir) / name
        if (run_dir / "last.pt").exists():
            raise InputError(f"{run_dir} already holds a run; resume it with --checkpoint_path {run_dir / 'last.pt'} "
                             "or choose another --exp_name")
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "args.json", {**vars(args), "git_commit": git_commit(), "device": str(device),
                                           "preprocessing": prep, "model": model_args})
    print(f"run directory: {run_dir}")
    print("arguments: " + ", ".join(f"{k}={v}" for k, v in sorted(vars(args).items())))
    print(f"git commit: {git_commit()}; device: {device}; {len(train_set)} training sequences, "
          f"{steps_per_epoch} steps per epoch")
    writer = None
    try:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
    except Exception:  # tensorboard is optional
        writer = None

    run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    for epoch in range(start_epoch, args.epochs + 1):
        dataset.set_epoch(epoch)
        loader = make_loader(dataset, args.batch_size, args.seed, epoch, args.num_workers)
        t0 = time.perf_counter()
        loss = train_one_epoch(model, loader, criterion, optimizer, scheduler, scaler, device, use_amp,
                               args.max_steps_per_epoch, not args.quiet, epoch)
        elapsed = time.perf_counter() - t0
        line = f"epoch {epoch}/{args.epochs}: loss {loss:.4f}, lr {scheduler.get_last_lr()[0]:.2e}, {elapsed:.1f} s"
        metric = -loss  # without validation, best.pt follows the training loss
        if valid_set is not None:
            val = validate(model, valid_set, args.dataset, prep, device, batch_size=max(args.batch_size, 64),
                           query_list=args.query_list)
            metric = val.metric
            line += f"; validation: {val.text}"
            if writer is not None:
                for key, value in val.scalars.items():
                    writer.add_scalar(key, value, epoch)
        if writer is not None:
            writer.add_scalar("train/loss", loss, epoch)
            writer.add_scalar("train/lr", scheduler.get_last_lr()[0], epoch)
        improved = metric > best
        best = max(best, metric)
        state = dict(model_args=model_args, model_state=model.state_dict(), run_args=run_args, epoch=epoch,
                     best_metric=best, optimizer_state=optimizer.state_dict(), scheduler_state=scheduler.state_dict(),
                     scaler_state=scaler.state_dict() if use_amp else None, rng_state=get_rng_state(),
                     extra={"preprocessing": prep, "dataset": args.dataset, "metric": metric,
                            "schedule": schedule})
        save_checkpoint(run_dir / "last.pt", **state)
        if improved:
            save_checkpoint(run_dir / "best.pt", **state)
            line += "  (best)"
        print(line, flush=True)
        if args.stop_after_epoch is not None and epoch >= args.stop_after_epoch and epoch < args.epochs:
            print(f"stopping after epoch {epoch} (--stop_after_epoch); resume with --checkpoint_path {run_dir / 'last.pt'}")
            break
    if writer is not None:
        writer.close()
    return run_dir


def main(argv: list[str] | None = None) -> int:
    return cli_main("train.py", build_parser(), run, argv, keep_freed_memory=True)


if __name__ == "__main__":
    sys.exit(main())
