"""Perturbed weights: what a miner serving a slightly different model looks like.

`perturb(model, fraction, seed)` adds seeded Gaussian noise of `fraction` times each tensor's own
standard deviation to every floating-point parameter, in place. The verifier's calibration
(`scripts/calibrate_verify.py`) measures how many answers it takes to catch such a model, and a
cheating-miner adversary can serve one. Tensors with a single element or zero spread (norm
scales initialised to one) get noise of `fraction` times their mean magnitude instead, so every
layer moves.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def perturb(model: torch.nn.Module, fraction: float, seed: int = 0) -> torch.nn.Module:
    """Add N(0, (fraction * std(tensor))^2) to every floating parameter; returns `model`.

    Noise is drawn in float32 on the CPU from one seeded generator, in parameter order, so the
    same (model, fraction, seed) gives the same weights on any device and dtype. Tied weights
    (one tensor under two names) are perturbed once.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    for p in model.parameters():  # parameters() yields a tied tensor once
        if not p.is_floating_point() or id(p) in seen:
            continue
        seen.add(id(p))
        w = p.detach().float().cpu()
        scale = float(w.std()) if w.numel() > 1 else 0.0
        if scale == 0.0:
            scale = float(w.abs().mean())
        noise = torch.randn(w.shape, generator=gen, dtype=torch.float32) * (fraction * scale)
        p.add_(noise.to(device=p.device, dtype=p.dtype))
    return model
