"""RDDM — Residual Denoising Diffusion Models (Liu et al., CVPR 2024; code nachifur/RDDM
`experiments/2_Image_Restoration_deraing_raindrop_noise1/src/residual_denoising_diffusion_pytorch.py` @ e5974810).

I_t = x0 + ᾱ_t·(μ − x0) + β̄_t·ε (q_sample L1028-1034): a = 1 − ᾱ, b = ᾱ, c = β̄. Schedules (L660-676, L715-724),
T = 1000, index k ∈ 0..T−1 ↔ t = (k+1)/T, written as polynomials in t that equal the official tables at the knots:
    ᾱ(t) = tT·(2T − tT + 1)/(T(T+1))   ("decreased" α_k = (T − k)/Z, Z = T(T+1)/2),
    β̄²(t) = sum_scale·tT·(tT + 1)/(T(T+1))   ("increased" β_k² = sum_scale·(k+1)/Z),
so ᾱ(0) = β̄(0) = 0 and ᾱ(1) = 1, β̄(1)² = sum_scale. Not pinned: x_1 = μ + sqrt(sum_scale)·ε.

Objective `res_noise` (the residual μ − x0 and the noise, L1 + L1, L1088-1137), with one network (2C outputs) or
two (`networks=2`: a second copy of the backbone, re-initialized, predicts the noise, as `UnetRes(share_encoder=0)`).
Sampler `rddm`: x_s = x_t − (ᾱ_t − ᾱ_s)·R̂ − (β̄_t − sqrt(β̄_s² − σ²))·ε̂ + σ·z, σ² = η·(β̄_t² − β̄_s²)·β̄_s²/β̄_t²
(L981-984; η = 0 by default), last step x̂0, on the official grid `linspace(−1, T−1, NFE+1).int()` (NFE 10).

Known inconsistency fixed: the official code clips R̂ to [-1, 1] (L812) though μ − x0 spans [-2, 2]; here R̂ is
clipped to [-2, 2] unless `official_residual_clip=True`. π: the noise term is c·π⊙ε; with π = residual the start
x_1 = μ + β̄_1·π⊙ε needs the unknown residual, so sampling starts from μ without noise. Relation: none (the
endpoint is noisy and ᾱ, β̄ are independent schedules).
"""

import copy

import torch
from torch import nn

from bridgezoo import Bridge, Option, Sampler, SamplerInfo, hookimpl
from bridgezoo.bridge import safe_div
from bridgezoo.errors import OptionError
from bridgezoo.schedules import index_grid
from bridgezoo.seeding import randn


class TwoNetworks(nn.Module):
    """RDDM's two-network model: the first network's residual half and the second's noise half."""

    def __init__(self, network: nn.Module, channels: int):
        super().__init__()
        self.res_net = network
        self.noise_net = copy.deepcopy(network)
        for module in self.noise_net.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.channels = channels

    def forward(self, x_t, mu, t):
        c = self.channels
        return torch.cat([self.res_net(x_t, mu, t)[:, :c], self.noise_net(x_t, mu, t)[:, c:]], dim=1)


