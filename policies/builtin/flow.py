"""The flow-matching head of the built-in policy (π0 style) and its guided sampler.

Convention (see ``docs/architecture.md``, "The built-in policy's heads"): a
standardized chunk ``a`` (``[steps * dim]``), noise ``ε ~ N(0, I)`` and a time
``τ ∈ [0, 1)``; ``x_τ = τ·a + (1 − τ)·ε``; the head predicts the velocity
``v(x_τ, τ, features)`` and is trained on ``|| v − (a − ε) ||²``. Sampling runs
``n`` Euler steps from ``x_0 = ε`` to ``τ = 1``; the observation features are
computed once by the caller.

Guided sampling (real-time chunking, Black et al. 2025): given a target ``y``
and per-slot weights ``w`` (1 on the actions that will run before the answer
arrives, decaying to 0 over the rest of the committed overlap), every Euler
step corrects the velocity by the vector–Jacobian product of
``(y − x̂) ⊙ w`` through the predicted clean chunk ``x̂ = x + (1 − τ)·v``,
scaled by ``min(c·r, β)`` with ``c = (1 − τ)/τ`` and
``r = (τ² + (1 − τ)²)/(1 − τ)²``. Pure functions of tensors; called from
whatever thread runs the policy, one call at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

TIME_DIM = 32  # sinusoidal features of the flow time
GUIDANCE_CAP = 5.0  # β: the largest guidance weight (PI's reference value)


class FlowHead(nn.Module):
    """``v(x_τ, τ, features)``: an MLP over the fused observation features, the noisy chunk and the time."""

    def __init__(self, hidden: int, slots: int) -> None:
        super().__init__()
        self.slots = slots
        self.net = nn.Sequential(nn.Linear(hidden + slots + TIME_DIM, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, slots))
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), TIME_DIM // 2)),
                             persistent=False)

    def velocity(self, features: torch.Tensor, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """``features`` ``[B, hidden]``, ``x`` ``[B, slots]``, ``tau`` ``[B]`` -> ``[B, slots]``."""
        angles = tau[:, None] * self.freqs[None, :]
        return self.net(torch.cat([features, x, torch.sin(angles), torch.cos(angles)], dim=1))


def noisy(target: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training sample for standardized chunks ``target`` ``[B, slots]``: ``(x_τ, τ, a − ε)``, τ uniform."""
    noise = torch.randn(target.shape, generator=gen).to(target)
    tau = torch.rand(target.shape[0], generator=gen).to(target)
    return tau[:, None] * target + (1.0 - tau[:, None]) * noise, tau, target - noise


@dataclass(frozen=True)
class Guidance:
    """What a sampled chunk should continue: ``target`` ``[slots]`` (standardized) where ``weights`` ``[slots]`` > 0."""

    target: torch.Tensor
    weights: torch.Tensor
    cap: float = GUIDANCE_CAP


def guidance_scale(tau: float, cap: float) -> float:
    """``min(c·r, β)``; ``c`` is infinite at ``τ = 0``, so the cap applies there."""
    if tau <= 0.0:
        return cap
    c = (1.0 - tau) / tau
    r = (tau ** 2 + (1.0 - tau) ** 2) / (1.0 - tau) ** 2
    return min(c * r, cap)


def sample(head: FlowHead, features: torch.Tensor, noise: torch.Tensor, steps: int,
           guidance: Guidance | None = None) -> torch.Tensor:
    """Integrate ``steps`` Euler steps from ``noise`` ``[B, slots]``; returns standardized chunks ``[B, slots]``."""
    if steps < 1:
        raise ValueError("the flow head needs at least one Euler step")
    x = noise
    dt = 1.0 / steps
    for i in range(steps):
        tau = i * dt
        t = torch.full((x.shape[0],), tau, dtype=x.dtype, device=x.device)
        if guidance is None:
            with torch.no_grad():
                v = head.velocity(features, x, t)
        else:
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                v = head.velocity(features, xg, t)
                clean = xg + (1.0 - tau) * v
                error = (guidance.target.to(x) - clean) * guidance.weights.to(x)
                (correction,) = torch.autograd.grad(clean, xg, grad_outputs=error)
            v = v.detach() + guidance_scale(tau, guidance.cap) * correction
        x = x + dt * v
    return x.detach()
