"""Evaluation protocols: iLIDS-VID camera split, CASIA-B cross-view table, MARS query/gallery/junk.

The MARS protocols are checked against per-query loops written here from the protocol's wording
(torchreid's loop, and the MATLAB code's loop that skips junk while walking the ranked list).
"""

import csv
import os

import numpy as np
import pytest
import torch

from gafnet.errors import InputError
from gafnet.gait.protocols import (CASIA_VIEWS, MARS_QUERY_LIST, casia_b_table, evaluate_ilids, evaluate_mars,
                                   load_mars_query_list, mars_split)
from gafnet.metrics import rank_features

# ------------------------------------------------------------------------------------------------ iLIDS-VID


def ilids_data(rng, num_ids=12, dim=8):
    pids = np.repeat(np.arange(1, num_ids + 1), 2)
    camids = np.tile([1, 2], num_ids)
    centres = rng.normal(size=(num_ids, dim))
    features = centres[pids - 1] + 0.8 * rng.normal(size=(pids.size, dim))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return features, pids, camids


def test_ilids_query_is_camera_1_gallery_camera_2():
    rng = np.random.default_rng(0)
    features, pids, camids = ilids_data(rng)
    order = rng.permutation(pids.size)  # rows in any order
    features, pids, camids = features[order], pids[order], camids[order]
    result = evaluate_ilids(features, pids, camids)
    q, g = camids == 1, camids == 2
    expected = rank_features(features[q], features[g], pids[q], pids[g], camids[q], camids[g])
    np.testing.assert_array_equal(result.cmc, expected.cmc)
    assert result.mAP == expected.mAP
    assert result.num_queries == 12 and result.cmc.shape == (12,)  # CMC no longer than the gallery


def test_ilids_hand_case():
    # Person 1 and 2 swap appearance on camera 2; person 3 is recognised.
    e = np.eye(3)
    features = np.stack([e[0], e[1], e[2], e[1], e[0], e[2]])
    pids = [1, 2, 3, 1, 2, 3]
    camids = [1, 1, 1, 2, 2, 2]
    result = evaluate_ilids(torch.tensor(features), pids, camids)  # torch tensors are accepted
    np.testing.assert_allclose(result.cmc, [1 / 3, 1.0, 1.0])
    np.testing.assert_array_equal(result.first_match_rank, [1, 1, 0])
    assert result.mAP == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_ilids_missing_or_unknown_camera_is_a_clear_error():
    features, pids, camids = ilids_data(np.random.default_rng(1))
    with pytest.raises(InputError, match="camera 2"):
        evaluate_ilids(features[camids == 1], pids[camids == 1], camids[camids == 1])
    with pytest.raises(InputError, match="camera 1"):
        evaluate_ilids(features[camids == 2], pids[camids == 2], camids[camids == 2])
    with pytest.raises(InputError, match=r"camera id\(s\) \[3\]"):
        evaluate_ilids(features, pids, np.where(camids == 2, 3, camids))
    with pytest.raises(InputError, match="rows"):
        evaluate_ilids(features[:-1], pids, camids)


# ------------------------------------------------------------------------------------------------ CASIA-B

NM, BG, CL = 0, 1, 2
V = {view: i for i, view in enumerate(CASIA_VIEWS)}


def casia_hand_data():
    """3 subjects × 11 views; subject s looks like e_s, with three deliberate confusions.

    - gallery NM#1 of subject 76 at 54° looks like e_75 + 0.1 e_3 (a look-alike of subject 75);
    - probe BG#1 of subject 75 at 90° is exactly that look-alike: wrong against gallery view 54° only
      (elsewhere subject 75's own gallery, 0.01 away, is nearest);
    - probe CL#2 of subject 77 at 0° looks like subject 76: wrong against every gallery view.
    """
    e = np.eye(4)
    look_alike = e[0] + 0.1 * e[3]
    rows = []
    for s, subject in enumerate((75, 76, 77)):
        for view in CASIA_VIEWS:
            for seq in (1, 2, 3, 4):  # gallery
                f = look_alike if (subject, view, seq) == (76, 54, 1) else e[s]
                rows.append((f, subject, NM, seq, view))
            for cond, seqs in ((NM, (5, 6)), (BG, (1, 2)), (CL, (1, 2))):
                for seq in seqs:
                    f = e[s]
                    if (subject, cond, seq, view) == (75, BG, 1, 90):
                        f = look_alike
                    if (subject, cond, seq, view) == (77, CL, 2, 0):
                        f = e[1]
                    rows.append((f, subject, cond, seq, view))
    features = np.stack([r[0] for r in rows])
    subjects, conditions, sequences, views = (np.array([r[i] for r in rows]) for i in range(1, 5))
    return features, subjects, conditions, sequences, views


