"""IR-SDE — Image Restoration with Mean-Reverting SDEs (Luo et al., ICML 2023; code Algolzw/image-restoration-sde
`codes/utils/sde_utils.py` @ 2598d73c, class IRSDE L80-361).

Mean-reverting OU process on the IR-SDE cosine clock s_i = (Σ_{j≤i} θ_j − θ_0)·dt, dt = −ln(eps)/θ̄_T
(S = −ln 0.005); index i ∈ 0..T ↔ t = i/T. Marginal (mu_bar L166-170):
    a = e^{−s_t}, b = 1 − e^{−s_t}, c = λ·sqrt(1 − e^{−2 s_t}).
Not pinned: a(1) = eps = 0.005, c(1) ≈ λ; sampling starts from μ + λ·z (`noise_state`, L360-361).

Units: the official `max_sigma` = 10 on [0, 1] images is the stationary std λ = 10/255; here images are in
[-1, 1], so `stationary_std` = 20/255.

Objective `noise` (π⊙ε) with the official maximum-likelihood loss (`loss_type="ml"`: L1 between one reverse-SDE
step and the posterior mean, denoising_model.py L127-145; plain noise L1 with `loss_type="l1"`); training t ~ U{1..T}.
Samplers: `posterior` (official default, L284-299: the shared ancestral sampler on the Markov transition, which for
IR-SDE is the official x*_{t−1} with A = e^{−θ_t·dt}, B = e^{−s_t}, C = e^{−s_{t−1}}), `reverse_sde`, `reverse_ode`,
and the shared ones (`ddim`, `dbim`, …).

Official deviation, documented: `posterior` clips x̂0 to [-1, 1] before the posterior mean, as every sampler here
does under the bridge option `clip_x0=True` (the fair-comparison default); the official code does not clip
(x̂0 = μ + (x_t − μ − σ̄_t·ε̂)·e^{s_t}, L237-239, enters the mean as is). `clip_x0=False` reproduces the official
sampler numerically (tested against a transcription); the outputs differ only where x̂0 leaves [-1, 1].

π: with π = residual the noise is ∝ |x0 − μ|, which also scales the stationary noise at t = 1; since x0 is
unknown there, sampling starts from μ without noise (the start then lacks c(1)·π⊙ε, which is ∝ the residual).
Relation: the generalized bridge in the limit S → ∞ at fixed s, λ_gen = stationary_std² (docs/bridges.md, "How the
methods relate to the generalized bridge").
"""

import torch

from bridgezoo import Option, hookimpl
from bridgezoo.bridge import F64
from bridgezoo.devices import float64_device
from bridgezoo.seeding import randn
from bridgezoo_plugins.bridges.sde import IRSDEClock, SDEBridge


class IRSDE(IRSDEClock, SDEBridge):
    paper = "Image Restoration with Mean-Reverting Stochastic Differential Equations (IR-SDE), Luo et al., ICML 2023"
    summary = "Mean-reverting SDE: an OU process from x0 towards μ with stationary noise"
    default_nfe = 100
    pinned = False
    official_samplers = ("posterior", "reverse_sde", "reverse_ode", "ddim")
    option_spec = {
        "stationary_std": Option(20 / 255, "stationary std λ in [-1, 1] units (official max_sigma 10/255 on [0, 1])"),
    }
    option_defaults = {"pi": "one", "objective": "noise", "loss_type": "ml", "T": 100}

    def setup(self):
        self.setup_clock()
        self.lam = self.options["stationary_std"]

    def schedule(self, t):
        s = self.clock(t)
        decay = torch.exp(-s)
        return decay, 1 - decay, self.lam * (-torch.expm1(-2 * s)).clamp_min(0).sqrt()

    # the SDE on its clock (`clock_increment` of SDEBridge): dx = (μ − x)·ds + sqrt(2)·λ·π·dw_s
    def drift(self, x, mu, t):
        return mu - x

    def diffusion_sq(self, t):
        return torch.full((t.shape[0], 1, 1, 1), 2 * self.lam**2, dtype=F64, device=float64_device(t.device))

    def initial_state(self, mu, generator=None):
        """μ + λ·z (official `noise_state`); noise-free for π = zero or residual (π unknown at the start)."""
        if self.pi != "one":
            return mu.clone()
        return mu + self.lam * randn(mu.shape, generator, device=mu.device, dtype=mu.dtype)

    @property
    def relation(self):
        return {"kind": "limit", "theta": f"{self.clock.name}, dt-scaled", "lam": self.lam**2, "pi": self.pi,
                "note": "S = θ̄_{0:1} → ∞ at fixed θ̄_{0:t}: Θ → e^{−s}, Σ² → λ(1 − e^{−2s}); not pinned for finite S"}


@hookimpl
def register_bridges(register):
    register(IRSDE, name="irsde", aliases=("ir-sde",), summary=IRSDE.summary)
