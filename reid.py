#!/usr/bin/env python
"""Re-identify people across videos: python reid.py index … / search … / --demo (see docs/reid.md, --help).

The logic lives in gafnet/pixels/reid.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gafnet.errors import script_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main("reid.py", "gafnet.pixels.reid"))
