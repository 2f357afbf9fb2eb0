"""The root ``evaluate.py``: fuse precomputed appearance and gait embeddings and report CMC/mAP.

Kept importable (the script itself is a thin wrapper) so tests can call :func:`main` directly. Stages:
options (checked before anything is read) → data (every CSV read once, in parallel, through the parse
cache) → per backbone: the fusion at the reported value, appearance only, the optional grid (sweep or cv) →
summary, sweep table, JSON (written first), plot.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path, check_target, write_json
from .cache import cache_root, check_regular_file
from .embeddings import ParseCache, read_embedding_csv
from .errors import InputError, user_errors
from .fusion import (BACKBONES, FUSIONS, MAX_LAMBDA, SCORE_NORMS, Fusion, SplitData, available_folders,
                     build_split, cross_validated_choice, evaluate_rerank, evaluate_values, layout_csv,
                     read_tables, reduce_appearance)
from .layout import NUM_SPLITS
from .metrics import RankResult, collapse_warning

RANKS = (1, 5, 10, 20)
DEFAULT_CV_GRID = {"concat": "0:2:0.01", "score": "0:1:0.01"}
MAX_GRID = 1001
SYNTHETIC_BANNER = ("SYNTHETIC DATA (generated embeddings, not the paper's): "
                    "these numbers are NOT comparable with the paper's")
DEFAULT_PLOT = "lambda_sweep.png"


# ------------------------------------------------------------------------------------------------ options
def parse_grid(text: str, upper: float | None = None) -> np.ndarray:
    """'START:STOP:STEP' → the inclusive grid START, START+STEP, …, STOP (at most MAX_GRID values)."""
    try:
        start, stop, step = (float(v) for v in text.split(":"))
    except ValueError:
        raise InputError(f"--sweep {text!r}: expected START:STOP:STEP, e.g. 0:1.5:0.01") from None
    if not np.all(np.isfinite([start, stop, step])):
        raise InputError(f"--sweep {text!r}: START, STOP and STEP must be finite numbers")
    if step <= 0 or stop < start or start < 0:
        raise InputError(f"--sweep {text!r}: need 0 <= START <= STOP and STEP > 0")
    if upper is not None and stop > upper:
        raise InputError(f"--sweep {text!r}: the weight w of --fusion score lies in [0, 1]; STOP must be <= 1")
    if stop > MAX_LAMBDA:
        raise InputError(f"--sweep {text!r}: STOP must be <= {MAX_LAMBDA:g}")
    count = (stop - start) / step + 1e-9
    if not math.isfinite(count) or count + 1 > MAX_GRID:
        raise InputError(f"--sweep {text!r}: more than {MAX_GRID} values; use a larger STEP (time grows with the "
                         "number of values)")
    return np.round(start + step * np.arange(int(math.floor(count)) + 1), 10)


def parse_value(flag: str, text: str | None, upper: float) -> float | str | None:
    """A fusion parameter: None, 'cv' or a finite number in [0, upper]."""
    if text is None or text == "cv":
        return text
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{flag} {text!r}: expected a number or 'cv'") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{flag} {text!r}: must be a finite number >= 0")
    if value > upper:
        raise InputError(f"{flag} {text!r}: must be <= {upper:g}" +
                         (" (w weighs gait against appearance: 0 = appearance only, 1 = gait only)" if upper == 1
                          else " (beyond it the fused ranking is gait-only anyway)"))
    return value


def check_output_path(flag: str, path: str) -> Path:
    """Refuse an output that cannot be written, before any work is done."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{flag} {path}: is a directory; give a file name, e.g. {target / 'out'}")
    check_target(target, flag)  # a device or a FIFO would be replaced by the written file
    parent = target.parent if str(target.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{flag} {path}: {probe} is not a directory")
    try:  # the deepest existing folder must take a new file (as root, os.access says yes even for /proc)
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot write in {probe} ({exc.strerror or exc})") from None
    return target


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate.py",
        description="GAF-Net: fuse appearance and gait embeddings and report CMC/mAP (iLIDS-VID splits or MARS).",
        epilog="Examples:\n  python evaluate.py --backbone pit\n  python evaluate.py --demo\n"
               "  python evaluate.py --sweep 0:1.5:0.01 --output results.json\n  python evaluate.py --lambda_val cv\n"
               "  python evaluate.py --fusion score --weight cv\n"
               "  python evaluate.py --dataset mars --backbone mgh --gait gait1 --lambda_val 0.8",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("ilids", "mars"), default="ilids",
                   help="ilids: <data_path>/ilids/<folder>/{query,gallery}_split<i>.csv (10 splits); mars: "
                        "<data_path>/mars/<folder>/{query,gallery}.csv (default ilids)")
    p.add_argument("--data_path", default="./embeddings",
                   help="root of the embedding tree, the folder holding ilids/ or mars/ (default ./embeddings)")
    p.add_argument("--backbone", default="all",
                   help="appearance folder under <data_path>/<dataset>/: pit, mgh, osnet (the paper's) or any other "
                        "(e.g. one written by tools/extract_appearance.py); all = the paper's three (default all)")
    p.add_argument("--gait", default=None,
                   help="gait folder (default: the paper's for its backbones, pit/osnet gait1, mgh gait2; for other "
                        "backbones gait1)")
    p.add_argument("--fusion", choices=FUSIONS, default="concat",
                   help="concat: the paper's Eq. 4, [a, λ·g] ranked by Euclidean distance; score: sum rule "
                        "(1-w)·N(d_app) + w·N(d_gait) of per-query normalised distances (default concat)")
    p.add_argument("--lambda_val", default=None,
                   help="concat's gait weight λ (a number in [0, 1e6]), or 'cv' to choose it per split on the other "
                        "splits (default: the paper's λ: pit 0.74, mgh 0.84, osnet 0.90; required for other backbones "
                        "unless --sweep is given)")
    p.add_argument("--weight", default=None,
                   help="score fusion's gait weight w in [0, 1] (0 = appearance only), or 'cv' (required with "
                        "--fusion score unless --sweep is given)")
    p.add_argument("--score_norm", choices=SCORE_NORMS, default="minmax",
                   help="per-query normalisation N of --fusion score: minmax to [0, 1] or zscore (default minmax)")
    p.add_argument("--pca_dim", type=int, default=None,
                   help="reduce the appearance features to this many dimensions by PCA before fusing (default: off)")
    p.add_argument("--pca_fit", default=None,
                   help="embedding CSV to fit the PCA on (e.g. training-set features of the same model); default: "
                        "each split's own query + gallery appearance features, without labels (transductive)")
    p.add_argument("--pca_whiten", action="store_true", help="whiten the PCA components (default off)")
    p.add_argument("--protocol", choices=("torchreid", "official"), default="torchreid",
                   help="MARS only: torchreid (gallery = gallery.csv minus junk; queries without a match skipped) or "
                        "official (gallery also holds the queries; every query counts) (default torchreid)")
    p.add_argument("--sweep", metavar="START:STOP:STEP", default=None,
                   help=f"evaluate every value of this grid (λ, or w with --fusion score; at most {MAX_GRID} values): "
                        f"a table and a PNG plot (see --plot)")
    p.add_argument("--plot", default=None, help=f"PNG written with --sweep (default {DEFAULT_PLOT})")
    p.add_argument("--output", metavar="FILE.json", default=None, help="write all results as JSON (atomically)")
    p.add_argument("--rerank", action="store_true",
                   help="k-reciprocal re-ranking (Zhong et al. 2017, torchreid's implementation) of the fused "
                        "distance; it needs several gallery tracklets per identity to help and LOWERS Rank-1 on "
                        "iLIDS-VID, which has one per identity (see README); slow (about 1 s per split)")
    p.add_argument("--splits", default=None, help="iLIDS-VID: comma-separated split numbers (default: all 10)")
    p.add_argument("--demo", action="store_true",
                   help="evaluate a generated SYNTHETIC tree in the released layout (cached; see --seed). About 500 MB "
                        "of CSV (iLIDS-VID) or 660 MB (--dataset mars) and their parse cache on first use")
    p.add_argument("--seed", type=int, default=0, help="seed of the --demo tree, >= 0 (default 0)")
    p.add_argument("--demo_small", action="store_true", help="--demo with small dimensions: a few MB, a faster first run (implies --demo)")
    p.add_argument("--cache_dir", "--cache-dir", dest="cache_dir", default=None,
                   help=f"the project cache: parsed CSVs (embeddings/) and the demo trees (demo/) (default "
                        f"$GAFNET_CACHE_DIR or {cache_root()})")
    p.add_argument("--no_cache", action="store_true", help="parse every CSV, read and write no parse cache")
    p.add_argument("--quiet", action="store_true", help="no progress, notes or per-split lines: the summary only")
    return p


