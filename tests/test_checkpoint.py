"""Checkpoints: ours load with plain torch.load(weights_only=True); the original GaitGraph format loads without
unpickling anything but argparse.Namespace and rebuilds the original's model; --weight_path reports what it
loaded and refuses a checkpoint of another network."""

import argparse
import fractions
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gafnet.errors import InputError
from gafnet.gait.checkpoint import (build_model_from_checkpoint, get_rng_state, initialise_from, load_checkpoint,
                                    save_checkpoint, set_rng_state)
from gafnet.gait.resgcn import build_model

DATA = Path(__file__).parent / "data"
MODEL_ARGS = {"network_name": "resgcn-n39-r8", "num_input_branches": 1, "num_channels": 3, "embedding_size": 128}


def reference(name="resgcn_n39_r8"):
    data = np.load(DATA / f"{name}.npz")
    state = {key[3:]: torch.from_numpy(data[key]) for key in data.files if key.startswith("sd/")}
    return state, torch.from_numpy(data["input"]), torch.from_numpy(data["output"])


def training_objects():
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, epochs=2, steps_per_epoch=3)
    model(torch.randn(2, 1, 3, 12, 17)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def write_original_checkpoint(path, state, network_name="resgcn-n39-r8", **extra_opt):
    """What the original GaitGraph train.py saves: opt is its argparse.Namespace."""
    opt = argparse.Namespace(dataset="casia-b", network_name=network_name, embedding_layer_size=128,
                             use_multi_branch=False, sequence_length=60, learning_rate=1e-2, **extra_opt)
    model, optimizer, scheduler = training_objects()
    torch.save({"opt": opt, "model": state, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": None, "epoch": 300}, path)


def test_original_checkpoint_loads_weights_only_and_reproduces_the_reference(tmp_path):
    state, x, expected = reference()
    path = tmp_path / "gaitgraph_resgcn-n39-r8_coco_seq_60.pth"
    write_original_checkpoint(path, state)
    with pytest.raises(Exception):  # plain weights_only loading refuses the Namespace: that's why we allow-list it
        torch.load(path, weights_only=True)
    ckpt = load_checkpoint(path)
    assert ckpt.format == "original" and ckpt.epoch == 300
    assert ckpt.model_args == MODEL_ARGS
    assert ckpt.run_args["learning_rate"] == 1e-2 and ckpt.optimizer_state is None  # only ours resume
    model = build_model_from_checkpoint(ckpt)
    assert not model.training
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=1e-5)


def test_original_multi_branch_checkpoint_infers_branches_and_channels(tmp_path):
    state, x, expected = reference("resgcn_n39_r8_multi")
    path = tmp_path / "multi.pth"
    write_original_checkpoint(path, state)
    ckpt = load_checkpoint(path)
    assert ckpt.model_args == {**MODEL_ARGS, "num_input_branches": 3, "num_channels": 6}
    with torch.no_grad():
        np.testing.assert_allclose(build_model_from_checkpoint(ckpt)(x).numpy(), expected.numpy(), atol=1e-5)


def test_original_checkpoint_saved_from_cuda_loads_on_the_cpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA to write a CUDA checkpoint")
    state, _, _ = reference()
    path = tmp_path / "cuda.pth"
    write_original_checkpoint(path, {k: v.cuda() for k, v in state.items()})
    ckpt = load_checkpoint(path)
    assert all(v.device.type == "cpu" for v in ckpt.model_state.values())


def test_a_bare_state_dict_loads_with_a_note(tmp_path):
    state, x, expected = reference()
    torch.save(state, tmp_path / "state.pt")
    ckpt = load_checkpoint(tmp_path / "state.pt")
    assert ckpt.format == "state_dict" and ckpt.model_args == MODEL_ARGS
    assert any("assuming resgcn-n39-r8" in note for note in ckpt.notes)


def test_ours_round_trips_with_plain_weights_only_loading(tmp_path):
    model, optimizer, scheduler = training_objects()
    path = save_checkpoint(
        tmp_path / "run" / "last.pt", model_args=MODEL_ARGS, model_state=model.state_dict(),
        run_args={"train_data_path": Path("poses/x.csv"), "batch_size": 128, "valid_data_path": None},
        epoch=5, best_metric=float("-inf"), optimizer_state=optimizer.state_dict(),
        scheduler_state=scheduler.state_dict(), scaler_state=None, rng_state=get_rng_state(),
        extra={"preprocessing": {"sequence_length": 60, "multi_branch": False}, "views": (0, 18)})
    raw = torch.load(path, weights_only=True)  # no allow-listing needed
    assert raw["format"] == "gafnet" and raw["run_args"]["train_data_path"] == "poses/x.csv"
    ckpt = load_checkpoint(path)
    assert ckpt.format == "gafnet" and ckpt.epoch == 5 and ckpt.best_metric == float("-inf")
    assert ckpt.preprocessing == {"sequence_length": 60, "multi_branch": False}
    rebuilt = build_model_from_checkpoint(ckpt)
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    fresh_model, fresh_optimizer, fresh_scheduler = training_objects()
    fresh_optimizer.load_state_dict(ckpt.optimizer_state)
    fresh_scheduler.load_state_dict(ckpt.scheduler_state)
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
    assert list(tmp_path.joinpath("run").iterdir()) == [path]  # the atomic write left no temporary file


def test_saving_something_weights_only_cannot_read_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"run_args\['fn'\]"):
        save_checkpoint(tmp_path / "x.pt", model_args=MODEL_ARGS, model_state={}, run_args={"fn": print},
                        epoch=1, best_metric=0.0)
    with pytest.raises(ValueError, match="embedding_size"):
        save_checkpoint(tmp_path / "x.pt", model_args={"network_name": "resgcn-n39-r8"}, model_state={},
                        run_args={}, epoch=1, best_metric=0.0)
    assert not (tmp_path / "x.pt").exists()


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    state = get_rng_state()
    expected = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), random.random(), random.gauss(0, 1))
    save_checkpoint(tmp_path / "r.pt", model_args=MODEL_ARGS, model_state={}, run_args={}, epoch=1,
                    best_metric=0.0, rng_state=state)
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    set_rng_state(load_checkpoint(tmp_path / "r.pt").rng_state)
    again = (torch.rand(3), np.random.rand(3), np.random.standard_normal(), random.random(), random.gauss(0, 1))
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2:] == again[2:]


