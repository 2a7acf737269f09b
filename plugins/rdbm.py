"""RDBM — Residual Diffusion Bridge Model (arXiv 2510.23116; code MiliLab/RDBM `code/rdbm.py` @ ddc8ef9f).

The generalized bridge itself. Defaults follow the paper: π = x0 − μ, λ = 10/255 (the λ of
Σ² = 2λ·sinh·sinh/sinh), iDDPM cosine betas used as θ, T = 100, NFE = 10, objective `noise` (the product π⊙ε)
with L1. Time: official index k ∈ 0..T−1 ↔ t = (k+1)/T; θ̄_{0:t} is the inclusive sum (rdbm.py L131-145).

The released code differs (BRIDGES.md §10): `get_bridge("rdbm", pi="one", lam=1e-4, objective="x0")`
reproduces it numerically (its `ddim` sampler is rdbm.py's `ddim_sample`, L196-262, first step included).
"""

from bridgezoo import hookimpl
from bridgezoo.generalized import ThetaBridge


class RDBM(ThetaBridge):
    paper = "Residual Diffusion Bridge Model for Image Restoration (RDBM), arXiv 2510.23116"
    summary = "Residual diffusion bridge: noise modulated by |x0 − μ| on the generalized (θ, λ, π) bridge"
    default_nfe = 10
    samplers = ("ddim", "reverse_sde")
    option_defaults = {"pi": "residual", "lam": 10 / 255, "objective": "noise", "loss_type": "l1", "T": 100,
                       "theta_schedule": "cosine"}


@hookimpl
def register_bridges(register):
    register(RDBM, name="rdbm", summary=RDBM.summary)
