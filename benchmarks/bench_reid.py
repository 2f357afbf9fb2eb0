#!/usr/bin/env python
"""Search time and memory of reid.py on a synthetic gallery index of 100,000 tracklets of the real sizes.

    python benchmarks/bench_reid.py                       # 100,000 gallery tracklets, 10 queries, top 10
    python benchmarks/bench_reid.py --gallery 20000 --appearance_dim 512 --fusion score

The index is written with gafnet.pixels.reid_index.IndexWriter, in parts of --part_size tracklets (one part per
input video in real use), with the real sizes: appearance 256-d (the colour descriptor; 512 for OSNet), gait
128-d (GaitGraph), 32 frames of boxes and 4 JPEG thumbnails (~3.5 KB each, real vtest crops) per tracklet.
Embeddings are random (the search does the same work whatever the values).

Each measurement runs in a fresh process, which reports the peak of the arrays it allocates (tracemalloc, in
a separate run) and its peak resident memory above what it held after its imports (``ru_maxrss``, which also
counts the memory-mapped gallery pages it read: page cache the kernel may drop): the search (``gafnet.pixels.reid_search.search`` on the memory-mapped index,
median of --repeats) against the baseline in the same run, which loads every embedding into memory and
ranks one full (queries × gallery) fused distance matrix with a full argsort. The two rankings are checked
equal. Shared CPU: indicative figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def thumbnails_of_real_size() -> list[bytes]:
    """4 JPEG thumbnails of real vtest crops (or of a flat image when the real data is absent)."""
    from gafnet.pixels.reid_index import encode_thumbnails

    files = sorted((ROOT.parent / "shared" / "realdata" / "vtest_tracklets" / "T02").glob("*.jpg"))[:4]
    import cv2

    images = [cv2.imread(str(f)) for f in files] or [np.full((128, 64, 3), 90, np.uint8)]
    return encode_thumbnails(images)


def build(index: Path, n: int, part_size: int, app_dim: int, gait_dim: int, frames: int = 32) -> float:
    from gafnet.pixels.reid_index import IndexWriter

    models = {"appearance": {"model": "synthetic", "weights_sha256": None, "config": {}},
              "gait": {"model": "synthetic-gait" if gait_dim else "off", "weights_sha256": None, "preprocessing": None},
              "pose": None}
    writer = IndexWriter(index, models)
    thumbs = thumbnails_of_real_size()
    blob = np.frombuffer(b"".join(thumbs), np.uint8)
    sizes = np.cumsum([0] + [len(t) for t in thumbs])
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for a in range(0, n, part_size):
        m = min(part_size, n - a)
        rec = {"appearance": rng.normal(size=(m, app_dim)).astype(np.float32),
               "gait": rng.normal(size=(m, gait_dim)).astype(np.float32),
               "has_pose": np.ones(m, bool), "gait_padded": np.zeros(m, bool),
               "frames": np.full(m, frames, np.int32), "pose_frames": np.full(m, frames, np.int32),
               "person_id": rng.integers(0, n // 4, m), "camera_id": np.full(m, 2, np.int64),
               "source": np.asarray([f"video{a // part_size:05d}.mp4#{i + 1}" for i in range(m)]),
               "box_offsets": np.arange(m + 1, dtype=np.int64) * frames,
               "boxes": rng.uniform(0, 500, (m * frames, 4)).astype(np.float32),
               "frame_numbers": np.tile(np.arange(frames, dtype=np.int64), m),
               "thumb_offsets": np.concatenate([[0], (np.arange(m)[:, None] * sizes[-1] + sizes[1:][None]).ravel()]),
               "thumbs": np.tile(blob, m)}
        writer.add(rec, {"input": f"video{a // part_size:05d}.mp4", "kind": "synthetic", "identity": {"n": a}})
    return time.perf_counter() - started


def queries(n: int, app_dim: int, gait_dim: int) -> dict:
    rng = np.random.default_rng(1)
    return {"appearance": rng.normal(size=(n, app_dim)).astype(np.float32),
            "gait": rng.normal(size=(n, gait_dim)).astype(np.float32), "has_pose": np.ones(n, bool),
            "person_id": np.full(n, -1, np.int64), "camera_id": np.full(n, 1, np.int64),
            "source": np.asarray([f"query.mp4#{i + 1}" for i in range(n)])}  # compared with the gallery's sources


def child(args) -> None:
    from gafnet.pixels.reid_index import GalleryIndex
    from gafnet.pixels.reid_search import FusionSpec, search, unit_rows

    fusion = FusionSpec(args.fusion, 0.74, 0.5 if args.fusion == "score" else None)
    q = queries(args.queries, args.appearance_dim, args.gait_dim)
    base = rss_mb()
    def run_search():
        return search(q, GalleryIndex.open(args.index), args.top, fusion).index

    def run_baseline():  # everything in memory, one full matrix, full argsort
        from gafnet.fusion import fused_distance, score_distance
        from gafnet.metrics import squared_euclidean

        gallery = GalleryIndex.open(args.index)
        ga = np.concatenate([np.asarray(p.arrays["appearance"]) for p in gallery.parts])
        gg = np.concatenate([np.asarray(p.arrays["gait"]) for p in gallery.parts])
        d_app = squared_euclidean(unit_rows(q["appearance"]), unit_rows(ga))
        d_gait = squared_euclidean(unit_rows(q["gait"]), unit_rows(gg))
        if args.fusion == "score":
            full = score_distance(np.sqrt(d_app), np.sqrt(d_gait), 0.5)
        else:
            full = fused_distance(d_app, d_gait, 0.74)
        return np.argsort(full, axis=1, kind="stable")[:, :args.top]

    fn = run_search if args.child == "search" else run_baseline
    times = []
    for _ in range(args.repeats if args.child == "search" else 1):
        t = time.perf_counter()
        index = fn()
        times.append(time.perf_counter() - t)
    rss = rss_mb() - base  # includes the gallery's memory-mapped pages (page cache the kernel may drop)
    tracemalloc.start()
    fn()
    allocated = tracemalloc.get_traced_memory()[1] / 2**20  # arrays allocated (numpy reports to tracemalloc)
    tracemalloc.stop()
    print(json.dumps({"seconds": statistics.median(times), "all": times, "index": index.tolist(),
                      "peak_rss_mb": rss, "peak_allocated_mb": allocated}))


def run_child(kind: str, args, index: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--index", str(index), "--queries", str(args.queries),
           "--appearance_dim", str(args.appearance_dim), "--gait_dim", str(args.gait_dim), "--top", str(args.top),
           "--repeats", str(args.repeats), "--fusion", args.fusion]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gallery", type=int, default=100_000, help="gallery tracklets (default 100,000)")
    p.add_argument("--part_size", type=int, default=1000, help="tracklets per index part (default 1,000)")
    p.add_argument("--queries", type=int, default=10, help="query tracklets (default 10)")
    p.add_argument("--appearance_dim", type=int, default=256, help="default 256 (colour; OSNet: 512)")
    p.add_argument("--gait_dim", type=int, default=128, help="default 128 (GaitGraph)")
    p.add_argument("--top", type=int, default=10, help="matches per query (default 10)")
    p.add_argument("--fusion", choices=("concat", "score"), default="concat", help="default concat (Eq. 4)")
    p.add_argument("--repeats", type=int, default=3, help="searches timed (median; default 3)")
    p.add_argument("--index", default=None, help="keep the index here (default: a temporary folder)")
    p.add_argument("--child", choices=("search", "baseline"), default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(args.index) if args.index else Path(tmp) / "gallery_index"
        if not index.exists():
            built = build(index, args.gallery, args.part_size, args.appearance_dim, args.gait_dim)
            size = sum(f.stat().st_size for f in index.rglob("*") if f.is_file())
            thumbs = sum(f.stat().st_size for f in index.rglob("thumbs.npy"))
            print(f"index: {args.gallery:,} tracklets in {-(-args.gallery // args.part_size)} parts, "
                  f"{size / 2**20:.0f} MB on disk (thumbnails {thumbs / 2**20:.0f} MB of it, "
                  f"{thumbs / args.gallery / 1024:.1f} KB per tracklet), written in {built:.1f} s")
        s = run_child("search", args, index)
        b = run_child("baseline", args, index)
        same = s["index"] == b["index"]
        print(f"search: {args.queries} queries × {args.gallery:,} gallery tracklets (appearance {args.appearance_dim}-d, "
              f"gait {args.gait_dim}-d, {args.fusion}), top {args.top}: {s['seconds']:.2f} s (median of {args.repeats}: "
              f"{', '.join(f'{t:.2f}' for t in s['all'])}; {1000 * s['seconds'] / args.queries:.0f} ms per query); "
              f"peak allocated {s['peak_allocated_mb']:.0f} MB, peak resident +{s['peak_rss_mb']:.0f} MB (with the "
              "memory-mapped gallery pages)")
        print(f"baseline (every embedding in memory, one full matrix, full argsort): {b['seconds']:.2f} s; peak "
              f"allocated {b['peak_allocated_mb']:.0f} MB, peak resident +{b['peak_rss_mb']:.0f} MB; same top "
              f"{args.top}: {same}")
        print("shared CPU: indicative figures")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
