"""Appearance + gait fusion (GAF-Net, paper Eq. 4), evaluated per split, for one λ or a grid of them.

The paper fuses z = [normalize(z_app), λ·normalize(z_gait)]; the original script L2-normalises z once more
and ranks by squared Euclidean distance. Every such z has norm sqrt(1 + λ²), so

    ||z_q − z_g||² / (1 + λ²)  =  (d²_app + λ²·d²_gait) / (1 + λ²)

with d² computed on the normalised parts: the fused distance of any λ is a weighted sum of two matrices
computed once per split. :func:`fused_distance` returns exactly the renormalised concatenation's distance
(tests check it against the explicit concatenation), so ranks, CMC and mAP are the original's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .embeddings import EmbeddingTable, ParseCache, align_rows, read_embedding_csv
from .errors import InputError
from .layout import embedding_csv
from .metrics import RankResult, rank_queries, squared_euclidean, summarise


@dataclass(frozen=True)
class Backbone:
    """A row of the paper's table: dimensions, λ, gait source and the published numbers."""

    name: str
    dim: int
    gait: str
    paper_lambda: float
    paper: dict  # fused rank1/rank5/rank10/rank20 of the paper's table
    printed: dict  # rank1/rank5/mAP printed by the original script (its README)
    appearance_rank1: float


BACKBONES = {
    "pit": Backbone("pit", 9216, "gait1", 0.74, dict(rank1=93.07, rank5=99.27, rank10=99.74, rank20=99.94),
                    dict(rank1=93.07, rank5=99.33, mAP=95.80), 92.07),
    "mgh": Backbone("mgh", 5120, "gait2", 0.84, dict(rank1=90.40, rank5=98.66, rank10=98.99, rank20=99.66),
                    dict(rank1=90.40, rank5=98.67, mAP=94.01), 85.60),
    "osnet": Backbone("osnet", 512, "gait1", 0.90, dict(rank1=70.93, rank5=88.40, rank10=93.00, rank20=96.54),
                      dict(rank1=70.93, rank5=89.60, mAP=79.14), 59.20),
}


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows are rejected when the CSV is read)."""
    return x / np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]


@dataclass
class SplitData:
    """One split of one backbone: normalised appearance and gait parts, aligned on (pid, camera)."""

    split: int
    q_app: np.ndarray
    g_app: np.ndarray
    q_gait: np.ndarray
    g_gait: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray
    notes: list[str] = field(default_factory=list)
    _d_app: np.ndarray | None = None
    _d_gait: np.ndarray | None = None

    @property
    def app_dim(self) -> int:
        return int(self.q_app.shape[1])

    @property
    def gait_dim(self) -> int:
        return int(self.q_gait.shape[1])

    def distances(self) -> tuple[np.ndarray, np.ndarray]:
        """(d²_app, d²_gait), each (num_query, num_gallery), computed once."""
        if self._d_app is None:
            self._d_app = squared_euclidean(self.q_app, self.g_app)
            self._d_gait = squared_euclidean(self.q_gait, self.g_gait)
        return self._d_app, self._d_gait


def _pair(data_path, folder: str, split: int, cache: ParseCache | None) -> tuple[EmbeddingTable, EmbeddingTable]:
    query = read_embedding_csv(embedding_csv(data_path, folder, "query", split), cache)
    gallery = read_embedding_csv(embedding_csv(data_path, folder, "gallery", split), cache)
    if query.dim != gallery.dim:
        raise InputError(f"{query.path} has {query.dim}-d features but {gallery.path} has {gallery.dim}-d; "
                         "query and gallery must come from the same model")
    return query, gallery


def load_split(data_path, backbone: str, gait: str, split: int, cache: ParseCache | None = None) -> SplitData:
    """Read and align the four CSVs of one split (appearance and gait, query and gallery)."""
    q_app, g_app = _pair(data_path, backbone, split, cache)
    q_gait, g_gait = _pair(data_path, gait, split, cache)
    q_gait, q_moved = align_rows(q_app, q_gait)
    g_gait, g_moved = align_rows(g_app, g_gait)
    notes = q_gait.notes[-1:] if q_moved else []
    notes += g_gait.notes[-1:] if g_moved else []
    return SplitData(split=split, q_app=l2_normalize(q_app.features), g_app=l2_normalize(g_app.features),
                     q_gait=l2_normalize(q_gait.features), g_gait=l2_normalize(g_gait.features),
                     q_pids=q_app.pids, g_pids=g_app.pids, q_camids=q_app.camids, g_camids=g_app.camids,
                     notes=notes)


def fused_distance(d_app: np.ndarray, d_gait: np.ndarray, lam: float) -> np.ndarray:
    """Squared distance between renormalised fused vectors [a, λ·g] / sqrt(1 + λ²)."""
    return (d_app + (lam * lam) * d_gait) / (1.0 + lam * lam)


def concatenated_distance(data: SplitData, lam: float) -> np.ndarray:
    """The original's computation, explicitly: concatenate, renormalise, squared Euclidean (for tests)."""
    qf = l2_normalize(np.concatenate([data.q_app, lam * data.q_gait], axis=1))
    gf = l2_normalize(np.concatenate([data.g_app, lam * data.g_gait], axis=1))
    return squared_euclidean(qf, gf)


