"""Evaluation protocols for gait (and any other) embeddings: iLIDS-VID, CASIA-B and MARS.

Every ranking goes through the project's one CMC/mAP implementation, :mod:`gafnet.metrics`
(torchreid's ``eval_market1501`` semantics); this module only decides who is query, who is gallery and
what is junk, as each benchmark's protocol says (the README, "GaitGraph: training and gait embeddings").

- iLIDS-VID  :func:`evaluate_ilids`  query = camera 1, gallery = camera 2, squared Euclidean distance.
- CASIA-B    :func:`casia_b_table`   gallery NM#1–4; probes NM#5–6, BG#1–2, CL#1–2; rank-1 per
  (probe view, gallery view), identical views excluded (GaitGraph, Teepe et al. 2021, after GaitSet).
- MARS       :func:`mars_split`, :func:`evaluate_mars`  the 1,980 standard query tracklets (shipped in
  ``gafnet/data_files/mars_query_tracklets.csv``) and two protocols:

  ``"torchreid"``  gallery = the non-query test tracklets minus person −1 (junk); person 0 distractors
                   stay; per query, items with the same person and the same camera are removed; queries
                   with no remaining match are skipped (CMC and mAP average over valid queries only).
  ``"official"``   the MARS MATLAB code's gallery and junk: gallery = all test tracklets, queries included;
                   junk = person −1 plus, per query, the same person on the same camera (the query itself
                   included); CMC and mAP average over ALL queries, a query without any valid match counting
                   as a miss at every rank with AP 0 (the MATLAB code would give it a NaN AP). AP itself is
                   the project's non-interpolated AP (mean precision at each match); the MATLAB
                   ``compute_AP`` integrates precision with the trapezoid rule, which gives a slightly lower
                   value for every query whose matches are not all at the top. So "official" numbers share
                   the official gallery, junk and averaging, not the MATLAB AP formula.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..atomic import atomic_path
from ..cache import check_regular_file
from ..errors import InputError
from ..metrics import (RankResult, as_feature_array, as_id_array, rank_features, squared_euclidean)

__all__ = [
    "reported_ranks", "format_ranks",
    "ILIDS_QUERY_CAMERA", "ILIDS_GALLERY_CAMERA", "ilids_query_gallery", "evaluate_ilids",
    "CASIA_VIEWS", "CASIA_CONDITIONS", "CasiaResult", "casia_b_table",
    "MARS_PROTOCOLS", "MARS_QUERY_LIST", "MarsSplit", "load_mars_query_list", "mars_split", "evaluate_mars",
]


# ---------------------------------------------------------------------------------------------- input checks

def _features(features, num_rows: int | None = None) -> np.ndarray:
    arr = as_feature_array("features (one row per sequence)", features)
    if num_rows is not None and arr.shape[0] != num_rows:
        raise InputError(f"features have {arr.shape[0]} rows but the ids have {num_rows} entries")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise InputError(f"features hold NaN or inf in row(s) {_few(np.nonzero(~finite)[0].tolist())}; "
                         f"check the embedding extraction")
    return arr


def _ids(name: str, values, length: int | None = None) -> np.ndarray:
    return as_id_array(name, values, length, what="expected (one per feature row):")


def _few(items, limit: int = 5) -> str:
    items = list(items)
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")


# ---------------------------------------------------------------------------------------------- reporting

REPORTED_RANKS = (1, 5, 10, 20)


def reported_ranks(result: RankResult, ranks=REPORTED_RANKS) -> dict[int, float]:
    """{k: Rank-k in %} for the ``ranks`` that exist: k ≤ the length of the CMC, i.e. the gallery size (a
    gallery of 5 tracklets has no Rank-10 or Rank-20; they are left out rather than reported wrong)."""
    return {k: 100.0 * float(result.cmc[k - 1]) for k in ranks if k <= len(result.cmc)}


def format_ranks(result: RankResult, ranks=REPORTED_RANKS) -> str:
    """"Rank-1 a  Rank-5 b  …  mAP m" with only the ranks within the gallery size (:func:`reported_ranks`)."""
    cells = [f"Rank-{k} {value:.2f}" for k, value in reported_ranks(result, ranks).items()]
    return "  ".join(cells + [f"mAP {100.0 * result.mAP:.2f}"])


# ---------------------------------------------------------------------------------------------- iLIDS-VID

ILIDS_QUERY_CAMERA = 1
ILIDS_GALLERY_CAMERA = 2


def ilids_query_gallery(camids) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the query (camera 1) and gallery (camera 2) sequences, InputError for other cameras or
    a missing one."""
    camids = _ids("camids", camids)
    present = set(np.unique(camids).tolist())
    expected = {ILIDS_QUERY_CAMERA, ILIDS_GALLERY_CAMERA}
    if present - expected:
        raise InputError(f"iLIDS-VID has cameras 1 and 2 only, found camera id(s) {sorted(present - expected)}")
    for cam, role in ((ILIDS_QUERY_CAMERA, "query"), (ILIDS_GALLERY_CAMERA, "gallery")):
        if cam not in present:
            raise InputError(f"no sequence from camera {cam} (the {role} camera of iLIDS-VID); "
                             f"pass both cameras' sequences of the test identities")
    return np.nonzero(camids == ILIDS_QUERY_CAMERA)[0], np.nonzero(camids == ILIDS_GALLERY_CAMERA)[0]


