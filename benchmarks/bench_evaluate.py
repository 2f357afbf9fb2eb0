"""Benchmark of the whole root ``python evaluate.py`` (3 backbones × 10 splits) on a full-size synthetic tree.

The tree has the released dimensions (pit 9216, mgh 5120, osnet 512, gait 128; 150 × 150 per split,
about 500 MB of CSV). Each configuration runs as a subprocess, as a user runs it; the median of
``--repeats`` runs is printed.

- baseline: a straightforward pandas implementation of the same job (``pd.read_csv`` of every file, rows
  matched on ids, the fused distance, torchreid's evaluator), run the same way
- cold: an empty parse cache (every CSV parsed; the files themselves are in the OS page cache)
- warm: the parse cache filled by a previous run
- sweep: warm, ``--sweep 0:1:0.01`` (101 λ values, with the PNG), against the warm single evaluation

Wall time and CPU time (user + system of the subprocess: less sensitive to other load on the machine) are
printed. Targets: cold ≥ 3× faster than the baseline, warm < 1.5 s, sweep < 2× the warm single evaluation.
It also checks the fused per-split numbers against the original formula (explicit concatenation,
renormalisation, torchreid's evaluator) on the full-size tree.

    python benchmarks/bench_evaluate.py [--repeats 3] [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


BASELINE = """
import sys, time, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
from torchreid.reid.metrics.rank import eval_market1501
root = sys.argv[1]
for name, gait, lam in (("pit", "gait1", 0.74), ("mgh", "gait2", 0.84), ("osnet", "gait1", 0.90)):
    r1 = []
    for split in range(10):
        parts = {}
        for kind in ("query", "gallery"):
            app = pd.read_csv(f"{root}/ilids/{name}/{kind}_split{split}.csv")
            g = pd.read_csv(f"{root}/ilids/{gait}/{kind}_split{split}.csv")
            a = app.iloc[:, 1:-2].to_numpy()
            ids = app.iloc[:, -2:].to_numpy()
            gi = {tuple(k): i for i, k in enumerate(g.iloc[:, -2:].to_numpy().tolist())}
            gf = g.iloc[:, :-2].to_numpy()[[gi[tuple(k)] for k in ids.tolist()]]
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
            gf = gf / np.linalg.norm(gf, axis=1, keepdims=True)
            z = np.concatenate([a, lam * gf], axis=1)
            parts[kind] = (z / np.linalg.norm(z, axis=1, keepdims=True), ids)
        (qf, qi), (gfe, gid) = parts["query"], parts["gallery"]
        d = ((qf[:, None, :] - gfe[None]) ** 2).sum(-1) if qf.shape[1] < 600 else \
            (qf ** 2).sum(1)[:, None] + (gfe ** 2).sum(1)[None] - 2 * qf @ gfe.T
        cmc, mAP = eval_market1501(d, qi[:, 0], gid[:, 0], qi[:, 1], gid[:, 1], 50)
        r1.append(cmc[0])
    print(name, 100 * np.mean(r1))
"""


def timed(args: list[str], script: str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one subprocess run: evaluate.py with ``args``, or ``python -c script args``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    command = [sys.executable, "-c", script, *args] if script else [sys.executable, str(ROOT / "evaluate.py"), *args]
    r = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"run failed: {r.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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
        baseline = [timed([str(tree)], BASELINE) for _ in range(a.repeats)]
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
        (bw, bc), (cw, cc), (ww, wc), (sw, sc) = ((statistics.median(v[0] for v in runs),
                                                   statistics.median(v[1] for v in runs))
                                                  for runs in (baseline, cold, warm, sweep))
        print(f"python evaluate.py, 3 backbones x 10 splits (median of {a.repeats}; wall / CPU seconds; "
              f"load average {os.getloadavg()[0]:.2f}):")
        print(f"  baseline, pandas + torchreid: {bw:6.2f} / {bc:6.2f}")
        print(f"  cold parse cache:             {cw:6.2f} / {cc:6.2f}   = {bw / cw:.1f}x / {bc / cc:.1f}x faster "
              "than the baseline (target >= 3x)")
        print(f"  warm parse cache:             {ww:6.2f} / {wc:6.2f}   (target < 1.5 s)")
        print(f"  101-value sweep (warm, PNG):  {sw:6.2f} / {sc:6.2f}   = {sw / ww:.2f}x / {sc / wc:.2f}x the single "
              "evaluation (target < 2x)")
        check_against_original(tree, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