@pytest.mark.parametrize("content,message", [
    (b"", "not a PyTorch checkpoint or is damaged"),
    (b"garbage that is no pickle", "not a PyTorch checkpoint or is damaged"),
])
def test_damaged_files_are_input_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_truncated_foreign_and_unsafe_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    state, _, _ = reference()
    good = tmp_path / "good.pth"
    write_original_checkpoint(good, state)
    (tmp_path / "cut.pth").write_bytes(good.read_bytes()[:4000])
    with pytest.raises(InputError, match="damaged"):
        load_checkpoint(tmp_path / "cut.pth")
    torch.save({"weights": [1, 2, 3]}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a gait checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"opt": fractions.Fraction(1, 3), "model": state}, tmp_path / "unsafe.pth")
    with pytest.raises(InputError, match="refusing to unpickle"):
        load_checkpoint(tmp_path / "unsafe.pth")


def test_initialise_from_skips_a_head_of_another_size_and_says_so(tmp_path):
    state, _, _ = reference()
    path = tmp_path / "stage1.pth"
    write_original_checkpoint(path, state)
    model = build_model(embedding_size=256)
    head_before = model.fcn.weight.clone()
    report = initialise_from(model, path)
    assert [key for key, _, _ in report.shape_mismatch] == ["fcn.weight", "fcn.bias"]
    assert report.shape_mismatch[0][1:] == ((128, 256), (256, 256))
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(state) - 2
    assert torch.equal(model.fcn.weight, head_before)  # left at its initialisation
    assert torch.equal(model.main_stream[3].tcn.conv.weight, state["main_stream.3.tcn.conv.weight"])
    assert "fcn.weight (checkpoint [128, 256], model [256, 256])" in report.summary()


def test_initialise_from_an_identical_network_loads_everything(tmp_path):
    state, x, expected = reference()
    model = build_model()
    save_checkpoint(tmp_path / "best.pt", model_args=MODEL_ARGS, model_state=state, run_args={}, epoch=1,
                    best_metric=1.0)
    report = initialise_from(model, tmp_path / "best.pt")
    assert report.skipped == [] and report.unexpected == [] and len(report.loaded) == len(state)
    with torch.no_grad():
        np.testing.assert_allclose(model.eval()(x).numpy(), expected.numpy(), atol=1e-5)


