#!/usr/bin/env python
"""Train GaitGraph (ResGCN + SupConLoss) on pose sequences.

Usage (from gaitgraph/src):
    # stage 1, CASIA-B (GaitGraph's pose data, python -m gafnet.data download casia-b)
    python train.py casia-b ../../data/casia-b/casia-b_pose_train_valid.csv \
        --valid_data_path ../../data/casia-b/casia-b_pose_test.csv \
        --batch_size 128 --epochs 1000 --learning_rate 1e-2 --temp 0.01 --exp_name casia-b
    # stage 2, iLIDS-VID split 0, initialised from stage 1
    python train.py iLIDS ../../poses/splits_pit/train_split0.csv \
        --valid_data_path ../../poses/splits_pit/test_split0.csv \
        --weight_path ../../runs/casia-b/best.pt --batch_size 128 --epochs 300 \
        --learning_rate 1e-5 --temp 0.01 --exp_name pit-split0
    # resume an interrupted run
    python train.py iLIDS ../../poses/splits_pit/train_split0.csv --checkpoint_path ../../runs/pit-split0/last.pt ...

The command is gafnet/gait/train_cli.py, the training library gafnet/gait/training.py; see docs/training.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gafnet.errors import script_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main("train.py", "gafnet.gait.train_cli"))
