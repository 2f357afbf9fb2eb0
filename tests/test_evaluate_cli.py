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


# ------------------------------------------------------------------------------------------ hostile options
def one_error_line(r, pattern):
    import re
    assert r.returncode == 2, (r.stdout[-500:], r.stderr[-500:])
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error:"), r.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("args, message", [
    (["--sweep", "0:1e308:1e-308"], r"STOP must be <= 1e\+06"),
    (["--sweep", "0:1e5:1e-300"], r"more than 1001 values"),
    (["--sweep", "0:100:0.01"], r"more than 1001 values"),
    (["--lambda_val", "1e308"], r"--lambda_val '1e308': must be <= 1e\+06"),
    (["--lambda_val", "inf"], r"finite number"),
    (["--plot", "x.png"], r"--plot is written with --sweep only"),
    (["--fusion", "score", "--weight", "1.5"], r"--weight '1.5': must be <= 1"),
    (["--fusion", "score", "--lambda_val", "0.5"], r"with --fusion score use --weight"),
    (["--weight", "0.5"], r"with concat use --lambda_val"),
    (["--fusion", "score"], r"the paper gives no w for score fusion: pass --weight"),
    (["--fusion", "score", "--weight", "0.5", "--rerank"], r"--rerank works with --fusion concat only"),
    (["--pca_dim", "0"], r"--pca_dim 0: must be at least 1"),
    (["--pca_whiten"], r"need --pca_dim"),
    (["--pca_dim", "4", "--pca_fit", "/nonexistent.csv"], r"--pca_fit: /nonexistent.csv: file not found"),
    (["--backbone", "vit"], r"no folder 'vit' under .* \(folders: gait1, gait2, mgh, osnet, pit\)"),
    (["--gait", "gait9"], r"no folder 'gait9'"),
    (["--lambda_val", "cv", "--splits", "3"], r"needs at least two splits"),
    (["--output", "/proc/nope/r.json"], r"--output /proc/nope/r.json: "),
])
def test_bad_options_give_one_line_before_any_work(tree, cache, args, message):
    r = run("--data_path", str(tree), *args, *cache)
    one_error_line(r, message)


def test_outputs_that_are_directories_are_refused_before_any_work(tree, tmp_path, cache):
    (tmp_path / "adir").mkdir()
    one_error_line(run("--data_path", str(tree), "--output", str(tmp_path / "adir"), *cache), "is a directory")
    one_error_line(run("--data_path", str(tree), "--sweep", "0:1:0.5", "--plot", str(tmp_path / "adir"), *cache),
                   "--plot .*adir: is a directory")
    assert list((tmp_path / "adir").iterdir()) == []


def test_a_failing_plot_keeps_the_json(tree, tmp_path, monkeypatch):
    from gafnet import fusion_eval
    from gafnet.errors import InputError

    def fail(*args, **kwargs):
        raise InputError("cannot write p.png: No space left on device; nothing was written")

    monkeypatch.setattr(fusion_eval, "write_plot", fail)
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as info:
        fusion_eval.main(["--data_path", str(tree), "--backbone", "osnet", "--sweep", "0:1:0.5", "--plot",
                          str(tmp_path / "p.png"), "--output", str(out), "--cache_dir", str(tmp_path / "c"), "--quiet"])
    assert info.value.code == 2
    assert json.loads(out.read_text())["backbones"]["osnet"]["sweep"]["lambda"] == [0.0, 0.5, 1.0]


def test_demo_with_a_negative_seed_is_refused(cache):
    one_error_line(run("--demo", "--demo_small", "--seed", "-1", *cache), r"--seed -1: must be >= 0")


