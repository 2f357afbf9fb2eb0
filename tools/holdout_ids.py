#!/usr/bin/env python
"""Split a pose CSV by identity into a training part and a held-out validation part.

The original recipe picks the best epoch on the test split (``--valid_data_path test_splitN.csv``), which
makes the reported test numbers optimistic. Hold out some TRAINING identities instead:

    python tools/holdout_ids.py poses/splits_pit/train_split0.csv --dataset iLIDS --fraction 0.2 --seed 0
    # → poses/splits_pit/train_split0.fit.csv and poses/splits_pit/train_split0.val.csv

then train on ``*.fit.csv`` with ``--valid_data_path *.val.csv``. Every row of one identity goes to the same
part; the header is kept; rows keep their order. Nothing is written over an existing file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gafnet.atomic import write_text  # noqa: E402
from gafnet.errors import InputError, user_errors  # noqa: E402
from gafnet.gait.poses import get_format  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pose_csv")
    p.add_argument("--dataset", default="iLIDS", help="iLIDS, mars or casia-b (default iLIDS)")
    p.add_argument("--fraction", type=float, default=0.2, help="share of identities held out (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    with user_errors("holdout_ids.py"):
        src = Path(a.pose_csv)
        if not src.is_file():
            raise InputError(f"{src}: file not found")
        if not 0 < a.fraction < 1:
            raise InputError(f"--fraction must be between 0 and 1, got {a.fraction}")
        fmt = get_format(a.dataset)
        lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
        header, rows = lines[0], lines[1:]
        ids = []
        for row in rows:
            parsed = fmt.parse_name(row.split(",", 1)[0].strip())
            ids.append(None if parsed is None else parsed[0][0])
        people = sorted({i for i in ids if i is not None})
        if len(people) < 2:
            raise InputError(f"{src}: fewer than two identities; nothing to hold out")
        rng = np.random.default_rng(a.seed)
        held = set(rng.choice(people, size=max(1, int(round(a.fraction * len(people)))), replace=False).tolist())
        fit = src.with_suffix(".fit.csv")
        val = src.with_suffix(".val.csv")
        for out in (fit, val):
            if out.exists():
                raise InputError(f"{out} exists; remove it first")
        write_text(fit, header + "".join(r for r, i in zip(rows, ids) if i not in held))
        write_text(val, header + "".join(r for r, i in zip(rows, ids) if i in held))
        print(f"{len(people) - len(held)} identities → {fit}; {len(held)} held out → {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
