"""Fusion: the weighted distance equals the original's renormalised concatenation; λ grid and cv choice."""

import warnings

import numpy as np
import pytest

from gafnet import synthetic
from gafnet.fusion import (concatenated_distance, cross_validated_choice, evaluate_lambdas, fused_distance,
                           load_split)
from gafnet.metrics import rank_queries


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    synthetic.write_tree(root, seed=3, dims=synthetic.SMALL_DIMS, num_splits=2)
    return root


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.74, 1.0, 2.5])
def test_fused_distance_equals_explicit_concatenation(tree, lam):
    data = load_split(tree, "pit", "gait1", 0)
    d_app, d_gait = data.distances()
    np.testing.assert_allclose(fused_distance(d_app, d_gait, lam), concatenated_distance(data, lam), atol=1e-12)


def test_sweep_equals_original_formula_with_torchreid(tree):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.metrics.rank import eval_market1501
    data = load_split(tree, "osnet", "gait1", 1)
    grid = [0.0, 0.5, 0.9, 1.7]
    results = evaluate_lambdas(data, grid)
    for lam, res in zip(grid, results):
        cmc, mAP = eval_market1501(concatenated_distance(data, lam), data.q_pids, data.g_pids,
                                   data.q_camids, data.g_camids, 50)
        np.testing.assert_allclose(res.cmc, cmc, atol=1e-6)
        assert res.mAP == pytest.approx(mAP, abs=1e-9)
        single = rank_queries(fused_distance(*data.distances(), lam), data.q_pids, data.g_pids,
                              data.q_camids, data.g_camids)
        np.testing.assert_array_equal(single.first_match_rank, res.first_match_rank)


def test_appearance_only_is_lambda_zero(tree):
    data = load_split(tree, "mgh", "gait2", 0)
    app = rank_queries(data.distances()[0], data.q_pids, data.g_pids, data.q_camids, data.g_camids)
    np.testing.assert_allclose(evaluate_lambdas(data, [0.0])[0].cmc, app.cmc)


def test_fusion_helps_on_the_synthetic_tree(tree):
    data = load_split(tree, "osnet", "gait1", 0)
    fused, app = evaluate_lambdas(data, [0.9, 0.0])
    assert fused.cmc[0] > app.cmc[0]


def test_gallery_rows_in_another_order_give_the_same_result(tree, tmp_path):
    from gafnet.embeddings import read_embedding_csv, write_embedding_csv
    from gafnet.layout import embedding_csv
    import shutil
    shutil.copytree(tree, tmp_path / "t")
    path = embedding_csv(tmp_path / "t", "gait1", "gallery", 0)
    t = read_embedding_csv(path)
    order = np.random.default_rng(0).permutation(len(t))
    write_embedding_csv(path, t.features[order], t.pids[order], t.camids[order])
    moved = load_split(tmp_path / "t", "pit", "gait1", 0)
    assert any("reordered" in n for n in moved.notes)
    base = load_split(tree, "pit", "gait1", 0)
    np.testing.assert_allclose(moved.distances()[1], base.distances()[1], atol=1e-6)


def test_cross_validated_choice_never_uses_the_evaluated_split():
    grid = [0.1, 0.2, 0.3]
    rank1 = np.array([[50, 60, 99.0],   # split 0 alone prefers 0.3 ...
                      [50, 60, 40.0],   # ... the others prefer 0.2
                      [50, 60, 40.0]])
    mAP = np.zeros_like(rank1)
    assert cross_validated_choice(rank1, mAP, grid) == [1, 2, 2]
    # split 1: others are splits 0 and 2: means 50, 60, 69.5 -> index 2


def test_cross_validated_choice_breaks_ties_by_map_then_smaller_lambda():
    rank1 = np.array([[60, 60, 60.0], [60, 60, 60.0]])
    mAP = np.array([[1, 2, 2.0], [1, 2, 2.0]])
    assert cross_validated_choice(rank1, mAP, [0.1, 0.2, 0.3]) == [1, 1]
