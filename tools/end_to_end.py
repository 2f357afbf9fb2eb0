#!/usr/bin/env python
"""The whole GAF-Net method end to end on SYNTHETIC data, on a CPU, in minutes.

    python tools/end_to_end.py                 # 3 splits, a few epochs each: under 10 minutes on 2 cores
    python tools/end_to_end.py --quick         # tiny sizes, under a minute (what the test suite runs)

Steps, each with the project's own scripts run as a user runs them (subprocesses):
1. synthetic iLIDS-VID pose splits (gafnet.gait.synthetic_poses) and synthetic appearance embeddings
   (gafnet.synthetic) for the same identities and splits, in the released layout;
2. train GaitGraph per split on the split's training identities (``gaitgraph/src/train.py``; from scratch,
   lr 1e-2, 30 epochs, a 30-frame window and ``--normalize_pose sequence``: the synthetic cameras differ in
   position and scale, see the README);
3. extract gait embeddings of the split's test identities (``gaitgraph/src/evaluate.py``) into
   ``<work>/embeddings/ilids/gait1`` (copied to ``gait2``: one gait model serves all backbones here);
4. the root ``evaluate.py`` on that tree, with a λ sweep (table + PNG);
5. a table of appearance-only, gait-only and fused Rank-1 / mAP per backbone.

Everything here is SYNTHETIC and says nothing about GAF-Net's accuracy on real data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gafnet import synthetic  # noqa: E402
from gafnet.gait import synthetic_poses  # noqa: E402


def step(title: str) -> float:
    print(f"\n=== {title}", flush=True)
    return time.perf_counter()


MARKER = ".gafnet-end-to-end.json"


def fail(message: str, code: int = 2):
    print(f"end_to_end.py: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def sh(args: list[str], cwd: Path | None = None, show=lambda line: False) -> str:
    """Run a project script as a user would; lines for which ``show(line)`` is true are printed as they come."""
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if show(line):
            print("   " + line.rstrip(), flush=True)
    proc.wait()
    out = "".join(lines)
    if proc.returncode == 130:
        raise KeyboardInterrupt
    if proc.returncode != 0:
        print(out[-3000:], file=sys.stderr)
        fail(f"step failed (exit {proc.returncode}): {' '.join(args)}", code=1)
    return out


OUTPUTS = ("poses", "embeddings", "runs", "cache", "results.json", "lambda_sweep.png")  # what a run writes


def prepare_work_dir(work: Path) -> None:
    """Use ``work`` only if it is empty, new, or a previous run of this tool; remove only that run's outputs."""
    if work.exists() and not work.is_dir():
        fail(f"--work_dir {work} is a file; give a directory")
    if work.is_dir() and any(work.iterdir()):
        if not (work / MARKER).is_file():
            fail(f"--work_dir {work} is not empty and is not a run of this tool; nothing was deleted: choose a new "
                 "or empty directory")
        for name in OUTPUTS:  # only the entries a previous run wrote; anything else stays
            target = work / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text(json.dumps({"tool": "tools/end_to_end.py", "synthetic": True,
                                           "outputs": list(OUTPUTS)}) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", default=str(ROOT / "runs" / "end_to_end"),
                   help="everything is written here: a new or empty directory, or a previous run of this tool (whose "
                        "own outputs are replaced; nothing else is deleted) (default runs/end_to_end)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (under a minute), for the test suite: a smoke test only (after 1 "
                   "epoch the gait embeddings are nearly constant, so fusion equals appearance only)")
    p.add_argument("--splits", type=int, default=None, help="number of splits (default 3; --quick 1)")
    p.add_argument("--num_ids", type=int, default=None, help="identities (default 300 as iLIDS-VID; --quick 40)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per split (default 30; --quick 1)")
    p.add_argument("--network_name", default=None, help="default resgcn-n39-r8 (--quick: resgcn-b15-r8)")
    p.add_argument("--sequence_length", type=int, default=None, help="default 30 (--quick 16)")
    p.add_argument("--learning_rate", default="1e-2", help="default 1e-2")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    splits = a.splits or (1 if a.quick else 3)
    num_ids = a.num_ids or (40 if a.quick else 300)
    epochs = a.epochs or (1 if a.quick else 30)
    network = a.network_name or ("resgcn-b15-r8" if a.quick else "resgcn-n39-r8")
    seq_len = a.sequence_length or (16 if a.quick else 30)
    batch = 16 if a.quick else 64
    lr = a.learning_rate
    work = Path(a.work_dir)
    prepare_work_dir(work)
    started = time.perf_counter()

    t = step(f"1. synthetic data: {num_ids} identities, {splits} split(s) [SYNTHETIC]")
    assignment = synthetic_poses.write_ilids_pose_splits(work / "poses", num_ids=num_ids, num_splits=splits, seed=a.seed)
    dims = synthetic.SMALL_DIMS if a.quick else {"pit": 9216, "mgh": 5120, "osnet": 512}
    synthetic.write_tree(work / "embeddings", seed=a.seed, dims=dims, folders=["pit", "mgh", "osnet"],
                         person_ids=assignment.persons, test_ids=[s["test"] for s in assignment.splits])
    print(f"   poses and appearance embeddings in {work} ({time.perf_counter() - t:.1f} s)")

    gait_only = []
    for s in range(splits):
        t = step(f"2. train GaitGraph on split {s} ({network}, {epochs} epoch(s), batch {batch}, window {seq_len})")
        out = sh([str(ROOT / "gaitgraph" / "src" / "train.py"), "iLIDS", str(work / "poses" / f"train_split{s}.csv"),
                  "--epochs", str(epochs), "--batch_size", str(batch), "--learning_rate", lr, "--temp", "0.07",
                  "--network_name", network, "--sequence_length", str(seq_len), "--save_dir", str(work / "runs"),
                  "--exp_name", f"split{s}", "--seed", str(a.seed + s), "--normalize_pose", "sequence",
                  "--quiet", "--device", "cpu"], show=lambda line: line.startswith(("epoch", "warning")))
        print(f"   trained in {time.perf_counter() - t:.1f} s")
        t = step(f"3. extract gait embeddings of split {s}'s test identities")
        out = sh([str(ROOT / "gaitgraph" / "src" / "evaluate.py"), "iLIDS", str(work / "poses" / f"test_split{s}.csv"),
                  "--weight_path", str(work / "runs" / f"split{s}" / "last.pt"), "--output_dir",
                  str(work / "embeddings" / "ilids" / "gait1"), "--quiet", "--device", "cpu"])
        line = next(l for l in out.splitlines() if l.startswith("gait only"))
        print("   " + line)
        gait_only.append(line)
        print(f"   extracted in {time.perf_counter() - t:.1f} s")
    shutil.copytree(work / "embeddings" / "ilids" / "gait1", work / "embeddings" / "ilids" / "gait2")

    t = step("4. fusion: the root evaluate.py with a λ sweep [SYNTHETIC: the paper columns and marks do not apply]")
    result_json = work / "results.json"
    plot = work / "lambda_sweep.png"
    grid = "0:2:0.05" if a.quick else "0:2:0.01"  # the paper's λ are shown under the table when not on the grid
    out = sh([str(ROOT / "evaluate.py"), "--data_path", str(work / "embeddings"), "--splits",
              ",".join(str(s) for s in range(splits)), "--sweep", grid, "--plot", str(plot), "--output",
              str(result_json), "--cache_dir", str(work / "cache"), "--quiet"])
    print(out)
    res = json.loads(result_json.read_text())["backbones"]

    step("5. summary [SYNTHETIC DATA: not comparable with the paper]")
    sweep_g = None
    for name, r in res.items():
        if "sweep" in r:
            sweep_g = r["sweep"]
    gait_r1 = [float(l.split("Rank-1 ")[1].split()[0]) for l in gait_only]
    gait_map = [float(l.split("mAP ")[1].split()[0]) for l in gait_only]
    print(f"{'backbone':8s} {'app R1':>7s} {'app mAP':>8s} {'gait R1':>8s} {'gait mAP':>9s} {'fused R1':>9s} {'fused mAP':>10s}  λ")
    for name, r in res.items():
        print(f"{name:8s} {r['appearance_only']['rank1']:7.2f} {r['appearance_only']['mAP']:8.2f} "
              f"{sum(gait_r1) / len(gait_r1):8.2f} {sum(gait_map) / len(gait_map):9.2f} "
              f"{r['mean']['rank1']:9.2f} {r['mean']['mAP']:10.2f}  {r['lambda']}")
    print(f"(chance Rank-1 with {num_ids // 2} gallery identities: {100 / (num_ids // 2):.2f} %)")
    print(f"λ sweep plot: {plot}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if sweep_g is None:
        fail("no sweep in the results", code=1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("end_to_end.py: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