def test_initialise_from_another_structure_is_refused_with_the_list(tmp_path):
    state, _, _ = reference("resgcn_n51_r4")
    path = tmp_path / "n51.pth"
    write_original_checkpoint(path, state, network_name="resgcn-n51-r4")
    model = build_model("resgcn-n39-r8")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError) as info:
        initialise_from(model, path)
    text = str(info.value)
    assert "input_branches.0.layers.1.scn.conv_down.weight (checkpoint [16, 64, 1, 1], model [8, 64, 1, 1])" in text
    assert "main_stream.4.edge" in text.split("unexpected in the checkpoint:")[1]  # n51: 6 main-stream modules
    assert "main_stream.2.scn.residual.0.weight" in text.split("missing from the checkpoint:")[1]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing was changed
    report = initialise_from(model, path, allow_partial=True)  # explicitly asked: load what fits
    assert "input_branches.0.layers.0.tcn.conv.weight" in report.loaded and report.unexpected


def test_initialise_from_a_multi_branch_checkpoint_into_single_branch_is_refused(tmp_path):
    state, _, _ = reference("resgcn_n39_r8_multi")
    torch.save(state, tmp_path / "multi.pt")
    with pytest.raises(InputError, match="unexpected in the checkpoint: input_branches.1"):
        initialise_from(build_model(), tmp_path / "multi.pt")


def test_nothing_but_the_head_is_refused_even_when_partial_loading_is_allowed(tmp_path):
    state, _, _ = reference()
    reshaped = {k: v if k.startswith("fcn.") or v.dim() == 0 else torch.zeros([n + 1 for n in v.shape])
                for k, v in state.items()}  # every backbone tensor has another shape
    torch.save(reshaped, tmp_path / "head.pt")
    with pytest.raises(InputError, match="nothing but the head"):
        initialise_from(build_model(), tmp_path / "head.pt", allow_partial=True)


def test_a_checkpoint_whose_network_name_does_not_fit_is_an_input_error(tmp_path):
    state, _, _ = reference()
    path = tmp_path / "wrongname.pth"
    write_original_checkpoint(path, state, network_name="resgcn-n51-r4")
    with pytest.raises(InputError, match="does not fit"):
        build_model_from_checkpoint(load_checkpoint(path))


# ---------------------------------------------------------------------------------------------------------------
# Hostile checkpoints (issue 10): one InputError naming the file, never a traceback, a hang or a huge allocation.


