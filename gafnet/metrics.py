"""CMC and mAP for re-identification: one implementation, torchreid's protocol, no full sort.

Semantics are those of torchreid's ``eval_market1501`` (``torchreid.metrics.rank``):

- the gallery is ranked by ascending distance for each query;
- gallery items with the same person id AND the same camera as the query are removed ("junk");
- a query with no remaining match (same pid, other camera) is skipped and counted as invalid;
- ``cmc[k]`` is the fraction of valid queries whose first match is within the top ``k + 1``;
- AP is the mean over the query's matches of the precision at each match's rank; mAP is the mean AP
  over valid queries.

Ties in distance are broken by gallery index (lower index ranks first), i.e. the order of a stable
sort. torchreid uses NumPy's default (unstable) argsort, so on exact ties the two can differ; on
distinct distances they agree exactly.

Speed. Nothing is fully sorted: the 0-based rank of a match among the valid gallery items equals the
number of valid items that precede it. For every query the match distances (a handful) are sorted,
and every gallery distance is bucketed between them with ``searchsorted``; a cumulative count of the
buckets gives every match's rank. Work is O(G log M) per query, queries are processed in chunks on two
threads, so memory stays bounded (``chunk_bytes``) whatever the gallery size. The module needs NumPy
only (no torch import), which keeps the root evaluate.py fast to start; torch tensors are accepted.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .errors import InputError

__all__ = ["RankResult", "evaluate_rank", "rank_queries", "rank_features", "squared_euclidean", "summarise",
           "as_id_array", "as_feature_array", "mean_cosine_similarity", "collapse_warning", "over_all_queries", "summarise_blocks"]

DEFAULT_CHUNK_BYTES = 256 * 2**20


@dataclass
class RankResult:
    """Outcome of ranking: ``cmc`` (max_rank,) float32 fractions, ``mAP`` fraction, per-query details."""

    cmc: np.ndarray
    mAP: float
    num_valid: int  # queries with at least one valid match
    num_queries: int
    first_match_rank: np.ndarray  # (num_queries,) 0-based rank of the first match, -1 for invalid queries
    average_precision: np.ndarray  # (num_queries,) AP, NaN for invalid queries

    @property
    def valid(self) -> np.ndarray:
        return self.first_match_rank >= 0


def _to_numpy(values):
    if hasattr(values, "detach"):  # a torch tensor, on any device
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def as_id_array(name: str, values, length: int | None = None, what: str = "the distance matrix needs") -> np.ndarray:
    """1-D int64 ids (integral floats accepted); InputError naming ``name`` otherwise."""
    arr = _to_numpy(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise InputError(f"{name} has {arr.shape[0]} entries but {what} {length}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def as_feature_array(name: str, values) -> np.ndarray:
    """2-D floating array (NumPy or torch input); InputError naming ``name`` otherwise."""
    arr = _to_numpy(values)
    if arr.ndim != 2:
        raise InputError(f"{name} must be 2-D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


class _GalleryIndex:
    """Gallery items grouped by person id, so a query's same-pid items are found without a (c, G) mask."""

    def __init__(self, g_pids: np.ndarray, g_camids: np.ndarray):
        self.order = np.argsort(g_pids, kind="stable")  # within one pid, ascending gallery index
        self.sorted_pids = g_pids[self.order]
        self.g_pids, self.g_camids = g_pids, g_camids

    def same_pid_pairs(self, q_pids: np.ndarray):
        """(row, gallery column) for every gallery item sharing the query's pid, columns ascending per row."""
        start = np.searchsorted(self.sorted_pids, q_pids, side="left")
        count = np.searchsorted(self.sorted_pids, q_pids, side="right") - start
        rows = np.repeat(np.arange(q_pids.shape[0]), count)
        offset = np.arange(rows.shape[0]) - np.repeat(np.cumsum(count) - count, count)
        cols = self.order[np.repeat(start, count) + offset]
        return rows, cols


SMALL_MATCH_COUNT = 8  # up to this many matches per query, compare against each match; beyond, searchsorted


