"""Fusion strategies, each against a direct per-query implementation; λ/w grids, cv choice, PCA, MARS layout."""

import shutil
import warnings

import numpy as np
import pytest

from gafnet import synthetic
from gafnet.embeddings import EmbeddingTable, read_embedding_csv, write_embedding_csv
from gafnet.errors import InputError
from gafnet.fusion import (Fusion, SplitData, align_mars, build_split, concatenated_distance, cross_validated_choice,
                           evaluate_lambdas, evaluate_values, fused_distance, l2_normalize, load_split,
                           reduce_appearance)
from gafnet.layout import embedding_csv
from gafnet.metrics import rank_queries


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    synthetic.write_tree(root, seed=3, dims=synthetic.SMALL_DIMS, num_splits=2)
    return root


def direct_ranks(distance_rows, q_pids, g_pids, q_cams, g_cams, average_over_all=False):
    """Per query: a stable sort of its own row, junk removed, first match and AP (the textbook definition)."""
    firsts, aps = [], []
    for i, row in enumerate(distance_rows):
        order = np.argsort(row, kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i]))
        hits = (g_pids[order] == q_pids[i])[keep]
        if not hits.any():
            if average_over_all:
                firsts.append(10**9)
                aps.append(0.0)
            continue
        pos = np.nonzero(hits)[0]
        firsts.append(pos[0])
        aps.append(np.mean(np.arange(1, len(pos) + 1) / (pos + 1)))
    firsts = np.array(firsts)
    return np.array([(firsts <= k).mean() for k in range(min(20, len(g_pids)))]), float(np.mean(aps))


def direct_score_row(qa, qg, ga, gg, w, norm):
    """Score fusion of ONE query, written out: Euclidean distances, normalised over this query's gallery."""
    da = np.sqrt(((ga - qa) ** 2).sum(1))
    dg = np.sqrt(((gg - qg) ** 2).sum(1))

    def n(d):
        if norm == "minmax":
            return (d - d.min()) / (d.max() - d.min())
        return (d - d.mean()) / d.std()
    return (1 - w) * n(da) + w * n(dg)


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


@pytest.mark.parametrize("norm", ["minmax", "zscore"])
@pytest.mark.parametrize("w", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_score_fusion_equals_a_direct_per_query_implementation(tree, norm, w):
    data = load_split(tree, "mgh", "gait2", 1)
    res = evaluate_values(data, [w], Fusion("score", norm))[0]
    rows = [direct_score_row(data.q_app[i], data.q_gait[i], data.g_app, data.g_gait, w, norm)
            for i in range(len(data.q_pids))]
    cmc, mAP = direct_ranks(rows, data.q_pids, data.g_pids, data.q_camids, data.g_camids)
    np.testing.assert_allclose(res.cmc[:20], cmc, atol=1e-6)
    assert res.mAP == pytest.approx(mAP, abs=1e-9)


def test_score_fusion_at_w_zero_is_appearance_only(tree):
    data = load_split(tree, "pit", "gait1", 0)
    score0 = evaluate_values(data, [0.0], Fusion("score", "zscore"))[0]
    app = evaluate_lambdas(data, [0.0])[0]
    np.testing.assert_array_equal(score0.first_match_rank, app.first_match_rank)


def test_appearance_only_is_lambda_zero(tree):
    data = load_split(tree, "mgh", "gait2", 0)
    app = rank_queries(data.distances()[0], data.q_pids, data.g_pids, data.q_camids, data.g_camids)
    np.testing.assert_allclose(evaluate_lambdas(data, [0.0])[0].cmc, app.cmc)


@pytest.mark.parametrize("fusion", [Fusion("concat"), Fusion("score", "minmax")])
def test_values_in_chunks_equal_values_stacked(tree, fusion):
    data = load_split(tree, "osnet", "gait1", 0)
    grid = np.linspace(0, 1, 7)
    whole = evaluate_values(data, grid, fusion)
    chunked = evaluate_values(data, grid, fusion, stack_bytes=1)  # one value per chunk
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a.first_match_rank, b.first_match_rank)
        np.testing.assert_array_equal(a.average_precision, b.average_precision)


