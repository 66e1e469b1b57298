"""Session fixture `tiny_experts`: domain -> directory of a test-size tiny expert.

Built once into a directory under the system temp dir; the builder's recipe hash decides whether
an existing build is reused, so repeated local runs start instantly and a changed recipe rebuilds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

EXPERTS_DIR = Path(tempfile.gettempdir()) / "dmoe-tiny-experts-test"


@pytest.fixture(scope="session")
def tiny_experts() -> dict[str, Path]:
    from subnet.engine.experts import build_tiny_experts

    return build_tiny_experts(EXPERTS_DIR, size="test")