def test_casia_hand_computed_table():
    result = casia_b_table(*casia_hand_data())
    assert result.complete and result.notes == []
    np.testing.assert_array_equal(result.num_probes, np.full((3, 11), 6))
    # pair level: the look-alike probe fails only against gallery view 54°
    assert result.pair_accuracy[BG, V[90], V[54]] == pytest.approx(5 / 6)
    assert result.pair_accuracy[BG, V[90], V[72]] == 1.0
    assert np.all(np.isnan(np.diagonal(result.pair_accuracy, axis1=1, axis2=2)))  # identical views excluded
    # per view: mean over the other 10 gallery views
    expected = np.ones((3, 11))
    expected[BG, V[90]] = (9 + 5 / 6) / 10  # 59/60
    expected[CL, V[0]] = 5 / 6  # wrong against all 10 gallery views
    np.testing.assert_allclose(result.per_view, expected)
    np.testing.assert_allclose(result.condition_mean, [1.0, 659 / 660, 65 / 66])
    assert result.mean == pytest.approx(1969 / 1980)  # mean of the three condition means


def test_casia_original_printed_avg_is_ten_elevenths_of_the_mean():
    result = casia_b_table(*casia_hand_data())
    assert result.original_printed_avg == pytest.approx(1969 / 2178)
    assert result.original_printed_avg == pytest.approx(10 / 11 * result.mean)


def brute_force_casia(features, subjects, conditions, sequences, views):
    """Per probe, per gallery view: nearest gallery sequence by np.linalg.norm, counted by hand."""
    gallery = [i for i in range(len(views)) if conditions[i] == NM and sequences[i] <= 4]
    correct = np.zeros((3, 11, 11))
    total = np.zeros((3, 11, 11))
    for i in range(len(views)):
        probe_of = {NM: (5, 6), BG: (1, 2), CL: (1, 2)}[int(conditions[i])]
        if sequences[i] not in probe_of:
            continue
        for gv in CASIA_VIEWS:
            cols = [j for j in gallery if views[j] == gv]
            nearest = cols[int(np.argmin([np.linalg.norm(features[i] - features[j]) for j in cols]))]
            correct[conditions[i], V[int(views[i])], V[gv]] += subjects[nearest] == subjects[i]
            total[conditions[i], V[int(views[i])], V[gv]] += 1
    pair = correct / total
    per_view = (pair.sum(axis=2) - np.diagonal(pair, axis1=1, axis2=2)) / 10  # identical view left out
    return pair, per_view


def test_casia_random_data_equals_brute_force():
    rng = np.random.default_rng(3)
    rows = [(s, c, q, v) for s in range(100, 105) for v in CASIA_VIEWS
            for c, seqs in ((NM, range(1, 7)), (BG, (1, 2)), (CL, (1, 2))) for q in seqs]
    subjects, conditions, sequences, views = (np.array(col) for col in zip(*rows))
    centres = rng.normal(size=(5, 6))
    features = centres[subjects - 100] + 1.2 * rng.normal(size=(len(rows), 6))
    result = casia_b_table(features, subjects, conditions, sequences, views)
    pair, per_view = brute_force_casia(features, subjects, conditions, sequences, views)
    off = ~np.eye(11, dtype=bool)
    np.testing.assert_allclose(result.pair_accuracy[:, off], pair[:, off])
    np.testing.assert_allclose(result.per_view, per_view)
    assert 0.2 < result.mean < 0.99  # a problem with both hits and misses
    assert result.original_printed_avg == pytest.approx(10 / 11 * result.mean)


def test_casia_absent_views_and_conditions_give_nan_and_notes():
    features, subjects, conditions, sequences, views = casia_hand_data()
    gallery = (conditions == NM) & (sequences <= 4)
    keep = ~(gallery & (views == 180))  # no gallery at 180°
    keep &= ~(~gallery & (views == 36))  # no probe at 36°
    keep &= conditions != CL  # no clothing condition at all
    result = casia_b_table(features[keep], subjects[keep], conditions[keep], sequences[keep], views[keep])
    assert not result.complete
    assert np.isnan(result.original_printed_avg)
    assert np.all(np.isnan(result.per_view[:, V[36]]))
    assert np.all(np.isnan(result.per_view[CL])) and np.isnan(result.condition_mean[CL])
    assert np.all(np.isnan(result.pair_accuracy[:, :, V[180]]))
    # the look-alike probe: 8 hits of 9 other gallery views present, plus 5/6 at 54°
    assert result.per_view[BG, V[90]] == pytest.approx((8 + 5 / 6) / 9)
    assert result.per_view[NM, V[180]] == 1.0  # a probe at 180° still has 10 other gallery views
    bg_mean = (9 + (8 + 5 / 6) / 9) / 10  # 10 probe views present (all but 36°), one of them imperfect
    np.testing.assert_allclose(result.condition_mean[:2], [1.0, bg_mean])
    assert result.mean == pytest.approx((1.0 + bg_mean) / 2)  # over the conditions present
    notes = "\n".join(result.notes)
    assert "180°" in notes and "CL#1-2" in notes and "36°" in notes and "printed AVG" in notes
    text = result.format_table()
    assert "n/a" in text and "note:" in text


