"""Distributed training (issue 14): `torchrun --nproc_per_node 2 train.py … --device cpu` (gloo) trains exactly as one
process with the same global batch, resumes with any number of processes, and reports bad input once.

Compared in float64 (``--float64``): in float32, Adam turns the summation-order noise of gradients that are
mathematically zero (the biases in front of a BatchNorm) into differences of the order of the learning rate, so
weight-by-weight equality is only meaningful in double precision (benchmarks/bench_distributed.py checks what
the float32 models compute). The data has 13 training sequences and a global batch of 4, so the last batch of
every epoch has one sample: the second process's share is empty.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gafnet.errors import InputError
from gafnet.gait import synthetic_poses
from gafnet.gait.checkpoint import load_checkpoint
from gafnet.gait.distributed import Dist, choose_backend
from gafnet.gait.train_cli import build_parser, check_distribution
from gafnet.gait.train_cli import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "gaitgraph" / "src" / "train.py"
OPTIONS = ["--epochs", "2", "--batch_size", "4", "--sequence_length", "8", "--embedding_layer_size", "16",
           "--learning_rate", "1e-3", "--temp", "0.07", "--seed", "3", "--quiet", "--device", "cpu", "--float64",
           "--log_interval", "1"]
STEP = re.compile(r"^epoch (\d+) step (\d+)/\d+: loss (\S+), lr (\S+)$", re.M)
EPOCH = re.compile(r"^epoch (\d+)/\d+: .*?; validation: (.*?)(  \(best\))?$", re.M)

# The worker script of the kill test: rank 0 is killed (SIGKILL) right after epoch 1's checkpoints are written.
KILL_AFTER_EPOCH_1 = """
import os, signal, sys
sys.path.insert(0, {root!r})
import gafnet.gait.train_cli as cli
real_save_epoch = cli.save_epoch
def save_epoch(run_dir, checkpoint, improved):
    real_save_epoch(run_dir, checkpoint, improved)
    if checkpoint.epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)
cli.save_epoch = save_epoch
sys.argv = ["train.py"] + sys.argv[1:]
sys.exit(cli.main())
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    synthetic_poses.write_ilids_pose_splits(out, num_ids=14, num_splits=1, seed=5)
    lines = (out / "train_split0.csv").read_text().splitlines(keepends=True)
    (out / "train13.csv").write_text("".join(l for l in lines if not l.startswith("cam2_person013_")))
    return out


def common(data, save_dir, name):
    return ["iLIDS", str(data / "train13.csv"), "--valid_data_path", str(data / "test_split0.csv"), *OPTIONS,
            "--save_dir", str(save_dir), "--exp_name", name]


