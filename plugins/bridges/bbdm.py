"""BBDM — Brownian Bridge Diffusion Model (Li et al., CVPR 2023; code xuekt98/BBDM
`model/BrownianBridge/BrownianBridgeModel.py` @ 02c3b13c).

x_t = (1 − m_t)·x0 + m_t·μ + sqrt(δ_t)·ε, δ_t = 2·max_var·(m_t − m_t²) (q_sample L128-146, schedule L42-79).
T = 1000, index k ∈ 0..T−1 ↔ t = (k+1)/T; m_k = linspace(0.001, 0.999, T) ("linear"), m(t) linear between the
knots and m(0) = 0 so that t = 0 is clean. Almost pinned: m(1) = 0.999, so x_1 ≠ μ; sampling starts at μ.

Objective `xt_minus_x0` ("grad": m_t(μ − x0) + sqrt(δ_t)ε), L1 (L88-126). Sampler `skip` (L171-221) over the
official step list `arange(T−1, 1, −(T−1)/(NFE−2)).long()` + [1, 0] (200 steps by default; the arange runs
in float32 as in the official code, so 200 steps visit 666, 333, 222, 111), the last step returning x̂0:
    σ² = (δ_t − δ_s·(1 − m_t)²/(1 − m_s)²)·δ_s/δ_t,
    x_s = (1 − m_s)·x̂0 + m_s·μ + sqrt((δ_s − η²σ²)/δ_t)·(x_t − (1 − m_t)·x̂0 − m_t·μ) + η·σ·z.
Known inconsistency fixed: the official code uses sqrt((δ_s − σ²)/δ_t) whatever η is (η scales only the noise),
which is DDIM-consistent only for η = 1; here η scales the variance in both places (`official_eta=True` for the
official update; both agree at the default η = 1). The official "sin" m schedule is `mt_type="sin"`.
Relation: the θ → 0 limit of the generalized bridge with m_t = θ̄_{0:t}/θ̄_{0:1} and λ·θ̄_{0:1} = max_var.
"""

import torch

from bridgezoo import Bridge, Option, Sampler, SamplerInfo, hookimpl
from bridgezoo.bridge import F64, safe_div
from bridgezoo.errors import OptionError
from bridgezoo.schedules import Clock
from bridgezoo.seeding import randn


class BBDM(Bridge):
    paper = "BBDM: Image-to-image Translation with Brownian Bridge Diffusion Models, Li et al., CVPR 2023"
    summary = "Brownian bridge between x0 and μ with variance 2·max_var·m(1 − m)"
    default_nfe = 200
    pinned = False
    official_samplers = ("skip", "ddim")
    option_spec = {
        "T": Option(1000, "number of official discrete steps; index k ↔ t = (k+1)/T"),
        "max_var": Option(1.0, "max_var: δ = 2·max_var·(m − m²) (peak variance max_var/2 at m = ½)"),
        "mt_type": Option("linear", "m schedule: linear (official default) or sin", ("linear", "sin")),
        "eta": Option(1.0, "stochasticity of the skip sampler (official default 1)"),
        "official_eta": Option(False, "η scales only the noise, not the mean coefficient (official behaviour)"),
        "sample_type": Option("linear", "skip-step list: linear (official default) or cosine", ("linear", "cosine")),
        "official_cosine_steps": Option(False, "use the official cosine list, which starts at index T, one past "
                                               "the schedule (m and δ are then extrapolated)"),
    }
    option_defaults = {"pi": "one", "objective": "xt_minus_x0", "loss_type": "l1"}

    def setup(self):
        T = self.options["T"]
        if T < 3:
            raise OptionError(f"bridge {self.name!r}: need T >= 3")
        if self.options["mt_type"] == "linear":
            m = torch.linspace(0.001, 0.999, T, dtype=F64)
        else:  # "sin": 1.0075^{linspace(0, T, T)}, normalized so that m_{T−1} = 0.999 (L42-79)
            m = 1.0075 ** torch.linspace(0, T, T, dtype=F64)
            m = m / m[-1] * 0.999
        # m(t): piecewise linear through the official m_k at t = (k+1)/T, with m(0) = 0 (a clock of its own)
        self.m = Clock(torch.cat([torch.zeros(1, dtype=F64), m]), f"bbdm-{self.options['mt_type']}")

    def schedule(self, t):
        m = self.m(t)
        return 1 - m, m, (2 * self.options["max_var"] * (m - m * m)).clamp_min(0).sqrt()

    def initial_state(self, mu, generator=None):
        return mu.clone()  # official: x = y

    @property
    def relation(self):
        mv = self.options["max_var"]
        return {"kind": "limit", "theta": "constant θ → 0", "lam": f"max_var/θ̄_{{0:1}} = {mv:g}/θ̄", "pi": self.pi,
                "note": "θ → 0 with m_t = θ̄_{0:t}/θ̄_{0:1}, λ·θ̄_{0:1} = max_var; endpoints m ∈ [0.001, 0.999]"}


