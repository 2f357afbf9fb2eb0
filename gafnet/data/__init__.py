"""Getting the real data safely: download, verify and unpack the released files (README, "Getting the data").

    python -m gafnet.data download [gafnet|casia-b|gaitgraph-weights|all]   # docs/data.md
    python -m gafnet.data verify [--root .]

- :mod:`gafnet.data.verify`    cheap layout checks; ``check_embeddings``/``check_poses`` are what the
                               root evaluate.py calls to explain what is missing
- :mod:`gafnet.data.download`  HTTP(S) with Range resume, Google Drive through gdown, digests, install
- :mod:`gafnet.data.unzip`     safe unpacking (zip-slip, symlinks, devices, zip bombs), atomic install

Importing this package is cheap: it loads only the checks, not requests or gdown.
"""

from gafnet.data.verify import (
    LayoutReport,
    Malformed,
    check_casia_b,
    check_embeddings,
    check_gafnet,
    check_poses,
    check_weights,
)

__all__ = [
    "LayoutReport",
    "Malformed",
    "check_casia_b",
    "check_embeddings",
    "check_gafnet",
    "check_poses",
    "check_weights",
]
