"""Bridges given by a forward SDE, and what IR-SDE, GOUB and RDBM share: the reverse-time samplers of IR-SDE /
GOUB (`reverse_sde`, `mean_ode`, `reverse_ode`), their "maximum-likelihood" loss, the IR-SDE cosine clock, and the
official network input [x_t − μ, μ].

A shared plugin-side module (default plugin `sde`): its samplers are offered to every `SDEBridge`.
Official code: Algolzw/image-restoration-sde `codes/utils/sde_utils.py` @ 2598d73c (IRSDE, L80-361) and
Hammour-steak/GOUB `codes/utils/sde_utils.py` @ 895876ea; line numbers in docs/bridges.md, "goub" and "irsde".
"""

from __future__ import annotations

import math

import torch

from bridgezoo import Option, Sampler, hookimpl
from bridgezoo.bridge import F64, Bridge, safe_div
from bridgezoo.devices import as_float64, cast_like, float64_device
from bridgezoo.errors import OptionError
from bridgezoo.generalized import GeneralizedBridge
from bridgezoo.schedules import Clock
from bridgezoo.seeding import randn


# ----------------------------------------------------------------------------------------------- the clock
def irsde_cosine_thetas(T: int, s: float = 0.008) -> torch.Tensor:
    """IR-SDE / GOUB cosine θ_i = 1 − ᾱ_{i+1}, i = 0..T (T+1 values), with N = T+2 and ᾱ_k = cos²((k/N + s)/(1+s)·π/2)/ᾱ_0.

    Algolzw/image-restoration-sde codes/utils/sde_utils.py L110-121; Hammour-steak/GOUB sde_utils.py L100-111.
    Note these are 1 − ᾱ (cumulative), not betas.
    """
    N = T + 2
    k = torch.arange(N + 1, dtype=F64)
    abar = torch.cos((k / N + s) / (1 + s) * math.pi / 2) ** 2
    abar = abar / abar[0]
    return 1 - abar[1:-1]


def irsde_clock(T: int, eps: float = 0.005) -> tuple[Clock, torch.Tensor, float]:
    """IR-SDE / GOUB clock s_i = (Σ_{j≤i} θ_j − θ_0)·dt at t = i/T, dt = −ln(eps)/θ̄_T, so S = −ln(eps).

    Returns (clock, thetas, dt); the official step i (1..T) is the clock interval ((i−1)/T, i/T], whose
    increment is θ_i·dt.
    """
    thetas = irsde_cosine_thetas(T)
    cum = torch.cumsum(thetas, 0) - thetas[0]
    dt = -math.log(eps) / float(cum[-1])
    return Clock(cum * dt, f"irsde-cosine(T={T})"), thetas, dt


class DifferenceInput(torch.nn.Module):
    """Feeds the network [x_t − μ, μ] instead of [x_t, μ] (IR-SDE / GOUB's official input order)."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, x_t, mu, t):
        return self.network(x_t - mu, mu, t)


class IRSDEClock:
    """Mixin for the bridges on IR-SDE's cosine clock (IR-SDE, GOUB): the `eps` option (S = −ln eps), the clock
    built from `T` and `eps` (`irsde_clock`: sets `clock`, `thetas`, `dt`), and the official network input
    [x_t − μ, μ] as the `difference_input` option. Put it before the Bridge base: `class X(IRSDEClock, SDEBridge)`."""

    option_spec = {
        "eps": Option(0.005, "e^{-S}: the schedule is scaled so that θ̄_{0:1} = −ln(eps)"),
        "difference_input": Option(False, "feed the network [x_t − μ, μ] (the official ConditionalUNet) instead of [x_t, μ]"),
    }

    def setup_clock(self) -> None:
        if self.options["T"] < 1 or not 0 < self.options["eps"] < 1:
            raise OptionError(f"bridge {self.name!r}: need T >= 1 and 0 < eps < 1, got T={self.options['T']}, "
                              f"eps={self.options['eps']}")
        self.clock, self.thetas, self.dt = irsde_clock(self.options["T"], self.options["eps"])

    def wrap(self, network):
        return DifferenceInput(network) if self.options["difference_input"] else network


# ----------------------------------------------------------------------------------------------- SDE bridges
class SDEBridge(Bridge):
    """A bridge defined by a forward SDE dx = f(x, μ, t)·dt + g(t)·π⊙dw (t the bridge time).

    Subclasses implement `drift(x, mu, t)` and `diffusion_sq(t)` (g², per unit of `clock_increment`, for π = 1).
    This adds the "maximum-likelihood" loss of IR-SDE / GOUB; the reverse-time samplers below apply to it.
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
        tt, ss = (as_float64(v) for v in (t, s))
        clock = getattr(self, "clock", None)
        return (clock(tt) - clock(ss) if clock is not None else tt - ss).reshape(-1, 1, 1, 1)

    def score_term(self, x, mu, x0, t):
        """g²(t)·∇log q(x_t | x̂0, μ), without π (it cancels); 0 where c_t = 0."""
        a, b, c = self.coefficients(t, x)
        g2 = cast_like(self.diffusion_sq(t), x)
        return -g2 * safe_div(x - a * x0 - b * mu, (c * c).expand_as(x), 0.0)

    def reverse_mean(self, x, mu, x0, t, s, ode_half: bool = False):
        """One Euler step of the reverse SDE from t to s < t, without noise: x − [f − g²·score]·Δ (½·g² if ode_half)."""
        dt = cast_like(self.clock_increment(t, s), x)
        k = 0.5 if ode_half else 1.0
        return x - (self.drift(x, mu, t) - k * self.score_term(x, mu, x0, t)) * dt

    def reverse_noise(self, x, mu, x0, t, s, generator):
        """g·√Δ·π̂·z, the noise of one Euler–Maruyama step of the reverse SDE."""
        dt = cast_like(self.clock_increment(t, s), x)
        g = (cast_like(self.diffusion_sq(t), x) * dt).sqrt()
        z = randn(x.shape, generator, device=x.device, dtype=x.dtype)
        return g * self.pi_field(x0, mu) * z

    def loss(self, output, x0, mu, x_t, t):
        """loss_type `ml`: L1 between the one-step reverse prediction and the posterior mean (IR-SDE / GOUB,
        denoising_model.py L127-145)."""
        if self.options["loss_type"] != "ml":
            return super().loss(output, x0, mu, x_t, t)
        s = (t - 1.0 / self.options["T"]).clamp_min(0)
        x0_hat = self.predict_x0(output, x_t, mu, t)
        pred = self.reverse_mean(x_t, mu, x0_hat, t, s)
        return (pred - self.posterior_mean(x_t, x0, mu, t, s)).abs().mean()


