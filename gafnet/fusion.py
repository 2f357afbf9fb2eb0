"""Appearance + gait fusion, evaluated per split: the paper's feature concatenation and score-level fusion.

Two strategies, each a distance between a query and every gallery item (smaller = more alike):

``concat`` (GAF-Net, paper Eq. 4) fuses z = [normalize(z_app), λ·normalize(z_gait)]; the original script
L2-normalises z once more and ranks by squared Euclidean distance. Every such z has norm sqrt(1 + λ²), so

    ||z_q − z_g||² / (1 + λ²)  =  (d²_app + λ²·d²_gait) / (1 + λ²)

with d² computed on the normalised parts: the fused distance of any λ is a weighted sum of two matrices
computed once per split. :func:`fused_distance` returns exactly the renormalised concatenation's distance
(tests check it against the explicit concatenation), so ranks, CMC and mAP are the original's.

``score`` (the sum rule, as compared in the journal extension, Boujou et al., Algorithms 2024): per modality
the Euclidean distance d of the L2-normalised features, normalised per query over its gallery row by ``N``
(``minmax``: (d − min) / (max − min); ``zscore``: (d − mean) / std), then
D = (1 − w)·N(d_app) + w·N(d_gait). w = 0 is appearance only. These are this repository's definitions
(standard ones); the journal's exact formulas were not available.

Optional PCA of the appearance part (:func:`reduce_appearance`, scikit-learn) before either strategy.

Layouts: iLIDS-VID ``<root>/ilids/<folder>/{query,gallery}_split<i>.csv`` (query = camera 1, gallery =
camera 2) and MARS ``<root>/mars/<folder>/{query,gallery}.csv`` (person −1 = junk, 0 = distractors), whose
rows are matched across modalities on (person_id, camera_id, tracklet_id) when both files have a
``tracklet_id`` column, else on (person_id, camera_id) and the order of rows within equal ids.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .embeddings import EmbeddingTable, ParseCache, align_rows, check_pair, needs_digest, read_embedding_csv
from .errors import InputError
from .metrics import RankResult, over_all_queries, rank_queries, squared_euclidean, summarise_blocks

FUSIONS = ("concat", "score")
SCORE_NORMS = ("minmax", "zscore")
DATASETS = ("ilids", "mars")
MARS_JUNK_PID = -1
STACK_BYTES = 256 * 2**20  # distance matrices of several λ are ranked together up to this size
MAX_LAMBDA = 1e6  # beyond this the fused ranking is gait-only anyway; λ² must stay far from overflow


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


def l2_normalize(x: np.ndarray, dtype=None, rows=None, block: int = 1024) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows are rejected when the CSV is read).

    ``dtype`` (default: x's) and ``rows`` (an index array: only these rows) give the result directly, block
    by block, without a full-size temporary.
    """
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    index = np.arange(x.shape[0]) if rows is None else np.asarray(rows)
    out = np.empty((len(index), x.shape[1]), dtype=dtype)
    for a in range(0, len(index), block):
        part = x[index[a:a + block]] if rows is not None else x[a:a + block]
        out[a:a + block] = part / np.sqrt(np.einsum("ij,ij->i", part, part))[:, None]
    return out


# ----------------------------------------------------------------------------------------------------- data
def layout_csv(data_path, dataset: str, folder: str, kind: str, split: int | None) -> Path:
    """The CSV of one folder: iLIDS-VID ``ilids/<folder>/<kind>_split<i>.csv``, MARS ``mars/<folder>/<kind>.csv``."""
    if dataset == "mars":
        return Path(data_path) / "mars" / folder / f"{kind}.csv"
    return Path(data_path) / "ilids" / folder / f"{kind}_split{int(split)}.csv"


def available_folders(data_path, dataset: str) -> list[str]:
    """Folders under ``<data_path>/<dataset>/`` (sorted), for messages and for resolving names."""
    root = Path(data_path) / dataset
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


