"""UniDB — Unified Diffusion Bridge via stochastic optimal control, GOU variant (Zhu et al., ICML 2025; code
UniDB-SOC/UniDB `UniDB-GOU/utils/sde_utils.py` @ 5625e73).

GOUB with a finite terminal penalty γ: the controlled OU process minimizes the control energy plus
(γ/2)·|x_T − μ|², instead of hitting μ exactly (Doob's h-transform, γ = ∞). Everything but γ is GOUB's
(`plugins/bridges/goub.py`): the IR-SDE cosine clock s(t) (θ_i = 1 − ᾱ_{i+1}, dt = −ln(eps)/θ̄_T, S = −ln 0.005;
sde_utils.py L101-141), T = 100, λ = 30/255 as a stationary std on [0, 1] (L76, L117), index i ∈ 0..T ↔ t = i/T,
the noise objective with the "maximum-likelihood" L1 loss (`models/denoising_model.py` L127-141, loss_type l1 in
`tasks/*/options/train.yml`), training steps U{1..T−1} (sde_utils.py L369), and the `reverse_sde` sampler from x_T = μ
(denoising_model.py L150-156, sde_utils.py L322-337), `mean_ode` as the alternative (L339-354).

What γ changes, with σ̄_t² = λ²(1 − e^{−2s}), σ̄²_{t:T} = λ²(1 − e^{−2(S−s)}), γ⁻¹ = `gamma_inv`:
- the mean (L190-194): a = m = e^{−s}·(γ⁻¹ + σ̄²_{t:T})/(γ⁻¹ + σ̄_T²), b = 1 − a — not pinned: a(1) = e^{−S}·γ⁻¹/(γ⁻¹ + σ̄_T²);
- the h-term of the drift (L238-244, L254-260): −σ_t²·e^{−2(S−s)}/(γ⁻¹ + σ̄²_{t:T})·(x − μ), per unit of the clock
  2λ²·e^{−2(S−s)}/(γ⁻¹ + σ̄²_{t:T})·(μ − x); at s = S (t = T) it is 0, as in the code (which tests `t == 100`);
- nothing else: the noise keeps GOUB's c = σ̄_t·σ̄_{t:T}/σ̄_T (L143-146, L227-228), so c(1) = 0 and the score at
  t = T is 0 (L327). The exact marginal variance of the code's own forward SDE is σ̄_t²·(γ⁻¹ + σ̄²_{t:T})/(γ⁻¹ + σ̄_T²)
  (the OU marginal conditioned on a noisy end; derived here, not in the code); it differs from GOUB's c² by a
  relative γ⁻¹/σ̄²_{t:T} < 1e-4 at every official step but the last.
γ⁻¹ = 0 is GOUB exactly. Defaults: γ⁻¹ = 1e-7 on [0, 1] images (sr and inpainting configs; deraining 1e-8), a
variance like σ̄², so 4e-7 in [-1, 1] units (a is unchanged by the unit change: both terms scale by 4).

Markov: c/a is non-decreasing except for t > 1 − 4e-7 (at the defaults), where c → 0 while a(1) > 0; the
samplers use `transition` only from t = 1 (c = 0: the marginal) or from grid points below that, so the shared
posterior-type samplers are valid on any grid coarser than 4e-7.
"""

import torch

from bridgezoo import Option, hookimpl
from bridgezoo.bridge import F64
from bridgezoo.devices import as_float64, cast_like
from bridgezoo.errors import OptionError
from bridgezoo.generalized import sinh_bridge_coefficients
from bridgezoo_plugins.bridges.goub import GOUB


class UniDB(GOUB):
    paper = "UniDB: A Unified Diffusion Bridge Framework via Stochastic Optimal Control, Zhu et al., ICML 2025"
    summary = "GOUB with a finite terminal penalty γ (stochastic optimal control); γ → ∞ is GOUB"
    pinned = False
    option_spec = {
        "gamma_inv": Option(4e-7, "γ⁻¹, the inverse terminal penalty: a variance in [-1, 1] units (official 1e-7 on "
                                  "[0, 1] → 4e-7); 0 is GOUB"),
    }

    def setup(self) -> None:
        super().setup()
        if self.options["gamma_inv"] < 0:
            raise OptionError(f"bridge {self.name!r}: gamma_inv is a variance and must be >= 0, "
                              f"got {self.options['gamma_inv']}")
        self.gamma_inv = float(self.options["gamma_inv"])

    def _ou_variances(self, t):
        """(s, σ̄²_{t:T}, σ̄_T²) at float64 t: the clock and the OU variances λ²(1 − e^{−2·elapsed}) (λ² = self.lam)."""
        s, S = self.clock(t), self.clock.total
        to_end = -self.lam * torch.expm1(-2 * (S - s))
        total = -self.lam * torch.expm1(torch.tensor(-2 * S, dtype=F64))
        return s, to_end, total

    def schedule(self, t):
        s, to_end, total = self._ou_variances(t)
        a = torch.exp(-s) * (self.gamma_inv + to_end) / (self.gamma_inv + total)
        c = sinh_bridge_coefficients(self.clock, self.lam, t)[2]  # GOUB's c (the official f_sigma)
        return a, 1 - a, c

    def drift(self, x, mu, t):
        """[1 + 2λ²·e^{−2(S−s)}/(γ⁻¹ + σ̄²_{t:T})]·(μ − x) per unit of the clock; the h-term is 0 at s = S."""
        s, to_end, _ = self._ou_variances(as_float64(t))
        u = self.clock.total - s
        h = torch.where(u > 0, 2 * self.lam * torch.exp(-2 * u) / (self.gamma_inv + to_end).clamp_min(1e-300),
                        torch.zeros_like(u))
        return cast_like((1 + h).reshape(-1, 1, 1, 1), x) * (mu - x)

    @property
    def relation(self) -> dict:
        if self.gamma_inv == 0:
            return {**super().relation, "note": "γ⁻¹ = 0: GOUB exactly (λ = stationary_std², a variance)"}
        return {"kind": "none", "theta": None, "lam": None, "pi": self.pi,
                "note": "c(1) = 0 while a(1) = e^{−S}γ⁻¹/(γ⁻¹ + σ̄_T²) > 0, which no generalized bridge (nor limit) has; "
                        "γ⁻¹ → 0 gives GOUB (the generalized bridge on the IR-SDE clock) with an O(γ⁻¹) gap"}


@hookimpl
def register_bridges(register):
    register(UniDB, name="unidb", summary=UniDB.summary)
