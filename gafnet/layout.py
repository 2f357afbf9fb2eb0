"""The released data layout (README, "Data layout"): where every file of the GAF-Net data tree lives.

    embeddings/ilids/{pit,mgh,osnet,gait1,gait2}/{query,gallery}_split{0..9}.csv
    poses/splits_pit/{train,test}_split{0..9}.csv
    poses/splits_mgh/{train,test}_split{0..9}.csv

One place for these paths: the root evaluate.py, the downloader's validation and the demo generator
all use it.
"""

from __future__ import annotations

from pathlib import Path

NUM_SPLITS = 10
EMBEDDING_FOLDERS = ("pit", "mgh", "osnet", "gait1", "gait2")
EMBEDDING_KINDS = ("query", "gallery")
POSE_FOLDERS = ("splits_pit", "splits_mgh")
POSE_KINDS = ("train", "test")
DATASET = "ilids"


def embedding_csv(embeddings_root: str | Path, folder: str, kind: str, split: int) -> Path:
    """``<embeddings_root>/ilids/<folder>/<kind>_split<split>.csv`` (embeddings_root is e.g. ./embeddings)."""
    return Path(embeddings_root) / DATASET / folder / f"{kind}_split{split}.csv"


def pose_csv(poses_root: str | Path, folder: str, kind: str, split: int) -> Path:
    """``<poses_root>/<folder>/<kind>_split<split>.csv`` (poses_root is e.g. ./poses)."""
    return Path(poses_root) / folder / f"{kind}_split{split}.csv"


def expected_embedding_files(embeddings_root: str | Path, folders=EMBEDDING_FOLDERS) -> list[Path]:
    return [embedding_csv(embeddings_root, f, k, s) for f in folders for s in range(NUM_SPLITS) for k in EMBEDDING_KINDS]


def expected_pose_files(poses_root: str | Path, folders=POSE_FOLDERS) -> list[Path]:
    return [pose_csv(poses_root, f, k, s) for f in folders for s in range(NUM_SPLITS) for k in POSE_KINDS]