@dataclass
class SplitData:
    """One split of one backbone: normalised appearance and gait parts, aligned row by row."""

    split: int | None
    q_app: np.ndarray
    g_app: np.ndarray
    q_gait: np.ndarray
    g_gait: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray
    notes: list[str] = field(default_factory=list)
    files: tuple[Path, Path] = (Path("query"), Path("gallery"))  # the appearance query/gallery files, for messages
    average_over_all_queries: bool = False  # MARS official protocol: invalid queries count as misses
    _d_app: np.ndarray | None = None
    _d_gait: np.ndarray | None = None

    @property
    def app_dim(self) -> int:
        return int(self.q_app.shape[1])

    @property
    def gait_dim(self) -> int:
        return int(self.q_gait.shape[1])

    @property
    def label(self) -> str:
        return "MARS" if self.split is None else f"split {self.split}"

    def distances(self) -> tuple[np.ndarray, np.ndarray]:
        """(d²_app, d²_gait), each (num_query, num_gallery), squared Euclidean, computed once.

        Products are taken in the features' precision (float64 for iLIDS-VID; float32 for MARS, as torchreid
        computes its distance matrices) and the distances are returned in float64.
        """
        if self._d_app is None:
            self._d_app = squared_euclidean(self.q_app, self.g_app).astype(np.float64, copy=False)
            self._d_gait = squared_euclidean(self.q_gait, self.g_gait).astype(np.float64, copy=False)
        return self._d_app, self._d_gait


def read_tables(paths: list[Path], cache: ParseCache | None = None, workers: int = 2) -> list[EmbeddingTable]:
    """Read several CSVs, two at a time (Arrow's parser releases the GIL); digests where a manifest needs them."""
    def one(path: Path) -> EmbeddingTable:
        return read_embedding_csv(path, cache, digest=needs_digest(path))

    if workers <= 1 or len(paths) <= 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, paths))


def _pair(query: EmbeddingTable, gallery: EmbeddingTable) -> None:
    if query.dim != gallery.dim:
        raise InputError(f"{query.path} has {query.dim}-d features but {gallery.path} has {gallery.dim}-d; "
                         "query and gallery must come from the same model")
    check_pair(query, gallery)


def _mars_keys(table: EmbeddingTable, tracklets: np.ndarray | None) -> list[tuple[int, int, int]]:
    """(person, camera, k): k = the tracklet id, or the row's rank among rows with the same (person, camera)."""
    if tracklets is not None:
        return list(zip(table.pids.tolist(), table.camids.tolist(), tracklets.tolist()))
    seen: dict[tuple[int, int], int] = {}
    keys = []
    for key in zip(table.pids.tolist(), table.camids.tolist()):
        keys.append((*key, seen.get(key, 0)))
        seen[key] = seen.get(key, 0) + 1
    return keys


def align_mars(reference: EmbeddingTable, other: EmbeddingTable) -> tuple[EmbeddingTable, list[str]]:
    """Reorder ``other`` (gait) to ``reference`` (appearance) for the MARS layout; see the module docstring."""
    ref_t, oth_t = reference.tracklets, other.tracklets
    use_tracklets = ref_t is not None and oth_t is not None
    notes = []
    ref_keys = _mars_keys(reference, ref_t if use_tracklets else None)
    oth_keys = _mars_keys(other, oth_t if use_tracklets else None)
    if not use_tracklets:
        counts: dict[tuple[int, int], int] = {}
        for p, c, _ in ref_keys:
            counts[(p, c)] = counts.get((p, c), 0) + 1
        other_counts: dict[tuple[int, int], int] = {}
        for p, c, _ in oth_keys:
            other_counts[(p, c)] = other_counts.get((p, c), 0) + 1
        multi = sum(1 for v in counts.values() if v > 1)
        differ = [k for k in set(counts) | set(other_counts) if counts.get(k) != other_counts.get(k)]
        if differ:
            k = sorted(differ)[0]
            raise InputError(f"{other.path} and {reference.path} cannot be matched: (person_id, camera_id) = {k} has "
                             f"{other_counts.get(k, 0)} row(s) in one and {counts.get(k, 0)} in the other "
                             f"({len(differ)} such pairs); add a tracklet_id column to both files")
        if multi:
            notes.append(f"{other.path.parent.name}/{other.path.name}: {multi} (person_id, camera_id) pairs have "
                         "several tracklets; their rows were matched by order (add a tracklet_id column to both "
                         "files to match them exactly)")
    elif len(set(ref_keys)) != len(ref_keys) or len(set(oth_keys)) != len(oth_keys):
        bad = reference if len(set(ref_keys)) != len(ref_keys) else other
        raise InputError(f"{bad.path}: a (person_id, camera_id, tracklet_id) appears more than once; each "
                         "tracklet must appear once")
    row_of = {k: i for i, k in enumerate(oth_keys)}
    missing = [k for k in ref_keys if k not in row_of]
    if missing or len(oth_keys) != len(ref_keys):
        raise InputError(f"{other.path} and {reference.path} do not describe the same tracklets "
                         f"({len(ref_keys)} vs {len(oth_keys)} rows; e.g. {missing[:3]} missing from {other.path.name})")
    order = np.array([row_of[k] for k in ref_keys], dtype=np.int64)
    if not np.array_equal(order, np.arange(len(order))):
        notes.append(f"{other.path.parent.name}/{other.path.name}: rows reordered to match "
                     f"{reference.path.parent.name}/{reference.path.name}")
    return EmbeddingTable(features=other.features[order], pids=other.pids[order], camids=other.camids[order],
                          path=other.path, sha256=other.sha256,
                          tracklets=None if oth_t is None else oth_t[order]), notes


