"""Throughput of our ResGCN against a straightforward "original-style" implementation of the same network.

    python benchmarks/bench_model.py                       # resgcn-n39-r8, batch 64 (×2 views), 5 repeats
    python benchmarks/bench_model.py --repeats 3 --batch 16 --infer-batch 64     # quick run
    python benchmarks/bench_model.py --threads 1           # steadier numbers on a busy machine

Both models are built with the same weights (ours → original-style via load_state_dict(strict=True)) and
their outputs are checked to agree (eval and training mode) before anything is timed. Then, alternating
between the two so that both see the same machine load:

- training: one step = forward of 2·batch sequences (two views per sample), SupConLoss (temperature 0.01),
  backward, Adam step — the GaitGraph training step; reported in training samples per second;
- inference: forward of --infer-batch sequences in eval mode — the original under torch.no_grad() as its
  extraction did, ours under torch.inference_mode(); reported in sequences per second.

Each figure is the median over --repeats timed runs (after --warmup untimed ones), wall clock; CPU time is
printed too, which is the steadier measure when other processes share the cores.

The original-style model (``gafnet.gait.reference_resgcn``) follows the original forward structure: the 1×1
``gcn`` convolution to K·C channels, then ``einsum('nkctv,kvw->nctw')`` with ``A * edge`` recomputed on every
call, BatchNorm modules after every convolution, ReLUs and residual additions out of place, NCHW memory,
global pooling followed by ``squeeze()``. The tests use it as the independent implementation of the original ResGCN.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gafnet.allocator import keep_freed_memory  # noqa: E402
from gafnet.gait.reference_resgcn import build_original_style  # noqa: E402
from gafnet.gait.resgcn import build_model  # noqa: E402
from gafnet.gait.supcon import SupConLoss  # noqa: E402

# ----------------------------------------------------------------------------------------------------------------
# Benchmark


def check_agreement(ours, original, num_input_branches, num_channels, frames) -> tuple[float, float]:
    """Max |difference| of the outputs in eval mode and in training mode (on copies, so stats stay put)."""
    import copy

    x = torch.randn(8, num_input_branches, num_channels, frames, 17)
    a, b = copy.deepcopy(ours), copy.deepcopy(original)
    a.eval(), b.eval()
    with torch.no_grad():
        eval_diff = (a(x) - b(x)).abs().max().item()
    a.train(), b.train()
    with torch.no_grad():
        train_diff = (a(x) - b(x)).abs().max().item()
    return eval_diff, train_diff


def make_train_step(model, inputs, labels, temperature):
    criterion = SupConLoss(temperature=temperature)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, weight_decay=1e-5)
    batch = labels.shape[0]

    def step():
        model.train()
        out = model(inputs)  # (2B, E): [view 1; view 2]
        features = torch.stack(torch.split(out, batch, dim=0), dim=1)  # (B, 2, E)
        loss = criterion(features, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def make_infer_step(model, inputs, context):
    def step():
        model.eval()
        with context():
            model(inputs)

    return step


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="resgcn-n39-r8", help="network name (default: resgcn-n39-r8)")
    parser.add_argument("--batch", type=int, default=64,
                        help="training samples per step; each gives 2 views, so 2×batch sequences (default: 64)")
    parser.add_argument("--infer-batch", type=int, default=256, help="sequences per inference call (default: 256)")
    parser.add_argument("--frames", type=int, default=60, help="sequence length T in frames (default: 60)")
    parser.add_argument("--branches", type=int, default=1, help="input branches I (default: 1)")
    parser.add_argument("--channels", type=int, default=3, help="input channels C (default: 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default (default: 0)")
    parser.add_argument("--skip-train", action="store_true", help="time inference only")
    parser.add_argument("--skip-infer", action="store_true", help="time training only")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc's malloc as it is (train.py and evaluate.py tune it: gafnet/allocator.py)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = False if args.no_malloc_tuning else keep_freed_memory()
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, network {args.network}, "
          f"I={args.branches} C={args.channels} T={args.frames}, malloc tuning {'on' if tuned else 'off'} "
          "(both models)")

    ours = build_model(args.network, args.branches, args.channels, 128)
    original = build_original_style(args.network, args.branches, args.channels, 128)
    original.load_state_dict(ours.state_dict(), strict=True)
    eval_diff, train_diff = check_agreement(ours, original, args.branches, args.channels, args.frames)
    agree = eval_diff < 1e-5 and train_diff < 1e-4
    print(f"outputs agree: max |Δ| eval {eval_diff:.1e}, train {train_diff:.1e} -> {'OK' if agree else 'MISMATCH'}")
    if not agree:
        return 1

    steps = {}
    if not args.skip_train:
        x = torch.randn(2 * args.batch, args.branches, args.channels, args.frames, 17)
        labels = torch.randint(0, max(2, args.batch // 4), (args.batch,))
        steps["train"] = {
            "original": make_train_step(original, x, labels, 0.01),
            "ours": make_train_step(ours, x, labels, 0.01),
        }
    if not args.skip_infer:
        x = torch.randn(args.infer_batch, args.branches, args.channels, args.frames, 17)
        steps["infer"] = {
            "original": make_infer_step(original, x, torch.no_grad),
            "ours": make_infer_step(ours, x, torch.inference_mode),
        }

    units = {"train": ("training samples/s", args.batch), "infer": ("inference sequences/s", args.infer_batch)}
    for kind, pair in steps.items():
        for fn in pair.values():
            for _ in range(args.warmup):
                fn()
        times = {name: [] for name in pair}
        for _ in range(args.repeats):
            for name, fn in pair.items():  # alternate, so both see the same load
                times[name].append(timed(fn))
        label, count = units[kind]
        rates = {}
        for name, runs in times.items():
            wall = statistics.median(t for t, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            rates[name] = (count / wall, count / cpu)
            print(f"{kind:5s} {name:8s}: {count / wall:8.1f} {label} (median wall {wall * 1e3:7.0f} ms, "
                  f"cpu {cpu * 1e3:7.0f} ms)")
        print(f"{kind:5s} speed-up ours/original: {rates['ours'][0] / rates['original'][0]:.2f}× wall, "
              f"{rates['ours'][1] / rates['original'][1]:.2f}× cpu time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