def stored(tmp_path, name="ours.pt", **changes):
    """A checkpoint of ours, written as torch.save of the stored dict with ``changes`` applied."""
    state, _, _ = reference()
    save_checkpoint(tmp_path / name, model_args=MODEL_ARGS, model_state=state, run_args={}, epoch=1,
                    best_metric=1.0, extra={"preprocessing": {"sequence_length": 60}})
    raw = torch.load(tmp_path / name, weights_only=True)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and value.pop("__merge__", False):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    torch.save(raw, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("changes, message", [
    ({"format_version": "two"}, "format_version is 'two'"),
    ({"format_version": 0}, "format_version is 0"),
    ({"model_args": {"network_name": "resgcn-n39-r8", "num_input_branches": 1}}, "lacks num_channels, embedding_size"),
    ({"model_args": [1, 2]}, "model_args is a list"),
    ({"model_args": {**MODEL_ARGS, "num_input_branches": 100000}}, "num_input_branches must be an integer from 1 to 8"),
    ({"model_args": {**MODEL_ARGS, "embedding_size": 100000000}}, "embedding_size must be an integer from 1 to 4096"),
    ({"model_args": {**MODEL_ARGS, "embedding_size": 128.0}}, "embedding_size must be an integer"),
    ({"model_args": {**MODEL_ARGS, "network_name": 5}}, "network_name must be a text"),
    ({"model_args": {**MODEL_ARGS, "network_name": "resgcn-x1"}}, "unknown network name"),
    ({"model_state": {"fcn.weight": [1.0, 2.0]}}, "model_state is not a state_dict"),
    ({"model_state": "weights"}, "model_state is not a state_dict"),
    ({"epoch": "3"}, "epoch is '3'"),
    ({"epoch": -1}, "epoch is -1"),
    ({"best_metric": "high"}, "best_metric is 'high'"),
    ({"best_metric": float("nan")}, "best_metric is nan"),
    ({"optimizer_state": [1, 2]}, "optimizer_state is a list"),
    ({"extra": "x"}, "extra is a str"),
])
def test_a_damaged_field_of_our_format_is_one_input_error(tmp_path, changes, message):
    path = stored(tmp_path, **changes)
    with pytest.raises(InputError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_a_huge_original_state_dict_is_refused_before_anything_is_built(tmp_path):
    """Inferred model arguments are bounded too: a state_dict claiming 100,000 input branches or a 10⁸-d
    head would hang or allocate ~100 GB in build_model."""
    state, _, _ = reference()
    wide = {**state, "fcn.weight": torch.zeros(100_000_000, 0), "fcn.bias": torch.zeros(1)}
    torch.save(wide, tmp_path / "wide.pt")
    with pytest.raises(InputError, match="embedding_size must be an integer from 1 to 4096, got 100000000"):
        load_checkpoint(tmp_path / "wide.pt")
    many = {**state, **{f"input_branches.{i}.bn.weight": torch.ones(3) for i in range(1, 100)}}
    torch.save(many, tmp_path / "many.pt")
    with pytest.raises(InputError, match="num_input_branches must be an integer from 1 to 8, got 100"):
        load_checkpoint(tmp_path / "many.pt")


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    """Opening a FIFO for reading blocks until a writer comes: the loader must not open it at all."""
    import os
    import threading

    os.mkfifo(tmp_path / "f.pt")
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_error_of(load_checkpoint, tmp_path / "f.pt")), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # unblock the reader so that the suite can go on, then fail
        with open(tmp_path / "f.pt", "wb"):
            pass
        pytest.fail("load_checkpoint blocked on a FIFO")
    assert "not a regular file" in outcome[0]


def _error_of(fn, *args):
    try:
        fn(*args)
    except InputError as exc:
        return str(exc)
    return "no error"


def test_non_tensor_weights_in_a_state_dict_are_not_a_checkpoint(tmp_path):
    state, _, _ = reference()
    torch.save({"opt": argparse.Namespace(network_name="resgcn-n39-r8"), "model": {k: v.tolist() for k, v in
                                                                                 list(state.items())[:3]}},
               tmp_path / "lists.pth")
    with pytest.raises(InputError, match="not a gait checkpoint"):
        load_checkpoint(tmp_path / "lists.pth")
    with pytest.raises(InputError, match="not a gait checkpoint"):
        initialise_from(build_model(), tmp_path / "lists.pth")


def test_the_sha256_of_the_bytes_read_is_recorded(tmp_path):
    import hashlib

    path = stored(tmp_path)
    assert load_checkpoint(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("api", ["add_safe_globals only (torch 2.4)", "neither (torch < 2.4)"])
def test_older_torch_without_safe_globals(tmp_path, monkeypatch, api):
    """torch < 2.5 has no torch.serialization.safe_globals; 2.4 has add_safe_globals, older ones nothing."""
    state, x, expected = reference()
    write_original_checkpoint(tmp_path / "orig.pth", state)
    ours = stored(tmp_path)
    saved_globals = torch.serialization.get_safe_globals()
    clear, add = torch.serialization.clear_safe_globals, torch.serialization.add_safe_globals
    monkeypatch.delattr(torch.serialization, "safe_globals")
    if api.startswith("neither"):
        monkeypatch.delattr(torch.serialization, "add_safe_globals")
    try:
        assert load_checkpoint(ours).format == "gafnet"  # ours is plain: any weights_only torch reads it
        if api.startswith("neither"):
            with pytest.raises(InputError, match="torch >= 2.4"):
                load_checkpoint(tmp_path / "orig.pth")
        else:
            model = build_model_from_checkpoint(load_checkpoint(tmp_path / "orig.pth"))
            with torch.no_grad():
                np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=1e-5)
    finally:
        clear()  # add_safe_globals is process-wide: undo it
        add(saved_globals)