def _same_pid_before(dist, thr, match_col, same_rows, same_cols) -> np.ndarray:
    """(c, m) how many same-pid items (matches, junk) precede each match in (distance, index) order."""
    c, m = thr.shape
    d = dist[same_rows, same_cols][:, None]  # (P, 1)
    t, mc = thr[same_rows], match_col[same_rows]  # (P, m)
    before = (d < t) | ((d == t) & (same_cols[:, None] < mc))  # (P, m)
    out = np.zeros((c, m), dtype=np.int64)
    np.add.at(out, same_rows, before.astype(np.int64))
    return out


def _preceding_few(dist, thr, match_col, same_rows, same_cols) -> np.ndarray:
    """(c, m) valid non-matches before each match: one pass per match column (iLIDS-VID has one match)."""
    c, m = thr.shape
    columns = np.arange(dist.shape[1])
    before = np.empty((c, m), dtype=np.int64)
    for k in range(m):
        t = thr[:, k:k + 1]
        before[:, k] = np.count_nonzero(dist < t, axis=1)
        equal = dist == t
        rows = np.nonzero(np.count_nonzero(equal, axis=1) > 1)[0]  # ties beyond the match itself
        if rows.size:  # an item tied with the match precedes it iff its gallery index is lower
            before[rows, k] += np.count_nonzero(equal[rows] & (columns < match_col[rows, k:k + 1]), axis=1)
    return before - _same_pid_before(dist, thr, match_col, same_rows, same_cols)


def _preceding_many(dist, thr, match_col, same_rows, same_cols) -> np.ndarray:
    """(c, m) valid non-matches before each match: each row's items bucketed between its sorted match distances.

    Row by row (small temporaries that stay in cache): the bucket of an item is the number of matches closer
    than it; an item whose distance equals the next match's is moved past the tied matches with a higher
    gallery index; a count of items per bucket, minus the same-pid items (matches, junk), gives the answer.
    """
    c, m = thr.shape
    padded = np.concatenate([thr, np.full((c, 1), np.inf, dtype=thr.dtype)], axis=1)  # (c, m + 1)
    row_start = np.searchsorted(same_rows, np.arange(c + 1))  # same_rows is ascending
    out = np.empty((c, m), dtype=np.int64)
    for r in range(c):
        row, limits = dist[r], padded[r]
        bucket = np.searchsorted(thr[r], row, side="left")
        cols = same_cols[row_start[r]:row_start[r + 1]]
        tied = limits[bucket] == row  # the item's distance equals the next match's
        tied[cols] = False  # same-pid items are taken out below
        if tied.any():  # equal distances: an item precedes a tied match iff its gallery index is lower
            tc = np.flatnonzero(tied)
            k, value = bucket[tc], row[tc]
            moved = k.copy()
            while True:
                inside = (k < m) & (limits[np.minimum(k, m)] == value)
                if not inside.any():
                    break
                moved += inside & (match_col[r, np.minimum(k, m - 1)] < tc)
                k = k + 1
            bucket[tc] = moved
        counts = np.bincount(bucket, minlength=m + 1)
        counts -= np.bincount(bucket[cols], minlength=m + 1)
        out[r] = np.cumsum(counts[:m])
    return out