def evaluate_ilids(features, pids, camids, max_rank: int = 50) -> RankResult:
    """iLIDS-VID: query = camera 1, gallery = camera 2, ranked by squared Euclidean distance.

    ``features`` (N, D) are used as given (the gait model's output is already L2-normalised);
    ``pids``/``camids`` (N,) are the ids of each row, cameras numbered 1 and 2 as in the file names.
    CMC/mAP with torchreid's semantics (:mod:`gafnet.metrics`).
    """
    camids = _ids("camids", camids)
    pids = _ids("pids", pids, camids.shape[0])
    features = _features(features, camids.shape[0])
    q, g = ilids_query_gallery(camids)
    return rank_features(features[q], features[g], pids[q], pids[g], camids[q], camids[g], max_rank=max_rank)


# ---------------------------------------------------------------------------------------------- CASIA-B

CASIA_VIEWS = tuple(range(0, 181, 18))  # 0°, 18°, …, 180°
CASIA_CONDITIONS = ("NM", "BG", "CL")  # probe rows; condition codes 0, 1, 2 as the pose loader gives them
CASIA_PROBE_SEQUENCES = {0: (5, 6), 1: (1, 2), 2: (1, 2)}  # condition code → probe sequence numbers
CASIA_PROBE_LABELS = ("NM#5-6", "BG#1-2", "CL#1-2")
CASIA_GALLERY_CONDITION = 0
CASIA_GALLERY_SEQUENCES = (1, 2, 3, 4)  # NM#1-4


@dataclass
class CasiaResult:
    """CASIA-B cross-view rank-1 accuracy, as fractions (0…1).

    pair_accuracy   (3, 11, 11) [condition, probe view, gallery view]: fraction of that condition's probes
                    at the probe view whose nearest gallery sequence of the gallery view has the same
                    subject. NaN on the diagonal (identical views are excluded) and where probes or gallery
                    sequences are absent.
    per_view        (3, 11) a probe view's accuracy: mean of its row of ``pair_accuracy`` over the other
                    gallery views (10 when all are present).
    condition_mean  (3,) mean of ``per_view`` over the probe views (NM, BG, CL).
    mean            mean of the three condition means: the number papers report (GaitGraph: 76.27 %).
    original_printed_avg  the original GaitGraph script's printed "AVG": the mean of all 3 × 11 × 11
                    entries with the identical-view diagonal set to zero, i.e. 10/11 of ``mean``. Kept only
                    to compare with logs of the original; NaN unless the table is complete.
    num_probes      (3, 11) probe sequences per condition and probe view.
    notes           what was absent from the data and how the means were taken.
    """

    pair_accuracy: np.ndarray
    per_view: np.ndarray
    condition_mean: np.ndarray
    mean: float
    original_printed_avg: float
    num_probes: np.ndarray
    notes: list[str] = field(default_factory=list)
    views: tuple[int, ...] = CASIA_VIEWS
    conditions: tuple[str, ...] = CASIA_CONDITIONS

    @property
    def complete(self) -> bool:
        """True when every (condition, probe view, gallery view ≠ probe view) cell has data."""
        off_diagonal = ~np.eye(len(self.views), dtype=bool)
        return bool(np.all(np.isfinite(self.pair_accuracy[:, off_diagonal])))

    def table(self) -> np.ndarray:
        """(3, 12) per-view accuracies in percent, the last column the condition mean."""
        return 100.0 * np.concatenate([self.per_view, self.condition_mean[:, None]], axis=1)

    def format_table(self) -> str:
        """The per-view table in percent, for printing (columns: the 11 probe views, then the mean)."""
        header = ["probe", *[f"{v}°" for v in self.views], "mean"]
        rows = [[label, *[_pct(x) for x in row]] for label, row in zip(CASIA_PROBE_LABELS, self.table())]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["CASIA-B rank-1 accuracy (%), identical views excluded"]
        lines += ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
                  for r in [header, *rows]]
        lines.append(f"mean of the condition means: {_pct(100.0 * self.mean)}")
        lines.append(f"original script's printed AVG (10/11 of the mean, a known quirk): "
                     f"{_pct(100.0 * self.original_printed_avg)}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table atomically: rows NM, BG, CL; columns 0 … 180 and mean; values in percent."""
        with atomic_path(path, suffix=".csv") as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["condition", *[str(v) for v in self.views], "mean"])
                for label, row in zip(self.conditions, self.table()):
                    writer.writerow([label, *["" if np.isnan(x) else f"{x:.4f}" for x in row]])


