"""MeanFlow — Mean Flows for One-step Generative Modeling (Geng, Deng, Bai, Kolter & He, 2025, arXiv 2505.13447).

The official code is JAX; this follows the paper and the PyTorch port zhuyu-cs/MeanFlow @ 04d183c (`loss.py`,
`meanflow_sampler.py`, `sit.py`), read for facts only. For restoration the flow runs from μ to x0 on fm's straight
path, with the noisy-start variant as π: z_t = (1 − t)·x0 + t·μ + c(t)·π⊙ε, c(t) = σ·t (x_1 = μ + σ·π⊙ε; the
port's generative path (1 − t)·x + t·ε, loss.py L44-48 and L114-118, with ε replaced by μ + σ·ε). π = zero by
default (the deterministic flow from μ, as fm). Because a, b, c are affine in t, the conditional velocity
v = dz_t/dt = μ − x0 + σ·π⊙ε = (z_t − x0)/t is constant along each conditional path.

Network: u(z_t, r, t), the average velocity over [r, t], is a two-time model (`time_inputs = 2`): `wrap` gives the
backbone the times (t, t − r), each with its own embedding, summed (the paper's (t, t − r) conditioning, Table 1;
sit.py L247-255); a one-time call model(z, μ, t) means r = t, where u is the instantaneous velocity v, so every
shared sampler works on x̂0 = z_t − t·v. The objective is `velocity` only (the network predicts u).

Training (the MeanFlow identity u = v − (t − r)·du/dt): (t, r) from two logit-normal(−0.4, 1.0) draws, sorted so
r ≤ t, and r = t for a fraction 1 − `ratio_r_neq_t` (paper default 25% r ≠ t; the port's loss.py L59-82, whose
default is 75%, L14); du/dt = v·∂_z u + ∂_t u by one forward-mode JVP (torch.func.jvp with tangents (v, 1) in
(z, t) and 0 in r, loss.py L207-215); u_tgt = v − (t − r)·du/dt with stop-gradient; the paper's adaptive loss
sg(w)·‖u − u_tgt‖², w = 1/(‖u − u_tgt‖² + c)^p, c = 1e-3, p = 1, the norm summed over pixels (the port squares
‖Δ‖² once more in w, L219-223; the paper's form is used). The returned scalar has that loss's gradient but the
value of the unweighted per-pixel MSE (the adaptive loss is ≈ 1 whatever the model, a useless learning curve).

Sampler `meanflow` (Eq. 12 of the paper, meanflow_sampler.py L31-80): z_s = z_t − (t − s)·u(z_t, s, t) on
linspace(1, 0, NFE + 1), default NFE 1 (z_0 = z_1 − u(z_1, 0, 1)); not clipped. Relation: with π = zero exactly the
generalized bridge with λ = 0 after the time change 1 − t = Θ_τ (as fm); with noise none (c(1) = σ > 0).
"""

import contextlib

import torch
from torch import nn

from bridgezoo import Bridge, Option, Sampler, hookimpl
from bridgezoo.generalized import straight_path_relation
from bridgezoo.objectives import OBJECTIVES
from bridgezoo.precision import eager

PAPER = "Mean Flows for One-step Generative Modeling (MeanFlow), Geng et al., 2025 (arXiv 2505.13447)"


@contextlib.contextmanager
def _frozen_batchnorm_statistics(module: torch.nn.Module):
    """Within the block, every BatchNorm of `module` normalizes with batch statistics and updates no running ones."""
    modules = module.modules() if isinstance(module, nn.Module) else ()  # a plain function has no BatchNorm
    norms = [m for m in modules if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.track_running_stats for m in norms]
    try:
        for m in norms:
            m.track_running_stats = False
        yield
    finally:
        for m, keep in zip(norms, saved):
            m.track_running_stats = keep


