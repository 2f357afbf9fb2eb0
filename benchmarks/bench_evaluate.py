"""Benchmark of the whole root ``python evaluate.py`` (3 backbones × 10 splits) on a full-size synthetic tree.

The tree has the released dimensions (pit 9216, mgh 5120, osnet 512, gait 128; 150 × 150 per split,
about 500 MB of CSV). Each configuration runs as a subprocess, as a user runs it; the median of
``--repeats`` runs is printed.

- cold: an empty parse cache (every CSV parsed; the files themselves are in the OS page cache)
- warm: the parse cache filled by a previous run
- sweep: warm, ``--sweep 0:1:0.01`` (101 λ values), against the warm single evaluation

Targets (issue #2): cold < 5 s, warm < 1.5 s, sweep < 2× the warm single evaluation.
It also checks the fused per-split numbers against the original formula (explicit concatenation,
renormalisation, torchreid's evaluator) on the full-size tree.

    python benchmarks/bench_evaluate.py [--repeats 3] [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gafnet import synthetic  # noqa: E402
from gafnet.embeddings import read_embedding_csv  # noqa: E402
from gafnet.fusion import l2_normalize  # noqa: E402
from gafnet.layout import embedding_csv  # noqa: E402
from gafnet.metrics import squared_euclidean  # noqa: E402


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"evaluate.py failed: {r.stderr}")
    return elapsed


def check_against_original(tree: Path, result_json: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.metrics.rank import eval_market1501
    res = json.loads(result_json.read_text())["backbones"]
    worst = 0.0
    for name, gait, lam in (("pit", "gait1", 0.74), ("mgh", "gait2", 0.84), ("osnet", "gait1", 0.90)):
        for split in range(10):
            parts = {}
            for kind in ("query", "gallery"):
                app = read_embedding_csv(embedding_csv(tree, name, kind, split))
                g = read_embedding_csv(embedding_csv(tree, gait, kind, split))
                order = [int(np.nonzero((g.pids == p) & (g.camids == c))[0][0]) for p, c in zip(app.pids, app.camids)]
                fused = np.concatenate([l2_normalize(app.features), lam * l2_normalize(g.features[order])], axis=1)
                parts[kind] = (l2_normalize(fused), app.pids, app.camids)
            dist = squared_euclidean(parts["query"][0], parts["gallery"][0])
            cmc, mAP = eval_market1501(dist, parts["query"][1], parts["gallery"][1], parts["query"][2],
                                       parts["gallery"][2], 50)
            ours = res[name]["splits"][split]
            worst = max(worst, float(np.abs(np.array(ours["cmc"]) - 100 * cmc[:20]).max()),
                        abs(ours["mAP"] - 100 * mAP))
    status = "identical" if worst < 1e-4 else "DIFFERENT"
    print(f"per-split CMC/mAP vs the original formula (concatenate, renormalise, torchreid): max |diff| "
          f"{worst:.2e} percentage points -> {status}")
    if worst >= 1e-4:
        raise SystemExit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tree", default=None, help="reuse/keep a generated tree here (default: a temporary directory)")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gafnet-bench-"))
    tree = Path(a.tree) if a.tree else work / "embeddings"
    try:
        if not (tree / "ilids" / "gait2" / "gallery_split9.csv").is_file():
            t = time.perf_counter()
            synthetic.write_tree(tree, seed=0, dims=synthetic.FULL_DIMS)
            print(f"generated the full-size synthetic tree in {time.perf_counter() - t:.1f} s")
        size = sum(f.stat().st_size for f in tree.rglob("*.csv")) / 1e6
        print(f"tree: {tree} ({size:.0f} MB of CSV)")
        cold = []
        for i in range(a.repeats):
            cache = work / f"cold{i}"
            cold.append(timed(["--data_path", str(tree), "--cache_dir", str(cache), "--quiet"]))
            shutil.rmtree(cache)
        cache = ["--cache_dir", str(work / "warm")]
        out = work / "r.json"
        timed(["--data_path", str(tree), *cache, "--quiet", "--output", str(out)])
        warm = [timed(["--data_path", str(tree), *cache, "--quiet"]) for _ in range(a.repeats)]
        sweep = [timed(["--data_path", str(tree), *cache, "--quiet", "--sweep", "0:1:0.01",
                        "--plot", str(work / "s.png")]) for _ in range(a.repeats)]
        c, w, s = (statistics.median(v) for v in (cold, warm, sweep))
        print(f"python evaluate.py, 3 backbones x 10 splits (median of {a.repeats}):")
        print(f"  cold parse cache: {c:.2f} s   (target < 5 s)")
        print(f"  warm parse cache: {w:.2f} s   (target < 1.5 s)")
        print(f"  101-value sweep (warm): {s:.2f} s = {s / w:.2f} x the single evaluation   (target < 2 x)")
        check_against_original(tree, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
