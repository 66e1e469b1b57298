"""Engine fixtures: the test-size tiny experts loaded once per session on CPU."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def code_expert(tiny_experts):
    from subnet.engine.loading import load_expert

    torch.set_num_threads(1)  # the engine's default on CPU; keeps reference runs comparable
    return load_expert(tiny_experts["code"], device="cpu")


@pytest.fixture(scope="session")
def math_expert(tiny_experts):
    from subnet.engine.loading import load_expert

    return load_expert(tiny_experts["math"], device="cpu")
