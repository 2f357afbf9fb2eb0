"""Small tools: holding out identities, and the end-to-end synthetic run (integration test)."""

import subprocess
import sys
from pathlib import Path

from gafnet.gait import synthetic_poses
from gafnet.gait.poses import load_poses

ROOT = Path(__file__).resolve().parents[1]


def test_holdout_keeps_every_row_and_separates_identities(tmp_path):
    synthetic_poses.write_ilids_pose_splits(tmp_path, num_ids=20, num_splits=1, seed=4)
    src = tmp_path / "train_split0.csv"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "holdout_ids.py"), str(src), "--fraction", "0.3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fit, val = tmp_path / "train_split0.fit.csv", tmp_path / "train_split0.val.csv"
    n = lambda p: len(p.read_text().splitlines()) - 1  # noqa: E731
    assert n(fit) + n(val) == n(src)
    fit_ids = set(load_poses(fit, "iLIDS", sequence_length=None).column("person").tolist())
    val_ids = set(load_poses(val, "iLIDS", sequence_length=None).column("person").tolist())
    assert len(val_ids) == 3 and not fit_ids & val_ids
    again = subprocess.run([sys.executable, str(ROOT / "tools" / "holdout_ids.py"), str(src)], capture_output=True,
                           text=True)
    assert again.returncode == 2 and "exists" in again.stderr


def test_end_to_end_quick_run(tmp_path):
    """The whole method on tiny synthetic data: poses → GaitGraph → gait CSVs → fusion → table and plot."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "end_to_end.py"), "--quick", "--work_dir",
                        str(tmp_path / "e2e")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "SYNTHETIC" in r.stdout and "fused R1" in r.stdout
    for name in ("pit", "mgh", "osnet"):
        assert any(line.startswith(name) for line in r.stdout.splitlines())
    assert (tmp_path / "e2e" / "lambda_sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "e2e" / "embeddings" / "ilids" / "gait1" / "query_split0.csv").is_file()
