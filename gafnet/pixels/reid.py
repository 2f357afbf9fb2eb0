"""``reid.py``: re-identify people across videos — tracklets → appearance (+ gait) → fused ranking.

    python reid.py index gallery_cam2/*.mp4 --out gallery.npz [--gait_weights CKPT] [--appearance colour]
    python reid.py search query_cam1.mp4 --gallery gallery.npz --top 10 --out results/
    python reid.py search query_dir/ --gallery gallery.npz      # folders of frames as query tracklets
    python reid.py --demo                                       # offline, on the shipped vtest clip

Index (``.npz``, written atomically after every input, so an interrupted run keeps what was done): a JSON header
(format, version, the appearance and gait models with their weights' SHA-256) and per tracklet: source
(``video#track`` or folder), frames, crop boxes, appearance and gait embeddings, whether it had a pose, and up
to four 32 × 64 thumbnails for the contact sheet. Adding inputs to an existing index computes only the new
ones; an index or query made with other models is refused with both names.

Search ranks every query tracklet against the whole gallery, chunk by chunk (memory bounded), with
``gafnet.metrics.squared_euclidean`` on L2-normalised embeddings and the paper's Eq. 4 fusion
(``gafnet.fusion.fused_distance``, λ = 0.74 by default). Without gait weights the gait column is absent (one
line says how to get weights); a tracklet without any pose is ranked by appearance only and marked so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_json
from ..errors import InputError, cli_main
from .tracklet import Tracklet

PROG = "reid.py"
INDEX_FORMAT = "gafnet-reid-index"
INDEX_VERSION = 1
DEFAULT_LAMBDA = 0.74
THUMB = (64, 32)  # (height, width) of the stored thumbnails
DEMO_DIR = Path(__file__).resolve().parents[1] / "data_files" / "demo"
NO_GAIT = ("gait skipped: no --gait_weights (a checkpoint of gaitgraph/src/train.py or the original GaitGraph "
           "release: python -m gafnet.data download gaitgraph-weights); pass --gait off to say so")


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


# --------------------------------------------------------------------------------------------------- models
class Models:
    """The appearance extractor, the gait model (or none) and the pose backend used to make tracklets."""

    def __init__(self, appearance: str = "colour", appearance_weights=None, gait_weights=None, gait: str = "auto",
                 device: str = "auto", quiet: bool = False):
        from .appearance import build_extractor

        self.appearance = build_extractor(appearance, appearance_weights, device)
        self.appearance_name = appearance
        self.appearance_weights = str(appearance_weights) if appearance_weights else None
        self.appearance_sha = _sha256(appearance_weights) if appearance_weights else None
        self.gait_model = None
        self.gait_name = "off"
        self.gait_sha = None
        self.gait_note = ""
        self.sequence_length = 60
        self.device = device
        if gait == "off":
            self.gait_note = "gait off (--gait off)"
        elif gait_weights:
            from ..gait.checkpoint import build_model_from_checkpoint, load_checkpoint

            ckpt = load_checkpoint(gait_weights)
            self.gait_model = build_model_from_checkpoint(ckpt)
            field = (lambda k: ckpt.get(k)) if isinstance(ckpt, dict) else (lambda k: getattr(ckpt, k, None))
            self.sequence_length = int((field("run_args") or {}).get("sequence_length") or 60)
            self.gait_name = f"GaitGraph {field('model_args')['network_name']} ({Path(gait_weights).name})"
            self.gait_sha = _sha256(gait_weights)
        else:
            self.gait_note = NO_GAIT
        self.pose_backend = None

    def describe(self) -> dict:
        app = self.appearance.describe()
        return {"appearance": {"model": self.appearance_name, "weights_sha256": self.appearance_sha,
                               "weight_free": bool(app.get("weight_free")), "label": app.get("label", app["model"])},
                "gait": {"model": self.gait_name, "weights_sha256": self.gait_sha}}

    def backend(self):
        if self.pose_backend is None:
            from .pose_backends import build_pose_backend

            self.pose_backend = build_pose_backend("mediapipe")
        return self.pose_backend

    def gait_features(self, tracklets: list[Tracklet]) -> tuple[np.ndarray | None, np.ndarray]:
        """(N, E) gait embeddings (NaN rows for tracklets without any pose) and (N,) has-pose flags."""
        has_pose = np.asarray([t.poses is not None and t.pose_found.any() for t in tracklets])
        if self.gait_model is None:
            return None, has_pose
        import tempfile

        from ..gait.poses import load_poses, write_pose_csv

        try:
            from ..gait.extraction import extract_embeddings
        except ImportError:  # pragma: no cover - older layout
            from ..gait.extract import extract_embeddings
        names, rows = [], []
        for k, t in enumerate(tracklets):
            if not has_pose[k]:
                continue
            keep = t.pose_found
            poses = t.poses[keep].copy()
            if t.boxes is not None:  # crop pixels, as the iLIDS-VID / MARS training poses
                poses[:, :, 0] -= t.boxes[keep, None, 0]
                poses[:, :, 1] -= t.boxes[keep, None, 1]
            names += [f"{k + 1:04d}C1T0001F{i:03d}.jpg" for i in range(len(poses))]
            rows.append(poses)
        out = np.full((len(tracklets), 0), np.nan, dtype=np.float32)
        if rows:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "poses.csv"
                write_pose_csv(path, names, np.concatenate(rows))
                pose_set = load_poses(path, "mars", sequence_length=self.sequence_length)
            emb = extract_embeddings(self.gait_model, pose_set, sequence_length=self.sequence_length)
            out = np.full((len(tracklets), emb.shape[1]), np.nan, dtype=np.float32)
            out[np.nonzero(has_pose)[0]] = emb
        return out, has_pose


# --------------------------------------------------------------------------------------------- tracklets
def input_tracklets(paths, models: Models, first_camera: int = 1, max_frames=None, quiet=True) -> list[Tracklet]:
    """Videos (detect + track + pose) and tracklet folders (pose per frame) → tracklets."""
    from .datasets import read_tracklet_folders
    from .media import is_video_name
    from .pose_backends import estimate_tracklet_poses
    from .video import track_video

    out = []
    for camera, path in enumerate(paths, start=first_camera):
        path = Path(path)
        if path.is_dir():
            for t in read_tracklet_folders(path):
                t.poses = estimate_tracklet_poses(models.backend(), t)
                t.source = str(path / t.name) if t.name != path.name else str(path)
                out.append(t)
        elif path.is_file() and is_video_name(path):
            result = track_video(path, camera, models.backend(), max_frames=max_frames, progress=not quiet)
            for t in result.tracklets:
                t.source = f"{path}#{t.tracklet_id}"
                out.append(t)
        elif not path.exists():
            raise InputError(f"{path}: no such file or folder")
        else:
            from .media import open_video

            open_video(path)  # says what is wrong with it
            result = track_video(path, camera, models.backend(), max_frames=max_frames, progress=not quiet)
            out.extend(result.tracklets)
    return out


def thumbnails(t: Tracklet, count: int = 4) -> np.ndarray:
    from .media import cv2_module
    from .tracklet import sample_indices

    cv2 = cv2_module()
    idx = sample_indices(len(t), count)
    thumbs = [cv2.resize(img, (THUMB[1], THUMB[0]), interpolation=cv2.INTER_AREA) for img in t.images(idx)]
    while len(thumbs) < count:
        thumbs.append(np.zeros((THUMB[0], THUMB[1], 3), np.uint8))
    return np.stack(thumbs)


def embed(tracklets: list[Tracklet], models: Models) -> dict:
    """Per-tracklet arrays of an index (or a query set)."""
    app = models.appearance.features(tracklets)
    gait, has_pose = models.gait_features(tracklets)
    n = len(tracklets)
    return {"source": np.asarray([t.source or t.name for t in tracklets], dtype=str),
            "frames": np.asarray([len(t) for t in tracklets], dtype=np.int64),
            "appearance": app.astype(np.float32),
            "gait": gait if gait is not None else np.zeros((n, 0), np.float32),
            "has_pose": has_pose.astype(bool),
            "person_id": np.asarray([-1 if t.person_id is None else t.person_id for t in tracklets], dtype=np.int64),
            "thumbs": np.stack([thumbnails(t) for t in tracklets]) if n else np.zeros((0, 4, *THUMB, 3), np.uint8),
            "boxes": np.asarray([json.dumps(None if t.boxes is None else np.round(t.boxes, 1).tolist())
                                 for t in tracklets], dtype=str)}


# ------------------------------------------------------------------------------------------------- index
def read_index(path) -> tuple[dict, dict]:
    from ..cache import check_regular_file

    path = check_regular_file(path, "--gallery")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        header = json.loads(str(data.pop("header")))
    except Exception as exc:
        raise InputError(f"{path}: not a readable reid index ({type(exc).__name__}); build it again with "
                         "python reid.py index") from None
    if header.get("format") != INDEX_FORMAT:
        raise InputError(f"{path}: not a reid index (format {header.get('format')!r})")
    if header.get("version") != INDEX_VERSION:
        raise InputError(f"{path}: written by index version {header.get('version')}, this code reads "
                         f"{INDEX_VERSION}; build it again with python reid.py index")
    return header, data


def write_index(path, header: dict, data: dict) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, header=np.asarray(json.dumps(header)), **data)


def same_models(a: dict, b: dict, where: str) -> None:
    for part in ("appearance", "gait"):
        if a[part] != b[part]:
            raise InputError(f"{where} was built with {part} {a[part]['model']!r} "
                             f"(weights {str(a[part]['weights_sha256'])[:12]}) but this run uses {b[part]['model']!r} "
                             f"(weights {str(b[part]['weights_sha256'])[:12]}); use the same models or build a new index")


def run_index(args) -> dict:
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give the index file, e.g. gallery.npz")
    models = _models(args)
    header = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "models": models.describe(), "created": time.ctime()}
    data = None
    if out.exists():
        header_old, data = read_index(out)
        same_models(header_old["models"], header["models"], str(out))
        header = header_old
    done = set(data["source"].tolist()) if data is not None else set()
    added = 0
    started = time.perf_counter()
    for camera, path in enumerate(args.inputs, start=1):
        if any(s == str(path) or s.startswith(f"{path}#") or s.startswith(f"{path}/") for s in done):
            print(f"{path}: already in {out}, skipped")
            continue
        tracklets = input_tracklets([path], models, first_camera=camera, max_frames=args.max_frames, quiet=args.quiet)
        if not tracklets:
            print(f"{path}: no person found, nothing added")
            continue
        part = embed(tracklets, models)
        data = part if data is None else {k: np.concatenate([data[k], part[k]]) for k in data}
        write_index(out, header, data)  # after every input: an interrupted run keeps what was done
        added += len(tracklets)
    if data is None:
        raise InputError("no tracklet found in any input; nothing was written")
    if models.gait_note:
        print(f"{PROG}: {models.gait_note}")
    print(f"{out}: {len(data['source'])} tracklets ({added} new) in {time.perf_counter() - started:.1f} s; "
          f"appearance {header['models']['appearance']['label']}, gait {header['models']['gait']['model']}")
    return {"index": str(out), "tracklets": int(len(data["source"])), "added": added}


def _models(args) -> Models:
    return Models(args.appearance, args.appearance_weights, args.gait_weights, args.gait, args.device)


# ------------------------------------------------------------------------------------------------ search
def top_matches(q: dict, g: dict, top: int, lam: float, chunk: int = 20000) -> dict:
    """For each query, the ``top`` gallery rows by fused (or appearance-only) distance, chunked over the gallery."""
    from ..fusion import fused_distance
    from ..metrics import squared_euclidean

    qa, use_gait = _unit(q["appearance"].astype(np.float64)), q["gait"].shape[1] > 0 and g["gait"].shape[1] > 0
    qg = _unit(np.nan_to_num(q["gait"].astype(np.float64))) if use_gait else None
    nq, ng = len(qa), len(g["appearance"])
    k = min(top, ng)
    best_d = np.full((nq, 0), np.inf)
    best_i = np.zeros((nq, 0), np.int64)
    for start in range(0, ng, chunk):
        ga = _unit(g["appearance"][start:start + chunk].astype(np.float64))
        d_app = squared_euclidean(qa, ga)
        d = d_app
        if use_gait:
            gg = _unit(np.nan_to_num(g["gait"][start:start + chunk].astype(np.float64)))
            d_gait = squared_euclidean(qg, gg)
            both = q["has_pose"][:, None] & g["has_pose"][None, start:start + chunk]
            d = np.where(both, fused_distance(d_app, d_gait, lam), d_app)  # no pose: appearance only
        dist = np.concatenate([best_d, d], axis=1)
        idx = np.concatenate([best_i, np.arange(start, start + d.shape[1])[None].repeat(nq, 0)], axis=1)
        keep = np.argsort(dist, axis=1, kind="stable")[:, :k]
        best_d, best_i = np.take_along_axis(dist, keep, 1), np.take_along_axis(idx, keep, 1)
    app = squared_euclidean(qa, _unit(g["appearance"][best_i.ravel()].astype(np.float64))) if nq else None
    d_app = np.stack([app[i, i * k:(i + 1) * k] for i in range(nq)]) if nq else np.zeros((0, k))
    d_gait = None
    if use_gait:
        gg = _unit(np.nan_to_num(g["gait"][best_i.ravel()].astype(np.float64)))
        full = squared_euclidean(qg, gg)
        d_gait = np.stack([full[i, i * k:(i + 1) * k] for i in range(nq)])
    return {"index": best_i, "fused": best_d if use_gait else None, "appearance": d_app, "gait": d_gait}


def run_search(args) -> dict:
    if args.top < 1:
        raise InputError(f"--top must be ≥ 1, got {args.top}")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(p.name not in ("results.json", "contact_sheet.png") for p in out.iterdir())):
        raise InputError(f"--out {out} exists and holds other files; choose a new or empty folder (nothing is deleted)")
    header, g = read_index(args.gallery)
    models = _models(args)
    same_models(header["models"], models.describe(), f"the index {args.gallery}")
    timings = {}
    t = time.perf_counter()
    tracklets = input_tracklets(args.inputs, models, max_frames=args.max_frames, quiet=args.quiet)
    timings["tracklets_s"] = time.perf_counter() - t
    if not tracklets:
        raise InputError(f"no person found in {', '.join(map(str, args.inputs))}; nothing was written")
    t = time.perf_counter()
    q = embed(tracklets, models)
    timings["embed_s"] = time.perf_counter() - t
    t = time.perf_counter()
    m = top_matches(q, g, args.top, args.lambda_val)
    timings["search_s"] = time.perf_counter() - t
    results = results_json(q, g, m, header, args, timings)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    contact_sheet(q, g, m, results, out / "contact_sheet.png")
    if models.gait_note:
        print(f"{PROG}: {models.gait_note}")
    print_table(results)
    print(f"→ {out / 'results.json'}, {out / 'contact_sheet.png'}")
    return results


def results_json(q, g, m, header, args, timings) -> dict:
    queries = []
    for i in range(len(q["source"])):
        matches = []
        for r, j in enumerate(m["index"][i]):
            matches.append({"rank": r + 1, "source": str(g["source"][j]),
                            "fused": None if m["fused"] is None else round(float(m["fused"][i, r]), 5),
                            "appearance": round(float(m["appearance"][i, r]), 5),
                            "gait": None if m["gait"] is None or not (q["has_pose"][i] and g["has_pose"][j])
                            else round(float(m["gait"][i, r]), 5),
                            "appearance_only": bool(not (q["has_pose"][i] and g["has_pose"][j]))})
        queries.append({"source": str(q["source"][i]), "frames": int(q["frames"][i]),
                        "has_pose": bool(q["has_pose"][i]), "matches": matches})
    return {"queries": queries, "models": header["models"], "lambda": args.lambda_val,
            "fusion": "Eq. 4 (d_app + λ²·d_gait)/(1+λ²)" if m["fused"] is not None else "appearance only",
            "gallery": str(args.gallery), "gallery_size": int(len(g["source"])),
            "timings_s": {k: round(v, 3) for k, v in timings.items()}}


def print_table(results: dict) -> None:
    for qd in results["queries"]:
        print(f"query {qd['source']} ({qd['frames']} frames{'' if qd['has_pose'] else ', no pose'}):")
        for mt in qd["matches"]:
            fused = "-" if mt["fused"] is None else f"{mt['fused']:.3f}"
            gait = "-" if mt["gait"] is None else f"{mt['gait']:.3f}"
            print(f"  {mt['rank']:>3}  {mt['source']:<40}  fused {fused:>6}  appearance {mt['appearance']:.3f}  gait {gait}")


def contact_sheet(q, g, m, results, path) -> None:
    """Per query a row: its thumbnails, then the top-k gallery tracklets (rank, distances; green/red frame when the
    person ids are known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nq, k = m["index"].shape
    fig, axes = plt.subplots(nq, k + 1, figsize=(1.9 * (k + 1), 2.6 * nq), squeeze=False)
    for i in range(nq):
        ax = axes[i, 0]
        ax.imshow(np.concatenate(list(q["thumbs"][i]), axis=1)[:, :, ::-1])
        ax.set_title(f"QUERY\n{Path(str(q['source'][i])).name[-22:]}", fontsize=8, fontweight="bold")
        for r in range(k):
            j = m["index"][i, r]
            ax = axes[i, r + 1]
            ax.imshow(np.concatenate(list(g["thumbs"][j][:2]), axis=1)[:, :, ::-1])
            mt = results["queries"][i]["matches"][r]
            d = f"f {mt['fused']:.2f} " if mt["fused"] is not None else ""
            ax.set_title(f"#{r + 1} {Path(str(g['source'][j])).name[-16:]}\n{d}a {mt['appearance']:.2f}"
                         + (f" g {mt['gait']:.2f}" if mt["gait"] is not None else ""), fontsize=7)
            qp, gp = int(q["person_id"][i]), int(g["person_id"][j])
            if qp >= 0 and gp >= 0:
                colour = "#1a9850" if qp == gp else "#d73027"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(4)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"reid.py: {results['fusion']}, λ={results['lambda']}; appearance "
                 f"{results['models']['appearance']['label']}; gait {results['models']['gait']['model']}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


# -------------------------------------------------------------------------------------------------- demo
def run_demo(args) -> dict:
    """Index the second half of every track of the shipped clip, search with the first half."""
    import tempfile

    from .datasets import read_tracklet_folders  # noqa: F401
    from .video import track_video

    clip = next(iter(sorted(DEMO_DIR.glob("*.mp4"))), None)
    if clip is None:
        raise InputError(f"the demo clip is missing from {DEMO_DIR}")
    out = Path(args.out or "reid_demo")
    started = time.perf_counter()
    models = Models("colour", None, args.gait_weights, args.gait, args.device)
    from .detection import HogPeopleDetector

    result = track_video(clip, 1, models.backend(), detector=HogPeopleDetector(scale=1.1), max_frames=args.max_frames,
                         progress=not args.quiet)
    t_track = time.perf_counter() - started
    long_ = [t for t in result.tracklets if len(t) >= 2 * args.demo_min_half]
    halves = []
    for t in long_:
        h = len(t) // 2
        for part, sl in (("first", slice(0, h)), ("second", slice(h, None))):
            halves.append(Tracklet(f"{clip.name}#{t.tracklet_id}:{part}", t.frames[sl], t.row_names[sl],
                                   t.frame_numbers[sl], person_id=t.tracklet_id, camera_id=1 if part == "first" else 2,
                                   boxes=t.boxes[sl], poses=t.poses[sl], source=f"{clip.name}#{t.tracklet_id} {part} half"))
    if not halves:
        raise InputError(f"{clip}: no track long enough for the demo")
    q = embed([t for t in halves if t.camera_id == 1], models)
    g = embed([t for t in halves if t.camera_id == 2], models)
    t = time.perf_counter()
    m = top_matches(q, g, min(args.top, len(g["source"])), args.lambda_val)
    timings = {"detect_track_pose_s": t_track, "search_s": time.perf_counter() - t, **{
        f"{k}_s": v for k, v in result.timings.items()}}
    ns = argparse.Namespace(lambda_val=args.lambda_val, gallery="(demo: second halves)")
    results = results_json(q, g, m, {"models": models.describe()}, ns, timings)
    correct = sum(int(q["person_id"][i] == g["person_id"][m["index"][i, 0]]) for i in range(len(q["source"])))
    results["rank1"] = {"correct": correct, "queries": len(q["source"])}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    contact_sheet(q, g, m, results, out / "contact_sheet.png")
    print(f"demo: {clip.name} ({result.frames} frames): {len(result.tracklets)} tracks, {len(long_)} long enough; "
          f"first halves = queries, second halves = gallery")
    print(f"  appearance: {models.describe()['appearance']['label']}")
    print(f"  gait: {models.describe()['gait']['model']}" + (f" — {models.gait_note}" if models.gait_note else ""))
    print_table(results)
    print(f"Rank-1: {correct}/{len(q['source'])} (track id as identity); total {time.perf_counter() - started:.1f} s; "
          "stages: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print(f"→ {out / 'results.json'}, {out / 'contact_sheet.png'}")
    return results


# ---------------------------------------------------------------------------------------------------- CLI
def _common(p):
    p.add_argument("--appearance", default="colour", help="torchreid model name, or colour (weight-free; default)")
    p.add_argument("--appearance_weights", default=None, help="torchreid checkpoint for --appearance")
    p.add_argument("--gait_weights", default=None, help="GaitGraph checkpoint (train.py's best.pt or the original "
                   "release); without it gait is skipped")
    p.add_argument("--gait", choices=("auto", "off"), default="auto", help="off: no gait, said explicitly")
    p.add_argument("--max_frames", type=int, default=None, help="videos: read at most this many frames")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Re-identify people across videos: tracklets → appearance + "
                                "gait → fused ranking (GAF-Net Eq. 4).")
    p.add_argument("--demo", action="store_true", help="run offline on the shipped vtest clip")
    p.add_argument("--out", default=None, help="demo: output folder (default reid_demo/)")
    p.add_argument("--top", type=int, default=5, help="demo: matches per query (default 5)")
    p.add_argument("--lambda_val", type=float, default=DEFAULT_LAMBDA, help=f"gait weight λ (default {DEFAULT_LAMBDA})")
    p.add_argument("--demo_min_half", type=int, default=8, help=argparse.SUPPRESS)
    _common(p)
    sub = p.add_subparsers(dest="command")
    pi = sub.add_parser("index", help="add videos or tracklet folders to a gallery index")
    pi.add_argument("inputs", nargs="+", help="videos and/or folders of tracklet folders")
    pi.add_argument("--out", required=True, help="index file (.npz); extended if it exists")
    _common(pi)
    ps = sub.add_parser("search", help="rank query tracklets against an index")
    ps.add_argument("inputs", nargs="+", help="query videos and/or folders of tracklet folders")
    ps.add_argument("--gallery", required=True, help="index file written by reid.py index")
    ps.add_argument("--top", type=int, default=10, help="matches per query (default 10)")
    ps.add_argument("--lambda_val", type=float, default=DEFAULT_LAMBDA, help=f"gait weight λ (default {DEFAULT_LAMBDA})")
    ps.add_argument("--out", default="results", help="output folder: results.json + contact_sheet.png (default results/)")
    _common(ps)
    return p


def run(args):
    if args.demo:
        return run_demo(args)
    if args.command == "index":
        return run_index(args)
    if args.command == "search":
        return run_search(args)
    raise InputError("give a command: index, search, or --demo (see --help)")


def main(argv=None) -> int:
    return cli_main(PROG, build_parser(), run, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
