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
and every gallery distance is bucketed between them with one batched ``searchsorted``; a cumulative
count of the buckets gives every match's rank. Work is O(G log M) per query and queries are processed
in chunks, so memory stays bounded (``chunk_bytes``) whatever the gallery size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError

__all__ = ["RankResult", "evaluate_rank", "rank_queries", "rank_features", "squared_euclidean"]

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


def _as_1d_int(name: str, values, length: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise InputError(f"{name} has {arr.shape[0]} entries but the distance matrix needs {length}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _rank_chunk(dist: torch.Tensor, q_pids, g_pids, q_camids, g_camids):
    """Ranks of the matches for a chunk of queries.

    dist: (c, G) distances. Returns (first_rank (c,), ap (c,)) as float64 numpy, first_rank = -1 and
    ap = NaN for queries without a valid match.
    """
    c, num_g = dist.shape
    same_pid = q_pids[:, None] == g_pids[None, :]  # (c, G)
    same_cam = q_camids[:, None] == g_camids[None, :]  # (c, G)
    match = same_pid & ~same_cam  # (c, G) valid matches
    nonmatch = ~same_pid  # (c, G) valid non-matches (junk = same pid & same cam is neither)
    num_match = match.sum(1)  # (c,)
    first_rank = np.full(c, -1, dtype=np.int64)
    ap = np.full(c, np.nan, dtype=np.float64)
    has = num_match > 0
    if not has.any():
        return first_rank, ap
    m_max = int(num_match.max())

    # Padded (c, m_max) match thresholds sorted by (distance, gallery index); pads are +inf / index G.
    rows, cols = np.nonzero(match)  # row-major: cols ascending within a row
    starts = np.zeros(c + 1, dtype=np.int64)
    np.cumsum(num_match, out=starts[1:])
    slot = np.arange(rows.shape[0]) - starts[rows]
    match_col = np.full((c, m_max), num_g, dtype=np.int64)
    match_col[rows, slot] = cols
    rows_t = torch.from_numpy(rows)
    thr = torch.full((c, m_max), float("inf"), dtype=dist.dtype)
    thr[rows_t, torch.from_numpy(slot)] = dist[rows_t, torch.from_numpy(cols)]
    order = torch.argsort(thr, dim=1, stable=True)  # stable: equal distances keep ascending gallery index
    thr = torch.gather(thr, 1, order).contiguous()
    match_col = np.take_along_axis(match_col, order.numpy(), axis=1)

    # Bucket of each gallery item: how many matches strictly precede it in (distance, index) order.
    lt = torch.searchsorted(thr, dist, right=False)  # (c, G) matches with distance < item's
    le = torch.searchsorted(thr, dist, right=True)  # (c, G) matches with distance <= item's
    bucket = lt.numpy().astype(np.int64, copy=True)
    tied = (le != lt).numpy() & nonmatch
    if tied.any():  # equal distances: the item precedes a tied match iff its gallery index is lower
        tr, tc = np.nonzero(tied)
        lo, hi = bucket[tr, tc], le.numpy()[tr, tc]
        extra = np.zeros(tr.shape[0], dtype=np.int64)
        for j in range(int((hi - lo).max())):
            k = lo + j
            inside = k < hi
            kk = np.minimum(k, m_max - 1)
            extra += inside & (match_col[tr, kk] < tc)
        bucket[tr, tc] = lo + extra
    # Count valid non-matches per bucket; non-valid items go to a discarded bucket m_max + 1.
    bucket[~nonmatch] = m_max + 1
    flat = bucket + (np.arange(c, dtype=np.int64) * (m_max + 2))[:, None]
    counts = np.bincount(flat.ravel(), minlength=c * (m_max + 2)).reshape(c, m_max + 2)
    # Rank (0-based) of the k-th match = k earlier matches + non-matches in buckets 0..k.
    k_idx = np.arange(m_max, dtype=np.int64)[None, :]
    ranks = k_idx + np.cumsum(counts[:, :m_max], axis=1)  # (c, m_max)
    real = k_idx < num_match[:, None]
    first_rank[has] = ranks[has, 0]
    precision = np.where(real, (k_idx + 1) / (ranks + 1.0), 0.0)
    ap[has] = precision[has].sum(1) / num_match[has]
    return first_rank, ap


def _finish(first_rank: np.ndarray, ap: np.ndarray, max_rank: int) -> RankResult:
    valid = first_rank >= 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise InputError("no query has a valid match in the gallery (same person id seen by another camera); "
                         "check that query and gallery hold the same identities and camera ids")
    hist = np.bincount(first_rank[valid], minlength=max_rank)[:max_rank]
    cmc = (np.cumsum(hist) / num_valid).astype(np.float32)
    return RankResult(cmc=cmc, mAP=float(np.mean(ap[valid])), num_valid=num_valid,
                      num_queries=int(first_rank.shape[0]), first_match_rank=first_rank, average_precision=ap)


def _chunk_rows(num_g: int, chunk_bytes: int) -> int:
    # ~ 40 bytes per (query, gallery) cell: distances, two searchsorted outputs, masks, buckets.
    return max(1, int(chunk_bytes // (40 * max(num_g, 1))))


def rank_queries(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> RankResult:
    """Rank a (num_q, num_g) distance matrix (numpy or torch); see the module docstring."""
    dist = distmat if isinstance(distmat, torch.Tensor) else torch.from_numpy(np.asarray(distmat))
    if dist.ndim != 2:
        raise InputError(f"distmat must be 2-D (num_query, num_gallery), got shape {tuple(dist.shape)}")
    dist = dist.detach().cpu()
    if not dist.is_floating_point():
        dist = dist.double()
    num_q, num_g = dist.shape
    q_pids = _as_1d_int("q_pids", q_pids, num_q)
    g_pids = _as_1d_int("g_pids", g_pids, num_g)
    q_camids = _as_1d_int("q_camids", q_camids, num_q)
    g_camids = _as_1d_int("g_camids", g_camids, num_g)
    if num_g < max_rank:  # as torchreid: the CMC cannot be longer than the gallery
        max_rank = num_g
    first = np.empty(num_q, dtype=np.int64)
    ap = np.empty(num_q, dtype=np.float64)
    step = _chunk_rows(num_g, chunk_bytes)
    for s in range(0, num_q, step):
        d = dist[s:s + step]
        if not torch.isfinite(d).all():
            bad = int(torch.nonzero(~torch.isfinite(d))[0, 0]) + s
            raise InputError(f"distance matrix row {bad} holds NaN or inf; check the features")
        first[s:s + step], ap[s:s + step] = _rank_chunk(d.contiguous(), q_pids[s:s + step], g_pids,
                                                        q_camids[s:s + step], g_camids)
    return _finish(first, ap, max_rank)


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50):
    """CMC and mAP with torchreid's argument names and semantics: returns ``(cmc, mAP)``.

    ``cmc`` is a float32 array of length ``max_rank`` (fractions), ``mAP`` a float fraction.
    Use :func:`rank_queries` for the number of valid queries and per-query details.
    """
    result = rank_queries(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
    return result.cmc, result.mAP


def squared_euclidean(qf: torch.Tensor, gf: torch.Tensor, gf_sq: torch.Tensor | None = None) -> torch.Tensor:
    """(num_q, num_g) squared Euclidean distances ||q||² + ||g||² − 2 q·g, clamped at 0."""
    q_sq = (qf * qf).sum(1, keepdim=True)
    if gf_sq is None:
        gf_sq = (gf * gf).sum(1)
    return torch.addmm(q_sq + gf_sq[None, :], qf, gf.t(), alpha=-2.0).clamp_(min=0)


def rank_features(qf, gf, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
                  chunk_bytes: int = DEFAULT_CHUNK_BYTES, device: torch.device | str | None = None) -> RankResult:
    """Squared-Euclidean distances computed chunk by chunk and ranked; never holds the full matrix.

    For galleries too large for a full distance matrix (e.g. 10,000 × 100,000).
    """
    qf = torch.as_tensor(qf)
    gf = torch.as_tensor(gf)
    if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1]:
        raise InputError(f"query features {tuple(qf.shape)} and gallery features {tuple(gf.shape)} "
                         "must be 2-D with the same dimension")
    device = torch.device(device) if device is not None else qf.device
    qf, gf = qf.to(device), gf.to(device)
    num_q, num_g = qf.shape[0], gf.shape[0]
    q_pids = _as_1d_int("q_pids", q_pids, num_q)
    g_pids = _as_1d_int("g_pids", g_pids, num_g)
    q_camids = _as_1d_int("q_camids", q_camids, num_q)
    g_camids = _as_1d_int("g_camids", g_camids, num_g)
    max_rank = min(max_rank, num_g)
    gf_sq = (gf * gf).sum(1)
    first = np.empty(num_q, dtype=np.int64)
    ap = np.empty(num_q, dtype=np.float64)
    step = _chunk_rows(num_g, chunk_bytes)
    for s in range(0, num_q, step):
        d = squared_euclidean(qf[s:s + step], gf, gf_sq).cpu()
        first[s:s + step], ap[s:s + step] = _rank_chunk(d, q_pids[s:s + step], g_pids,
                                                        q_camids[s:s + step], g_camids)
    return _finish(first, ap, max_rank)
