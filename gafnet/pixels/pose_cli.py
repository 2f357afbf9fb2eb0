"""``tools/extract_poses.py``: COCO-17 pose CSVs (GaitGraph's format) from image-folder datasets or videos.

    python tools/extract_poses.py ilids-vid DATA/i-LIDS-VID/sequences --out poses/ilids_mine.csv \\
        [--splits DATA/train-test\\ people\\ splits/train_test_splits_ilidsvid.mat --split_dir poses/splits_mine]
    python tools/extract_poses.py mars DATA/MARS/bbox_test --out poses/mars_test.csv
    python tools/extract_poses.py prid2011 DATA/prid_2011/multi_shot --out poses/prid.csv
    python tools/extract_poses.py video clip1.mp4 clip2.mp4 --out tracks/      # detect + track + pose

The CSVs are read directly by ``gaitgraph/src/train.py iLIDS|mars`` and ``gaitgraph/src/evaluate.py``.
Frames without a detected pose get no row and are counted per tracklet in ``<out>.report.json`` (datasets) or
the ``.tracks.json`` (videos). Every output file is written atomically, after all inputs were read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import check_target, write_json
from ..errors import InputError, cli_main
from .datasets import POSE_FORMAT, ilids_splits, layout_name, read_dataset
from .pose_backends import BACKENDS, build_pose_backend, estimate_tracklet_poses
from .video import MIN_TRACKLET_FRAMES, output_paths, track_video, write_video_outputs

PROG = "extract_poses.py"
SOURCES = ("ilids-vid", "mars", "prid2011", "video")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="COCO-17 poses in GaitGraph's CSV format, from an image-folder "
                                "dataset (iLIDS-VID, MARS, PRID-2011) or from videos (detect + track + pose).")
    p.add_argument("source", choices=SOURCES, help="what the inputs are: a dataset layout, or video files")
    p.add_argument("inputs", nargs="+", help="the dataset folder (ilids-vid: .../sequences, mars: .../bbox_test, "
                   "prid2011: .../multi_shot), or one or more video files")
    p.add_argument("--out", required=True, help="datasets: the pose CSV to write; videos: the output folder "
                   "(<video>.csv + <video>.tracks.json per video)")
    p.add_argument("--pose_backend", default="mediapipe", choices=sorted(BACKENDS),
                   help="pose estimator (default mediapipe: bundled weights, offline; torchvision: Keypoint R-CNN; "
                        "yolo: Ultralytics, AGPL-3.0, optional)")
    p.add_argument("--pose_weights", default=None, help="weights file of the torchvision or yolo backend "
                   "(torchvision default: its own download on first use; yolo: required, e.g. yolo11n-pose.pt)")
    p.add_argument("--pose_upscale", type=float, default=1.0, help="mediapipe: enlarge each crop by this factor "
                   "before estimation (default 1 = native size; 3 reproduces the shipped vtest poses)")
    p.add_argument("--splits", default=None, help="ilids-vid: train_test_splits_ilidsvid.mat; also writes "
                   "train_split{i}.csv / test_split{i}.csv per split")
    p.add_argument("--split_dir", default=None, help="where the split files go (default: splits/ beside --out)")
    p.add_argument("--allow_poseless", action="store_true", help="datasets: go on when a tracklet has no pose in "
                   "any frame (it gets no rows and is listed in the report); default: stop with an error")
    p.add_argument("--save_crops", action="store_true", help="videos: also write every track's crops "
                   "(<video>_crops/cam<c>/person<t>/...png)")
    p.add_argument("--min_length", type=int, default=MIN_TRACKLET_FRAMES, help="videos: tracklets shorter than this "
                   f"(frames) are flagged short and counted, never dropped (default {MIN_TRACKLET_FRAMES})")
    p.add_argument("--max_frames", type=int, default=None, help="videos: read at most this many frames (default all)")
    p.add_argument("--hog_upscale", type=float, default=2.0, help="videos, HOG detector: frame enlargement "
                   "(default 2: people down to ~60 px tall)")
    p.add_argument("--hog_scale", type=float, default=1.05, help="videos, HOG detector: image-pyramid step "
                   "(default 1.05; 1.1 is about twice as fast and finds fewer people)")
    p.add_argument("--name_style", choices=("ilids", "mars"), default="ilids", help="videos: row names "
                   "cam1_person0007_00042.png (ilids, default) or 0007C1T0001F042.jpg (mars: any camera number)")
    p.add_argument("--device", default="auto", help="torchvision/yolo: auto (CUDA if available), cpu or cuda")
    p.add_argument("--cache_dir", default=None, help="project cache (Ultralytics' settings go in <cache>/ultralytics)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _report_path(out: Path) -> Path:
    return out.with_name(out.stem + ".report.json")


def run_dataset(args, layout: str) -> dict:
    if len(args.inputs) != 1:
        raise InputError(f"{layout}: give one dataset folder, got {len(args.inputs)} inputs")
    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; for a dataset give the pose CSV file to write")
    check_target(out, "--out")
    check_target(_report_path(out), "--out")
    if args.splits and layout != "ilids-vid":
        raise InputError(f"--splits is for ilids-vid (its train_test_splits_ilidsvid.mat), not {layout}")
    if args.save_crops:
        raise InputError("--save_crops is for videos; dataset frames already are crops")
    tracklets = read_dataset(layout, args.inputs[0])
    splits = ilids_splits(args.splits, tracklets) if args.splits else None  # a bad .mat stops before any work
    backend = build_pose_backend(args.pose_backend, args.pose_weights, args.device, args.pose_upscale, args.cache_dir)
    started = time.perf_counter()
    items = tracklets
    if not args.quiet:
        from tqdm import tqdm

        items = tqdm(tracklets, desc="poses", unit="tracklet", dynamic_ncols=True)
    names, rows, report, poseless = [], [], [], []
    for t in items:
        poses = estimate_tracklet_poses(backend, t)
        t.poses = poses
        found = t.pose_found
        if not found.any():
            poseless.append(t)
            if not args.allow_poseless:
                raise InputError(f"{t.source_path()}: no pose detected in any of its {len(t)} frames (tracklet "
                                 f"{t.label()}); check the crops, try --pose_upscale 2 or another --pose_backend, or "
                                 "pass --allow_poseless to write the others and list it in the report")
        names.extend(n for n, k in zip(t.row_names, found) if k)
        rows.append(poses[found])
        report.append({"tracklet": t.name, "person_id": t.person_id, "camera_id": t.camera_id,
                       "tracklet_id": t.tracklet_id, "frames": len(t), "frames_without_pose": int((~found).sum())})
    backend.close()
    elapsed = time.perf_counter() - started
    all_rows = np.concatenate(rows) if rows else np.zeros((0, 17, 3), np.float32)
    from ..gait.poses import write_pose_csv

    frames = sum(len(t) for t in tracklets)
    missing = frames - len(names)
    write_pose_csv(out, names, all_rows)
    written = [out]
    if splits is not None:
        split_dir = Path(args.split_dir) if args.split_dir else out.parent / "splits"
        persons = np.asarray([int(Path(n).name.split("_")[1][6:]) for n in names], dtype=np.int64)
        for i, (train, test) in enumerate(splits):
            for part, ids in (("train", train), ("test", test)):
                keep = np.isin(persons, ids)
                path = split_dir / f"{part}_split{i}.csv"
                write_pose_csv(path, [n for n, k in zip(names, keep) if k], all_rows[keep])
                written.append(path)
    summary = {"format": "gafnet-pose-report", "source": layout, "root": str(args.inputs[0]), "csv": str(out),
               "pose_format": POSE_FORMAT[layout], "tracklets": len(tracklets), "frames": frames,
               "rows": len(names), "frames_without_pose": missing,
               "tracklets_without_any_pose": [t.name for t in poseless], "backend": backend.describe(),
               "seconds": round(elapsed, 2), "per_tracklet": report}
    write_json(_report_path(out), summary)
    print(f"{out}: {len(names)} pose rows from {len(tracklets)} tracklets ({frames} frames; {missing} without a pose, "
          f"see {_report_path(out).name}); {frames / max(elapsed, 1e-9):.1f} frames/s with {backend.name}")
    if poseless:
        print(f"  {len(poseless)} tracklet(s) had no pose in any frame and have no rows: "
              + ", ".join(t.name for t in poseless[:5]))
    if splits is not None:
        print(f"  {len(splits)} train/test splits → {split_dir}/{{train,test}}_split{{0..{len(splits) - 1}}}.csv")
    return summary


def run_videos(args) -> list:
    from .detection import HogPeopleDetector
    from .media import open_video

    if args.splits:
        raise InputError("--splits is for the ilids-vid layout, not videos")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file; for videos give an output folder")
    stems = {}
    for path in args.inputs:
        open_video(path)  # every input is checked before any work
        stem = Path(path).stem
        if stem in stems:
            raise InputError(f"{path} and {stems[stem]} would write the same {stem}.csv; rename one")
        stems[stem] = path
        if args.save_crops and output_paths(out_dir, path)["crops"].exists():
            raise InputError(f"{output_paths(out_dir, path)['crops']} exists; remove it or choose another --out "
                             "(crops are never overwritten)")
    if args.min_length < 1:
        raise InputError(f"--min_length must be ≥ 1, got {args.min_length}")
    backend = build_pose_backend(args.pose_backend, args.pose_weights, args.device, args.pose_upscale, args.cache_dir)
    detector = None if backend.multi_person else HogPeopleDetector(upscale=args.hog_upscale, scale=args.hog_scale)
    results = []
    for camera, path in enumerate(args.inputs, start=1):
        started = time.perf_counter()
        result = track_video(path, camera, backend, detector=detector, min_length=args.min_length,
                             max_frames=args.max_frames, name_style=args.name_style, progress=not args.quiet)
        result.timings["total"] = time.perf_counter() - started
        results.append(result)
    backend.close()
    for result in results:  # all videos were read: now the files
        paths = write_video_outputs(result, out_dir, save_crops=args.save_crops)
        t = result.timings
        print(result.summary())
        print(f"  → {paths['csv']}, {paths['json'].name}" + (f", {paths['crops'].name}/" if args.save_crops else ""))
        print("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items())
              + f"; {result.frames / max(t['total'], 1e-9):.2f} frames/s")
    return results


def run(args):
    if args.source == "video":
        return run_videos(args)
    return run_dataset(args, layout_name(args.source))


def main(argv=None) -> int:
    return cli_main(PROG, build_parser(), run, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
