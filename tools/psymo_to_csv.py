#!/usr/bin/env python
"""Convert PsyMo AlphaPose skeletons to iLIDS-VID-format pose CSVs (one file per viewpoint/variation/run).

Usage:
    python tools/psymo_to_csv.py ../shared/realdata/psymo_skeletons_excerpt/skeletons /tmp/psymo_poses

Read the outputs as iLIDS data (``gafnet.gait.poses.load_poses(path, "iLIDS")``): camera = walking
direction + 1, person = PsyMo subject ID (see gafnet/gait/psymo.py). PsyMo is CC BY-NC-ND 4.0: keep
converted files private and temporary; never commit or share them.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gafnet.errors import user_errors  # noqa: E402
from gafnet.gait.psymo import convert_psymo  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("skeletons", help="folder holding <ID>/<ID>_<viewpoint>_<direction>_<run>_<variation>.json")
    parser.add_argument("out_dir", help="where the pose CSVs go (created if missing)")
    args = parser.parse_args(argv)
    with user_errors("psymo_to_csv"):
        report = convert_psymo(args.skeletons, args.out_dir)
        print(report.summary())
        print("note: PsyMo is CC BY-NC-ND 4.0; these converted files must not be committed or shared.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