def build_split(split: int | None, q_app: EmbeddingTable, g_app: EmbeddingTable, q_gait: EmbeddingTable,
                g_gait: EmbeddingTable, protocol: str = "torchreid") -> SplitData:
    """Align the four tables of one split and normalise each part (MARS: drop junk, apply the protocol)."""
    _pair(q_app, g_app)
    _pair(q_gait, g_gait)
    notes: list[str] = []
    if split is None:  # MARS: 1,980 x 9,330 products in float32, as torchreid; junk left out of the gallery
        q_gait, q_notes = align_mars(q_app, q_gait)
        g_gait, g_notes = align_mars(g_app, g_gait)
        notes += q_notes + g_notes
        keep = np.flatnonzero(g_app.pids != MARS_JUNK_PID)
        parts = [l2_normalize(q_app.features, np.float32), l2_normalize(g_app.features, np.float32, keep),
                 l2_normalize(q_gait.features, np.float32), l2_normalize(g_gait.features, np.float32, keep)]
        gp, gc = g_app.pids[keep], g_app.camids[keep]
        if protocol == "official":  # the queries are gallery items too (each finds itself as same-camera junk)
            parts[1], parts[3] = np.concatenate([parts[0], parts[1]]), np.concatenate([parts[2], parts[3]])
            gp, gc = np.concatenate([q_app.pids, gp]), np.concatenate([q_app.camids, gc])
    else:
        q_gait, q_moved = align_rows(q_app, q_gait)
        g_gait, g_moved = align_rows(g_app, g_gait)
        notes += (q_gait.notes[-1:] if q_moved else []) + (g_gait.notes[-1:] if g_moved else [])
        parts = [l2_normalize(t.features) for t in (q_app, g_app, q_gait, g_gait)]
        gp, gc = g_app.pids, g_app.camids
    if len(gp) == 0:
        raise InputError(f"{g_app.path}: the gallery is empty (after removing MARS junk, person -1)")
    return SplitData(split=split, q_app=parts[0], g_app=parts[1], q_gait=parts[2], g_gait=parts[3],
                     q_pids=q_app.pids, g_pids=gp, q_camids=q_app.camids, g_camids=gc, notes=notes,
                     files=(q_app.path, g_app.path),
                     average_over_all_queries=protocol == "official")


def load_split(data_path, backbone: str, gait: str, split: int | None, cache: ParseCache | None = None,
               dataset: str = "ilids", protocol: str = "torchreid") -> SplitData:
    """Read and align the four CSVs of one split (appearance and gait, query and gallery)."""
    paths = [layout_csv(data_path, dataset, folder, kind, split) for folder in (backbone, gait)
             for kind in ("query", "gallery")]
    q_app, g_app, q_gait, g_gait = read_tables(paths, cache)
    return build_split(split, q_app, g_app, q_gait, g_gait, protocol)


