"""Benchmark: reading a CASIA-B-size pose CSV with gafnet.gait.poses vs the original GaitGraph approach.

    python benchmarks/bench_pose_loader.py                 # 1.4 M rows, 571 MB (about 25 s to write the files)
    python benchmarks/bench_pose_loader.py --rows 200000   # quick run

Writes a synthetic CASIA-B pose file (names like ``frames/001-nm-01-090/000042.jpg``, 51 values per row)
to a temporary directory, once clean and once with four bad rows (one of each kind) every 100,000 rows,
then reports medians of ``--repeats`` runs of:

- the first parse in a fresh process (``parse_pose_file`` on the clean file, imports excluded): the
  figure a user sees the first time a file is read;
- ``parse_pose_file`` on the clean file (every 4 MB piece on the fast path: Arrow's CSV reader) and on the
  file with bad rows (the pieces holding them go through the plain Python pass), in this process;
- the same file with every piece forced through the plain Python pass (the slow path's worst case), once;
- a cached load (``load_poses(cache_dir=...)`` after the cache was written);
- the original approach: ``np.loadtxt`` of whole lines as strings and a per-row Python loop (split, junk
  and length checks, ``np.array(..., float32)``, dict grouping), re-implemented here. It is timed on a
  ``--original-rows``-row file of the same kind (with bad rows) and extrapolated linearly to the full size:
  loadtxt holds every line as a fixed-width unicode string, about 1.7 kB per row, so the full file would
  need several GB.

Every parse is checked to give the same arrays and report first. Targets (issue 9, item 21): first parse
<= 2.5 s and >= 5x the original approach; cached load <= 0.2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gafnet.gait.poses import CSV_HEADER, load_poses, parse_pose_file  # noqa: E402

CONDITIONS = ["nm"] * 6 + ["bg"] * 2 + ["cl"] * 2
VIEWS = range(0, 181, 18)


def write_casia_like(path: Path, rows: int, seed: int = 0, bad_rows: bool = True) -> int:
    """Write ``rows`` data rows (plus, with ``bad_rows``, one bad row of each kind every ~100k rows)."""
    import pyarrow as pa
    from pyarrow import csv

    rng = np.random.default_rng(seed)
    names = []
    frames_per_seq = 100
    subject = 0
    while len(names) < rows:
        subject += 1
        for k, cond in enumerate(CONDITIONS):
            seq = k + 1 if cond == "nm" else (k - 5 if cond == "bg" else k - 7)
            for view in VIEWS:
                n = int(rng.integers(frames_per_seq - 30, frames_per_seq + 30))
                start = int(rng.integers(0, 20))
                names.extend(f"frames/{subject:03d}-{cond}-{seq:02d}-{view:03d}/{f:06d}.jpg"
                             for f in range(start, start + n))
    names = names[:rows]
    written = 0
    chunk = 100_000
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(CSV_HEADER + "\n")
        for lo in range(0, rows, chunk):
            hi = min(rows, lo + chunk)
            xy = rng.uniform(20, 300, size=(hi - lo, 17, 2)).round(3).astype(np.float32)
            conf = rng.uniform(0, 1, size=(hi - lo, 17, 1)).round(4).astype(np.float32)
            values = np.concatenate([xy, conf], axis=2).reshape(hi - lo, 51)
            columns = [pa.array(names[lo:hi])] + [pa.array(values[:, j]) for j in range(51)]
            table = pa.table(columns, names=["image_name"] + [f"v{j}" for j in range(51)])
            text = _to_csv(table, csv)
            fh.write(text)
            written += hi - lo
            if bad_rows:
                good = ",".join(["1.5"] * 51)
                fh.write(f"frames/001-nm-01-090/{lo:06d}.jpg," + ",".join(["1.5"] * 40) + "\n")
                fh.write(f"frames/001-nm-01-090/{lo:06d}.jpg," + good.replace("1.5", "abc", 1) + "\n")
                fh.write(f"frames/001-nm-01-090/{lo:06d}.jpg," + good.replace("1.5", "nan", 1) + "\n")
                fh.write(f"frames/not-a-casia-name/{lo:06d}.jpg," + good + "\n")
                written += 4
    return written


def _to_csv(table, csv) -> str:
    import io

    sink = io.BytesIO()
    csv.write_csv(table, sink, csv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue().decode()


def original_parse(path: Path) -> dict:
    """The original GaitGraph reading, re-implemented: ``np.loadtxt`` of whole lines as strings, then per
    row a Python split, a junk/length check, ``np.array(values, dtype=float32)`` and a dict keyed by target
    and frame."""
    lines = np.loadtxt(path, dtype=str, skiprows=1, comments=None)
    sequences: dict = {}
    conditions = {"nm": 0, "bg": 1, "cl": 2}
    for line in lines:
        row = line.split(",")
        name = row[0]
        if name.startswith("00-1"):
            continue
        try:
            folder, frame = name.split("/")[-2:]
            subject, cond, seq, view = folder.split("-")
            target = (int(subject), conditions[cond], int(seq), int(view))
            frame_number = int(frame.split(".")[0])
        except (ValueError, KeyError):
            continue
        frames = sequences.setdefault(target, {})
        if len(row) != 52:
            continue  # the original prints "Invalid pose data"
        try:
            frames[frame_number] = np.array(row[1:], dtype=np.float32).reshape(-1, 3)
        except ValueError:
            continue
    return {k: np.stack(list(v.values())) for k, v in sequences.items() if v}


def first_parse_in_new_process(path: Path, processes: int) -> list[tuple[float, float]]:
    """(wall, CPU) time of the first parse in a fresh process (no warm allocator or page tables)."""
    import subprocess

    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import pyarrow.compute, pyarrow.csv; "
            "from gafnet.gait.poses import parse_pose_file; "
            "c, t = time.process_time(), time.perf_counter(); parse_pose_file(sys.argv[2], 'casia-b'); "
            "print(time.perf_counter() - t, time.process_time() - c)")
    root = str(Path(__file__).resolve().parents[1])
    runs = [subprocess.run([sys.executable, "-c", code, root, str(path)], check=True, capture_output=True,
                           text=True).stdout.split() for _ in range(processes)]
    return [(float(wall), float(cpu)) for wall, cpu in runs]


def median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) of ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def same(a, b) -> bool:
    return (np.array_equal(a.poses, b.poses) and np.array_equal(a.offsets, b.offsets)
            and a.report.bad_lines == b.report.bad_lines and a.target_list() == b.target_list())


def run(args) -> None:
    from gafnet.gait import poses

    with tempfile.TemporaryDirectory(prefix="bench_poses_") as tmp:
        tmp = Path(tmp)
        bad_file, clean_file, sub_file = tmp / "casia_bad.csv", tmp / "casia_clean.csv", tmp / "casia_sub.csv"
        t0 = time.perf_counter()
        rows = write_casia_like(bad_file, args.rows, bad_rows=True)
        write_casia_like(clean_file, args.rows, bad_rows=False)
        sub_rows = min(args.original_rows, args.rows)
        write_casia_like(sub_file, sub_rows, bad_rows=True)
        size_mb = clean_file.stat().st_size / 1e6
        print(f"load average before timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"wrote {args.rows:,} rows ({size_mb:.0f} MB), a copy with {rows - args.rows} bad rows and a "
              f"{sub_rows:,}-row subsample in {time.perf_counter() - t0:.1f} s")

        bad = parse_pose_file(bad_file, "casia-b")
        print(bad.report.summary().splitlines()[0])
        real_fast_path = poses._read_clean_piece
        poses._read_clean_piece = lambda *a: None  # every piece through the plain Python pass
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            all_slow = parse_pose_file(bad_file, "casia-b")
            slowest = (time.perf_counter() - t0, time.process_time() - c0)
        finally:
            poses._read_clean_piece = real_fast_path
        assert same(bad, all_slow), "the fast and the slow path disagree"

        first = first_parse_in_new_process(clean_file, args.repeats)
        timings = {"first": (statistics.median(w for w, _ in first), statistics.median(c for _, c in first)),
                   "clean": median_time(lambda: parse_pose_file(clean_file, "casia-b"), args.repeats),
                   "bad": median_time(lambda: parse_pose_file(bad_file, "casia-b"), args.repeats)}

        wall, cpu = median_time(lambda: original_parse(sub_file), 1 if sub_rows > 100_000 else args.repeats)
        scale = args.rows / sub_rows
        original = (wall * scale, cpu * scale)

        cache = tmp / "cache"
        load_poses(bad_file, "casia-b", cache_dir=cache)  # writes the cache
        assert load_poses(bad_file, "casia-b", cache_dir=cache).report.from_cache
        cached = median_time(lambda: load_poses(bad_file, "casia-b", cache_dir=cache), args.repeats)

        print(f"{'':48s}   wall      CPU (all threads)   wall ratio")
        labels = {"first": "first parse in a new process, clean file",
                  "clean": "parse, clean file (fast path)",
                  "bad": f"parse, file with {bad.report.bad_rows} bad rows"}
        for key, label in labels.items():
            ours = timings[key]
            print(f"{label:48s}: {ours[0]:6.2f} s  {ours[1]:6.2f} s   {original[0] / ours[0]:5.1f}x the original"
                  + (f"   (median of {args.repeats})" if key != "bad" else ""))
        print(f"{'parse, every piece by the Python pass (once)':48s}: {slowest[0]:6.2f} s  {slowest[1]:6.2f} s"
              f"   {original[0] / slowest[0]:5.1f}x the original")
        note = "" if sub_rows == args.rows else f"   (timed on {sub_rows:,} rows: {wall:.2f} s, extrapolated linearly)"
        print(f"{'original approach':48s}: {original[0]:6.2f} s  {original[1]:6.2f} s{note}")
        print(f"{'cached load':48s}: {cached[0]:6.2f} s  {cached[1]:6.2f} s")
        first_ok = timings["first"][0] <= 2.5 and original[0] / timings["first"][0] >= 5
        print(f"targets: first parse <= 2.5 s and >= 5x the original: {'met' if first_ok else 'NOT met'}; "
              f"cached load <= 0.2 s: {'met' if cached[0] <= 0.2 else 'NOT met'}")
        print(f"load average after timing: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_400_000, help="data rows in the test file (default 1.4 M)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the median is shown")
    parser.add_argument("--original-rows", type=int, default=50_000,
                        help="rows the original approach is timed on, then extrapolated (default 50000)")
    args = parser.parse_args()
    run(args)


if __name__ == "__main__":
    main()
