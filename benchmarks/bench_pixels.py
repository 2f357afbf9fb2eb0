#!/usr/bin/env python
"""Speed of the pixel pipeline on real footage (../shared/realdata), CPU; figures are medians of --repeats runs.

    python benchmarks/bench_pixels.py                 # all parts
    python benchmarks/bench_pixels.py --part poses    # poses/s per backend (mediapipe on native-size crops, x3)
    python benchmarks/bench_pixels.py --part video    # frames/s of the offline video path, per-stage timings
    python benchmarks/bench_pixels.py --part appearance   # tracklets/s: colour, osnet_x1_0 (untrained weights)

Targets (2 cores): mediapipe ≥ 15 crops/s at native crop size; the whole offline video path (HOG + tracking +
MediaPipe) on the 100-frame vtest clip under 120 s. Baselines in the same run: mediapipe at native size vs x3
(the shipped vtest poses' setting), HOG pyramid step 1.05 vs 1.1. Untrained networks run at the speed of trained
ones (same operations); Keypoint R-CNN is timed the same way, without weights.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "realdata"
VTEST = REAL / "vtest_tracklets"
CLIP = REAL / "pedestrian_clips" / "vtest_f0230-0329.mp4"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def crops(n: int) -> list[np.ndarray]:
    import cv2

    files = sorted(VTEST.glob("T*/T*_f*.jpg"))[:n]
    return [cv2.imread(str(f)) for f in files]


def bench_poses(repeats: int) -> None:
    from gafnet.pixels.pose_backends import build_pose_backend

    images = crops(48)
    sizes = np.array([img.shape[:2] for img in images])
    print(f"poses: {len(images)} real vtest crops, median {int(np.median(sizes[:, 1]))}x{int(np.median(sizes[:, 0]))} px")
    for upscale in (1.0, 3.0):
        b = build_pose_backend("mediapipe", upscale=upscale)
        b.estimate_crops(images[:2])
        t = median_time(lambda: b.estimate_crops(images), repeats)
        print(f"  mediapipe upscale x{upscale:g}: {len(images) / t:6.1f} crops/s  (target ≥ 15 at x1)")
        b.close()
    import torch

    from gafnet.pixels.pose_backends import TorchvisionBackend

    b = TorchvisionBackend(weights=None, device="cpu", pretrained=False)
    b.model.roi_heads.detections_per_img = 5  # a trained model keeps few boxes per crop; untrained keeps 100
    few = images[:8]
    t = median_time(lambda: b.estimate_crops(few), max(1, repeats // 2))
    print(f"  torchvision Keypoint R-CNN (untrained, 5 boxes/crop, {torch.get_num_threads()} threads): "
          f"{len(few) / t:6.2f} crops/s")
    try:
        from gafnet.pixels.pose_backends import YoloBackend

        y = YoloBackend("yolo11n-pose.yaml", device="cpu")
        t = median_time(lambda: y.estimate_crops(few), repeats)
        print(f"  yolo11n-pose (untrained, imgsz 640): {len(few) / t:6.1f} crops/s")
    except Exception as exc:  # Ultralytics is optional
        print(f"  yolo: skipped ({str(exc)[:80]})")


def bench_video(repeats: int, frames: int) -> None:
    from gafnet.pixels.detection import HogPeopleDetector
    from gafnet.pixels.pose_backends import build_pose_backend
    from gafnet.pixels.video import track_video

    backend = build_pose_backend("mediapipe")
    for scale in (1.05, 1.1):
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            r = track_video(CLIP, 1, backend, detector=HogPeopleDetector(scale=scale), max_frames=frames)
            r.timings["total"] = time.perf_counter() - t
            runs.append(r)
        best = sorted(runs, key=lambda r: r.timings["total"])[len(runs) // 2]
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in best.timings.items())
        print(f"video ({best.frames} frames of {CLIP.name}, HOG x2 step {scale}): {best.frames / best.timings['total']:.2f} "
              f"frames/s; {stages}; {len(best.tracklets)} tracklets, {sum(len(t) for t in best.tracklets)} crops "
              f"(target: whole clip < 120 s)")
    backend.close()


def bench_appearance(repeats: int) -> None:
    from gafnet.pixels import appearance
    from gafnet.pixels.datasets import read_dataset

    tracklets = read_dataset("folders", VTEST)
    ext = appearance.ColourExtractor()
    t = median_time(lambda: ext.features(tracklets), repeats)
    print(f"appearance: colour (weight-free), {len(tracklets)} tracklets × 32 frames: {len(tracklets) / t:.1f} tracklets/s")
    import tempfile

    import torch

    model = appearance.build_torchreid_model("osnet_x1_0")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.pth"
        torch.save({"state_dict": model.state_dict()}, path)
        ext = appearance.TorchreidExtractor("osnet_x1_0", path, device="cpu", batch_size=64)
    for seq_len in (0, 8):
        t = median_time(lambda: ext.features(tracklets, seq_len=seq_len), max(1, repeats // 2))
        print(f"  osnet_x1_0 (untrained), seq_len {seq_len or 'all (32)'}: {len(tracklets) / t:.2f} tracklets/s "
              f"({torch.get_num_threads()} threads)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "poses", "video", "appearance"), default="all")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure (median; default 3)")
    p.add_argument("--frames", type=int, default=100, help="video frames (default 100: the whole clip)")
    args = p.parse_args()
    if not VTEST.is_dir():
        sys.exit(f"{REAL} is absent: nothing to measure")
    if args.part in ("all", "poses"):
        bench_poses(args.repeats)
    if args.part in ("all", "appearance"):
        bench_appearance(args.repeats)
    if args.part in ("all", "video"):
        bench_video(max(1, args.repeats // 3), args.frames)


if __name__ == "__main__":
    main()
