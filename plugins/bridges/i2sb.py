"""I2SB — Image-to-Image Schrödinger Bridge (Liu et al., ICML 2023; code NVlabs/I2SB @ 1ffdfaaf).

Schedule (`i2sb/runner.py` L58-63, L81-82; options `train.py` L59-62): T = `interval` = 1000 betas
β_n = linspace(1e-4^½, (beta_max/T)^½, T)², beta_max = 0.3, of which the first T/2 are kept and mirrored,
β = [β_0..β_{T/2−1}, β_{T/2−1}..β_0] (symmetric). σ_f²[n] = Σ_{j≤n} β_j and σ_b²[n] = Σ_{j≥n} β_j
(`i2sb/diffusion.py` L33-34). Time: official step n ∈ 0..T−1 ↔ t = (n+1)/T, and the clock F(t) (piecewise
linear, F(0) = 0) has F((n+1)/T) = σ_f²[n] exactly; S = F(1) = Σβ.

Marginal (paper Eq. 11; diffusion.py L17-25, L51-64): the Brownian bridge on the clock F,
    a = 1 − F/S,  b = F/S,  c = sqrt(F·(S − F)/S),  π = 1,
pinned at both ends, S = 0.141027. The code's σ_b²[n] counts β_n a second time (σ_f² + σ_b² = S + β_n), so
its table differs from the bridge by at most 7.8e-4 in a and 0.01 in c, the latter at n = T−1, where the code
is not pinned (a = 7.1e-4, c = 0.01) although its sampler starts at x_1 = μ exactly; here the paper's bridge,
pinned, is used (σ_f is the code's exactly).

Objective (runner.py L102-113, L173-185): the network predicts (x_t − x0)/σ_f, σ_f = sqrt(F), with an unweighted
MSE. bridgezoo: objective `xt_minus_x0` with `wrap` multiplying the network's output by σ_f (the inverse of the
official label scaling, like DDBM's c_out) and the L2 loss weighted by 1/σ_f², which is the official MSE on the
official label exactly. With another objective the network predicts that objective directly (no scaling).
Training t: the official steps, n ~ U{0..T−1} (L173).

Sampler (diffusion.py L66-114, runner.py L220-257): ancestral steps from x_1 = μ with the DDPM posterior of the
Brownian clock, p(x_s | x_t, x̂0) = N(((F_t − F_s)·x̂0 + F_s·x_t)/F_t, F_s(F_t − F_s)/F_t) — exactly this bridge's
Markov posterior, so it is the shared `posterior` sampler — over the official step list `space_indices(T, NFE+1)`
(util.py L86-100: round(k·(T−1)/NFE), Python rounding, accumulated in floats). Default NFE = T − 1 = 999
(sample.py L140). The official loop ends on step n = 0 with the noise-free posterior mean, whose σ_f = 0.01;
here that last step is taken to t = 0 (x̂0 itself), so the grid is the official list with its final n = 0 moved
to the clean end. `--ot-ode` (no noise in q_sample nor in the posterior, L62-63, L77-78) is `pi="zero"`.
`--clip-denoise` is off by default in the code (README: "insensitive"); `clip_x0=True` here as for every bridge
(the fair-comparison default), `clip_x0=False` is the official behaviour.

Conditioning: the official network sees x_t alone unless `--cond-x1` (then [x_t, x1], network.py L47-53); a
bridgezoo backbone always sees [x_t, μ].
Relation: the θ → 0 limit of the generalized bridge with θ̄_{0:t}/θ̄_{0:1} = F(t)/S and 2λ·θ̄_{0:1} = S.
"""

import torch

from bridgezoo import Bridge, Option, hookimpl
from bridgezoo.bridge import F64, Preconditioned
from bridgezoo.devices import as_float64
from bridgezoo.errors import OptionError
from bridgezoo.schedules import inclusive_clock


