"""reid.py's gallery index and ranking, without pixels: chunked search = brute force (Eq. 4 and score fusion),
exact ties, ranks, metrics; the index folder written, extended, read memory-mapped, and refused when damaged."""

import itertools
import json

import numpy as np
import pytest

from gafnet.errors import InputError
from gafnet.fusion import normalize_rows, score_distance
from gafnet.metrics import rank_queries
from gafnet.pixels import reid_index
from gafnet.pixels.reid_index import GalleryIndex, IndexWriter, concat_records, models_differ
from gafnet.pixels.reid_search import FusionSpec, ranks_of, search, smallest_k

MODELS = {"appearance": {"model": "colour", "weights_sha256": None, "config": {"seq_len": 0}},
          "gait": {"model": "GaitGraph resgcn-n39-r8", "weights_sha256": "ab" * 32, "preprocessing": {"L": 8}},
          "pose": {"backend": "mediapipe"}}


VIDEOS = itertools.count()


def records(rng, n, app_dim=6, gait_dim=4, no_pose=(), pids=None, cams=None, thumb_bytes=5, sources=None):
    """A synthetic record set (thumbnails are opaque bytes here), from a video of its own unless ``sources``."""
    video = next(VIDEOS)
    gait = rng.normal(size=(n, gait_dim)).astype(np.float32)
    has = np.ones(n, bool)
    has[list(no_pose)] = False
    gait[~has] = np.nan
    frames = rng.integers(1, 5, n)
    return {"appearance": rng.normal(size=(n, app_dim)).astype(np.float32), "gait": gait, "has_pose": has,
            "gait_padded": np.zeros(n, bool), "frames": frames.astype(np.int32), "pose_frames": frames.astype(np.int32),
            "person_id": np.asarray(pids if pids is not None else np.full(n, -1), np.int64),
            "camera_id": np.asarray(cams if cams is not None else np.full(n, -1), np.int64),
            "source": np.asarray(sources if sources is not None else [f"v{video}.mp4#{i}" for i in range(n)]),
            "box_offsets": np.concatenate([[0], np.cumsum(frames)]).astype(np.int64),
            "boxes": rng.uniform(0, 100, (frames.sum(), 4)).astype(np.float32),
            "frame_numbers": np.arange(frames.sum(), dtype=np.int64),
            "thumb_offsets": np.arange(4 * n + 1, dtype=np.int64) * thumb_bytes,
            "thumbs": rng.integers(0, 255, 4 * n * thumb_bytes).astype(np.uint8)}


def build_index(tmp_path, rng, sizes=(7, 1, 12), name="idx", **kw):
    writer = IndexWriter(tmp_path / name, MODELS)
    parts = []
    for k, n in enumerate(sizes):
        rec = records(rng, n, **kw)
        parts.append(rec)
        writer.add(rec, {"input": f"video{k}.mp4", "kind": "synthetic", "identity": {"k": k}})
    return GalleryIndex.open(tmp_path / name), concat_records(parts)


def unit(x):
    x = np.nan_to_num(np.asarray(x, np.float64))
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def brute_distances(q, g):
    """Squared Euclidean distances of unit vectors, by explicit differences."""
    d_app = ((unit(q["appearance"])[:, None] - unit(g["appearance"])[None]) ** 2).sum(-1)
    d_gait = ((unit(q["gait"])[:, None] - unit(g["gait"])[None]) ** 2).sum(-1)
    return d_app, d_gait


@pytest.mark.parametrize("chunk_rows, budget", [(3, 1), (10_000, 1 << 30)])
def test_eq4_search_equals_brute_force_whatever_the_chunks(tmp_path, chunk_rows, budget):
    """Gallery read 3 rows at a time and queries one by one (budget 1 byte) = everything at once = brute force."""
    rng = np.random.default_rng(0)
    gallery, g = build_index(tmp_path, rng, no_pose=())
    g_has = g["has_pose"].copy()
    q = records(rng, 5, no_pose=(3,))
    m = search(q, gallery, top=6, fusion=FusionSpec("concat", 0.74), chunk_rows=chunk_rows, budget_bytes=budget)
    d_app, d_gait = brute_distances(q, g)
    # the renormalised concatenation [a, λ·g] / sqrt(1 + λ²), explicitly (paper Eq. 4)
    lam = 0.74
    za = np.concatenate([unit(q["appearance"]), lam * unit(q["gait"])], 1) / np.sqrt(1 + lam ** 2)
    zg = np.concatenate([unit(g["appearance"]), lam * unit(g["gait"])], 1) / np.sqrt(1 + lam ** 2)
    eq4 = ((za[:, None] - zg[None]) ** 2).sum(-1)
    both = q["has_pose"][:, None] & g_has[None]
    expected = np.where(both, eq4, d_app)  # no pose on one side: appearance alone
    np.testing.assert_array_equal(m.index, np.argsort(expected, axis=1, kind="stable")[:, :6])
    np.testing.assert_allclose(m.fused, np.sort(expected, axis=1)[:, :6], atol=1e-12)
    rows = np.arange(5)[:, None]
    np.testing.assert_allclose(m.appearance, d_app[rows, m.index], atol=1e-12)
    pair = both[rows, m.index]
    np.testing.assert_allclose(m.gait[pair], d_gait[rows, m.index][pair], atol=1e-12)
    assert np.isnan(m.gait[~pair]).all() and (m.gait_rank[~pair] == -1).all()
    assert m.appearance_only.tolist() == (~pair).tolist() and m.appearance_only[3].all()
    # ranks by each distance alone, 1-based, over the whole gallery
    app_rank = np.argsort(np.argsort(d_app, axis=1, kind="stable"), axis=1) + 1
    gait_rank = np.argsort(np.argsort(d_gait, axis=1, kind="stable"), axis=1) + 1
    np.testing.assert_array_equal(m.appearance_rank, app_rank[rows, m.index])
    np.testing.assert_array_equal(m.gait_rank[pair], gait_rank[rows, m.index][pair])