def evaluate_lambdas(data: SplitData, lambdas, max_rank: int = 50) -> list[RankResult]:
    """Rank the split at every λ of ``lambdas`` with one call (the λ blocks are stacked as queries)."""
    lambdas = np.asarray([float(v) for v in lambdas])
    d_app, d_gait = data.distances()
    # the same elementwise operations as fused_distance, broadcast over λ: (L, Q, G) → (L·Q, G)
    # d_app + λ²·d_gait for every λ, in place: (L, Q, G) → (L·Q, G). fused_distance's common factor
    # 1 / (1 + λ²) is left out: it is the same for every gallery item, so the ranking does not change.
    mu = (lambdas * lambdas)[:, None, None]
    stacked = np.multiply(mu, d_gait[None])
    stacked += d_app[None]
    stacked = stacked.reshape(-1, d_app.shape[1])
    reps = len(lambdas)
    result = rank_queries(stacked, np.tile(data.q_pids, reps), data.g_pids, np.tile(data.q_camids, reps),
                          data.g_camids, max_rank=max_rank)
    nq = data.q_pids.shape[0]
    return [summarise(result.first_match_rank[i * nq:(i + 1) * nq], result.average_precision[i * nq:(i + 1) * nq],
                      result.cmc.shape[0]) for i in range(reps)]


def evaluate_rerank(data: SplitData, lam: float, max_rank: int = 50, k1: int = 20, k2: int = 6,
                    lambda_value: float = 0.3) -> RankResult:
    """Fused distance re-ranked with k-reciprocal encoding (Zhong et al. 2017), torchreid's implementation."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.utils import re_ranking
    d_app, d_gait = data.distances()
    q_q = fused_distance(squared_euclidean(data.q_app, data.q_app), squared_euclidean(data.q_gait, data.q_gait), lam)
    g_g = fused_distance(squared_euclidean(data.g_app, data.g_app), squared_euclidean(data.g_gait, data.g_gait), lam)
    dist = re_ranking(fused_distance(d_app, d_gait, lam), q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    return rank_queries(dist, data.q_pids, data.g_pids, data.q_camids, data.g_camids, max_rank=max_rank)


def cross_validated_choice(rank1: np.ndarray, mAP: np.ndarray, grid) -> list[int]:
    """For each split i, the grid index with the best mean Rank-1 over the other splits (ties: mAP, then smaller λ).

    ``rank1`` and ``mAP`` are (num_splits, len(grid)). Split i is then reported at that λ: the λ is never
    chosen on the split it is evaluated on.
    """
    num_splits = rank1.shape[0]
    if num_splits < 2:
        raise InputError("--lambda_val cv needs at least two splits")
    choice = []
    for i in range(num_splits):
        others = np.delete(np.arange(num_splits), i)
        r1, mp = rank1[others].mean(0), mAP[others].mean(0)
        best = np.lexsort((np.arange(len(grid)), -mp, -r1))[0]  # primary: Rank-1, then mAP, then index
        choice.append(int(best))
    return choice
