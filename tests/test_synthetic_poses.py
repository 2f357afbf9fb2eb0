"""Synthetic pose files: formats readable by the loader, iLIDS-VID-like statistics, seeding, separability, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gafnet.gait import synthetic_poses as S
from gafnet.gait.poses import CSV_HEADER, load_poses


def test_full_ilids_tree_is_fast_seeded_and_readable(tmp_path):
    t0 = time.perf_counter()
    result = S.write_ilids_pose_splits(tmp_path / "a", num_ids=300, num_splits=10, seed=3)
    elapsed = time.perf_counter() - t0
    assert elapsed < 20, f"writing the 300-id tree took {elapsed:.1f} s"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        [f"train_split{i}.csv" for i in range(10)] + [f"test_split{i}.csv" for i in range(10)])
    # iLIDS-VID statistics: 2 tracklets per person, 23–192 frames, mean about 73
    lengths = np.array(list(result.lengths.values()))
    assert len(lengths) == 600 and lengths.min() >= 23 and lengths.max() <= 192
    assert 63 <= lengths.mean() <= 83
    # the protocol: per split, half of the persons test, the other half train
    for split in result.splits:
        assert len(split["test"]) == len(split["train"]) == 150
        assert sorted(split["test"] + split["train"]) == result.persons
    assert result.splits[0]["test"] != result.splits[1]["test"]
    # readable as iLIDS data, every row good, both cameras of the split's persons
    poses = load_poses(tmp_path / "a" / "test_split4.csv", "ilids", sequence_length=None)
    assert poses.report.bad_rows == 0 and poses.report.junk_rows == 0
    assert poses.target_list() == [(p, c) for p in result.splits[4]["test"] for c in (1, 2)]
    assert poses.lengths.tolist() == [result.lengths[t] for t in poses.target_list()]
    confidence = poses.poses[:, :, 2]
    assert 0.05 <= confidence.min() and confidence.max() <= 0.99


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    S.write_ilids_pose_splits(tmp_path / "a", num_ids=20, num_splits=2, seed=1)
    S.write_ilids_pose_splits(tmp_path / "b", num_ids=20, num_splits=2, seed=1)
    S.write_ilids_pose_splits(tmp_path / "c", num_ids=20, num_splits=2, seed=2)
    for name in ("train_split0.csv", "test_split1.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_a_person_does_not_depend_on_how_many_others_there_are():
    few, many = S.ilids_tracklets(5, seed=0), S.ilids_tracklets(12, seed=0)
    np.testing.assert_array_equal(few[(3, 2)][1], many[(3, 2)][1])


def gait_features(poses: np.ndarray) -> np.ndarray:
    """Hand-crafted, view-tolerant gait features: vertical body ratios relative to the torso."""
    y = poses[..., 1]
    shoulders, hips = (y[:, 5] + y[:, 6]) / 2, (y[:, 11] + y[:, 12]) / 2
    torso = np.median(hips - shoulders)
    return np.array([
        np.percentile((y[:, 15] + y[:, 16]) / 2 - hips, 90) / torso,   # leg length
        np.median((y[:, 13] + y[:, 14]) / 2 - hips) / torso,           # thigh
        np.median((y[:, 9] + y[:, 10]) / 2 - shoulders) / torso,       # arm
        np.median(shoulders - y[:, 0]) / torso,                        # head
    ])


def test_identities_are_separable_across_cameras():
    """Nearest neighbour on simple gait features, camera 1 → camera 2: rank-1 far above chance (1 %)."""
    persons = 100
    tracklets = S.ilids_tracklets(persons, seed=1)
    query = np.array([gait_features(tracklets[(p, 1)][1]) for p in range(1, persons + 1)])
    gallery = np.array([gait_features(tracklets[(p, 2)][1]) for p in range(1, persons + 1)])
    both = np.concatenate([query, gallery])
    mean, std = both.mean(axis=0), both.std(axis=0)
    q, g = (query - mean) / std, (gallery - mean) / std
    distance = ((q[:, None] - g[None]) ** 2).sum(axis=-1)
    rank1 = float((distance.argmin(axis=1) == np.arange(persons)).mean())
    assert rank1 >= 0.15, rank1
    # and the cameras really differ: the same person's raw coordinates are not simply copied
    a, b = tracklets[(1, 1)][1], tracklets[(1, 2)][1]
    assert abs(np.median(a[:, 5, 0] - a[:, 6, 0]) - np.median(b[:, 5, 0] - b[:, 6, 0])) > 1.0


def test_mars_tree_has_junk_and_distractors_and_reads_as_mars(tmp_path):
    records = S.write_mars_pose_tree(tmp_path, num_ids=10, seed=0)
    test = load_poses(tmp_path / "test.csv", "mars", sequence_length=None)
    persons = set(test.column("person").tolist())
    assert persons == {0, 6, 7, 8, 9, 10}  # junk (−1) skipped, distractors (0) kept
    junk_frames = sum(r["frames"] for r in records["test"] if r["person"] == -1)
    assert junk_frames > 0 and test.report.junk_rows == junk_frames and test.report.bad_rows == 0
    train = load_poses(tmp_path / "train.csv", "mars", sequence_length=None)
    assert set(train.column("person").tolist()) == {1, 2, 3, 4, 5}
    assert set(train.column("camera").tolist()) <= set(range(1, 7))
    assert train.target_list() == [(r["person"], r["camera"], r["tracklet"]) for r in records["train"]]


def test_casia_b_file_reads_as_casia_b(tmp_path):
    records = S.write_casia_pose_csv(tmp_path / "casia.csv", subjects=[1, 2], seed=0)
    poses = load_poses(tmp_path / "casia.csv", "casia-b", sequence_length=None)
    assert len(poses) == 2 * 10 * 11 == len(records)
    assert poses.report.bad_rows == 0
    assert set(poses.column("condition").tolist()) == {0, 1, 2}
    assert sorted(set(poses.column("view").tolist())) == list(S.CASIA_VIEWS)
    assert poses.lengths.tolist() == [r["frames"] for r in records]


# --------------------------------------------------------------------------------------------------
# the command line: python -m gafnet.gait.synthetic_poses OUT_DIR --format ...

ROOT = Path(__file__).resolve().parents[1]


def command(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gafnet.gait.synthetic_poses", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def test_help_states_formats_units_and_defaults():
    done = command("--help")
    assert done.returncode == 0 and done.stderr == ""
    for words in ("--format {casia-b,ilids,mars}", "default: the real dataset's ilids 300, mars 1261, casia-b 124",
                  "default: 10", "default: 0", "splits_pit", "query_list.csv", "pixels", "--overwrite"):
        assert words in " ".join(done.stdout.split()), words


def test_command_writes_a_mars_tree_that_reads_as_mars(tmp_path):
    done = command(tmp_path / "out", "--format", "mars", "--ids", 6, "--seed", 3)
    assert done.returncode == 0, done.stderr
    assert "wrote 3 synthetic mars pose files" in done.stdout and "train.py mars" in done.stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["query_list.csv", "test.csv", "train.csv"]  # no temporaries
    train = load_poses(out / "train.csv", "mars", sequence_length=None)
    test = load_poses(out / "test.csv", "mars", sequence_length=None)
    assert set(train.column("person").tolist()) == {1, 2, 3} and set(test.column("person").tolist()) == {0, 4, 5, 6}
    assert train.report.bad_rows == test.report.bad_rows == 0 and test.report.junk_rows > 0
    from gafnet.gait.protocols import load_mars_query_list

    queries = load_mars_query_list(out / "query_list.csv")
    assert queries[:, 0].tolist() == [4, 5, 6]
    targets = set(map(tuple, test.targets.tolist()))
    for person, camera, tracklet in queries.tolist():  # the query exists and another camera holds a match
        assert (person, camera, tracklet) in targets
        assert any(p == person and c != camera for p, c, _ in targets)
    # the same seed gives the same bytes
    assert S.main([str(tmp_path / "again"), "--format", "mars", "--ids", "6", "--seed", "3", "--quiet"]) == 0
    for name in ("train.csv", "test.csv", "query_list.csv"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_command_writes_ilids_splits_in_the_released_layout(tmp_path, capsys):
    from gafnet import layout

    assert S.main([str(tmp_path), "--format", "ilids", "--ids", "8", "--splits", "2", "--seed", "1"]) == 0
    assert "wrote 8 synthetic ilids pose files" in capsys.readouterr().out
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(f"poses/{f}/{k}_split{s}.csv" for f in layout.POSE_FOLDERS for k in ("train", "test")
                           for s in (0, 1))
    for name in ("train_split0.csv", "test_split1.csv"):
        assert (tmp_path / "poses/splits_pit" / name).read_bytes() == (tmp_path / "poses/splits_mgh" / name).read_bytes()
    train = load_poses(tmp_path / "poses/splits_pit/train_split0.csv", "iLIDS", sequence_length=None)
    test = load_poses(tmp_path / "poses/splits_pit/test_split0.csv", "iLIDS", sequence_length=None)
    assert len(set(train.column("person").tolist())) == len(set(test.column("person").tolist())) == 4
    assert not set(train.column("person").tolist()) & set(test.column("person").tolist())


def test_command_writes_casia_b_train_and_test_subjects(tmp_path):
    assert S.main([str(tmp_path), "--format", "casia-b", "--ids", "3", "--quiet"]) == 0
    train = load_poses(tmp_path / "train.csv", "casia-b", sequence_length=None)
    test = load_poses(tmp_path / "test.csv", "casia-b", sequence_length=None)
    assert set(train.column("subject").tolist()) == {1, 2} and set(test.column("subject").tolist()) == {3}
    assert len(test) == 10 * 11 and test.report.bad_rows == 0


@pytest.mark.parametrize("args,message", [
    (["--format", "kinect"], "argument --format: invalid choice: 'kinect'"),
    (["--format", "mars", "--ids", "1"], "--ids 1: must be 2 to 9999 for mars"),
    (["--format", "ilids", "--ids", "1000"], "--ids 1000: must be 2 to 999 for ilids"),
    (["--format", "mars", "--splits", "3"], "--splits applies to --format ilids only"),
    (["--format", "ilids", "--splits", "0"], "--splits 0: must be 1 to 100"),
    (["--format", "ilids", "--seed", "-1"], "--seed -1: must be 0 to 2**63 - 1"),
    (["--format", "ilids", "--ids", "ten"], "argument --ids: invalid int value: 'ten'"),
    ([], "the following arguments are required: --format"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exited:
        S.main([str(tmp_path / "out"), *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("python -m gafnet.gait.synthetic_poses: error:")
    assert not (tmp_path / "out").exists()


def test_bad_options_through_a_subprocess(tmp_path):
    done = command(tmp_path, "--format", "casia-b", "--ids", "0")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == ["python -m gafnet.gait.synthetic_poses: error: --ids 0: must be 2 to "
                                                "999 for casia-b"]


def test_existing_files_are_kept_unless_overwrite(tmp_path, capsys):
    (tmp_path / "test.csv").write_text("my real data")
    with pytest.raises(SystemExit) as exited:
        S.main([str(tmp_path), "--format", "casia-b", "--ids", "2"])
    assert exited.value.code == 2 and "test.csv exists" in capsys.readouterr().err
    assert (tmp_path / "test.csv").read_text() == "my real data" and not (tmp_path / "train.csv").exists()
    assert S.main([str(tmp_path), "--format", "casia-b", "--ids", "2", "--overwrite", "--quiet"]) == 0
    assert (tmp_path / "test.csv").read_text().startswith(CSV_HEADER)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit):
        S.main([str(tmp_path / "afile"), "--format", "casia-b", "--ids", "2"])
    assert "is not a directory" in capsys.readouterr().err