@dataclass
class Options:
    """The checked options: everything that can be wrong with them is found before any file is read."""

    dataset: str
    fusion: Fusion
    names: list[str]
    gaits: dict
    value: float | str | None  # λ or w, 'cv', or None (the paper's λ; or the best of the sweep)
    grid: np.ndarray | None
    splits: list[int | None]
    pca_dim: int | None
    plot: Path | None
    output: Path | None
    protocol: str = "torchreid"


def resolve_options(args: argparse.Namespace, data_path: Path) -> Options:
    fusion = Fusion(args.fusion, args.score_norm)
    if fusion.kind == "concat" and args.weight is not None:
        raise InputError("--weight is the parameter of --fusion score; with concat use --lambda_val")
    if fusion.kind == "score" and args.lambda_val is not None:
        raise InputError("--lambda_val is the parameter of --fusion concat; with --fusion score use --weight")
    value = parse_value("--weight", args.weight, 1.0) if fusion.kind == "score" else \
        parse_value("--lambda_val", args.lambda_val, MAX_LAMBDA)
    grid = parse_grid(args.sweep, upper=1.0 if fusion.kind == "score" else None) if args.sweep else None
    if value == "cv" and grid is None:
        grid = parse_grid(DEFAULT_CV_GRID[fusion.kind])
    if args.plot is not None and args.sweep is None:
        raise InputError("--plot is written with --sweep only; add e.g. --sweep 0:1.5:0.01")
    if args.rerank and fusion.kind != "concat":
        raise InputError("--rerank works with --fusion concat only")
    if args.pca_dim is not None and args.pca_dim < 1:
        raise InputError(f"--pca_dim {args.pca_dim}: must be at least 1")
    if (args.pca_fit or args.pca_whiten) and args.pca_dim is None:
        raise InputError("--pca_fit and --pca_whiten need --pca_dim")
    if args.pca_fit:
        check_regular_file(args.pca_fit, "--pca_fit")
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}: must be >= 0")
    if args.dataset == "mars":
        if args.splits:
            raise InputError("--splits is for iLIDS-VID; MARS has one query/gallery set")
        splits: list[int | None] = [None]
    elif args.splits:
        try:
            splits = sorted({int(v) for v in args.splits.split(",")})
        except ValueError:
            raise InputError(f"--splits {args.splits!r}: expected comma-separated split numbers, e.g. 0,1,2") from None
        if any(s < 0 or s >= NUM_SPLITS for s in splits):
            raise InputError(f"--splits {args.splits!r}: splits are numbered 0..{NUM_SPLITS - 1}")
    else:
        splits = list(range(NUM_SPLITS))
    if value == "cv" and len(splits) < 2:
        raise InputError(f"{'--weight' if fusion.kind == 'score' else '--lambda_val'} cv chooses the value of each "
                         "split on the other splits: it needs at least two splits (not MARS or a single --splits)")
    folders = available_folders(data_path, args.dataset)
    names = _backbones(args, folders)
    gaits = {n: _gait_folder(args, n, folders) for n in names}
    for name in names:  # a value must come from somewhere
        paper = args.dataset == "ilids" and name in BACKBONES and fusion.kind == "concat"
        if value is None and grid is None and not paper:
            flag = "--weight" if fusion.kind == "score" else "--lambda_val"
            why = ("the paper gives no w for score fusion" if fusion.kind == "score" else
                   "the paper gives no λ for MARS" if args.dataset == "mars" else
                   f"{name!r} is not one of the paper's backbones, so there is no paper λ")
            raise InputError(f"{why}: pass {flag} (a number, or cv), or --sweep START:STOP:STEP")
    plot = check_output_path("--plot", args.plot or DEFAULT_PLOT) if args.sweep else None
    output = check_output_path("--output", args.output) if args.output else None
    return Options(args.dataset, fusion, names, gaits, value, grid, splits, args.pca_dim, plot, output, args.protocol)