def split_of(q_app, g_app, q_gait, g_gait, q_pids, g_pids, q_cams, g_cams):
    return SplitData(split=0, q_app=l2_normalize(q_app), g_app=l2_normalize(g_app), q_gait=l2_normalize(q_gait),
                     g_gait=l2_normalize(g_gait), q_pids=np.asarray(q_pids), g_pids=np.asarray(g_pids),
                     q_camids=np.asarray(q_cams), g_camids=np.asarray(g_cams))


def test_gait_separates_people_whom_appearance_confuses():
    """Two people dressed alike (same appearance), with different walks: fusion ranks both right."""
    app = np.array([[1.0, 0.0], [1.0, 0.001]])
    gait_q = np.array([[1.0, 0.0], [0.0, 1.0]])
    gait_g = np.array([[0.9, 0.1], [0.1, 0.9]])
    # the gallery shows person 2 (row 0) looking exactly like query person 1, and person 1 like query person 2
    data = split_of(app, app.copy(), gait_q, gait_g[::-1].copy(), [1, 2], [2, 1], [1, 1], [2, 2])
    appearance, fused = evaluate_lambdas(data, [0.0, 1.0])
    assert appearance.cmc[0] == 0.0  # each query's nearest appearance is the other person
    assert fused.cmc[0] == 1.0 and fused.mAP == 1.0


def test_gallery_rows_in_another_order_give_the_same_result(tree, tmp_path):
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


