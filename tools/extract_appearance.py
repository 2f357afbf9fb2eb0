#!/usr/bin/env python
"""See gafnet/pixels/appearance_cli.py (and docs/pixels.md): python tools/extract_appearance.py --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gafnet.errors import script_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main("extract_appearance.py", "gafnet.pixels.appearance_cli"))
