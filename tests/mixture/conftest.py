"""Mixture fixtures: the four test-size tiny experts loaded once per session on CPU."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mixture(tiny_experts):
    """domain -> LoadedExpert for every offline expert."""
    from subnet.engine.loading import load_expert

    return {d: load_expert(p, device="cpu", dtype="float32") for d, p in tiny_experts.items()}