def _backbones(args, folders: list[str]) -> list[str]:
    if args.backbone == "all":
        if args.dataset == "mars":
            raise InputError(f"--dataset mars needs --backbone NAME (folders found: {', '.join(folders) or 'none'})")
        return list(BACKBONES)
    if folders and args.backbone not in folders:
        raise InputError(f"--backbone {args.backbone}: no folder {args.backbone!r} under {args.data_path}/"
                         f"{args.dataset}/ (folders: {', '.join(folders)})")
    return [args.backbone]


def _gait_folder(args, name: str, folders: list[str]) -> str:
    if args.gait:
        if folders and args.gait not in folders:
            raise InputError(f"--gait {args.gait}: no folder {args.gait!r} under {args.data_path}/{args.dataset}/ "
                             f"(folders: {', '.join(folders)})")
        return args.gait
    if args.dataset == "ilids" and name in BACKBONES:
        return BACKBONES[name].gait
    if not folders or "gait1" in folders:
        return "gait1"
    raise InputError(f"no gait folder 'gait1' under {args.data_path}/{args.dataset}/: pass --gait FOLDER "
                     f"(folders: {', '.join(folders)})")


# --------------------------------------------------------------------------------------------------- data
def check_tree(options: Options, data_path: Path) -> None:
    """Every file there before anything is read; the released iLIDS-VID layout gets the downloader's check."""
    if options.dataset == "ilids":
        from .data.verify import check_embeddings

        folders = sorted(set(options.names) | set(options.gaits.values()))
        report = check_embeddings(data_path, folders=folders, splits=options.splits)
        if not report.ok:
            summary = "; ".join(line.strip() for line in report.summary(max_lines=1).splitlines())
            raise InputError(summary.rstrip(".") + "; or pass --data_path, or run 'python evaluate.py --demo' "
                             "for a synthetic tree")
        return
    for folder in sorted(set(options.names) | set(options.gaits.values())):
        for kind in ("query", "gallery"):
            path = layout_csv(data_path, "mars", folder, kind, None)
            if not path.is_file():
                raise InputError(f"missing: {path} (the MARS layout is <data_path>/mars/<folder>/{{query,gallery}}.csv; "
                                 "or run 'python evaluate.py --demo --dataset mars')")


