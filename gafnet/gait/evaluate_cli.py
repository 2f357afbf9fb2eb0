"""The command ``gaitgraph/src/evaluate.py``: extract GaitGraph embeddings from a pose CSV and evaluate them gait-only.

    python evaluate.py iLIDS <test_splitN.csv> --weight_path <checkpoint> [--output_dir DIR] [--split N]
    python evaluate.py casia-b <test.csv> --weight_path <checkpoint>
    python evaluate.py mars <test.csv> --weight_path <checkpoint> [--protocol official] [--query_list CSV]

iLIDS-VID: writes ``DIR/query_splitN.csv`` (camera 1) and ``DIR/gallery_splitN.csv`` (camera 2) in the gait
CSV format the root evaluate.py reads (``feat_0 … feat_{E-1}, person_id, camera_id``) as one pair with a
manifest (:func:`gafnet.embeddings.write_embedding_pair`: the manifest is written first as incomplete, then both
CSVs atomically, then the manifest with both files' digests and the provenance: checkpoint path, its sha256,
model and preprocessing), so a reader can tell a complete pair of one run from a mixed or partial one. It
prints the gait-only CMC and mAP (Rank-k only for k up to the gallery size) and warns when the embeddings have
collapsed. The model and its preprocessing are rebuilt from the checkpoint (ours or the original GaitGraph
format); a command-line flag that disagrees with the checkpoint is an error. The default output directory is
``gait_embeddings/`` at the repository root, wherever the script is started.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

from ..cache import check_regular_file
from ..errors import InputError, cli_main
from ..metrics import collapse_warning
from . import poses as poses_mod
from .cli_options import (add_data_arguments, check_int, check_preprocessing, load_pose_file)
from .extraction import TTA_CHOICES, WINDOW_CHOICES, extract_embeddings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT_DIR = REPO_ROOT / "gait_embeddings"
SPLIT_IN_NAME = re.compile(r"split[_-]?(\d+)", re.IGNORECASE)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Extract GaitGraph embeddings from a pose CSV and evaluate them gait-only.",
        epilog="Example (in gaitgraph/src):\n  python evaluate.py iLIDS ../../poses/splits_pit/test_split0.csv "
               "--weight_path ../../runs/ilids-split0/best.pt --output_dir ../../embeddings/ilids/gait1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(poses_mod.DATASETS), help="pose file format")
    p.add_argument("data_path", help="pose CSV to embed (the test split)")
    p.add_argument("--weight_path", required=True, help="checkpoint: ours (best.pt/last.pt) or the original GaitGraph's")
    p.add_argument("--output_dir", default=str(DEFAULT_OUTPUT_DIR),
                   help="where the CSVs go (default: gait_embeddings/ at the repository root, wherever the script is "
                        "started from)")
    p.add_argument("--split", type=int, default=None, help="split number of the output names (default: from the input name)")
    p.add_argument("--batch_size", type=int, default=256, help="sequences per forward pass (default 256)")
    p.add_argument("--tta", choices=TTA_CHOICES, default="none",
                   help="test-time augmentation: none (the original's output) or time_flip (average with the "
                        "time-reversed window)")
    p.add_argument("--windows", choices=WINDOW_CHOICES, default="center",
                   help="center: the centre window (the original); all: average over sliding windows")
    p.add_argument("--protocol", choices=("torchreid", "official"), default="torchreid", help="MARS protocol")
    p.add_argument("--query_list", default=None, help="MARS query tracklets CSV (default: the standard 1,980)")
    p.add_argument("--network_name", default=None,
                   help="default: from the checkpoint (if given, it must agree with it)")
    p.add_argument("--embedding_layer_size", type=int, default=None,
                   help="default: from the checkpoint (if given, it must agree with it)")
    p.add_argument("--use_multi_branch", action="store_true", default=None,
                   help="default: from the checkpoint (if given, it must agree with it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_arguments(p, from_checkpoint=True)
    return p


def checkpoint_preprocessing(ckpt) -> dict:
    """The checkpoint's preprocessing, checked; the original format gets the original's defaults."""
    prep = ckpt.preprocessing
    run_args = ckpt.run_args or {}
    prep.setdefault("sequence_length", run_args.get("sequence_length", 60))
    prep.setdefault("normalize_pose", "off")
    prep.setdefault("multi_branch", int(ckpt.model_args["num_input_branches"]) > 1)
    prep.setdefault("all_angles", False)
    return check_preprocessing(prep, f"{ckpt.path} (preprocessing)")


def check_flags(args, model_args: dict, prep: dict, path) -> None:
    """A flag given on the command line must agree with the checkpoint: the checkpoint describes the model."""
    pairs = [("--network_name", args.network_name, model_args.get("network_name")),
             ("--embedding_layer_size", args.embedding_layer_size, model_args.get("embedding_size")),
             ("--use_multi_branch", args.use_multi_branch, prep.get("multi_branch")),
             ("--sequence_length", args.sequence_length, prep.get("sequence_length")),
             ("--normalize_pose", args.normalize_pose, prep.get("normalize_pose"))]
    for flag, given, saved in pairs:
        if given is not None and saved is not None and given != saved:
            raise InputError(f"{flag} {given} disagrees with the checkpoint {path}, which was trained with {saved}; "
                             f"leave {flag} out (the checkpoint decides) or use another checkpoint")


def split_number(args) -> int:
    if args.split is not None:
        check_int("--split", args.split, 0)
        return args.split
    match = SPLIT_IN_NAME.search(Path(args.data_path).name)
    if match is None:
        raise InputError(f"cannot tell the split number from the file name {Path(args.data_path).name!r}; pass --split N")
    return int(match.group(1))


def provenance(args, ckpt, prep: dict) -> dict:
    """What produced a pair of embedding files: stored in its manifest."""
    return {"producer": "gaitgraph/src/evaluate.py", "checkpoint": str(Path(ckpt.path).resolve()),
            "checkpoint_sha256": ckpt.sha256, "checkpoint_format": ckpt.format, "model_args": dict(ckpt.model_args),
            "preprocessing": dict(prep), "data_path": str(Path(args.data_path).resolve()), "tta": args.tta,
            "windows": args.windows}


def write_ilids_pair(out_dir: Path, split: int, feats: np.ndarray, pids: np.ndarray, cams: np.ndarray,
                     info: dict) -> None:
    """query (camera 1) and gallery (camera 2) rows, each sorted by person, as one pair with a manifest."""
    from ..embeddings import write_embedding_pair
    from .protocols import ilids_query_gallery

    parts = {}
    for kind, rows in zip(("query", "gallery"), ilids_query_gallery(cams)):
        order = rows[np.argsort(pids[rows], kind="stable")]
        parts[kind] = (feats[order], pids[order], cams[order])
    write_embedding_pair(out_dir, split, query=parts["query"], gallery=parts["gallery"], provenance=info)
    for kind, (f, _, _) in parts.items():
        print(f"wrote {out_dir / f'{kind}_split{split}.csv'} ({len(f)} rows, {f.shape[1]}-d)")


def run(args: argparse.Namespace) -> dict:
    from ..device import choose_device
    from . import protocols
    from .checkpoint import build_model_from_checkpoint, load_checkpoint

    check_int("--batch_size", args.batch_size, 1)
    fmt = poses_mod.get_format(args.dataset)
    check_regular_file(args.data_path, "data_path")
    split = split_number(args) if fmt.name == "iLIDS" else None
    device = choose_device(args.device)
    ckpt = load_checkpoint(args.weight_path)
    prep = checkpoint_preprocessing(ckpt)
    check_flags(args, ckpt.model_args, prep, args.weight_path)
    prep["drop_short"] = bool(args.drop_short)
    model = build_model_from_checkpoint(ckpt).to(device)
    print(f"model {ckpt.model_args} from {args.weight_path} ({ckpt.format} format); preprocessing {prep}; "
          f"device {device}")
    pose_set = load_pose_file(args.data_path, args.dataset, prep, args.cache_dir, "data_path")
    t0 = time.perf_counter()
    feats = extract_embeddings(model, pose_set, sequence_length=prep["sequence_length"],
                               multi_branch=prep["multi_branch"], all_angles=prep["all_angles"],
                               batch_size=args.batch_size, device=device, tta=args.tta, windows=args.windows,
                               progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    print(f"embedded {len(pose_set)} sequences in {elapsed:.1f} s ({len(pose_set) / max(elapsed, 1e-9):.1f} sequences/s)")
    warning = collapse_warning(feats, f"gait embeddings of {args.data_path}")
    if warning:
        print(warning, file=sys.stderr)
    out_dir = Path(args.output_dir)
    fields = pose_set.target_fields
    result = {"embeddings": feats, "targets": pose_set.targets, "collapse_warning": warning}
    if fmt.name == "iLIDS":
        pids, cams = pose_set.column(fields[0]), pose_set.column(fields[1])
        res = protocols.evaluate_ilids(feats, pids, cams)
        print_rank(f"gait only, split {split} (query camera {protocols.ILIDS_QUERY_CAMERA}, gallery camera "
                   f"{protocols.ILIDS_GALLERY_CAMERA})", res)
        write_ilids_pair(out_dir, split, feats, pids, cams, provenance(args, ckpt, prep))
        result["rank"] = res
    elif fmt.name == "mars":
        res = protocols.evaluate_mars(feats, pose_set.column(fields[0]), pose_set.column(fields[1]),
                                      pose_set.column(fields[2]), query_list=args.query_list, protocol=args.protocol)
        print_rank(f"gait only, MARS ({args.protocol} protocol)", res)
        result["rank"] = res
    else:
        table = protocols.casia_b_table(feats, *(pose_set.column(f) for f in fields[:4]))
        print(table.format_table())
        path = out_dir / "casia_b_table.csv"
        table.to_csv(path)
        print(f"wrote {path}")
        result["casia"] = table
    return result


def print_rank(title: str, result) -> None:
    from .protocols import format_ranks

    print(f"{title}: {format_ranks(result)}  ({result.num_valid} of {result.num_queries} queries with a valid match)")


def main(argv: list[str] | None = None) -> int:
    return cli_main("evaluate.py", build_parser(), run, argv, keep_freed_memory=True)


if __name__ == "__main__":
    sys.exit(main())