# ----------------------------------------------------------------------------------------------- PCA
def reduce_appearance(data: SplitData, dim: int, whiten: bool = False, fit_features: np.ndarray | None = None,
                      seed: int = 0) -> SplitData:
    """The split with its appearance part reduced to ``dim`` dimensions by PCA (scikit-learn), then L2-normalised.

    Fitted on ``fit_features`` (e.g. training embeddings) or, when None, on this split's own query + gallery
    appearance features, without labels (transductive). The gait part is unchanged.
    """
    from sklearn.decomposition import PCA

    fit = np.concatenate([data.q_app, data.g_app]) if fit_features is None else l2_normalize(fit_features)
    limit = min(fit.shape[0], fit.shape[1])
    if not 1 <= dim <= limit:
        source = "the PCA fit file" if fit_features is not None else f"{data.label}'s query + gallery"
        raise InputError(f"--pca_dim {dim}: must be between 1 and {limit} (the smaller of the feature dimension "
                         f"{fit.shape[1]} and the {fit.shape[0]} rows of {source})")
    if fit.shape[1] != data.q_app.shape[1]:
        raise InputError(f"the PCA fit features are {fit.shape[1]}-d but the appearance features are "
                         f"{data.q_app.shape[1]}-d; fit on embeddings of the same model")
    pca = PCA(n_components=dim, whiten=whiten, svd_solver="auto", random_state=seed).fit(fit)
    q, g = pca.transform(data.q_app), pca.transform(data.g_app)
    for name, part in (("query", q), ("gallery", g)):
        if not np.all(np.any(part != 0, axis=1)):
            raise InputError(f"PCA to {dim} dimensions maps a {name} row of {data.label} to zero; use a larger --pca_dim")
    return SplitData(split=data.split, q_app=l2_normalize(q), g_app=l2_normalize(g), q_gait=data.q_gait,
                     g_gait=data.g_gait, q_pids=data.q_pids, g_pids=data.g_pids, q_camids=data.q_camids,
                     g_camids=data.g_camids, notes=data.notes, files=data.files,
                     average_over_all_queries=data.average_over_all_queries)


# ------------------------------------------------------------------------------------------ distances
def fused_distance(d_app: np.ndarray, d_gait: np.ndarray, lam: float) -> np.ndarray:
    """Squared distance between renormalised fused vectors [a, λ·g] / sqrt(1 + λ²) (paper Eq. 4)."""
    return (d_app + (lam * lam) * d_gait) / (1.0 + lam * lam)


def concatenated_distance(data: SplitData, lam: float) -> np.ndarray:
    """The original's computation, explicitly: concatenate, renormalise, squared Euclidean (for tests)."""
    qf = l2_normalize(np.concatenate([data.q_app, lam * data.q_gait], axis=1))
    gf = l2_normalize(np.concatenate([data.g_app, lam * data.g_gait], axis=1))
    return squared_euclidean(qf, gf)


def normalize_rows(distance: np.ndarray, norm: str = "minmax") -> np.ndarray:
    """Each query's row of distances normalised over its gallery: ``minmax`` → [0, 1], ``zscore`` → mean 0, std 1.

    A row whose distances are all equal becomes all zeros (it cannot rank anything either way).
    """
    if norm == "minmax":
        low = distance.min(axis=1, keepdims=True)
        span = distance.max(axis=1, keepdims=True) - low
        return (distance - low) / np.where(span > 0, span, 1.0)
    if norm == "zscore":
        mean = distance.mean(axis=1, keepdims=True)
        std = distance.std(axis=1, keepdims=True)
        return (distance - mean) / np.where(std > 0, std, 1.0)
    raise InputError(f"unknown score normalisation {norm!r}; use one of {', '.join(SCORE_NORMS)}")


def score_distance(dist_app: np.ndarray, dist_gait: np.ndarray, weight: float, norm: str = "minmax") -> np.ndarray:
    """Score-level fusion (sum rule): (1 − w)·N(d_app) + w·N(d_gait) of Euclidean (not squared) distances."""
    return (1.0 - weight) * normalize_rows(dist_app, norm) + weight * normalize_rows(dist_gait, norm)


@dataclass(frozen=True)
class Fusion:
    """A fusion strategy and its parameter's name: ``concat`` with λ, ``score`` with w and a normalisation."""

    kind: str = "concat"
    norm: str = "minmax"

    @property
    def parameter(self) -> str:
        return "λ" if self.kind == "concat" else "w"

    @property
    def parameter_key(self) -> str:
        """The parameter's key in the JSON output."""
        return "lambda" if self.kind == "concat" else "weight"

    def describe(self) -> str:
        return "feature concatenation (paper Eq. 4)" if self.kind == "concat" else \
            f"score-level fusion (sum rule, {self.norm} normalisation)"


class _ScoreParts:
    """Per-split normalised distance rows of each modality, computed once for every w."""

    def __init__(self, data: SplitData, norm: str):
        d_app, d_gait = data.distances()
        self.app = normalize_rows(np.sqrt(d_app), norm)
        self.gait = normalize_rows(np.sqrt(d_gait), norm)


def _ranking_matrices(data: SplitData, fusion: Fusion, values: np.ndarray, parts: _ScoreParts | None) -> np.ndarray:
    """(len(values), Q, G) distance matrices that rank like the strategy at each value.

    concat: d²_app + λ²·d²_gait (the common factor 1/(1+λ²) of fused_distance is left out: it does not change
    a ranking); score: (1 − w)·N(d_app) + w·N(d_gait).
    """
    d_app, d_gait = data.distances()
    if fusion.kind == "concat":
        stacked = np.multiply.outer(values * values, d_gait)
        stacked += d_app
        return stacked
    stacked = np.multiply.outer(values, parts.gait)
    stacked += np.multiply.outer(1.0 - values, parts.app)
    return stacked


