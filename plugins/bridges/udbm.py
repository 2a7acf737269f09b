"""UDBM — Uncertainty-Aware Diffusion Bridge Model (Tu, Wu, Luo & Jin, "Unifying Heterogeneous Degradations:
Uncertainty-Aware Diffusion Bridge Model for All-in-One Image Restoration", ICML 2026, arXiv 2601.21592; code
Jabruson/UDBM `UDBM-ICML26/` @ e3389b5). References below are to functions of `src/model_udbm_s2_*.py` (the bridge,
the same in every variant; called S2), `src_s1/model_udbm_s1_*.py` (stage 1, called S1), `train_s1.py`,
`train_s2.py` and `test_s2.py`.

Two stages. Stage 1 trains an auxiliary restoration network A that predicts the residual μ − x0 from (μ, μ) at the
one official time index 1 (S1 `ResidualDiffusion.forward` draws t = randint(1, 2), `p_losses` feeds
cat(x_input, x_input) and regresses x_res = x_input − x_start with L1; train_s1.py: objective pred_res, loss l1,
T = 1000). Stage 2 freezes it and reads a pixel-wise uncertainty d = |clamp(A(μ), −2, 2)|/2 ∈ [0, 1] (S2 `p_losses`
and `sample_uncertainty_aware_bridge`, the same two lines). Here A is the run's backbone called as A(μ, μ, t₁),
t₁ = 1/(T − 1), and stage 1 is the core's auxiliary stage (`bridgezoo.Auxiliary`): trained first by `bridgezoo
run`, saved as `auxiliary.safetensors`, frozen. Stage 2 uses the trained weights, not their EMA (S2
`Trainer.__init__` loads the stage-1 checkpoint's `model` entry), as the core does.

The bridge (S2 `_calculate_schedule`, `q_sample`), official index k ∈ 0..T−1 ↔ t = k/(T − 1):
- path: x_t = (1 − S_p(t))·x0 + S_p(t)·μ with the S-curve S_p(t) = t^p/(t^p + (1 − t)^p + 1e-9) and the exponent
  p = p_min + (1 − d)·(p_max − p_min), p_min = 0.5, p_max = 1 — per pixel ("path modulation", option `path`);
- noise: c(t)·(1 + d)·ε with c(t) = 5·[4t(1 − t) + 0.2·t²] (max_beta_scale 5, endpoint share 0.2) — in bridgezoo's
  form c(t)·π⊙ε with **π = 1 + d** (`pi=uncertainty`, the "noise modulation"), so the terminal state is relaxed:
  x_1 = μ + (1 + d)·ε, not pinned to μ.
Before stage 1 (no auxiliary network attached) d is the constant d_fixed = 0.5, the value the official code uses
for the network's time input (S2 `get_t_sche`); then a and b are per-time numbers, as `coefficients(t)` returns.
With the network attached and `path=uncertainty`, a and b are per-pixel: `q_sample`, `sample` and
`training_loss` use the field of their μ.

Training (S2 `forward`, `p_losses`; train_s2.py): t ~ U{0..T−1}, objective pred_res (the network predicts
μ − x0: `residual`), L1; T = 1000; lr 8e-5, 600k iterations for each stage (train_s1.py, train_s2.py). Index 0
(x_t = x0, 1/1000 of the draws) is left out so that training times lie in (0, 1] as the contract asks.
Sampler `udbm` (S2 `sample_uncertainty_aware_bridge`; test_s2.py `--sampling_timesteps` 1): start
x_1 = S_p(1)·μ + c(1)·(1 + d)·z, then on the grid `linspace(−1, T−1, NFE+1).int()` reversed
x_s = r·x_t + (S_p(s) − r·S_p(t))·μ + ((1 − S_p(s)) − r·(1 − S_p(t)))·x̂0, r = c(s)/c(t), x̂0 = clip(μ − out);
the last step (index −1 ↔ t = 0) returns x̂0. That is the shared DDIM step with UDBM's coefficients. One step
by default: x̂0 = clip(μ − F(μ + (1 + d)·z, μ, 1)).

Differences kept on purpose: the official network's time input is (1 − S_{0.75}(t))·1000 (S2 `get_t_sche`,
`model_predictions`); here every backbone sees t, as for every bridge. The official networks are NAFNet-style
(README "Model Zoo": stage 1 width 16 with blocks [1, 1, 1, 10], 16 [1, 1, 1, 28], 32 [1, 1, 1, 16] for S, M, L;
stage 2 width 16, 24, 48 with [1, 1, 1, 28]: the `nafnet-udbm-S/M/L` backbones); here stage 1 uses the run's
backbone unless `aux_backbone` names one (`nafnet-udbm-S` is the official M's stage-1 network).
"""

