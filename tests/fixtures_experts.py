"""Session fixture `tiny_experts`: domain -> directory of a test-size tiny expert.

Built once into a directory under the system temp dir; the builder's recipe hash decides whether
an existing build is reused, so repeated local runs start instantly and a changed recipe rebuilds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# DMOE_TEST_EXPERTS_DIR: a private build directory (checkouts that change the recipe side by side).
EXPERTS_DIR = Path(
    os.environ.get("DMOE_TEST_EXPERTS_DIR")
    or Path(tempfile.gettempdir()) / "dmoe-tiny-experts-test"
)


@pytest.fixture(scope="session")
def tiny_experts() -> dict[str, Path]:
    from subnet.engine.experts import build_tiny_experts

    return build_tiny_experts(EXPERTS_DIR, size="test")
