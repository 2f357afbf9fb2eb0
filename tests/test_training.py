"""GaitGraph training (gaitgraph/src/train.py): runs end to end on CPU, resumes exactly, refuses bad input."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gafnet.gait import synthetic_poses
from gafnet.gait.checkpoint import load_checkpoint
from gafnet.gait.training import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--network_name", "resgcn-n39-r8", "--sequence_length", "8", "--batch_size", "8", "--embedding_layer_size",
        "16", "--learning_rate", "1e-3", "--temp", "0.07", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def pose_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("poses")
    synthetic_poses.write_ilids_pose_splits(out, num_ids=12, num_splits=1, seed=5)
    return out / "train_split0.csv", out / "test_split0.csv"


def test_resume_after_interruption_gives_the_same_weights(pose_files, tmp_path):
    train, test = pose_files
    common = ["iLIDS", str(train), "--epochs", "3", "--save_dir", str(tmp_path), "--seed", "3", *TINY]
    assert train_main([*common, "--exp_name", "whole"]) == 0
    assert train_main([*common, "--exp_name", "cut", "--stop_after_epoch", "1"]) == 0
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    assert train_main([*common, "--checkpoint_path", str(tmp_path / "cut" / "last.pt")]) == 0
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    resumed = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert whole["epoch"] == resumed["epoch"] == 3
    for key, value in whole["model_state"].items():
        assert torch.equal(value, resumed["model_state"][key]), key
    # and training did change the weights
    fresh_epoch1 = load_checkpoint(tmp_path / "cut" / "best.pt")
    assert any(not torch.equal(v, fresh_epoch1["model_state"][k]) for k, v in whole["model_state"].items()) or \
        fresh_epoch1["epoch"] == 3


def test_checkpoint_is_self_describing_and_loads_weights_only(pose_files, tmp_path):
    train, test = pose_files
    assert train_main(["iLIDS", str(train), "--valid_data_path", str(test), "--epochs", "1", "--save_dir",
                       str(tmp_path), "--exp_name", "r", *TINY]) == 0
    raw = torch.load(tmp_path / "r" / "best.pt", weights_only=True)
    assert raw["model_args"]["embedding_size"] == 16
    ckpt = load_checkpoint(tmp_path / "r" / "best.pt")
    assert ckpt["extra"]["preprocessing"]["sequence_length"] == 8
    assert (tmp_path / "r" / "args.json").is_file()


def run_script(*args):
    return subprocess.run([sys.executable, str(ROOT / "gaitgraph" / "src" / "train.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_missing_training_file_exits_2(tmp_path):
    r = run_script("iLIDS", str(tmp_path / "nope.csv"), "--save_dir", str(tmp_path))
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_unknown_network_lists_valid_names(pose_files, tmp_path):
    r = run_script("iLIDS", str(pose_files[0]), "--network_name", "resgcn-x99", "--save_dir", str(tmp_path))
    assert r.returncode == 2 and "resgcn-n39-r8" in r.stderr


def test_resume_with_other_options_is_refused(pose_files, tmp_path):
    train, _ = pose_files
    common = ["iLIDS", str(train), "--epochs", "2", "--save_dir", str(tmp_path), "--exp_name", "a", *TINY]
    assert train_main([*common, "--stop_after_epoch", "1"]) == 0
    with pytest.raises(SystemExit) as info:
        train_main([*common[:-len(TINY)], *TINY[:2], "--sequence_length", "10", *TINY[4:],
                    "--checkpoint_path", str(tmp_path / "a" / "last.pt")])
    assert info.value.code == 2


def test_weight_path_reports_skipped_head(pose_files, tmp_path, capsys):
    train, _ = pose_files
    assert train_main(["iLIDS", str(train), "--epochs", "1", "--save_dir", str(tmp_path), "--exp_name", "s1",
                       *TINY]) == 0
    tiny = [v if v != "16" else "32" for v in TINY]
    assert train_main(["iLIDS", str(train), "--epochs", "1", "--save_dir", str(tmp_path), "--exp_name", "s2",
                       "--weight_path", str(tmp_path / "s1" / "last.pt"), *tiny]) == 0
    out = capsys.readouterr().out
    assert "fcn.weight" in out and "shape" in out


@pytest.mark.parametrize("dataset", ["casia-b", "mars"])
def test_casia_b_and_mars_training_validate_with_their_protocols(dataset, tmp_path, capsys):
    if dataset == "casia-b":
        synthetic_poses.write_casia_pose_csv(tmp_path / "train.csv", subjects=range(1, 4), seed=1)
        synthetic_poses.write_casia_pose_csv(tmp_path / "test.csv", subjects=range(75, 78), seed=2)
        expected = "CASIA-B NM"
    else:
        synthetic_poses.write_mars_pose_tree(tmp_path, num_ids=6, seed=1)
        expected = "Rank-1"
    common = ["--epochs", "1", "--save_dir", str(tmp_path), "--exp_name", "r", "--max_steps_per_epoch", "2", *TINY]
    if dataset == "mars":  # the synthetic persons are not the standard MARS queries: one query per person
        from gafnet.gait.poses import load_poses
        targets = load_poses(tmp_path / "test.csv", "mars", sequence_length=None).targets.tolist()
        first = {}
        for person, cam, tracklet in targets:
            if person > 0:
                first.setdefault(person, (cam, tracklet))
        (tmp_path / "q.csv").write_text("person_id,camera_id,tracklet\n" +
                                        "".join(f"{p},{c},{t}\n" for p, (c, t) in first.items()))
        common += ["--query_list", str(tmp_path / "q.csv")]
    assert train_main([dataset, str(tmp_path / "train.csv"), "--valid_data_path", str(tmp_path / "test.csv"),
                       *common]) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    (["--epochs", "4"], "epochs=3"),
    (["--embedding_layer_size", "32"], "embedding_size=16"),
    (["--batch_size", "4"], "batch_size=8"),
])
def test_resume_must_rebuild_the_same_model_and_schedule(pose_files, tmp_path, capsys, change, message):
    train, _ = pose_files
    common = ["iLIDS", str(train), "--epochs", "3", "--save_dir", str(tmp_path), "--exp_name", "a", *TINY]
    assert train_main([*common, "--stop_after_epoch", "1"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        train_main([*common, *change, "--checkpoint_path", str(tmp_path / "a" / "last.pt")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