def test_a_utf8_bom_on_the_appearance_files_changes_nothing(tree, tmp_path, cache):
    root = broken_tree(tree, tmp_path)
    for kind in ("query", "gallery"):
        path = embedding_csv(root, "osnet", kind, 0)
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run("--data_path", str(tree), "--backbone", "osnet", "--splits", "0", "--output", str(a), *cache).returncode == 0
    r = run("--data_path", str(root), "--backbone", "osnet", "--splits", "0", "--output", str(b), *cache)
    assert r.returncode == 0, r.stderr
    assert "osnet: appearance 32-d" in r.stdout  # the BOM did not turn the index column into a feature
    assert json.loads(a.read_text())["backbones"] == json.loads(b.read_text())["backbones"]


def test_sweep_table_always_shows_the_reported_lambda_and_the_best(tree, cache, tmp_path):
    r = run("--data_path", str(tree), "--backbone", "pit", "--sweep", "0:1.5:0.01", "--plot", str(tmp_path / "p.png"),
            "--quiet", *cache)
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("λ SWEEP")[1].splitlines()[2:]
    rows = [l for l in table if l[:6].strip().replace(".", "").isdigit()]
    assert len(rows) <= 26
    assert any(l.startswith(" 0.740") and " r" in l[6:20] for l in rows)  # the paper's λ of pit
    assert sum("*" in l for l in rows) == 1


def test_the_reported_lambda_is_shown_when_the_grid_does_not_hold_it(tree, cache, tmp_path):
    out = tmp_path / "r.json"
    r = run("--data_path", str(tree), "--backbone", "all", "--sweep", "0:2:0.05", "--plot", str(tmp_path / "p.png"),
            "--output", str(out), "--quiet", *cache)
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("λ SWEEP")[1]
    means = {n: b["mean"] for n, b in json.loads(out.read_text())["backbones"].items()}
    for name, value in (("pit", "0.740"), ("mgh", "0.840")):  # 0.90 (osnet) is on the grid and marked in it
        m = means[name]
        assert f"r  {name} at λ {value} (not on the grid): Rank-1 {m['rank1']:.2f}, mAP {m['mAP']:.2f}" in table
    assert "osnet at λ" not in table
    assert any(l.startswith(" 0.900") and "r" in l[6:] for l in table.splitlines())


def test_quiet_prints_the_summary_only_with_cross_validation(tree, cache):
    r = run("--data_path", str(tree), "--backbone", "pit", "--splits", "0,1", "--lambda_val", "cv", "--quiet", *cache)
    assert r.returncode == 0, r.stderr
    assert "FINAL SUMMARY" in r.stdout and "λ SWEEP" not in r.stdout
    assert "pit: λ chosen per split on the other splits: " in r.stdout


# ------------------------------------------------------------------------------ other backbones, fusion, MARS
def test_a_custom_backbone_folder_needs_a_value_and_reads_its_dimension(tree, tmp_path, cache):
    root = broken_tree(tree, tmp_path)
    (root / "SYNTHETIC.txt").unlink()  # read it as a real tree, to see the paper columns
    shutil.copytree(root / "ilids" / "osnet", root / "ilids" / "mine")
    one_error_line(run("--data_path", str(root), "--backbone", "mine", *cache), "no paper λ: pass --lambda_val")
    out = tmp_path / "m.json"
    r = run("--data_path", str(root), "--backbone", "mine", "--lambda_val", "0.9", "--output", str(out), *cache)
    assert r.returncode == 0, r.stderr
    assert "mine: appearance 32-d; gait gait1" in r.stdout
    mine = json.loads(out.read_text())["backbones"]["mine"]
    osnet_out = tmp_path / "o.json"
    assert run("--data_path", str(root), "--backbone", "osnet", "--output", str(osnet_out), *cache).returncode == 0
    assert mine["mean"] == json.loads(osnet_out.read_text())["backbones"]["osnet"]["mean"]  # same files, λ 0.90
    assert "no paper number" in r.stdout


