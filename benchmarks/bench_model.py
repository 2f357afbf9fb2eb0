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

The original-style model below (``OriginalStyleResGCN``) follows the original forward structure: the 1×1
``gcn`` convolution to K·C channels, then ``einsum('nkctv,kvw->nctw')`` with ``A * edge`` recomputed on every
call, BatchNorm modules after every convolution, ReLUs and residual additions out of place, NCHW memory,
global pooling followed by ``squeeze()``. The tests also use it as an independent implementation of the original ResGCN.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gafnet.allocator import keep_freed_memory  # noqa: E402
from gafnet.gait.graph import coco_adjacency  # noqa: E402
from gafnet.gait.resgcn import build_model, parse_network_name  # noqa: E402
from gafnet.gait.supcon import SupConLoss  # noqa: E402

# ----------------------------------------------------------------------------------------------------------------
# Original-style ResGCN: a plain reading of the original ResGCN, module names as in the original state_dict.


def _no_residual(x):
    return 0


def _identity(x):
    return x


def _residual_branch(enabled: bool, cin: int, cout: int, stride: int = 1):
    if not enabled:
        return _no_residual
    if cin == cout and stride == 1:
        return _identity
    return nn.Sequential(nn.Conv2d(cin, cout, 1, (stride, 1)), nn.BatchNorm2d(cout))


class OriginalGraphConv(nn.Module):
    def __init__(self, cin: int, cout: int, num_kernels: int = 3):
        super().__init__()
        self.num_kernels = num_kernels
        self.gcn = nn.Conv2d(cin, cout * num_kernels, 1)

    def forward(self, x, A):
        x = self.gcn(x)
        n, kc, t, v = x.size()
        x = x.view(n, self.num_kernels, kc // self.num_kernels, t, v)
        return torch.einsum("nkctv,kvw->nctw", (x, A[: self.num_kernels])).contiguous()


class OriginalSpatialBasic(nn.Module):
    def __init__(self, cin, cout, residual, reduction):
        super().__init__()
        self.residual = _residual_branch(residual, cin, cout)
        self.conv = OriginalGraphConv(cin, cout)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x, A):
        res = self.residual(x)
        return F.relu(self.bn(self.conv(x, A)) + res)


class OriginalTemporalBasic(nn.Module):
    def __init__(self, channels, stride, residual, reduction):
        super().__init__()
        self.residual = _residual_branch(residual, channels, channels, stride)
        self.conv = nn.Conv2d(channels, channels, (9, 1), (stride, 1), (4, 0))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x, res_module):
        res = self.residual(x)
        return F.relu(self.bn(self.conv(x)) + res + res_module)


class OriginalSpatialBottleneck(nn.Module):
    def __init__(self, cin, cout, residual, reduction):
        super().__init__()
        inner = cout // reduction
        self.residual = _residual_branch(residual, cin, cout)
        self.conv_down = nn.Conv2d(cin, inner, 1)
        self.bn_down = nn.BatchNorm2d(inner)
        self.conv = OriginalGraphConv(inner, inner)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_up = nn.Conv2d(inner, cout, 1)
        self.bn_up = nn.BatchNorm2d(cout)

    def forward(self, x, A):
        res = self.residual(x)
        x = F.relu(self.bn_down(self.conv_down(x)))
        x = F.relu(self.bn(self.conv(x, A)))
        x = self.bn_up(self.conv_up(x))
        return F.relu(x + res)


class OriginalTemporalBottleneck(nn.Module):
    def __init__(self, channels, stride, residual, reduction):
        super().__init__()
        inner = channels // reduction
        self.residual = _residual_branch(residual, channels, channels, stride)
        self.conv_down = nn.Conv2d(channels, inner, 1)
        self.bn_down = nn.BatchNorm2d(inner)
        self.conv = nn.Conv2d(inner, inner, (9, 1), (stride, 1), (4, 0))
        self.bn = nn.BatchNorm2d(inner)
        self.conv_up = nn.Conv2d(inner, channels, 1)
        self.bn_up = nn.BatchNorm2d(channels)

    def forward(self, x, res_module):
        res = self.residual(x)
        x = F.relu(self.bn_down(self.conv_down(x)))
        x = F.relu(self.bn(self.conv(x)))
        x = self.bn_up(self.conv_up(x))
        return F.relu(x + res + res_module)


class OriginalModule(nn.Module):
    def __init__(self, cin, cout, block, A, reduction, initial=False, stride=1):
        super().__init__()
        if initial:
            module_res, block_res = False, False
        elif block == "Basic":
            module_res, block_res = True, False
        else:
            module_res, block_res = False, True
        self.residual = _residual_branch(module_res, cin, cout, stride)
        spatial, temporal = ((OriginalSpatialBasic, OriginalTemporalBasic) if block == "Basic"
                             else (OriginalSpatialBottleneck, OriginalTemporalBottleneck))
        self.scn = spatial(cin, cout, block_res, reduction)
        self.tcn = temporal(cout, stride, block_res, reduction)
        self.edge = nn.Parameter(torch.ones_like(A))

    def forward(self, x, A):
        return self.tcn(self.scn(x, A * self.edge), self.residual(x))


class OriginalBranch(nn.Module):
    def __init__(self, structure, block, num_channels, A, reduction):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.bn = nn.BatchNorm2d(num_channels)
        layers = [OriginalModule(num_channels, 64, "Basic", A, reduction, initial=True)]
        layers += [OriginalModule(64, 64, "Basic", A, reduction, initial=True) for _ in range(structure[0] - 1)]
        layers += [OriginalModule(64, 64, block, A, reduction) for _ in range(structure[1] - 1)]
        layers += [OriginalModule(64, 32, block, A, reduction)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        x = self.bn(x)
        for layer in self.layers:
            x = layer(x, self.A)
        return x


class OriginalStyleResGCN(nn.Module):
    def __init__(self, structure, block, reduction, num_input_branches, num_channels, embedding_size, A):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.input_branches = nn.ModuleList(
            [OriginalBranch(structure, block, num_channels, A, reduction) for _ in range(num_input_branches)]
        )
        main = [OriginalModule(32 * num_input_branches, 128, block, A, reduction, stride=2)]
        main += [OriginalModule(128, 128, block, A, reduction) for _ in range(structure[2] - 1)]
        main += [OriginalModule(128, 256, block, A, reduction, stride=2)]
        main += [OriginalModule(256, 256, block, A, reduction) for _ in range(structure[3] - 1)]
        self.main_stream = nn.ModuleList(main)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.fcn = nn.Linear(256, embedding_size)

    def forward(self, x):
        x_cat = [branch(x[:, i]) for i, branch in enumerate(self.input_branches)]
        x = torch.cat(x_cat, dim=1)
        for layer in self.main_stream:
            x = layer(x, self.A)
        x = self.global_pooling(x)
        x = self.fcn(x.squeeze())  # the original's bare squeeze(): a batch of one breaks here
        return F.normalize(x, dim=1, p=2)


def build_original_style(network_name="resgcn-n39-r8", num_input_branches=1, num_channels=3, embedding_size=128):
    """The original-style model for a network name (weights left at PyTorch's defaults; load a state_dict)."""
    spec = parse_network_name(network_name)
    A = torch.from_numpy(coco_adjacency())
    return OriginalStyleResGCN(spec.structure, spec.block, spec.reduction, num_input_branches, num_channels,
                               embedding_size, A)


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