def load_all(options: Options, data_path: Path, cache: ParseCache, args, quiet: bool) -> dict:
    """Every split of every backbone, each CSV read once (in parallel), with progress."""
    folders = list(dict.fromkeys([*options.names, *options.gaits.values()]))
    paths = [layout_csv(data_path, options.dataset, f, k, s) for f in folders for s in options.splits
             for k in ("query", "gallery")]
    progress = None
    if not quiet:
        from tqdm import tqdm

        progress = tqdm(total=len(paths), desc="reading embeddings", unit="file", file=sys.stderr,
                        dynamic_ncols=True, leave=False, disable=None)
    tables = {}
    for start in range(0, len(paths), 8):
        batch = paths[start:start + 8]
        for path, table in zip(batch, read_tables(batch, cache)):
            tables[path] = table
        if progress is not None:
            progress.update(len(batch))
    if progress is not None:
        progress.close()
    fit = None
    if args.pca_fit:
        fit = read_embedding_csv(args.pca_fit, cache).features
    loaded = {}
    for name in options.names:
        rows = []
        for split in options.splits:
            q_app, g_app, q_gait, g_gait = (tables[layout_csv(data_path, options.dataset, f, k, split)]
                                            for f in (name, options.gaits[name]) for k in ("query", "gallery"))
            data = build_split(split, q_app, g_app, q_gait, g_gait, protocol=args.protocol)
            if options.pca_dim is not None:
                data = reduce_appearance(data, options.pca_dim, whiten=args.pca_whiten, fit_features=fit)
            rows.append(data)
        loaded[name] = rows
    return loaded


def collapse_warnings(loaded: dict, gaits: dict) -> list[str]:
    """One warning per folder whose (L2-normalised) features are (nearly) all the same, naming its splits."""
    found: dict[str, tuple[list, str]] = {}
    for name, splits in loaded.items():
        for part, folder in (("app", name), ("gait", gaits[name])):
            for data in splits:
                feats = [getattr(data, f"q_{part}"), getattr(data, f"g_{part}")]
                message = collapse_warning(feats, f"{folder} {data.label}", unit_rows=True)  # normalised parts
                if message is not None:
                    labels, first = found.get(folder, ([], message))
                    if data.label not in labels:
                        labels.append(data.label)
                    found[folder] = (labels, first)
    out = []
    for folder, (labels, first) in found.items():
        extra = f" (also: {', '.join(labels[1:])})" if len(labels) > 1 else ""
        out.append(first + extra + "; fusing them changes nothing")
    return out


