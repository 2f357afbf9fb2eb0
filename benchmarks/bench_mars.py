"""Benchmark of the root ``evaluate.py`` on a MARS-size tree: one fused evaluation and 101-value sweeps.

The tree is synthetic, in the MARS layout, with the sizes of MARS' test set under torchreid's protocol:
1,980 queries × 9,330 gallery tracklets (plus 250 junk rows), MGH appearance features (5,120-d) and 128-d gait
features (about 650 MB of CSV; generated once into --tree). Each configuration runs as a subprocess, with a warm
parse cache, as a user runs it; the median of ``--repeats`` runs and the peak resident memory are printed.

Targets (issue 13): one fused evaluation < 2 s; a 101-value sweep of λ or w < 30 s with peak memory < 2 GB.

    python benchmarks/bench_mars.py [--repeats 3] [--tree DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gafnet import synthetic  # noqa: E402

MEASURE = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print(f"MAXRSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
"""


def timed(args: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS GB) of one evaluate.py run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT / "evaluate.py"), *args], capture_output=True,
                       text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"evaluate.py failed: {r.stderr[-2000:]}")
    rss = int(r.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0]) / 2**20
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), rss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tree", default=None, help="reuse/keep the generated tree here (default: a temporary directory)")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gafnet-bench-mars-"))
    tree = Path(a.tree) if a.tree else work / "embeddings"
    try:
        if not (tree / "mars" / "gait1" / "gallery.csv").is_file():
            t = time.perf_counter()
            synthetic.write_mars_tree(tree, seed=0)
            print(f"generated the MARS-size synthetic tree in {time.perf_counter() - t:.1f} s")
        size = sum(f.stat().st_size for f in tree.rglob("*.csv")) / 1e6
        print(f"tree: {tree} ({size:.0f} MB of CSV)")
        base = ["--dataset", "mars", "--data_path", str(tree), "--backbone", "mgh", "--gait", "gait1",
                "--cache_dir", str(work / "cache"), "--quiet"]
        t = time.perf_counter()
        timed([*base, "--lambda_val", "0.8"])  # fills the parse cache
        print(f"first run (parses the CSVs): {time.perf_counter() - t:.1f} s")
        configs = {
            "fused evaluation, concat λ = 0.8": [*base, "--lambda_val", "0.8"],
            "fused evaluation, score w = 0.5": [*base, "--fusion", "score", "--weight", "0.5"],
            "101-value λ sweep (concat)": [*base, "--sweep", "0:1:0.01", "--plot", str(work / "l.png")],
            "101-value w sweep (score)": [*base, "--fusion", "score", "--sweep", "0:1:0.01", "--plot",
                                          str(work / "w.png")],
        }
        print(f"evaluate.py on MARS-size data (1,980 x 9,330, 5,120-d + 128-d), warm parse cache, median of "
              f"{a.repeats} (load average {os.getloadavg()[0]:.2f}):")
        for name, args in configs.items():
            runs = [timed(args) for _ in range(a.repeats)]
            wall, cpu, rss = (statistics.median(r[k] for r in runs) for k in range(3))
            target = "< 2 s" if name.startswith("fused") else "< 30 s, < 2 GB"
            print(f"  {name:34s} {wall:6.2f} s wall, {cpu:6.2f} s CPU, peak {rss:.2f} GB   (target {target})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