def torchrun(*args, nproc=2, script=str(TRAIN), timeout=240, extra=()):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # as the suite's one thread (conftest): the same arithmetic
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), *extra, script, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted runs: one process (in this process) and two processes (torchrun, gloo)."""
    out = tmp_path_factory.mktemp("runs")
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert train_main(common(data, out, "one")) == 0
    two = torchrun(*common(data, out, "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert "Warning" not in two.stderr, two.stderr[-3000:]  # e.g. torch's FutureWarning for all_gather, per process
    return out, buffer.getvalue(), two.stdout


def assert_same_state(a, b, atol=1e-9):
    assert a.epoch == b.epoch and a.best_metric == pytest.approx(b.best_metric, abs=1e-9)
    assert a.model_state.keys() == b.model_state.keys()
    for key, value in a.model_state.items():  # weights, BatchNorm running statistics and counters
        np.testing.assert_allclose(value.double().numpy(), b.model_state[key].double().numpy(), rtol=0, atol=atol,
                                   err_msg=key)
    for index, entry in a.optimizer_state["state"].items():  # Adam's moments
        other = b.optimizer_state["state"][index]
        for name in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(entry[name].numpy(), other[name].numpy(), rtol=0, atol=atol)
    assert a.scheduler_state["last_epoch"] == b.scheduler_state["last_epoch"]


def test_two_processes_train_exactly_as_one(reference):
    out, one_log, two_log = reference
    one_steps, two_steps = STEP.findall(one_log), STEP.findall(two_log)
    assert len(one_steps) == 8 and [s[:2] for s in one_steps] == [s[:2] for s in two_steps]
    for (_, _, loss1, lr1), (_, _, loss2, lr2) in zip(one_steps, two_steps):  # every step's loss and lr
        assert float(loss2) == pytest.approx(float(loss1), rel=1e-7, abs=1e-9) and lr1 == lr2
    assert EPOCH.findall(one_log) == EPOCH.findall(two_log) and len(EPOCH.findall(one_log)) == 2  # validation
    assert "2 processes (gloo, global batch 4 = 2 × 2, global BatchNorm statistics)" in two_log
    assert_same_state(load_checkpoint(out / "one" / "last.pt"), load_checkpoint(out / "two" / "last.pt"))
    assert load_checkpoint(out / "one" / "best.pt").epoch == load_checkpoint(out / "two" / "best.pt").epoch
    # only rank 0 wrote: one args.json, no stray files
    assert sorted(p.name for p in (out / "two").iterdir() if p.name != "tensorboard") == ["args.json", "best.pt",
                                                                                         "last.pt"]


def test_a_killed_run_resumes_with_another_number_of_processes(data, reference, tmp_path):
    """2 processes killed (SIGKILL) after epoch 1 → resumed with 1 process; 1 process stopped after epoch 1 →
    resumed with 2: both end with the weights of the uninterrupted run."""
    out, _, _ = reference
    whole = load_checkpoint(out / "one" / "last.pt")
    worker = tmp_path / "kill_after_epoch_1.py"
    worker.write_text(KILL_AFTER_EPOCH_1.format(root=str(ROOT)))
    killed = torchrun(*common(data, tmp_path, "killed"), script=str(worker))
    assert killed.returncode != 0 and "-9" in re.findall(r"exitcode\s*:\s*(-?\d+) \(pid", killed.stderr), killed.stderr
    assert load_checkpoint(tmp_path / "killed" / "last.pt").epoch == 1
    assert train_main([*common(data, tmp_path, "killed"), "--checkpoint_path",
                       str(tmp_path / "killed" / "last.pt")]) == 0
    assert_same_state(whole, load_checkpoint(tmp_path / "killed" / "last.pt"))

    assert train_main([*common(data, tmp_path, "stopped"), "--stop_after_epoch", "1"]) == 0
    resumed = torchrun(*common(data, tmp_path, "stopped"), "--checkpoint_path", str(tmp_path / "stopped" / "last.pt"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout and "epoch 2/2" in resumed.stdout
    assert_same_state(whole, load_checkpoint(tmp_path / "stopped" / "last.pt"))


def test_bad_input_is_one_line_on_rank_0_and_every_process_exits_2(data, tmp_path):
    args = common(data, tmp_path, "bad")
    args[args.index("--batch_size") + 1] = "5"
    logs = tmp_path / "logs"
    r = torchrun(*args, extra=["--log-dir", str(logs), "--redirects", "3"], timeout=120)
    assert r.returncode != 0
    stderr = {int(p.parent.name): p.read_text() for p in logs.rglob("stderr.log")}
    assert sorted(stderr) == [0, 1]
    assert stderr[0].strip().splitlines() == ["train.py: error: --batch_size 5 (the global batch) does not split evenly "
                                              "among 2 processes; use a multiple of 2, e.g. 4 or 6"]
    assert stderr[1] == ""
    codes = dict(re.findall(r"rank\s*:\s*(\d+) \(local_rank.*\n\s*exitcode\s*:\s*(-?\d+) \(pid", r.stderr))
    # torchrun's summary: both exit with 2 once rank 0 has printed its line, or one of them is stopped by torchrun
    # (SIGTERM) because the other was quicker
    assert sorted(codes) == ["0", "1"] and set(codes.values()) <= {"2", "-15"} and "2" in codes.values(), r.stderr
    assert not (tmp_path / "bad").exists()


HANG_ON_RANK_1 = """
import sys, time
sys.path.insert(0, {root!r})
import gafnet.gait.train_cli as cli
real_set_up = cli.set_up
def set_up(args, dist):
    if dist.rank == 1:
        time.sleep(300)  # a process that hangs (a stuck file system, a deadlock...)
    return real_set_up(args, dist)
