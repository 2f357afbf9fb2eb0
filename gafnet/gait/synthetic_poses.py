"""Synthetic walking poses in the three pose-file formats (iLIDS-VID, MARS, CASIA-B), for tests and demos.

Not a dataset: a small kinematic walker with enough structure that identities differ in their gait and
cameras differ in how they see it, so the whole pipeline (reading, training, extraction, evaluation) can
run end to end without the real data.

Walker (3-D, then projected): every identity has its own body proportions (leg length, thigh/shin split,
torso, arms, shoulder and hip width, head), cadence (frames per gait cycle), stride (hip swing), knee
flexion, arm swing, elbow bend, trunk lean and vertical bounce. Joints follow sinusoidal joint angles of
the gait phase; left and right are half a cycle apart, arms swing against the legs.

Cameras: every camera has its own viewpoint (yaw of the walking direction and pitch), scale, image
position, keypoint noise and confidence level; each tracklet jitters them a little, and every frame gets
a small tracking jitter. Projection is orthographic. Confidence is lower for the face and for the side of
the body that is turned away from the camera.

Formats (names as in the README, "Data layout"): iLIDS-VID ``cam{1|2}_person{XXX}_{FRAME:05d}.png`` (64×128 crops, tracklets
23–192 frames, mean about 73), MARS ``{PPPP}C{c}T{TTTT}F{FFF}.jpg`` (128×256 crops, 6 cameras), CASIA-B
``frames/{sss}-{cond}-{nn}-{vvv}/{frame:06d}.jpg`` (320×240 frames, 11 views, nm/bg/cl).

Everything is seeded: the same arguments give the same bytes. Each tracklet has its own random stream
(seed, dataset, person, camera, ...), so the number of splits or identities does not change the others.

Command line (pose CSVs for ``gaitgraph/src/train.py`` and ``evaluate.py`` without the real data)::

    python -m gafnet.gait.synthetic_poses OUT_DIR --format ilids [--ids 300] [--splits 10] [--seed 0]
    python -m gafnet.gait.synthetic_poses OUT_DIR --format mars [--ids 1261]
    python -m gafnet.gait.synthetic_poses OUT_DIR --format casia-b [--ids 124]

``--help`` lists what each format writes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gafnet.atomic import atomic_path
from gafnet.errors import InputError, cli_main
from gafnet.gait.poses import CSV_HEADER, format_pose_rows
from gafnet.gait.protocols import CASIA_VIEWS

_ILIDS, _MARS, _CASIA, _CAMERA, _SPLIT = 1, 2, 3, 4, 5  # random-stream tags
_CONDITION_CODES = {"nm": 0, "bg": 1, "cl": 2}
CASIA_SEQUENCES = (("nm", 1), ("nm", 2), ("nm", 3), ("nm", 4), ("nm", 5), ("nm", 6),
                   ("bg", 1), ("bg", 2), ("cl", 1), ("cl", 2))


# --------------------------------------------------------------------------------------------------
# identities and the walker

@dataclass(frozen=True)
class GaitIdentity:
    """Gait parameters of one synthetic person (lengths in body heights, angles in radians)."""

    person: int
    leg: float          # hip → ankle
    thigh_share: float  # thigh / leg
    torso: float        # hip midpoint → shoulder midpoint
    upper_arm: float
    forearm: float
    shoulder_width: float
    hip_width: float
    head: float         # shoulder midpoint → head centre
    period: float       # frames per gait cycle (two steps) at 25 fps
    stride: float       # hip swing amplitude
    knee: float         # knee flexion amplitude
    arm_swing: float    # shoulder swing amplitude
    elbow: float        # resting elbow bend
    lean: float         # forward trunk lean
    bounce: float       # vertical pelvis oscillation


def sample_identity(person: int, rng: np.random.Generator) -> GaitIdentity:
    """Draw one identity's gait parameters (ranges roughly those of adult walking)."""
    u = rng.uniform
    return GaitIdentity(
        person=person, leg=u(0.46, 0.56), thigh_share=u(0.46, 0.56), torso=u(0.27, 0.34),
        upper_arm=u(0.16, 0.21), forearm=u(0.14, 0.18), shoulder_width=u(0.20, 0.27), hip_width=u(0.14, 0.20),
        head=u(0.11, 0.15), period=u(24.0, 36.0), stride=u(0.30, 0.55), knee=u(0.55, 1.10),
        arm_swing=u(0.15, 0.60), elbow=u(0.10, 0.55), lean=u(-0.02, 0.18), bounce=u(0.005, 0.025),
    )


