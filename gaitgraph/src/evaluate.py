#!/usr/bin/env python
"""Extract GaitGraph embeddings from a pose CSV and evaluate them gait-only.

Usage (from gaitgraph/src):
    # iLIDS-VID: writes <output_dir>/query_split0.csv (camera 1) and gallery_split0.csv (camera 2)
    python evaluate.py iLIDS ../../poses/splits_pit/test_split0.csv \
        --weight_path ../../runs/pit-split0/best.pt --output_dir ../../embeddings/ilids/gait1
    # CASIA-B protocol table (NM/BG/CL x 11 views), also written as CSV
    python evaluate.py casia-b ../../data/casia-b/casia-b_pose_test.csv --weight_path <checkpoint>
    # MARS, torchreid's protocol (default) or the official one
    python evaluate.py mars <mars_test.csv> --weight_path <checkpoint> --protocol official

Options: --tta time_flip, --windows all, --batch_size, --device auto|cpu|cuda. The model and its preprocessing
come from the checkpoint (ours or the original GaitGraph's). The command is gafnet/gait/evaluate_cli.py, the
extraction library gafnet/gait/extraction.py; see docs/training.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gafnet.errors import script_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main("evaluate.py", "gafnet.gait.evaluate_cli"))