def test_casia_table_csv_and_text(tmp_path):
    result = casia_b_table(*casia_hand_data())
    path = tmp_path / "out" / "casia.csv"
    result.to_csv(path)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["condition", *[str(v) for v in CASIA_VIEWS], "mean"]
    assert [r[0] for r in rows[1:]] == ["NM", "BG", "CL"]
    assert float(rows[2][1 + V[90]]) == pytest.approx(100 * 59 / 60, abs=1e-4)  # percent
    assert float(rows[3][-1]) == pytest.approx(100 * 65 / 66, abs=1e-4)
    assert [p.name for p in path.parent.iterdir()] == ["casia.csv"]  # no temporary left behind
    text = result.format_table()
    assert "CL#1-2" in text and "98.33" in text and f"{100 * 1969 / 1980:.2f}" in text
    assert f"{100 * 1969 / 2178:.2f}" in text  # the original's AVG, labelled as the quirk


def test_casia_bad_input_is_a_clear_error():
    features, subjects, conditions, sequences, views = casia_hand_data()
    with pytest.raises(InputError, match="45"):
        casia_b_table(features, subjects, conditions, sequences, np.where(views == 36, 45, views))
    with pytest.raises(InputError, match="condition codes"):
        casia_b_table(features, subjects, np.where(conditions == CL, 3, conditions), sequences, views)
    probes_only = ~((conditions == NM) & (sequences <= 4))
    broken = features.copy()
    broken[7, 2] = np.nan
    with pytest.raises(InputError, match="NaN or inf in row"):
        casia_b_table(broken, subjects, conditions, sequences, views)
    with pytest.raises(InputError, match="gallery"):
        casia_b_table(features[probes_only], subjects[probes_only], conditions[probes_only],
                      sequences[probes_only], views[probes_only])


# ------------------------------------------------------------------------------------------------ MARS


