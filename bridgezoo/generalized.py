"""The generalized (θ, λ, π) bridge (arXiv 2510.23116), the family every method is compared to.

Marginal (docs/bridges.md, "The generalized (θ, λ, π) bridge"), for a clock θ̄ (the cumulative mean-reversion rate,
`schedules.Clock`) and λ:
    Θ_t = sinh(θ̄_{t:1})/sinh(θ̄_{0:1}),  Σ_t² = 2λ·sinh(θ̄_{0:t})·sinh(θ̄_{t:1})/sinh(θ̄_{0:1}),
    a = Θ, b = 1 − Θ, c = Σ.
λ is a variance in [-1, 1] units (the stationary variance of the OU part). Its SDE lives plugin-side
(`bridgezoo_plugins.bridges.sde.GeneralizedSDEBridge`); here is only the path.
"""

from __future__ import annotations

import torch

from .bridge import F64, Bridge
from .schedules import Clock


def sinh_coefficients(s: torch.Tensor, S, lam: float):
    """(Θ, 1 − Θ, Σ) at clock value s = θ̄_{0:t} with total S = θ̄_{0:1} and λ (a variance)."""
    S = torch.as_tensor(S, dtype=F64)
    u = S - s
    theta = torch.sinh(u) / torch.sinh(S)
    var = 2 * lam * torch.sinh(s) * torch.sinh(u) / torch.sinh(S)
    return theta, 1 - theta, var.clamp_min(0).sqrt()


def sinh_bridge_coefficients(clock: Clock, lam: float, t: torch.Tensor):
    """(Θ_t, 1 − Θ_t, Σ_t) of the generalized bridge at float64 t, for any clock and λ (a variance)."""
    return sinh_coefficients(clock(t), clock.total, lam)


class GeneralizedBridge(Bridge):
    """The generalized bridge on a clock θ̄ with variance λ. Subclasses set `self.clock` and `self.lam` in `setup`."""

    summary = "Generalized (θ, λ, π) bridge: Θ = sinh(θ̄_{t:1})/sinh(θ̄_{0:1}), Σ² = 2λ·sinh·sinh/sinh"
    clock: Clock
    lam: float

    def schedule(self, t):
        return sinh_bridge_coefficients(self.clock, self.lam, t)

    @property
    def relation(self) -> dict:
        return {"kind": "exact", "theta": self.clock.name, "lam": self.lam, "pi": self.pi, "note": "itself"}


def straight_path_relation(pi: str, noise: str) -> dict:
    """`relation` of a bridge on the straight path a = 1 − t, b = t (InDI, MeanFlow, fm): with π = zero exactly the
    generalized bridge with λ = 0 after the time change 1 − t = Θ_τ; with noise none, `noise` saying why."""
    if pi == "zero":
        return {"kind": "exact", "theta": "any (time change 1 − t = Θ_τ)", "lam": 0.0, "pi": "zero",
                "note": "the straight path (1 − t)·x0 + t·μ, as fm"}
    return {"kind": "none", "theta": None, "lam": None, "pi": pi, "note": noise}