# --------------------------------------------------------------------------------------------- evaluating
def _percent(result: RankResult) -> dict:
    """Rank-k in % for k ≤ the gallery size (larger k: None, the CMC is only as long as the gallery), and mAP."""
    cmc = result.cmc
    return {**{f"rank{r}": (100.0 * float(cmc[r - 1]) if r <= len(cmc) else None) for r in RANKS},
            "mAP": 100.0 * result.mAP}


def _mean(rows: list[dict]) -> dict:
    return {k: (None if any(r[k] is None for r in rows) else float(np.mean([r[k] for r in rows]))) for k in rows[0]}


def _fmt(value, width: int = 6) -> str:
    return f"{'–':>{width}s}" if value is None else f"{value:{width}.2f}"


def _split_line(name: str, data: SplitData, param: str, value: float, m: dict, extra: str = "") -> str:
    ranks = "  ".join(f"Rank-{r} {_fmt(m[f'rank{r}'])}" for r in RANKS)
    return f"  {name:6s} {data.label}: {param}={value:.2f}  {ranks}  mAP {m['mAP']:6.2f}{extra}"


def evaluate_backbone(name: str, splits: list[SplitData], options: Options, rerank: bool, quiet: bool,
                      dataset: str) -> dict:
    """All numbers of one backbone: per split at its value, appearance-only, and (with a grid) the sweep."""
    fusion, grid = options.fusion, options.grid
    cv = options.value == "cv"
    paper = BACKBONES.get(name) if dataset == "ilids" and fusion.kind == "concat" else None
    fixed = options.value if isinstance(options.value, float) else (paper.paper_lambda if paper else None)
    sweep = chosen = None
    per_split_all = None
    best_index = None
    if grid is not None:  # every value of the grid, every split, plus the reported value and 0, in one call
        tail = ([fixed] if fixed is not None else []) + [0.0]
        per_split_all = [evaluate_values(s, [*grid, *tail], fusion) for s in splits]
        r1 = np.array([[100.0 * r.cmc[0] for r in row[:len(grid)]] for row in per_split_all])
        mp = np.array([[100.0 * r.mAP for r in row[:len(grid)]] for row in per_split_all])
        sweep = {fusion.parameter_key: [float(v) for v in grid], "rank1": r1.mean(0).tolist(), "mAP": mp.mean(0).tolist()}
        if cv:
            chosen_index = cross_validated_choice(r1, mp, grid)
            chosen = [float(grid[i]) for i in chosen_index]
        elif fixed is None:  # no value given: report the best of the grid (chosen on the test data: optimistic)
            best_index = int(np.lexsort((np.arange(len(grid)), -mp.mean(0), -r1.mean(0)))[0])
            fixed = float(grid[best_index])
    rows, app_rows, out_splits = [], [], []
    iterator = list(enumerate(splits))
    if rerank and not quiet:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"{name}: re-ranking", unit="split", file=sys.stderr, leave=False, disable=None)
    for i, data in iterator:
        value = chosen[i] if cv else fixed
        if rerank:
            fused, app = evaluate_rerank(data, value, fusion), evaluate_rerank(data, 0.0, fusion)
        elif per_split_all is not None:
            row = per_split_all[i]
            fused = row[chosen_index[i]] if cv else (row[best_index] if best_index is not None else row[len(grid)])
            app = row[-1]
        else:
            fused, app = evaluate_values(data, [value, 0.0], fusion)
        m = _percent(fused)
        rows.append(m)
        app_rows.append({"rank1": 100.0 * float(app.cmc[0]), "mAP": 100.0 * app.mAP})
        entry = {"split": data.split, "cmc": [100.0 * float(v) for v in fused.cmc[:20]], "mAP": m["mAP"],
                 "num_valid_queries": fused.num_valid, "num_queries": fused.num_queries}
        if cv:
            entry[fusion.parameter_key] = value
        out_splits.append(entry)
        if not quiet:
            for note in data.notes:
                print(f"  note: {note}")
            extra = "  (chosen on the other splits)" if cv else ""
            print(_split_line(name, data, fusion.parameter, value, m, extra))
    result = {"gait": None, fusion.parameter_key: "cv" if cv else fixed, "splits": out_splits,
              "mean": _mean(rows), "appearance_only": _mean(app_rows)}
    if best_index is not None:
        result["value_source"] = "best of the sweep on the test splits (optimistic)"
    if cv:
        result[f"chosen_{fusion.parameter_key}s"] = chosen
    if sweep is not None:
        result["sweep"] = sweep
    return result