def mars_data(rng, dim=8):
    """A small MARS-like test set on 6 cameras with junk (−1), distractors (0) and awkward identities.

    Returns features, pids, camids, tracklets and the query rows (one tracklet per identity and camera).
    Person 1 is seen once on each of cameras 1 and 2: both tracklets are queries, so each query's only
    cross-camera match is the other query (valid only in the official protocol). Person 2 is seen on
    camera 3 only (no valid match in either protocol).
    """
    rows = [(1, 1), (1, 2), (2, 3), (2, 3)]
    for pid in range(3, 15):
        cams = rng.choice(np.arange(1, 7), size=rng.integers(2, 5), replace=False)
        for cam in cams:
            rows += [(pid, int(cam))] * int(rng.integers(1, 4))
    rows += [(0, int(c)) for c in rng.integers(1, 7, 8)] + [(-1, int(c)) for c in rng.integers(1, 7, 8)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    pids = np.array([r[0] for r in rows])
    camids = np.array([r[1] for r in rows])
    tracklets = np.zeros(len(rows), dtype=np.int64)
    for pid in np.unique(pids):  # numbered per person, as in MARS names
        tracklets[pids == pid] = np.arange(1, np.sum(pids == pid) + 1)
    centres = rng.normal(size=(16, dim))
    features = centres[pids + 1] + 1.0 * rng.normal(size=(len(rows), dim))
    queries = []
    for pid in range(1, 15):
        for cam in np.unique(camids[pids == pid]):
            queries.append(int(np.nonzero((pids == pid) & (camids == cam))[0][0]))
    return features, pids, camids, tracklets, np.array(queries)


def write_query_list(path, pids, camids, tracklets, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["person_id", "camera_id", "tracklet"])
        for i in rows:
            writer.writerow([pids[i], camids[i], tracklets[i]])
    return path


def loop_torchreid(features, pids, camids, queries, max_rank):
    """torchreid's per-query loop: gallery = non-query rows minus person −1; drop same person & camera."""
    gallery = [j for j in range(len(pids)) if j not in set(queries) and pids[j] != -1]
    first, aps = [], []
    for i in queries:
        dist = np.array([np.sum((features[i] - features[j]) ** 2) for j in gallery])
        ranked = [gallery[k] for k in np.argsort(dist, kind="stable")]
        ranked = [j for j in ranked if not (pids[j] == pids[i] and camids[j] == camids[i])]
        hits = np.array([pids[j] == pids[i] for j in ranked])
        if not hits.any():
            continue  # a query without a valid match is skipped
        ranks = np.nonzero(hits)[0]
        first.append(ranks[0])
        aps.append(np.mean((np.arange(len(ranks)) + 1) / (ranks + 1)))
    first = np.array(first)
    cmc = np.array([np.mean(first <= k) for k in range(max_rank)])
    return cmc, float(np.mean(aps)), len(first)


def loop_official(features, pids, camids, queries, max_rank):
    """The MATLAB code's loop: rank ALL test rows, walk the list skipping junk (person −1, and the same
    person on the same camera, the query itself included); average over all queries."""
    cmcs, aps = [], []
    for i in queries:
        dist = np.array([np.sum((features[i] - f) ** 2) for f in features])
        position, hits = 0, []
        for j in np.argsort(dist, kind="stable"):
            if pids[j] == -1 or (pids[j] == pids[i] and camids[j] == camids[i]):
                continue  # junk: ignored, takes no rank
            if pids[j] == pids[i]:
                hits.append(position)
            position += 1
        cmc = np.zeros(max_rank)
        if hits:
            cmc[hits[0]:] = 1
            aps.append(np.mean((np.arange(len(hits)) + 1) / (np.array(hits) + 1)))
        else:
            aps.append(0.0)  # our decision: no valid match = a miss with AP 0
        cmcs.append(cmc)
    return np.mean(cmcs, axis=0), float(np.mean(aps))


@pytest.mark.parametrize("seed", range(4))
def test_mars_torchreid_protocol_equals_per_query_loop(seed, tmp_path):
    rng = np.random.default_rng(seed)
    features, pids, camids, tracklets, queries = mars_data(rng)
    qlist = write_query_list(tmp_path / "q.csv", pids, camids, tracklets, queries)
    result = evaluate_mars(features, pids, camids, tracklets, query_list=qlist, protocol="torchreid", max_rank=10)
    cmc, mAP, num_valid = loop_torchreid(features, pids, camids, list(queries), 10)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-6)
    assert result.mAP == pytest.approx(mAP)
    assert result.num_valid == num_valid < result.num_queries == len(queries)
    # persons 1 (both tracklets are queries) and 2 (one camera) have no valid match here
    skipped = set(pids[queries][~result.valid].tolist())
    assert {1, 2} <= skipped


@pytest.mark.parametrize("seed", range(4))
def test_mars_official_protocol_equals_matlab_style_loop(seed, tmp_path):
    rng = np.random.default_rng(seed)
    features, pids, camids, tracklets, queries = mars_data(rng)
    qlist = write_query_list(tmp_path / "q.csv", pids, camids, tracklets, queries)
    result = evaluate_mars(features, pids, camids, tracklets, query_list=qlist, protocol="official", max_rank=10)
    cmc, mAP = loop_official(features, pids, camids, list(queries), 10)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-6)
    assert result.mAP == pytest.approx(mAP)
    assert result.num_queries == len(queries)
    assert result.mAP == pytest.approx(result.average_precision.mean())  # over ALL queries
    # person 1's queries match each other (the queries are in the gallery); person 2 has no match: AP 0
    q_pids = pids[queries]
    assert result.valid[q_pids == 1].all()
    assert not result.valid[q_pids == 2].any() and np.all(result.average_precision[q_pids == 2] == 0)


def test_mars_split_roles(tmp_path):
    features, pids, camids, tracklets, queries = mars_data(np.random.default_rng(5))
    qlist = write_query_list(tmp_path / "q.csv", pids, camids, tracklets, queries[::-1])
    junk = np.nonzero(pids == -1)[0]
    q, g, j = mars_split(pids, camids, tracklets, query_list=qlist, protocol="torchreid")
    np.testing.assert_array_equal(q, queries[::-1])  # in query-list order
    np.testing.assert_array_equal(j, junk)
    np.testing.assert_array_equal(g, np.setdiff1d(np.arange(len(pids)), np.union1d(queries, junk)))
    assert np.any(pids[g] == 0)  # distractors stay in the gallery
    split = mars_split(pids, camids, tracklets, query_list=qlist, protocol="official")
    np.testing.assert_array_equal(split.gallery_idx, np.setdiff1d(np.arange(len(pids)), junk))
    with pytest.raises(InputError, match="Unknown MARS protocol"):
        mars_split(pids, camids, tracklets, query_list=qlist, protocol="matlab")