from __future__ import annotations

import torch

from bridgezoo import Auxiliary, Bridge, Option, Sampler, hookimpl
from bridgezoo.bridge import F64, PI_MODES
from bridgezoo.devices import as_float64, cast_like
from bridgezoo.errors import OptionError
from bridgezoo.samplers import ddim_update
from bridgezoo.seeding import randn

EPS = 1e-9  # S2 `_calculate_schedule`: the S-curve's denominator guard


def s_curve(t: torch.Tensor, p) -> torch.Tensor:
    """S_p(t) = t^p/(t^p + (1 − t)^p + 1e-9), the weight of μ on the path (S2 `_calculate_schedule`)."""
    num = t**p
    return num / (num + (1 - t) ** p + EPS)


class UDBM(Bridge):
    paper = ("Unifying Heterogeneous Degradations: Uncertainty-Aware Diffusion Bridge Model for All-in-One Image "
             "Restoration (UDBM), Tu et al., ICML 2026, arXiv 2601.21592")
    summary = ("Two stages: an auxiliary network's pixel-wise uncertainty d bends the path (S-curve exponent) and "
               "scales the noise (π = 1 + d); relaxed end x_1 = μ + (1 + d)·ε; one step")
    default_nfe = 1
    official_samplers = ("udbm", "ddim")
    pinned = False
    markov = False  # c/a decreases somewhere for d ≥ 0.75 (p ≤ 0.625), and a, b vary per pixel
    undefined = {"objective": {"velocity": "the path's velocity is infinite at t = 0 and t = 1 (t^p with p < 1)"}}
    unsupported_samplers = {"heun": "its log-SNR weights are per-time numbers, UDBM's path is per pixel",
                            "dpmpp_2m": "its log-SNR weights are per-time numbers, UDBM's path is per pixel"}
    option_spec = {
        "pi": Option("uncertainty", "noise modulation π: uncertainty (1 + d, d from the stage-1 network), zero, one, "
                                    "residual (x0 − μ)", (*PI_MODES, "uncertainty")),
        "path": Option("uncertainty", "path exponent p = p_min + (1 − d)(p_max − p_min): per pixel from the stage-1 "
                                      "uncertainty d, or fixed at d = d_fixed", ("uncertainty", "fixed")),
        "T": Option(1000, "official number of steps (index k ↔ t = k/(T − 1))"),
        "p_min": Option(0.5, "S-curve exponent at d = 1"),
        "p_max": Option(1.0, "S-curve exponent at d = 0"),
        "noise_scale": Option(5.0, "c(t) = noise_scale·[4t(1 − t) + endpoint·t²] (official max_beta_scale), [-1, 1] "
                                   "units"),
        "endpoint": Option(0.2, "share of noise_scale left at t = 1: c(1) = noise_scale·endpoint"),
        "d_fixed": Option(0.5, "the uncertainty before stage 1 and for path=fixed (official get_t_sche)"),
        "aux_iters": Option(0, "stage-1 (auxiliary network) iterations; 0: the run's --iters (official: 600k each)"),
        "aux_backbone": Option("", "stage-1 network: a registered backbone (e.g. nafnet-udbm-S, width 16 with "
                                   "[1, 1, 1, 28]: the official M's); empty: the run's --backbone and options"),
    }
    option_defaults = {"objective": "residual", "loss_type": "l1"}

    def setup(self) -> None:
        o = self.options
        if o["T"] < 2:
            raise OptionError(f"bridge {self.name!r}: T must be >= 2, got {o['T']}")
        if not 0 < o["p_min"] <= o["p_max"]:
            raise OptionError(f"bridge {self.name!r}: need 0 < p_min <= p_max, got {o['p_min']}, {o['p_max']}")
        if not 0 <= o["d_fixed"] <= 1:
            raise OptionError(f"bridge {self.name!r}: d_fixed is an uncertainty in [0, 1], got {o['d_fixed']}")
        if o["noise_scale"] < 0 or o["endpoint"] < 0 or o["aux_iters"] < 0:
            raise OptionError(f"bridge {self.name!r}: noise_scale, endpoint and aux_iters must be >= 0")
        self._d = None  # the uncertainty field of the batch being trained or sampled (see `_with_field`)

    # ------------------------------------------------------------------ the schedule
    def exponent(self, d):
        """p = p_min + (1 − d)·(p_max − p_min) (S2 `_calculate_schedule`)."""
        return self.options["p_min"] + (1 - d) * (self.options["p_max"] - self.options["p_min"])

    def noise_curve(self, t: torch.Tensor) -> torch.Tensor:
        """c(t) = noise_scale·[4t(1 − t) + endpoint·t²]: the official noise at d = 0 ((1 + d)·c(t) at d)."""
        return self.options["noise_scale"] * (4 * t * (1 - t) + self.options["endpoint"] * t**2)

    def schedule(self, t):
        s = s_curve(t, self.exponent(self.options["d_fixed"]))
        return 1 - s, s, self.noise_curve(t)

    @property
    def relation(self) -> dict:
        return {"kind": "none", "theta": None, "lam": None, "pi": self.pi,
                "note": "relaxed end: c(1) = noise_scale·endpoint = 1 ≠ 0 with a(1) ≈ 0, and a per-pixel S-curve path; "
                        "no generalized bridge"}

    # ------------------------------------------------------------------ the uncertainty field
    def auxiliary(self) -> Auxiliary | None:
        if self.pi != "uncertainty" and self.options["path"] != "uncertainty":
            return None
        return Auxiliary(loss=self.auxiliary_loss, iters=self.options["aux_iters"] or None,
                         backbone=self.options["aux_backbone"] or None)

    def _aux_time(self, mu: torch.Tensor) -> torch.Tensor:
        """The one time the auxiliary network sees: official index 1 ↔ t = 1/(T − 1)."""
        return torch.full((mu.shape[0],), 1.0 / (self.options["T"] - 1), dtype=mu.dtype, device=mu.device)

    def auxiliary_loss(self, network, x0, mu, generator=None) -> torch.Tensor:
        """Stage 1 (S1 `forward`, `p_losses`): L1 between A(μ, μ, t₁) and the residual μ − x0 (a mean per image,
        then over the batch)."""
        out = network(mu, mu, self._aux_time(mu))
        return (out - (mu - x0)).abs().flatten(1).mean(1).mean()

    def uncertainty(self, mu: torch.Tensor) -> torch.Tensor:
        """d(μ) = |clamp(A(μ, μ, t₁), −2, 2)|/2 ∈ [0, 1] per pixel (S2 `p_losses`); the constant d_fixed while no
        auxiliary network is attached."""
        network = getattr(self, "auxiliary_network", None)
        if network is None:
            return torch.full_like(mu, self.options["d_fixed"])
        param = next(network.parameters(), None)
        dtype = param.dtype if param is not None else mu.dtype
        with torch.no_grad():
            x = mu.to(dtype)
            out = network(x, x, self._aux_time(x))
        return (out.clamp(-2, 2).abs() * 0.5).to(mu.dtype)

    def _field(self, mu: torch.Tensor) -> torch.Tensor:
        return self._d if self._d is not None and self._d.shape == mu.shape else self.uncertainty(mu)

    def _per_pixel(self) -> bool:
        return self.options["path"] == "uncertainty" and getattr(self, "auxiliary_network", None) is not None

    def path_coefficients(self, t: torch.Tensor, mu: torch.Tensor):
        """(a, b, c) at t (shape [B]) for the images μ: a and b per pixel when the path follows the uncertainty
        field (`path=uncertainty`, network attached), else `coefficients(t)`; c is always per time."""
        if not self._per_pixel():
            return Bridge.coefficients(self, t, mu)
        t64 = as_float64(t, mu.device).reshape(-1, 1, 1, 1)
        s = s_curve(t64, self.exponent(self._field(mu).to(F64)))
        return cast_like(1 - s, mu), cast_like(s, mu), cast_like(self.noise_curve(t64), mu)

    def coefficients(self, t, like=None):
        """The coefficients the samplers and objectives use: per pixel for the batch in `_with_field`."""
        if like is not None and self._d is not None and self._per_pixel() and self._d.shape == like.shape:
            t64 = as_float64(t, like.device).reshape(-1, 1, 1, 1)
            s = s_curve(t64, self.exponent(self._d.to(F64)))
            return cast_like(1 - s, like), cast_like(s, like), cast_like(self.noise_curve(t64), like)
        return super().coefficients(t, like)

    def pi_field(self, x0, mu):
        if self.pi == "uncertainty":
            return 1 + self._field(mu).to(x0.dtype)
        return super().pi_field(x0, mu)

    def q_sample(self, x0, mu, t, noise):
        a, b, c = self.path_coefficients(t, mu)
        return a * x0 + b * mu + c * self.pi_field(x0, mu) * noise

    def _with_field(self, mu, fn):
        """Run fn() with the batch's uncertainty field held (computed once, not at every step)."""
        self._d = self.uncertainty(mu)
        try:
            return fn()
        finally:
            self._d = None

    def training_loss(self, model, x0, mu, generator=None):
        return self._with_field(mu, lambda: super(UDBM, self).training_loss(model, x0, mu, generator))

    def sample(self, model, mu, nfe=None, sampler=None, generator=None, return_trajectory=False):
        return self._with_field(mu, lambda: super(UDBM, self).sample(model, mu, nfe, sampler, generator,
                                                                      return_trajectory))

    # ------------------------------------------------------------------ times
    def _index_to_t(self, k: torch.Tensor) -> torch.Tensor:
        return k.clamp_min(0).to(F64) / (self.options["T"] - 1)

    def train_times(self):
        """Official k ∈ 1..T−1 ↔ t = k/(T − 1) (index 0, where x_t = x0, left out)."""
        return self._index_to_t(torch.arange(1, self.options["T"]))

    def grid(self, nfe: int):
        """The official grid `linspace(−1, T−1, nfe+1).int()` reversed, k ↔ k/(T − 1), −1 ↔ 0."""
        return self._index_to_t(torch.linspace(-1, self.options["T"] - 1, nfe + 1).int().flip(0))

    def initial_state(self, mu, generator=None):
        """x_1 = S_p(1)·μ + c(1)·π⊙z (S2 `sample_uncertainty_aware_bridge`); noise-free for π = residual (x0 is
        unknown) and π = zero."""
        _, b, c = self.path_coefficients(torch.ones(mu.shape[0], dtype=F64, device=mu.device), mu)
        x = b * mu
        if self.pi in ("one", "uncertainty"):
            x = x + c * self.pi_field(mu, mu) * randn(mu.shape, generator, device=mu.device, dtype=mu.dtype)
        return x


class UDBMSampler(Sampler):
    """UDBM's sampler (S2 `sample_uncertainty_aware_bridge`, eta 0): x_s = r·x_t + (b_s − r·b_t)·μ + (a_s − r·a_t)·x̂0,
    r = c_s/c_t, on the official grid, from x_1 = b(1)·μ + c(1)·π⊙z; one step by default."""

    summary = "UDBM's deterministic bridge steps from its relaxed noisy end (one step by default)"
    paper = "UDBM, Tu et al., ICML 2026 (src/model_udbm_s2_*.py, sample_uncertainty_aware_bridge)"

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        return ddim_update(bridge, x, mu, x0, t, s), x0


@hookimpl
def register_bridges(register):
    register(UDBM, name="udbm", summary=UDBM.summary)


@hookimpl
def register_samplers(register):
    register(UDBMSampler, name="udbm", bridges=(UDBM,))
