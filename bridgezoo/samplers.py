"""Samplers: one contract, the sampling loop, and the shared samplers that work for every bridge.

A sampler is a class registered through the `register_samplers` hook. Shared samplers are written once from the
marginal x_t = a·x0 + b·μ + c·π⊙ε (and, where they need it, the bridge's two-time Markov transition); a plugin
registers its method's official sampler(s) for its own bridge class. `bridge.samplers` lists what applies to a
bridge, its official ones first. A sampler is named on the command line and in grid files as `NAME` or
`NAME:KEY=VALUE[,KEY=VALUE]`, e.g. `dbim:eta=0.5`.

Notation (every shared sampler): t > s are consecutive grid times, x̂0 the model's clean estimate (clipped to
[-1, 1] if the bridge's `clip_x0`), ε̂ = (x_t − a_t·x̂0 − b_t·μ)/c_t the implied noise (π⊙ε), π̂ = π(x̂0, μ), and
λ_t = log(a_t/c_t) the bridge's log signal-to-noise ratio (λ = −∞ at a pinned start, +∞ at the clean end).
The probability-flow ODE shared by every bridge is the marginal velocity of the interpolant (Albergo, Boffi &
Vanden-Eijnden, "Stochastic interpolants", 2023): dx/dt = a'·x̂0 + b'·μ + c'·ε̂; in y = x/c it reads
dy = x̂0·d(a/c) + μ·d(b/c), whose exact solution over [s, t] with x̂0 held fixed is the DDIM step (DPM-Solver,
Lu et al. 2022, Eq. (3.4), here in data-prediction form as in DPM-Solver++, Lu et al. 2022, §4).
Images are NCHW; t and s are tensors of shape [B] (one value across the batch in the loop).

No step makes the host wait for the device: coefficients are computed on the data's device (`Bridge.coefficients(t, like=x)`), and
what a sampler decides (is this the pinned start, the clean end?) it decides from the grid, which lives on the host:
`Sampler.interval` gives the step's two times as Python floats and `Bridge.host_coefficients` the coefficients
there.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch

from .devices import as_float64, cast_like
from .errors import OptionError
from .objectives import safe_div
from .options import Option, merged_options, resolve_options
from .seeding import randn

F64 = torch.float64


@dataclass(frozen=True)
class SamplerInfo:
    """What a sampler is for one bridge: deterministic or not, exact under the oracle model, its order, and the
    network evaluations per step (a Heun step is two; its last step, to the clean end, is one)."""

    deterministic: bool
    oracle_exact: bool = True
    evals_per_step: int = 1
    order: int = 1


class Trajectory(NamedTuple):
    """What `sample(..., return_trajectory=True)` returns next to the result: the grid, states, x̂0 predictions."""

    t: torch.Tensor  # [K+1] visited times, decreasing, ending at 0
    x: torch.Tensor  # [K+1, B, C, H, W] states, x[0] the initial state
    x0_pred: torch.Tensor  # [K, B, C, H, W] the x̂0 each step used
    nfe: int  # network evaluations, counted (not the steps: a Heun step is two)

    @property
    def evaluations(self) -> int:
        """The network evaluations the run made, counted (the same number as `nfe`, by its unambiguous name)."""
        return self.nfe


class Sampler:
    """Base class of every sampler. Set the class attributes; implement `step` (one interval t → s) or, for a
    multistep method, `steps` (a generator over the whole grid). Override `timesteps`, `initial_state` or
    `applies_to` where the method needs its own grid, start or bridge. Options: `option_spec` as for bridges."""

    name: str = ""
    summary: str = ""
    paper: str = ""
    order: int = 1
    deterministic: bool = True
    oracle_exact: bool = True
    evals_per_step: int = 1
    option_spec: dict[str, Option] = {}
    option_defaults: dict = {}
    _interval: tuple[float, float] | None = None  # the times of the step `intervals` is taking

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._options = merged_options(cls)

    def __init__(self, **options):
        self.options = resolve_options(options, type(self)._options, f"sampler {self.name or type(self).__name__!r}")

    @classmethod
    def applies_to(cls, bridge) -> bool:
        """Whether this sampler can run on `bridge` (shared samplers: every bridge by default)."""
        return True

    def info(self, bridge) -> SamplerInfo:
        """This sampler's properties on `bridge` with these options (override where options change them)."""
        det = self.deterministic
        return SamplerInfo(det, self.oracle_exact and det, self.evals_per_step, self.order)

    def timesteps(self, bridge, nfe: int) -> torch.Tensor:
        """Decreasing float64 grid from 1 to 0 with `nfe` intervals: the bridge's default grid."""
        return bridge.grid(nfe)

    def initial_state(self, bridge, mu, generator=None) -> torch.Tensor:
        return bridge.initial_state(mu, generator)

    def steps(self, bridge, model, x, mu, grid, generator=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x_s, x̂0) for each interval of `grid`; by default one `step` per interval."""
        for tb, sb in self.intervals(grid, mu):
            x, x0 = self.step(bridge, model, x, mu, tb, sb, generator)
            yield x, x0

    def intervals(self, grid: torch.Tensor, mu: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The intervals (t, s) of the host grid as tensors of shape [B] in μ's dtype on μ's device (filled in there,
        no copy). While the consumer steps one, `interval` returns its two times as Python floats, as those tensors
        hold them (rounded to μ's dtype)."""
        values = grid.tolist()
        held = grid.to(mu.dtype).to(F64).tolist()
        try:
            for k in range(len(values) - 1):
                self._interval = (held[k], held[k + 1])
                yield tuple(torch.full((mu.shape[0],), v, dtype=mu.dtype, device=mu.device) for v in values[k:k + 2])
        finally:
            self._interval = None

    def interval(self, t: torch.Tensor, s: torch.Tensor) -> tuple[float, float]:
        """(t, s) of the step being taken as Python floats, every image of the batch at the same times: those of
        `intervals` (no device synchronisation), or, for a `step` called outside it, read from the tensors (their
        largest values; a synchronisation)."""
        return self._interval if self._interval is not None else (float(t.max()), float(s.max()))

    def step(self, bridge, model, x, mu, t, s, generator=None):
        """One step from t to s < t: returns (x_s, x̂0 used)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.name!r}{', ' + opts if opts else ''})"


def parse_sampler_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'dbim:eta=0.5,boot=false' -> ('dbim', {'eta': '0.5', 'boot': 'false'})."""
    name, _, rest = str(spec).partition(":")
    options = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise OptionError(f"sampler {spec!r}: expected NAME or NAME:KEY=VALUE[,KEY=VALUE], got {part!r}")
        options[key.strip()] = value.strip()
    return name.strip(), options