class GeneralizedSDEBridge(SDEBridge, GeneralizedBridge):
    """The generalized bridge with its SDE, written on the clock: per unit of θ̄, drift coth(θ̄_{t:1})·(μ − x)
    and g² = 2λ (π = 1) (RDBM paper; GOUB sde_utils.py L223-229)."""

    def drift(self, x, mu, t):
        """coth(θ̄_{t:1})·(μ − x) = OU part + h-term, with h = 0 where θ̄_{t:1} = 0 (GOUB's rule at t = T)."""
        u = self.clock.total - self.clock(as_float64(t))
        h = torch.where(u > 0, 2 / torch.expm1(2 * u.clamp_min(1e-300)), torch.zeros_like(u))
        return cast_like((1 + h).reshape(-1, 1, 1, 1), x) * (mu - x)

    def diffusion_sq(self, t):
        return torch.full((t.shape[0], 1, 1, 1), 2 * self.lam, dtype=F64, device=float64_device(t.device))


# ----------------------------------------------------------------------------------------------- samplers
class SDESampler(Sampler):
    """Base of the reverse-time samplers of an `SDEBridge`; they use the raw x̂0 (the official codes use the
    network's noise prediction in the score, unclipped)."""

    @classmethod
    def applies_to(cls, bridge) -> bool:
        return isinstance(bridge, SDEBridge)


class ReverseSDE(SDESampler):
    """Euler–Maruyama on the reverse SDE (IR-SDE / GOUB `reverse_sde`; GOUB sde_utils.py L299-314), noise
    g·√Δt·π̂·z, π̂ = π(x̂0, μ)."""

    summary = "Euler–Maruyama on the method's own reverse SDE (IR-SDE / GOUB reverse_sde)"
    paper = "IR-SDE (Luo et al., ICML 2023) and GOUB (Yue et al., ICML 2024) official samplers"
    deterministic = False

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.predict_x0(model(x, mu, t), x, mu, t)
        return bridge.reverse_mean(x, mu, x0, t, s) + bridge.reverse_noise(x, mu, x0, t, s, generator), x0


class MeanODE(SDESampler):
    """GOUB's `reverse_mean_ode` (sde_utils.py L316-331): the reverse-SDE step without noise (not the
    probability-flow ODE: no ½)."""

    summary = "the reverse-SDE step without noise (GOUB mean-ODE; not the probability-flow ODE)"
    paper = "GOUB, Yue et al., ICML 2024 (official reverse_mean_ode)"
    oracle_exact = False

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.predict_x0(model(x, mu, t), x, mu, t)
        return bridge.reverse_mean(x, mu, x0, t, s), x0


class ReverseODE(SDESampler):
    """Probability-flow ODE, Euler: x − [f − ½·g²·score]·Δt (IR-SDE `reverse_ode`, L252-282)."""

    summary = "Euler on the method's probability-flow ODE (IR-SDE reverse_ode)"
    paper = "IR-SDE, Luo et al., ICML 2023 (official reverse_ode)"
    oracle_exact = False

    def step(self, bridge, model, x, mu, t, s, generator=None):
        x0 = bridge.predict_x0(model(x, mu, t), x, mu, t)
        return bridge.reverse_mean(x, mu, x0, t, s, ode_half=True), x0


@hookimpl
def register_samplers(register):
    register(ReverseSDE, name="reverse_sde")
    register(MeanODE, name="mean_ode")
    register(ReverseODE, name="reverse_ode")