def i2sb_betas(T: int = 1000, beta_max: float = 0.3) -> torch.Tensor:
    """The official symmetric β_0..β_{T−1} (float64): sqrt-linear from 1e-4 to beta_max/T, first half mirrored."""
    betas = torch.linspace(1e-4**0.5, (beta_max / T) ** 0.5, T, dtype=F64) ** 2
    half = betas[: T // 2]
    return torch.cat([half, half.flip(0)])


def space_indices(num_steps: int, count: int) -> list[int]:
    """The official step list (I2SB `i2sb/util.py` L86-100): `count` indices from 0 to num_steps − 1, evenly spaced,
    each the Python `round` of a float accumulated stride by stride."""
    stride = 1 if count <= 1 else (num_steps - 1) / (count - 1)
    out, position = [], 0.0
    for _ in range(count):
        out.append(round(position))
        position += stride
    return out


class I2SB(Bridge):
    paper = "I2SB: Image-to-Image Schrödinger Bridge, Liu et al., ICML 2023"
    summary = "Schrödinger bridge between x0 and μ: a Brownian bridge on the symmetric β clock, DDPM posterior"
    default_nfe = 999
    official_samplers = ("posterior", "ddim")
    option_spec = {
        "T": Option(1000, "`interval`: number of official steps (even); step n ↔ t = (n+1)/T"),
        "beta_max": Option(0.3, "β at the middle of the schedule times T (official --beta-max; 1.0 for deblurring "
                                "and inpainting)"),
    }
    option_defaults = {"pi": "one", "objective": "xt_minus_x0", "loss_type": "l2"}

    def setup(self):
        T = self.options["T"]
        if T < 2 or T % 2:
            raise OptionError(f"bridge {self.name!r}: T must be an even number >= 2 (the schedule mirrors its first "
                              f"half), got {T}")
        if self.options["beta_max"] <= 0:
            raise OptionError(f"bridge {self.name!r}: beta_max must be > 0, got {self.options['beta_max']}")
        self.clock = inclusive_clock(i2sb_betas(T, self.options["beta_max"]), f"i2sb(T={T})")
        self.default_nfe = T - 1  # sample.py L140: `opt.nfe or interval − 1`

    def schedule(self, t):
        F, S = self.clock(t), self.clock.total
        return 1 - F / S, F / S, (F * (S - F) / S).clamp_min(0).sqrt()

    def sigma_f(self, t) -> torch.Tensor:
        """σ_f(t) = sqrt(F(t)), float64, shape of t: the official `std_fwd` at t = (n+1)/T."""
        return self.clock(as_float64(t)).clamp_min(0).sqrt()

    def wrap(self, network):
        """For `xt_minus_x0`: σ_f(t)·network, a network trained on (x_t − x0)/σ_f seen as x_t − x0."""
        if self.objective != "xt_minus_x0":
            return network
        return Preconditioned(network, lambda t: (1.0, 0.0, self.sigma_f(t).reshape(-1, 1, 1, 1), 1.0))

    def loss_weight(self, t):
        """1/σ_f² (l2) or 1/σ_f (l1) for the `xt_minus_x0` objective: the loss on the official label (x_t − x0)/σ_f
        (the official one is the MSE), else none; t is floored at the first official step 1/T, below which
        training never goes (σ_f(0) = 0)."""
        if self.objective != "xt_minus_x0":
            return None
        t = as_float64(t).clamp_min(1 / self.options["T"])
        power = 2 if self.options["loss_type"] == "l2" else 1
        return 1 / self.sigma_f(t).flatten() ** power

    def grid(self, nfe: int) -> torch.Tensor:
        """The official `space_indices(T, nfe+1)` reversed, step n ↔ t = (n+1)/T, its final n = 0 moved to t = 0."""
        T = self.options["T"]
        if not 0 < nfe < T:
            raise OptionError(f"bridge {self.name!r}: NFE must be in 1..{T - 1} (the official step list has at most "
                              f"T = {T} points), got {nfe}")
        steps = torch.tensor(space_indices(T, nfe + 1), dtype=F64).flip(0)
        grid = (steps + 1) / T
        grid[-1] = 0.0
        return grid

    @property
    def relation(self) -> dict:
        S = self.clock.total
        return {"kind": "limit", "theta": "θ → 0 with θ̄_{0:t}/θ̄_{0:1} = F(t)/S", "lam": f"S/(2·θ̄_{{0:1}}) = {S / 2:.6g}/θ̄",
                "pi": self.pi, "note": f"Brownian bridge on the clock F = σ_f² (S = {S:.6g}); docs/bridges.md, i2sb"}


@hookimpl
def register_bridges(register):
    register(I2SB, name="i2sb", summary=I2SB.summary)
