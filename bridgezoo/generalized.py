"""The generalized (θ, λ, π) bridge of the RDBM paper (arXiv 2510.23116), the family every method is compared to.

SDE: dx = θ_t·coth(θ̄_{t:1})·(μ − x)·dt + sqrt(2·π²·λ·θ_t)·dw. Marginal (BRIDGES.md §0):
    Θ_t = sinh(θ̄_{t:1})/sinh(θ̄_{0:1}),  Σ_t² = 2λ·sinh(θ̄_{0:t})·sinh(θ̄_{t:1})/sinh(θ̄_{0:1}),
    a = Θ, b = 1 − Θ, c = Σ.
θ̄ is a `schedules.Clock`; λ is a variance in [-1, 1] units (the stationary variance of the OU part).
"""

from __future__ import annotations

import torch

from .bridge import F64, Option, SDEBridge, official_index_grid
from .errors import OptionError
from .schedules import THETA_SCHEDULES, Clock, theta_clock


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


class GeneralizedBridge(SDEBridge):
    """The generalized bridge on a clock θ̄ with variance λ. Subclasses set `self.clock` and `self.lam` in `setup`.

    The SDE is written on the clock: per unit of θ̄, drift coth(θ̄_{t:1})·(μ − x) and g² = 2λ (π = 1).
    """

    summary = "Generalized (θ, λ, π) bridge: Θ = sinh(θ̄_{t:1})/sinh(θ̄_{0:1}), Σ² = 2λ·sinh·sinh/sinh"
    clock: Clock
    lam: float

    def _coefficients(self, t):
        return sinh_bridge_coefficients(self.clock, self.lam, t)

    def drift(self, x, mu, t):
        """coth(θ̄_{t:1})·(μ − x) = OU part + h-term, with h = 0 where θ̄_{t:1} = 0 (GOUB's rule at t = T)."""
        u = self.clock.total - self.clock(t.detach().cpu().to(F64))
        h = torch.where(u > 0, 2 / torch.expm1(2 * u.clamp_min(1e-300)), torch.zeros_like(u))
        return (1 + h).reshape(-1, 1, 1, 1).to(x) * (mu - x)

    def diffusion_sq(self, t):
        return torch.full((t.shape[0], 1, 1, 1), 2 * self.lam, dtype=F64)

    @property
    def relation(self) -> dict:
        return {"kind": "exact", "theta": self.clock.name, "lam": self.lam, "pi": self.pi, "note": "itself"}


class ThetaBridge(GeneralizedBridge):
    """The generalized bridge with a named θ schedule on T steps (index k ↔ t = (k+1)/T) and λ as an option."""

    option_spec = {
        "theta_schedule": Option("cosine", "θ schedule: iDDPM cosine betas as θ (RDBM code), linear, sigmoid, constant",
                                 THETA_SCHEDULES),
        "theta_scale": Option(1.0, "multiplies θ (θ → 0 gives the Brownian-bridge limits)"),
        "lam": Option(1e-4, "λ of Σ² = 2λ·sinh·sinh/sinh: a variance, in [-1, 1] units"),
    }
    option_defaults = {"loss_type": "l1"}

    def setup(self) -> None:
        if self.options["T"] < 1:
            raise OptionError(f"bridge {self.name!r}: T must be >= 1, got {self.options['T']}")
        if self.options["lam"] < 0:
            raise OptionError(f"bridge {self.name!r}: lam is a variance and must be >= 0, got {self.options['lam']}")
        self.clock = theta_clock(self.options["theta_schedule"], self.options["T"], self.options["theta_scale"])
        self.lam = self.options["lam"]

    def _grid(self, nfe: int) -> torch.Tensor:
        """The official grid `linspace(−1, T−1, nfe+1).int()` reversed, index k ↔ t = (k+1)/T (RDBM L201-205)."""
        return official_index_grid(self.options["T"], nfe)