def test_score_fusion_with_cv_weight(tree, tmp_path, cache):
    out = tmp_path / "s.json"
    r = run("--data_path", str(tree), "--backbone", "mgh", "--fusion", "score", "--weight", "cv", "--sweep", "0:1:0.25",
            "--plot", str(tmp_path / "w.png"), "--output", str(out), *cache)
    assert r.returncode == 0, r.stderr
    assert "w chosen per split" in r.stdout and "score-level fusion" in r.stdout
    res = json.loads(out.read_text())
    assert res["fusion"] == {"kind": "score", "score_norm": "minmax"}
    mgh = res["backbones"]["mgh"]
    assert mgh["weight"] == "cv" and len(mgh["chosen_weights"]) == 10
    assert mgh["sweep"]["weight"] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_pca_option_runs_and_is_recorded(tree, tmp_path, cache):
    out = tmp_path / "p.json"
    root = broken_tree(tree, tmp_path)
    (root / "SYNTHETIC.txt").unlink()  # read it as a real tree, to see the paper columns
    r = run("--data_path", str(root), "--backbone", "pit", "--pca_dim", "8", "--splits", "0,1", "--output", str(out),
            *cache)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["pca"]["dim"] == 8 and "transductive" in res["pca"]["fit"]
    assert "appearance 8-d after PCA" in r.stdout and "n/a (not the paper's setting)" in r.stdout


@pytest.mark.parametrize("protocol", ["torchreid", "official"])
def test_mars_demo_runs_with_both_protocols(tmp_path, protocol):
    out = tmp_path / "mars.json"
    r = run("--demo", "--demo_small", "--dataset", "mars", "--lambda_val", "0.8", "--protocol", protocol,
            "--output", str(out), "--cache_dir", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    assert f"MARS {protocol} protocol" in r.stdout and "SYNTHETIC" in r.stdout
    res = json.loads(out.read_text())
    assert res["protocol"] == protocol and res["dataset"] == "mars" and res["synthetic"] is True
    assert res["backbones"]["mgh"]["splits"][0]["num_queries"] == 1980
    if protocol == "torchreid":  # mgh is one of the paper's backbones: the missing λ is MARS's
        one_error_line(run("--demo_small", "--dataset", "mars", "--cache_dir", str(tmp_path / "c")),
                       "the paper gives no λ for MARS")


def test_demo_small_alone_runs_the_demo_and_a_closed_pipe_ends_quietly(tmp_path):
    r = run("--demo_small", "--splits", "0", "--quiet", "--cache_dir", str(tmp_path / "c"))
    assert r.returncode == 0 and "SYNTHETIC" in r.stdout, r.stderr
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as after `| head -0`
    try:
        closed = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--demo_small", "--splits", "0",
                                 "--cache_dir", str(tmp_path / "c")], stdout=write_end, stderr=subprocess.PIPE,
                                timeout=120)
    finally:
        os.close(write_end)
    assert closed.returncode == 141 and closed.stderr == b"", closed.stderr.decode()[-2000:]


def test_constant_gait_features_are_reported_as_collapsed(tree, tmp_path, cache):
    root = broken_tree(tree, tmp_path)
    for kind in ("query", "gallery"):
        path = embedding_csv(root, "gait1", kind, 0)
        t = __import__("gafnet.embeddings", fromlist=["x"]).read_embedding_csv(path)
        write_embedding_csv_safe(path, np.ones_like(t.features) + 1e-9 * np.arange(t.features.size).reshape(
            t.features.shape), t.pids, t.camids)
    r = run("--data_path", str(root), "--backbone", "osnet", "--splits", "0", *cache)
    assert r.returncode == 0, r.stderr
    assert "gait1 split 0: the embeddings have collapsed" in r.stderr


def write_embedding_csv_safe(path, feats, pids, cams):
    from gafnet.embeddings import write_embedding_csv
    write_embedding_csv(path, feats, pids, cams)


