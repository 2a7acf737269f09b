"""DDPM / SR3-style conditional diffusion (Ho et al., NeurIPS 2020; Saharia et al., "Image Super-Resolution via
Iterative Refinement", TPAMI 2022; code hojonathanho/diffusion `diffusion_tf/diffusion_utils_2.py` @ 1e0dceb3).

Not a bridge: x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε (q_sample, L101-110), so b = 0 and μ reaches the network only
as its condition (the backbone always sees cat(x_t, μ), as SR3 concatenates the low-resolution image to x_t).
Schedule: β = linspace(1e-4, 0.02, T), T = 1000 ("linear", get_beta_schedule L23-27, values from
`scripts/run_cifar.py` L135). Official index k ∈ 0..T−1 ↔ t = (k+1)/T, ᾱ at t = (k+1)/T is cumprod(1 − β)[k];
between knots −log ᾱ is linear in t (a clock), so a = sqrt(ᾱ), c = sqrt(1 − ᾱ) are the official tables on the grid.
Objective `noise` (ε) with the unweighted MSE (`loss_type='mse'`, `model_mean_type='eps'`, training_losses L274-299:
meanflat of the squared difference), t uniform over the T indices.

Sampler `ancestral` (p_sample / p_sample_loop, L186-215): x̂0 from ε̂ clipped to [-1, 1] (L151, clip_denoised),
the posterior mean q(x_{t−1} | x_t, x̂0) (L114-126), plus σ·z except on the last step (nonzero_mask, L195), with
σ² = β_t (`variance="large"`, the CIFAR-10 run's `model_var_type='fixedlarge'`, run_cifar.py L136 and L142) or
the posterior variance β̃_t (`variance="small"`, 'fixedsmall', L143; the shared `posterior` sampler). On a grid
coarser than T the step's β is 1 − ᾱ_t/ᾱ_s (the respacing of improved DDPM). `ddim` (Song et al. 2021, η = 0) is
the shared sampler, and DDIM's η is the shared `dbim:eta=η` exactly (ρ = η·posterior std is DDIM's σ_t(η)).

The start at t = 1: the official loop starts from img_0 ~ N(0, I) at index T − 1 (L205-206), not from the marginal
sqrt(ᾱ_T)·x0 + sqrt(1 − ᾱ_T)·ε: a(1) = sqrt(ᾱ_T) ≈ 0.0064 is neglected (and c(1) ≈ 0.99998 taken as 1); the
same here (`initial_state`). π: the start is pure noise, so only π = one is defined (π = 0 would leave x_t =
a·x0, a deterministic shrink of the unknown x0; π = x0 − μ would need x0 to start); other values raise OptionError.
Relation: none (b = 0, so a + b = sqrt(ᾱ) < 1, while every generalized bridge has a + b = 1; its (a, c) are a
VP diffusion toward 0, IR-SDE's mean-reverting marginal with μ = 0 and unit stationary variance).
"""

import torch

from bridgezoo import Bridge, Option, Sampler, SamplerInfo, hookimpl
from bridgezoo.bridge import F64
from bridgezoo.errors import OptionError
from bridgezoo.schedules import inclusive_clock, index_grid
from bridgezoo.seeding import randn

_PURE_NOISE = ("conditional diffusion starts from pure noise N(0, I) and μ only conditions the network, so the noise "
               "is not modulated: only pi='one' is defined")


class DDPM(Bridge):
    paper = ("Denoising Diffusion Probabilistic Models, Ho et al., NeurIPS 2020; conditional as in SR3, Saharia et al., "
             "TPAMI 2022")
    summary = "Conditional DDPM (SR3-style): pure noise at t = 1, μ only as the network's condition"
    default_nfe = 1000
    pinned = False
    official_samplers = ("ancestral", "ddim")
    option_spec = {
        "T": Option(1000, "number of official discrete steps; index k ↔ t = (k+1)/T"),
        "beta_start": Option(1e-4, "β of the first step (linear schedule)"),
        "beta_end": Option(0.02, "β of the last step (linear schedule)"),
        "variance": Option("large", "ancestral σ²: large = β (official CIFAR-10 'fixedlarge'), small = posterior β̃",
                           ("large", "small")),
    }
    option_defaults = {"pi": "one", "objective": "noise", "loss_type": "l2"}
    undefined = {"pi": {"zero": _PURE_NOISE, "residual": _PURE_NOISE}}

    def setup(self):
        T, lo, hi = self.options["T"], self.options["beta_start"], self.options["beta_end"]
        if T < 1 or not 0 < lo <= hi < 1:
            raise OptionError(f"bridge {self.name!r}: need T >= 1 and 0 < beta_start <= beta_end < 1, got T={T}, "
                              f"beta_start={lo}, beta_end={hi}")
        betas = torch.linspace(lo, hi, T, dtype=F64)
        self.clock = inclusive_clock(-torch.log1p(-betas), "ddpm-linear")  # s(t) = −log ᾱ(t)

    def schedule(self, t):
        s = self.clock(t)
        return torch.exp(-s / 2), torch.zeros_like(s), (-torch.expm1(-s)).clamp_min(0).sqrt()

    def grid(self, nfe):
        """The official indices `linspace(−1, T−1, nfe+1).int()` reversed (all T at nfe = T), index k ↔ t = (k+1)/T."""
        return index_grid(self.options["T"], nfe)

    def initial_state(self, mu, generator=None):
        """img_0 ~ N(0, I), as the official p_sample_loop (L206): a(1)·x0 ≈ 0.0064·x0 is neglected."""
        return randn(mu.shape, generator, device=mu.device, dtype=mu.dtype)

    @property
    def relation(self):
        return {"kind": "none", "theta": None, "lam": None, "pi": "one",
                "note": "b = 0: not a bridge to μ (a + b = sqrt(ᾱ) < 1); (a, c) is a VP diffusion toward 0, "
                        "IR-SDE's marginal with μ = 0 and stationary variance 1"}


class Ancestral(Sampler):
    """DDPM's ancestral sampler (p_sample, L186-198) on the bridge's grid: posterior mean from the clipped x̂0, plus
    σ·z with σ² = β_step (variance='large') or the posterior variance (variance='small'); no noise into t = 0."""

    summary = "DDPM ancestral sampling: posterior mean + σ·z, σ² = β (fixedlarge) or β̃ (fixedsmall)"
    paper = DDPM.paper
    deterministic = False

    def info(self, bridge):
        return SamplerInfo(False, False)

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        mean = bridge.posterior_mean(x, x0, mu, t, s)
        if self.interval(t, s)[1] == 0.0:
            return mean, x0
        if bridge.options["variance"] == "small":
            std = bridge.posterior_std(x, t, s)
        else:
            a_t, _, _ = bridge.coefficients(t, x)
            a_s, _, _ = bridge.coefficients(s, x)
            std = (1 - (a_t / a_s) ** 2).clamp_min(0).sqrt()  # β of the (respaced) step: 1 − ᾱ_t/ᾱ_s
        z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
        return mean + std * z, x0


@hookimpl
def register_bridges(register):
    register(DDPM, name="ddpm", aliases=("sr3", "conditional-diffusion"), summary=DDPM.summary)


@hookimpl
def register_samplers(register):
    register(Ancestral, name="ancestral", bridges=DDPM)
