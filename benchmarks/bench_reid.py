#!/usr/bin/env python
"""Search time of reid.py on a synthetic gallery of random embeddings of the real sizes (median of --repeats).

    python benchmarks/bench_reid.py                 # 100,000 gallery tracklets, 10 queries, top 10
    python benchmarks/bench_reid.py --gallery 1000000 --appearance_dim 512

Sizes: appearance 256 (colour descriptor; 512 for OSNet), gait 128 (GaitGraph). The search is
gafnet.pixels.reid.top_matches (chunks of 20,000 gallery rows, Eq. 4 fusion); baseline in the same run: one
full (queries × gallery) distance matrix and a full argsort, which holds the whole matrix in memory.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gafnet.pixels.reid import top_matches  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gallery", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=10)
    p.add_argument("--appearance_dim", type=int, default=256)
    p.add_argument("--gait_dim", type=int, default=128)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    g = {"appearance": rng.normal(size=(a.gallery, a.appearance_dim)).astype(np.float32),
         "gait": rng.normal(size=(a.gallery, a.gait_dim)).astype(np.float32), "has_pose": np.ones(a.gallery, bool)}
    q = {"appearance": rng.normal(size=(a.queries, a.appearance_dim)).astype(np.float32),
         "gait": rng.normal(size=(a.queries, a.gait_dim)).astype(np.float32), "has_pose": np.ones(a.queries, bool)}
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        m = top_matches(q, g, a.top, 0.74)
        times.append(time.perf_counter() - t)
    t_chunked = statistics.median(times)
    t = time.perf_counter()
    u = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    qa, ga, qg, gg = u(q["appearance"].astype(np.float64)), u(g["appearance"].astype(np.float64)), \
        u(q["gait"].astype(np.float64)), u(g["gait"].astype(np.float64))
    full = (2 - 2 * qa @ ga.T) + 0.74 ** 2 * (2 - 2 * qg @ gg.T)
    order = np.argsort(full, axis=1)[:, :a.top]
    t_full = time.perf_counter() - t
    assert (order == m["index"]).mean() > 0.99
    print(f"search: {a.queries} queries × {a.gallery:,} gallery tracklets (appearance {a.appearance_dim}-d, gait "
          f"{a.gait_dim}-d), top {a.top}: {t_chunked:.2f} s chunked (median of {a.repeats}; "
          f"{t_chunked / a.queries * 1000:.0f} ms per query); full matrix + argsort baseline {t_full:.2f} s "
          "(shared CPU: indicative)")


if __name__ == "__main__":
    main()
