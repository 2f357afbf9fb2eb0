"""Synthetic pose files: formats readable by the loader, iLIDS-VID-like statistics, seeding, separability."""

from __future__ import annotations

import time

import numpy as np

from gafnet.gait import synthetic_poses as S
from gafnet.gait.poses import load_poses


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
