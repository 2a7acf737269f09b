"""ResShift — residual shifting (Yue et al., NeurIPS 2023; code zsyOAOA/ResShift `models/gaussian_diffusion.py`
@ 3ce1d81, configs `configs/realsr_swinunet_realesrgan256.yaml` L29-45).

Marginal (q_sample, gaussian_diffusion.py L190-208): x_t = x0 + η_t·(μ − x0) + κ·sqrt(η_t)·ε, i.e.
a = 1 − η, b = η, c = κ·sqrt(η), π = 1. Not pinned: η_T < 1, and sampling starts from μ + κ·sqrt(η_T)·z
(`prior_sample`, L517-529).
Schedule (`get_named_eta_schedule` "exponential", L32-66): sqrt(η_k) = η_start·r^{(k/(T−1))^p·(T−1)}, k = 0..T−1,
η_start = min(min_noise_level/κ, min_noise_level), r = (etas_end/η_start)^{1/(T−1)}: sqrt(η) geometric in the
power-warped step, from η_start to etas_end. Defaults of the NeurIPS 2023 model (realsr_swinunet_realesrgan256):
T = 15, p = 0.3, κ = 2, min_noise_level = 0.04 (so κ·sqrt(η_1) = 0.04), etas_end = 0.99; the journal version
(`*_journal.yaml`, bicx4, inpainting, face) uses T = 4 and min_noise_level = 0.2.
Time: official index k ∈ 0..T−1 ↔ t = (k+1)/T; η(t) is piecewise linear through the official η_k with η(0) = 0.

Objective (`training_losses`, L531-596; predict_type xstart, weighted_mse False): x0 with an unweighted MSE.
Training steps: k ~ U{0..T−1} (trainer.py L727-729).
Sampler `resshift` (`p_sample_loop_progressive` L421-472, `p_sample` L332-365, posterior L152-161, L210-232):
x_s = (η_s/η_t)·x_t + (1 − η_s/η_t)·x̂0 + κ·sqrt(η_s·(η_t − η_s)/η_t)·z, no noise on the last step, x̂0 clamped to
[-1, 1] in pixel space (sampler.py L156: `clip_denoised=(autoencoder is None)`); NFE = T = 15 steps.
Network input (`_scale_input`, L598-609): the official code divides x_t by sqrt(κ²η_t + 1) in its latent space and
by 3κ·sqrt(η_t) + 1 in pixel space; `input_scaling` = "pixel" (default), "latent" or "none", applied in `wrap`.

Pixel space: the official model diffuses in a VQGAN latent (f = 4; `autoencoder` in the configs) and upsamples
the low-resolution input bicubically by `sf` first (L500-515); bridgezoo diffuses the images themselves, μ of
the same size as x0, and its backbone sees [x_t, μ] (the official Swin-UNet gets μ as the `lq` condition).
Relation: none — c² = κ²·(1 − a), whereas a generalized bridge with Θ = a has Σ²/(2λ) = a·sinh(S − asinh(a·sinh S)),
and no total S makes the two proportional (tests/test_zoo_bridges_methods.py); nor is it pinned (c(1) = κ·0.99).
"""

import math

import torch

from bridgezoo import Bridge, Option, Sampler, hookimpl
from bridgezoo.bridge import F64, Preconditioned, safe_div
from bridgezoo.devices import as_float64
from bridgezoo.errors import OptionError
from bridgezoo.schedules import Clock
from bridgezoo.seeding import randn


def resshift_sqrt_etas(T: int = 15, kappa: float = 2.0, min_noise_level: float = 0.04, etas_end: float = 0.99,
                       power: float = 0.3) -> torch.Tensor:
    """sqrt(η_k), k = 0..T−1 (float64): geometric in (k/(T−1))^p·(T−1) from min(min_noise_level/κ, min_noise_level)
    to etas_end (ResShift `get_named_eta_schedule("exponential")`)."""
    start = min(min_noise_level / kappa, min_noise_level)
    if T == 1:
        return torch.tensor([start], dtype=F64)
    warped = torch.linspace(0, 1, T, dtype=F64) ** power * (T - 1)
    return start * torch.exp(warped * math.log(etas_end / start) / (T - 1))