def identities(num_ids: int, seed: int, first_person: int = 1) -> list[GaitIdentity]:
    """``num_ids`` identities, person numbers ``first_person``…; identity i depends only on (seed, person)."""
    return [sample_identity(p, np.random.default_rng([seed, _ILIDS, p]))
            for p in range(first_person, first_person + num_ids)]


def walk_3d(identity: GaitIdentity, frames: int, phase: float, *, arm_scale=(1.0, 1.0),
            widen: float = 1.0, period_scale: float = 1.0) -> np.ndarray:
    """(frames, 17, 3) COCO-17 joints in body heights: X forward, Y up, Z to the person's left.

    ``arm_scale`` scales the (left, right) arm swing (a bag reduces one), ``widen`` the body width (a coat).
    """
    g = identity
    t = np.arange(frames, dtype=np.float64)
    psi = 2 * np.pi * t / (g.period * period_scale) + phase  # (T,) gait phase of the left leg
    out = np.zeros((frames, 17, 3))
    pelvis_y = g.leg * np.cos(g.stride * 0.5) + g.bounce * np.cos(2 * psi)
    up = np.stack([np.sin(g.lean) * np.ones(frames), np.cos(g.lean) * np.ones(frames)], axis=1)  # trunk axis
    shoulder_mid = np.stack([g.torso * up[:, 0], pelvis_y + g.torso * up[:, 1]], axis=1)  # (T, 2) X, Y
    head = shoulder_mid + g.head * np.stack([up[:, 0] + 0.25, up[:, 1]], axis=1)
    hw, sw = g.hip_width * widen / 2, g.shoulder_width * widen / 2

    def put(joint, xy, z):
        out[:, joint, 0], out[:, joint, 1], out[:, joint, 2] = xy[:, 0], xy[:, 1], z

    # face: nose forward, eyes forward and up, ears at the sides
    put(0, head + [0.045, -0.005], 0.0)
    put(1, head + [0.035, 0.02], 0.018)
    put(2, head + [0.035, 0.02], -0.018)
    put(3, head + [-0.005, 0.01], 0.04)
    put(4, head + [-0.005, 0.01], -0.04)
    for side, sign, offset in ((0, 1.0, 0.0), (1, -1.0, np.pi)):  # 0 = left, 1 = right
        leg_phase = psi + offset
        hip = np.stack([np.zeros(frames), pelvis_y], axis=1)
        hip_angle = g.stride * np.sin(leg_phase)  # forward positive
        knee_flex = 0.06 + g.knee * (0.5 + 0.5 * np.sin(leg_phase + 2.0)) ** 2
        thigh, shin = g.leg * g.thigh_share, g.leg * (1 - g.thigh_share)
        knee = hip + thigh * np.stack([np.sin(hip_angle), -np.cos(hip_angle)], axis=1)
        shin_angle = hip_angle - knee_flex
        ankle = knee + shin * np.stack([np.sin(shin_angle), -np.cos(shin_angle)], axis=1)
        put(11 + side, hip, sign * hw)
        put(13 + side, knee, sign * hw * 0.95)
        put(15 + side, ankle, sign * hw * 0.9)
        shoulder = shoulder_mid
        swing = -g.arm_swing * arm_scale[side] * np.sin(leg_phase)  # against the same-side leg
        bend = g.elbow + 0.4 * g.arm_swing * arm_scale[side] * (0.5 + 0.5 * np.sin(leg_phase + np.pi))
        elbow = shoulder + g.upper_arm * np.stack([np.sin(swing), -np.cos(swing)], axis=1)
        fore = swing + bend
        wrist = elbow + g.forearm * np.stack([np.sin(fore), -np.cos(fore)], axis=1)
        put(5 + side, shoulder, sign * sw)
        put(7 + side, elbow, sign * (sw + 0.02))
        put(9 + side, wrist, sign * (sw + 0.03))
    return out


