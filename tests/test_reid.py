"""reid.py end to end on real footage: the offline demo (reduced), tracklet folders (Rank-1 on the real vtest
tracklets), pose CSVs + crops with a GaitGraph model built without weights (gait distances checked against a
direct computation; this project's and the original checkpoint format), a video query with --annotate, the
incremental index, and every bad input of the issue through the command line (exit 2, one line, nothing
written)."""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from gafnet.pixels import reid  # noqa: E402
from gafnet.pixels.reid_index import GalleryIndex  # noqa: E402
from pixels_shared import REAL, SHIPPED_CLIP, VTEST, have_mediapipe, run_in_process, shipped_clip_tracks  # noqa: E402

REAL_CLIP = REAL / "pedestrian_clips" / "vtest_f0230-0329.mp4"
needs_real = pytest.mark.skipif(not VTEST.is_dir(), reason="../shared/realdata is absent")
needs_hog = pytest.mark.skipif(not hasattr(cv2, "HOGDescriptor"), reason="OpenCV 5.x has no cv2.HOGDescriptor")
SEQ = 8  # gait window of the test checkpoints


def run_main(capsys, *args):
    return run_in_process(reid.main, capsys, *args)


def refused(capsys, message, *args):
    """The command exits 2 with one line naming the problem, and no traceback (progress bars off)."""
    code, _, err = run_main(capsys, *args, *(() if "--quiet" in args else ("--quiet",)))
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------------------------------- demo
@needs_hog
def test_demo_runs_offline_on_the_shipped_clip_in_reduced_form(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = run_main(capsys, "--demo", "--out", out, "--max_frames", 8, "--demo_min_half", 2, "--quiet")
    assert code == 0, err
    assert "WEIGHT-FREE" in stdout and "gait skipped" in stdout and "Rank-1" in stdout and "stages:" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["format"] == "gafnet-reid-results" and results["command"] == "demo"
    assert results["models"]["appearance"]["weight_free"] and results["models"]["gait"]["model"] == "off"
    assert results["fusion"]["kind"] == "appearance only" and results["lambda"] is None
    q = results["queries"]
    assert len(q) >= 3 and all(m["fused"] is None and m["gait"] is None and m["appearance_only"]
                                for qd in q for m in qd["matches"])
    first = q[0]["matches"][0]
    assert set(first) >= {"rank", "source", "fused", "appearance", "gait", "appearance_rank", "gait_rank"}
    assert [m["rank"] for m in q[0]["matches"]] == list(range(1, len(q[0]["matches"]) + 1))
    assert results["evaluation"]["rank1"] >= 0.5  # the track id is the identity; measured 7/7 on 12 frames
    assert {"detect", "search", "contact_sheet", "total"} <= set(results["timings_s"])
    assert results["outputs"] == ["results.json", "contact_sheet.png", f"annotated_{SHIPPED_CLIP.stem}.mp4",
                                  "gallery_index"]
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape[1] > 1000 and sheet.shape[0] > 150 * len(q)
    video = cv2.VideoCapture(str(out / f"annotated_{SHIPPED_CLIP.stem}.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 768
    assert len(GalleryIndex.open(out / "gallery_index")) == len(q)


# ------------------------------------------------------------------------------------------ tracklet folders
def split_vtest(root):
    """The real tracklets: first 16 frames → query/Txx, last 16 → gallery/Txx (the issue's split)."""
    for t in sorted(VTEST.glob("T*")):
        frames = sorted(t.glob("*.jpg"))
        for part, chosen in (("query", frames[:16]), ("gallery", frames[-16:])):
            (root / part / t.name).mkdir(parents=True)
            for f in chosen:
                shutil.copy(f, root / part / t.name / f.name)
    return root / "query", root / "gallery"


@needs_real
def test_real_tracklet_folders_index_search_rank1_and_an_incremental_index(tmp_path, capsys):
    query, gallery = split_vtest(tmp_path)
    index = tmp_path / "gallery.npz"  # the name: the index is a folder, whatever its name
    opts = ("--gait", "off", "--identity", "folder", "--quiet")
    code, out, err = run_main(capsys, "index", gallery, "--out", index, *opts)
    assert code == 0, err
    assert "11 tracklets (11 new)" in out and GalleryIndex.open(index).models["appearance"]["weight_free"]
    code, out, err = run_main(capsys, "search", query, "--gallery", index, "--top", 3, "--out", tmp_path / "res", *opts)
    assert code == 0, err
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    assert len(results["queries"]) == 11 and results["gallery_size"] == 11
    assert results["evaluation"]["rank1"] >= 9 / 11  # measured 10/11 (gafnet.metrics), mAP 95.5 %
    assert "Rank-1 90.9 %" in out
    hits = [q["matches"][0]["same_person"] for q in results["queries"]]
    assert hits == [Path(q["source"]).name == Path(q["matches"][0]["source"]).name for q in results["queries"]]
    assert (tmp_path / "res" / "contact_sheet.png").is_file() and (tmp_path / "res" / "contact_sheet_2.png").is_file()
    # incremental: an unchanged input is skipped, a new one added alone, a changed one replaced
    code, out, _ = run_main(capsys, "index", gallery, "--out", index, *opts)
    assert code == 0 and "already in" in out and "11 tracklets (0 new)" in out
    extra = tmp_path / "extra"
    shutil.copytree(query / "T03", extra / "T03")
    code, out, _ = run_main(capsys, "index", gallery, extra, "--out", index, *opts)
    assert code == 0 and "12 tracklets (1 new) in 2 parts" in out
    (extra / "T03" / min(p.name for p in (extra / "T03").iterdir())).unlink()
    code, out, _ = run_main(capsys, "index", extra, "--out", index, *opts)
    assert code == 0 and "changed since it was indexed: replaced" in out and "12 tracklets (1 new) in 2 parts" in out
    assert GalleryIndex.open(index).record(11)["frames"] == 15
    # the same folder, searched again into the same --out: the earlier results are replaced
    code, _, err = run_main(capsys, "search", query / "T05", "--gallery", index, "--out", tmp_path / "res", *opts)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["contact_sheet.png", "results.json"]


# ------------------------------------------------------------------------------------------- gait, pose CSVs
def gait_checkpoints(tmp_path):
    """A GaitGraph ResGCN built without weights, saved in this project's format and in the original's."""
    import torch

    from gafnet.gait.checkpoint import Checkpoint
    from gafnet.gait.resgcn import build_model

    torch.manual_seed(0)
    model = build_model("resgcn-n39-r8", 1, 3, 16).eval()
    args = {"network_name": "resgcn-n39-r8", "num_input_branches": 1, "num_channels": 3, "embedding_size": 16}
    ours = Checkpoint(model_args=args, model_state=model, run_args={"sequence_length": SEQ},
                      extra={"preprocessing": {"sequence_length": SEQ, "normalize_pose": "off",
                                               "multi_branch": False, "all_angles": False}}).save(tmp_path / "best.pt")
    original = tmp_path / "gaitgraph_original.pt"
    torch.save({"opt": argparse.Namespace(network_name="resgcn-n39-r8", sequence_length=SEQ),
                "model": model.state_dict(), "epoch": 3}, original)
    return model, ours, original


def direct_gait_embedding(model, poses_crop: np.ndarray) -> np.ndarray:
    """By hand: reflect-pad to SEQ + 1 frames, take the centre window, run the network, unit length."""
    import torch

    from gafnet.gait.poses import reflect_indices

    seq = poses_crop[reflect_indices(len(poses_crop), SEQ + 1)] if len(poses_crop) < SEQ + 1 else poses_crop
    start = int(len(seq) / 2 - SEQ / 2)
    window = seq[start:start + SEQ]  # (T, V, C)
    x = torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1)[None, None]).astype(np.float32))
    with torch.no_grad():
        e = model(x).numpy()[0].astype(np.float64)
    return e / np.linalg.norm(e)