# ---------------------------------------------------------------------------------------------- printing
def print_summary(results: dict, synthetic: bool, rerank: bool, options: Options) -> None:
    fusion = options.fusion
    width = 112
    print()
    print("=" * width)
    protocol = f", MARS {options.protocol} protocol" if options.dataset == "mars" else ""
    where = "MARS" if options.dataset == "mars" else "mean over iLIDS-VID splits"
    print(f"FINAL SUMMARY  ({where}, %; {fusion.describe()}{protocol}"
          + (", k-reciprocal re-ranking" if rerank else "") + (f", PCA {options.pca_dim}-d" if options.pca_dim else "")
          + ")")
    if synthetic:
        print(SYNTHETIC_BANNER)
    print("=" * width)
    param = fusion.parameter
    print(f"{'Backbone':8s} {'Gait':6s} {param:>5s} {'Rank-1':>7s} {'Rank-5':>7s} {'Rank-10':>7s} {'Rank-20':>7s} "
          f"{'mAP':>6s} {'App R1':>7s} {'Gain':>6s} {'Paper':>6s}  Match")
    print("-" * width)
    for name, r in results.items():
        m = r["mean"]
        value = r[fusion.parameter_key]
        value_s = "cv" if value == "cv" else f"{value:.2f}"
        gain = m["rank1"] - r["appearance_only"]["rank1"]
        spec = BACKBONES.get(name) if options.dataset == "ilids" and fusion.kind == "concat" else None
        if synthetic:
            mark = "SYNTHETIC (no comparison)"
        elif spec is None:
            mark = "– (no paper number for this setting)"
        elif value == "cv" or abs(float(value) - spec.paper_lambda) > 1e-9 or rerank or r["gait"] != spec.gait \
                or options.pca_dim:
            mark = "n/a (not the paper's setting)"
        else:
            mark = "✓" if abs(m["rank1"] - spec.paper["rank1"]) <= 0.01 else "✗"
        paper = f"{spec.paper['rank1']:6.2f}" if spec is not None else f"{'–':>6s}"
        print(f"{name:8s} {r['gait']:6s} {value_s:>5s} {_fmt(m['rank1'], 7)} {_fmt(m['rank5'], 7)} "
              f"{_fmt(m['rank10'], 7)} {_fmt(m['rank20'], 7)} {m['mAP']:6.2f} {r['appearance_only']['rank1']:7.2f} "
              f"{gain:+6.2f} {paper}  {mark}")
    print("-" * width)
    print("App R1 = appearance only; Gain = fused Rank-1 minus appearance-only Rank-1; Paper = the paper's fused "
          "Rank-1 at its λ; – = not available (Rank-k needs at least k gallery tracklets).")
    for name, r in results.items():
        if r.get("value_source"):
            print(f"{name}: {param} = {r[fusion.parameter_key]:.2f} is the {r['value_source']}")


def sweep_rows(grid: list[float], best: dict, marked: dict, max_rows: int = 20) -> list[int]:
    """The rows of the sweep table: about ``max_rows`` evenly spaced values, the ends, and every marked index."""
    step = max(1, math.ceil(len(grid) / max_rows))
    rows = set(range(0, len(grid), step)) | {len(grid) - 1} | set(best.values()) | set(marked.values())
    return sorted(i for i in rows if i is not None)


