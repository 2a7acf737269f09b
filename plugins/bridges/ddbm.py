"""DDBM — Denoising Diffusion Bridge Models (Zhou et al., ICLR 2024; code alexzhou907/DDBM
`ddbm/karras_diffusion.py` @ 1a928343), VE and VP bridges.

Both share the Karras-style preconditioned x0 denoiser (`bridge_karras`, L115-141), D = c_skip·x_t + c_out·F(c_in·x_t,
μ, t) with σ0 = σT = σ_data, A = a²σ0² + b²σT² + 2ab·cov + c², c_in = A^{-½}, c_skip = (a·σ0² + b·cov)/A,
c_out = sqrt(b²(σ0²σT² − cov²) + σ0²·c²)·c_in; the weighted L2 loss w = 1/c_out² (L83-86, L183-196); and the Heun
sampler with optional churn (`sample_heun` L321-429) on the ρ = 7 grid from σ_max − 1e-4 to σ_min, then 0
(L233, L265-271), whose result `karras_sample` clamps to [-1, 1] (L262). NFE counts steps: N steps cost 2N − 1
network evaluations (3N − 1 with churn > 0). This `heun` is DDBM's own; the shared samplers (ddim, dbim, …) run on
the bridge's default grid, uniform in σ.

Time: DDBM's own time τ (σ for VE, t for VP) is τ = t·sigma_max; the network sees the bridge time t ∈ [0, 1].

Known inconsistencies fixed (official behaviour by option):
- the network's condition is μ as is, although the preconditioning assumes std σ_T for it and feeds the state at
  unit variance: here μ/σ_T by default (`condition_scaling="unit"`), `"none"` is the official (unet.py L602, 769-770);
- DDBM-VP's preconditioning hard-codes T = 1 (`vp_logsnr(1)`) while the marginal uses sigma_max: here it uses
  sigma_max (`official_precond_T1=True` for the official; identical at the default sigma_max = 1).
π: the ODE drift is π-independent given D (π cancels between g² and the scores); churn noise is scaled by π̂.
"""

import torch

from bridgezoo import Bridge, Option, Sampler, SamplerInfo, hookimpl
from bridgezoo.bridge import F64, Preconditioned
from bridgezoo.devices import as_float64, cast_like
from bridgezoo.seeding import randn


class DDBM(Bridge):
    """Shared by ddbm-ve and ddbm-vp; subclasses give `_native(τ)` → (a, b, c) and the ODE drift."""

    paper = "Denoising Diffusion Bridge Models (DDBM), Zhou et al., ICLR 2024"
    default_nfe = 40
    official_samplers = ("heun", "ddim")
    option_spec = {
        "sigma_data": Option(0.5, "σ0 = σT: the data std assumed by the preconditioning"),
        "cov_xy": Option(0.0, "covariance of x0 and μ assumed by the preconditioning"),
        "rho": Option(7.0, "ρ of the Karras step grid"),
        "churn": Option(0.0, "churn step ratio r (0: deterministic Heun; README recommends 0.33)"),
        "guidance": Option(1.0, "w: weight of the h-transform term ∇log p(x_T | x) in the ODE"),
        "condition_scaling": Option("unit", "network condition: μ/σ_T (unit) or μ as is (none, official)",
                                    ("unit", "none")),
    }
    option_defaults = {"pi": "one", "objective": "x0", "loss_type": "l2"}

    def setup(self):
        self.tmax = self.options["sigma_max"]

    def schedule(self, t):
        return self._native(t * self.tmax, self.tmax)

    def preconditioning(self, t):
        """(c_in, c_skip, c_out) at bridge time t, shaped [B, 1, 1, 1], float64."""
        a, b, c = self._precond_abc(torch.as_tensor(t, dtype=F64))
        s0 = sT = self.options["sigma_data"]
        cov = self.options["cov_xy"]
        A = a**2 * s0**2 + b**2 * sT**2 + 2 * a * b * cov + c**2
        c_in = A.rsqrt()
        c_skip = (a * s0**2 + b * cov) / A
        c_out = (b**2 * (s0**2 * sT**2 - cov**2) + s0**2 * c**2).clamp_min(0).sqrt() * c_in
        return tuple(v.reshape(-1, 1, 1, 1) for v in (c_in, c_skip, c_out))

    def _precond_abc(self, t):
        return self.schedule(t)

    def wrap(self, network):
        def scalings(t):
            cond = 1 / self.options["sigma_data"] if self.options["condition_scaling"] == "unit" else 1.0
            return (*self.preconditioning(t), cond)

        return Preconditioned(network, scalings)

    def sample_t(self, n, generator=None, device=None):
        """τ ~ U[sigma_min, sigma_max] ("real-uniform", resample.py L74-82), as t = τ/sigma_max."""
        dev = generator.device if generator is not None else device
        lo = self.options["sigma_min"] / self.tmax
        return lo + (1 - lo) * torch.rand(n, generator=generator, device=dev)

    def loss_weight(self, t):
        """1/c_out², with t floored at sigma_min/sigma_max (where the official training never goes below)."""
        t = as_float64(t).clamp_min(self.options["sigma_min"] / self.tmax)
        return 1 / self.preconditioning(t)[2].flatten() ** 2

    def _d(self, x, D, mu, tau, stochastic):
        raise NotImplementedError

    def _g2(self, tau):
        raise NotImplementedError


