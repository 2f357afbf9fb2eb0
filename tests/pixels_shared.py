"""What the pixel and reid tests share: ONE run of the offline video path on the shipped demo clip.

``tools/extract_poses.py video`` (HOG + tracking + MediaPipe, with ``--save_crops``) on the first
:data:`CLIP_FRAMES` frames of ``gafnet/data_files/demo/vtest_f0255-0286.mp4`` (frames 255-286 of vtest.avi,
where the real tracklets T02, T06 and T09 walk). test_pixels_poses.py checks its tracks, pose CSV and crops;
test_reid.py indexes that pose CSV + crops. The run is made once per test session (the first module that
asks), in the session's temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CLIP = ROOT / "gafnet" / "data_files" / "demo" / "vtest_f0255-0286.mp4"
SHIPPED_FIRST_FRAME = 255  # the clip holds frames 255-286 of vtest.avi
CLIP_FRAMES = 12
REAL = ROOT.parent / "shared" / "realdata"
VTEST = REAL / "vtest_tracklets"

_RUNS: dict = {}


def run_in_process(main, capsys, *args):
    """A command's ``main(argv)`` in this process (its imports are paid once): (exit status, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def have_mediapipe() -> bool:
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return False
    return True


def shipped_clip_tracks(tmp_path_factory) -> tuple[Path, str]:
    """(output folder, the command's stdout) of extract_poses.py video on the shipped clip, run once."""
    if "tracks" not in _RUNS:
        from gafnet.pixels.pose_cli import main

        out = tmp_path_factory.mktemp("shipped_clip_tracks")
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["video", str(SHIPPED_CLIP), "--out", str(out), "--max_frames", str(CLIP_FRAMES),
                         "--hog_scale", "1.1", "--save_crops", "--quiet"])
        assert code == 0
        _RUNS["tracks"] = (out, buffer.getvalue())
    return _RUNS["tracks"]


def vtest_frames(name):
    import numpy as np

    meta = json.loads((VTEST / name / f"{name}.json").read_text())
    return meta["frames"], np.load(VTEST / name / f"{name}_pose_coco17_mediapipe.npy")
