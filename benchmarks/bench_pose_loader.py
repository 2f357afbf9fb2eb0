"""Benchmark: reading a CASIA-B-size pose CSV with gafnet.gait.poses vs the original GaitGraph approach.

    python benchmarks/bench_pose_loader.py                 # 1.4 M rows (about 20 s to write the files)
    python benchmarks/bench_pose_loader.py --rows 200000   # quick run

Writes a synthetic CASIA-B pose file (names like ``frames/001-nm-01-090/000042.jpg``, 51 values per row,
plus a few bad rows of every kind) to a temporary directory, then reports the median of ``--repeats`` runs of:

- ours: ``parse_pose_file`` with each parser, gafnet's C parser (the default where a C compiler exists)
  and Arrow's C++ CSV reader (the fallback), both + numpy grouping, on the file with bad rows and on a
  clean copy (their results are checked to be equal first);
- the original approach: ``np.loadtxt`` of whole lines as strings and a per-row Python loop (split, junk
  and length checks, ``np.array(..., float32)``, dict grouping), re-implemented here. It is timed on a
  ``--original-rows``-row file of the same kind (with bad rows) and extrapolated linearly to the full size:
  loadtxt holds every line as a fixed-width unicode string, about 1.7 kB per row, so the full file would
  need several GB;
- a cached load (``load_poses(cache_dir=...)`` after the cache was written).
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


def first_parse_in_new_process(path: Path, engine: str, processes: int = 3) -> list[float]:
    """The parse time of the first file a fresh process reads (no warm allocator or page tables)."""
    import subprocess

    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import pyarrow.compute; "
            "from gafnet.gait.poses import parse_pose_file; from gafnet.gait import fastcsv; fastcsv.get_library(); "
            "t = time.perf_counter(); parse_pose_file(sys.argv[2], 'casia-b', engine=sys.argv[3]); "
            "print(time.perf_counter() - t)")
    root = str(Path(__file__).resolve().parents[1])
    return [float(subprocess.run([sys.executable, "-c", code, root, str(path), engine], check=True,
                                 capture_output=True, text=True).stdout) for _ in range(processes)]


def median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) of ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def run(args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_poses_") as tmp:
        tmp = Path(tmp)
        bad_file, clean_file, sub_file = tmp / "casia_bad.csv", tmp / "casia_clean.csv", tmp / "casia_sub.csv"
        t0 = time.perf_counter()
        rows = write_casia_like(bad_file, args.rows, bad_rows=True)
        write_casia_like(clean_file, args.rows, bad_rows=False)
        sub_rows = min(args.original_rows, args.rows)
        write_casia_like(sub_file, sub_rows, bad_rows=True)
        size_mb = bad_file.stat().st_size / 1e6
        print(f"load average before timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"wrote {rows:,} rows ({size_mb:.0f} MB) with bad rows, a clean copy and a {sub_rows:,}-row "
              f"subsample in {time.perf_counter() - t0:.1f} s")

        from gafnet.gait import fastcsv

        engines = ["c", "arrow"] if fastcsv.get_library() is not None else ["arrow"]
        if len(engines) == 1:
            print(f"C parser unavailable ({fastcsv.build_error()}): timing Arrow only")
        results = {e: parse_pose_file(bad_file, "casia-b", engine=e) for e in engines}
        print(results[engines[0]].report.summary().splitlines()[0])
        for e in engines[1:]:  # the parsers must agree before their speeds mean anything
            a, b = results[engines[0]], results[e]
            assert np.array_equal(a.poses, b.poses) and np.array_equal(a.offsets, b.offsets)
            assert a.report.bad_lines == b.report.bad_lines and a.target_list() == b.target_list()
        timings = {}
        for e in engines:
            timings[e, "bad"] = median_time(lambda: parse_pose_file(bad_file, "casia-b", engine=e), args.repeats)
            timings[e, "clean"] = median_time(lambda: parse_pose_file(clean_file, "casia-b", engine=e), args.repeats)
        print(f"{'':34s}  wall      cpu (all threads)")
        for e in engines:
            label = "C parser (default)" if e == "c" else "Arrow reader"
            print(f"ours, {label:18s}, clean file : {timings[e, 'clean'][0]:6.2f} s  {timings[e, 'clean'][1]:6.2f} s"
                  f"   (median of {args.repeats})")
            print(f"ours, {label:18s}, bad rows   : {timings[e, 'bad'][0]:6.2f} s  {timings[e, 'bad'][1]:6.2f} s")

        first = {e: first_parse_in_new_process(clean_file, e) for e in engines}
        for e in engines:
            print(f"first parse in a new process, {e:5s}: {statistics.median(first[e]):6.2f} s"
                  f"   (median of {len(first[e])} processes, imports excluded)")

        wall, cpu = median_time(lambda: original_parse(sub_file), 1 if sub_rows > 100_000 else args.repeats)
        scale = args.rows / sub_rows
        original = (wall * scale, cpu * scale)
        note = "" if sub_rows == args.rows else f"   (timed on {sub_rows:,} rows: {wall:.2f} s, extrapolated linearly)"
        print(f"original approach                  : {original[0]:6.2f} s  {original[1]:6.2f} s{note}")
        for e in engines:
            for kind in ("clean", "bad"):
                ours = timings[e, kind]
                print(f"speed-up, {e:5s}, {kind:5s} file           : {original[0] / ours[0]:6.1f}x    "
                      f"{original[1] / ours[1]:6.1f}x")

        cache = tmp / "cache"
        load_poses(bad_file, "casia-b", cache_dir=cache)  # writes the cache
        cached = median_time(lambda: load_poses(bad_file, "casia-b", cache_dir=cache), args.repeats)
        assert load_poses(bad_file, "casia-b", cache_dir=cache).report.from_cache
        print(f"cached load                        : {cached[0]:6.2f} s  {cached[1]:6.2f} s")
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