def _pct(percent: float) -> str:
    return "n/a" if np.isnan(percent) else f"{percent:.2f}"


def casia_b_table(features, subjects, conditions, sequences, views) -> CasiaResult:
    """CASIA-B cross-view evaluation (the protocol of GaitSet / GaitGraph).

    One row per sequence: ``features`` (N, D); ``subjects``; ``conditions`` 0 = nm, 1 = bg, 2 = cl;
    ``sequences`` (the ``nn`` of ``nm-05``); ``views`` in degrees (0, 18, …, 180). Pass the test
    subjects (075–124); every row given is used. Gallery: NM#1–4. Probes: NM#5–6, BG#1–2, CL#1–2.
    For each probe and each gallery view other than the probe's, the nearest gallery sequence of that
    view (Euclidean distance; ties go to the earlier row) decides right or wrong.

    Absent views or conditions give NaN cells and a note instead of an error: a probe view averages
    over the gallery views present, a condition over the probe views present, the overall mean over
    the conditions present. ``result.complete`` says whether the full protocol was covered.
    """
    views = _ids("views", views)
    n = views.shape[0]
    subjects = _ids("subjects", subjects, n)
    conditions = _ids("conditions", conditions, n)
    sequences = _ids("sequences", sequences, n)
    features = _features(features, n)

    bad_views = sorted(set(np.unique(views).tolist()) - set(CASIA_VIEWS))
    if bad_views:
        raise InputError(f"CASIA-B views are 0, 18, …, 180 degrees; found {_few(bad_views)}")
    bad_conditions = sorted(set(np.unique(conditions).tolist()) - set(CASIA_PROBE_SEQUENCES))
    if bad_conditions:
        raise InputError(f"CASIA-B condition codes are 0 (nm), 1 (bg), 2 (cl); found {_few(bad_conditions)}")

    num_views = len(CASIA_VIEWS)
    view_pos = views // 18
    is_gallery = (conditions == CASIA_GALLERY_CONDITION) & np.isin(sequences, CASIA_GALLERY_SEQUENCES)
    probe_condition = np.full(n, -1, dtype=np.int64)
    for code, seqs in CASIA_PROBE_SEQUENCES.items():
        probe_condition[(conditions == code) & np.isin(sequences, seqs)] = code
    probes = np.nonzero(probe_condition >= 0)[0]
    if not is_gallery.any():
        raise InputError("no CASIA-B gallery sequence (condition nm, sequences 1-4) in the data")
    if probes.size == 0:
        raise InputError("no CASIA-B probe sequence (nm-05/06, bg-01/02, cl-01/02) in the data")

    notes: list[str] = []
    unused = n - int(is_gallery.sum()) - probes.size
    if unused:
        notes.append(f"{unused} sequence(s) are neither gallery (NM#1-4) nor probe (NM#5-6, BG#1-2, CL#1-2) "
                     f"and were ignored")

    p_cond, p_view, p_subject = probe_condition[probes], view_pos[probes], subjects[probes]
    num_probes = np.zeros((3, num_views), dtype=np.int64)
    np.add.at(num_probes, (p_cond, p_view), 1)
    correct = np.zeros((3, num_views, num_views), dtype=np.int64)
    gallery_present = np.zeros(num_views, dtype=bool)
    probe_features = features[probes]
    for g in range(num_views):
        cols = np.nonzero(is_gallery & (view_pos == g))[0]
        if cols.size == 0:
            continue
        gallery_present[g] = True
        # Euclidean nearest = squared-Euclidean nearest; argmin takes the first of equal distances.
        nearest = np.argmin(squared_euclidean(probe_features, features[cols]), axis=1)  # (P,)
        hit = subjects[cols][nearest] == p_subject
        np.add.at(correct, (p_cond, p_view, np.full(probes.size, g)), hit.astype(np.int64))

    with np.errstate(invalid="ignore", divide="ignore"):
        pair = correct / num_probes[:, :, None]
    pair[num_probes == 0, :] = np.nan
    pair[:, :, ~gallery_present] = np.nan
    pair[:, np.arange(num_views), np.arange(num_views)] = np.nan

    per_view = _nanmean(pair, axis=2)
    condition_mean = _nanmean(per_view, axis=1)
    present_conditions = np.isfinite(condition_mean)
    mean = float(condition_mean[present_conditions].mean()) if present_conditions.any() else float("nan")

    missing_gallery = [CASIA_VIEWS[g] for g in range(num_views) if not gallery_present[g]]
    if missing_gallery:
        notes.append(f"no gallery sequence (NM#1-4) at view(s) {_degrees(missing_gallery)}: a probe view averages "
                     f"over the other gallery views present, fewer than the protocol's 10")
    for c, label in enumerate(CASIA_PROBE_LABELS):
        absent = [CASIA_VIEWS[v] for v in range(num_views) if num_probes[c, v] == 0]
        if len(absent) == num_views:
            notes.append(f"no {label} probe in the data: row {CASIA_CONDITIONS[c]} is NaN and left out of the mean")
        elif absent:
            notes.append(f"no {label} probe at view(s) {_degrees(absent)}: those cells are NaN and the "
                         f"{CASIA_CONDITIONS[c]} mean covers the other {num_views - len(absent)} view(s)")
    off_diagonal = ~np.eye(num_views, dtype=bool)
    complete = bool(np.all(np.isfinite(pair[:, off_diagonal])))
    if complete:
        # The original zeroes the identical-view diagonal and then averages all 3 x 11 x 11 entries.
        original_printed_avg = float(pair[:, off_diagonal].sum() / pair.size)
    else:
        original_printed_avg = float("nan")
        notes.append("the table is incomplete: the original script's printed AVG is not defined (NaN)")
    return CasiaResult(pair_accuracy=pair, per_view=per_view, condition_mean=condition_mean, mean=mean,
                       original_printed_avg=original_printed_avg, num_probes=num_probes, notes=notes)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over the finite entries along ``axis``; NaN where there are none (no warning)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _degrees(views) -> str:
    return ", ".join(f"{v}°" for v in views)


