"""Augmentations: equal to the original (reference arrays, hand-computed cases), corrected variants, seeding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gafnet.gait import augment as A

DATA = Path(__file__).parent / "data"
CONNECT = [5, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14]


def poses(frames=70, seed=0):
    rng = np.random.default_rng(seed)
    out = rng.uniform(0, 100, (frames, 17, 3)).astype(np.float32)
    out[:, :, 2] = rng.uniform(0, 1, (frames, 17))
    return out


class AlwaysDraw:
    """A stand-in generator whose random() is fixed, to drive the probability tests."""

    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


def test_connect_joint_is_the_coco_list():
    assert list(A.CONNECT_JOINT) == CONNECT


# --------------------------------------------------------------------------------------------------
# MultiInput against the original's output

def test_multi_branch_equals_the_original_reference():
    ref = np.load(DATA / "multi_input.npz")
    out = A.MultiInput(enabled=True)(ref["pose"])
    assert out.shape == (3, 6, 60, 17)
    np.testing.assert_allclose(out, ref["multi"], rtol=0, atol=1e-6)


def test_single_branch_equals_the_original_reference():
    ref = np.load(DATA / "multi_input.npz")
    out = A.MultiInput(enabled=False)(ref["pose"])
    assert out.shape == (1, 3, 60, 17)
    np.testing.assert_array_equal(out, ref["single"])


def test_multi_branch_by_loops():
    """Every channel written out with plain loops over joints and frames."""
    x = poses(12)
    C, T, V = 3, 12, 17
    d = x.transpose(2, 0, 1)
    out = A.MultiInput(enabled=True)(x)
    for v in range(V):
        np.testing.assert_allclose(out[0, C:, :, v], d[:, :, v] - d[:, :, 1], atol=1e-5)
        np.testing.assert_allclose(out[2, :C, :, v], d[:, :, v] - d[:, :, CONNECT[v]], atol=1e-5)
    for t in range(T - 2):
        np.testing.assert_allclose(out[1, :C, t], d[:, t + 1] - d[:, t], atol=1e-5)
        np.testing.assert_allclose(out[1, C:, t], d[:, t + 2] - d[:, t], atol=1e-5)
    assert not out[1, :, T - 2:].any()
    bone = out[2, :C]
    length = np.sqrt(bone[0] ** 2 + bone[1] ** 2) + 1e-4
    np.testing.assert_allclose(out[2, C], np.arccos(bone[1] / length))  # the original: only the y angle
    assert not out[2, C + 1:].any()
    corrected = A.MultiInput(enabled=True, all_angles=True)(x)
    np.testing.assert_allclose(corrected[2, C], np.arccos(bone[0] / length))
    np.testing.assert_allclose(corrected[2, C + 1], np.arccos(bone[1] / length))
    assert not corrected[2, C + 2].any()
    np.testing.assert_array_equal(corrected[:2], out[:2])


# --------------------------------------------------------------------------------------------------
# the other transforms

def test_mirror_by_hand():
    x = np.zeros((1, 17, 3), np.float32)
    x[0, :, 0] = np.arange(17)  # mean x = 8
    x[0, :, 1] = 5
    out = A.MirrorPoses(1.0)(x, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out[0, :, 0], 16 - np.arange(17))
    np.testing.assert_array_equal(out[0, :, 1:], x[0, :, 1:])
    assert x[0, 0, 0] == 0  # input untouched


def test_mirror_probability_uses_less_or_equal_like_the_original():
    x = poses(3)
    assert not np.array_equal(A.MirrorPoses(0.5)(x, rng=AlwaysDraw(0.5)), x)
    np.testing.assert_array_equal(A.MirrorPoses(0.5)(x, rng=AlwaysDraw(0.51)), x)


def test_corrected_mirror_swaps_left_and_right():
    x = poses(4)
    plain = A.MirrorPoses(1.0)(x, rng=np.random.default_rng(0))
    swapped = A.MirrorPoses(1.0, swap_joints=True)(x, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(swapped[:, 1], plain[:, 2])  # left eye ← mirrored right eye
    np.testing.assert_array_equal(swapped[:, 15], plain[:, 16])
    np.testing.assert_array_equal(swapped[:, 0], plain[:, 0])
    twice = A.MirrorPoses(1.0, swap_joints=True)(swapped, rng=np.random.default_rng(0))
    np.testing.assert_allclose(twice, x, atol=1e-4)
    assert sorted(A.COCO_FLIP_INDEX) == list(range(17))
    assert all(A.COCO_FLIP_INDEX[A.COCO_FLIP_INDEX[j]] == j for j in range(17))


def test_flip_sequence():
    x = poses(5)
    np.testing.assert_array_equal(A.FlipSequence(1.0)(x, rng=np.random.default_rng(0)), x[::-1])
    np.testing.assert_array_equal(A.FlipSequence(0.0)(x, rng=np.random.default_rng(0)), x)


def test_random_select_start_is_uniform_in_0_to_T_minus_L_exclusive():
    x = np.arange(65, dtype=np.float32)[:, None, None] * np.ones((1, 17, 3), np.float32)
    rng = np.random.default_rng(0)
    starts = {int(A.RandomSelectSequence(60)(x, rng=rng)[0, 0, 0]) for _ in range(400)}
    assert starts == {0, 1, 2, 3, 4}  # never 5 = T − L, as the original's randint(0, T − L)
    with pytest.raises(ValueError, match="needs more than 60 frames"):
        A.RandomSelectSequence(60)(x[:60], rng=rng)


@pytest.mark.parametrize("frames,start", [(60, 0), (61, 0), (62, 1), (75, 7), (100, 20)])
def test_select_center(frames, start):
    x = np.arange(frames, dtype=np.float32)[:, None, None] * np.ones((1, 17, 3), np.float32)
    out = A.SelectSequenceCenter(60)(x)
    assert out.shape == (60, 17, 3) and out[0, 0, 0] == start


def test_select_center_refuses_short_sequences():
    with pytest.raises(ValueError):
        A.SelectSequenceCenter(60)(poses(59))


def test_shuffle_permutes_frames_only_when_enabled():
    x = poses(30)
    np.testing.assert_array_equal(A.ShuffleSequence()(x), x)
    out = A.ShuffleSequence(True)(x, rng=np.random.default_rng(1))
    assert not np.array_equal(out, x)
    np.testing.assert_array_equal(np.sort(out[:, 0, 0]), np.sort(x[:, 0, 0]))


def test_point_noise_touches_every_channel_with_its_std():
    x = np.zeros((2000, 17, 3), np.float32)
    noise = A.PointNoise(0.05)(x, rng=np.random.default_rng(0))
    assert noise.dtype == np.float32
    np.testing.assert_allclose(noise.reshape(-1, 3).std(axis=0), 0.05, rtol=0.02)


def test_joint_noise_ignores_its_std_like_the_original():
    x = np.zeros((10, 17, 3), np.float32)
    rng = np.random.default_rng(0)
    draws = np.stack([A.JointNoise(std=0.1)(x, rng=rng) for _ in range(300)])  # (300, T, V, C)
    np.testing.assert_array_equal(draws[:, 0], draws[:, 9])  # one offset per joint, same in every frame
    assert not draws[..., 2].any()  # confidence untouched
    assert abs(draws[:, 0, :, :2].std() - 0.25) < 0.01
    honoured = np.stack([A.JointNoise(std=0.1, honour_std=True)(x, rng=rng) for _ in range(300)])
    assert abs(honoured[:, 0, :, :2].std() - 0.1) < 0.005


def test_to_tensor():
    out = A.ToTensor()(np.ones((1, 3, 4, 17), np.float64))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (1, 3, 4, 17)


# --------------------------------------------------------------------------------------------------
# pipelines

def test_train_transform_has_the_original_order_and_defaults():
    names = [type(t).__name__ for t in A.train_transform(60).transforms]
    assert names == ["MirrorPoses", "FlipSequence", "RandomSelectSequence", "ShuffleSequence", "PointNoise",
                     "JointNoise", "MultiInput", "ToTensor"]
    t = A.train_transform(60).transforms
    assert t[0].probability == 0.5 and not t[0].swap_joints
    assert t[1].probability == 0.5 and t[2].sequence_length == 60 and not t[3].enabled
    assert t[4].std == 0.05 and t[5].effective_std == 0.25 and not t[6].enabled and not t[6].all_angles
    corrected = A.train_transform(60, corrected=True, all_angles=False).transforms
    assert corrected[0].swap_joints and corrected[5].honour_std and not corrected[6].all_angles


@pytest.mark.parametrize("multi,shape", [(False, (1, 3, 60, 17)), (True, (3, 6, 60, 17))])
def test_pipelines_give_network_input(multi, shape):
    x = poses(75)
    train = A.train_transform(60, multi_branch=multi)
    out = train(x, rng=np.random.default_rng(5))
    assert out.shape == shape and out.dtype == torch.float32
    torch.testing.assert_close(out, train(x, rng=np.random.default_rng(5)))  # same seed, same sample
    assert not torch.equal(out, train(x, rng=np.random.default_rng(6)))
    evaluation = A.eval_transform(60, multi_branch=multi)
    torch.testing.assert_close(evaluation(x), evaluation(x))
    assert evaluation(x).shape == shape


def test_two_views_differ():
    x = poses(75)
    views = A.TwoViews(A.train_transform(60))(x, rng=np.random.default_rng(0))
    assert len(views) == 2 and not torch.equal(views[0], views[1])
