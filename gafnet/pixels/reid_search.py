"""Ranking query tracklets against a gallery index: the paper's Eq. 4 or score-level fusion, exact, memory-bounded.

Distances are the project's (:mod:`gafnet.metrics`, :mod:`gafnet.fusion`): ``squared_euclidean`` of
L2-normalised embeddings, fused with

- ``concat`` (default): the paper's Eq. 4, ``fused_distance(d²_app, d²_gait, λ) = (d²_app + λ²·d²_gait)/(1 + λ²)``,
  the squared distance of the renormalised concatenation [a, λ·g] (GAF-Net, Eq. 4; λ = 0.74 by default);
- ``score``: the sum rule ``score_distance(d_app, d_gait, w, norm) = (1 − w)·N(d_app) + w·N(d_gait)`` of Euclidean
  distances, each query's row normalised over the whole gallery (``normalize_rows``, min-max or z-score).

Exactness with bounded memory. Queries are taken in blocks small enough that a block's distance rows to the
WHOLE gallery fit in ``budget_bytes``; the rows are filled chunk by chunk from the memory-mapped gallery
(:meth:`GalleryIndex.chunks`), so the gallery is never in memory at once, and every per-query operation (the
score fusion's normalisation over the row, the top-k, the ranks, CMC/mAP) sees the complete row: the result
is the one of the unchunked computation (tested equal). The top-k is the ``k`` smallest distances with ties
broken by gallery index, the order of :mod:`gafnet.metrics`. When person ids are known on both sides, CMC and
mAP come from ``gafnet.metrics.rank_queries`` on the same rows.

Missing gait. A query or gallery tracklet without any pose has no gait embedding: such a pair is ranked by
appearance alone (``concat``: d²_app in place of the fused distance; ``score``: N(d_app), the gait row being
normalised over the gallery tracklets that have gait) and marked ``appearance_only``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..fusion import SCORE_NORMS, fused_distance, normalize_rows, score_distance
from ..metrics import rank_queries, squared_euclidean, summarise

DEFAULT_LAMBDA = 0.74
DEFAULT_BUDGET = 256 * 2**20  # bytes of distance rows held at once
DEFAULT_CHUNK = 10000  # gallery tracklets read per step
UNKNOWN = -1
ROW_BYTES = 64  # per (query, gallery) cell: two distance rows, the fused row, the pair mask, temporaries


@dataclass(frozen=True)
class FusionSpec:
    """How the two modalities are combined (see the module docstring)."""

    kind: str = "concat"
    lam: float = DEFAULT_LAMBDA
    weight: float | None = None
    norm: str = "minmax"

    def check(self) -> FusionSpec:
        import math

        if self.kind not in ("concat", "score"):
            raise InputError(f"unknown --fusion {self.kind!r}; use concat or score")
        if not (math.isfinite(self.lam) and 0 <= self.lam <= 1e6):
            raise InputError(f"--lambda_val must be a number from 0 to 1e6, got {self.lam}")
        if self.kind == "score":
            if self.weight is None:
                raise InputError("--fusion score needs --weight W (the gait weight, 0 = appearance only, 1 = gait only)")
            if not (math.isfinite(self.weight) and 0 <= self.weight <= 1):
                raise InputError(f"--weight must be from 0 to 1, got {self.weight}")
            if self.norm not in SCORE_NORMS:
                raise InputError(f"unknown --score_norm {self.norm!r}; use one of {', '.join(SCORE_NORMS)}")
        return self

    def describe(self, with_gait: bool = True) -> dict:
        if not with_gait:
            return {"kind": "appearance only", "distance": "squared Euclidean distance of L2-normalised appearance "
                    "embeddings"}
        if self.kind == "concat":
            return {"kind": "concat", "lambda": self.lam, "distance": "squared Euclidean distances of L2-normalised "
                    "embeddings; fused = (d_app + λ²·d_gait)/(1 + λ²), GAF-Net Eq. 4"}
        return {"kind": "score", "weight": self.weight, "norm": self.norm, "distance": "Euclidean distances of "
                f"L2-normalised embeddings; fused = (1 − w)·N(d_app) + w·N(d_gait), N = per-query {self.norm} "
                "over the gallery (sum rule)"}


@dataclass
class Matches:
    """The top-k of every query (rows of the gallery index) with their distances and ranks.

    ``fused``/``gait``/``gait_rank`` are None when gait is not used; ``gait`` is NaN and ``gait_rank`` −1 for
    appearance-only pairs. Ranks are 1-based over the whole gallery, ties broken by gallery index.
    """

    index: np.ndarray
    fused: np.ndarray | None
    appearance: np.ndarray
    gait: np.ndarray | None
    appearance_rank: np.ndarray
    gait_rank: np.ndarray | None
    appearance_only: np.ndarray
    evaluation: object | None = None  # gafnet.metrics.RankResult over the queries with a known match
    itself: np.ndarray | None = None  # per query: how many gallery tracklets were the query itself (left out)


def unit_rows(x) -> np.ndarray:
    """Rows divided by their L2 norm, in float64; NaN rows (no gait) and zero rows become zeros."""
    x = np.array(x, dtype=np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    bad = ~(norm > 0) | ~np.isfinite(norm)
    x /= np.where(bad, 1.0, norm)[:, None]
    if bad.any():
        x[bad] = 0.0
    return x


def smallest_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest values of ``row``, ascending, ties broken by lower index (exact)."""
    if k >= len(row):
        return np.argsort(row, kind="stable")
    kth = np.partition(row, k - 1)[k - 1]
    below = np.flatnonzero(row < kth)
    tied = np.flatnonzero(row == kth)[: k - len(below)]
    chosen = np.concatenate([below, tied])
    return chosen[np.lexsort((chosen, row[chosen]))]