@dataclass
class EvaluationCount:
    """What `count_evaluations` saw: sampling runs (`run_sampler` calls: one per batch, or per tile of a batch), the
    calls of the model the sampler was given, and forward calls of the network (None when no network module was
    given to hook). Each call evaluates every image of its batch once."""

    runs: int = 0
    model_calls: int = 0
    network_calls: int | None = None

    @property
    def per_run(self) -> float:
        """Network evaluations each image received in one sampling run (e.g. 79 for Heun at 40 steps): the hooked
        network's forward calls where there is one, else the model's calls."""
        calls = self.model_calls if self.network_calls is None else self.network_calls
        return calls / self.runs if self.runs else 0.0


_COUNTING: contextvars.ContextVar[EvaluationCount | None] = contextvars.ContextVar("bridgezoo_counting", default=None)


@contextlib.contextmanager
def count_evaluations(network=None):
    """Count, while active, the sampling runs and the forward calls of `network` (the backbone, through a forward
    hook; a callable that is not a module: the model calls the sampling loop makes): the network evaluations a
    sampler actually made, whatever its nominal steps, order or wrappers. Yields an `EvaluationCount`."""
    count = EvaluationCount()
    token = _COUNTING.set(count)
    handle = None
    if isinstance(network, torch.nn.Module):
        count.network_calls = 0

        def hook(module, args, output):
            count.network_calls += 1

        handle = network.register_forward_hook(hook)
    try:
        yield count
    finally:
        if handle is not None:
            handle.remove()
        _COUNTING.reset(token)