class DDBMVE(DDBM):
    summary = "DDBM with a variance-exploding bridge (a Brownian bridge on the clock σ²)"
    option_spec = {
        "sigma_max": Option(80.0, "σ_M: the VE bridge is pinned at σ_M (e2h: 80; diode: 20)"),
        "sigma_min": Option(0.002, "σ_min of training and of the sampler grid (e2h: 0.002; diode: 5e-4)"),
    }

    def _native(self, sigma, smax):
        """a = 1 − σ²/σ_M², b = σ²/σ_M², c = σ·sqrt(1 − σ²/σ_M²) (karras_diffusion.py L162-168)."""
        m = (sigma / smax) ** 2
        return 1 - m, m, sigma * (1 - m).clamp_min(0).sqrt()

    def _d(self, x, D, mu, sigma, stochastic):
        """dx/dσ = −σ·[(D − x)/σ² − w·(x_T − x)/(σ_M² − σ²)]; churn: −2σ·(D − x)/σ² (`to_d`, L286-295)."""
        if stochastic:
            return -2 * (D - x) / sigma
        return -sigma * ((D - x) / sigma**2 - self.options["guidance"] * (mu - x) / (self.tmax**2 - sigma**2))

    def _g2(self, sigma):
        return 2 * sigma

    @property
    def relation(self):
        smax = self.options["sigma_max"]
        return {"kind": "limit", "theta": "constant θ → 0", "lam": f"σ_M²/(2·θ̄_{{0:1}}) = {smax**2 / 2:g}/θ̄",
                "pi": self.pi, "note": "θ → 0 with 2λ·θ̄_{0:1} = σ_M² and θ̄_{0:t}/θ̄_{0:1} = σ²/σ_M²"}


class DDBMVP(DDBM):
    summary = "DDBM with a variance-preserving bridge (VP reference process pinned at μ)"
    option_spec = {
        "sigma_max": Option(1.0, "T: the VP bridge time ends at T (t ∈ [sigma_min, T])"),
        "sigma_min": Option(1e-4, "smallest training and sampling time"),
        "beta_d": Option(2.0, "β_d of the VP schedule"),
        "beta_min": Option(0.1, "β_min of the VP schedule"),
        "official_precond_T1": Option(False, "use T = 1 in the preconditioning like the official code"),
    }

    def _vp_schedule(self, tau, T):
        """(α_τ, α_T, r_τ = SNR_T/SNR_τ, σ_τ² = 1 − α_τ²) with α = e^{−E/2}, 1/SNR = e^E − 1, E = ½β_d·τ² + β_min·τ."""
        bd, bm = self.options["beta_d"], self.options["beta_min"]
        E = lambda u: 0.5 * bd * u**2 + bm * u  # noqa: E731
        T = torch.as_tensor(T, dtype=F64)
        return torch.exp(-0.5 * E(tau)), torch.exp(-0.5 * E(T)), torch.expm1(E(tau)) / torch.expm1(E(T)), -torch.expm1(-E(tau))

    def _native(self, tau, T):
        """a = α_t(1 − r_t), b = r_t·α_t/α_T, c = σ_t·sqrt(1 − r_t), r_t = SNR_T/SNR_t (L169-179)."""
        alpha, alpha_T, r, var = self._vp_schedule(tau, T)
        return alpha * (1 - r), r * alpha / alpha_T, (var * (1 - r)).clamp_min(0).sqrt()

    def _precond_abc(self, t):
        if self.options["official_precond_T1"]:
            return self._native(t * self.tmax, 1.0)
        return self.schedule(t)

    def _g2(self, tau):
        return self.options["beta_d"] * tau + self.options["beta_min"]

    def _d(self, x, D, mu, tau, stochastic):
        """d = f·x − g²·(k·∇log q − w·∇log p(x_T | x)), k = ½ (ODE) or 1 (churn) (`get_d_vp`, L298-318)."""
        tau64 = as_float64(tau)
        a, b, c = (cast_like(v, x) for v in self._native(tau64, self.tmax))
        alpha, alpha_T, r, var = (cast_like(v, x) for v in self._vp_schedule(tau64, self.tmax))
        f = -0.5 * self.options["beta_d"] * tau - 0.5 * self.options["beta_min"]
        score_q = -(x - (b * mu + a * D)) / c**2
        score_h = ((alpha / alpha_T) * mu - x) / (var * (1 / r - 1))
        k = 1.0 if stochastic else 0.5
        return f * x - self._g2(tau) * (k * score_q - self.options["guidance"] * score_h)

    @property
    def relation(self):
        return {"kind": "none", "theta": None, "lam": None, "pi": self.pi,
                "note": "a + b ≠ 1; after x → x/α_t it is a VE bridge to μ/α_T, i.e. the θ → 0 limit"}