# ------------------------------------------------------------------------------------------------- PCA
def numpy_pca(fit, x, dim):
    """PCA written out with an SVD (centre on the fit data's mean, project on the top right-singular vectors)."""
    mean = fit.mean(0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    return (x - mean) @ vt[:dim].T


@pytest.mark.parametrize("fit_on_file", [False, True])
def test_pca_reduced_fusion_equals_a_direct_implementation(tree, fit_on_file):
    data = load_split(tree, "pit", "gait1", 0)
    other = load_split(tree, "pit", "gait1", 1)
    fit_raw = np.concatenate([other.q_app, other.g_app]) * 3.0 if fit_on_file else None  # scale: refit normalises
    reduced = reduce_appearance(data, 10, fit_features=fit_raw)
    fit = np.concatenate([other.q_app, other.g_app]) if fit_on_file else np.concatenate([data.q_app, data.g_app])
    qa, ga = (l2_normalize(numpy_pca(fit, x, 10)) for x in (data.q_app, data.g_app))
    np.testing.assert_allclose(reduced.distances()[0], ((qa[:, None] - ga[None]) ** 2).sum(-1), atol=1e-9)
    for fusion, value in ((Fusion("concat"), 0.74), (Fusion("score", "minmax"), 0.3)):
        res = evaluate_values(reduced, [value], fusion)[0]
        if fusion.kind == "concat":
            rows = [((ga - qa[i]) ** 2).sum(1) + value ** 2 * ((data.g_gait - data.q_gait[i]) ** 2).sum(1)
                    for i in range(len(qa))]
        else:
            rows = [direct_score_row(qa[i], data.q_gait[i], ga, data.g_gait, value, "minmax") for i in range(len(qa))]
        cmc, mAP = direct_ranks(rows, data.q_pids, data.g_pids, data.q_camids, data.g_camids)
        np.testing.assert_allclose(res.cmc[:20], cmc, atol=1e-6)
        assert res.mAP == pytest.approx(mAP, abs=1e-9)


def test_pca_dimension_out_of_range_is_refused(tree):
    data = load_split(tree, "osnet", "gait1", 0)
    with pytest.raises(InputError, match="--pca_dim 33: must be between 1 and 32"):
        reduce_appearance(data, 33)


# ------------------------------------------------------------------------------------------------- MARS
def table(pids, cams, feats, tracklets=None, name="x"):
    from pathlib import Path
    return EmbeddingTable(features=np.asarray(feats, float), pids=np.asarray(pids), camids=np.asarray(cams),
                          path=Path(f"/data/{name}/query.csv"),
                          tracklets=None if tracklets is None else np.asarray(tracklets))


def test_mars_rows_are_matched_on_tracklet_ids_when_both_files_have_them():
    app = table([1, 1, 2], [1, 1, 3], np.eye(3), tracklets=[7, 8, 9], name="mgh")
    gait = table([2, 1, 1], [3, 1, 1], [[3, 0], [2, 0], [1, 0]], tracklets=[9, 8, 7], name="gait1")
    aligned, notes = align_mars(app, gait)
    np.testing.assert_array_equal(aligned.features[:, 0], [1, 2, 3])
    assert any("reordered" in n for n in notes)


def test_mars_rows_without_tracklet_ids_are_matched_by_order_within_equal_ids_with_a_note():
    app = table([1, 1, 2], [1, 1, 3], np.eye(3), name="mgh")
    gait = table([2, 1, 1], [3, 1, 1], [[3, 0], [1, 0], [2, 0]], name="gait1")
    aligned, notes = align_mars(app, gait)
    np.testing.assert_array_equal(aligned.features[:, 0], [1, 2, 3])
    assert any("matched by order" in n for n in notes)


def test_mars_rows_that_cannot_be_matched_are_refused():
    app = table([1, 1, 2], [1, 1, 3], np.eye(3), name="mgh")
    gait = table([1, 2, 2], [1, 3, 3], np.eye(3)[:, :2], name="gait1")
    with pytest.raises(InputError, match=r"\(1, 1\) has 1 row\(s\) in one and 2 in the other"):
        align_mars(app, gait)


@pytest.mark.parametrize("protocol", ["torchreid", "official"])
def test_mars_protocols_equal_a_direct_implementation(tmp_path, protocol):
    synthetic.write_mars_tree(tmp_path, seed=2, dims=synthetic.MARS_SMALL_DIMS)
    data = load_split(tmp_path, "mgh", "gait1", None, dataset="mars", protocol=protocol)
    q = read_embedding_csv(tmp_path / "mars" / "mgh" / "query.csv")
    g = read_embedding_csv(tmp_path / "mars" / "mgh" / "gallery.csv")
    assert len(q) == 1980 and int((g.pids != -1).sum()) == 9330
    keep = g.pids != -1
    gf, gp, gc = l2_normalize(g.features[keep]), g.pids[keep], g.camids[keep]
    qf = l2_normalize(q.features)
    if protocol == "official":
        gf, gp, gc = np.concatenate([qf, gf]), np.concatenate([q.pids, gp]), np.concatenate([q.camids, gc])
    assert data.g_app.shape[0] == len(gp)
    res = evaluate_values(data, [0.0])[0]
    rows = [((gf - qf[i]) ** 2).sum(1) for i in range(0, 1980, 9)]  # every 9th query, written out
    sub = rank_queries(data.distances()[0][::9], data.q_pids[::9], data.g_pids, data.q_camids[::9], data.g_camids)
    cmc, mAP = direct_ranks(rows, q.pids[::9], gp, q.camids[::9], gc, average_over_all=protocol == "official")
    np.testing.assert_array_equal(res.first_match_rank[::9], sub.first_match_rank)
    if protocol == "official":
        from gafnet.metrics import over_all_queries
        sub = over_all_queries(sub)
    np.testing.assert_allclose(sub.cmc[:20], cmc, atol=1e-6)
    assert sub.mAP == pytest.approx(mAP, abs=1e-9)


def test_a_mars_split_drops_junk_from_the_gallery():
    q_app = table([1], [1], [[1.0, 0]], tracklets=[1], name="mgh")
    g_app = table([1, -1], [2, 2], [[1.0, 0.1], [1.0, 0]], tracklets=[2, 3], name="mgh")
    q_gait = table([1], [1], [[0, 1.0]], tracklets=[1], name="gait1")
    g_gait = table([-1, 1], [2, 2], [[0, 1.0], [0.1, 1.0]], tracklets=[3, 2], name="gait1")
    data = build_split(None, q_app, g_app, q_gait, g_gait)
    assert data.g_pids.tolist() == [1]
