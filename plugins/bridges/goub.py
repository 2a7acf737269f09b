"""GOUB — Generalized Ornstein–Uhlenbeck Bridge (Yue et al., ICML 2024; code Hammour-steak/GOUB
`codes/utils/sde_utils.py` @ 895876ea).

The generalized bridge on the IR-SDE cosine clock: θ_i = 1 − ᾱ_{i+1} (i = 0..T), s_i = (Σ_{j≤i} θ_j − θ_0)·dt,
dt = −ln(eps)/θ̄_T, so S = −ln(0.005) = 5.2983. Time: official index i ∈ 0..T ↔ t = i/T.

Units: the official code works on [0, 1] images with `lambda_square` = 30 → λ = 30/255, a stationary *std*
(sde_utils.py L76, L116-117). Here images are in [-1, 1], so the std doubles: `stationary_std` = 60/255, and the
generalized bridge's λ (a variance) is stationary_std². With π = one this is exactly the generalized bridge.

Objective `noise` (π⊙ε) with the official "maximum-likelihood" loss (L1 between one reverse-SDE step and the
posterior mean, denoising_model.py L127-145); samplers `reverse_sde` (official default, NFE = T) and `mean_ode`.
At the pinned end (θ̄_{t:1} = 0) the h-term and the score are taken as 0 — the official code does this by
testing `t == 100`, which is wrong for any other T; here it follows the clock, for any T and grid.
"""

import torch

from bridgezoo import Option, hookimpl
from bridgezoo.bridge import F64
from bridgezoo_plugins.bridges.sde import GeneralizedSDEBridge, IRSDEClock


class GOUB(IRSDEClock, GeneralizedSDEBridge):
    paper = "Image Restoration Through Generalized Ornstein-Uhlenbeck Bridge (GOUB), Yue et al., ICML 2024"
    summary = "GOU bridge: the OU process of IR-SDE conditioned (Doob h-transform) to end at μ"
    default_nfe = 100
    official_samplers = ("reverse_sde", "mean_ode", "ddim")
    option_spec = {
        "stationary_std": Option(60 / 255, "stationary std of the OU part in [-1, 1] units (official 30/255 on [0, 1])"),
    }
    option_defaults = {"pi": "one", "objective": "noise", "loss_type": "ml", "T": 100}

    def setup(self) -> None:
        self.setup_clock()
        self.lam = self.options["stationary_std"] ** 2

    def train_times(self):
        T = self.options["T"]
        return torch.arange(1, T, dtype=F64) / T  # official t ~ U{1..T−1} (denoising_model.py L346)

    @property
    def relation(self) -> dict:
        return {"kind": "exact", "theta": f"{self.clock.name}, dt-scaled (S = −ln eps = {self.clock.total:.6f})",
                "lam": self.lam, "pi": self.pi, "note": "λ = stationary_std² (a variance)"}


@hookimpl
def register_bridges(register):
    register(GOUB, name="goub", summary=GOUB.summary)