def print_sweep(results: dict, synthetic: bool, fusion: Fusion, rerank: bool = False) -> None:
    names = [n for n in results if "sweep" in results[n]]
    if not names:
        return
    grid = results[names[0]]["sweep"][fusion.parameter_key]
    param = fusion.parameter
    print()
    print(f"{param} SWEEP (mean over splits, %)" + ("  — " + SYNTHETIC_BANNER if synthetic else ""))
    print(f"{param:>6s} " + " ".join(f"{n + ' R1':>11s} {n + ' mAP':>10s}" for n in names))
    best = {n: int(np.lexsort((np.arange(len(grid)), -np.asarray(results[n]["sweep"]["mAP"]),
                               -np.asarray(results[n]["sweep"]["rank1"])))[0]) for n in names}
    marked = {}
    for n in names:  # the reported value (the paper's λ by default), if it is on the grid
        value = results[n][fusion.parameter_key]
        if isinstance(value, float):
            near = int(np.argmin(np.abs(np.asarray(grid) - value)))
            marked[n] = near if abs(grid[near] - value) < 1e-9 else None
    for i in sweep_rows(grid, best, marked):
        cells = []
        for n in names:
            s = results[n]["sweep"]
            tag = ("*" if best[n] == i else " ") + ("r" if marked.get(n) == i else " ")
            cells.append(f"{s['rank1'][i]:9.2f}{tag} {s['mAP'][i]:10.2f}")
        print(f"{grid[i]:6.3f} " + " ".join(cells))
    for n in names:  # the reported value is always shown, also when the grid does not hold it
        value = results[n][fusion.parameter_key]
        if isinstance(value, float) and marked.get(n) is None and not rerank:
            m = results[n]["mean"]
            print(f"     r  {n} at {param} {value:.3f} (not on the grid): Rank-1 {m['rank1']:.2f}, mAP {m['mAP']:.2f}")
    print(f"* = best Rank-1 of that backbone on the grid (ties: mAP; chosen on the test splits: optimistic); "
          f"r = the reported {param}. Every value is in --output's JSON.")


def _import_plotting() -> None:
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def write_plot(results: dict, path: Path, synthetic: bool, fusion: Fusion, dataset: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: faster to import, no GUI backend
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(11, 4.4), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    param = fusion.parameter
    for name, r in results.items():
        if "sweep" not in r:
            continue
        s = r["sweep"]
        grid = s[fusion.parameter_key]
        value = r[fusion.parameter_key]
        for ax, key in zip(axes, ("rank1", "mAP")):
            line, = ax.plot(grid, s[key], label=name, linewidth=1.6)
            colour = line.get_color()
            ax.axhline(r["appearance_only"][key], color=colour, linestyle="--", linewidth=1)
            best = int(np.lexsort((np.arange(len(grid)), -np.asarray(s["mAP"]), -np.asarray(s["rank1"])))[0])
            ax.plot([grid[best]], [s[key][best]], marker="*", markersize=11, color=colour, linestyle="none")
            if isinstance(value, float):
                ax.axvline(value, color=colour, linestyle=":", linewidth=1)
                ax.plot([value], [np.interp(value, grid, s[key])], "o", color=colour)
    label = "λ (gait weight, concatenation)" if fusion.kind == "concat" else "w (gait weight, score fusion)"
    for ax, ylabel in zip(axes, ("Rank-1 (%)", "mAP (%)")):
        ax.set_xlabel(label)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color="grey", linestyle="--"), Line2D([], [], color="grey", linestyle=":", marker="o"),
                Line2D([], [], color="grey", marker="*", linestyle="none", markersize=10)]
    labels += ["appearance only", f"reported {param} (paper's λ by default)", f"best {param} on the grid"]
    axes[1].legend(handles, labels, fontsize=8, loc="best")
    where = "MARS" if dataset == "mars" else "iLIDS-VID (mean over splits)"
    fig.suptitle(f"GAF-Net fusion on {where}: {param} sweep" + ("  — SYNTHETIC DATA, not the paper's" if synthetic
                                                                else ""))
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


