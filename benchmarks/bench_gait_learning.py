"""Does GaitGraph learn gait on the synthetic iLIDS-VID-like poses? A short CPU training run, then gait-only
Rank-1 on HELD-OUT identities (the split's test identities, never seen in training), against chance.

    python benchmarks/bench_gait_learning.py [--epochs 40 --sequence_length 30 --num_ids 300]

Runs ``gaitgraph/src/train.py`` and ``gaitgraph/src/evaluate.py`` as a user would and prints the Rank-1,
chance (1 / number of gallery identities) and the time taken. SYNTHETIC data: the number says that the
pipeline learns, not how well GaitGraph does on real data.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gafnet.gait import synthetic_poses  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num_ids", type=int, default=300)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--learning_rate", default="1e-2")
    p.add_argument("--temp", default="0.07")
    p.add_argument("--sequence_length", type=int, default=30)
    p.add_argument("--normalize_pose", default="sequence")
    p.add_argument("--network_name", default="resgcn-n39-r8")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gafnet-learn-"))
    synthetic_poses.write_ilids_pose_splits(work, num_ids=a.num_ids, num_splits=1, seed=a.seed)
    t = time.perf_counter()
    train = subprocess.run([sys.executable, str(ROOT / "gaitgraph" / "src" / "train.py"), "iLIDS",
                            str(work / "train_split0.csv"), "--epochs", str(a.epochs), "--batch_size", str(a.batch_size),
                            "--learning_rate", a.learning_rate, "--temp", a.temp, "--sequence_length",
                            str(a.sequence_length), "--normalize_pose", a.normalize_pose, "--network_name",
                            a.network_name, "--save_dir", str(work / "runs"), "--exp_name", "run", "--quiet",
                            "--seed", str(a.seed)], capture_output=True, text=True)
    train_time = time.perf_counter() - t
    if train.returncode != 0:
        raise SystemExit(train.stderr[-2000:])
    losses = re.findall(r"loss ([0-9.]+)", train.stdout)
    ev = subprocess.run([sys.executable, str(ROOT / "gaitgraph" / "src" / "evaluate.py"), "iLIDS",
                         str(work / "test_split0.csv"), "--weight_path", str(work / "runs" / "run" / "last.pt"),
                         "--output_dir", str(work / "emb"), "--quiet"], capture_output=True, text=True)
    if ev.returncode != 0:
        raise SystemExit(ev.stderr[-2000:])
    line = next(l for l in ev.stdout.splitlines() if l.startswith("gait only"))
    rank1 = float(line.split("Rank-1 ")[1].split()[0])
    chance = 100.0 / (a.num_ids // 2)
    print(f"SYNTHETIC poses, {a.num_ids // 2} training and {a.num_ids // 2} held-out identities; "
          f"{a.network_name}, {a.epochs} epochs, window {a.sequence_length}, lr {a.learning_rate}, "
          f"normalize_pose {a.normalize_pose}")
    print(f"training: {train_time:.0f} s, loss {losses[0]} -> {losses[-1]}")
    print(f"held-out {line}")
    print(f"Rank-1 {rank1:.2f} % against chance {chance:.2f} % ({rank1 / chance:.1f}x chance)")


if __name__ == "__main__":
    main()
