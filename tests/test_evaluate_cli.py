"""The root evaluate.py as a user runs it: demo, JSON output, sweep, cv, and clear errors with exit status 2."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gafnet import synthetic
from gafnet.layout import embedding_csv

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=None, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb")
    synthetic.write_tree(root, seed=1, dims=synthetic.SMALL_DIMS)
    return root


@pytest.fixture()
def cache(tmp_path):
    return ["--cache_dir", str(tmp_path / "cache")]


def test_demo_runs_and_says_synthetic(tmp_path, cache):
    out = tmp_path / "r.json"
    r = run("--demo", "--demo_small", "--output", str(out), *cache)
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in r.stdout and "FINAL SUMMARY" in r.stdout
    res = json.loads(out.read_text())
    assert res["synthetic"] is True
    assert set(res["backbones"]) == {"pit", "mgh", "osnet"}
    pit = res["backbones"]["pit"]
    assert pit["gait"] == "gait1" and pit["lambda"] == 0.74
    assert len(pit["splits"]) == 10 and len(pit["splits"][0]["cmc"]) == 20
    assert set(pit["mean"]) == {"rank1", "rank5", "rank10", "rank20", "mAP"}
    assert set(pit["appearance_only"]) == {"rank1", "mAP"}
    assert pit["mean"]["rank1"] == pytest.approx(np.mean([s["cmc"][0] for s in pit["splits"]]))
    # the second run uses the cached demo tree and parse cache and gives the same numbers
    r2 = run("--demo", "--demo_small", "--output", str(tmp_path / "r2.json"), *cache)
    assert r2.returncode == 0, r2.stderr
    assert json.loads((tmp_path / "r2.json").read_text())["backbones"] == res["backbones"]


def test_json_matches_original_formula_per_split(tree, tmp_path, cache):
    """Per-split CMC and mAP equal the original computation: concatenate, renormalise, torchreid's evaluator."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.metrics.rank import eval_market1501
    from gafnet.embeddings import read_embedding_csv
    from gafnet.fusion import l2_normalize
    from gafnet.metrics import squared_euclidean
    out = tmp_path / "r.json"
    r = run("--data_path", str(tree), "--backbone", "mgh", "--output", str(out), *cache)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())["backbones"]["mgh"]
    for split in range(10):
        parts = {}
        for kind in ("query", "gallery"):
            app = read_embedding_csv(embedding_csv(tree, "mgh", kind, split))
            gait = read_embedding_csv(embedding_csv(tree, "gait2", kind, split))
            order = [int(np.nonzero((gait.pids == p) & (gait.camids == c))[0][0]) for p, c in zip(app.pids, app.camids)]
            fused = np.concatenate([l2_normalize(app.features), 0.84 * l2_normalize(gait.features[order])], axis=1)
            parts[kind] = (l2_normalize(fused), app.pids, app.camids)
        dist = squared_euclidean(parts["query"][0], parts["gallery"][0])
        cmc, mAP = eval_market1501(dist, parts["query"][1], parts["gallery"][1], parts["query"][2],
                                   parts["gallery"][2], 50)
        np.testing.assert_allclose(res["splits"][split]["cmc"], 100 * cmc[:20], atol=1e-4)
        assert res["splits"][split]["mAP"] == pytest.approx(100 * mAP, abs=1e-4)


def test_sweep_writes_table_and_plot(tree, tmp_path, cache):
    plot = tmp_path / "sweep.png"
    r = run("--data_path", str(tree), "--backbone", "osnet", "--sweep", "0:1.5:0.1", "--plot", str(plot), *cache)
    assert r.returncode == 0, r.stderr
    assert "λ SWEEP" in r.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cv_lambda_prints_choice_per_split(tree, tmp_path, cache):
    out = tmp_path / "cv.json"
    r = run("--data_path", str(tree), "--backbone", "pit", "--lambda_val", "cv", "--sweep", "0:1:0.25",
            "--plot", str(tmp_path / "p.png"), "--output", str(out), *cache)
    assert r.returncode == 0, r.stderr
    assert "λ chosen per split" in r.stdout
    pit = json.loads(out.read_text())["backbones"]["pit"]
    assert len(pit["chosen_lambdas"]) == 10
    assert all(v in (0.0, 0.25, 0.5, 0.75, 1.0) for v in pit["chosen_lambdas"])


