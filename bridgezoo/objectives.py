"""What the network predicts: one table, each entry the training target and its exact inverse (x̂0) together.

Every objective is a function of (x0, μ, x_t, t) on the marginal x_t = a·x0 + b·μ + c·π⊙ε, and `predict_x0`
inverts it given (output, x_t, μ, t). The noise is always the one implied by x_t: (x_t − a·x0 − b·μ)/c, i.e.
π⊙ε as it enters x_t. Shapes: images [B, C, H, W], t [B]; `res_noise` outputs 2C channels.
Where an inverse is undefined (a = 0 for `noise`, da/dt = 0 for `velocity`) μ is returned; nothing is clipped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .devices import cast_like


def safe_div(num: torch.Tensor, den: torch.Tensor, fallback) -> torch.Tensor:
    """num/den where den ≠ 0, `fallback` (a number or a tensor) where den == 0 (no NaN, no Inf, no warning; a
    number is no host→device copy)."""
    zero = den == 0
    out = num / torch.where(zero, torch.ones_like(den), den)
    if isinstance(fallback, torch.Tensor):
        fallback = cast_like(fallback, out)
    return torch.where(zero, fallback, out)


@dataclass(frozen=True)
class Objective:
    """One objective: `target(bridge, x0, mu, x_t, t)` and its inverse `predict_x0(bridge, output, x_t, mu, t)`."""

    name: str
    summary: str
    target: Callable
    predict_x0: Callable
    channels: int = 1  # output channels per image channel


def _velocity_coefficients(bridge, t, like):
    da, db, _ = bridge.coefficient_derivatives(t)
    return cast_like(da, like), cast_like(db, like)


def _noise_target(bridge, x0, mu, x_t, t):
    a, b, c = bridge.coefficients(t, x0)
    return safe_div(x_t - a * x0 - b * mu, c.expand_as(x0), 0.0)


def _noise_x0(bridge, out, x_t, mu, t):
    a, b, c = bridge.coefficients(t, x_t)
    return safe_div(x_t - b * mu - c * out, a.expand_as(x_t), 0.0) + (a == 0) * mu


def _velocity_target(bridge, x0, mu, x_t, t):
    da, db = _velocity_coefficients(bridge, t, x0)
    return da * x0 + db * mu


def _velocity_x0(bridge, out, x_t, mu, t):
    da, db = _velocity_coefficients(bridge, t, x_t)
    return safe_div(out - db * mu, da.expand_as(x_t), 0.0) + (da == 0) * mu


def _res_noise_x0(bridge, out, x_t, mu, t):
    a, b, c = bridge.coefficients(t, x_t)
    channels = out.shape[1] // 2  # x_t = (a + b)·x0 + b·(μ − x0) + c·n
    return (x_t - b * out[:, :channels] - c * out[:, channels:]) / (a + b)


OBJECTIVE_TABLE: dict[str, Objective] = {o.name: o for o in (
    Objective("x0", "the clean image x0",
              lambda br, x0, mu, x_t, t: x0, lambda br, out, x_t, mu, t: out),
    Objective("noise", "the noise term as it enters x_t: π⊙ε = (x_t − a·x0 − b·μ)/c", _noise_target, _noise_x0),
    Objective("residual", "the residual μ − x0",
              lambda br, x0, mu, x_t, t: mu - x0, lambda br, out, x_t, mu, t: mu - out),
    Objective("res_noise", "[μ − x0, π⊙ε] concatenated on channels (2C outputs)",
              lambda br, x0, mu, x_t, t: torch.cat([mu - x0, _noise_target(br, x0, mu, x_t, t)], dim=1),
              _res_noise_x0, channels=2),
    Objective("velocity", "d x_t/dt along the π = 0 path: da/dt·x0 + db/dt·μ", _velocity_target, _velocity_x0),
    Objective("xt_minus_x0", "x_t − x0",
              lambda br, x0, mu, x_t, t: x_t - x0, lambda br, out, x_t, mu, t: x_t - out),
)}
OBJECTIVES = tuple(OBJECTIVE_TABLE)
