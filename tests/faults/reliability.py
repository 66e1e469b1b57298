"""Where reliability tests leave their figures for `scripts/chaos.py` (docs/RELIABILITY.md).

chaos.py sets `DMOE_RELIABILITY_DIR`; a test run without it records nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def record(name: str, data: Any) -> None:
    out = os.environ.get("DMOE_RELIABILITY_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(data, indent=1))
