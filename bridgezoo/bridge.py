"""The Bridge base class: the common linear-Gaussian marginal, π modes, objectives, losses and the shared samplers.

Every method is x_t = a(t)·x0 + b(t)·μ + c(t)·π(x0, μ)⊙ε with t ∈ [0, 1], t = 0 the clean end (DESIGN.md §1).
A plugin subclasses `Bridge` and implements `_coefficients(t)`; everything else here is written once.
Images are NCHW in [-1, 1]; t is a float tensor of shape [B] (or a scalar).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch

from .errors import OptionError, suggest

PI_MODES = ("zero", "one", "residual")
OBJECTIVES = ("x0", "noise", "residual", "res_noise", "velocity", "xt_minus_x0")
F64 = torch.float64


@dataclass(frozen=True)
class Option:
    """One option of a bridge: its default, a one-line help (with units), and the allowed values if a choice."""

    default: Any
    help: str
    choices: tuple | None = None


@dataclass(frozen=True)
class SamplerInfo:
    """What a sampler is: deterministic or not, exact under the oracle model, network evaluations per step."""

    deterministic: bool
    oracle_exact: bool = True
    evals_per_step: int = 1


def sampler(*, deterministic: bool, oracle_exact: bool = True, evals_per_step: int = 1):
    """Mark `_step_<name>(self, model, x, mu, t, s, generator) -> (x_s, x0_hat)` as a sampler step."""

    def mark(fn):
        fn.sampler_info = SamplerInfo(deterministic, oracle_exact if deterministic else False, evals_per_step)
        return fn

    return mark


class Trajectory(NamedTuple):
    """What `sample(..., return_trajectory=True)` returns next to the result: the grid, states, x̂0 predictions."""

    t: torch.Tensor  # [K+1] visited times, decreasing, ending at 0
    x: torch.Tensor  # [K+1, B, C, H, W] states, x[0] the initial state
    x0_pred: torch.Tensor  # [K, B, C, H, W] the x̂0 each step used
    nfe: int  # network evaluations


def safe_div(num: torch.Tensor, den: torch.Tensor, fallback) -> torch.Tensor:
    """num/den where den ≠ 0, `fallback` where den == 0 (no NaN, no Inf, no warning)."""
    zero = den == 0
    out = num / torch.where(zero, torch.ones_like(den), den)
    return torch.where(zero, torch.as_tensor(fallback, dtype=out.dtype, device=out.device), out)


def official_index_grid(T: int, nfe: int) -> torch.Tensor:
    """`linspace(−1, T−1, nfe+1).int()` reversed (RDBM L201-205, RDDM L915-935), as t with index k ↔ t = (k+1)/T."""
    idx = torch.linspace(-1, T - 1, nfe + 1).int().to(F64)  # float32 then .int(), as the official codes
    return (idx.flip(0) + 1) / T


def _coerce(name: str, value: Any, spec: Option, bridge: str):
    """Validate one option value (and parse strings from the command line)."""
    default = spec.default
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                value = low in ("1", "true", "yes", "on")
            elif not isinstance(value, bool):
                raise ValueError(value)
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            value = int(value) if isinstance(value, str) else value
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(value)
        elif isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError(value)
            value = float(value)
    except (TypeError, ValueError):
        raise OptionError(
            f"bridge {bridge!r}: option {name}={value!r} is not a valid {type(default).__name__} ({spec.help})"
        ) from None
    if spec.choices is not None and value not in spec.choices:
        raise OptionError(
            f"bridge {bridge!r}: option {name}={value!r} is not one of {', '.join(map(str, spec.choices))}."
            f"{suggest(value, spec.choices)}"
        )
    return value


class DegenerateBridgeWarning(UserWarning):
    """A valid but degenerate combination of options (the run would teach the network nothing)."""


class Bridge:
    """Base class of every bridge. Subclasses set the class attributes below and implement `_coefficients`.

    Class attributes: `paper` (citation), `summary` (one line), `default_nfe`, `samplers` (first = official
    default; each name has a `_step_<name>` method, "ddim" is always available), `option_spec` (new options),
    `option_defaults` (overridden defaults of inherited options), `pinned` (x_1 = μ exactly).
    """

    name: str = ""
    paper: str = ""
    summary: str = ""
    default_nfe: int = 10
    samplers: tuple[str, ...] = ("ddim",)
    pinned: bool = True
    option_spec: dict[str, Option] = {
        "pi": Option("one", "noise modulation π: zero (no noise), one (classic), residual (x0 − μ, RDBM)", PI_MODES),
        "objective": Option("x0", "what the network predicts", OBJECTIVES),
        "loss_type": Option("l1", "distance between output and target", ("l1", "l2")),
        "clip_x0": Option(True, "clip x̂0 to [-1, 1] inside the samplers"),
    }
    option_defaults: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        merged: dict[str, Option] = {}
        for base in reversed(cls.__mro__):
            merged.update(base.__dict__.get("option_spec", {}))
            for key, value in base.__dict__.get("option_defaults", {}).items():
                if key not in merged:
                    raise TypeError(f"{cls.__name__}.option_defaults names unknown option {key!r}")
                merged[key] = Option(value, merged[key].help, merged[key].choices)
        cls._options = merged
        for name in cls.__dict__.get("samplers", ()):
            if not hasattr(cls, f"_step_{name.replace('-', '_')}"):
                raise TypeError(f"{cls.__name__}.samplers lists {name!r} but has no _step_{name.replace('-', '_')}")

    def __init__(self, **options):
        label = self.name or type(self).__name__
        spec = type(self)._options
        unknown = [k for k in options if k not in spec]
        if unknown:
            k = unknown[0]
            raise OptionError(
                f"bridge {label!r} has no option {k!r}.{suggest(k, spec)} Valid options: "
                + ", ".join(f"{n} (default {o.default!r})" for n, o in spec.items())
            )
        self.options: dict[str, Any] = {
            n: _coerce(n, options[n], o, label) if n in options else o.default for n, o in spec.items()
        }
        self.setup()
        if self.options.get("pi") == "zero" and self.options.get("objective") == "noise":
            warnings.warn(
                f"bridge {label!r}: pi='zero' with objective='noise' leaves nothing to learn: x_t carries no noise, "
                "so the noise target is identically 0 and a model that learns it restores μ unchanged. For a "
                "noise-free bridge use objective='x0' (or 'velocity').", DegenerateBridgeWarning, stacklevel=2)

    # ------------------------------------------------------------------ to implement
    def setup(self) -> None:
        """Build tables from `self.options` (called once from __init__)."""

    def _coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, b, c) at float64 times t (same shape as t), differentiable in t."""
        raise NotImplementedError

    @property
    def relation(self) -> dict:
        """Relation to the generalized (θ, λ, π) bridge: {"kind": exact|limit|none, "theta", "lam", "pi", "note"}."""
        return {"kind": "none", "theta": None, "lam": None, "pi": None, "note": ""}

    # ------------------------------------------------------------------ marginal
    @property
    def objective(self) -> str:
        return self.options["objective"]

    @property
    def pi(self) -> str:
        return self.options["pi"]

    def out_channels(self, channels: int) -> int:
        """Channels the network must output for images of `channels` channels."""
        return 2 * channels if self.objective == "res_noise" else channels

    def coefficients(self, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, b, c) at t, each of shape t.shape + (1, 1, 1) (broadcastable against NCHW), in t's float dtype."""
        t = torch.as_tensor(t)
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        return tuple(self._shape(v, t).to(dtype) for v in self._coefficients(t.to(F64)))

    def coefficient_derivatives(self, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(da/dt, db/dt, dc/dt) at t (autograd through `_coefficients`), shaped like `coefficients`."""
        t = torch.as_tensor(t)
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        with torch.enable_grad():
            tt = t.detach().to(F64).clone().requires_grad_(True)
            out = []
            for v in self._coefficients(tt):
                (g,) = torch.autograd.grad(v.sum(), tt, allow_unused=True, retain_graph=True) if v.requires_grad else (None,)
                out.append(torch.zeros_like(tt) if g is None else g)
        return tuple(self._shape(v.detach(), t).to(dtype) for v in out)

    @staticmethod
    def _shape(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = v.expand(t.shape) if v.shape != t.shape else v
        return v.reshape(*t.shape, 1, 1, 1) if t.dim() >= 1 else v

    def _coef(self, t: torch.Tensor, like: torch.Tensor):
        """(a, b, c) computed in float64 at t, shaped [B, 1, 1, 1], cast to `like`'s dtype and device."""
        t = torch.as_tensor(t).detach().cpu()
        return tuple(self._shape(v, t).to(device=like.device, dtype=like.dtype) for v in self._coefficients(t.to(F64)))

    def pi_field(self, x0: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """π(x0, μ): 0, 1 or x0 − μ (elementwise), shaped like x0."""
        if self.pi == "zero":
            return torch.zeros_like(x0)
        if self.pi == "one":
            return torch.ones_like(x0)
        return x0 - mu

    def q_sample(self, x0: torch.Tensor, mu: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = a·x0 + b·μ + c·π⊙noise."""
        a, b, c = self._coef(t, x0)
        return a * x0 + b * mu + c * self.pi_field(x0, mu) * noise

    # ------------------------------------------------------------------ objectives
    def target(self, x0, mu, x_t, t) -> torch.Tensor:
        """Training target in the objective's space; the noise is the one implied by x_t ((x_t − a·x0 − b·μ)/c)."""
        a, b, c = self._coef(t, x0)
        obj = self.objective
        if obj == "x0":
            return x0
        if obj == "residual":
            return mu - x0
        if obj == "xt_minus_x0":
            return x_t - x0
        if obj == "velocity":
            da, db, _ = self.coefficient_derivatives(t.detach().cpu())
            return da.to(x0) * x0 + db.to(x0) * mu
        noise = safe_div(x_t - a * x0 - b * mu, c.expand_as(x0), 0.0)
        if obj == "noise":
            return noise
        return torch.cat([mu - x0, noise], dim=1)  # res_noise

    def predict_x0(self, output, x_t, mu, t) -> torch.Tensor:
        """x̂0 from a network output in the objective's space (the exact inverse of `target`); not clipped.

        Where the conversion is undefined (a = 0 for `noise`, da/dt = 0 for `velocity`), μ is returned.
        """
        obj = self.objective
        if obj == "x0":
            return output
        if obj == "residual":
            return mu - output
        if obj == "xt_minus_x0":
            return x_t - output
        a, b, c = self._coef(t, x_t)
        if obj == "noise":
            return safe_div(x_t - b * mu - c * output, a.expand_as(x_t), 0.0) + (a == 0) * mu
        if obj == "velocity":
            da, db, _ = (v.to(x_t) for v in self.coefficient_derivatives(t.detach().cpu()))
            return safe_div(output - db * mu, da.expand_as(x_t), 0.0) + (da == 0) * mu
        channels = output.shape[1] // 2  # res_noise: x_t = (a + b)·x0 + b·(μ − x0) + c·n
        return (x_t - b * output[:, :channels] - c * output[:, channels:]) / (a + b)

    def wrap(self, network: Callable) -> Callable:
        """The model the samplers and the loss call: `model(x_t, mu, t)` in objective space. Identity by default."""
        return network

    # ------------------------------------------------------------------ training
    def _train_times(self) -> torch.Tensor | None:
        """The discrete set of t the official code trains on, or None for continuous U(0, 1]: for a bridge with a
        `T` option, its official steps k ∈ 0..T−1 ↔ t = (k+1)/T (equivalently i ∈ 1..T ↔ t = i/T)."""
        T = self.options.get("T")
        return None if T is None else torch.arange(1, T + 1, dtype=F64) / T

    def sample_t(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """n training times (float32, shape [n]) from the method's training distribution."""
        dev = generator.device if generator is not None else device
        grid = self._train_times()
        if grid is None:
            u = torch.rand(n, generator=generator, device=dev)
            return (1.0 - u).clamp_min(1e-5)  # (0, 1]
        idx = torch.randint(0, grid.numel(), (n,), generator=generator, device=dev)
        return grid.to(dev, torch.float32)[idx]

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor | None:
        """Per-sample loss weight w(t) (shape [B]), or None for an unweighted loss."""
        return None

    def loss(self, output, x0, mu, x_t, t) -> torch.Tensor:
        """The method's loss, a scalar: mean over pixels of |output − target| (l1) or its square (l2), times w(t)."""
        diff = output - self.target(x0, mu, x_t, t)
        per = diff.abs() if self.options["loss_type"] == "l1" else diff.square()
        per = per.flatten(1).mean(1)
        w = self.loss_weight(t)
        return (per * w.to(per)).mean() if w is not None else per.mean()

    def training_loss(self, model, x0, mu, generator=None) -> torch.Tensor:
        """Sample t and noise, build x_t, call `model(x_t, mu, t)`, return `loss`.

        `generator`: one torch.Generator for the batch, or a sequence of one generator per sample (the runner
        seeds each sample's t and noise by its draw number, so a batch split over N processes is trained with
        exactly the t and noise of the same batch on one process)."""
        if isinstance(generator, (list, tuple)):
            if len(generator) != x0.shape[0]:
                raise ValueError(f"{len(generator)} generators for a batch of {x0.shape[0]}")
            t = torch.cat([self.sample_t(1, generator=g, device=x0.device).to(x0.device) for g in generator])
            noise = torch.cat([torch.randn((1, *x0.shape[1:]), generator=g, device=x0.device, dtype=x0.dtype)
                               for g in generator])
        else:
            t = self.sample_t(x0.shape[0], generator=generator, device=x0.device).to(x0.device)
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, mu, t, noise)
        return self.loss(model(x_t, mu, t.to(x0.dtype)), x0, mu, x_t, t)

    # ------------------------------------------------------------------ sampling
    def timesteps(self, nfe: int | None = None, sampler: str | None = None) -> torch.Tensor:
        """Decreasing float64 grid of t visited by `sampler` with `nfe` steps, starting at 1 and ending at 0."""
        nfe = nfe or self.default_nfe
        custom = getattr(self, f"_grid_{(sampler or self.samplers[0]).replace('-', '_')}", None)
        return custom(nfe) if custom is not None else self._grid(nfe)

    def _grid(self, nfe: int) -> torch.Tensor:
        return torch.linspace(1.0, 0.0, nfe + 1, dtype=F64)

    def sampler_info(self, name: str) -> SamplerInfo:
        return getattr(self, f"_step_{self._check_sampler(name).replace('-', '_')}").sampler_info

    def _check_sampler(self, name: str | None) -> str:
        name = name or self.samplers[0]
        valid = self.samplers + (() if "ddim" in self.samplers else ("ddim",))
        if name not in valid:
            raise OptionError(
                f"bridge {self.name or type(self).__name__!r} has no sampler {name!r}.{suggest(name, valid)} "
                f"Valid samplers: {', '.join(valid)}."
            )
        return name

    def initial_state(self, mu: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The state at t = 1: μ for pinned bridges; (a+b)·μ + c·z for unpinned ones with π = one.

        With π = residual the noise at t = 1 would need x0 − μ, which is unknown: the start is noise-free.
        """
        a, b, c = self._coef(torch.ones(mu.shape[0], dtype=F64), mu)
        x = (a + b) * mu
        if self.pi == "one" and bool((c != 0).any()):
            x = x + c * torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return x

    def x0_hat(self, model, x, mu, t) -> torch.Tensor:
        """Call the model and convert its output to x̂0 (clipped to [-1, 1] if `clip_x0`)."""
        x0 = self.predict_x0(model(x, mu, t), x, mu, t)
        return x0.clamp(-1, 1) if self.options["clip_x0"] else x0

    @torch.no_grad()
    def sample(self, model, mu, nfe=None, sampler=None, generator=None, return_trajectory=False):
        """Restore μ: run `sampler` (default: the official one) over `timesteps(nfe, sampler)`.

        Returns x̂ (shape of μ), or (x̂, Trajectory) if `return_trajectory`.
        """
        name = self._check_sampler(sampler)
        step = getattr(self, f"_step_{name.replace('-', '_')}")
        grid = self.timesteps(nfe, name)
        calls = [0]

        def counted(*args):
            calls[0] += 1
            return model(*args)

        x = self.initial_state(mu, generator)
        states, preds = [x], []
        for t, s in zip(grid[:-1], grid[1:]):
            tb = torch.full((mu.shape[0],), float(t), dtype=mu.dtype, device=mu.device)
            sb = torch.full((mu.shape[0],), float(s), dtype=mu.dtype, device=mu.device)
            x, x0 = step(counted, x, mu, tb, sb, generator)
            if return_trajectory:
                states.append(x)
                preds.append(x0)
        if not return_trajectory:
            return x
        return x, Trajectory(grid, torch.stack(states), torch.stack(preds), calls[0])

    @sampler(deterministic=True)
    def _step_ddim(self, model, x, mu, t, s, generator=None):
        """Deterministic DDIM (η = 0): x_s = a_s·x̂0 + b_s·μ + (c_s/c_t)·(x_t − a_t·x̂0 − b_t·μ); c_t = 0 → ratio 0."""
        x0 = self.x0_hat(model, x, mu, t)
        a_t, b_t, c_t = self._coef(t, x)
        a_s, b_s, c_s = self._coef(s, x)
        ratio = safe_div(c_s, c_t, 0.0)
        return a_s * x0 + b_s * mu + ratio * (x - a_t * x0 - b_t * mu), x0

    # ------------------------------------------------------------------ description
    def describe(self) -> dict:
        """What `bridgezoo list` shows: name, paper, defaults, samplers, relation."""
        return {
            "name": self.name,
            "summary": self.summary,
            "paper": self.paper,
            "T": self.options.get("T"),
            "default_nfe": self.default_nfe,
            "objective": self.objective,
            "pi": self.pi,
            "samplers": list(self.samplers),
            "relation": self.relation,
            "options": dict(self.options),
        }

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.options.items() if v != type(self)._options[k].default}
        return f"{type(self).__name__}(name={self.name!r}, {', '.join(f'{k}={v!r}' for k, v in changed.items())})"


class DifferenceInput(torch.nn.Module):
    """Feeds the network [x_t − μ, μ] instead of [x_t, μ] (IR-SDE / GOUB's official input order)."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x_t, mu, t):
        return self.network(x_t - mu, mu, t)


class IRSDEClock:
    """Mixin for the bridges on IR-SDE's cosine clock (IR-SDE, GOUB): the `eps` option (S = −ln eps), the clock
    built from `T` and `eps` (`schedules.irsde_clock`: sets `clock`, `thetas`, `dt`), and the official network input
    [x_t − μ, μ] as the `difference_input` option. Put it before the Bridge base: `class X(IRSDEClock, SDEBridge)`."""

    option_spec = {
        "eps": Option(0.005, "e^{-S}: the schedule is scaled so that θ̄_{0:1} = −ln(eps)"),
        "difference_input": Option(False, "feed the network [x_t − μ, μ] (the official ConditionalUNet) instead of [x_t, μ]"),
    }

    def setup_clock(self) -> None:
        from .schedules import irsde_clock

        if self.options["T"] < 1 or not 0 < self.options["eps"] < 1:
            raise OptionError(f"bridge {self.name!r}: need T >= 1 and 0 < eps < 1, got T={self.options['T']}, "
                              f"eps={self.options['eps']}")
        self.clock, self.thetas, self.dt = irsde_clock(self.options["T"], self.options["eps"])

    def wrap(self, network):
        return DifferenceInput(network) if self.options["difference_input"] else network


class SDEBridge(Bridge):
    """A bridge defined by a forward SDE dx = f(x, μ, t)·dt + g(t)·π⊙dw (t the bridge time).

    Subclasses implement `drift(x, mu, t)` and `diffusion_sq(t)` (g², per unit t, for π = 1). This adds the
    reverse-time samplers and the "maximum-likelihood" loss of IR-SDE / GOUB, written once for all of them.
    The score enters only as g²·∇log q = −g²·(x − a·x̂0 − b·μ)/c² (π cancels); where c_t = 0 (a pinned end)
    the score term is taken as 0, which is what the official codes do at t = T.
    """

    option_spec = {
        "T": Option(100, "number of official discrete steps (index ↔ t documented by the plugin)"),
        "loss_type": Option(
            "ml", "ml: L1 to the posterior mean of one reverse step (official); l1 / l2: on the target", ("ml", "l1", "l2")
        ),
    }

    def drift(self, x, mu, t) -> torch.Tensor:
        """Forward drift per unit of `clock_increment` at time t."""
        raise NotImplementedError

    def diffusion_sq(self, t) -> torch.Tensor:
        """g² per unit of `clock_increment` at time t, for π = 1 (shape [B, 1, 1, 1])."""
        raise NotImplementedError

    def clock_increment(self, t, s) -> torch.Tensor:
        """The SDE's time elapsed between s < t (shape [B, 1, 1, 1], float64): θ̄_{s:t} = clock(t) − clock(s) for a
        bridge with a `clock` (over one official step exactly θ_i, or θ_i·dt for IR-SDE / GOUB), else t − s."""
        tt, ss = (v.detach().cpu().to(F64) for v in (t, s))
        clock = getattr(self, "clock", None)
        return (clock(tt) - clock(ss) if clock is not None else tt - ss).reshape(-1, 1, 1, 1)

    def _score_term(self, x, mu, x0, t):
        """g²(t)·∇log q(x_t | x̂0, μ), without π (it cancels); 0 where c_t = 0."""
        a, b, c = self._coef(t, x)
        g2 = self.diffusion_sq(t).to(x)
        return -g2 * safe_div(x - a * x0 - b * mu, (c * c).expand_as(x), 0.0)

    def _reverse_mean(self, x, mu, x0, t, s, ode_half: bool = False):
        """One Euler step of the reverse SDE from t to s < t, without noise: x − [f − g²·score]·Δ."""
        dt = self.clock_increment(t, s).to(x)
        k = 0.5 if ode_half else 1.0
        return x - (self.drift(x, mu, t) - k * self._score_term(x, mu, x0, t)) * dt

    def _noise(self, x, mu, x0, t, s, generator):
        dt = self.clock_increment(t, s).to(x)
        g = (self.diffusion_sq(t).to(x) * dt).sqrt()
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return g * self.pi_field(x0, mu) * z

    @sampler(deterministic=False)
    def _step_reverse_sde(self, model, x, mu, t, s, generator=None):
        """Euler–Maruyama on the reverse SDE (IR-SDE / GOUB `reverse_sde`), noise g·√Δt·π̂·z, π̂ = π(x̂0, μ)."""
        x0 = self.predict_x0(model(x, mu, t), x, mu, t)
        return self._reverse_mean(x, mu, x0, t, s) + self._noise(x, mu, x0, t, s, generator), x0

    @sampler(deterministic=True, oracle_exact=False)
    def _step_mean_ode(self, model, x, mu, t, s, generator=None):
        """GOUB's `reverse_mean_ode`: the reverse-SDE step without noise (not the probability-flow ODE: no ½)."""
        x0 = self.predict_x0(model(x, mu, t), x, mu, t)
        return self._reverse_mean(x, mu, x0, t, s), x0

    @sampler(deterministic=True, oracle_exact=False)
    def _step_reverse_ode(self, model, x, mu, t, s, generator=None):
        """Probability-flow ODE, Euler: x − [f − ½·g²·score]·Δt (IR-SDE `reverse_ode`)."""
        x0 = self.predict_x0(model(x, mu, t), x, mu, t)
        return self._reverse_mean(x, mu, x0, t, s, ode_half=True), x0

    @sampler(deterministic=False)
    def _step_posterior(self, model, x, mu, t, s, generator=None):
        """Ancestral step x_s ~ q(x_s | x_t, x̂0): posterior mean + posterior std·π̂·z (IR-SDE `posterior`)."""
        x0 = self.x0_hat(model, x, mu, t)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return self.posterior_mean(x, x0, mu, t, s) + self.posterior_std(x, t, s) * self.pi_field(x0, mu) * z, x0

    def posterior_std(self, like, t, s) -> torch.Tensor:
        """Std of q(x_s | x_t, x0) for π = 1: sqrt(c_t² − c_s²·f_m²)·c_s/c_t (IR-SDE: λ·sqrt((1−A²)(1−C²)/(1−B²)))."""
        a_t, _, c_t = self._coef(t, like)
        a_s, _, c_s = self._coef(s, like)
        v = (c_t**2 - c_s**2 * (a_t / a_s) ** 2).clamp_min(0)
        return safe_div(v.sqrt() * c_s, c_t, 0.0)

    def posterior_mean(self, x_t, x0, mu, t, s) -> torch.Tensor:
        """Mean of q(x_s | x_t, x0, μ) for the Markov chain implied by the marginals (s < t).

        With f_m = a_t/a_s, f_n = b_t − b_s·f_m, v = c_t² − c_s²·f_m²:
        [c_s²·f_m·(x_t − f_n·μ) + v·(a_s·x0 + b_s·μ)]/c_t²  (GOUB sde_utils.py L189-206; IR-SDE L197-205).
        π cancels for any non-zero π.
        """
        a_t, b_t, c_t = self._coef(t, x_t)
        a_s, b_s, c_s = self._coef(s, x_t)
        f_m = a_t / a_s
        f_n = b_t - b_s * f_m
        v = c_t**2 - c_s**2 * f_m**2
        # where c_t = 0 (a pinned end, x_t = μ) the posterior is the marginal at s: mean a_s·x0 + b_s·μ
        w_t = safe_div(c_s**2 * f_m, c_t**2, 0.0)
        w_0 = safe_div(v, c_t**2, 1.0)
        return w_t * (x_t - f_n * mu) + w_0 * (a_s * x0 + b_s * mu)

    def loss(self, output, x0, mu, x_t, t):
        """loss_type `ml`: L1 between the one-step reverse prediction and the posterior mean (IR-SDE / GOUB)."""
        if self.options["loss_type"] != "ml":
            return super().loss(output, x0, mu, x_t, t)
        s = (t - 1.0 / self.options["T"]).clamp_min(0)
        x0_hat = self.predict_x0(output, x_t, mu, t)
        pred = self._reverse_mean(x_t, mu, x0_hat, t, s)
        return (pred - self.posterior_mean(x_t, x0, mu, t, s)).abs().mean()