class RDDM(Bridge):
    paper = "Residual Denoising Diffusion Models (RDDM), Liu et al., CVPR 2024"
    summary = "Residual diffusion: the residual μ − x0 and the noise diffuse with separate schedules"
    default_nfe = 10
    pinned = False
    official_samplers = ("rddm", "ddim")
    option_spec = {
        "T": Option(1000, "number of official discrete steps; index k ↔ t = (k+1)/T"),
        "sum_scale": Option(1.0, "β̄(1)²: the noise variance at t = 1 (official train.py passes 1; class default 0.01)"),
        "eta": Option(0.0, "stochasticity of the rddm sampler (official: forced to 0 when conditioned)"),
        "networks": Option(1, "1: one network outputs [R̂, ε̂]; 2: a second, separate network for ε̂", (1, 2)),
        "official_residual_clip": Option(False, "clip R̂ to [-1, 1] like the official code (it spans [-2, 2])"),
    }
    option_defaults = {"pi": "one", "objective": "res_noise", "loss_type": "l1"}

    def setup(self):
        if self.options["T"] < 2 or self.options["sum_scale"] <= 0:
            raise OptionError(f"bridge {self.name!r}: need T >= 2 and sum_scale > 0")

    def schedule(self, t):
        T = self.options["T"]
        n = t * T
        abar = n * (2 * T - n + 1) / (T * (T + 1))
        bbar2 = self.options["sum_scale"] * n * (n + 1) / (T * (T + 1))
        return 1 - abar, abar, bbar2.clamp_min(0).sqrt()

    def grid(self, nfe):
        return index_grid(self.options["T"], nfe)

    def loss(self, output, x0, mu, x_t, t):
        """Official: L1(R̂, μ − x0) + L1(ε̂, ε), each a mean (so twice the mean over both halves)."""
        if self.objective != "res_noise":
            return super().loss(output, x0, mu, x_t, t)
        return 2 * super().loss(output, x0, mu, x_t, t)

    def wrap(self, network):
        if self.options["networks"] == 2:
            if self.objective != "res_noise":
                raise OptionError(f"bridge {self.name!r}: networks=2 needs objective='res_noise'")
            return TwoNetworks(network, channels=getattr(network, "out_channels", 6) // 2)
        return network

    def initial_state(self, mu, generator=None):
        if self.pi != "one":
            return mu.clone()
        c1 = self.options["sum_scale"] ** 0.5
        return mu + c1 * randn(mu.shape, generator, device=mu.device, dtype=mu.dtype)

    def residual_and_noise(self, output, x_t, mu, t):
        """(R̂, ε̂) from any objective's output; R̂ clipped to [-2, 2] (or [-1, 1] with official_residual_clip)."""
        a, b, c = self.coefficients(t, x_t)
        lim = 1.0 if self.options["official_residual_clip"] else 2.0
        if self.objective == "res_noise":
            ch = output.shape[1] // 2
            return output[:, :ch].clamp(-lim, lim), output[:, ch:]
        x0 = self.predict_x0(output, x_t, mu, t)
        if self.options["clip_x0"]:
            x0 = x0.clamp(-1, 1)
        return (mu - x0).clamp(-lim, lim), safe_div(x_t - a * x0 - b * mu, c.expand_as(x_t), 0.0)

    @property
    def relation(self):
        return {"kind": "none", "theta": None, "lam": None, "pi": self.pi,
                "note": "noisy endpoint (c(1) = sqrt(sum_scale)); ᾱ and β̄ are independent schedules"}


class RDDMSampler(Sampler):
    """RDDM's simultaneous residual-and-noise update (L981-984); deterministic for η = 0 (the bridge's `eta`,
    default 0); the last step returns x̂0 (L956-960)."""

    summary = "RDDM's residual-and-noise update (η = 0: deterministic)"
    paper = RDDM.paper

    def info(self, bridge):
        det = bridge.options["eta"] == 0
        return SamplerInfo(det, det)

    def step(self, bridge, model, x, mu, t, s, generator=None):
        res, noise = bridge.residual_and_noise(model(x, mu, t), x, mu, t)
        _, abar_t, bbar_t = bridge.coefficients(t, x)
        _, abar_s, bbar_s = bridge.coefficients(s, x)
        x0 = x - abar_t * res - bbar_t * noise
        if bridge.options["clip_x0"]:
            x0 = x0.clamp(-1, 1)
        if self.interval(t, s)[1] == 0.0:
            return x0, x0  # last step: x̂0 (L956-960)
        eta = bridge.options["eta"]
        var = eta * safe_div((bbar_t**2 - bbar_s**2) * bbar_s**2, bbar_t**2, 0.0)
        x_s = x - (abar_t - abar_s) * res - (bbar_t - (bbar_s**2 - var).clamp_min(0).sqrt()) * noise
        if eta > 0:
            x_s = x_s + var.sqrt() * randn(x.shape, generator, device=x.device, dtype=x.dtype)
        return x_s, x0


@hookimpl
def register_bridges(register):
    register(RDDM, name="rddm", summary=RDDM.summary)


@hookimpl
def register_samplers(register):
    register(RDDMSampler, name="rddm", bridges=RDDM)
