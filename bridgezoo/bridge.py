"""The Bridge base class: the path x_t = a(t)·x0 + b(t)·μ + c(t)·π(x0, μ)⊙ε, its options and π modes, the
objectives (through `objectives.OBJECTIVE_TABLE`), the training-time distribution and loss, and the two-time
Markov transition that ancestral samplers use. How to sample is not here: samplers are objects of their own
(`samplers.py`), registered like bridges; `sample` runs the one named.

t ∈ [0, 1], t = 0 the clean end (docs/design.md, "One idea"). A plugin subclasses `Bridge` and implements
`schedule(t)`; its optional hooks are `grid(nfe)` (sampling times) and `train_times()`.
Images are NCHW in [-1, 1]; t is a float tensor of shape [B] (or a scalar).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .devices import PerDevice, as_float64, cast_like, moved
from .errors import OptionError
from .lookup import sampler_source
from .objectives import OBJECTIVE_TABLE, OBJECTIVES, safe_div  # noqa: F401 - OBJECTIVES and safe_div are API
from .options import AUXILIARY_PI_MODES, PI_MODES, Option, merged_options, resolve_options  # noqa: F401 - API
from .samplers import Sampler, SamplerInfo, Trajectory, run_sampler  # noqa: F401 - re-exported
from .seeding import randn

F64 = torch.float64
RENAMED_HOOKS = {"_coefficients": "schedule", "_grid": "grid", "_train_times": "train_times"}  # old: new


@dataclass(frozen=True)
class Auxiliary:
    """An auxiliary network a bridge declares (`Bridge.auxiliary`): `bridgezoo run` trains it first (stage 1) with
    `loss`, saves it in the run directory (`auxiliary.safetensors`, and inside `model.safetensors`), freezes it and
    hands it to the bridge (`Bridge.attach_auxiliary`) before training the bridge's own network (stage 2).

    `loss(network, x0, mu, generator)` → scalar, with `generator` as in `Bridge.training_loss` (one per sample);
    `iters`: stage-1 optimizer steps (None: the run's --iters); `backbone`: the registered backbone to build it
    from (None: the run's --backbone with its --backbone-opt), with `out_channels` output channels for 3-channel
    images. Its optimizer, learning-rate schedule, batch, gradient clipping and mixed precision are the run's; the
    trained weights (not an EMA) are what the bridge gets."""

    loss: Callable
    iters: int | None = None
    backbone: str | None = None
    out_channels: int = 3


class Preconditioned(torch.nn.Module):
    """model(x_t, μ, t) = c_skip·x_t + c_out·network(c_in·x_t, c_cond·μ, t): a network wrapped in a bridge's input
    and output scalings (DDBM's Karras preconditioning, I2SB's label scale σ_f, ResShift's input normalization).
    `scalings(t)` → (c_in, c_skip, c_out, c_cond), each a number or a tensor broadcastable against NCHW, computed
    from float64 t on t's device (`devices.as_float64`). The wrapped network is `.network`, so saved weights are the
    network's own."""

    def __init__(self, network: Callable, scalings: Callable):
        super().__init__()
        self.network, self.scalings = network, scalings

    def forward(self, x_t, mu, t):
        c_in, c_skip, c_out, c_cond = (_scaling(v, x_t) for v in self.scalings(as_float64(t)))
        return c_skip * x_t + c_out * self.network(c_in * x_t, c_cond * mu, t)


def _scaling(v, x: torch.Tensor) -> torch.Tensor:
    """A scaling (a number or a tensor) as a tensor in x's dtype on x's device, with no host→device copy: a number
    is filled in there (rounded through the default dtype, exactly as `torch.as_tensor(v).to(x)`)."""
    if isinstance(v, torch.Tensor):
        return cast_like(v, x)
    return torch.full((), v, dtype=torch.get_default_dtype(), device=x.device).to(x.dtype)


def per_image(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A per-time value v (t's shape, or broadcastable to it) as shape t.shape + (1, 1, 1), broadcastable against
    NCHW images (a 0-d t stays 0-d)."""
    v = v.expand(t.shape) if v.shape != t.shape else v
    return v.reshape(*t.shape, 1, 1, 1) if t.dim() >= 1 else v


class DegenerateBridgeWarning(UserWarning):
    """A valid but degenerate combination of options (the run would teach the network nothing)."""


class Bridge:
    """Base class of every bridge. Subclasses set the class attributes below and implement `schedule`.

    Class attributes: `paper` (citation), `summary` (one line), `default_nfe`, `official_samplers` (the method's
    own samplers by name, first = its default; they may be shared ones, e.g. "ddim"), `option_spec` (new
    options), `option_defaults` (overridden defaults of inherited options), `pinned` (x_1 = μ exactly), `markov`
    (the marginals are those of a Markov process given (x0, μ), so `transition` is valid: c/a non-decreasing in t),
    `undefined` (option values the method does not define, each with the reason: {option: {value: why}}; choosing
    one raises OptionError with that reason, and the contract tests check that instead of the case), `time_inputs`
    (how many times the network takes: 1, t of shape [B]; 2 for a two-time model such as MeanFlow, t of shape
    [B, 2]; the runner builds the backbone with `backbone_options`), `unsupported_samplers` (shared samplers that
    do not apply to the method, each with the reason; asking for one raises OptionError with it). A bridge that
    needs a trained auxiliary network (UDBM's uncertainty estimator) returns it from `auxiliary()`.
    """

    name: str = ""
    paper: str = ""
    summary: str = ""
    default_nfe: int = 10
    official_samplers: tuple[str, ...] = ("ddim",)
    pinned: bool = True
    markov: bool = True
    undefined: dict[str, dict[Any, str]] = {}
    time_inputs: int = 1
    unsupported_samplers: dict[str, str] = {}
    option_spec: dict[str, Option] = {
        "pi": Option("one", "noise modulation π: zero (no noise), one (classic), residual (x0 − μ)", PI_MODES),
        "objective": Option("x0", "what the network predicts", OBJECTIVES),
        "loss_type": Option("l1", "distance between output and target", ("l1", "l2")),
        "clip_x0": Option(True, "clip x̂0 to [-1, 1] inside the samplers"),
    }
    option_defaults: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for old, new in RENAMED_HOOKS.items():  # a plugin written before the hooks were public still works
            if old in cls.__dict__ and new not in cls.__dict__:
                warnings.warn(f"bridge class {cls.__qualname__}: the hook {old} is now named {new}; rename it",
                              DeprecationWarning, stacklevel=2)
                setattr(cls, new, cls.__dict__[old])
        cls._options = merged_options(cls)

    def __init__(self, **options):
        label = self.name or type(self).__name__
        if options.get("pi") in AUXILIARY_PI_MODES and options["pi"] not in (type(self)._options["pi"].choices or ()):
            raise OptionError(f"bridge {label!r}: pi={options['pi']!r} is a field computed by an auxiliary network, "
                              f"which this bridge does not declare (udbm does); choose pi from "
                              f"{', '.join(type(self)._options['pi'].choices)}")
        self.options: dict[str, Any] = resolve_options(options, type(self)._options, f"bridge {label!r}")
        for key, reasons in type(self).undefined.items():
            if self.options.get(key) in reasons:
                raise OptionError(f"bridge {label!r}: {key}={self.options[key]!r} is not defined for this method: "
                                  f"{reasons[self.options[key]]}")
        self.setup()
        if self.options.get("pi") == "zero" and self.options.get("objective") == "noise":
            warnings.warn(
                f"bridge {label!r}: pi='zero' with objective='noise' leaves nothing to learn: x_t carries no noise, "
                "so the noise target is identically 0 and a model that learns it restores μ unchanged. For a "
                "noise-free bridge use objective='x0' (or 'velocity').", DegenerateBridgeWarning, stacklevel=2)

    @classmethod
    def defines(cls, **options) -> bool:
        """Whether the method defines these option values (none of them is in `undefined`)."""
        return not any(key in cls.undefined and value in cls.undefined[key] for key, value in options.items()
                       if isinstance(value, (str, int, float, bool)))

    def backbone_options(self, channels: int = 3) -> dict[str, Any]:
        """What the backbone must be built with for images of `channels` channels: `out_channels`, and
        `time_inputs` where the network takes more than one time (a backbone protocol option,
        `options.BACKBONE_PROTOCOL`)."""
        extra = {"time_inputs": self.time_inputs} if self.time_inputs != 1 else {}
        return {"out_channels": self.out_channels(channels), **extra}

    # ------------------------------------------------------------------ auxiliary network (two-stage methods)
    def auxiliary(self) -> Auxiliary | None:
        """The auxiliary network these options need trained first (stage 1), or None (every one-stage method)."""
        return None

    def attach_auxiliary(self, network: torch.nn.Module) -> None:
        """Take the trained auxiliary network, frozen (eval mode, no gradients); the runner and `load_model` call
        this before the bridge is trained or sampled."""
        network.eval().requires_grad_(False)
        self.auxiliary_network = network

    # ------------------------------------------------------------------ to implement
    def setup(self) -> None:
        """Build tables from `self.options` (called once from __init__)."""

    def schedule(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The path's (a, b, c) at float64 times t, each of t's shape (or broadcastable to it), in torch ops
        differentiable in t (the velocity objective and `coefficient_derivatives` differentiate it). The one
        method a bridge must implement; everything else reads it through `coefficients`."""
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
        return OBJECTIVE_TABLE[self.objective].channels * channels

    def coefficients(self, t, like: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, b, c) at t, each of shape t.shape + (1, 1, 1) (broadcastable against NCHW; [B, 1, 1, 1] for t of
        shape [B]), computed from `schedule` in float64 on the target device (`devices.as_float64`: no host–device
        round trip) and cast there: `like`'s device and dtype when given (the images being noised or sampled),
        else t's device and float dtype. A bridge whose path depends on the images (UDBM's per-pixel path)
        overrides this for `like`."""
        t = torch.as_tensor(t)
        if like is None:
            device, dtype = t.device, (t.dtype if t.is_floating_point() else torch.get_default_dtype())
        else:
            device, dtype = like.device, like.dtype
        t64 = as_float64(t, device)
        return tuple(moved(per_image(v, t64), device, dtype) for v in self.schedule(t64))

    def coefficient_derivatives(self, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(da/dt, db/dt, dc/dt) at t (autograd through `schedule`), shaped like `coefficients`."""
        t = torch.as_tensor(t)
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        with torch.enable_grad():
            tt = as_float64(t).clone().requires_grad_(True)
            out = []
            for v in self.schedule(tt):
                (g,) = torch.autograd.grad(v.sum(), tt, allow_unused=True, retain_graph=True) if v.requires_grad else (None,)
                out.append(torch.zeros_like(tt) if g is None else g)
        return tuple(moved(per_image(v.detach(), t), t.device, dtype) for v in out)

    def host_coefficients(self, t: float, dtype: torch.dtype = F64) -> tuple[float, float, float]:
        """(a, b, c) at one time t as Python floats, computed on the CPU as `coefficients` computes them for data of
        `dtype` (t rounded to it, the coefficients too): what a sampler decides from (a pinned start, the clean end)
        is decided on the host, with no device synchronisation."""
        return tuple(float(v) for v in self.coefficients(torch.full((1,), t, dtype=dtype)))

    def pi_field(self, x0: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """π(x0, μ): 0, 1 or x0 − μ (elementwise), shaped like x0."""
        if self.pi == "zero":
            return torch.zeros_like(x0)
        if self.pi == "one":
            return torch.ones_like(x0)
        return x0 - mu

    def q_sample(self, x0: torch.Tensor, mu: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = a·x0 + b·μ + c·π⊙noise."""
        a, b, c = self.coefficients(t, x0)
        return a * x0 + b * mu + c * self.pi_field(x0, mu) * noise

    # ------------------------------------------------------------------ two-time Markov transition
    def transition(self, t, s, like) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x_t | x_s ~ N(f_m·x_s + f_n·μ, v·π²) for s < t, the Markov chain implied by the marginals (valid where
        `markov`): f_m = a_t/a_s, f_n = b_t − b_s·f_m, v = c_t² − c_s²·f_m². Each [B, 1, 1, 1] in like's dtype."""
        a_t, b_t, c_t = self.coefficients(t, like)
        a_s, b_s, c_s = self.coefficients(s, like)
        f_m = a_t / a_s
        return f_m, b_t - b_s * f_m, c_t**2 - c_s**2 * f_m**2

    def posterior_mean(self, x_t, x0, mu, t, s) -> torch.Tensor:
        """Mean of q(x_s | x_t, x0, μ) for the Markov chain of `transition` (s < t), π cancelling:
        [c_s²·f_m·(x_t − f_n·μ) + v·(a_s·x0 + b_s·μ)]/c_t²; where c_t = 0 (a pinned end, x_t = μ) the marginal
        mean a_s·x0 + b_s·μ (the DDPM posterior, Ho et al. 2020 Eq. 7, written for the bridge)."""
        f_m, f_n, v = self.transition(t, s, x_t)
        _, _, c_t = self.coefficients(t, x_t)
        a_s, b_s, c_s = self.coefficients(s, x_t)
        w_t = safe_div(c_s**2 * f_m, c_t**2, 0.0)
        w_0 = safe_div(v, c_t**2, 1.0)
        return w_t * (x_t - f_n * mu) + w_0 * (a_s * x0 + b_s * mu)

    def posterior_std(self, like, t, s) -> torch.Tensor:
        """Std of q(x_s | x_t, x0) for π = 1: sqrt(v)·c_s/c_t; where c_t = 0 the marginal std c_s."""
        _, _, c_t = self.coefficients(t, like)
        _, _, c_s = self.coefficients(s, like)
        f_m = self.transition(t, s, like)[0]
        v = (c_t**2 - c_s**2 * f_m**2).clamp_min(0)
        return torch.where(c_t == 0, c_s, safe_div(v.sqrt() * c_s, c_t, 0.0))

    # ------------------------------------------------------------------ objectives
    def target(self, x0, mu, x_t, t) -> torch.Tensor:
        """Training target in the objective's space; the noise is the one implied by x_t ((x_t − a·x0 − b·μ)/c)."""
        return OBJECTIVE_TABLE[self.objective].target(self, x0, mu, x_t, t)

    def predict_x0(self, output, x_t, mu, t) -> torch.Tensor:
        """x̂0 from a network output in the objective's space (the exact inverse of `target`); not clipped."""
        return OBJECTIVE_TABLE[self.objective].predict_x0(self, output, x_t, mu, t)

    def wrap(self, network: Callable) -> Callable:
        """The model the samplers and the loss call: `model(x_t, mu, t)` in objective space. Identity by default."""
        return network

    # ------------------------------------------------------------------ training
    def train_times(self) -> torch.Tensor | None:
        """The discrete set of t (float64, shape [K]) the official code trains on, or None for continuous U(0, 1]
        (what `sample_t` draws from; override with the method's own set): for a bridge with a
        `T` option, its official steps k ∈ 0..T−1 ↔ t = (k+1)/T (equivalently i ∈ 1..T ↔ t = i/T)."""
        T = self.options.get("T")
        return None if T is None else torch.arange(1, T + 1, dtype=F64) / T

    def _train_grid(self, device) -> torch.Tensor | None:
        """`train_times()` as float32 on `device`, built once and copied to each device once (None: continuous)."""
        if "_train_grid_copies" not in self.__dict__:
            grid = self.train_times()
            self._train_grid_copies = None if grid is None else PerDevice(grid.to(torch.float32))
        return None if self._train_grid_copies is None else self._train_grid_copies.on(device)

    def sample_t(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """n training times (float32, shape [n], on the generator's device) from the method's training distribution."""
        dev = generator.device if generator is not None else device
        grid = self._train_grid(dev)
        if grid is None:
            u = torch.rand(n, generator=generator, device=dev)
            return (1.0 - u).clamp_min(1e-5)  # (0, 1]
        idx = torch.randint(0, grid.numel(), (n,), generator=generator, device=dev)
        return grid[idx]

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor | None:
        """Per-sample loss weight w(t) (shape [B]), or None for an unweighted loss."""
        return None

    def loss(self, output, x0, mu, x_t, t) -> torch.Tensor:
        """The method's loss, a scalar: mean over pixels of |output − target| (l1) or its square (l2), times w(t)."""
        diff = output - self.target(x0, mu, x_t, t)
        per = diff.abs() if self.options["loss_type"] == "l1" else diff.square()
        per = per.flatten(1).mean(1)
        w = self.loss_weight(t)
        return (per * cast_like(w, per)).mean() if w is not None else per.mean()

    def training_loss(self, model, x0, mu, generator=None) -> torch.Tensor:
        """Sample t and noise, build x_t, call `model(x_t, mu, t)`, return `loss`.

        `generator`: one torch.Generator for the batch, or a sequence of one generator per sample (the runner
        seeds each sample's t and noise by its draw number, so a batch split over N processes is trained with
        exactly the t and noise of the same batch on one process)."""
        t, noise = self.draw_times_and_noise(x0, generator)
        x_t = self.q_sample(x0, mu, t, noise)
        return self.loss(model(x_t, mu, t.to(x0.dtype)), x0, mu, x_t, t)

    def draw_times_and_noise(self, x0, generator=None, times: Callable | None = None):
        """(times, noise) for a training batch: `times(n, generator=, device=)` (default `sample_t`) and ε ~ N(0, I)
        of x0's shape, from one generator or one generator per sample (each sample's draws from its own)."""
        times = times or self.sample_t
        if isinstance(generator, (list, tuple)):
            if len(generator) != x0.shape[0]:
                raise ValueError(f"{len(generator)} generators for a batch of {x0.shape[0]}")
            t = torch.cat([times(1, generator=g, device=x0.device).to(x0.device) for g in generator])
        else:
            t = times(x0.shape[0], generator=generator, device=x0.device).to(x0.device)
        return t, randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)

    # ------------------------------------------------------------------ sampling
    def grid(self, nfe: int) -> torch.Tensor:
        """The bridge's default grid of sampling times, the one shared samplers visit (`Sampler.timesteps`):
        decreasing float64 from 1 to 0, shape [nfe + 1] (default uniform; override with the method's own grid)."""
        return torch.linspace(1.0, 0.0, nfe + 1, dtype=F64)

    def initial_state(self, mu: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The state at t = 1: μ for pinned bridges; (a+b)·μ + c·z for unpinned ones with π = one.

        With π = residual the noise at t = 1 would need x0 − μ, which is unknown: the start is noise-free.
        """
        a, b, c = self.coefficients(torch.ones(mu.shape[0], dtype=F64, device=mu.device), mu)
        x = (a + b) * mu
        if self.pi == "one" and self.host_coefficients(1.0, mu.dtype)[2] != 0:
            x = x + c * randn(mu.shape, generator, device=mu.device, dtype=mu.dtype)
        return x

    def x0_hat(self, model, x, mu, t) -> torch.Tensor:
        """Call the model and convert its output to x̂0 (clipped to [-1, 1] if `clip_x0`)."""
        x0 = self.predict_x0(model(x, mu, t), x, mu, t)
        return x0.clamp(-1, 1) if self.options["clip_x0"] else x0

    @property
    def samplers(self) -> tuple[str, ...]:
        """Every sampler that applies to this bridge: its official ones first (the first is the default), then
        the ones registered for its class, then the shared ones (from the registry, through `lookup`)."""
        return sampler_source().sampler_names(self)

    def get_sampler(self, sampler: "str | Sampler | None" = None) -> Sampler:
        """A sampler instance from a name or `NAME:KEY=VALUE,...` (default: the official one); an instance is
        checked and returned. Unknown names raise an error listing the valid ones."""
        if isinstance(sampler, Sampler):
            if not sampler.applies_to(self):
                raise OptionError(f"bridge {self.name or type(self).__name__!r}: sampler {sampler!r} does not apply to it")
            return sampler
        return sampler_source().make_sampler(self, sampler or self.samplers[0])

    def sampler_info(self, sampler: "str | Sampler | None" = None) -> SamplerInfo:
        return self.get_sampler(sampler).info(self)

    def timesteps(self, nfe: int | None = None, sampler: "str | Sampler | None" = None) -> torch.Tensor:
        """Decreasing float64 grid of t visited by `sampler` (default: the official one) with `nfe` steps."""
        return self.get_sampler(sampler).timesteps(self, nfe or self.default_nfe)

    @torch.no_grad()
    def sample(self, model, mu, nfe=None, sampler=None, generator=None, return_trajectory=False):
        """Restore μ: run `sampler` (a name, `NAME:KEY=VALUE,...`, or a Sampler; default the official one) over its
        grid with `nfe` steps. Returns x̂ (shape of μ), or (x̂, Trajectory) if `return_trajectory`."""
        return run_sampler(self, self.get_sampler(sampler), model, mu, nfe, generator, return_trajectory)

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