def ranks_of(row: np.ndarray, columns: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of each of ``columns`` in ``row`` (ties by index), among ``valid`` columns if given."""
    vals = row[columns][:, None]
    cols = np.arange(len(row))[None, :]
    before = (row[None, :] < vals) | ((row[None, :] == vals) & (cols < columns[:, None]))
    if valid is not None:
        before &= valid[None, :]
    return before.sum(axis=1) + 1


def same_source(q_sources, g_sources) -> list[np.ndarray]:
    """Per query, the gallery rows that ARE the query (the same source: video#track or folder, as stored): a
    query searched against a gallery that holds it would otherwise find itself at distance 0."""
    where: dict[str, list[int]] = {}
    wanted = {str(x) for x in q_sources}
    for j, source in enumerate(g_sources):
        if source in wanted:
            where.setdefault(str(source), []).append(j)
    return [np.asarray(where.get(str(x), []), np.int64) for x in q_sources]


def _metric_ids(q_pids, q_cams, g_pids, g_cams):
    """Camera ids for gafnet.metrics: an unknown camera never equals another (no pair is junk by accident)."""
    q_c = np.where(np.asarray(q_cams) < 0, -1000, q_cams).astype(np.int64)
    g_c = np.where(np.asarray(g_cams) < 0, -2000, g_cams).astype(np.int64)
    return np.asarray(q_pids, np.int64), q_c, np.asarray(g_pids, np.int64), g_c


def search(queries: dict, gallery, top: int, fusion: FusionSpec = FusionSpec(), use_gait: bool = True,
           chunk_rows: int = DEFAULT_CHUNK, budget_bytes: int = DEFAULT_BUDGET, max_rank: int = 50) -> Matches:
    """Rank every query of ``queries`` (a record set: appearance, gait, has_pose, person_id, camera_id) against
    ``gallery`` (a :class:`~gafnet.pixels.reid_index.GalleryIndex` or anything with ``chunks`` / ``column`` /
    ``len``); see the module docstring."""
    num_g = len(gallery)
    if num_g == 0:
        raise InputError(f"the gallery {getattr(gallery, 'path', '')} holds no tracklet")
    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    use_gait = bool(use_gait and queries["gait"].shape[1] > 0 and gallery.gait_dim > 0)
    if use_gait and queries["gait"].shape[1] != gallery.gait_dim:
        raise InputError(f"the queries' gait embeddings have {queries['gait'].shape[1]} dimensions, the gallery's "
                         f"{gallery.gait_dim}")
    if queries["appearance"].shape[1] != gallery.app_dim:
        raise InputError(f"the queries' appearance embeddings have {queries['appearance'].shape[1]} dimensions, the "
                         f"gallery's {gallery.app_dim}")
    nq = len(queries["appearance"])
    itself = (same_source(queries["source"], gallery.column("source")) if "source" in queries  # (benchmarks: none)
              else [np.zeros(0, np.int64)] * nq)
    k = min(top, num_g - max((len(e) for e in itself), default=0))
    if k < 1:
        raise InputError(f"the gallery {getattr(gallery, 'path', '')} holds nothing but the queries themselves")
    qa = unit_rows(queries["appearance"])
    qg = unit_rows(queries["gait"]) if use_gait else None
    q_has = np.asarray(queries["has_pose"], bool) if use_gait else np.zeros(len(qa), bool)
    g_has = np.asarray(gallery.column("has_pose"), bool) if use_gait else np.zeros(num_g, bool)
    q_pids, q_cams, g_pids, g_cams = _metric_ids(queries["person_id"], queries["camera_id"],
                                                 gallery.column("person_id"), gallery.column("camera_id"))
    evaluable = np.zeros(len(q_pids), bool)  # queries with a match: same person, another camera, not itself
    for i in np.flatnonzero(q_pids >= 0):
        match = (g_pids == q_pids[i]) & (g_cams != q_cams[i])
        match[itself[i]] = False
        evaluable[i] = bool(match.any())
    out = {name: np.zeros((nq, k), dtype) for name, dtype in (("index", np.int64), ("appearance", np.float64),
                                                              ("fused", np.float64), ("gait", np.float64),
                                                              ("appearance_rank", np.int64), ("gait_rank", np.int64),
                                                              ("appearance_only", bool))}
    first_rank, avg_prec = [], []
    block = max(1, int(budget_bytes // (ROW_BYTES * num_g)))
    names = ("appearance", "gait") if use_gait else ("appearance",)
    for q0 in range(0, nq, block):
        rows = slice(q0, min(nq, q0 + block))
        b = rows.stop - rows.start
        d_app = np.empty((b, num_g))
        d_gait = np.empty((b, num_g)) if use_gait else None
        for start, chunk in gallery.chunks(names, chunk_rows):
            stop = start + len(chunk["appearance"])
            d_app[:, start:stop] = squared_euclidean(qa[rows], unit_rows(chunk["appearance"]))
            if use_gait:
                d_gait[:, start:stop] = squared_euclidean(qg[rows], unit_rows(chunk["gait"]))
        both = q_has[rows, None] & g_has[None, :]
        app_shown, gait_shown = d_app, d_gait
        if not use_gait:
            ranking = d_app
        elif fusion.kind == "concat":
            ranking = np.where(both, fused_distance(d_app, d_gait, fusion.lam), d_app)
        else:
            app_shown, gait_shown = np.sqrt(d_app), np.sqrt(d_gait)
            ranking = score_fused(app_shown, gait_shown, q_has[rows], g_has, fusion)
        for i in range(b):
            qi = rows.start + i
            kept = None
            if len(itself[qi]):  # the query itself is left out of its ranking, its ranks and its evaluation
                kept = np.ones(num_g, bool)
                kept[itself[qi]] = False
            row = ranking[i] if kept is None else np.where(kept, ranking[i], np.inf)
            cols = smallest_k(row, k)
            out["index"][qi] = cols
            out["fused"][qi] = ranking[i, cols]
            out["appearance"][qi] = app_shown[i, cols]
            out["appearance_rank"][qi] = ranks_of(app_shown[i], cols, kept)
            out["appearance_only"][qi] = ~both[i, cols]
            if use_gait:
                pair = both[i, cols]
                valid = g_has if kept is None else g_has & kept
                out["gait"][qi] = np.where(pair, gait_shown[i, cols], np.nan)
                out["gait_rank"][qi] = np.where(pair, ranks_of(gait_shown[i], cols, valid) if q_has[qi] else -1, -1)
        with_match = np.flatnonzero(evaluable[rows])
        plain = [i for i in with_match if not len(itself[rows.start + i])]
        groups = [(np.asarray(plain), None)] if plain else []  # one call for the usual queries
        for i in with_match:
            if len(itself[rows.start + i]):  # one call each, on the gallery without the query itself
                keep = np.ones(num_g, bool)
                keep[itself[rows.start + i]] = False
                groups.append((np.asarray([i]), keep))
        for part, keep in groups:
            d, gp, gc = (ranking[part], g_pids, g_cams) if keep is None else (ranking[part][:, keep], g_pids[keep],
                                                                             g_cams[keep])
            res = rank_queries(d, q_pids[rows][part], gp, q_cams[rows][part], gc, max_rank=min(max_rank, len(gp)))
            first_rank.append(res.first_match_rank)
            avg_prec.append(res.average_precision)
    evaluation = None
    if first_rank:
        evaluation = summarise(np.concatenate(first_rank), np.concatenate(avg_prec), min(max_rank, num_g))
    return Matches(index=out["index"], fused=out["fused"] if use_gait else None, appearance=out["appearance"],
                   gait=out["gait"] if use_gait else None, appearance_rank=out["appearance_rank"],
                   gait_rank=out["gait_rank"] if use_gait else None, appearance_only=out["appearance_only"],
                   evaluation=evaluation, itself=np.asarray([len(e) for e in itself], np.int64))


def score_fused(e_app: np.ndarray, e_gait: np.ndarray, q_has: np.ndarray, g_has: np.ndarray,
                fusion: FusionSpec) -> np.ndarray:
    """Score-level fusion of full gallery rows (Euclidean distances), appearance alone where gait is missing."""
    if q_has.all() and g_has.all():
        return score_distance(e_app, e_gait, fusion.weight, fusion.norm)
    n_app = normalize_rows(e_app, fusion.norm)
    out = n_app.copy()
    rows, cols = np.flatnonzero(q_has), np.flatnonzero(g_has)
    if len(rows) and len(cols):
        n_gait = normalize_rows(e_gait[np.ix_(rows, cols)], fusion.norm)
        out[np.ix_(rows, cols)] = (1.0 - fusion.weight) * n_app[np.ix_(rows, cols)] + fusion.weight * n_gait
    return out