def test_rerank_runs(tree, cache):
    r = run("--data_path", str(tree), "--backbone", "osnet", "--rerank", "--splits", "0", *cache)
    assert r.returncode == 0, r.stderr
    assert "re-ranking" in r.stdout


def test_missing_data_says_what_and_how(tmp_path, cache):
    r = run("--data_path", str(tmp_path / "nothing"), *cache)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "python -m gafnet.data download" in r.stderr and "--demo" in r.stderr


def broken_tree(tree, tmp_path):
    dst = tmp_path / "broken"
    shutil.copytree(tree, dst)
    return dst


@pytest.mark.parametrize("mutation, message", [
    (lambda p: p.write_text(""), "gallery_split3.csv: empty file"),
    (lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"), "gallery_split3.csv: header only, no data rows"),
    (lambda p: p.write_text(p.read_text().replace(",2\n", ",2,7\n", 1)), "expected .* values"),
    (lambda p: p.unlink(), "missing: .*gallery_split3.csv"),
])
def test_bad_files_exit_2_with_one_line(tree, tmp_path, cache, mutation, message):
    root = broken_tree(tree, tmp_path)
    target = embedding_csv(root, "pit", "gallery", 3)
    mutation(target)
    r = run("--data_path", str(root), "--backbone", "pit", *cache)
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error:")
    import re
    assert re.search(message, lines[0])


def test_query_and_gallery_dimensions_must_agree(tree, tmp_path, cache):
    from gafnet.embeddings import write_embedding_csv
    root = broken_tree(tree, tmp_path)
    target = embedding_csv(root, "osnet", "gallery", 0)
    write_embedding_csv(target, np.ones((150, 5)), np.arange(150), np.full(150, 2), index_column=True)
    r = run("--data_path", str(root), "--backbone", "osnet", *cache)
    assert r.returncode == 2 and "same model" in r.stderr


def test_gait_ids_not_matching_appearance_are_named(tree, tmp_path, cache):
    from gafnet.embeddings import read_embedding_csv, write_embedding_csv
    root = broken_tree(tree, tmp_path)
    target = embedding_csv(root, "gait1", "query", 0)
    t = read_embedding_csv(target)
    pids = t.pids.copy()
    pids[0] = 9999
    write_embedding_csv(target, t.features, pids, t.camids)
    r = run("--data_path", str(root), "--backbone", "pit", *cache)
    assert r.returncode == 2 and "(9999, 1)" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--lambda_val", "abc"], "expected a number or 'cv'"),
    (["--lambda_val", "-1"], ">= 0"),
    (["--sweep", "1:0:0.1"], "START <= STOP"),
    (["--sweep", "0:inf:0.1"], "finite"),
    (["--sweep", "nan:1:0.1"], "finite"),
    (["--splits", "12"], "numbered 0..9"),
])
def test_bad_options(tree, cache, args, message):
    r = run("--data_path", str(tree), *args, *cache)
    assert r.returncode == 2 and message in r.stderr


def test_sweep_does_not_change_the_reported_numbers(tree, tmp_path, cache):
    plain, swept = tmp_path / "a.json", tmp_path / "b.json"
    assert run("--data_path", str(tree), "--backbone", "pit", "--output", str(plain), *cache).returncode == 0
    assert run("--data_path", str(tree), "--backbone", "pit", "--sweep", "0:1:0.1", "--plot", str(tmp_path / "p.png"),
               "--output", str(swept), *cache).returncode == 0
    a, b = (json.loads(p.read_text())["backbones"]["pit"] for p in (plain, swept))
    assert a["splits"] == b["splits"] and a["mean"] == b["mean"] and a["appearance_only"] == b["appearance_only"]
