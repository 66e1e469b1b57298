"""Perturb a model's weights in place by a fraction of each tensor's standard deviation, seeded:
a model close to, but not, the declared one (calibration of the verifier, cheating-miner tests)."""

from __future__ import annotations

import torch


@torch.no_grad()
def perturb_(model: torch.nn.Module, rel_std: float, *, seed: int = 0) -> torch.nn.Module:
    """Add N(0, (rel_std × std(tensor))²) noise to every floating-point parameter; returns model.
    Tied tensors are perturbed once (parameters are visited once each)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for p in model.parameters():
        if not p.is_floating_point() or p.numel() < 2:
            continue
        std = p.float().std()
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * (rel_std * std)
        p.add_(noise.to(device=p.device, dtype=p.dtype))
    return model
