"""GaitGraph training (gaitgraph/src/train.py): runs end to end on CPU, resumes exactly, refuses bad input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gafnet.gait import synthetic_poses
from gafnet.gait.checkpoint import load_checkpoint
from gafnet.gait.train_cli import main as train_main

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
    epoch1 = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert epoch1.epoch == 1
    assert train_main([*common, "--checkpoint_path", str(tmp_path / "cut" / "last.pt")]) == 0
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    resumed = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert whole.epoch == resumed.epoch == 3
    for key, value in whole.model_state.items():
        assert torch.equal(value, resumed.model_state[key]), key
    # and epochs 2 and 3 did change the weights (the equality above is not that of untrained models)
    changed = [k for k, v in whole.model_state.items() if v.is_floating_point() and not torch.equal(v, epoch1.model_state[k])]
    assert len(changed) > len(whole.model_state) // 2


def test_checkpoint_is_self_describing_and_loads_weights_only(pose_files, tmp_path):
    train, test = pose_files
    assert train_main(["iLIDS", str(train), "--valid_data_path", str(test), "--epochs", "1", "--save_dir",
                       str(tmp_path), "--exp_name", "r", *TINY]) == 0
    raw = torch.load(tmp_path / "r" / "best.pt", weights_only=True)
    assert raw["model_args"]["embedding_size"] == 16
    ckpt = load_checkpoint(tmp_path / "r" / "best.pt")
    assert ckpt.preprocessing["sequence_length"] == 8
    assert (tmp_path / "r" / "args.json").is_file()


def run_script(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, str(ROOT / "gaitgraph" / "src" / "train.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


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


# ---------------------------------------------------------------------------------------------------------------
# Hostile arguments and checkpoints (issue 10): one line, exit 2, nothing written.


def one_line_error(capsys, argv) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        train_main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("option, value, message", [
    ("--learning_rate", "nan", "--learning_rate must be a finite number greater than 0"),
    ("--learning_rate", "-1", "--learning_rate must be a finite number greater than 0"),
    ("--learning_rate", "inf", "--learning_rate must be a finite number greater than 0"),
    ("--weight_decay", "-1", "--weight_decay must be a finite number at least 0"),
    ("--weight_decay", "nan", "--weight_decay must be a finite number at least 0"),
    ("--lr_div_factor", "0", "--lr_div_factor must be a finite number greater than 0"),
    ("--lr_div_factor", "nan", "--lr_div_factor must be a finite number greater than 0"),
    ("--temp", "inf", "--temp must be a finite number greater than 0"),
    ("--temp", "0", "--temp must be a finite number greater than 0"),
    ("--num_workers", "-1", "--num_workers must be at least 0"),
    ("--max_steps_per_epoch", "-1", "--max_steps_per_epoch must be at least 1"),
    ("--max_steps_per_epoch", "0", "--max_steps_per_epoch must be at least 1"),
    ("--seed", "-1", "--seed must be from 0 to 4294967295"),
    ("--seed", str(2**32), "--seed must be from 0 to 4294967295"),
    ("--sequence_length", "10000000", "--sequence_length must be from 1 to 1000"),
    ("--embedding_layer_size", "1000000000", "--embedding_layer_size must be from 1 to 4096"),
    ("--epochs", "0", "--epochs must be at least 1"),
    ("--batch_size", "0", "--batch_size must be at least 1"),
    ("--stop_after_epoch", "0", "--stop_after_epoch must be at least 1"),
    ("--log_interval", "-1", "--log_interval must be at least 0"),
])
def test_bad_numeric_options_are_refused_before_anything_is_written(pose_files, tmp_path, capsys, option, value,
                                                                    message):
    argv = ["iLIDS", str(pose_files[0]), "--save_dir", str(tmp_path / "runs"), "--exp_name", "x", *TINY, option, value]
    assert message in one_line_error(capsys, argv)
    assert not (tmp_path / "runs").exists()


def test_a_non_integer_size_is_an_argparse_error_not_a_traceback(pose_files, tmp_path):
    r = run_script("iLIDS", str(pose_files[0]), "--save_dir", str(tmp_path), "--embedding_layer_size", "1e9")
    assert r.returncode == 2 and "invalid int value: '1e9'" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def stopped_run(pose_files, tmp_path_factory):
    """A run stopped after epoch 1 of 3 (a resumable last.pt), and its options."""
    out = tmp_path_factory.mktemp("stopped")
    common = ["iLIDS", str(pose_files[0]), "--epochs", "3", "--save_dir", str(out), "--exp_name", "r", *TINY,
              "--max_steps_per_epoch", "1"]
    assert train_main([*common, "--stop_after_epoch", "1"]) == 0
    return out / "r" / "last.pt", common


def tampered(last: Path, tmp_path: Path, change) -> Path:
    raw = torch.load(last, weights_only=True)
    change(raw)
    path = tmp_path / "run" / "last.pt"
    path.parent.mkdir()
    torch.save(raw, path)
    return path


def _set(key, value):
    return lambda raw: raw.__setitem__(key, value)


def _optimizer(change):
    def apply(raw):
        change(raw["optimizer_state"])
    return apply


def _first_exp_avg_wrong(state):
    first = next(iter(state["state"]))
    state["state"][first]["exp_avg"] = torch.zeros(7)


def _tcn_weight_wrong(raw):
    key = next(k for k in raw["model_state"] if k.endswith("tcn.conv.weight"))
    raw["model_state"][key] = torch.zeros(2, 2, 9, 1)


@pytest.mark.parametrize("change, message", [
    (_set("epoch", None), "records no epoch"),
    (_set("best_metric", None), "records no best_metric"),
    (_set("optimizer_state", {"state": 5, "param_groups": []}), "(optimizer)"),
    (_set("optimizer_state", {"garbage": 1}), "not an optimizer state_dict"),
    (_optimizer(lambda s: s["param_groups"][0].__setitem__("lr", "fast")), "['lr'] should be a finite number"),
    (_optimizer(lambda s: s["param_groups"][0].__setitem__("betas", (0.9,))), "['betas'] should be a list of 2"),
    (_optimizer(_first_exp_avg_wrong), "optimizer state 'exp_avg' of parameter 0 does not fit the model"),
    (_set("scheduler_state", {"total_steps": "many"}), "(scheduler)"),
    (lambda raw: raw["scheduler_state"].__setitem__("get_lr", 5), "has unexpected get_lr"),
    (lambda raw: raw["scheduler_state"].__setitem__("last_epoch", float("nan")), "['last_epoch'] should be a finite"),
    (_set("rng_state", {"torch": torch.zeros(3, dtype=torch.uint8)}), "(RNG state)"),
    (lambda raw: raw["rng_state"].__setitem__("torch", torch.zeros(3, dtype=torch.uint8)), "['torch'] should be a tensor"),
    (lambda raw: raw["rng_state"]["numpy"].__setitem__("pos", 10**6), "not an MT19937 state"),
    (_tcn_weight_wrong, "does not fit this model: skipped for shape mismatch"),
    (lambda raw: raw["extra"]["preprocessing"].__setitem__("sequence_length", 10**7), "sequence_length must be"),
    (lambda raw: raw["extra"]["preprocessing"].__setitem__("normalize_pose", "weird"), "normalize_pose must be"),
    (_set("format_version", "two"), "format_version is 'two'"),
])
def test_a_damaged_checkpoint_to_resume_is_one_line_and_left_as_it_was(stopped_run, tmp_path, capsys, change,
                                                                         message):
    last, common = stopped_run
    path = tampered(last, tmp_path, change)
    before = path.read_bytes()
    err = one_line_error(capsys, [*common, "--checkpoint_path", str(path)])
    assert message in err and str(path) in err
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


class FifoWatchdog:
    """Opens the write end of a FIFO after ``seconds``, which releases a reader blocked in open() (and records it)."""

    def __init__(self, path, seconds: float = 20.0):
        import threading

        self.path, self.released = path, False
        self.timer = threading.Timer(seconds, self.release)

    def release(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only if someone is blocked reading
        except OSError:
            return
        self.released = True
        os.close(fd)

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()


def test_a_fifo_as_checkpoint_or_weights_is_refused_without_hanging(pose_files, tmp_path, capsys):
    os.mkfifo(tmp_path / "f.pt")
    for option in ("--checkpoint_path", "--weight_path"):
        with FifoWatchdog(tmp_path / "f.pt") as watchdog:
            err = one_line_error(capsys, ["iLIDS", str(pose_files[0]), option, str(tmp_path / "f.pt"), "--save_dir",
                                          str(tmp_path / "runs"), *TINY])
        assert not watchdog.released, f"{option}: blocked on the FIFO"
        assert "not a regular file" in err


def test_weights_that_are_not_tensors_are_refused(pose_files, stopped_run, tmp_path, capsys):
    last, _ = stopped_run
    path = tampered(last, tmp_path, lambda raw: raw.__setitem__("model_state", {"fcn.weight": [[1.0]]}))
    err = one_line_error(capsys, ["iLIDS", str(pose_files[0]), "--weight_path", str(path), "--save_dir",
                                  str(tmp_path / "runs"), *TINY])
    assert "model_state is not a state_dict" in err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------------------------
# What is printed (issue 9)


def test_the_printed_lr_is_the_one_the_last_step_used(pose_files, tmp_path, capsys):
    """OneCycleLR is stepped after every batch, so after the epoch's last step it points past the schedule's
    end; the printed lr must be the one the step used (here: max_lr / div_factor / final_div_factor)."""
    train, _ = pose_files
    assert train_main(["iLIDS", str(train), "--epochs", "1", "--save_dir", str(tmp_path), "--exp_name", "lr",
                       *TINY, "--max_steps_per_epoch", "2", "--log_interval", "1"]) == 0
    out = capsys.readouterr().out
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, epochs=1, steps_per_epoch=2)
    used = [optimizer.param_groups[0]["lr"]]
    optimizer.step(), scheduler.step()
    used.append(optimizer.param_groups[0]["lr"])
    optimizer.step(), scheduler.step()
    assert used[-1] == pytest.approx(1e-3 / 25 / 1e4) and scheduler.get_last_lr()[0] != pytest.approx(used[-1])
    assert "epoch 1/1: loss" in out and f"lr {used[-1]:.2e}," in out
    assert "epoch 1 step 1/2: loss" in out and f"lr {used[0]:.4e}" in out and f"lr {used[1]:.4e}" in out


def test_validation_reports_only_the_ranks_within_the_gallery(tmp_path, capsys):
    """A 3-identity validation gallery has no Rank-5: it used to print Rank-3's value labelled Rank-5."""
    synthetic_poses.write_ilids_pose_splits(tmp_path, num_ids=6, num_splits=1, seed=2)
    assert train_main(["iLIDS", str(tmp_path / "train_split0.csv"), "--valid_data_path",
                       str(tmp_path / "test_split0.csv"), "--epochs", "1", "--save_dir", str(tmp_path), *TINY]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch 1/1"))
    assert "Rank-1 " in line and "mAP" in line and "Rank-5" not in line


def test_collapsed_validation_embeddings_are_reported_with_the_default_flags(tmp_path, capsys):
    """The review's case: default flags (raw pixels, lr 1e-2, temp 0.01, window 60, batch 128) on synthetic
    poses; the validation embeddings are (nearly) all the same direction and training says so."""
    synthetic_poses.write_ilids_pose_splits(tmp_path, num_ids=20, num_splits=1, seed=0)
    assert train_main(["iLIDS", str(tmp_path / "train_split0.csv"), "--valid_data_path",
                       str(tmp_path / "test_split0.csv"), "--epochs", "2", "--save_dir", str(tmp_path), "--quiet",
                       "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "validation embeddings after epoch 2" in err and "collapsed" in err
    assert "mean cosine similarity between them 0.999" in err and "spread" in err


# ---------------------------------------------------------------------------------------------------------------
# Faults: a kill between the two checkpoint writes, a full disk (issue 10)

KILL_DURING_BEST = """
import os, signal, sys, torch
torch.set_num_threads(1)  # as the suite (conftest): the same arithmetic as the in-process runs
sys.argv = ["train.py"] + sys.argv[1:]
real_save = torch.save
def save(obj, f, *a, **k):
    if ".best.pt." in str(getattr(f, "name", f)) and obj.get("epoch") == 2:
        f.write(b"half a checkpoint")  # the temporary file of a write cut short
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *a, **k)
torch.save = save
from gafnet.gait.train_cli import main
sys.exit(main())
"""


def test_a_kill_while_best_pt_is_written_loses_nothing(pose_files, tmp_path):
    """kill -9 during best.pt's write at epoch 2 (an improving epoch): before, last.pt of epoch 2 was already
    written and recorded the improved metric, so best.pt (epoch 1) was never rewritten. Now best.pt is written
    first: last.pt still holds epoch 1, the resume recomputes epoch 2 and best.pt ends as in an uninterrupted
    run; the killed write's temporary file is removed."""
    train, _ = pose_files
    common = ["iLIDS", str(train), "--epochs", "3", "--save_dir", str(tmp_path), "--seed", "1", *TINY]
    assert train_main([*common, "--exp_name", "whole"]) == 0
    whole_best = load_checkpoint(tmp_path / "whole" / "best.pt")
    assert whole_best.epoch >= 2, "the test needs epoch 2 to improve on epoch 1"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_BEST, *common, "--exp_name", "cut"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "cut"
    assert [p.name for p in run.glob(".best.pt.*.tmp")], "the kill left no temporary file: the fault was not injected"
    assert load_checkpoint(run / "last.pt").epoch == 1
    assert train_main([*common, "--exp_name", "cut", "--checkpoint_path", str(run / "last.pt")]) == 0
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert best.epoch == whole_best.epoch == last.extra["best_epoch"]
    for key, value in whole_best.model_state.items():
        assert torch.equal(value, best.model_state[key]), key
    assert not list(run.glob(".*.tmp"))  # stale temporaries of the killed process were cleaned up


def test_best_pt_is_repaired_on_resume_when_last_pt_is_the_best(pose_files, tmp_path, capsys):
    train, _ = pose_files
    common = ["iLIDS", str(train), "--epochs", "2", "--save_dir", str(tmp_path), "--exp_name", "a", *TINY]
    assert train_main([*common, "--stop_after_epoch", "1"]) == 0
    (tmp_path / "a" / "best.pt").unlink()  # e.g. deleted by hand
    assert train_main([*common, "--checkpoint_path", str(tmp_path / "a" / "last.pt")]) == 0
    assert "repaired" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "a" / "best.pt").epoch in (1, 2)


def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_previous_file(pose_files, tmp_path, capsys,
                                                                           monkeypatch):
    import errno

    train, _ = pose_files
    common = ["iLIDS", str(train), "--epochs", "3", "--save_dir", str(tmp_path), "--exp_name", "a", *TINY]
    assert train_main([*common, "--stop_after_epoch", "1"]) == 0
    before = (tmp_path / "a" / "last.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    err = one_line_error(capsys, [*common, "--checkpoint_path", str(tmp_path / "a" / "last.pt")])
    assert "No space left on device" in err and "was left as it was" in err
    assert (tmp_path / "a" / "last.pt").read_bytes() == before
    assert not list((tmp_path / "a").glob(".*.tmp"))


@pytest.fixture
def small_tmpfs(small_disk):
    """A 2 MB tmpfs (tests/conftest.py: skipped where it cannot be mounted; fails if a file in it is left open)."""
    return small_disk("2m")


def test_a_full_disk_during_training_is_one_line(pose_files, small_tmpfs, capsys):
    """A real full disk (a 2 MB tmpfs holds args.json and one 1.3 MB checkpoint, not two): one line, exit 2
    (torch.save's own error on a full disk is a cryptic RuntimeError)."""
    train, _ = pose_files
    err = one_line_error(capsys, ["iLIDS", str(train), "--epochs", "3", "--save_dir", str(small_tmpfs), "--exp_name",
                                  "a", *TINY, "--max_steps_per_epoch", "1"])
    assert "cannot write" in err and ("left as it was" in err or "nothing was written" in err)
    assert not list((small_tmpfs / "a").glob(".*.tmp"))