@pytest.fixture(scope="module")
def clip_csv(tmp_path_factory):
    if not have_mediapipe() or not hasattr(cv2, "HOGDescriptor"):
        pytest.skip("needs mediapipe and OpenCV 4.x")
    out, _ = shipped_clip_tracks(tmp_path_factory)
    return out / f"{SHIPPED_CLIP.stem}.csv"


def poses_by_track(csv, tracks_json):
    rows = reid.read_pose_rows(csv)
    tracks = json.loads(Path(tracks_json).read_text())["tracks"]
    out = {}
    for t in tracks:
        names = [f"cam1_person{t['track_id']:04d}_{f:05d}.png" for f in t["frames"]]
        keep = [i for i, n in enumerate(names) if n in rows]
        p = np.stack([rows[names[i]] for i in keep]).astype(np.float32) if keep else np.zeros((0, 17, 3), np.float32)
        boxes = np.asarray(t["boxes_xywh"], float)[keep]
        p[:, :, 0] -= boxes[:, None, 0]
        p[:, :, 1] -= boxes[:, None, 1]
        out[t["track_id"]] = p
    return out


def test_gait_from_pose_csvs_and_crops_fused_by_eq4_equals_a_direct_computation(clip_csv, tmp_path, capsys):
    from gafnet.pixels.appearance import ColourExtractor
    from gafnet.pixels.datasets import read_tracklet_folders

    model, ours, original = gait_checkpoints(tmp_path)
    tracks_json = clip_csv.with_name(clip_csv.stem + ".tracks.json")
    # the query: the same tracks, with every pose row of track 1 removed (a tracklet without any pose)
    query_csv = tmp_path / "query.csv"
    lines = clip_csv.read_text().splitlines(keepends=True)
    query_csv.write_text("".join(ln for ln in lines if not ln.startswith("cam1_person0001_")))
    shutil.copy(tracks_json, tmp_path / "query.tracks.json")
    crops = clip_csv.with_name(clip_csv.stem + "_crops")
    index = tmp_path / "idx"
    code, out, err = run_main(capsys, "index", clip_csv, "--out", index, "--gait_weights", ours, "--quiet")
    assert code == 0, err
    assert "gait-padded" in out and GalleryIndex.open(index).gait_dim == 16
    code, out, err = run_main(capsys, "search", query_csv, "--crops", crops, "--gallery", index, "--gait_weights", ours,
                              "--top", 4, "--out", tmp_path / "res", "--quiet")
    assert code == 0, err
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert res["fusion"]["kind"] == "concat" and res["lambda"] == 0.74
    assert res["models"]["gait"]["checkpoint_format"] == "gafnet" and res["models"]["pose"] is not None
    # the direct computation: colour descriptor of the crops, GaitGraph on crop-pixel poses, Eq. 4
    folders = {t.name: t for t in read_tracklet_folders(crops)}
    app = {int(n.split("person")[1]): v for n, v in zip(folders, ColourExtractor().features(list(folders.values())))}
    gallery_poses, query_poses = poses_by_track(clip_csv, tracks_json), poses_by_track(query_csv, tracks_json)
    assert len(query_poses[1]) == 0 and len(gallery_poses[1]) > 0
    unit = {k: v / np.linalg.norm(v) for k, v in app.items()}
    gait_g = {k: direct_gait_embedding(model, p) for k, p in gallery_poses.items() if len(p)}
    gait_q = {k: direct_gait_embedding(model, p) for k, p in query_poses.items() if len(p)}
    checked = 0
    for qd in res["queries"]:
        qk = int(qd["source"].rsplit("#", 1)[1])
        assert qd["has_pose"] == (qk in gait_q) and qd["appearance_only"] == (qk not in gait_q)
        assert qd["gait_padded"] == (0 < len(query_poses[qk]) < SEQ + 1)
        for m in qd["matches"]:
            gk = int(m["source"].rsplit("#", 1)[1])
            d_app = float(((unit[qk] - unit[gk]) ** 2).sum())
            assert m["appearance"] == pytest.approx(d_app, abs=2e-5)
            if qk in gait_q and gk in gait_g:
                d_gait = float(((gait_q[qk] - gait_g[gk]) ** 2).sum())
                assert m["gait"] == pytest.approx(d_gait, abs=2e-5)
                assert m["fused"] == pytest.approx((d_app + 0.74 ** 2 * d_gait) / (1 + 0.74 ** 2), abs=2e-5)
                assert not m["appearance_only"]
                checked += 1
            else:  # no pose on one side: appearance alone, marked so
                assert m["gait"] is None and m["appearance_only"] and m["fused"] == pytest.approx(d_app, abs=2e-5)
        fused = [m["fused"] for m in qd["matches"]]
        assert fused == sorted(fused)
    assert checked >= 6
    assert "[appearance only]" in out
    # score-level fusion through the command line
    code, _, err = run_main(capsys, "search", clip_csv, "--gallery", index, "--gait_weights", ours, "--fusion", "score",
                            "--weight", 0.5, "--out", tmp_path / "score", "--quiet", "--no_sheet")
    assert code == 0, err
    score = json.loads((tmp_path / "score" / "results.json").read_text())
    assert score["fusion"] == {**score["fusion"], "kind": "score", "weight": 0.5, "norm": "minmax"}
    assert all(0 <= m["fused"] <= 1 for qd in score["queries"] for m in qd["matches"])
    assert not (tmp_path / "score" / "contact_sheet.png").exists()
    # the original GaitGraph checkpoint gives the same embeddings, but it is another file: an index of one is
    # refused for the other, naming both
    from gafnet.pixels.reid import Models

    theirs, mine = Models(gait_weights=original, device="cpu"), Models(gait_weights=ours, device="cpu")
    assert theirs.describe()["gait"]["checkpoint_format"] == "original"
    assert theirs.describe()["gait"]["preprocessing"] == mine.describe()["gait"]["preprocessing"]
    tracklets, _ = reid.pose_csv_tracklets(clip_csv)
    np.testing.assert_array_equal(theirs.gait_features(tracklets)[0], mine.gait_features(tracklets)[0])
    refused(capsys, "but this run uses gait 'GaitGraph resgcn-n39-r8' (weights sha256", "search", clip_csv,
            "--gallery", index, "--gait_weights", original, "--out", tmp_path / "x")
    refused(capsys, "was built with appearance 'colour'", "search", clip_csv, "--gallery", index, "--gait_weights",
            ours, "--seq_len", 4, "--out", tmp_path / "x")
    # an index with gait, searched without gait weights: appearance alone, said in one line
    code, out, err = run_main(capsys, "search", clip_csv, "--gallery", index, "--out", tmp_path / "nogait", "--quiet",
                              "--no_sheet")
    assert code == 0 and "ranked by appearance alone" in out
    assert not (tmp_path / "x").exists()