def standard_test_set(rng):
    """The 1,980 standard query tracklets plus, for each, one more tracklet of the person on another camera."""
    queries = load_mars_query_list()
    extra = queries.copy()
    extra[:, 1] = extra[:, 1] % 6 + 1
    extra[:, 2] += 10_000
    table = np.concatenate([extra[:1000], queries, extra[1000:], [[-1, 1, 1], [0, 2, 1]]])
    return table, rng.normal(size=(table.shape[0], 4))


def test_mars_default_query_list_is_the_shipped_standard_one():
    queries = load_mars_query_list()
    assert queries.shape == (1980, 3) and MARS_QUERY_LIST.is_file()
    assert tuple(queries[0]) == (2, 1, 12)
    assert np.unique(queries, axis=0).shape[0] == 1980 and np.all(queries[:, 0] > 0)
    assert set(np.unique(queries[:, 1]).tolist()) <= {1, 2, 3, 4, 5, 6}
    table, features = standard_test_set(np.random.default_rng(0))
    split = mars_split(table[:, 0], table[:, 1], table[:, 2])
    np.testing.assert_array_equal(split.query_idx, np.arange(1000, 2980))
    assert split.gallery_idx.size == table.shape[0] - 1980 - 1
    result = evaluate_mars(features, table[:, 0], table[:, 1], table[:, 2])
    assert result.num_queries == 1980


def test_mars_missing_query_tracklets_are_listed():
    table, features = standard_test_set(np.random.default_rng(0))
    gone = [1000, 1001, 2979]  # query rows dropped, e.g. tracklets too short for the pose loader
    kept = np.setdiff1d(np.arange(table.shape[0]), gone)
    with pytest.raises(InputError, match=r"3 of the 1980 query tracklets .*\(2, 1, 12\)"):
        evaluate_mars(features[kept], table[kept, 0], table[kept, 1], table[kept, 2])


def test_mars_query_list_file_errors(tmp_path):
    pids, camids, tracklets = np.array([1, 1]), np.array([1, 2]), np.array([1, 2])
    bad = tmp_path / "bad.csv"
    bad.write_text("pid,cam,tracklet\n1,1,1\n")
    with pytest.raises(InputError, match="header"):
        mars_split(pids, camids, tracklets, query_list=bad)
    bad.write_text("person_id,camera_id,tracklet\n1,1,1\n1,x,2\n")
    with pytest.raises(InputError, match="line 3"):
        load_mars_query_list(bad)
    bad.write_text("person_id,camera_id,tracklet\n1,1,1\n1,1,1\n")
    with pytest.raises(InputError, match="more than once"):
        load_mars_query_list(bad)
    with pytest.raises(InputError, match="MARS query list.*absent.csv: file not found"):
        load_mars_query_list(tmp_path / "absent.csv")
    os.mkfifo(tmp_path / "fifo.csv")  # refused before it is opened: opening a FIFO would block forever
    with pytest.raises(InputError, match="not a regular file"):
        load_mars_query_list(tmp_path / "fifo.csv")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfperson_id,camera_id,tracklet\n1,1,1\n")
    np.testing.assert_array_equal(load_mars_query_list(tmp_path / "bom.csv"), [[1, 1, 1]])
    good = tmp_path / "good.csv"
    good.write_text("person_id,camera_id,tracklet\n1,1,1\n\n")  # a trailing blank line is fine
    np.testing.assert_array_equal(load_mars_query_list(good), [[1, 1, 1]])
    with pytest.raises(InputError, match="more than once in the data"):
        mars_split(np.array([1, 1, 1]), np.array([1, 1, 2]), np.array([1, 1, 2]), query_list=good)


def test_only_ranks_within_the_gallery_are_reported():
    """Issue 15: a gallery of 3 tracklets has Rank-1 and Rank-3 but no Rank-5/10/20 (never a wrong label)."""
    from gafnet.gait.protocols import format_ranks, reported_ranks

    feats = np.eye(6)
    feats[3:] = feats[:3] + 0.1  # gallery rows near their queries
    res = evaluate_ilids(feats, [1, 2, 3, 1, 2, 3], [1, 1, 1, 2, 2, 2])
    assert len(res.cmc) == 3
    assert reported_ranks(res, (1, 3, 5, 10, 20)) == {1: 100.0, 3: 100.0}
    text = format_ranks(res)
    assert text.startswith("Rank-1 100.00  mAP") and "Rank-5" not in text
