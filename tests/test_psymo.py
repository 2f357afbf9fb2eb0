"""PsyMo AlphaPose JSON → iLIDS-format pose CSV (real walking poses; converted into tmp_path only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gafnet.errors import InputError
from gafnet.gait import psymo
from gafnet.gait.poses import load_poses

# ../shared beside the repository (as on the developers' machines and in CI)
SKELETONS = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "psymo_skeletons_excerpt" / "skeletons"
needs_psymo = pytest.mark.skipif(not SKELETONS.is_dir(), reason=f"PsyMo excerpt not available at {SKELETONS} "
                                 "(real data, CC BY-NC-ND: never committed to this repository)")


def detection(frame, value, score=0.9, n=51):
    return {"image_id": f"{frame}.jpg", "category_id": 1, "keypoints": [float(value)] * n, "score": score,
            "box": [0, 0, 1, 1], "idx": [0.0]}


def write_walk(folder: Path, name: str, detections) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(detections))
    return path


def test_walk_names():
    info = psymo.parse_walk_name("003_90_1_0_nm.json")
    assert info == psymo.WalkInfo(subject=3, viewpoint=90, direction=1, run=0, variation="nm")
    assert info.camera == 2 and info.output_name == "psymo_v090_nm_run0.csv"
    assert psymo.parse_walk_name("notes.json") is None


def test_duplicates_gaps_and_invalid_detections(tmp_path):
    path = write_walk(tmp_path, "012_90_0_1_nm.json", [
        detection(3, 1.0), detection(4, 2.0, score=0.5), detection(4, 3.0, score=0.8), detection(4, 4.0, score=0.8),
        detection(7, 5.0), detection(8, 6.0, n=50), {"image_id": "x.jpg", "keypoints": [0.0] * 51}, detection(9, 7.0),
    ])
    walk = psymo.read_walk(path)
    assert walk.frames.tolist() == [3, 4, 7, 9]
    assert walk.poses[:, 0, 0].tolist() == [1.0, 3.0, 5.0, 7.0]  # frame 4: highest score, first of a tie
    assert walk.duplicates_removed == 2 and walk.invalid_detections == 2
    assert walk.gaps == [(4, 2), (7, 1)]
    assert walk.image_names()[0] == "cam1_person012_00003.png"


def test_bad_inputs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not a PsyMo walk name"):
        psymo.read_walk(write_walk(tmp_path, "walk.json", []))
    with pytest.raises(InputError, match="JSON list"):
        psymo.read_walk(write_walk(tmp_path, "001_90_0_0_nm.json", {"a": 1}))
    (tmp_path / "002_90_0_0_nm.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        psymo.read_walk(tmp_path / "002_90_0_0_nm.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no PsyMo walk files"):
        psymo.find_walks(empty)
    with pytest.raises(InputError, match="not found"):
        psymo.find_walks(tmp_path / "missing")


def test_conversion_of_small_synthetic_walks(tmp_path):
    root = tmp_path / "skeletons"
    for subject in (1, 2):
        for direction in (0, 1):
            write_walk(root / str(subject), f"{subject:03d}_90_{direction}_0_nm.json",
                       [detection(f, 10 * subject + direction + f / 100) for f in range(5)])
    write_walk(root / "3", "003_90_2_0_nm.json", [detection(0, 1.0)])
    write_walk(root / "4", "004_90_0_0_nm.json", [detection(0, 1.0, n=3)])
    report = psymo.convert_psymo(root, tmp_path / "out")
    assert list(report.files.values()) == [4]
    assert {Path(p).name for p, _ in report.skipped} == {"003_90_2_0_nm.json", "004_90_0_0_nm.json"}
    poses = load_poses(tmp_path / "out" / "psymo_v090_nm_run0.csv", "iLIDS", sequence_length=None)
    assert poses.target_list() == [(1, 1), (1, 2), (2, 1), (2, 2)]
    np.testing.assert_allclose(poses.sequence(3)[:, 0, 0], 21 + np.arange(5) / 100, atol=1e-3)


@needs_psymo
def test_the_real_excerpt_converts_and_reads_as_ilids(tmp_path):
    report = psymo.convert_psymo(SKELETONS, tmp_path)
    assert sorted(Path(p).name for p in report.files) == ["psymo_v090_nm_run0.csv", "psymo_v090_nm_run1.csv"]
    assert len(report.walks) == 40 and not report.skipped
    # as the excerpt's README says: 7 walks skip one frame, 2 have frames with two detections
    assert sum(1 for w in report.walks if w.gaps) == 7
    assert all(m == 1 for w in report.walks for _, m in w.gaps)
    assert {w.path.name: w.duplicates_removed for w in report.walks if w.duplicates_removed} == {
        "002_90_1_1_nm.json": 17, "004_90_0_1_nm.json": 1}
    for csv_path in report.files:
        poses = load_poses(csv_path, "iLIDS", sequence_length=None)
        assert poses.report.bad_rows == 0
        assert poses.target_list() == [(s, c) for s in range(10) for c in (1, 2)]
    # the kept detection is the highest-scoring one, brute force over the JSON
    walk_path = SKELETONS / "2" / "002_90_1_1_nm.json"
    best = {}
    for det in json.loads(walk_path.read_text()):
        frame = int(det["image_id"].split(".")[0])
        if frame not in best or det["score"] > best[frame]["score"]:
            best[frame] = det
    run1 = load_poses(tmp_path / "psymo_v090_nm_run1.csv", "iLIDS", sequence_length=None)
    index = run1.target_list().index((2, 2))
    expected = np.array([best[f]["keypoints"] for f in best], np.float32).reshape(-1, 17, 3)
    np.testing.assert_allclose(run1.sequence(index), expected, atol=1e-3)