# ---------------------------------------------------------------------------------------------- MARS

MARS_PROTOCOLS = ("torchreid", "official")
MARS_QUERY_LIST = Path(__file__).resolve().parents[1] / "data_files" / "mars_query_tracklets.csv"
MARS_QUERY_COLUMNS = ("person_id", "camera_id", "tracklet")
MARS_JUNK_PID = -1


class MarsSplit(NamedTuple):
    """Row indices into the test tracklets: queries (in query-list order), gallery (ascending), junk.

    ``junk_idx`` are the person −1 rows, left out of the gallery under both protocols (a junk item is
    ignored in the ranking, which is the same as its absence). The other junk of both protocols, gallery
    items with the query's person and camera, is removed per query by :func:`gafnet.metrics.rank_queries`.
    """

    query_idx: np.ndarray
    gallery_idx: np.ndarray
    junk_idx: np.ndarray


def load_mars_query_list(path: str | os.PathLike | None = None) -> np.ndarray:
    """(Q, 3) int64 rows (person_id, camera_id, tracklet) from a CSV with that header.

    ``None`` reads the shipped list of the 1,980 standard MARS query tracklets.
    """
    path = check_regular_file(MARS_QUERY_LIST if path is None else path, "MARS query list")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a UTF-8 BOM is not part of the header
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise InputError(f"cannot read the MARS query list {path}: {exc.strerror or exc}") from None
    if not rows:
        raise InputError(f"{path}: empty file; expected a header {','.join(MARS_QUERY_COLUMNS)} and one row per query")
    header = [h.strip() for h in rows[0]]
    if header != list(MARS_QUERY_COLUMNS):
        raise InputError(f"{path}: header is {','.join(header)!r}, expected {','.join(MARS_QUERY_COLUMNS)!r}")
    keys = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        try:
            if len(row) != 3:
                raise ValueError
            keys.append([int(cell) for cell in row])
        except ValueError:
            raise InputError(f"{path}, line {line}: expected three integers "
                             f"({', '.join(MARS_QUERY_COLUMNS)}), found {','.join(row)!r}") from None
    if not keys:
        raise InputError(f"{path}: no query rows after the header")
    table = np.asarray(keys, dtype=np.int64)
    _, first, counts = np.unique(table, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dups = [tuple(table[i].tolist()) for i in np.sort(first[counts > 1])]
        raise InputError(f"{path}: query tracklet(s) listed more than once: {_few(dups)}")
    if np.any(table[:, 0] == MARS_JUNK_PID):
        raise InputError(f"{path}: person -1 is MARS junk and cannot be a query")
    return table


def _check_protocol(protocol: str) -> str:
    if protocol not in MARS_PROTOCOLS:
        raise InputError(f"Unknown MARS protocol: {protocol!r}. Must be one of {list(MARS_PROTOCOLS)}")
    return protocol


def mars_split(pids, camids, tracklets, query_list: str | os.PathLike | None = None,
               protocol: str = "torchreid") -> MarsSplit:
    """Query, gallery and junk rows of the MARS test tracklets under ``protocol`` (module docstring).

    ``pids``, ``camids``, ``tracklets`` (N,) identify each test tracklet (``0065C1T0002`` → 65, 1, 2).
    Queries are the tracklets of ``query_list`` (a CSV person_id,camera_id,tracklet; default the shipped
    standard list); every query must be present exactly once, or an :class:`InputError` lists the missing.

    - ``"torchreid"``: gallery = every non-query row except person −1.
    - ``"official"``: gallery = every row except person −1, the queries included.
    """
    _check_protocol(protocol)
    tracklets = _ids("tracklets", tracklets)
    n = tracklets.shape[0]
    pids, camids = _ids("pids", pids, n), _ids("camids", camids, n)
    queries = load_mars_query_list(query_list)
    source = "the standard MARS query list" if query_list is None else str(query_list)

    row_of: dict[tuple[int, int, int], int] = {}
    repeated = set()
    for i, key in enumerate(zip(pids.tolist(), camids.tolist(), tracklets.tolist())):
        if key in row_of:
            repeated.add(key)
        row_of[key] = i
    query_keys = [tuple(k) for k in queries.tolist()]
    missing = [k for k in query_keys if k not in row_of]
    if missing:
        raise InputError(
            f"{len(missing)} of the {len(query_keys)} query tracklets of {source} are not in the data, "
            f"e.g. (person, camera, tracklet) {_few(missing)}; the protocol needs every query (were short "
            f"tracklets dropped, or is this not the MARS test set?); pass query_list to use another query set")
    ambiguous = [k for k in query_keys if k in repeated]
    if ambiguous:
        raise InputError(f"query tracklet(s) appear more than once in the data: {_few(ambiguous)}; "
                         f"give one row per tracklet")

    query_idx = np.asarray([row_of[k] for k in query_keys], dtype=np.int64)
    junk = pids == MARS_JUNK_PID
    in_gallery = ~junk
    if protocol == "torchreid":
        in_gallery[query_idx] = False
    return MarsSplit(query_idx=query_idx, gallery_idx=np.nonzero(in_gallery)[0], junk_idx=np.nonzero(junk)[0])


def evaluate_mars(features, pids, camids, tracklets, query_list: str | os.PathLike | None = None,
                  protocol: str = "torchreid", max_rank: int = 50) -> RankResult:
    """MARS CMC/mAP under ``protocol`` ("torchreid" or "official"; see the module docstring).

    ``features`` (N, D), one row per test tracklet, ranked by squared Euclidean distance.

    - ``"torchreid"``: as :func:`gafnet.metrics.rank_queries`; ``cmc``/``mAP`` average over the
      ``num_valid`` queries that have a match in the gallery.
    - ``"official"``: ``cmc``/``mAP`` average over all ``num_queries`` queries; a query without a valid
      match counts as a miss at every rank and has ``average_precision`` 0 (``first_match_rank`` −1).
      AP is the non-interpolated AP, not the MATLAB code's trapezoid rule.
    """
    split = mars_split(pids, camids, tracklets, query_list=query_list, protocol=protocol)
    tracklets = _ids("tracklets", tracklets)
    pids, camids = _ids("pids", pids), _ids("camids", camids)
    features = _features(features, tracklets.shape[0])
    q, g = split.query_idx, split.gallery_idx
    if g.size == 0:
        raise InputError("the MARS gallery is empty: every test tracklet is a query or junk (person -1)")
    result = rank_features(features[q], features[g], pids[q], pids[g], camids[q], camids[g], max_rank=max_rank)
    if protocol == "official":
        result = _average_over_all_queries(result)
    return result


def _average_over_all_queries(result: RankResult) -> RankResult:
    """Rescale CMC/mAP from the valid queries to all queries (invalid ones: miss, AP 0)."""
    share = result.num_valid / result.num_queries
    ap = np.where(result.valid, result.average_precision, 0.0)
    return RankResult(cmc=(result.cmc * share).astype(np.float32), mAP=float(ap.mean()),
                      num_valid=result.num_valid, num_queries=result.num_queries,
                      first_match_rank=result.first_match_rank, average_precision=ap)