@pytest.mark.parametrize("norm", ["minmax", "zscore"])
def test_score_fusion_normalises_over_the_whole_gallery_row_exactly(tmp_path, norm):
    rng = np.random.default_rng(1)
    gallery, g = build_index(tmp_path, rng, sizes=(9, 14))
    q = records(rng, 4)
    fusion = FusionSpec("score", weight=0.3, norm=norm).check()
    d_app, d_gait = brute_distances(q, g)
    whole = score_distance(np.sqrt(d_app), np.sqrt(d_gait), 0.3, norm)  # the lead's function, unchunked
    small = search(q, gallery, top=23, fusion=fusion, chunk_rows=4, budget_bytes=1)
    np.testing.assert_allclose(small.fused, np.take_along_axis(whole, small.index, 1), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(small.index, np.argsort(whole, axis=1, kind="stable"))
    big = search(q, gallery, top=23, fusion=fusion)
    np.testing.assert_array_equal(big.index, small.index)
    np.testing.assert_allclose(big.fused, small.fused, rtol=0, atol=1e-14)  # BLAS rounding of other shapes only
    np.testing.assert_allclose(small.appearance, np.take_along_axis(np.sqrt(d_app), small.index, 1), atol=1e-12)


def test_score_fusion_without_gait_on_some_gallery_items(tmp_path):
    """Items without a pose get N(d_app); the gait row is normalised over the items that have gait."""
    rng = np.random.default_rng(2)
    gallery, g = build_index(tmp_path, rng, sizes=(6, 5), no_pose=(1, 4))
    q = records(rng, 3, no_pose=(2,))
    m = search(q, gallery, top=11, fusion=FusionSpec("score", weight=0.6, norm="minmax"))
    d_app, d_gait = brute_distances(q, g)
    e_app, e_gait = np.sqrt(d_app), np.sqrt(d_gait)
    valid = g["has_pose"]
    expected = normalize_rows(e_app)
    for i in (0, 1):  # queries with a pose
        n_gait = normalize_rows(e_gait[i:i + 1, valid])[0]
        expected[i, valid] = 0.4 * normalize_rows(e_app)[i, valid] + 0.6 * n_gait
    np.testing.assert_allclose(np.take_along_axis(expected, m.index, 1), m.fused, atol=1e-12)
    assert m.appearance_only[2].all() and (m.appearance_only[0] == ~valid[m.index[0]]).all()


def test_ties_are_broken_by_gallery_index_and_ranks_count_them():
    row = np.array([3.0, 1.0, 2.0, 1.0, 1.0, 0.5, 2.0])
    assert smallest_k(row, 3).tolist() == [5, 1, 3]
    assert smallest_k(row, 5).tolist() == [5, 1, 3, 4, 2]
    rng = np.random.default_rng(3)
    for _ in range(50):
        r = rng.integers(0, 4, 30).astype(float)
        k = int(rng.integers(1, 31))
        assert smallest_k(r, k).tolist() == np.argsort(r, kind="stable")[:k].tolist()
    assert ranks_of(row, np.array([3, 0, 5])).tolist() == [3, 7, 1]
    assert ranks_of(row, np.array([3]), valid=np.array([1, 0, 1, 1, 1, 0, 1], bool)).tolist() == [1]


def test_known_ids_are_evaluated_by_gafnet_metrics(tmp_path):
    rng = np.random.default_rng(4)
    pids = np.arange(12) % 6
    gallery, g = build_index(tmp_path, rng, sizes=(12,), pids=pids, cams=np.full(12, 2))
    q = records(rng, 6, pids=np.arange(6), cams=np.ones(6))
    q["appearance"] = g["appearance"][:6] + 0.3 * rng.normal(size=(6, 6)).astype(np.float32)
    m = search(q, gallery, top=3, fusion=FusionSpec("concat", 0.5), budget_bytes=1)
    d_app, d_gait = brute_distances(q, g)
    full = (d_app + 0.25 * d_gait) / 1.25
    ref = rank_queries(full, np.arange(6), pids, np.ones(6), np.full(12, 2), max_rank=12)
    np.testing.assert_array_equal(m.evaluation.first_match_rank, ref.first_match_rank)
    assert m.evaluation.mAP == pytest.approx(ref.mAP) and m.evaluation.cmc[0] == ref.cmc[0]


def test_a_query_that_is_in_the_gallery_does_not_find_itself(tmp_path):
    """Queries taken from the gallery (the same sources): each is left out of its own ranking, ranks and metrics,
    which then equal those of the gallery without it, computed by brute force."""
    rng = np.random.default_rng(6)
    pids, cams = np.arange(10) % 5, np.full(10, -1)  # folders: persons known, cameras unknown
    gallery, g = build_index(tmp_path, rng, sizes=(10,), pids=pids, cams=cams)
    take = np.array([0, 3, 7])
    q = {key: (value[take] if key in ("appearance", "gait", "has_pose", "gait_padded", "frames", "pose_frames",
                                      "person_id", "camera_id", "source") else value) for key, value in g.items()}
    m = search(q, gallery, top=9, fusion=FusionSpec("concat", 0.74), budget_bytes=1)
    assert m.itself.tolist() == [1, 1, 1] and m.index.shape == (3, 9)
    d_app, d_gait = brute_distances(q, g)
    full = (d_app + 0.74 ** 2 * d_gait) / (1 + 0.74 ** 2)
    first, ap = [], []
    for i, j in enumerate(take):
        others = np.delete(np.arange(10), j)
        assert j not in m.index[i]
        np.testing.assert_array_equal(m.index[i], others[np.argsort(full[i, others], kind="stable")])
        app_rank = np.argsort(np.argsort(d_app[i, others], kind="stable"), kind="stable") + 1
        np.testing.assert_array_equal(m.appearance_rank[i], app_rank[np.searchsorted(others, m.index[i])])
        ref = rank_queries(full[i:i + 1, others], pids[[j]], pids[others], np.full(1, -1000), np.full(9, -2000),
                           max_rank=9)
        first.append(ref.first_match_rank[0])
        ap.append(ref.average_precision[0])
    assert sorted(m.evaluation.first_match_rank.tolist()) == sorted(first)
    assert m.evaluation.mAP == pytest.approx(np.mean(ap)) and m.evaluation.mAP < 1.0
    with pytest.raises(InputError, match="holds nothing but the queries themselves"):
        one, g1 = build_index(tmp_path, rng, sizes=(1,), name="one")
        search({**g1}, one, top=3)


def test_search_refuses_bad_requests(tmp_path):
    rng = np.random.default_rng(5)
    gallery, _ = build_index(tmp_path, rng, sizes=(3,))
    with pytest.raises(InputError, match="--top must be at least 1"):
        search(records(rng, 1), gallery, top=0)
    with pytest.raises(InputError, match="appearance embeddings have 5 dimensions"):
        search(records(rng, 1, app_dim=5), gallery, top=1)
    with pytest.raises(InputError, match="needs --weight"):
        FusionSpec("score").check()
    with pytest.raises(InputError, match="--weight must be from 0 to 1"):
        FusionSpec("score", weight=1.5).check()


# ------------------------------------------------------------------------------------------------- the index
def test_index_parts_read_back_memory_mapped_and_in_chunks(tmp_path):
    rng = np.random.default_rng(6)
    gallery, g = build_index(tmp_path, rng, sizes=(5, 2, 9))
    assert len(gallery) == 16 and [p.count for p in gallery.parts] == [5, 2, 9]
    assert isinstance(gallery.parts[0].arrays["appearance"], np.memmap)
    got = list(gallery.chunks(("appearance", "gait"), rows=4))
    assert [(s, len(c["gait"])) for s, c in got] == [(0, 4), (4, 4), (8, 4), (12, 4)]  # parts joined or cut
    np.testing.assert_array_equal(np.concatenate([c["appearance"] for _, c in got]), g["appearance"])
    rec = gallery.record(6)  # second part, second row
    assert rec["source"] == str(g["source"][6]) and rec["input"] == "video1.mp4"
    b0, b1 = g["box_offsets"][6], g["box_offsets"][7]
    np.testing.assert_array_equal(rec["boxes"], g["boxes"][b0:b1])
    header = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert header["format"] == "gafnet-reid-index" and header["version"] == 2 and header["app_dim"] == 6


def test_a_changed_input_replaces_its_part_and_unchanged_ones_are_found(tmp_path):
    video = tmp_path / "cam2.mp4"
    video.write_bytes(b"one")
    writer = IndexWriter(tmp_path / "idx", MODELS)
    rng = np.random.default_rng(7)
    writer.add(records(rng, 3), {"input": str(video), "identity": reid_index.input_identity(video)})
    again = IndexWriter(tmp_path / "idx", MODELS)
    assert again.done(video) is not None and again.stale(video) == []
    video.write_bytes(b"changed")
    assert again.done(video) is None
    stale = again.stale(video)
    again.add(records(rng, 2), {"input": str(video), "identity": reid_index.input_identity(video)}, replaces=stale)
    gallery = GalleryIndex.open(tmp_path / "idx")
    assert len(gallery) == 2 and [p.id for p in gallery.parts] == [2]
    assert not (tmp_path / "idx" / "parts" / "000001").exists()


def test_damaged_foreign_or_other_version_indexes_are_refused_in_one_line(tmp_path):
    rng = np.random.default_rng(8)
    build_index(tmp_path, rng, sizes=(4,))
    idx = tmp_path / "idx"
    header = json.loads((idx / "index.json").read_text())

    def refused(match):
        with pytest.raises(InputError, match=match):
            GalleryIndex.open(idx)

    (idx / "index.json").write_text(json.dumps({**header, "version": 1}))
    refused("written by reid index version 1, this code reads version 2")
    (idx / "index.json").write_text('{"format": "gafnet-reid-index", "version": 2, "mo')
    refused("corrupt reid index header")
    (idx / "index.json").write_text(json.dumps({**header, "parts": "x"}))
    refused("corrupt reid index header")
    (idx / "index.json").write_text(json.dumps(header))
    app = idx / "parts" / "000001" / "appearance.npy"
    data = app.read_bytes()
    app.write_bytes(data[:-10])
    refused(r"appearance.npy has \d+ bytes, the header says")
    app.write_bytes(b"x" * len(data))
    refused("appearance.npy is not a readable array")
    np.save(app, np.zeros((4, 7), np.float32))
    header["parts"][0]["files"]["appearance"] = app.stat().st_size
    (idx / "index.json").write_text(json.dumps(header))
    refused(r"appearance.npy has shape \(4, 7\), expected \(4, 6\)")
    app.unlink()
    refused("appearance.npy is missing")
    old = tmp_path / "gallery.npz"
    np.savez(old, header=np.asarray("{}"))
    with pytest.raises(InputError, match="one-file index of an older reid.py"):
        GalleryIndex.open(old)
    with pytest.raises(InputError, match="not a reid index \\(no index.json"):
        GalleryIndex.open(tmp_path)


def test_an_index_refuses_other_models_naming_both_and_other_folders(tmp_path):
    rng = np.random.default_rng(9)
    build_index(tmp_path, rng, sizes=(2,))
    other = {**MODELS, "appearance": {"model": "osnet_x1_0", "weights_sha256": "cd" * 32, "config": {"seq_len": 0}}}
    with pytest.raises(InputError, match=r"built with appearance 'colour' \(no weights file\) but this run uses "
                                         r"'osnet_x1_0' \(weights sha256 cdcdcdcdcdcd\)"):
        IndexWriter(tmp_path / "idx", other)
    no_gait = {**MODELS, "gait": {"model": "off", "weights_sha256": None, "preprocessing": None}}
    with pytest.raises(InputError, match="built with gait 'GaitGraph resgcn-n39-r8'.*this run uses gait 'off'"):
        IndexWriter(tmp_path / "idx", no_gait)  # adding needs the same gait
    assert models_differ(MODELS, no_gait, "idx") is None  # searching with gait off: appearance alone
    other_gait = {**MODELS, "gait": {**MODELS["gait"], "weights_sha256": "ef" * 32}}
    assert "weights sha256 efefefefefef" in models_differ(MODELS, other_gait, "idx")
    assert "built without gait" in models_differ(no_gait, MODELS, "idx")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="busy exists and is not a reid index.*nothing is deleted"):
        IndexWriter(busy, MODELS)
    assert (busy / "notes.txt").read_text() == "mine"


def test_a_new_index_appears_only_with_its_first_part(tmp_path):
    writer = IndexWriter(tmp_path / "new", MODELS)
    writer.abandon()
    assert list(tmp_path.iterdir()) == []  # no part: nothing written, no temporary left
    writer = IndexWriter(tmp_path / "new", MODELS)
    writer.add(records(np.random.default_rng(0), 1), {"input": "a"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]
    assert GalleryIndex.open(tmp_path / "new").header["parts"][0]["count"] == 1