@dataclass(frozen=True)
class CameraModel:
    """How one camera sees walkers: yaw/pitch (radians), pixels per body height, image centre, noise, confidence."""

    yaw: float
    pitch: float
    scale: float
    centre: tuple[float, float]
    noise: float
    confidence: float
    yaw_jitter: float = 0.25
    scale_jitter: float = 0.05


def project(joints: np.ndarray, camera: CameraModel, rng: np.random.Generator, *,
            drift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(T, 17, 3) 3-D joints → (T, 17, 3) pixel x, y and confidence for one tracklet seen by ``camera``."""
    frames = len(joints)
    yaw = camera.yaw + rng.normal(0, camera.yaw_jitter)
    scale = camera.scale * (1 + rng.normal(0, camera.scale_jitter))
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(camera.pitch), np.sin(camera.pitch)
    x, y, z = joints[..., 0], joints[..., 1], joints[..., 2]
    horizontal = x * cy - z * sy
    depth = x * sy + z * cy  # towards the camera is negative
    vertical = y * cp - depth * sp
    centre = np.asarray(camera.centre) + rng.normal(0, 2.0, 2)
    t = np.arange(frames)[:, None]
    jitter = rng.normal(0, 0.8, (frames, 1, 2))  # bounding-box tracking jitter
    out = np.empty((frames, 17, 3))
    out[..., 0] = centre[0] + scale * horizontal + drift[0] * t + jitter[..., 0]
    out[..., 1] = centre[1] - scale * (vertical - 0.5) + drift[1] * t + jitter[..., 1]
    out[..., :2] += rng.normal(0, camera.noise, (frames, 17, 2))
    face = np.zeros(17)
    face[:5] = 0.12
    hidden = np.clip(depth, 0, None)  # joints on the far side of the body
    confidence = camera.confidence - face - 0.8 * hidden + rng.normal(0, 0.06, (frames, 17))
    out[..., 2] = np.clip(confidence, 0.05, 0.99)
    return out


def camera_models(num_cameras: int, seed: int, *, size=(64, 128), height_fraction=(0.72, 0.85),
                  tag: int = _ILIDS) -> list[CameraModel]:
    """Per-camera viewpoint, scale, position, noise and confidence (independent of identities)."""
    cameras = []
    for c in range(num_cameras):
        rng = np.random.default_rng([seed, _CAMERA, tag, c])
        direction = 1 if c % 2 == 0 else -1  # alternate cameras see people walk the other way
        yaw = direction * rng.uniform(0.35, 1.25) + (0 if direction > 0 else np.pi)
        cameras.append(CameraModel(
            yaw=float(yaw), pitch=float(rng.uniform(0.1, 0.45)), scale=float(size[1] * rng.uniform(*height_fraction)),
            centre=(float(size[0] / 2 + rng.normal(0, size[0] * 0.04)), float(size[1] / 2 + rng.normal(0, size[1] * 0.03))),
            noise=float(rng.uniform(0.6, 2.0) * size[1] / 128), confidence=float(rng.uniform(0.6, 0.9)),
        ))
    return cameras


def tracklet_length(rng: np.random.Generator, low: int = 23, high: int = 192, median: float = 64.0) -> int:
    """iLIDS-VID-like tracklet length: log-normal around ``median`` clipped to [low, high] (mean about 73)."""
    return int(np.clip(round(np.exp(rng.normal(np.log(median), 0.5))), low, high))


def _block(names, poses) -> str:
    return format_pose_rows(names, poses, xy_decimals=2, conf_decimals=3)


# --------------------------------------------------------------------------------------------------
# iLIDS-VID

@dataclass
class SyntheticILIDS:
    """What :func:`write_ilids_pose_splits` wrote: persons, per-split train/test persons, tracklet lengths."""

    persons: list[int]
    splits: list[dict] = field(default_factory=list)  # [{"train": [...], "test": [...]}, ...]
    lengths: dict = field(default_factory=dict)  # (person, camera) → frames
    files: list[Path] = field(default_factory=list)


def ilids_tracklets(num_ids: int = 300, seed: int = 0) -> dict:
    """{(person, camera): (names, (T, 17, 3) poses)} for persons 1…num_ids and cameras 1, 2."""
    cameras = camera_models(2, seed)
    result = {}
    for identity in identities(num_ids, seed):
        for camera in (1, 2):
            rng = np.random.default_rng([seed, _ILIDS, identity.person, camera])
            frames = tracklet_length(rng)
            joints = walk_3d(identity, frames, phase=rng.uniform(0, 2 * np.pi),
                             period_scale=1 + rng.normal(0, 0.02))
            poses = project(joints, cameras[camera - 1], rng)
            start = int(rng.integers(0, 800))
            names = [f"cam{camera}_person{identity.person:03d}_{f:05d}.png" for f in range(start, start + frames)]
            result[(identity.person, camera)] = (names, poses)
    return result


def split_assignment(persons, num_splits: int, seed: int) -> list[dict]:
    """iLIDS-VID protocol: per split a random half of the persons is test, the other half train."""
    persons = list(persons)
    half = len(persons) // 2
    splits = []
    for s in range(num_splits):
        order = np.random.default_rng([seed, _SPLIT, s]).permutation(len(persons))
        test = sorted(persons[i] for i in order[:half])
        train = sorted(persons[i] for i in order[half:])
        splits.append({"train": train, "test": test})
    return splits


def write_ilids_pose_splits(out_dir, num_ids: int = 300, num_splits: int = 10, seed: int = 0) -> SyntheticILIDS:
    """Write ``<out_dir>/train_split{i}.csv`` and ``test_split{i}.csv`` in iLIDS-VID pose format.

    Both cameras of every person are in the file of the split that holds the person; rows are ordered by
    person, then camera 1 before camera 2, frames in order. Returns the split/identity assignment.
    """
    out_dir = Path(out_dir)
    tracklets = ilids_tracklets(num_ids, seed)
    blocks = {key: _block(*value) for key, value in tracklets.items()}
    persons = sorted({p for p, _ in tracklets})
    result = SyntheticILIDS(persons=persons, splits=split_assignment(persons, num_splits, seed),
                            lengths={key: len(value[0]) for key, value in tracklets.items()})
    for s, split in enumerate(result.splits):
        for kind in ("train", "test"):
            path = out_dir / f"{kind}_split{s}.csv"
            text = CSV_HEADER + "\n" + "".join(blocks[(p, c)] for p in split[kind] for c in (1, 2))
            _write_text(path, text)
            result.files.append(path)
    return result


# --------------------------------------------------------------------------------------------------
# MARS

def mars_tracklets(persons, seed: int = 0, num_cameras: int = 6, tracklets_per_person=(2, 4)) -> list[dict]:
    """Tracklet records [{person, camera, tracklet, names, poses}] in MARS naming; tracklets count per (person, camera)."""
    cameras = camera_models(num_cameras, seed, size=(128, 256), tag=_MARS)
    records = []
    for person in persons:
        identity = sample_identity(person, np.random.default_rng([seed, _MARS, person + 1, 0]))
        rng = np.random.default_rng([seed, _MARS, person + 1, 1])
        count = int(rng.integers(tracklets_per_person[0], tracklets_per_person[1] + 1))
        chosen = rng.choice(num_cameras, size=min(count, num_cameras), replace=False)
        chosen = np.sort(np.concatenate([chosen, rng.choice(chosen, size=count - len(chosen))])) + 1
        numbers: dict = {}
        for camera in chosen.tolist():
            numbers[camera] = numbers.get(camera, 0) + 1
            frames = tracklet_length(rng, low=16, high=120, median=50)
            joints = walk_3d(identity, frames, phase=rng.uniform(0, 2 * np.pi))
            poses = project(joints, cameras[camera - 1], rng)
            tag = "00-1" if person == -1 else f"{person:04d}"
            names = [f"{tag}C{camera}T{numbers[camera]:04d}F{f:03d}.jpg" for f in range(1, frames + 1)]
            records.append({"person": person, "camera": camera, "tracklet": numbers[camera],
                            "names": names, "poses": poses})
    return records


def write_mars_pose_csv(path, persons, seed: int = 0, *, num_cameras: int = 6, junk: bool = True,
                        distractors: bool = True) -> list[dict]:
    """One MARS-format pose CSV for ``persons`` (plus junk person −1 and distractor person 0 if asked).

    Returns the records written (person, camera, tracklet, frames) in file order.
    """
    persons = list(persons) + ([0] if distractors else []) + ([-1] if junk else [])
    records = mars_tracklets(persons, seed, num_cameras)
    _write_text(Path(path), CSV_HEADER + "\n" + "".join(_block(r["names"], r["poses"]) for r in records))
    return [{"person": r["person"], "camera": r["camera"], "tracklet": r["tracklet"], "frames": len(r["names"])}
            for r in records]


def write_mars_pose_tree(out_dir, num_ids: int = 40, seed: int = 0) -> dict:
    """``<out_dir>/train.csv`` (persons 1…n/2) and ``test.csv`` (the rest + distractors + junk)."""
    out_dir = Path(out_dir)
    half = num_ids // 2
    train = write_mars_pose_csv(out_dir / "train.csv", range(1, half + 1), seed, junk=False, distractors=False)
    test = write_mars_pose_csv(out_dir / "test.csv", range(half + 1, num_ids + 1), seed)
    return {"train": train, "test": test}


# --------------------------------------------------------------------------------------------------
# CASIA-B

def write_casia_pose_csv(path, subjects=range(1, 11), seed: int = 0, *, views=CASIA_VIEWS,
                         sequences=CASIA_SEQUENCES, frames=(60, 110)) -> list[dict]:
    """A CASIA-B-format pose CSV: every subject × sequence (nm 1–6, bg 1–2, cl 1–2) × view.

    Views are walking directions (0° towards the camera, 90° from the side); the walker crosses the
    320×240 frame. A bag (bg) damps one arm's swing and adds lean; a coat (cl) widens the body and damps
    both arms. Returns records (subject, condition, sequence, view, frames) in file order.
    """
    records, blocks = [], []
    for subject in subjects:
        identity = sample_identity(subject, np.random.default_rng([seed, _CASIA, subject]))
        for condition, number in sequences:
            for view in views:
                rng = np.random.default_rng([seed, _CASIA, subject, _CONDITION_CODES[condition], number, view])
                count = int(rng.integers(frames[0], frames[1] + 1))
                arm, widen, lean = (1.0, 1.0), 1.0, 0.0
                if condition == "bg":
                    arm, lean = (0.25, 1.0), 0.05
                elif condition == "cl":
                    arm, widen = (0.7, 0.7), 1.18
                walker = GaitIdentity(**{**identity.__dict__, "lean": identity.lean + lean})
                joints = walk_3d(walker, count, phase=rng.uniform(0, 2 * np.pi), arm_scale=arm, widen=widen)
                yaw = np.deg2rad(view) - np.pi / 2  # 90° → the walker moves across the image
                camera = CameraModel(yaw=float(yaw), pitch=0.12, scale=float(rng.uniform(100, 130)),
                                     centre=(float(rng.uniform(60, 90)), 120.0), noise=1.0, confidence=0.8,
                                     yaw_jitter=0.03, scale_jitter=0.02)
                speed = 160.0 / count * np.sin(np.deg2rad(view))
                poses = project(joints, camera, rng, drift=(speed, 0.0))
                folder = f"frames/{subject:03d}-{condition}-{number:02d}-{view:03d}"
                start = int(rng.integers(1, 20))
                blocks.append(_block([f"{folder}/{f:06d}.jpg" for f in range(start, start + count)], poses))
                records.append({"subject": subject, "condition": condition, "sequence": number, "view": view,
                                "frames": count})
    _write_text(Path(path), CSV_HEADER + "\n" + "".join(blocks))
    return records


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


# --------------------------------------------------------------------------------------------------
# command line

#: per format: default and largest --ids (the real dataset's size; the largest its names can hold)
ID_LIMITS = {"ilids": (300, 999), "mars": (1261, 9999), "casia-b": (124, 999)}
CASIA_TRAIN_SHARE = 74 / 124  # CASIA-B's protocol: subjects 1-74 train, 75-124 test


def outputs(out_dir, fmt: str, splits: int) -> list[Path]:
    """The files the command writes for ``fmt`` under ``out_dir``."""
    from gafnet import layout

    out_dir = Path(out_dir)
    if fmt == "ilids":
        return [layout.pose_csv(out_dir / "poses", folder, kind, s) for folder in layout.POSE_FOLDERS
                for s in range(splits) for kind in layout.POSE_KINDS]
    files = [out_dir / "train.csv", out_dir / "test.csv"]
    return files + [out_dir / "query_list.csv"] if fmt == "mars" else files


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def write_dataset(out_dir, fmt: str, num_ids: int, splits: int = 10, seed: int = 0) -> list[Path]:
    """Write the files of :func:`outputs` (each atomically); returns them."""
    out_dir = Path(out_dir)
    if fmt == "ilids":
        from gafnet import layout

        first, *others = layout.POSE_FOLDERS
        written = write_ilids_pose_splits(out_dir / "poses" / first, num_ids=num_ids, num_splits=splits, seed=seed)
        for folder in others:  # the same synthetic splits in every folder of the released layout
            for path in written.files:
                _copy(path, out_dir / "poses" / folder / path.name)
    elif fmt == "mars":
        from gafnet.gait.protocols import MARS_QUERY_COLUMNS

        records = write_mars_pose_tree(out_dir, num_ids=num_ids, seed=seed)
        queries, seen = [], set()
        for r in records["test"]:  # one query tracklet per test identity; its other cameras hold a match
            if r["person"] > 0 and r["person"] not in seen:
                seen.add(r["person"])
                queries.append(f"{r['person']},{r['camera']},{r['tracklet']}\n")
        _write_text(out_dir / "query_list.csv", ",".join(MARS_QUERY_COLUMNS) + "\n" + "".join(queries))
    else:
        train = min(max(1, round(num_ids * CASIA_TRAIN_SHARE)), num_ids - 1)
        write_casia_pose_csv(out_dir / "train.csv", subjects=range(1, train + 1), seed=seed)
        write_casia_pose_csv(out_dir / "test.csv", subjects=range(train + 1, num_ids + 1), seed=seed)
    return outputs(out_dir, fmt, splits)


class _OneLineParser(argparse.ArgumentParser):
    """Bad options end as one line (``prog: error: ...``) and exit status 2, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog="python -m gafnet.gait.synthetic_poses",
        description="Write synthetic pose CSVs (a seeded kinematic walker seen by synthetic cameras; not real "
                    "people) in the layout gaitgraph/src/train.py and evaluate.py read, to try the pipeline "
                    "without the real data. Results on them say nothing about the real datasets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""files written:
  ilids    OUT_DIR/poses/splits_pit/{train,test}_split{i}.csv and the same files in
           OUT_DIR/poses/splits_mgh/ (the released layout); two cameras per person, tracklets of
           23-192 frames (mean about 73); per split a random half of the persons is in test;
           about 14 MB per split and folder at 300 ids
  mars     OUT_DIR/train.csv (the first half of the persons), OUT_DIR/test.csv (the other half,
           distractors 0000 and junk 00-1) and OUT_DIR/query_list.csv (one query tracklet per
           test person, for evaluate.py --query_list); 6 cameras, 2-4 tracklets of 16-120
           frames per person; about 60 kB per person
  casia-b  OUT_DIR/train.csv (subjects 1-74 at 124 ids; the first 74/124 in general) and
           OUT_DIR/test.csv (the rest); every subject walks nm-01..06, bg-01..02, cl-01..02 at 11
           views, 60-110 frames each; about 3.4 MB and 0.5 s per subject

x and y are pixels of the crop (iLIDS-VID 64x128, MARS 128x256) or of the frame (CASIA-B
320x240); confidences lie in 0.05-0.99. Existing files are not replaced without --overwrite;
every file is written atomically (a temporary file, then a rename).""")
    p.add_argument("out_dir", help="output directory (created if needed)")
    p.add_argument("--format", required=True, choices=sorted(ID_LIMITS), help="dataset layout and image names")
    p.add_argument("--ids", type=int, default=None, metavar="N",
                   help="identities (persons; subjects for casia-b), at least 2 (default: the real dataset's "
                        + ", ".join(f"{f} {d}" for f, (d, _) in ID_LIMITS.items()) + "; at most "
                        + ", ".join(f"{f} {m}" for f, (_, m) in ID_LIMITS.items()) + ")")
    p.add_argument("--splits", type=int, default=None, metavar="K",
                   help="ilids only: random train/test splits, 1-100 (default: 10, as iLIDS-VID's protocol)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed, 0 or more (default: 0); the same seed "
                                                        "gives the same bytes")
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist (default: refuse)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def run(args) -> None:
    default_ids, max_ids = ID_LIMITS[args.format]
    num_ids = default_ids if args.ids is None else args.ids
    if not 2 <= num_ids <= max_ids:
        raise InputError(f"--ids {num_ids}: must be 2 to {max_ids} for {args.format}")
    if args.splits is not None and args.format != "ilids":
        raise InputError(f"--splits applies to --format ilids only, not {args.format}")
    splits = 10 if args.splits is None else args.splits
    if not 1 <= splits <= 100:
        raise InputError(f"--splits {splits}: must be 1 to 100")
    if not 0 <= args.seed < 2 ** 63:
        raise InputError(f"--seed {args.seed}: must be 0 to 2**63 - 1")
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a directory; give a directory to write into")
    targets = outputs(out_dir, args.format, splits)
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise InputError(f"{existing[0]} exists ({len(existing)} of the {len(targets)} output files do); "
                         "nothing was written: pass --overwrite to replace them, or choose another directory")
    if any(t.is_dir() for t in existing):
        raise InputError(f"{next(t for t in existing if t.is_dir())} is a directory; nothing was written")
    written = write_dataset(out_dir, args.format, num_ids, splits, args.seed)
    if not args.quiet:
        size = sum(p.stat().st_size for p in written) / 1e6
        print(f"wrote {len(written)} synthetic {args.format} pose files ({size:.0f} MB) under {out_dir}: "
              f"{num_ids} identities, seed {args.seed}")
        first = written[0]
        dataset = {"ilids": "iLIDS", "mars": "mars", "casia-b": "casia-b"}[args.format]
        print(f"train on them with: cd gaitgraph/src && python train.py {dataset} {first.resolve()} "
              f"--valid_data_path {written[1].resolve()}")


def main(argv=None) -> int:
    return cli_main("python -m gafnet.gait.synthetic_poses", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