class ResShift(Bridge):
    paper = "ResShift: Efficient Diffusion Model for Image Super-resolution by Residual Shifting, Yue et al., NeurIPS 2023"
    summary = "Residual shifting: x_t = x0 + η_t(μ − x0) + κ·sqrt(η_t)·ε, a few steps from μ plus noise"
    default_nfe = 15
    pinned = False
    official_samplers = ("resshift", "ddim")
    option_spec = {
        "T": Option(15, "number of official steps; index k ↔ t = (k+1)/T (journal version: 4)"),
        "kappa": Option(2.0, "κ: noise std at η = 1 (official 2, in its latent's units; used as is on [-1, 1] images)"),
        "power": Option(0.3, "p: sqrt(η) is geometric in (k/(T−1))^p"),
        "min_noise_level": Option(0.04, "κ·sqrt(η_1) (for κ ≥ 1): the first step's noise std (journal: 0.2)"),
        "etas_end": Option(0.99, "sqrt(η_T): the last step's sqrt(η)"),
        "input_scaling": Option("pixel", "network input x_t/k(t): pixel (3κ·sqrt(η) + 1, the official pixel-space "
                                         "rule), latent (sqrt(κ²η + 1)) or none", ("pixel", "latent", "none")),
    }
    option_defaults = {"pi": "one", "objective": "x0", "loss_type": "l2"}

    def setup(self):
        o = self.options
        if o["T"] < 1:
            raise OptionError(f"bridge {self.name!r}: T must be >= 1, got {o['T']}")
        if o["kappa"] <= 0 or o["min_noise_level"] <= 0 or o["power"] <= 0:
            raise OptionError(f"bridge {self.name!r}: kappa, min_noise_level and power must be > 0")
        sqrt_etas = resshift_sqrt_etas(o["T"], o["kappa"], o["min_noise_level"], o["etas_end"], o["power"])
        if not (0 < sqrt_etas[0] <= o["etas_end"] < 1):
            raise OptionError(f"bridge {self.name!r}: need min(min_noise_level/kappa, min_noise_level) <= etas_end < 1 "
                              f"(sqrt(η) must grow to below 1), got start {sqrt_etas[0].item():.4g}, "
                              f"etas_end {o['etas_end']}")
        self.eta = Clock(torch.cat([torch.zeros(1, dtype=F64), sqrt_etas**2]), f"resshift-eta(T={o['T']})")
        self.default_nfe = o["T"]  # the official loop visits every step

    def schedule(self, t):
        eta = self.eta(t)
        return 1 - eta, eta, self.options["kappa"] * eta.clamp_min(0).sqrt()

    def input_scale(self, t) -> torch.Tensor:
        """k(t) of the official input normalization, shape [B, 1, 1, 1], float64 (1 for `input_scaling="none"`)."""
        c = self.schedule(as_float64(t))[2].reshape(-1, 1, 1, 1)
        mode = self.options["input_scaling"]
        return 3 * c + 1 if mode == "pixel" else (c * c + 1).sqrt() if mode == "latent" else torch.ones_like(c)

    def wrap(self, network):
        """network(x_t/k(t), μ, t): the official input normalization (k = 3κ·sqrt(η_t) + 1 or sqrt(κ²η_t + 1))."""
        if self.options["input_scaling"] == "none":
            return network
        return Preconditioned(network, lambda t: (1 / self.input_scale(t), 0.0, 1.0, 1.0))

    @property
    def relation(self) -> dict:
        return {"kind": "none", "theta": None, "lam": None, "pi": self.pi,
                "note": "c² = κ²·(1 − a): a Brownian motion's variance on the clock η around a mean moving linearly "
                        "in η; not pinned (c(1) = κ·etas_end)"}


class ResShiftPosterior(Sampler):
    """ResShift's ancestral sampler: x_s = a_s·x̂0 + b_s·μ + k·(x_t − a_t·x̂0 − b_t·μ) + c_s·sqrt(1 − k)·π̂·z with
    k = c_s²/c_t² = η_s/η_t, i.e. (η_s/η_t)·x_t + (1 − η_s/η_t)·x̂0 + κ·sqrt(η_s(η_t − η_s)/η_t)·z (the posterior of
    ResShift's chain x_t = x_{t−1} + α_t(μ − x0) + κ·sqrt(α_t)·ε, gaussian_diffusion.py L152-161). The last step
    (η_s = 0) returns x̂0. With π = x0 − μ the start carries no noise (`Bridge.initial_state`: it would need x0 − μ)
    and this chain would keep that deficit (k ≈ η_s/η_T); so its first step from t = 1 samples the marginal
    q(x_s | x̂0, μ) with π̂ = x̂0 − μ instead (DBIM's booting noise)."""

    summary = "ResShift's posterior q(x_s | x_t, x̂0) of its residual-shifting chain"
    paper = ResShift.paper
    deterministic = False

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        a_t, b_t, c_t = bridge.coefficients(t, x)
        a_s, b_s, c_s = bridge.coefficients(s, x)
        k = safe_div(c_s**2, c_t**2, 0.0)
        if bridge.pi == "residual" and self.interval(t, s)[0] == 1.0:
            k = torch.zeros_like(k)  # a noise-free start: sample the marginal at s
        z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
        std = c_s * (1 - k).clamp_min(0).sqrt()
        return a_s * x0 + b_s * mu + k * (x - a_t * x0 - b_t * mu) + std * bridge.pi_field(x0, mu) * z, x0


@hookimpl
def register_bridges(register):
    register(ResShift, name="resshift", summary=ResShift.summary)


@hookimpl
def register_samplers(register):
    register(ResShiftPosterior, name="resshift", bridges=ResShift)