class SkipSampler(Sampler):
    """BBDM's skip-step sampler (L171-221) with the bridge's η (`eta`, `official_eta`) on the official step list
    (`sample_type`); the step to t = 0 returns x̂0."""

    summary = "BBDM's skip-step sampler with η (official list of 200 steps); the last step returns x̂0"
    paper = BBDM.paper
    deterministic = False

    def info(self, bridge):
        if bridge.options["eta"] == 0:
            return SamplerInfo(True, not bridge.options["official_eta"])
        return SamplerInfo(False, False)

    def timesteps(self, bridge, nfe):
        """The official list as t = (k+1)/T, then 0 (return x̂0): `sample_type="linear"` is
        `torch.arange(T−1, 1, −(T−1)/(nfe−2)).long()` + [1, 0] (L69-73), whose arange runs in float32 (a Python
        float step gives torch's default dtype), so NFE 200 visits 666, 333, 222, 111 where float64 gives
        665, 332, 221, 110.

        `sample_type="cosine"`: the official list is (cos(linspace(0, T, nfe+1)/T·π) + 1)/2·T, whose first entry is
        index T, past the schedule's last index T − 1; here the same spacing is scaled to T − 1 (and rounded,
        duplicates removed) unless `official_cosine_steps`.
        """
        T = bridge.options["T"]
        if bridge.options["sample_type"] == "cosine":
            u = torch.linspace(0, T, nfe + 1, dtype=F64)
            span = T if bridge.options["official_cosine_steps"] else T - 1
            steps = ((torch.cos(u / T * torch.pi) + 1) / 2 * span)
            steps = steps if bridge.options["official_cosine_steps"] else torch.unique_consecutive(steps.round())
            return torch.cat([(steps + 1) / T, torch.zeros(1, dtype=F64)])
        if nfe < 3:
            steps = torch.tensor([T - 1, 0][: max(nfe, 1)], dtype=torch.long)
        else:
            steps = torch.arange(T - 1, 1, -(T - 1) / (nfe - 2), dtype=torch.float32).long()
            steps = torch.cat([steps, torch.tensor([1, 0])])
        if steps[0] != T - 1:
            steps = torch.cat([torch.tensor([T - 1]), steps])
        return torch.cat([(steps.to(F64) + 1) / T, torch.zeros(1, dtype=F64)])

    def step(self, bridge, model, x, mu, t, s, generator=None):
        """BBDM's skip-step update with η (L194-199); the step to t = 0 returns x̂0."""
        x0 = bridge.x0_hat(model, x, mu, t)
        if self.interval(t, s)[1] == 0.0:
            return x0, x0
        a_t, m_t, c_t = bridge.coefficients(t, x)
        a_s, m_s, c_s = bridge.coefficients(s, x)
        d_t, d_s = c_t**2, c_s**2
        var = safe_div((d_t - d_s * (1 - m_t) ** 2 / (1 - m_s) ** 2) * d_s, d_t, 0.0).clamp_min(0)
        eta = bridge.options["eta"]
        kept = var if bridge.options["official_eta"] else eta**2 * var
        coef = safe_div((d_s - kept).clamp_min(0), d_t, 0.0).sqrt()
        x_s = a_s * x0 + m_s * mu + coef * (x - a_t * x0 - m_t * mu)
        if eta > 0:
            z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
            x_s = x_s + eta * var.sqrt() * bridge.pi_field(x0, mu) * z
        return x_s, x0


@hookimpl
def register_bridges(register):
    register(BBDM, name="bbdm", summary=BBDM.summary)


@hookimpl
def register_samplers(register):
    register(SkipSampler, name="skip", bridges=BBDM)
