"""What the two GaitGraph commands share: pose-loading options, the preprocessing record, bounds checks.

``gaitgraph/src/train.py`` (:mod:`gafnet.gait.train_cli`) and ``gaitgraph/src/evaluate.py``
(:mod:`gafnet.gait.evaluate_cli`) take the same pose options. Every choice that changes the network input is
recorded in the checkpoint as the *preprocessing* dict (:func:`preprocessing_from_args`) and applied again by
evaluate.py; :func:`check_preprocessing` validates one read back from a checkpoint, so a damaged or hostile
checkpoint ends as one line, not a traceback or a 38 GiB padding.
"""

from __future__ import annotations

import argparse
import math

from ..cache import check_regular_file
from ..device import DEVICE_CHOICES
from ..errors import InputError
from . import poses as poses_mod

NORMALIZE_CHOICES = ("off", "sequence", "frame")
#: Longest window accepted (frames). Sequences shorter than the window are padded to it, so a huge window
#: would pad every sequence to that length (10⁷ frames: 38 GiB per file).
MAX_SEQUENCE_LENGTH = 1000
PREPROCESSING_KEYS = ("sequence_length", "normalize_pose", "multi_branch", "all_angles", "drop_short")


def add_data_arguments(p: argparse.ArgumentParser, from_checkpoint: bool = False) -> None:
    """Pose loading and preprocessing options. ``from_checkpoint``: evaluate.py, where the checkpoint decides."""
    if from_checkpoint:
        p.add_argument("--sequence_length", type=int, default=None,
                       help="frames per window (default: from the checkpoint; if given, it must agree with it)")
        p.add_argument("--normalize_pose", choices=NORMALIZE_CHOICES, default=None,
                       help="pose normalisation (default: from the checkpoint; if given, it must agree with it)")
    else:
        p.add_argument("--sequence_length", type=int, default=60,
                       help=f"frames per window, 1 to {MAX_SEQUENCE_LENGTH} (default 60)")
        p.add_argument("--normalize_pose", choices=NORMALIZE_CHOICES, default="off",
                       help="centre poses on the hips and scale by body height, per sequence or per frame "
                            "(default off, as the original: raw pixel coordinates; see docs/training.md on when "
                            "to use 'sequence')")
    p.add_argument("--drop_short", action="store_true",
                   help="drop sequences shorter than sequence_length + 1 frames, as the original "
                        "(default: reflect-pad them and report how many)")
    p.add_argument("--cache_dir", "--cache-dir", dest="cache_dir", default=None,
                   help="the project cache directory; parsed pose files are kept under DIR/poses/ "
                        "(default: none, every file is parsed)")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} or cuda:N (default auto)")


def preprocessing_from_args(args: argparse.Namespace) -> dict:
    """Every choice that changes the network input; saved in checkpoints and applied again at extraction."""
    prep = {"sequence_length": args.sequence_length, "normalize_pose": args.normalize_pose,
            "multi_branch": bool(args.use_multi_branch), "all_angles": bool(args.corrected_augmentation),
            "drop_short": bool(args.drop_short)}
    check_preprocessing(prep, "the command line")
    return prep


def check_preprocessing(prep: dict, where: str) -> dict:
    """``prep`` if every value is of the right type and within bounds; InputError naming ``where`` otherwise."""
    if not isinstance(prep, dict):
        raise InputError(f"{where}: the preprocessing record is a {type(prep).__name__}, expected a dict")
    length = prep.get("sequence_length")
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_SEQUENCE_LENGTH:
        raise InputError(f"{where}: sequence_length must be an integer from 1 to {MAX_SEQUENCE_LENGTH} frames, "
                         f"got {length!r}")
    if prep.get("normalize_pose") not in NORMALIZE_CHOICES:
        raise InputError(f"{where}: normalize_pose must be one of {', '.join(NORMALIZE_CHOICES)}, "
                         f"got {prep.get('normalize_pose')!r}")
    for key in ("multi_branch", "all_angles", "drop_short"):
        if key in prep and not isinstance(prep[key], bool):
            raise InputError(f"{where}: {key} must be true or false, got {prep[key]!r}")
    return prep


def load_pose_file(path, dataset: str, prep: dict, cache_dir=None, label: str = "poses"):
    """Read a pose CSV with the preprocessing ``prep``; prints the loading report; InputError when nothing is usable."""
    check_regular_file(path, label)
    normalize = False if prep["normalize_pose"] == "off" else prep["normalize_pose"]
    data = poses_mod.load_poses(path, dataset, sequence_length=prep["sequence_length"], drop_short=prep["drop_short"],
                                normalize=normalize, cache_dir=cache_dir)
    print(data.report.summary())
    if len(data) == 0:
        raise InputError(f"{path}: no usable pose sequence (see the report above)")
    return data


# ----------------------------------------------------------------------------------------------------------------
# Bounds of numeric options: one line naming the option, before anything is loaded or written.


def check_int(option: str, value: int, low: int, high: int | None = None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InputError(f"{option} must be {bound}, got {value}")


def check_float(option: str, value: float, *, low: float = 0.0, inclusive: bool = False) -> None:
    """A finite number above ``low`` (or equal to it with ``inclusive``)."""
    ok = math.isfinite(value) and (value >= low if inclusive else value > low)
    if not ok:
        relation = "at least" if inclusive else "greater than"
        raise InputError(f"{option} must be a finite number {relation} {low:g}, got {value}")