def evaluate_values(data: SplitData, values, fusion: Fusion = Fusion(), max_rank: int = 50,
                    stack_bytes: int = STACK_BYTES) -> list[RankResult]:
    """Rank the split at every parameter value (λ or w) of ``values``.

    Several values are stacked as extra query blocks and ranked in one call while the stack stays under
    ``stack_bytes``; beyond that they go in chunks, so memory stays bounded for large galleries (MARS) or
    long grids.
    """
    values = np.asarray([float(v) for v in values], dtype=np.float64)
    d_app, _ = data.distances()
    nq, ng = d_app.shape
    parts = _ScoreParts(data, fusion.norm) if fusion.kind == "score" else None
    per_chunk = max(1, int(stack_bytes // max(1, nq * ng * 8)))
    results: list[RankResult] = []
    for start in range(0, len(values), per_chunk):
        chunk = values[start:start + per_chunk]
        reps = len(chunk)
        stacked = _ranking_matrices(data, fusion, chunk, parts)
        try:
            # finite by construction: features are checked when read, rows have unit norm, λ <= MAX_LAMBDA
            ranked = rank_queries(stacked.reshape(reps * nq, ng), np.tile(data.q_pids, reps), data.g_pids,
                                  np.tile(data.q_camids, reps), data.g_camids, max_rank=max_rank,
                                  check_finite=False)
        except InputError as exc:
            raise InputError(f"{data.files[0]} vs {data.files[1]}: {exc}") from None
        blocks = summarise_blocks(ranked.first_match_rank, ranked.average_precision, ranked.cmc.shape[0], reps)
        results += [over_all_queries(res) if data.average_over_all_queries else res for res in blocks]
    return results


def evaluate_lambdas(data: SplitData, lambdas, max_rank: int = 50) -> list[RankResult]:
    """:func:`evaluate_values` for the paper's concatenation (kept for callers of the original name)."""
    return evaluate_values(data, lambdas, Fusion("concat"), max_rank=max_rank)


def evaluate_rerank(data: SplitData, value: float, fusion: Fusion = Fusion(), max_rank: int = 50, k1: int = 20,
                    k2: int = 6, lambda_value: float = 0.3) -> RankResult:
    """The fused distance re-ranked with k-reciprocal encoding (Zhong et al. 2017), torchreid's implementation.

    Needs several gallery tracklets per identity to help: with one per identity and camera (iLIDS-VID) the
    k-reciprocal neighbourhoods are mostly other people and Rank-1 drops.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.utils import re_ranking

    if fusion.kind != "concat":
        raise InputError("--rerank works with --fusion concat only (k-reciprocal re-ranking needs distances, "
                         "not per-query normalised scores)")

    def fused(qa, ga, qg, gg):
        return fused_distance(squared_euclidean(qa, ga), squared_euclidean(qg, gg), value)

    q_g = fused(data.q_app, data.g_app, data.q_gait, data.g_gait)
    q_q = fused(data.q_app, data.q_app, data.q_gait, data.q_gait)
    g_g = fused(data.g_app, data.g_app, data.g_gait, data.g_gait)
    dist = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    res = rank_queries(dist, data.q_pids, data.g_pids, data.q_camids, data.g_camids, max_rank=max_rank)
    return over_all_queries(res) if data.average_over_all_queries else res


def cross_validated_choice(rank1: np.ndarray, mAP: np.ndarray, grid) -> list[int]:
    """For each split i, the grid index with the best mean Rank-1 over the other splits (ties: mAP, then smaller value).

    ``rank1`` and ``mAP`` are (num_splits, len(grid)). Split i is then reported at that value: it is never
    chosen on the split it is evaluated on.
    """
    num_splits = rank1.shape[0]
    if num_splits < 2:
        raise InputError("cross-validated choice (cv) needs at least two splits")
    choice = []
    for i in range(num_splits):
        others = np.delete(np.arange(num_splits), i)
        r1, mp = rank1[others].mean(0), mAP[others].mean(0)
        best = np.lexsort((np.arange(len(grid)), -mp, -r1))[0]  # primary: Rank-1, then mAP, then index
        choice.append(int(best))
    return choice