def run_sampler(bridge, sampler: Sampler, model, mu, nfe=None, generator=None, return_trajectory=False):
    """The one sampling loop: grid, initial state, the sampler's steps, counted network evaluations. `nfe` is the
    number of sampler steps (grid intervals); the evaluations it costs are counted (`Trajectory.nfe`,
    `count_evaluations`)."""
    grid = sampler.timesteps(bridge, nfe or bridge.default_nfe)
    counting = _COUNTING.get()
    if counting is not None:
        counting.runs += 1
    calls = [0]

    def counted(*args):
        calls[0] += 1
        return model(*args)

    x = sampler.initial_state(bridge, mu, generator)
    states, preds = [x], []
    for x, x0 in sampler.steps(bridge, counted, x, mu, grid, generator):
        if return_trajectory:
            states.append(x)
            preds.append(x0)
    if counting is not None:
        counting.model_calls += calls[0]
    if not return_trajectory:
        return x
    return x, Trajectory(grid, torch.stack(states), torch.stack(preds), calls[0])


# ------------------------------------------------------------------------------------------ shared pieces
def ddim_update(bridge, x, mu, x0, t, s) -> torch.Tensor:
    """x_s = a_s·x̂0 + b_s·μ + (c_s/c_t)·(x_t − a_t·x̂0 − b_t·μ), the ratio taken as 0 where c_t = 0 (a pinned start).

    The exact solution of the probability-flow ODE over [s, t] with x̂0 held fixed (see the module docstring)."""
    a_t, b_t, c_t = bridge.coefficients(t, x)
    a_s, b_s, c_s = bridge.coefficients(s, x)
    ratio = safe_div(c_s, c_t, 0.0)
    return a_s * x0 + b_s * mu + ratio * (x - a_t * x0 - b_t * mu)


def log_snr(bridge, t) -> torch.Tensor:
    """λ_t = log(a_t/c_t) in float64, shape [B, 1, 1, 1]; −∞ where a_t = 0 (a pinned start, or x0 forgotten),
    +∞ where c_t = 0 < a_t (the clean end)."""
    a, _, c = bridge.coefficients(as_float64(t))
    lam = torch.log(a) - torch.log(c)
    return torch.where(a == 0, -math.inf, torch.where(c == 0, math.inf, lam))


def phi2_ratio(h: torch.Tensor) -> torch.Tensor:
    """(h − 1 + e^{−h})/(1 − e^{−h}) for h = λ_s − λ_t (float64): the weight of the x̂0 slope dx̂0/dλ in the exact
    integral ∫ e^λ·x̂0(λ) dλ over one step when x̂0 is linear in λ (DPM-Solver++ §4; DBIM's high-order solver).
    ≈ h/2 + h²/12 for small h; → h − 1 as h → ∞."""
    small = h.abs() < 1e-4
    safe = torch.where(small, torch.ones_like(h), h)
    exact = (safe + torch.expm1(-safe)) / (-torch.expm1(-safe))
    return torch.where(small, h / 2 + h * h / 12, exact)


# ------------------------------------------------------------------------------------------ shared samplers
class DDIM(Sampler):
    """Deterministic DDIM (η = 0): `ddim_update` with x̂0 clipped if `clip_x0`; the fair-comparison default.

    From a pinned start (c_t = 0) the first step is x_s = a_s·x̂0 + b_s·μ, without noise (RDBM's `ddim_sample`)."""

    summary = "deterministic DDIM on the marginal (η = 0); from a pinned start, the noise-free mean"
    paper = "DDIM, Song et al., ICLR 2021 (Eq. 12 with σ = 0), written on the bridge marginal"

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        return ddim_update(bridge, x, mu, x0, t, s), x0


class Posterior(Sampler):
    """Ancestral sampling from the bridge's own Markov posterior q(x_s | x_t, x̂0, μ) (every SDE bridge has one):
    x_s = posterior mean + posterior std·π̂·z (`Bridge.posterior_mean` / `posterior_std`, from `transition`).
    From a pinned start the posterior is the marginal q(x_s | x̂0, μ). IR-SDE's official `posterior` sampler."""

    summary = "ancestral steps from the bridge's Markov posterior q(x_s | x_t, x̂0) (DBIM η = 1)"
    paper = "DDPM posterior sampling (Ho et al., NeurIPS 2020, Eq. 7) on the bridge's Markov transition"
    deterministic = False

    @classmethod
    def applies_to(cls, bridge) -> bool:
        return bridge.markov

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
        return bridge.posterior_mean(x, x0, mu, t, s) + bridge.posterior_std(x, t, s) * bridge.pi_field(x0, mu) * z, x0


