"""SupConLoss equals the original's values (tests/data/supcon.npz) and a per-anchor loop written from the paper."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gafnet.gait.supcon import SupConLoss

DATA = Path(__file__).parent / "data"


def reference_cases():
    data = np.load(DATA / "supcon.npz")
    count = len({key.split("/")[0] for key in data.files})
    for k in range(count):
        labels = data[f"case{k}/labels"]
        yield (f"case{k}", torch.from_numpy(data[f"case{k}/features"]),
               torch.from_numpy(labels) if labels.size else None, float(data[f"case{k}/temperature"]),
               str(data[f"case{k}/mode"]), float(data[f"case{k}/loss"]))


def naive_supcon(features, labels, temperature, mode, base_temperature=0.07):
    """Khosla et al. Eq. 2, one anchor at a time, in float64 Python arithmetic."""
    B, V, _ = features.shape
    f = features.double()
    views = [(i, v) for v in range(V) for i in range(B)]
    anchors = views if mode == "all" else [(i, 0) for i in range(B)]
    total = 0.0
    for i, v in anchors:
        others = [(j, w) for j, w in views if (j, w) != (i, v)]
        sims = {o: float(f[i, v] @ f[o[0], o[1]]) / temperature for o in others}
        top = max(sims.values())
        log_den = top + math.log(sum(math.exp(s - top) for s in sims.values()))
        if labels is None:
            positives = [o for o in others if o[0] == i]
        else:
            positives = [o for o in others if labels[o[0]] == labels[i]]
        total += sum(sims[o] - log_den for o in positives) / len(positives)
    return -(temperature / base_temperature) * total / len(anchors)


@pytest.mark.parametrize("case", list(reference_cases()), ids=lambda c: c[0])
def test_equals_the_original_on_every_reference_case(case):
    _, features, labels, temperature, mode, expected = case
    loss = SupConLoss(temperature=temperature, contrast_mode=mode)(features, labels)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("case", list(reference_cases()), ids=lambda c: c[0])
def test_equals_a_per_anchor_loop(case):
    _, features, labels, temperature, mode, _ = case
    loss = SupConLoss(temperature=temperature, contrast_mode=mode)(features.double(), labels)
    assert loss.item() == pytest.approx(naive_supcon(features, labels, temperature, mode), rel=1e-9)


@pytest.mark.parametrize("views,mode,temperature", [(2, "all", 0.01), (3, "one", 0.3), (4, "all", 1.0)])
def test_random_batches_equal_the_loop(views, mode, temperature):
    torch.manual_seed(views)
    features = torch.nn.functional.normalize(torch.randn(7, views, 16, dtype=torch.float64), dim=2)
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 3])
    loss = SupConLoss(temperature=temperature, contrast_mode=mode)(features, labels)
    assert loss.item() == pytest.approx(naive_supcon(features, labels, temperature, mode), rel=1e-9)


def test_a_mask_is_the_same_as_labels():
    torch.manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(6, 2, 8), dim=2)
    labels = torch.tensor([0, 1, 1, 0, 2, 2])
    mask = (labels[:, None] == labels[None, :]).float()
    criterion = SupConLoss(0.1)
    assert criterion(features, mask=mask).item() == pytest.approx(criterion(features, labels).item(), rel=1e-6)


def test_finite_for_tiny_temperature_and_huge_logits():
    """τ = 0.01 on unnormalised features gives logits of ~1e6: the original's denominator underflows to 0."""
    torch.manual_seed(0)
    features = torch.randn(8, 2, 128) * 100
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])
    features.requires_grad_()
    loss = SupConLoss(temperature=0.01)(features, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(features.grad).all()
    assert loss.item() == pytest.approx(naive_supcon(features.detach(), labels, 0.01, "all"), rel=1e-4)
    normalised = torch.nn.functional.normalize(torch.randn(64, 2, 128), dim=2)
    assert torch.isfinite(SupConLoss(temperature=0.01)(normalised, torch.arange(64) % 5))


def test_an_anchor_without_positives_is_an_error():
    features = torch.nn.functional.normalize(torch.randn(4, 1, 8), dim=2)
    with pytest.raises(ValueError, match="no positive"):
        SupConLoss()(features, torch.tensor([0, 0, 1, 2]))


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="contrast_mode"):
        SupConLoss(contrast_mode="some")
    with pytest.raises(ValueError, match="labels for a batch"):
        SupConLoss()(torch.randn(4, 2, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="batch, views, dim"):
        SupConLoss()(torch.randn(4, 8))
