"""What the vLLM backend's tests share: the skip when vLLM is absent, and its tiny experts.

vLLM's CPU attention kernels take head sizes of 32, 64, 80, ... only, so these tests use the
`test-hd32` tiny experts (the test size with 32-wide heads), built once beside the test-size ones.
`bash scripts/test_vllm.sh` runs them in the vLLM environment; elsewhere they skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from subnet.engine.vllm_setup import vllm_version
from tests.fixtures_experts import EXPERTS_DIR

HD32_DIR = EXPERTS_DIR.with_name(EXPERTS_DIR.name + "-hd32")

needs_vllm = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        vllm_version() is None,
        reason="vLLM is not installed: `bash scripts/test_vllm.sh` sets it up and runs these",
    ),
]


def hd32_experts() -> dict[str, Path]:
    """domain -> directory of a `test-hd32` tiny expert (built on first use, then cached)."""
    from subnet.engine.experts import build_tiny_experts

    return build_tiny_experts(HD32_DIR, size="test-hd32")
