"""Benchmarks of the CMC/mAP evaluator (gafnet.metrics).

1. ``mars``: a MARS-sized problem (1,980 queries × 9,330 gallery, 6 cameras, 625 ids, 128-d features):
   our evaluator against torchreid's Python ``eval_market1501`` in the same run, same distance matrix.
   Target: ≥ 50× faster.
2. ``large``: 10,000 queries × 100,000 gallery × 640-d, end to end (distances + CMC + mAP), chunked.
   Target: under 90 s on 2 cores with peak memory under 3 GB (peak RSS of this process is printed).

    python benchmarks/bench_metrics.py mars  [--repeats 3]
    python benchmarks/bench_metrics.py large [--num_query 10000 --num_gallery 100000 --dim 640]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gafnet.metrics import rank_features, rank_queries, squared_euclidean  # noqa: E402


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def make_problem(rng, num_q, num_g, num_ids, num_cams, dim, noise=1.5):
    """Identities with a shared centre plus noise, so ranks are realistic (not uniform)."""
    centres = rng.standard_normal(size=(num_ids, dim), dtype=np.float32)
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = np.concatenate([np.arange(num_ids), rng.integers(0, num_ids, num_g - num_ids)])
    q_cams = rng.integers(0, num_cams, num_q)
    g_cams = rng.integers(0, num_cams, num_g)
    qf = centres[q_pids] + rng.standard_normal(size=(num_q, dim), dtype=np.float32) * noise
    gf = centres[g_pids] + rng.standard_normal(size=(num_g, dim), dtype=np.float32) * noise
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def bench_mars(repeats: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.metrics.rank import eval_market1501
    rng = np.random.default_rng(0)
    qf, gf, qp, gp, qc, gc = make_problem(rng, 1980, 9330, 625, 6, 128)
    dist = squared_euclidean(qf, gf)
    ours, theirs = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        res = rank_queries(dist, qp, gp, qc, gc, max_rank=50)
        ours.append(time.perf_counter() - t)
    for _ in range(max(1, min(repeats, 2))):
        t = time.perf_counter()
        cmc, mAP = eval_market1501(dist, qp, gp, qc, gc, 50)
        theirs.append(time.perf_counter() - t)
    assert np.allclose(res.cmc, cmc, atol=1e-6) and abs(res.mAP - mAP) < 1e-6, "results differ from torchreid"
    o, r = statistics.median(ours), statistics.median(theirs)
    print(f"MARS-sized 1980 x 9330 (6 cams, 625 ids): ours {o:.3f} s (median of {len(ours)}), "
          f"torchreid eval_market1501 {r:.2f} s (median of {len(theirs)}), speed-up {r / o:.0f}x; "
          f"R1 {100 * res.cmc[0]:.2f} mAP {100 * res.mAP:.2f} (identical)")


def bench_large(num_q: int, num_g: int, dim: int, repeats: int) -> None:
    rng = np.random.default_rng(1)
    qf, gf, qp, gp, qc, gc = make_problem(rng, num_q, num_g, max(num_g // 10, 2), 6, dim, noise=6.0)
    base = peak_rss_gb()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = rank_features(qf, gf, qp, gp, qc, gc, max_rank=50)
        times.append(time.perf_counter() - t)
    print(f"{num_q} x {num_g} x {dim}-d end to end (distances + CMC + mAP): {statistics.median(times):.1f} s "
          f"(median of {repeats}); peak RSS {peak_rss_gb():.2f} GB (inputs alone {base:.2f} GB); "
          f"R1 {100 * res.cmc[0]:.2f} mAP {100 * res.mAP:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["mars", "large", "all"], nargs="?", default="all")
    p.add_argument("--repeats", type=int, default=3, help="runs per timing; the median is printed (default 3)")
    p.add_argument("--num_query", type=int, default=10000)
    p.add_argument("--num_gallery", type=int, default=100000)
    p.add_argument("--dim", type=int, default=640)
    a = p.parse_args()
    if a.which in ("mars", "all"):
        bench_mars(a.repeats)
    if a.which in ("large", "all"):
        bench_large(a.num_query, a.num_gallery, a.dim, 1 if a.which == "all" else a.repeats)


if __name__ == "__main__":
    main()
