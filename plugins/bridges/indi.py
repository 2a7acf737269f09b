"""InDI — Inversion by Direct Iteration (Delbracio & Milanfar, TMLR 2023, arXiv 2303.11435).

There is no official code: everything here follows the paper's equations. Degradation path (t = 0 clean, t = 1
the degraded input y = μ): x_t = (1 − t)·x + t·y, and its noisy variant x_t = (1 − t)·x + t·y + t·ε_t·η,
η ~ N(0, I), for a noise level ε_t that does not grow with t. So a = 1 − t, b = t, c = t·ε_t; the noise enters
through π (default `zero`, the paper's main noise-free formulation; π = one is its noisy variant; π = x0 − μ the
π ablation). Here ε_t = eps·(r − (r − 1)·t), r = `eps_ratio` ≥ 1 (ε_1 = eps at the degraded end, ε_0 = r·eps).

Training: the network F(x_t, t) predicts the clean image (objective `x0`), t ~ U(0, 1], loss L2 (the paper's
minimum-MSE regressor of E[x | x_t]; `loss_type="l1"` is its L1 alternative). Sampler `indi` (the paper's
iteration, step δ = t − s): x_{t−δ} = (δ/t)·F(x_t, t) + (1 − δ/t)·x_t + (t − δ)·sqrt(ε²_{t−δ} − ε²_t)·η, the
Euler step of dx/dt = (x_t − F)/t whose injected noise keeps the marginal (t·ε_t)² exact. With constant ε_t
(r = 1) it is deterministic, and it is the shared `ddim` on this path exactly (c_s/c_t = s/t). NFE 10 is this
plugin's choice (the paper varies the number of steps). `eps` 0.01 is also a choice (the paper ablates small
noise levels; no value is transcribed).

Relation: with π = zero, exactly the generalized bridge with λ = 0 after the time change 1 − t = Θ_τ (the straight
path of flow matching); with noise, none (c(1) = ε_1 > 0, while the generalized bridge is pinned at t = 1).
"""

import torch

from bridgezoo import Bridge, Option, Sampler, SamplerInfo, hookimpl
from bridgezoo.devices import as_float64, cast_like
from bridgezoo.errors import OptionError
from bridgezoo.generalized import straight_path_relation
from bridgezoo.seeding import randn

PAPER = "Inversion by Direct Iteration (InDI), Delbracio & Milanfar, TMLR 2023 (arXiv 2303.11435)"


class InDI(Bridge):
    paper = PAPER
    summary = "Inversion by direct iteration: x_t = (1 − t)·x0 + t·μ (+ t·ε_t·η), small steps toward E[x0 | x_t]"
    default_nfe = 10
    pinned = False  # x_1 = μ + ε_1·π⊙η once π ≠ zero
    official_samplers = ("indi", "ddim")
    option_spec = {
        "eps": Option(0.01, "noise level ε_1 at t = 1 ([-1, 1] units): c(t) = t·ε_t; no effect with π = zero"),
        "eps_ratio": Option(1.0, "ε_0/ε_1 ≥ 1: ε_t = eps·(r − (r − 1)·t); 1 = constant ε, a deterministic sampler"),
    }
    option_defaults = {"pi": "zero", "objective": "x0", "loss_type": "l2"}

    def setup(self):
        if self.options["eps"] < 0 or self.options["eps_ratio"] < 1:
            raise OptionError(f"bridge {self.name!r}: need eps >= 0 and eps_ratio >= 1 (ε_t must not grow with t, "
                              f"or the sampler's noise sqrt(ε²_s − ε²_t) is imaginary); got eps={self.options['eps']}, "
                              f"eps_ratio={self.options['eps_ratio']}")

    def noise_level(self, t):
        """ε_t (float64, shape of t)."""
        r = self.options["eps_ratio"]
        return self.options["eps"] * (r - (r - 1) * t)

    def schedule(self, t):
        return 1 - t, t, t * self.noise_level(t)

    @property
    def relation(self):
        return straight_path_relation(self.pi, "the noise t·ε_t is not pinned at t = 1 (c(1) = ε_1 > 0)")


class InDISampler(Sampler):
    """InDI's iteration (paper, sampling with noise): x_s = (s/t)·x_t + (1 − s/t)·x̂0 + s·sqrt(ε_s² − ε_t²)·π̂⊙z."""

    summary = "InDI's small-step iteration x_s = (s/t)·x_t + (1 − s/t)·x̂0 (+ noise keeping t·ε_t)"
    paper = PAPER
    deterministic = False

    def info(self, bridge):
        det = bridge.options["eps_ratio"] == 1 or bridge.pi == "zero" or bridge.options["eps"] == 0
        return SamplerInfo(det, det)

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        ratio = (s / t).reshape(-1, 1, 1, 1).to(x)
        x_s = ratio * x + (1 - ratio) * x0
        if not self.info(bridge).deterministic:
            eps_t, eps_s = (bridge.noise_level(as_float64(v)) for v in (t, s))
            extra = (as_float64(s) * (eps_s**2 - eps_t**2).clamp_min(0).sqrt()).reshape(-1, 1, 1, 1)
            z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
            x_s = x_s + cast_like(extra, x) * bridge.pi_field(x0, mu) * z
        return x_s, x0


@hookimpl
def register_bridges(register):
    register(InDI, name="indi", summary=InDI.summary)


@hookimpl
def register_samplers(register):
    register(InDISampler, name="indi", bridges=InDI)
