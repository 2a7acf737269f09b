"""RDBM — Residual Diffusion Bridge Model (arXiv 2510.23116; code MiliLab/RDBM `code/rdbm.py` @ ddc8ef9f).

The generalized bridge itself, on a named θ schedule. Defaults follow the paper: π = x0 − μ, λ = 10/255 (the λ of
Σ² = 2λ·sinh·sinh/sinh), iDDPM cosine betas used as θ (rdbm.py L93-102, with no dt), T = 100, NFE = 10, objective
`noise` (the product π⊙ε) with L1. Time: official index k ∈ 0..T−1 ↔ t = (k+1)/T; θ̄_{0:t} is the inclusive sum
(rdbm.py L131-145). Official sampler: `ddim` (rdbm.py's `ddim_sample`, L196-262, first step included), on the
official grid `linspace(−1, T−1, NFE+1).int()` (L201-205); `reverse_sde` is the generalized bridge's own SDE.

The released code differs (docs/bridges.md, "RDBM paper vs released code"):
`get_bridge("rdbm", pi="one", lam=1e-4, objective="x0")` reproduces it numerically.
"""

import torch

from bridgezoo import Option, hookimpl
from bridgezoo.bridge import F64
from bridgezoo.errors import OptionError
from bridgezoo.schedules import Clock, iddpm_cosine_betas, inclusive_clock, index_grid, linear_betas, sigmoid_betas
from bridgezoo_plugins.bridges.sde import GeneralizedSDEBridge, irsde_clock

THETA_SCHEDULES = ("cosine", "linear", "sigmoid", "constant", "irsde-cosine")


def theta_clock(schedule: str, T: int, scale: float = 1.0) -> Clock:
    """The θ schedules of the generalized bridge, on T steps; index k ↔ t = (k+1)/T.

    `cosine`: iDDPM cosine betas used as θ (RDBM code); `linear` and `sigmoid`: beta schedules used as θ;
    `constant`: θ_k = 1/T, so s(t) = t (S = 1); `irsde-cosine`: the IR-SDE / GOUB clock (S = −ln 0.005, index
    i ∈ 0..T ↔ t = i/T). `scale` multiplies θ (used for the θ → 0 limits).
    """
    if schedule == "irsde-cosine":
        clock = irsde_clock(T)[0]
        return Clock(clock.values * scale, clock.name if scale == 1 else f"{clock.name}×{scale:g}")
    if schedule == "cosine":
        thetas = iddpm_cosine_betas(T)
    elif schedule == "linear":
        thetas = linear_betas(T)
    elif schedule == "sigmoid":
        thetas = sigmoid_betas(T)
    elif schedule == "constant":
        thetas = torch.full((T,), 1.0 / T, dtype=F64)
    else:
        raise ValueError(f"unknown theta schedule {schedule!r}; choose one of {', '.join(THETA_SCHEDULES)}")
    return inclusive_clock(thetas * scale, f"{schedule}×{scale:g}" if scale != 1 else schedule)


class ThetaBridge(GeneralizedSDEBridge):
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

    def grid(self, nfe: int):
        """The official grid `linspace(−1, T−1, nfe+1).int()` reversed, index k ↔ t = (k+1)/T (RDBM L201-205)."""
        return index_grid(self.options["T"], nfe)


class RDBM(ThetaBridge):
    paper = "Residual Diffusion Bridge Model for Image Restoration (RDBM), arXiv 2510.23116"
    summary = "Residual diffusion bridge: noise modulated by |x0 − μ| on the generalized (θ, λ, π) bridge"
    default_nfe = 10
    official_samplers = ("ddim", "reverse_sde")
    option_defaults = {"pi": "residual", "lam": 10 / 255, "objective": "noise", "loss_type": "l1", "T": 100,
                       "theta_schedule": "cosine"}


@hookimpl
def register_bridges(register):
    register(RDBM, name="rdbm", summary=RDBM.summary)