def test_a_five_identity_tree_reports_only_the_ranks_it_has(tmp_path, cache):
    """Issue 15: a gallery of 5 tracklets has no Rank-10/20; they are '–' and null, never an IndexError."""
    root = tmp_path / "small"
    ids = list(range(1, 11))
    synthetic.write_tree(root, seed=4, dims=synthetic.SMALL_DIMS, num_splits=2, person_ids=ids,
                         test_ids=[[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    out = tmp_path / "r.json"
    r = run("--data_path", str(root), "--backbone", "pit", "--splits", "0,1", "--output", str(out), "--sweep",
            "0:1:0.5", "--plot", str(tmp_path / "p.png"), *cache)
    assert r.returncode == 0, r.stderr
    pit = json.loads(out.read_text())["backbones"]["pit"]
    assert pit["mean"]["rank10"] is None and pit["mean"]["rank20"] is None and pit["mean"]["rank5"] is not None
    assert len(pit["splits"][0]["cmc"]) == 5
    summary = [l for l in r.stdout.splitlines() if l.startswith("pit ")][0]
    assert summary.count("–") == 2


def test_three_concurrent_demo_runs_on_a_fresh_cache_all_succeed(tmp_path):
    cache_dir = str(tmp_path / "fresh")
    procs = [subprocess.Popen([sys.executable, str(ROOT / "evaluate.py"), "--demo", "--demo_small", "--quiet",
                               "--cache_dir", cache_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert all(code == 0 for _, _, code in results), [err for _, err, _ in results]
    assert len({out.split("FINAL SUMMARY")[1] for out, _, _ in results}) == 1
    demo = tmp_path / "fresh" / "demo"
    assert [p.name for p in demo.iterdir()] == ["seed0-small-v1"]  # no temporaries left


def test_ctrl_c_exits_130_with_one_line(tmp_path):
    import signal
    import time
    p = subprocess.Popen([sys.executable, str(ROOT / "evaluate.py"), "--demo", "--cache_dir", str(tmp_path / "c")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # generating the full-size demo tree takes longer than this
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "evaluate.py: interrupted"
    assert not [d for d in (tmp_path / "c" / "demo").iterdir() if not d.name.startswith(".")]


def test_demo_on_a_full_cache_disk_says_so_in_one_line(small_disk):
    disk = small_disk("256k")
    r = run("--demo", "--cache_dir", str(disk))
    one_error_line(r, r"demo tree|cannot write .*No space left on device")
    assert not [p for p in (disk / "demo").iterdir() if not p.name.startswith(".")]


def test_output_on_a_full_disk_says_so_and_keeps_nothing_half_written(tree, small_disk, cache):
    disk = small_disk("64k")
    (disk / "filler").write_bytes(b"\0" * 60_000)
    r = run("--data_path", str(tree), "--backbone", "pit", "--sweep", "0:1.5:0.002", "--output",
            str(disk / "r.json"), "--plot", str(disk / "p.png"), *cache)
    one_error_line(r, r"cannot write .*r.json: No space left on device; nothing was written")
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_no_valid_query_names_the_split_files(tree, tmp_path, cache):
    from gafnet.embeddings import read_embedding_csv, write_embedding_csv
    root = broken_tree(tree, tmp_path)
    for folder in ("osnet", "gait1"):
        path = embedding_csv(root, folder, "gallery", 2)
        t = read_embedding_csv(path)
        write_embedding_csv(path, t.features, t.pids, np.ones_like(t.camids), index_column=folder == "osnet")
    r = run("--data_path", str(root), "--backbone", "osnet", "--splits", "2", *cache)
    one_error_line(r, r"query_split2.csv vs .*gallery_split2.csv: no query has a valid match")


def test_a_generated_tree_is_labelled_synthetic_everywhere(tree, tmp_path, cache):
    out = tmp_path / "r.json"
    r = run("--data_path", str(tree), "--backbone", "pit", "--splits", "0,1", "--output", str(out), *cache)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["synthetic"] is True
    summary = r.stdout.split("FINAL SUMMARY")[1]
    assert "SYNTHETIC" in summary and "✗" not in summary and "✓" not in summary
    assert "--demo" not in r.stdout  # a generated tree, not the demo: no banner may claim --demo