cli.set_up = set_up
sys.argv = ["train.py"] + sys.argv[1:]
sys.exit(cli.main())
"""


def test_a_hanging_process_cannot_keep_the_others_waiting(data, tmp_path):
    """Rank 1 hangs; rank 0 gives up after --dist_timeout (here 0.1 min) with one line, torchrun stops rank 1."""
    import time

    worker = tmp_path / "hang.py"
    worker.write_text(HANG_ON_RANK_1.format(root=str(ROOT)))
    logs = tmp_path / "logs"
    started = time.perf_counter()
    r = torchrun(*common(data, tmp_path, "hang"), "--dist_timeout", "0.1", script=str(worker),
                 extra=["--log-dir", str(logs), "--redirects", "3"], timeout=200)
    assert r.returncode != 0 and time.perf_counter() - started < 150
    rank0 = next(p for p in logs.rglob("stderr.log") if p.parent.name == "0").read_text().strip().splitlines()
    assert len(rank0) == 1 and rank0[0].startswith("train.py: error: process 0 of 2: another process did not answer "
                                                   "within --dist_timeout 0.1 min"), rank0


# ---------------------------------------------------------------------------------------------------------------
# Without torchrun


def test_the_batch_must_split_evenly_and_no_sync_bn_needs_a_sample_per_process():
    two = Dist(rank=0, world_size=2)
    args = build_parser().parse_args(["iLIDS", "x.csv", "--batch_size", "6"])
    check_distribution(args, two, 13)  # 13 = 2 × 6 + 1: one sample in the last batch is fine with global BN
    args.no_sync_bn = True
    with pytest.raises(InputError, match="last batch has 1 sample"):
        check_distribution(args, two, 13)
    check_distribution(args, two, 14)
    args.batch_size = 7
    with pytest.raises(InputError, match="--batch_size 7 .* use a multiple of 2, e.g. 6 or 8"):
        check_distribution(args, two, 14)
    check_distribution(args, Dist(), 14)  # one process: anything goes


def test_shares_are_contiguous_and_cover_the_batch():
    batch = np.arange(10, 17)
    shares = [Dist(rank=r, world_size=3).local_share(batch) for r in range(3)]
    assert [s.tolist() for s in shares] == [[10, 11, 12], [13, 14], [15, 16]]
    assert Dist(world_size=3).share_sizes(1) == [1, 0, 0]
    x = torch.randn(4, 2, requires_grad=True)
    assert Dist().gather_batch(x, [4]) is x  # one process: no copy, no collective


def test_backend_choice():
    assert choose_backend("auto", torch.device("cpu")) == "gloo"
    with pytest.raises(InputError, match="nccl needs --device cuda"):
        choose_backend("nccl", torch.device("cpu"))


def test_without_torchrun_nothing_is_distributed(monkeypatch):
    from gafnet.gait.distributed import start

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist = start("cpu")
    assert not dist.enabled and dist.is_main and dist.device.type == "cpu"


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs (nccl)")
def test_two_gpus_with_amp_train_as_one(data, tmp_path):  # pragma: no cover - no GPU in CI
    args = [a for a in common(data, tmp_path, "gpu") if a != "--float64"]
    args[args.index("--device") + 1] = "cuda"
    two = torchrun(*args, "--use_amp")
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, str(TRAIN), *common(data, tmp_path, "gpu1"), "--use_amp"],
                         capture_output=True, text=True)
    assert one.returncode == 0
    for (_, _, a, _), (_, _, b, _) in zip(STEP.findall(one.stdout), STEP.findall(two.stdout)):
        assert float(a) == pytest.approx(float(b), rel=1e-2)
