"""ResGCN: the original's state_dicts load unchanged and give the original's outputs (tests/data, written by the
original code), and training mode computes the same function, gradients and running statistics as a plain
implementation of the original ResGCN (gafnet/gait/reference_resgcn.py)."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from gafnet.errors import InputError
from gafnet.gait.reference_resgcn import build_original_style
from gafnet.gait.resgcn import (STRUCTURES, UnknownNetworkError, build_model, count_parameters, graph_conv,
                                parse_network_name, valid_network_names)

DATA = Path(__file__).parent / "data"
REFERENCES = [  # file, network, I, C
    ("resgcn_n39_r8", "resgcn-n39-r8", 1, 3),
    ("resgcn_n39_r8_multi", "resgcn-n39-r8", 3, 6),
    ("resgcn_n51_r4", "resgcn-n51-r4", 1, 3),
]


def reference(name):
    data = np.load(DATA / f"{name}.npz")
    state = {key[3:]: torch.from_numpy(data[key]) for key in data.files if key.startswith("sd/")}
    return state, torch.from_numpy(data["input"]), torch.from_numpy(data["output"])


def key_listing(name):
    rows = []
    for line in (DATA / f"{name}_keys.txt").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        rows.append((key, [int(s) for s in shape.strip("[]").split(",") if s.strip()], dtype))
    return rows


@pytest.mark.parametrize("name,network,branches,channels", REFERENCES)
def test_state_dict_keys_shapes_and_dtypes_equal_the_original(name, network, branches, channels):
    model = build_model(network, branches, channels, 128)
    ours = [(key, list(value.shape), str(value.dtype).replace("torch.", "")) for key, value in model.state_dict().items()]
    assert ours == key_listing(name)


@pytest.mark.parametrize("name,network,branches,channels", REFERENCES)
def test_original_weights_reproduce_the_original_output(name, network, branches, channels):
    state, x, expected = reference(name)
    model = build_model(network, branches, channels, 128)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=1e-5, rtol=0)
    with torch.inference_mode():
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=1e-5, rtol=0)


def test_a_batch_of_one_works_and_gives_the_same_row():
    """The original's bare squeeze() turned (1, 256, 1, 1) into (256,) and fcn/normalize failed."""
    state, x, expected = reference("resgcn_n39_r8")
    model = build_model()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        out = model(x[2:3])
    assert out.shape == (1, 128)
    np.testing.assert_allclose(out.numpy(), expected[2:3].numpy(), atol=1e-5, rtol=0)
    model.train()
    assert model(x[:1]).shape == (1, 128)  # training mode too (BatchNorm over T·V positions)


@pytest.mark.parametrize("embedding,branches,channels,expected", [
    (128, 1, 3, 319_530), (256, 1, 3, 352_426), (128, 3, 6, 426_416)])
def test_parameter_counts_of_the_paper(embedding, branches, channels, expected):
    assert count_parameters(build_model("resgcn-n39-r8", branches, channels, embedding)) == expected


@pytest.mark.parametrize("network,branches", [("resgcn-n39-r8", 1), ("resgcn-n39-r8", 3), ("resgcn-n51-r4", 1),
                                              ("resgcn-b19", 1), ("resgcn-b15-r2", 2), ("resgcn-n57-r1", 1)])
def test_training_mode_equals_the_plain_implementation_in_float64(network, branches):
    """Outputs, every parameter's gradient and the updated running statistics, for Basic and Bottleneck blocks,
    wide and narrow graph convolutions, and both BatchNorm routes (folded from input moments, and plain)."""
    torch.manual_seed(0)
    ours = build_model(network, branches, 3, 32).double()
    with torch.no_grad():
        for p in ours.parameters():  # every parameter matters (bn_up weights start at 0)
            p.add_(torch.randn_like(p) * 0.2)
    plain = build_original_style(network, branches, 3, 32).double()
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(3, branches, 3, 16, 17, dtype=torch.float64) * 2 + 1
    out_ours, out_plain = ours(x), plain(x)
    np.testing.assert_allclose(out_ours.detach().numpy(), out_plain.detach().numpy(), atol=1e-12)
    weights = torch.randn_like(out_ours)
    (out_ours * weights).sum().backward()
    (out_plain * weights).sum().backward()
    grads_plain = dict(plain.named_parameters())
    for key, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads_plain[key].grad.numpy(), atol=1e-11, err_msg=key)
    state_plain = plain.state_dict()
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value.numpy(), state_plain[key].numpy(), atol=1e-12, err_msg=key)


def test_training_mode_equals_the_plain_implementation_in_float32():
    torch.manual_seed(1)
    ours = build_model()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    plain = build_original_style()
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(8, 1, 3, 60, 17) * 20 + 100  # pixel-like coordinates: large means, as in the pose files
    np.testing.assert_allclose(ours(x).detach().numpy(), plain(x).detach().numpy(), atol=1e-4)


def test_eval_mode_with_gradients_equals_the_plain_implementation():
    """Folded BatchNorms are differentiable: gradients w.r.t. the input in eval mode agree."""
    state, x, _ = reference("resgcn_n39_r8")
    ours, plain = build_model().double(), build_original_style().double()
    ours.load_state_dict(state), plain.load_state_dict(state)
    ours.eval(), plain.eval()
    xa, xb = x.double().requires_grad_(), x.double().requires_grad_()
    ours(xa)[:, :5].sum().backward()
    plain(xb)[:, :5].sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xb.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("cin,cout", [(3, 64), (8, 8), (64, 64)])