class KarrasHeun(Sampler):
    """DDBM's `karras_sample` with `sample_heun` (L213-262, L321-429): Heun steps on DDBM's probability-flow ODE
    over the ρ = 7 grid from σ_max − 1e-4 to σ_min, then 0 (L233, L265-271), an Euler step into σ = 0 (L404-406),
    with an optional churn Euler–Maruyama half-step first (`churn` > 0); the returned sample is clamped to [-1, 1]
    (L262: `x_0.clamp(-1, 1)`; the state may leave [-1, 1] on the final Euler step). This is DDBM's own `heun`:
    for the DDBM bridges the name means this sampler, not the shared one.
    N steps cost 2N − 1 network evaluations (3N − 1 with churn)."""

    summary = "DDBM's Heun (Karras grid, optional churn, output clamped to [-1, 1]); 2N − 1 evaluations"
    paper = "DDBM, Zhou et al., ICLR 2024 (karras_sample / sample_heun)"
    order = 2
    evals_per_step = 2
    oracle_exact = False

    def info(self, bridge):
        if bridge.options["churn"] > 0:
            return SamplerInfo(False, False, 3, 2)
        return SamplerInfo(True, False, 2, 2)

    def timesteps(self, bridge, nfe):
        """σ_i = (σ_M'^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_M'^{1/ρ}))^ρ, i < N, then 0; σ_M' = σ_max − 1e-4 (as t)."""
        rho, smin, smax = bridge.options["rho"], bridge.options["sigma_min"], bridge.tmax - 1e-4
        ramp = torch.linspace(0, 1, nfe, dtype=F64) if nfe > 1 else torch.zeros(1, dtype=F64)
        sig = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
        return torch.cat([sig, torch.zeros(1, dtype=F64)]) / bridge.tmax

    def step(self, bridge, model, x, mu, t, s, generator=None):
        """One Heun step (a churn Euler–Maruyama half-step first when churn > 0); the step into σ = 0 is Euler and
        its result clamped to [-1, 1]."""
        tm = bridge.tmax
        tau, tau_next = (cast_like(v.reshape(-1, 1, 1, 1), x) * tm for v in (t, s))
        r = bridge.options["churn"]
        if r > 0:
            D = bridge.x0_hat(model, x, mu, t)
            tau_hat = tau + r * (tau_next - tau)
            z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
            dt = tau_hat - tau
            x = x + bridge._d(x, D, mu, tau, True) * dt + (bridge._g2(tau) * dt.abs()).sqrt() * bridge.pi_field(D, mu) * z
            tau = tau_hat
        t_cur = (tau / tm).flatten()
        D = bridge.x0_hat(model, x, mu, t_cur)
        d = bridge._d(x, D, mu, tau, False)
        x2 = x + d * (tau_next - tau)
        if self.interval(t, s)[1] == 0.0:
            return x2.clamp(-1, 1), D
        D2 = bridge.x0_hat(model, x2, mu, s)
        return x + 0.5 * (d + bridge._d(x2, D2, mu, tau_next, False)) * (tau_next - tau), D


@hookimpl
def register_bridges(register):
    register(DDBMVE, name="ddbm-ve", summary=DDBMVE.summary)
    register(DDBMVP, name="ddbm-vp", summary=DDBMVP.summary)


@hookimpl
def register_samplers(register):
    register(KarrasHeun, name="heun", bridges=DDBM)