class DBIM(Sampler):
    """DBIM's η-family (Zheng et al., ICLR 2025: the non-Markovian bridge q^(ρ)(x_s | x0, x_t, μ) that keeps every
    marginal, with ρ = η·σ_s·sqrt(1 − SNR_t/SNR_s); official thu-ml/DiffusionBridge `ddbm/karras_diffusion.py`
    `sample_dbim`, L449-510, ρ at L495): with ρ_s = η·σ_post, σ_post the std of the bridge's Markov posterior
    q(x_s | x_t, x0) (π = 1 units; the same quantity for DDBM's bridges),

        x_s = a_s·x̂0 + b_s·μ + sqrt(c_s² − ρ_s²)/c_t·(x_t − a_t·x̂0 − b_t·μ) + ρ_s·π̂·z,

    which keeps every marginal q(x_s | x0, μ) for any η ∈ [0, 1] (the non-Markovian bridge of the paper): η = 0 is
    `ddim` exactly, η = 1 is `posterior`. Booting noise (`boot`): from a pinned start (c_t = 0) the first step
    samples the marginal at s, x_s = a_s·x̂0 + b_s·μ + c_s·π̂·z, whatever η (the paper's remedy for the singular
    start). The official code spends one extra evaluation to boot to t = 1 − 1e-3 and then runs its uniform grid;
    here the boot is the first step of the bridge's grid (no extra evaluation). A noise-predicting model has no
    x̂0 at a pinned start (a = 0: x̂0 = μ there), so with π = x0 − μ its boot is noise-free."""

    summary = "DBIM η-family (η = 0: ddim, η = 1: posterior) with booting noise from a pinned start"
    paper = "Diffusion Bridge Implicit Models, Zheng et al., ICLR 2025"
    deterministic = False
    option_spec = {
        "eta": Option(0.0, "stochasticity η ∈ [0, 1]: ρ = η·(posterior std); 0 is deterministic"),
        "boot": Option(True, "booting noise: sample the marginal on the first step from a pinned start (c = 0)"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        if not 0 <= self.options["eta"] <= 1:
            raise OptionError(f"sampler 'dbim': eta must be in [0, 1], got {self.options['eta']}")

    @classmethod
    def applies_to(cls, bridge) -> bool:
        return bridge.markov

    def info(self, bridge) -> SamplerInfo:
        c1 = bridge.coefficients(torch.ones(1, dtype=F64))[2]
        # the boot injects c_s·π̂·z with π̂ from x̂0 at the pinned start; a noise-predicting model has x̂0 = μ there
        # (a = 0), so with π = x0 − μ the boot is noise-free and the sampler is `ddim` exactly
        noise_free_boot = bridge.pi == "residual" and bridge.objective == "noise"
        boots = self.options["boot"] and bool((c1 == 0).all()) and bridge.pi != "zero" and not noise_free_boot
        det = self.options["eta"] == 0 and not boots
        return SamplerInfo(det, det, 1, 1)

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        boot = self.options["boot"] and bridge.host_coefficients(self.interval(t, s)[0], x.dtype)[2] == 0
        if self.options["eta"] <= 0 and not boot:
            return ddim_update(bridge, x, mu, x0, t, s), x0
        a_t, b_t, c_t = bridge.coefficients(t, x)
        eta = torch.full_like(c_t, self.options["eta"])
        if self.options["boot"]:
            eta = torch.where(c_t == 0, torch.ones_like(eta), eta)
        a_s, b_s, c_s = bridge.coefficients(s, x)
        rho = eta * bridge.posterior_std(x, t, s)
        keep = safe_div((c_s**2 - rho**2).clamp_min(0).sqrt(), c_t, 0.0)
        z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
        x_s = a_s * x0 + b_s * mu + keep * (x - a_t * x0 - b_t * mu) + rho * bridge.pi_field(x0, mu) * z
        return x_s, x0


class EulerMaruyama(Sampler):
    """Euler–Maruyama on a reverse SDE derived from the marginals alone: in reverse time, with Δ = t − s,

        x_s = x_t − Δ·(v + ½·g²·ε̂/c_t) + sqrt(g²·Δ)·π̂·z,   v = a'·x̂0 + b'·μ + c'·ε̂ (the PF-ODE velocity),

    i.e. the PF-ODE plus ½g²·∇log p_t in the drift and g·dw̄, whose Fokker–Planck equation is the PF-ODE's for any
    g (Song et al., ICLR 2021: reverse SDE Eq. 6 and probability-flow ODE Eq. 13; ∇log p_t = −ε̂/(c·π²)), so its
    marginals are the bridge's. Noise level: g = η·g_M with g_M² = 2(c·c' − c²·a'/a) =
    −2c²·dλ/dt, the diffusion of the bridge's own Markov forward SDE (its two-time transition's variance rate;
    2λθ_t for the generalized bridge, 2σ per unit σ for DDBM-VE); η = 0 is Euler on the PF-ODE. The derivatives
    are exact (autograd through the bridge's coefficients). Where the SDE is singular the step is exact instead:
    from a pinned start or a state that has forgotten x0 (a_t = 0 or c_t = 0) it samples the posterior (the
    marginal at s), and the step into the clean end (c_s = 0) returns a_s·x̂0 + b_s·μ (the score-SDE `denoise`)."""

    summary = "Euler–Maruyama on the reverse SDE with the bridge's own diffusion g_M (× η); η = 0: Euler PF-ODE"
    paper = "Score-based generative modeling through SDEs, Song et al., ICLR 2021 (Eq. 6 and 13)"
    deterministic = False
    option_spec = {"eta": Option(1.0, "noise level: g = η·g_M, g_M² = −2c²·dλ/dt (the bridge's own diffusion)")}

    def __init__(self, **options):
        super().__init__(**options)
        if self.options["eta"] < 0:
            raise OptionError(f"sampler 'euler_maruyama': eta must be >= 0, got {self.options['eta']}")

    @classmethod
    def applies_to(cls, bridge) -> bool:
        return bridge.markov

    def info(self, bridge) -> SamplerInfo:
        return SamplerInfo(self.options["eta"] == 0, False, 1, 1)

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.x0_hat(model, x, mu, t)
        t_host, s_host = self.interval(t, s)
        a_host, _, c_host = bridge.host_coefficients(t_host, x.dtype)
        if c_host == 0 or a_host == 0:
            z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
            return bridge.posterior_mean(x, x0, mu, t, s) + bridge.posterior_std(x, t, s) * bridge.pi_field(x0, mu) * z, x0
        a_t, b_t, c_t = bridge.coefficients(t, x)
        a_s, b_s, c_s = bridge.coefficients(s, x)
        if bridge.host_coefficients(s_host, x.dtype)[2] == 0:
            return a_s * x0 + b_s * mu, x0
        da, db, dc = (cast_like(v, x) for v in bridge.coefficient_derivatives(t))
        eps = (x - a_t * x0 - b_t * mu) / c_t
        velocity = da * x0 + db * mu + dc * eps
        g2 = (self.options["eta"] ** 2 * 2 * (c_t * dc - c_t**2 * da / a_t)).clamp_min(0)
        delta = (t - s).reshape(-1, 1, 1, 1).to(x)
        z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
        return x - delta * (velocity + 0.5 * g2 * eps / c_t) + (g2 * delta).sqrt() * bridge.pi_field(x0, mu) * z, x0


def _heun_weight(bridge, t, s, like) -> torch.Tensor:
    """w = φ₂-ratio(h)/h ∈ [½, 1]: the weight of x̂0(s) in the exact integral of an x̂0 linear in λ over [s, t]
    (trapezoid ½ as h → 0; 1 from a pinned start, h = ∞)."""
    h = log_snr(bridge, s) - log_snr(bridge, t)
    w = torch.where(torch.isinf(h), torch.ones_like(h), phi2_ratio(h) / torch.where(h == 0, torch.ones_like(h), h))
    return cast_like(torch.where(h == 0, torch.full_like(h, 0.5), w), like)


class Heun(Sampler):
    """Heun's method (Karras et al., NeurIPS 2022, Algorithm 1: Euler predictor, trapezoidal corrector, a single
    Euler step into the clean end) on the probability-flow ODE written in exponential-integrator form: the
    linear part is integrated exactly (the DDIM step), and the corrector integrates x̂0 linearly in λ between its
    values at t and at the predicted x̃_s:

        x̃_s = DDIM(x̂0(x_t, t)),   x_s = DDIM(x̂0_t + w·(x̂0(x̃_s, s) − x̂0_t)),   w = φ₂-ratio(h)/h,  h = λ_s − λ_t,

    (the exact weights of x̂0 expanded to first order in λ inside DPM-Solver's Eq. (3.4), Lu et al. 2022, with the
    second point at s as in Heun). Second order; exact whenever x̂0 is linear in λ, hence oracle-exact. Two
    evaluations per step, one on the last."""

    summary = "Heun (trapezoid) on the PF-ODE, exponential-integrator form; 2 evaluations per step (1 on the last)"
    paper = "EDM, Karras et al., NeurIPS 2022 (Algorithm 1), with DPM-Solver's exponential integrator"
    order = 2
    evals_per_step = 2

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0_t = bridge.x0_hat(model, x, mu, t)
        predicted = ddim_update(bridge, x, mu, x0_t, t, s)
        if bridge.host_coefficients(self.interval(t, s)[1], x.dtype)[2] == 0:
            return predicted, x0_t
        x0_s = bridge.x0_hat(model, predicted, mu, s)
        w = _heun_weight(bridge, t, s, x)
        return ddim_update(bridge, x, mu, x0_t + w * (x0_s - x0_t), t, s), x0_t


class DPMSolverPP2M(Sampler):
    """Second-order multistep exponential integrator in data prediction (DPM-Solver++(2M), Lu et al. 2022; on
    diffusion bridges: DBIM's 2nd-order solver, thu-ml/DiffusionBridge `sample_dbim_high_order` L315-446, its
    update at L378-400, and UniDB++, Pan et al. 2025, arXiv 2505.21528): in the exact solution of DPM-Solver's
    Eq. (3.4) (data-prediction form) x̂0 is taken linear in λ through the previous step's estimate, and that line
    is integrated exactly, with DBIM's weight (e^{−h} + h − 1) rather than DPM-Solver++'s ½·h·(1 − e^{−h}):

        x_s = DDIM(x̂0_t + φ₂-ratio(h)·D),   D = (x̂0_t − x̂0_prev)/(λ_t − λ_prev),   h = λ_s − λ_t.

    The first step (no previous estimate, or a previous one at λ = −∞, a pinned start) and the step into the clean
    end (h = ∞) are first order (DDIM), as the official codes' `lower_order_final`. One evaluation per step."""

    summary = "2nd-order multistep exponential integrator (DPM-Solver++(2M) / DBIM-2 / UniDB++), 1 evaluation per step"
    paper = "DPM-Solver++, Lu et al. 2022 (arXiv 2211.01095); UniDB++, Pan et al. 2025 (arXiv 2505.21528)"
    order = 2

    def steps(self, bridge, model, x, mu, grid, generator=None):
        # λ on the host grid, as the batch tensors hold the times (rounded to μ's dtype): whether the second-order
        # correction applies is decided on the host; its weight is computed on the device, as every coefficient
        lam_host = log_snr(bridge, grid.to(mu.dtype).to(F64)).flatten().tolist()
        previous = None  # (x̂0, λ, grid index) of the last step
        for k, (tb, sb) in enumerate(self.intervals(grid, mu)):
            x0 = bridge.x0_hat(model, x, mu, tb)
            lam_t, lam_s = log_snr(bridge, tb), log_snr(bridge, sb)
            x0_used = x0
            if previous is not None:
                x0_prev, lam_prev, j = previous
                if all(map(math.isfinite, (lam_host[j], lam_host[k], lam_host[k + 1]))) and lam_host[k] != lam_host[j]:
                    slope_weight = phi2_ratio(lam_s - lam_t) / (lam_t - lam_prev)
                    x0_used = x0 + cast_like(slope_weight, x) * (x0 - x0_prev)
            x = ddim_update(bridge, x, mu, x0_used, tb, sb)
            previous = (x0, lam_t, k)
            yield x, x0


SHARED_SAMPLERS = {"ddim": DDIM, "dbim": DBIM, "posterior": Posterior, "euler_maruyama": EulerMaruyama,
                   "heun": Heun, "dpmpp_2m": DPMSolverPP2M}
