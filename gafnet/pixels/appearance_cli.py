"""``tools/extract_appearance.py``: appearance embeddings of a dataset's tracklets, in the released CSV layout.

    python tools/extract_appearance.py ilids-vid DATA/i-LIDS-VID/sequences --splits …/train_test_splits_ilidsvid.mat \\
        --model osnet_x1_0 --weights osnet_x1_0_market.pth --out embeddings/ilids/osnet_mine
    python tools/extract_appearance.py ilids-vid DATA/i-LIDS-VID/sequences --model colour --out embeddings/ilids/colour

Output (``--out`` folder, written with :func:`gafnet.embeddings.write_embedding_pair`: each pair with a manifest
holding the model, weights, preprocessing and command):

- iLIDS-VID with ``--splits``: ``{query,gallery}_split{i}.csv`` per split (test persons; query = camera 1,
  gallery = camera 2); without: ``query.csv`` / ``gallery.csv`` over all persons;
- PRID-2011: ``query.csv`` (cam_a) / ``gallery.csv`` (cam_b);
- MARS (``bbox_test``): ``query.csv`` / ``gallery.csv`` with the standard 1,980 query tracklets (torchreid's
  protocol: gallery = the other test tracklets except person −1; ``--query_list`` for another list).

Columns: ``index, feat_0 … feat_{D-1}, person_id, camera_id``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import InputError, cli_main
from .appearance import WEIGHT_FREE_LABEL, build_extractor
from .datasets import ilids_splits, layout_name, read_dataset

PROG = "extract_appearance.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Appearance embeddings (torchreid models or the weight-free "
                                "colour descriptor) of an image-folder dataset, in the released CSV layout.")
    p.add_argument("source", choices=("ilids-vid", "mars", "prid2011"), help="dataset layout")
    p.add_argument("root", help="dataset folder (ilids-vid: .../sequences, mars: .../bbox_test, prid2011: .../multi_shot)")
    p.add_argument("--out", required=True, help="output folder, e.g. embeddings/ilids/osnet_mine")
    p.add_argument("--model", required=True, help="torchreid model name (osnet_x1_0, osnet_ain_x1_0, resnet50, ...) "
                   "or colour (weight-free HSV stripe histograms)")
    p.add_argument("--weights", default=None, help="torchreid checkpoint (.pth/.pth.tar) for --model; required for "
                   "torchreid models (never downloaded)")
    p.add_argument("--splits", default=None, help="ilids-vid: train_test_splits_ilidsvid.mat → one pair per split")
    p.add_argument("--query_list", default=None, help="mars: query tracklets CSV person_id,camera_id,tracklet "
                   "(default: the standard 1,980)")
    p.add_argument("--seq_len", type=int, default=0, help="frames per tracklet, spread evenly (default 0 = all)")
    p.add_argument("--batch_size", type=int, default=64, help="frames per forward pass (default 64)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _triplet(features, tracklets, idx):
    idx = np.asarray(idx, dtype=np.int64)
    pids = np.asarray([tracklets[i].person_id for i in idx], dtype=np.int64)
    camids = np.asarray([tracklets[i].camera_id for i in idx], dtype=np.int64)
    return features[idx], pids, camids


def plan_pairs(layout: str, tracklets, splits, query_list) -> list[tuple[int | None, np.ndarray, np.ndarray]]:
    """[(split or None, query rows, gallery rows)] for the layout (see the module docstring)."""
    cams = np.asarray([t.camera_id for t in tracklets])
    pids = np.asarray([t.person_id for t in tracklets])
    if layout == "mars":
        from ..gait.protocols import mars_split

        tids = np.asarray([t.tracklet_id for t in tracklets])
        split = mars_split(pids, cams, tids, query_list=query_list, protocol="torchreid")
        return [(None, split.query_idx, split.gallery_idx)]
    if splits is None:
        return [(None, np.nonzero(cams == 1)[0], np.nonzero(cams == 2)[0])]
    pairs = []
    for i, (_, test) in enumerate(splits):
        test_mask = np.isin(pids, test)
        pairs.append((i, np.nonzero(test_mask & (cams == 1))[0], np.nonzero(test_mask & (cams == 2))[0]))
    return pairs


def run(args) -> dict:
    from ..embeddings import write_embedding_pair

    layout = layout_name(args.source)
    if args.splits and layout != "ilids-vid":
        raise InputError(f"--splits is for ilids-vid (train_test_splits_ilidsvid.mat), not {layout}")
    if args.query_list and layout != "mars":
        raise InputError("--query_list is for mars")
    if args.seq_len < 0 or args.batch_size < 1:
        raise InputError("--seq_len must be ≥ 0 and --batch_size ≥ 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give the output folder")
    tracklets = read_dataset(layout, args.root)
    splits = ilids_splits(args.splits, tracklets) if args.splits else None
    pairs = plan_pairs(layout, tracklets, splits, args.query_list)  # query list problems stop before any work
    for split, q, g in pairs:
        if len(q) == 0 or len(g) == 0:
            raise InputError(f"{args.root}: {'split ' + str(split) + ': ' if split is not None else ''}no "
                             f"{'query (camera 1)' if len(q) == 0 else 'gallery (camera 2)'} tracklets; "
                             "both cameras are needed")
    extractor = build_extractor(args.model, args.weights, args.device, args.batch_size)
    if extractor.weight_free:
        print(f"{PROG}: --model colour: {WEIGHT_FREE_LABEL}")
    else:
        print(extractor.report.summary())
    needed = sorted({int(i) for _, q, g in pairs for i in np.concatenate([q, g])})
    started = time.perf_counter()
    feats = extractor.features([tracklets[i] for i in needed], seq_len=args.seq_len, progress=not args.quiet)
    elapsed = time.perf_counter() - started
    features = np.zeros((len(tracklets), feats.shape[1]), dtype=np.float32)
    features[needed] = feats
    provenance = {**extractor.describe(), "dataset": layout, "root": str(args.root), "seq_len": args.seq_len,
                  "splits_file": str(args.splits) if args.splits else None, "command": " ".join(sys.argv)}
    written = []
    for split, q, g in pairs:
        written += write_embedding_pair(out, split, _triplet(features, tracklets, q), _triplet(features, tracklets, g),
                                        provenance=provenance, index_column=True)
    label = f" [{WEIGHT_FREE_LABEL}]" if extractor.weight_free else ""
    print(f"{out}: {len(pairs)} query/gallery pair(s) of {feats.shape[1]}-d features{label}; {len(needed)} tracklets "
          f"in {elapsed:.1f} s ({len(needed) / max(elapsed, 1e-9):.1f} tracklets/s)")
    return {"pairs": len(pairs), "dim": int(feats.shape[1]), "files": [str(p) for p in written], "seconds": elapsed}


def main(argv=None) -> int:
    return cli_main(PROG, build_parser(), run, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
