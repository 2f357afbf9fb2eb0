"""CMC/mAP: equal to torchreid's eval_market1501, to the original script's reference, and to hand-made cases."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gafnet.errors import InputError
from gafnet.metrics import evaluate_rank, rank_features, rank_queries, squared_euclidean

DATA = Path(__file__).parent / "data"


def torchreid_market1501():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.metrics.rank import eval_market1501
    return eval_market1501


def random_problem(rng, num_q, num_g, num_ids, num_cams, dim=16, ties=False):
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)
    q_cams = rng.integers(0, num_cams, num_q)
    g_cams = rng.integers(0, num_cams, num_g)
    if ties:
        dist = rng.integers(0, 5, (num_q, num_g)).astype(np.float64)
    else:
        dist = rng.random((num_q, num_g))
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.fixture(params=["few", "many"])
def match_path(request, monkeypatch):
    """Run a test through both ways of counting (per-match comparisons, and searchsorted buckets)."""
    import gafnet.metrics as metrics
    monkeypatch.setattr(metrics, "SMALL_MATCH_COUNT", 10**6 if request.param == "few" else 0)
    return request.param


@pytest.mark.parametrize("seed", range(6))
def test_equals_torchreid_on_random_problems(seed, match_path):
    rng = np.random.default_rng(seed)
    num_ids = int(rng.integers(3, 30))
    dist, qp, gp, qc, gc = random_problem(rng, int(rng.integers(5, 80)), int(rng.integers(60, 400)),
                                          num_ids, int(rng.integers(2, 7)))
    ref_cmc, ref_map = torchreid_market1501()(dist, qp, gp, qc, gc, 50)
    res = rank_queries(dist, qp, gp, qc, gc, max_rank=50)
    np.testing.assert_allclose(res.cmc, ref_cmc, atol=1e-6)
    assert abs(res.mAP - ref_map) < 1e-6
    # the count of valid queries is exact: a query is valid iff some gallery item has its pid on another camera
    expected_valid = sum(bool(np.any((gp == p) & (gc != c))) for p, c in zip(qp, qc))
    assert res.num_valid == expected_valid and res.num_queries == len(qp)


def test_invalid_queries_are_skipped_and_counted(match_path):
    rng = np.random.default_rng(7)
    dist, qp, gp, qc, gc = random_problem(rng, 40, 120, 10, 3)
    qp[:5] = 999  # identities absent from the gallery
    qp[5:8], qc[5:8] = 3, 0
    gc[gp == 3] = 0  # person 3 is seen by the gallery on the queries' camera only: junk, no match
    res = rank_queries(dist, qp, gp, qc, gc)
    ref_cmc, ref_map = torchreid_market1501()(dist, qp, gp, qc, gc, 50)
    assert (res.first_match_rank[:8] == -1).all() and np.isnan(res.average_precision[:8]).all()
    expected_valid = sum(bool(np.any((gp == p) & (gc != c))) for p, c in zip(qp, qc))
    assert res.num_valid == expected_valid <= 32 and res.num_queries == 40
    np.testing.assert_allclose(res.cmc, ref_cmc, atol=1e-6)
    assert abs(res.mAP - ref_map) < 1e-6


def test_query_whose_only_match_is_on_same_camera_is_skipped():
    dist = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    q_pids, g_pids = np.array([1, 2]), np.array([1, 2, 3])
    q_cams, g_cams = np.array([0, 0]), np.array([0, 1, 1])
    res = rank_queries(dist, q_pids, g_pids, q_cams, g_cams)
    assert res.num_valid == 1 and res.first_match_rank[0] == -1
    # query 1: gallery order by distance = [2 (pid 3), 1 (pid 2, match)] -> first match at rank 1
    assert res.first_match_rank[1] == 1
    assert res.cmc[0] == 0 and res.cmc[1] == 1
    assert res.mAP == pytest.approx(0.5)


def test_hand_computed_average_precision(match_path):
    # one query, pid 5 cam 0; gallery sorted by distance: match, junk, non-match, match, non-match, match
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    g_pids = np.array([5, 5, 1, 5, 2, 5])
    g_cams = np.array([1, 0, 1, 2, 1, 1])
    res = rank_queries(dist, [5], g_pids, [0], g_cams, max_rank=5)
    # after removing junk: M N M N M -> precisions 1/1, 2/3, 3/5
    assert res.mAP == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    np.testing.assert_array_equal(res.cmc, [1, 1, 1, 1, 1])


def test_ties_are_broken_by_gallery_index(match_path):
    dist = np.array([[1.0, 1.0, 1.0, 1.0]])
    g_pids = np.array([2, 1, 2, 1])
    res = rank_queries(dist, [1], g_pids, [0], [1, 1, 1, 1])
    assert res.first_match_rank[0] == 1  # order 0 (miss), 1 (match), 2, 3 (match)
    assert res.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)


@pytest.mark.parametrize("seed", range(4))
def test_ties_equal_a_stable_sort_brute_force(seed, match_path):
    rng = np.random.default_rng(100 + seed)
    dist, qp, gp, qc, gc = random_problem(rng, 30, 90, 6, 3, ties=True)
    res = rank_queries(dist, qp, gp, qc, gc, max_rank=20)
    aps, firsts = [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        hits = (gp[order] == qp[i])[keep]
        if not hits.any():
            assert res.first_match_rank[i] == -1
            continue
        pos = np.nonzero(hits)[0]
        firsts.append(pos[0])
        aps.append(np.mean(np.arange(1, len(pos) + 1) / (pos + 1)))
        assert res.first_match_rank[i] == pos[0]
    assert res.mAP == pytest.approx(np.mean(aps), abs=1e-12)
    cmc = np.array([(np.array(firsts) <= k).mean() for k in range(20)])
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-6)


def test_equals_original_script_reference(match_path):
    ref = np.load(DATA / "eval_cmc.npz")
    qf = torch.nn.functional.normalize(torch.from_numpy(ref["qf"]), dim=1)
    gf = torch.nn.functional.normalize(torch.from_numpy(ref["gf"]), dim=1)
    dist = squared_euclidean(qf.numpy(), gf.numpy())
    np.testing.assert_allclose(dist, ref["distmat"], atol=1e-5)
    cmc, mAP = evaluate_rank(ref["distmat"], ref["q_pids"], ref["g_pids"], ref["q_camids"], ref["g_camids"], 50)
    np.testing.assert_allclose(cmc, ref["cmc"], atol=1e-6)
    assert mAP == pytest.approx(float(ref["mAP"]), abs=1e-6)
    res = rank_features(qf, gf, ref["q_pids"], ref["g_pids"], ref["q_camids"], ref["g_camids"])
    np.testing.assert_allclose(res.cmc, ref["cmc"], atol=1e-6)
    assert res.mAP == pytest.approx(float(ref["mAP"]), abs=1e-6)


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(3)
    qf, gf = rng.normal(size=(57, 8)), rng.normal(size=(300, 8))
    qp, gp = rng.integers(0, 20, 57), rng.integers(0, 20, 300)
    qc, gc = rng.integers(0, 4, 57), rng.integers(0, 4, 300)
    whole = rank_features(qf, gf, qp, gp, qc, gc)
    tiny = rank_features(qf, gf, qp, gp, qc, gc, chunk_bytes=1)  # one query per chunk
    np.testing.assert_array_equal(whole.first_match_rank, tiny.first_match_rank)
    np.testing.assert_allclose(whole.average_precision, tiny.average_precision)
    ref_cmc, ref_map = torchreid_market1501()(squared_euclidean(qf, gf),
                                              qp, gp, qc, gc, 50)
    np.testing.assert_allclose(whole.cmc, ref_cmc, atol=1e-6)
    assert whole.mAP == pytest.approx(ref_map, abs=1e-9)


def test_short_gallery_shortens_cmc_like_torchreid():
    cmc, _ = evaluate_rank(np.array([[0.2, 0.1]]), [1], [1, 2], [0], [1, 1], max_rank=50)
    assert cmc.shape == (2,)


def test_no_valid_query_is_an_error():
    with pytest.raises(InputError, match="no query has a valid match"):
        evaluate_rank(np.ones((1, 2)), [1], [2, 3], [0], [1, 1])


def test_nan_distance_is_an_error():
    with pytest.raises(InputError, match="NaN"):
        evaluate_rank(np.array([[np.nan, 1.0]]), [1], [1, 2], [0], [1, 1])


def test_mismatched_lengths_are_an_error():
    with pytest.raises(InputError, match="g_pids"):
        evaluate_rank(np.ones((1, 2)), [1], [1, 2, 3], [0], [1, 1])


def test_over_all_queries_counts_an_invalid_query_as_a_miss_with_ap_zero():
    from gafnet.metrics import over_all_queries

    dist = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    res = rank_queries(dist, [1, 2], [1, 2, 3], [0, 0], [0, 1, 1])  # query 0's only match is on its camera
    assert res.num_valid == 1 and res.cmc[1] == 1.0
    every = over_all_queries(res)
    np.testing.assert_allclose(every.cmc, [0.0, 0.5, 0.5])
    assert every.mAP == pytest.approx(0.25)  # (0 + 1/2) / 2


def test_mean_cosine_similarity_equals_the_pairwise_mean():
    from gafnet.metrics import mean_cosine_similarity

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 7)) + 0.5
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = u @ u.T
    assert mean_cosine_similarity(x) == pytest.approx((sim.sum() - 40) / (40 * 39), abs=1e-12)
    assert mean_cosine_similarity([u[:15], u[15:]], unit_rows=True) == pytest.approx((sim.sum() - 40) / (40 * 39), abs=1e-12)


def test_collapse_warning_names_collapsed_embeddings_only():
    from gafnet.metrics import collapse_warning

    rng = np.random.default_rng(1)
    spread = rng.normal(size=(100, 16))
    collapsed = np.ones((100, 16)) + 1e-5 * rng.normal(size=(100, 16))
    assert collapse_warning(spread, "x") is None
    message = collapse_warning(collapsed, "gait1 split 0")
    assert message is not None and "collapsed" in message and "gait1 split 0" in message
    import re
    assert float(re.search(r"mean cosine similarity between them ([0-9.]+)", message).group(1)) > 0.999