def _rank_chunk(dist: np.ndarray, q_pids, q_camids, gallery: _GalleryIndex):
    """Ranks of the matches for a chunk of queries.

    dist: (c, G) distances. Returns (first_rank (c,), ap (c,)): first_rank = -1 and ap = NaN for queries
    without a valid match. Items with the query's pid (matches and same-camera junk) are handled
    sparsely; every other item is a valid non-match.
    """
    c, num_g = dist.shape
    first_rank = np.full(c, -1, dtype=np.int64)
    ap = np.full(c, np.nan, dtype=np.float64)
    same_rows, same_cols = gallery.same_pid_pairs(q_pids)
    is_match = gallery.g_camids[same_cols] != q_camids[same_rows]  # same pid, other camera
    rows, cols = same_rows[is_match], same_cols[is_match]  # columns ascending within a row
    num_match = np.bincount(rows, minlength=c)
    has = num_match > 0
    if not has.any():
        return first_rank, ap
    m_max = int(num_match.max())

    # Padded (c, m_max) match thresholds sorted by (distance, gallery index); pads are +inf / index G.
    slot = np.arange(rows.shape[0]) - (np.cumsum(num_match) - num_match)[rows]
    match_col = np.full((c, m_max), num_g, dtype=np.int64)
    match_col[rows, slot] = cols
    thr = np.full((c, m_max), np.inf, dtype=dist.dtype)
    thr[rows, slot] = dist[rows, cols]
    order = np.argsort(thr, axis=1, kind="stable")  # equal distances keep ascending gallery index
    thr = np.take_along_axis(thr, order, axis=1)
    match_col = np.take_along_axis(match_col, order, axis=1)

    if m_max <= SMALL_MATCH_COUNT:
        preceding = _preceding_few(dist, thr, match_col, same_rows, same_cols)
    else:
        preceding = _preceding_many(dist, thr, match_col, same_rows, same_cols)
    # Rank (0-based) of the k-th match = k earlier matches + the valid non-matches before it.
    k_idx = np.arange(m_max, dtype=np.int64)[None, :]
    ranks = k_idx + preceding  # (c, m_max)
    real = k_idx < num_match[:, None]
    first_rank[has] = ranks[has, 0]
    precision = np.where(real, (k_idx + 1) / (ranks + 1.0), 0.0)
    ap[has] = precision[has].sum(1) / num_match[has]
    return first_rank, ap


def summarise(first_rank: np.ndarray, ap: np.ndarray, max_rank: int) -> RankResult:
    """CMC and mAP from per-query first-match ranks (-1 = invalid query) and average precisions."""
    valid = first_rank >= 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise InputError("no query has a valid match in the gallery (same person id seen by another camera); "
                         "check that query and gallery hold the same identities and camera ids")
    hist = np.bincount(first_rank[valid], minlength=max_rank)[:max_rank]
    cmc = (np.cumsum(hist) / num_valid).astype(np.float32)
    return RankResult(cmc=cmc, mAP=float(np.mean(ap[valid])), num_valid=num_valid,
                      num_queries=int(first_rank.shape[0]), first_match_rank=first_rank, average_precision=ap)


def summarise_blocks(first_rank: np.ndarray, ap: np.ndarray, max_rank: int, blocks: int) -> list[RankResult]:
    """:func:`summarise` of each of ``blocks`` equal consecutive blocks of queries, in one vectorised pass.

    For a grid of fusion parameters ranked as stacked query blocks: block i holds the queries at value i.
    """
    first = first_rank.reshape(blocks, -1)
    precision = ap.reshape(blocks, -1)
    nq = first.shape[1]
    valid = first >= 0
    num_valid = valid.sum(axis=1)
    if (num_valid == 0).any():
        raise InputError("no query has a valid match in the gallery (same person id seen by another camera); "
                         "check that query and gallery hold the same identities and camera ids")
    rows = np.repeat(np.arange(blocks), nq)[valid.ravel()]
    capped = np.minimum(first[valid], max_rank)  # ranks beyond max_rank fall in a last, dropped bin
    hist = np.bincount(rows * (max_rank + 1) + capped, minlength=blocks * (max_rank + 1)).reshape(blocks, -1)
    cmc = (np.cumsum(hist[:, :max_rank], axis=1) / num_valid[:, None]).astype(np.float32)
    mAP = np.where(valid, precision, 0.0).sum(axis=1) / num_valid
    return [RankResult(cmc=cmc[i], mAP=float(mAP[i]), num_valid=int(num_valid[i]), num_queries=nq,
                       first_match_rank=first[i], average_precision=precision[i]) for i in range(blocks)]