# ------------------------------------------------------------------------------------------------- main
def demo_data(args, cache_dir: Path, quiet: bool) -> Path:
    from .synthetic import demo_tree

    print(SYNTHETIC_BANNER)
    return demo_tree(cache_dir, seed=args.seed, small=args.demo_small, dataset=args.dataset, quiet=quiet)


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    cache_dir = cache_root(args.cache_dir)
    cache = ParseCache(cache_dir, enabled=not args.no_cache)
    synthetic = bool(args.demo or args.demo_small)  # --demo_small alone means --demo with small dimensions
    if synthetic:
        if args.backbone == "all" and args.dataset == "mars":
            args.backbone = "mgh"
        if args.seed < 0:
            raise InputError(f"--seed {args.seed}: must be >= 0")
    options = resolve_options(args, Path(args.data_path) if not synthetic else Path("."))
    if options.plot is not None:  # matplotlib takes a while to import: do it while the CSVs are read
        import threading

        threading.Thread(target=_import_plotting, daemon=True).start()
    data_path = demo_data(args, cache_dir, args.quiet) if synthetic else Path(args.data_path)
    if synthetic:  # the demo tree's folders are known only now
        options = resolve_options(args, data_path)
    else:
        from .synthetic import SYNTHETIC_MARKER, is_synthetic

        synthetic = is_synthetic(data_path)  # a generated tree (e.g. tools/end_to_end.py) is labelled too
        if synthetic:
            print(f"{SYNTHETIC_BANNER} ({data_path} was generated: it holds {SYNTHETIC_MARKER})")
    if args.rerank and options.grid is not None and not args.quiet:
        print(f"note: the {options.fusion.parameter} grid and cross-validated choice use the plain fused distance; "
              "--rerank applies to the reported per-split numbers")
    check_tree(options, data_path)
    loaded = load_all(options, data_path, cache, args, args.quiet)
    for line in collapse_warnings(loaded, options.gaits):
        print(line, file=sys.stderr)
    results = {}
    for name in options.names:
        splits = loaded[name]
        if not args.quiet:
            app_dim, gait_dim = splits[0].app_dim, splits[0].gait_dim
            spec = BACKBONES.get(name)
            dim_note = "" if spec is None or options.pca_dim else (
                " (as in the paper's table)" if app_dim == spec.dim else
                f" (DIFFERS from the paper's table, {spec.dim}; check that these are {name} features)")
            pca = " after PCA" if options.pca_dim else ""
            print(f"{name}: appearance {app_dim}-d{pca}{dim_note}; gait {options.gaits[name]} {gait_dim}-d"
                  + ("" if gait_dim == 128 else " (the released gait embeddings are 128-d)"))
        r = evaluate_backbone(name, splits, options, args.rerank, args.quiet, options.dataset)
        r["gait"] = options.gaits[name]
        results[name] = r
    print_summary(results, synthetic, args.rerank, options)
    if options.grid is not None and (args.sweep is not None or not args.quiet):  # --quiet: the summary only
        print_sweep(results, synthetic, options.fusion, args.rerank)
    key = options.fusion.parameter_key
    if options.value == "cv":
        for name, r in results.items():
            print(f"{name}: {options.fusion.parameter} chosen per split on the other splits: "
                  + ", ".join(f"{v:.2f}" for v in r[f"chosen_{key}s"]))
    out = {"backbones": results, "dataset": options.dataset, "data_path": str(data_path), "synthetic": synthetic,
           "fusion": {"kind": options.fusion.kind, **({"score_norm": options.fusion.norm}
                                                      if options.fusion.kind == "score" else {})},
           "pca": ({"dim": options.pca_dim, "whiten": bool(args.pca_whiten),
                    "fit": args.pca_fit or "each split's query + gallery (transductive)"} if options.pca_dim else None),
           "rerank": bool(args.rerank), "splits": options.splits}
    if options.dataset == "mars":
        out["protocol"] = args.protocol
    if options.output is not None:  # the JSON first: a failing plot must not lose it
        write_json(options.output, out)
        print(f"results written to {options.output}")
    if options.plot is not None:
        write_plot(results, options.plot, synthetic, options.fusion, options.dataset)
        print(f"plot written to {options.plot}")
    if not args.quiet:
        print(f"({time.perf_counter() - started:.2f} s)")
    return out


def main(argv: list[str] | None = None) -> int:
    from threadpoolctl import threadpool_limits

    from .allocator import keep_freed_memory

    keep_freed_memory()  # large arrays are freed and allocated again per split: reuse them (half the CPU time)
    args = build_parser().parse_args(argv)
    # The matrices here are small (150 x 150 per split): multi-threaded BLAS only adds start-up and
    # contention (measured 0.7 s with one thread against 2.3-4.6 s with two on a busy 2-core machine).
    # MARS-size matrices (1,980 x 9,330) do gain from every core.
    limits = 1 if args.dataset == "ilids" else None
    with user_errors("evaluate.py"), threadpool_limits(limits=limits, user_api="blas"):
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
