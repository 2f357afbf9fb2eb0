"""Throughput of gait embedding extraction (gafnet.gait.extraction.extract_embeddings) on the CPU.

    python benchmarks/bench_extraction.py [--num_ids 300 --batch_size 256 --repeats 3]

Synthetic iLIDS-VID-like tracklets (23-192 frames), resgcn-n39-r8, centre window of 60 frames, batch 256:
the whole extraction path (window selection, input layout, model, accumulation), median of --repeats runs,
in sequences per second (with the malloc tuning of the scripts, gafnet/allocator.py, unless
GAFNET_MALLOC_TUNING=0); the model-only figure and the original-style baseline are in bench_model.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gafnet.allocator import keep_freed_memory  # noqa: E402
from gafnet.gait import synthetic_poses  # noqa: E402
from gafnet.gait.extraction import extract_embeddings  # noqa: E402
from gafnet.gait.poses import load_poses  # noqa: E402
from gafnet.gait.resgcn import build_model  # noqa: E402


def main() -> None:
    tuned = keep_freed_memory()  # as gaitgraph/src/evaluate.py does (GAFNET_MALLOC_TUNING=0: off)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num_ids", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--windows", default="center", choices=["center", "all"])
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gafnet-extract-"))
    synthetic_poses.write_ilids_pose_splits(work, num_ids=a.num_ids, num_splits=1, seed=0)
    poses = load_poses(work / "test_split0.csv", "iLIDS", sequence_length=60)
    model = build_model("resgcn-n39-r8", 1, 3, 128).eval()
    extract_embeddings(model, poses.select(list(range(min(8, len(poses))))), batch_size=8)  # warm-up
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        extract_embeddings(model, poses, batch_size=a.batch_size, windows=a.windows)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"{len(poses)} sequences, batch {a.batch_size}, windows {a.windows}, torch threads "
          f"{torch.get_num_threads()}, malloc tuning {'on' if tuned else 'off'}: {med:.2f} s (median of {a.repeats}) = {len(poses) / med:.0f} sequences/s")


if __name__ == "__main__":
    main()