def over_all_queries(result: RankResult) -> RankResult:
    """CMC and mAP averaged over ALL queries, a query without a valid match counting as a miss with AP 0.

    The MARS MATLAB protocol's averaging (torchreid's skips such queries instead).
    """
    share = result.num_valid / result.num_queries
    ap = np.where(result.valid, result.average_precision, 0.0)
    return RankResult(cmc=(result.cmc * share).astype(np.float32), mAP=float(ap.mean()), num_valid=result.num_valid,
                      num_queries=result.num_queries, first_match_rank=result.first_match_rank, average_precision=ap)


def _chunk_rows(num_g: int, chunk_bytes: int) -> int:
    # ~ 24 bytes per (query, gallery) cell: distances, buckets, a tie mask, a gathered copy.
    return max(1, int(chunk_bytes // (24 * max(num_g, 1))))


def _rank_in_chunks(num_q: int, num_g: int, chunk_distances, q_pids, q_camids, gallery: _GalleryIndex,
                    max_rank: int, chunk_bytes: int, check_finite: bool = True) -> RankResult:
    """Rank queries chunk by chunk; ``chunk_distances(start, stop)`` returns a (stop-start, G) array.

    Chunks run on two threads (NumPy releases the GIL in the heavy calls); the memory budget
    ``chunk_bytes`` is shared between them.
    """
    workers = max(1, min(2, os.cpu_count() or 1))
    step = _chunk_rows(num_g, chunk_bytes // workers)
    first = np.empty(num_q, dtype=np.int64)
    ap = np.empty(num_q, dtype=np.float64)

    def run(start: int) -> None:
        stop = min(start + step, num_q)
        d = np.ascontiguousarray(chunk_distances(start, stop))
        if check_finite and not np.isfinite(d.sum()) and not np.isfinite(d).all():  # cheap test first
            bad = int(np.nonzero(~np.isfinite(d))[0][0]) + start
            raise InputError(f"distances of query {bad} hold NaN or inf; check the features")
        first[start:stop], ap[start:stop] = _rank_chunk(d, q_pids[start:stop],
                                                        q_camids[start:stop], gallery)

    starts = range(0, num_q, step)
    if workers == 1 or len(starts) == 1:
        for start in starts:
            run(start)
    else:  # one BLAS thread per worker: two workers already use both cores, more threads only contend
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(run, start) for start in starts]:
                future.result()
    return summarise(first, ap, min(max_rank, num_g))  # as torchreid: the CMC is no longer than the gallery


def _check_ids(num_q: int, num_g: int, q_pids, g_pids, q_camids, g_camids):
    return (as_id_array("q_pids", q_pids, num_q), as_id_array("g_pids", g_pids, num_g),
            as_id_array("q_camids", q_camids, num_q), as_id_array("g_camids", g_camids, num_g))


def rank_queries(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, check_finite: bool = True) -> RankResult:
    """Rank a (num_q, num_g) distance matrix (NumPy array or torch tensor); see the module docstring.

    ``check_finite=False`` skips the NaN/inf test, for callers whose distances are finite by construction.
    """
    dist = as_feature_array("distmat", distmat)
    num_q, num_g = dist.shape
    q_pids, g_pids, q_camids, g_camids = _check_ids(num_q, num_g, q_pids, g_pids, q_camids, g_camids)
    return _rank_in_chunks(num_q, num_g, lambda a, b: dist[a:b], q_pids, q_camids,
                           _GalleryIndex(g_pids, g_camids), max_rank, chunk_bytes, check_finite)


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50):
    """CMC and mAP with torchreid's argument names and semantics: returns ``(cmc, mAP)``.

    ``cmc`` is a float32 array of length ``max_rank`` (fractions), ``mAP`` a float fraction.
    Use :func:`rank_queries` for the number of valid queries and per-query details.
    """
    result = rank_queries(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
    return result.cmc, result.mAP


def squared_euclidean(qf: np.ndarray, gf: np.ndarray, gf_sq: np.ndarray | None = None) -> np.ndarray:
    """(num_q, num_g) squared Euclidean distances ||q||² + ||g||² − 2 q·g, clamped at 0."""
    q_sq = np.einsum("ij,ij->i", qf, qf)
    if gf_sq is None:
        gf_sq = np.einsum("ij,ij->i", gf, gf)
    dist = qf @ gf.T
    dist *= -2
    dist += q_sq[:, None]
    dist += gf_sq[None, :]
    return np.maximum(dist, 0, out=dist)


def rank_features(qf, gf, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
                  chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> RankResult:
    """Squared-Euclidean distances computed chunk by chunk and ranked; never holds the full matrix.

    For galleries too large for a full distance matrix (e.g. 10,000 × 100,000).
    """
    qf, gf = as_feature_array("query features", qf), as_feature_array("gallery features", gf)
    if qf.shape[1] != gf.shape[1]:
        raise InputError(f"query features {qf.shape} and gallery features {gf.shape} must have the same dimension")
    num_q, num_g = qf.shape[0], gf.shape[0]
    q_pids, g_pids, q_camids, g_camids = _check_ids(num_q, num_g, q_pids, g_pids, q_camids, g_camids)
    gf_sq = np.einsum("ij,ij->i", gf, gf)
    return _rank_in_chunks(num_q, num_g, lambda a, b: squared_euclidean(qf[a:b], gf, gf_sq), q_pids,
                           q_camids, _GalleryIndex(g_pids, g_camids), max_rank, chunk_bytes)


COLLAPSE_COSINE = 0.999  # mean cosine similarity above which embeddings are reported as collapsed


def _row_blocks(features) -> list[np.ndarray]:
    """A 2-D array, or a list/tuple of 2-D arrays with the same width (rows stacked), as a list of blocks."""
    blocks = list(features) if isinstance(features, (list, tuple)) else [features]
    return [as_feature_array("features", b) for b in blocks]


def mean_cosine_similarity(features, block: int = 4096, unit_rows: bool = False) -> float:
    """Mean cosine similarity over all pairs of distinct rows, in O(N·D) time and O(D) extra memory.

    For unit rows u_i, |Σ u_i|² = N + Σ_{i≠j} u_i·u_j, so the mean over the N(N−1) ordered pairs is
    (|Σ u_i|² − N) / (N(N−1)). Zero rows count as orthogonal to everything. NaN for fewer than two rows.
    ``features``: a 2-D array or a list of them (their rows together); ``unit_rows``: they are L2-normalised
    already (then only summed).
    """
    blocks = _row_blocks(features)
    n = sum(b.shape[0] for b in blocks)
    if n < 2:
        return float("nan")
    total = np.zeros(blocks[0].shape[1], dtype=np.float64)
    units = 0
    if unit_rows:
        for b in blocks:
            total += b.sum(axis=0, dtype=np.float64)
        return float((total @ total - n) / (n * (n - 1)))
    for b in blocks:
        for a in range(0, b.shape[0], block):
            part = b[a:a + block].astype(np.float64)
            norms = np.sqrt(np.einsum("ij,ij->i", part, part))
            ok = norms > 0
            total += (part[ok] / norms[ok, None]).sum(axis=0)
            units += int(ok.sum())
    return float((total @ total - units) / (n * (n - 1)))


def collapse_warning(features, what: str, threshold: float = COLLAPSE_COSINE, unit_rows: bool = False) -> str | None:
    """A one-line warning when the embeddings are (nearly) all the same direction, else None.

    Collapsed embeddings rank every gallery item alike (chance-level Rank-1) and add nothing to a fusion;
    typical causes: too few training epochs, too high a learning rate, raw pixel coordinates that let the
    network separate samples by position (try ``--normalize_pose sequence``).
    """
    cos = mean_cosine_similarity(features, unit_rows=unit_rows)
    if not np.isfinite(cos) or cos <= threshold:
        return None
    x = np.concatenate([b.astype(np.float64) for b in _row_blocks(features)])  # rare: collapsed embeddings
    spread = float(np.std(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), axis=0).max())
    return (f"warning: {what}: the embeddings have collapsed: mean cosine similarity between them {cos:.7f} "
            f"(1 = identical), largest per-dimension spread {spread:.2e}; they carry (almost) no identity "
            "information (see the README, 'When gait embeddings collapse')")
