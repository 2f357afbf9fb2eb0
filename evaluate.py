#!/usr/bin/env python
"""GAF-Net evaluation: fuse precomputed appearance and gait embeddings and report CMC / mAP on iLIDS-VID.

Usage:
    python evaluate.py                          # all backbones, the paper's λ, ./embeddings
    python evaluate.py --backbone pit           # one backbone
    python evaluate.py --demo                   # a generated SYNTHETIC tree (no download needed)
    python evaluate.py --lambda_val 0.8         # another λ
    python evaluate.py --lambda_val cv          # λ chosen per split on the other nine splits
    python evaluate.py --sweep 0:1.5:0.01       # every λ of a grid: table + lambda_sweep.png
    python evaluate.py --output results.json    # everything as JSON
    python evaluate.py --rerank                 # k-reciprocal re-ranking (torchreid)

The logic lives in gafnet/fusion_eval.py; see README.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gafnet.errors import script_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main("evaluate.py", "gafnet.fusion_eval"))
