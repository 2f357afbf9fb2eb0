"""Training throughput of gaitgraph/src/train.py with 1 and N processes (torchrun, DistributedDataParallel).

    python benchmarks/bench_distributed.py                     # CPU: 1 process × 2 threads vs 2 processes × 1 thread
    python benchmarks/bench_distributed.py --device cuda       # GPUs: 1 GPU vs every visible GPU (nccl)
    python benchmarks/bench_distributed.py --nproc 4 --threads 1 --epochs 4 --steps 8 --batch_size 64

Both runs train the same model on the same synthetic iLIDS-VID-like poses with the same GLOBAL batch (so they
compute the same optimisation: the script checks that their first losses agree, float32) and report
train.py's own figure: training samples per second of an epoch (forward, SupCon on the global batch, backward,
Adam step; no validation), the median over the epochs after the first (warm-up), then the median over
--repeats runs of each, alternating between the two so that both see the same machine load. Scaling efficiency:

- CPU, the same cores both ways: efficiency = rate(N processes × 1 thread) / rate(1 process × N threads);
- GPU: efficiency = rate(N GPUs) / (N × rate(1 GPU)); samples/s per GPU are printed too.

On a shared or small CPU the figures are indicative only (say so when quoting them).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gafnet.gait import synthetic_poses  # noqa: E402

TRAIN = ROOT / "gaitgraph" / "src" / "train.py"
RATE = re.compile(r"^epoch (\d+)/\d+: loss \S+, lr \S+, \S+ s \(([\d.]+) samples/s", re.M)
STEP = re.compile(r"^epoch \d+ step \d+/\d+: loss (\S+),", re.M)


def run(label: str, command: list[str], threads: int) -> tuple[float, list[float], float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
    rates = [float(rate) for epoch, rate in RATE.findall(done.stdout) if int(epoch) > 1]
    losses = [float(loss) for loss in STEP.findall(done.stdout)]
    if not rates:
        raise SystemExit(f"{label}: no epoch after the first was timed; use --epochs 2 or more")
    return statistics.median(rates), losses, wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default cpu")
    p.add_argument("--nproc", type=int, default=None,
                   help="processes of the distributed run (default: 2 on the CPU, every visible GPU on CUDA)")
    p.add_argument("--threads", type=int, default=1, help="CPU: threads per process of the distributed run; the "
                   "single process gets nproc × threads (default 1)")
    p.add_argument("--num_ids", type=int, default=200, help="synthetic identities (default 200)")
    p.add_argument("--batch_size", type=int, default=32, help="GLOBAL batch (default 32)")
    p.add_argument("--sequence_length", type=int, default=30, help="frames per window (default 30)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is not timed (default 4)")
    p.add_argument("--steps", type=int, default=4, help="steps per epoch (default 4)")
    p.add_argument("--network_name", default="resgcn-n39-r8")
    p.add_argument("--repeats", type=int, default=3, help="runs of each, alternating; medians are reported (default 3)")
    a = p.parse_args(argv)

    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no GPU visible")
    nproc = a.nproc or (torch.cuda.device_count() if a.device == "cuda" else 2)
    if nproc < 2:
        raise SystemExit("need at least 2 processes (or GPUs) to compare")
    work = Path(tempfile.mkdtemp(prefix="gafnet-ddp-bench-"))
    synthetic_poses.write_ilids_pose_splits(work, num_ids=a.num_ids, num_splits=1, seed=0)
    common = ["iLIDS", str(work / "train_split0.csv"), "--epochs", str(a.epochs), "--max_steps_per_epoch",
              str(a.steps), "--batch_size", str(a.batch_size), "--sequence_length", str(a.sequence_length),
              "--network_name", a.network_name, "--learning_rate", "1e-3", "--temp", "0.07", "--quiet",
              "--device", a.device, "--log_interval", "1", "--save_dir", str(work / "runs")]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    single_threads = nproc * a.threads if a.device == "cpu" else a.threads
    ones, manys = [], []
    try:
        for repeat in range(a.repeats):  # alternate, so that both see the same machine load
            ones.append(run("1 process", [sys.executable, str(TRAIN), *common, "--exp_name", f"one{repeat}"],
                            single_threads))
            manys.append(run(f"{nproc} processes", [*launcher, str(TRAIN), *common, "--exp_name", f"many{repeat}"],
                             a.threads))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    one = (statistics.median(r[0] for r in ones), ones[0][1], statistics.median(r[2] for r in ones))
    many = (statistics.median(r[0] for r in manys), manys[0][1], statistics.median(r[2] for r in manys))

    diffs = [abs(x - y) / max(abs(x), 1e-12) for x, y in zip(one[1], many[1])]
    agree = diffs[0] < 1e-5 and len(one[1]) == len(many[1])
    print(f"torch {torch.__version__}; {a.network_name}, global batch {a.batch_size} (×2 views), window "
          f"{a.sequence_length}, {a.steps} steps × {a.epochs} epochs (first not timed); device {a.device}")
    print(f"loss of the first step (same weights, whole global batch): relative difference {diffs[0]:.1e} -> "
          f"{'OK' if agree else 'MISMATCH'}; later steps up to {max(diffs):.1e} (float32 summation order, amplified "
          "by Adam: one process with 1 or 2 threads differs as much; tests/test_distributed.py checks equality in "
          "float64)")
    if a.device == "cpu":
        print(f"1 process × {single_threads} threads: {one[0]:8.1f} samples/s (run {one[2]:.0f} s; median of "
              f"{a.repeats}: {', '.join(f'{r[0]:.1f}' for r in ones)})")
        print(f"{nproc} processes × {a.threads} thread(s): {many[0]:8.1f} samples/s, {many[0] / nproc:.1f} per process "
              f"(run {many[2]:.0f} s; {', '.join(f'{r[0]:.1f}' for r in manys)})")
        print(f"scaling efficiency on the same {single_threads} cores: {many[0] / one[0]:.2f} "
              "(N processes vs one process with N times the threads)")
    else:
        print(f"1 GPU:  {one[0]:8.1f} samples/s")
        print(f"{nproc} GPUs: {many[0]:8.1f} samples/s, {many[0] / nproc:.1f} per GPU")
        print(f"scaling efficiency: {many[0] / (nproc * one[0]):.2f} (N GPUs vs N × one GPU)")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