def test_graph_conv_equals_the_einsum_of_the_original(cin, cout):
    """Both routes (graph product first for a widening layer, last otherwise) against einsum 'nkctv,kvw->nctw'."""
    torch.manual_seed(2)
    A = torch.rand(3, 17, 17, dtype=torch.float64)
    x = torch.randn(2, cin, 5, 17, dtype=torch.float64)
    weight = torch.randn(3 * cout, cin, 1, 1, dtype=torch.float64)
    bias = torch.randn(3 * cout, dtype=torch.float64)
    y = torch.nn.functional.conv2d(x, weight, bias).view(2, 3, cout, 5, 17)
    expected = torch.einsum("nkctv,kvw->nctw", y, A)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(graph_conv(x_cl, weight, bias, A).numpy(), expected.numpy(), atol=1e-10)


def test_initialisation_follows_the_original():
    torch.manual_seed(3)
    model = build_model()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            assert torch.all(module.bias == 0), name
        if isinstance(module, torch.nn.BatchNorm2d):
            expected_weight = 0.0 if name.endswith("bn_up") else 1.0
            assert torch.all(module.weight == expected_weight) and torch.all(module.bias == 0), name
    assert torch.all(model.fcn.bias == 0) and model.fcn.weight.std().item() == pytest.approx(0.001, rel=0.1)
    conv = model.main_stream[2].scn.residual[0]  # 128 → 256, fan_out = 256: std sqrt(2 / 256)
    assert conv.weight.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.1)
    assert all(torch.all(m.edge == 1) for m in model.modules() if hasattr(m, "edge"))


def test_every_structure_and_reduction_builds_and_runs():
    for structure in STRUCTURES:
        model = build_model(f"resgcn-{structure}-r8", 1, 3, 16).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 1, 3, 8, 17))
        assert out.shape == (2, 16)
        np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, rtol=1e-5)
    assert len(valid_network_names()) == 32
    assert parse_network_name("resgcn-n39").reduction == 1
    assert parse_network_name("resgcn-b29-r4").structure == (1, 3, 6, 4)


@pytest.mark.parametrize("name", ["resgcn-n40-r8", "resgcn-n39-r3", "gcn", "pa-resgcn-n39-r8", ""])
def test_unknown_network_names_list_the_valid_ones(name):
    with pytest.raises(UnknownNetworkError) as info:
        build_model(name)
    assert isinstance(info.value, ValueError) and isinstance(info.value, InputError)
    assert "resgcn-n39-r8" in str(info.value) and "resgcn-b15-r1" in str(info.value)
    if name.startswith("pa-"):
        assert "attention" in str(info.value)


def test_wrong_input_shape_is_explained():
    with pytest.raises(ValueError, match=r"\(N, I=1, C, T, V\)"):
        build_model()(torch.randn(2, 3, 60, 17))


def test_state_dict_round_trip_between_train_and_eval_keeps_the_function():
    """Switching modes does not change parameters (folding happens per call, nothing is cached)."""
    state, x, expected = reference("resgcn_n39_r8")
    model = build_model()
    model.load_state_dict(state)
    before = copy.deepcopy(model.state_dict())
    model.eval()
    with torch.no_grad():
        model(x)
    model.train(), model.eval()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_and_agrees_with_the_cpu():
    state, x, expected = reference("resgcn_n39_r8")
    model = build_model()
    model.load_state_dict(state)
    model = model.cuda().eval()
    with torch.no_grad():
        out = model(x.cuda()).cpu()
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-4)


def test_cumulative_running_averages_match_too():
    """BatchNorm with momentum=None (cumulative average): the folded BatchNorms update it like nn.BatchNorm2d."""
    torch.manual_seed(4)
    ours = build_model("resgcn-n39-r8", 1, 3, 16).double()
    plain = build_original_style("resgcn-n39-r8", 1, 3, 16).double()
    plain.load_state_dict(ours.state_dict())
    for model in (ours, plain):
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
    with torch.no_grad():
        for _ in range(2):
            x = torch.randn(2, 1, 3, 12, 17, dtype=torch.float64)
            ours(x), plain(x)
    state_plain = plain.state_dict()
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value.numpy(), state_plain[key].numpy(), atol=1e-12, err_msg=key)


@pytest.mark.parametrize("args, message", [
    (("resgcn-n39-r8", 100_000, 3, 128), "num_input_branches must be an integer from 1 to 8"),
    (("resgcn-n39-r8", 1, 3, 100_000_000), "embedding_size must be an integer from 1 to 4096"),
    (("resgcn-n39-r8", 1, 0, 128), "num_channels must be an integer from 1 to 64"),
    (("resgcn-n39-r8", 1, 3, 128.0), "embedding_size must be an integer"),
    (("resgcn-n39-r8", True, 3, 128), "num_input_branches must be an integer"),
])
def test_model_arguments_out_of_bounds_are_refused_before_building(args, message):
    """100,000 branches hang and a 10⁸-d head allocates ~100 GB: refused with one InputError instead."""
    with pytest.raises(InputError, match=message):
        build_model(*args)