def _no_autocast(device_type: str):
    """Autocast switched off on `device_type` inside the block (nothing to switch where it has no autocast)."""
    available = getattr(torch.amp, "is_autocast_available", lambda d: d in ("cpu", "cuda"))
    return torch.autocast(device_type, enabled=False) if available(device_type) else contextlib.nullcontext()


def _math_attention():
    """A context in which scaled_dot_product_attention uses its math kernel (differentiable in forward mode)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def split_times(t):
    """(t, r) from a time tensor of shape [B] (r = t) or [B, 2] (columns t, r)."""
    t = torch.as_tensor(t)
    return (t[..., 0], t[..., 1]) if t.dim() == 2 else (t, t)


class TwoTimeModel(nn.Module):
    """u(z_t, r, t) = network(z_t, μ, [t, t − r]); called with t of shape [B] (r = t) or [B, 2] (t, r)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x_t, mu, t):
        t, r = split_times(t)
        t = t.reshape(-1).expand(x_t.shape[0])
        return self.network(x_t, mu, torch.stack([t, t - r.reshape(-1).expand(x_t.shape[0])], dim=1))


class MeanFlow(Bridge):
    paper = PAPER
    summary = "MeanFlow: the average velocity u(z_t, r, t) on the straight path from μ, one-step sampling"
    default_nfe = 1
    pinned = False  # z_1 = μ + σ·π⊙ε once π ≠ zero
    time_inputs = 2
    official_samplers = ("meanflow", "ddim")
    option_spec = {
        "sigma": Option(0.1, "noise at t = 1: c(t) = σ·t in [-1, 1] units; no effect with π = zero"),
        "time_mu": Option(-0.4, "mean of the logit-normal (t, r) draws (paper: −0.4)"),
        "time_sigma": Option(1.0, "std of the logit-normal (t, r) draws (paper: 1.0)"),
        "ratio_r_neq_t": Option(0.25, "fraction of training pairs with r ≠ t (paper: 25%)"),
        "adaptive_p": Option(1.0, "p of the adaptive weight 1/(‖Δ‖² + c)^p (paper: 1; 0 = plain L2)"),
        "adaptive_c": Option(1e-3, "c of the adaptive weight (paper: 1e-3)"),
    }
    option_defaults = {"pi": "zero", "objective": "velocity", "loss_type": "l2"}
    undefined = {
        "objective": {o: "MeanFlow's network predicts the average velocity u(z_t, r, t): objective='velocity'"
                      for o in OBJECTIVES if o != "velocity"},
        "loss_type": {"l1": "MeanFlow's loss is the adaptively weighted squared error: loss_type='l2'"},
    }

    def schedule(self, t):
        return 1 - t, t, self.options["sigma"] * t

    def wrap(self, network):
        return TwoTimeModel(network)

    # ------------------------------------------------------------------ the objective: the path's own velocity
    def target(self, x0, mu, x_t, t):
        """v = dz_t/dt = (z_t − x0)/t (noise included; μ − x0 at t = 0), differentiable in t; also the average
        velocity over any [r, t] of the conditional path. t of shape [B] or [B, 2] (t, r)."""
        t = split_times(t)[0].reshape(-1, 1, 1, 1).to(x_t)
        zero = t == 0
        return torch.where(zero, mu - x0, (x_t - x0) / torch.where(zero, torch.ones_like(t), t))

    def predict_x0(self, output, x_t, mu, t):
        """x̂0 = z_t − t·u (the one-step jump to t = 0)."""
        return x_t - split_times(t)[0].reshape(-1, 1, 1, 1).to(x_t) * output

    # ------------------------------------------------------------------ training
    def sample_tr(self, n, generator=None, device=None):
        """[n, 2] training pairs (t, r): two logit-normal draws sorted so r ≤ t; r = t for 1 − ratio_r_neq_t."""
        dev = generator.device if generator is not None else device
        draws = torch.sigmoid(torch.randn(n, 2, generator=generator, device=dev) * self.options["time_sigma"]
                              + self.options["time_mu"])
        r, t = draws.min(1).values, draws.max(1).values
        equal = torch.rand(n, generator=generator, device=dev) >= self.options["ratio_r_neq_t"]
        return torch.stack([t, torch.where(equal, t, r)], dim=1)

    def sample_t(self, n, generator=None, device=None):
        return self.sample_tr(n, generator, device)[:, 0]

    def _adaptive_loss(self, diff):
        """Gradient of mean(sg(w)·‖Δ‖²), w = 1/(‖Δ‖² + c)^p; value: the unweighted per-pixel MSE."""
        sq = diff.square().flatten(1)
        norm2 = sq.sum(1)
        weight = (norm2.detach() + self.options["adaptive_c"]) ** -self.options["adaptive_p"]
        weighted = (weight * norm2).mean()
        return weighted - weighted.detach() + sq.mean(1).mean().detach()

    def loss(self, output, x0, mu, x_t, t):
        """The adaptive loss of `output` against the instantaneous velocity (r = t, no JVP term)."""
        return self._adaptive_loss(output - self.target(x0, mu, x_t, t))

    def training_loss(self, model, x0, mu, generator=None):
        """u = model(z_t, μ, (t, r)); u_tgt = v − (t − r)·(v·∂_z u + ∂_t u) by torch.func.jvp (the JVP runs on
        `model.module` where the model is wrapped for data parallelism, as the port does), stop-gradient."""
        tr, noise = self.draw_times_and_noise(x0, generator, times=self.sample_tr)
        tr = tr.to(x0.dtype)
        t, r = tr[:, 0], tr[:, 1]
        x_t = self.q_sample(x0, mu, t, noise)
        v = self.target(x0, mu, x_t, t)
        inner = getattr(model, "module", model)
        # the fused CUDA attention kernels have no forward-mode derivative; the JVP needs no backward graph;
        # BatchNorm layers use their batch statistics without updating the running ones (an in-place update
        # inside torch.func is an error, and the real forward below updates them once); and the JVP runs in fp32
        # with autocast off (under bf16 autocast forward-mode AD meets bf16 weights with fp32 tangents at the first
        # BatchNorm, and the target would carry bf16 rounding), through the class's forward so that an
        # instance-level autocast patch (accelerate's on the prepared module) does not switch it back on; a compiled
        # network runs eagerly there (`--compile`: forward-mode AD through a compiled graph is not supported)
        fwd = type(inner).forward.__get__(inner) if isinstance(inner, nn.Module) else inner
        with _math_attention(), torch.no_grad(), _frozen_batchnorm_statistics(inner), _no_autocast(x_t.device.type), \
                eager():
            _, dudt = torch.func.jvp(lambda z, tt: fwd(z, mu.float(), torch.stack([tt, r.float()], dim=1)),
                                     (x_t.float(), t.float()), (v.float(), torch.ones_like(t, dtype=torch.float32)))
        u_tgt = (v - (t - r).reshape(-1, 1, 1, 1) * dudt).detach()
        return self._adaptive_loss(model(x_t, mu, tr) - u_tgt)

    @property
    def relation(self):
        return straight_path_relation(self.pi, "the noise σ·t is not pinned at t = 1 (c(1) = σ > 0)")


class MeanFlowSampler(Sampler):
    """z_s = z_t − (t − s)·u(z_t, s, t) (MeanFlow Eq. 12); one step by default."""

    summary = "MeanFlow's average-velocity jump z_s = z_t − (t − s)·u(z_t, s, t); one step by default"
    paper = PAPER

    def step(self, bridge, model, x, mu, t, s, generator=None):
        u = model(x, mu, torch.stack([t, s], dim=1))
        return x - (t - s).reshape(-1, 1, 1, 1).to(x) * u, bridge.predict_x0(u, x, mu, t)


@hookimpl
def register_bridges(register):
    register(MeanFlow, name="meanflow", aliases=("mean-flow",), summary=MeanFlow.summary)


@hookimpl
def register_samplers(register):
    register(MeanFlowSampler, name="meanflow", bridges=MeanFlow)
