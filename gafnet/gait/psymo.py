"""PsyMo AlphaPose skeletons → pose CSVs in the iLIDS-VID format (real walking poses for tests and demos).

PsyMo (Cosma and Rădoi, "PsyMo: A Dataset for Estimating Self-Reported Psychological Traits from Gait",
WACV 2024, https://github.com/cosmaadrian/psymo) ships one AlphaPose JSON file per walk:
``skeletons/<ID>/<ID>_<viewpoint>_<direction>_<run>_<variation>.json``, a list of per-frame detections
``{"image_id": "5.jpg", "keypoints": [51 floats: COCO-17 x, y, score], "score": ...}``.
The data is licensed CC BY-NC-ND 4.0: convert it at load time into a temporary or private directory; do not
commit or share converted copies.

Naming chosen for the output (read it with ``dataset="iLIDS"``):

- one CSV per (viewpoint, variation, run): ``psymo_v{viewpoint:03d}_{variation}_run{run}.csv``, so every
  (person, camera) has exactly one tracklet, as in iLIDS-VID, and walks never collide;
- ``camera = direction + 1`` (PsyMo walks go both ways past the camera: direction 0 → camera 1 = query,
  direction 1 → camera 2 = gallery, the iLIDS-VID protocol's cross-"camera" pairs);
- ``person`` = the PsyMo subject ID; frame = the number in ``image_id``:
  ``cam{direction+1}_person{ID:03d}_{frame:05d}.png``.

Per walk: when a frame has several detections the highest ``score`` is kept (ties: the first); frames keep
the file's order; skipped frame numbers are reported as gaps (nothing is interpolated); detections whose
keypoints are not 51 finite numbers are skipped and counted.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gafnet.errors import InputError
from gafnet.gait.poses import CSV_HEADER, format_pose_rows

WALK_NAME = re.compile(r"^(?P<subject>\d+)_(?P<viewpoint>\d+)_(?P<direction>\d+)_(?P<run>\d+)_(?P<variation>[A-Za-z0-9]+)\.json$")
IMAGE_ID = re.compile(r"^(?:.*[/\\])?(?P<frame>\d+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)


@dataclass(frozen=True)
class WalkInfo:
    """What a PsyMo walk file name says: ``<ID>_<viewpoint>_<direction>_<run>_<variation>.json``."""

    subject: int
    viewpoint: int
    direction: int
    run: int
    variation: str

    @property
    def camera(self) -> int:
        return self.direction + 1

    @property
    def output_name(self) -> str:
        return f"psymo_v{self.viewpoint:03d}_{self.variation}_run{self.run}.csv"


def parse_walk_name(path: str | Path) -> WalkInfo | None:
    match = WALK_NAME.match(Path(path).name)
    if match is None:
        return None
    g = match.groupdict()
    return WalkInfo(int(g["subject"]), int(g["viewpoint"]), int(g["direction"]), int(g["run"]), g["variation"])


@dataclass
class Walk:
    """One walk: kept frames in file order, their (T, 17, 3) poses, and what was dropped or missing."""

    path: Path
    info: WalkInfo
    frames: np.ndarray
    poses: np.ndarray
    detections: int = 0
    duplicates_removed: int = 0
    invalid_detections: int = 0
    gaps: list = field(default_factory=list)  # (frame before the gap, frames missing)
    out_of_order: int = 0

    def image_names(self) -> list[str]:
        return [f"cam{self.info.camera}_person{self.info.subject:03d}_{f:05d}.png" for f in self.frames.tolist()]


def read_walk(path: str | Path) -> Walk:
    """Read one AlphaPose JSON walk (see the module docstring for the rules)."""
    path = Path(path)
    info = parse_walk_name(path)
    if info is None:
        raise InputError(f"{path}: not a PsyMo walk name; expected <ID>_<viewpoint>_<direction>_<run>_<variation>.json")
    try:
        detections = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the JSON ({exc})") from None
    if not isinstance(detections, list):
        raise InputError(f"{path}: expected a JSON list of detections, found {type(detections).__name__}")
    best: dict[int, tuple[float, list]] = {}  # frame → (score, keypoints); dict order = first appearance
    invalid = 0
    for det in detections:
        keypoints = det.get("keypoints") if isinstance(det, dict) else None
        match = IMAGE_ID.match(str(det.get("image_id", ""))) if isinstance(det, dict) else None
        if (match is None or not isinstance(keypoints, list) or len(keypoints) != 51
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in keypoints)):
            invalid += 1
            continue
        frame = int(match.group("frame"))
        score = float(det.get("score", 0.0) or 0.0)
        if frame not in best or score > best[frame][0]:
            best[frame] = (score, keypoints)
    valid = len(detections) - invalid
    frames = np.array(list(best), dtype=np.int64)
    poses = np.array([kp for _, kp in best.values()], dtype=np.float32).reshape(len(frames), 17, 3)
    steps = np.diff(frames)
    gaps = [(int(frames[i]), int(steps[i] - 1)) for i in np.flatnonzero(steps > 1)]
    return Walk(path=path, info=info, frames=frames, poses=poses, detections=len(detections),
                duplicates_removed=valid - len(frames), invalid_detections=invalid, gaps=gaps,
                out_of_order=int(np.count_nonzero(steps < 1)))


def find_walks(root: str | Path) -> list[Path]:
    """Every PsyMo walk JSON under ``root`` (``skeletons/<ID>/*.json`` or any depth), sorted by name."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"PsyMo skeleton folder not found: {root}")
    paths = [p for p in root.rglob("*.json") if parse_walk_name(p) is not None]
    if not paths:
        raise InputError(f"{root}: no PsyMo walk files (<ID>_<viewpoint>_<direction>_<run>_<variation>.json) found")
    return sorted(paths, key=lambda p: (parse_walk_name(p).viewpoint, parse_walk_name(p).variation,
                                        parse_walk_name(p).run, parse_walk_name(p).subject,
                                        parse_walk_name(p).direction))


@dataclass
class ConversionReport:
    """What :func:`convert_psymo` read and wrote."""

    files: dict = field(default_factory=dict)  # output path → number of tracklets
    walks: list = field(default_factory=list)  # Walk objects, in output order
    skipped: list = field(default_factory=list)  # (path, reason)

    def summary(self) -> str:
        lines = [f"{len(self.walks)} walks → {len(self.files)} pose CSV files (iLIDS-VID naming)"]
        for path, tracklets in self.files.items():
            lines.append(f"  {path}: {tracklets} tracklets")
        dupes = [(w.path.name, w.duplicates_removed) for w in self.walks if w.duplicates_removed]
        gaps = [(w.path.name, w.gaps) for w in self.walks if w.gaps]
        invalid = [(w.path.name, w.invalid_detections) for w in self.walks if w.invalid_detections]
        if dupes:
            lines.append("  frames with several detections (kept the highest score): "
                         + ", ".join(f"{n} ({k} dropped)" for n, k in dupes))
        if gaps:
            lines.append("  skipped frames (left as gaps): "
                         + ", ".join(f"{n} after frame " + "/".join(f"{a} (+{m})" for a, m in g) for n, g in gaps))
        if invalid:
            lines.append("  detections without 51 finite keypoint values (skipped): "
                         + ", ".join(f"{n} ({k})" for n, k in invalid))
        for path, reason in self.skipped:
            lines.append(f"  skipped {path}: {reason}")
        return "\n".join(lines)


def convert_psymo(root: str | Path, out_dir: str | Path) -> ConversionReport:
    """Convert every walk under ``root`` into ``out_dir/psymo_v{viewpoint}_{variation}_run{run}.csv``.

    Within a file rows go by subject, then camera 1 (direction 0) before camera 2, frames in order.
    Walks with no valid detection, or a direction other than 0/1, are skipped and reported.
    """
    from gafnet.atomic import atomic_path

    out_dir = Path(out_dir)
    report = ConversionReport()
    groups: dict[str, list[Walk]] = {}
    for path in find_walks(root):
        walk = read_walk(path)
        if walk.info.direction not in (0, 1):
            report.skipped.append((str(path), f"direction {walk.info.direction} is not 0 or 1"))
            continue
        if len(walk.frames) == 0:
            report.skipped.append((str(path), "no valid detection"))
            continue
        groups.setdefault(walk.info.output_name, []).append(walk)
    for name, walks in groups.items():
        target = out_dir / name
        with atomic_path(target) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(CSV_HEADER + "\n")
                for walk in walks:
                    fh.write(format_pose_rows(walk.image_names(), walk.poses, xy_decimals=3, conf_decimals=5))
        report.files[str(target)] = len(walks)
        report.walks.extend(walks)
    return report