@needs_real
@needs_hog
def test_a_video_query_on_the_real_clip_with_annotate(clip_csv, tmp_path, capsys):
    """The 100-frame real clip's first frames as a query video against the shipped clip's index."""
    index = tmp_path / "idx"
    assert run_main(capsys, "index", clip_csv, "--out", index, "--gait", "off", "--quiet")[0] == 0
    code, _out, err = run_main(capsys, "search", REAL_CLIP, "--gallery", index, "--max_frames", 4, "--hog_scale", 1.2,
                              "--gait", "off", "--annotate", "--no_sheet", "--out", tmp_path / "res", "--quiet")
    assert code == 0, err
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert res["queries"] and all(q["source"].startswith(f"{REAL_CLIP}#") for q in res["queries"])
    video = cv2.VideoCapture(str(tmp_path / "res" / f"annotated_{REAL_CLIP.stem}.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    ok, frame = video.read()
    assert ok and frame.shape == (576, 768, 3)


# ----------------------------------------------------------------------------------------------- bad input
def grey_video(path, frames=4, size=(160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for _ in range(frames):
        writer.write(np.full((size[1], size[0], 3), 128, np.uint8))
    writer.release()
    return path


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    g = tmp_path / "g"
    folder = tmp_path / "folders" / "T01"
    folder.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((64, 32, 3), 40 * i, np.uint8))
    assert run_main(capsys, "index", tmp_path / "folders", "--out", g, "--gait", "off", "--quiet")[0] == 0
    # videos that are not videos, empty, truncated; an image; a missing input
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    refused(capsys, "fake.mp4: not a video", "index", fake, "--out", tmp_path / "new", "--gait", "off")
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    refused(capsys, "empty.avi: empty file", "search", empty, "--gallery", g, "--gait", "off", "--out", tmp_path / "r")
    video = tmp_path / "ok.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(20):
        writer.write(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    err = refused(capsys, "cut.avi", "index", cut, "--out", tmp_path / "new", "--gait", "off")
    assert "truncated video" in err or "not a video" in err
    refused(capsys, "0.png: an image", "index", folder / "0.png", "--out", tmp_path / "new", "--gait", "off")
    refused(capsys, "missing.mp4: no such file or folder", "index", tmp_path / "missing.mp4", "--out", tmp_path / "new")
    assert not (tmp_path / "new").exists() and not (tmp_path / "r").exists()
    # a video in which no person is found: as query and as gallery
    grey = grey_video(tmp_path / "grey.avi")
    refused(capsys, "no person found in", "search", grey, "--gallery", g, "--gait", "off", "--out", tmp_path / "r")
    refused(capsys, "no person found in any input", "index", grey, "--out", tmp_path / "new", "--gait", "off", "--quiet")
    assert not (tmp_path / "new").exists() and not (tmp_path / "r").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    # --top 0, fusion options, contradicting gait options
    refused(capsys, "--top must be at least 1", "search", folder, "--gallery", g, "--top", 0)
    refused(capsys, "--fusion score needs --weight", "search", folder, "--gallery", g, "--fusion", "score")
    refused(capsys, "--appearance osnet_x1_0 needs --appearance_weights", "search", folder, "--gallery", g,
            "--appearance", "osnet_x1_0", "--out", tmp_path / "r")
    refused(capsys, "--gait off and --gait_weights contradict", "search", folder, "--gallery", g, "--gait", "off",
            "--gait_weights", fake, "--out", tmp_path / "r")
    # an output folder that holds other files: refused, nothing deleted
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    refused(capsys, "holds other files (keep.txt)", "search", folder, "--gallery", g, "--gait", "off", "--out", busy)
    refused(capsys, "is not a reid index (it holds other files)", "index", folder, "--out", busy, "--gait", "off")
    assert [p.name for p in busy.iterdir()] == ["keep.txt"] and (busy / "keep.txt").read_text() == "mine"
    # corrupt index, another version, an older one-file index, not an index
    header = json.loads((g / "index.json").read_text())
    (g / "index.json").write_text(json.dumps({**header, "version": 7}))
    refused(capsys, "written by reid index version 7", "search", folder, "--gallery", g, "--gait", "off")
    (g / "index.json").write_text("{garbage")
    refused(capsys, "corrupt reid index header", "search", folder, "--gallery", g, "--gait", "off")
    refused(capsys, "corrupt reid index header", "index", folder, "--out", g, "--gait", "off")
    (g / "index.json").write_text(json.dumps(header))
    part = next((g / "parts").iterdir()) / "gait.npy"
    part.write_bytes(part.read_bytes()[:20])
    refused(capsys, "damaged index", "search", folder, "--gallery", g, "--gait", "off")
    old = tmp_path / "old.npz"
    np.savez(old, header=np.asarray("{}"))
    refused(capsys, "one-file index of an older reid.py", "search", folder, "--gallery", old, "--gait", "off")
    refused(capsys, "no such reid index", "search", folder, "--gallery", tmp_path / "none", "--gait", "off")
    # a pose CSV without its tracks or report file
    lonely = tmp_path / "lonely.csv"
    lonely.write_text("image_name,x\n")
    refused(capsys, "lonely.csv: a pose CSV needs lonely.tracks.json", "index", lonely, "--out", tmp_path / "new")
    assert not (tmp_path / "new").exists() and not (tmp_path / "r").exists()


def test_an_index_made_with_other_appearance_weights_is_refused_through_the_cli(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchreid")
    from gafnet.pixels.appearance import build_torchreid_model

    folder = tmp_path / "f" / "T01"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "0.png"), np.full((64, 32, 3), 90, np.uint8))
    weights = tmp_path / "osnet_x0_25.pth"
    torch.save({"state_dict": build_torchreid_model("osnet_x0_25").state_dict()}, weights)
    assert run_main(capsys, "index", tmp_path / "f", "--out", tmp_path / "g", "--gait", "off", "--quiet")[0] == 0
    refused(capsys, "was built with appearance 'colour' (no weights file) but this run uses 'osnet_x0_25' (weights "
            "sha256", "search", tmp_path / "f", "--gallery", tmp_path / "g", "--gait", "off", "--appearance",
            "osnet_x0_25", "--appearance_weights", weights, "--device", "cpu", "--out", tmp_path / "r")
    assert not (tmp_path / "r").exists()
