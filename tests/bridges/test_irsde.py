"""irsde (plugins/bridges/irsde.py) against its official code (docs/bridges.md, "irsde"): schedule and marginal,
the posterior sampler's loop (and its x̂0 clip), the maximum-likelihood loss."""

import math

import pytest
import torch

import bridgezoo as bz

from helpers import F64, pair
from reference.goub import goub_code_tables


# ----------------------------------------------------------------------------- IR-SDE
def test_irsde_schedule_and_marginal():
    b = bz.get_bridge("irsde")
    thetas, dt, s, *_ = goub_code_tables()  # same construction as GOUB (docs/bridges.md, "irsde")
    assert sum(thetas) - thetas[0] == pytest.approx(50.89945, abs=1e-5)
    assert dt == pytest.approx(0.1040938, abs=1e-7) and b.clock.total == pytest.approx(5.298317, abs=1e-6)
    t = torch.arange(101, dtype=F64) / 100
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    lam = 20 / 255
    torch.testing.assert_close(a, torch.tensor([math.exp(-v) for v in s], dtype=F64), atol=1e-13, rtol=0)
    torch.testing.assert_close(c, torch.tensor([lam * math.sqrt(1 - math.exp(-2 * v)) for v in s], dtype=F64))
    assert a[-1].item() == pytest.approx(0.005, rel=1e-9) and c[-1].item() == pytest.approx(lam, rel=1e-4)
    assert not b.pinned and b.relation["kind"] == "limit" and b.samplers[0] == "posterior" and b.default_nfe == 100


def test_irsde_posterior_sampler_reproduces_the_official_loop():
    lam, T = 20 / 255, 100
    b = bz.get_bridge("irsde", clip_x0=False)
    thetas, dt, s, *_ = goub_code_tables()
    mu = pair(3)[1][:1]
    net = lambda x, m, i: 0.3 * torch.tanh(x - m + 0.02 * i)  # noqa: E731 - ε̂ of a fixed network at step i
    gen = torch.Generator().manual_seed(7)
    x = mu + lam * torch.randn(mu.shape, generator=gen, dtype=F64)  # noise_state (L360-361)
    for i in range(T, 0, -1):
        A, B, C = math.exp(-thetas[i] * dt), math.exp(-s[i]), math.exp(-s[i - 1])
        x0 = mu + (x - mu - lam * math.sqrt(1 - B**2) * net(x, mu, i)) / B  # L237-239
        mean = mu + A * (1 - C**2) / (1 - B**2) * (x - mu) + C * (1 - A**2) / (1 - B**2) * (x0 - mu)
        std = lam * math.sqrt((1 - A**2) * (1 - C**2) / (1 - B**2))
        x = mean + std * torch.randn(x.shape, generator=gen, dtype=F64)
    ours = b.sample(lambda x_, m, t: net(x_, m, round(t[0].item() * T)), mu, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours, x, atol=1e-10, rtol=0)


def test_irsde_ml_loss_is_the_official_one():
    lam, T = 20 / 255, 100
    b = bz.get_bridge("irsde")
    thetas, dt, s, *_ = goub_code_tables()
    x0, mu = pair(4)
    g = torch.Generator().manual_seed(1)
    for i in (1, 50, 100):
        B, C, A = math.exp(-s[i]), math.exp(-s[i - 1]), math.exp(-thetas[i] * dt)
        sbar = lam * math.sqrt(1 - B**2)
        eps = torch.randn(x0.shape, generator=g, dtype=F64)
        x_t = mu + B * (x0 - mu) + sbar * eps
        eps_hat = eps + 0.1 * torch.randn(x0.shape, generator=g, dtype=F64)
        score = -eps_hat / sbar
        pred = x_t - (thetas[i] * (mu - x_t) - 2 * lam**2 * thetas[i] * score) * dt  # L41-42, L175-176
        target = mu + A * (1 - C**2) / (1 - B**2) * (x_t - mu) + C * (1 - A**2) / (1 - B**2) * (x0 - mu)
        t = torch.full((2,), i / T, dtype=F64)
        torch.testing.assert_close(b.loss(eps_hat, x0, mu, x_t, t), (pred - target).abs().mean(), rtol=1e-9, atol=1e-12)
    assert bz.get_bridge("irsde", loss_type="l1").loss(eps, x0, mu, x_t, t).item() == pytest.approx(0, abs=1e-12)


def test_irsde_posterior_clips_x0_by_default_and_says_so():
    """The official posterior sampler (sde_utils.py L237-239, L284-299) does not clip x̂0; here the default
    `clip_x0=True` clips it (documented in the plugin), and `clip_x0=False` is the official loop."""
    from bridgezoo_plugins.bridges import irsde

    assert "does not clip" in irsde.__doc__ and "clip_x0=False" in irsde.__doc__
    lam, T = 20 / 255, 100
    thetas, dt, s, *_ = goub_code_tables()
    mu = pair(seed=3)[1][:1]
    net = lambda x, m, i: 1.5 * torch.tanh(x - m + 0.02 * i)  # noqa: E731 - large ε̂: x̂0 leaves [-1, 1]

    def official(clip):
        gen = torch.Generator().manual_seed(7)
        x = mu + lam * torch.randn(mu.shape, generator=gen, dtype=F64)
        for i in range(T, 0, -1):
            A, B, C = math.exp(-thetas[i] * dt), math.exp(-s[i]), math.exp(-s[i - 1])
            x0 = mu + (x - mu - lam * math.sqrt(1 - B**2) * net(x, mu, i)) / B
            x0 = x0.clamp(-1, 1) if clip else x0
            mean = mu + A * (1 - C**2) / (1 - B**2) * (x - mu) + C * (1 - A**2) / (1 - B**2) * (x0 - mu)
            x = mean + lam * math.sqrt((1 - A**2) * (1 - C**2) / (1 - B**2)) * torch.randn(x.shape, generator=gen, dtype=F64)
        return x

    model = lambda x_, m, t: net(x_, m, round(t[0].item() * T))  # noqa: E731
    run = lambda **o: bz.get_bridge("irsde", **o).sample(model, mu, generator=torch.Generator().manual_seed(7))  # noqa: E731
    torch.testing.assert_close(run(), official(clip=True), atol=1e-10, rtol=0)
    torch.testing.assert_close(run(clip_x0=False), official(clip=False), atol=1e-10, rtol=0)
    assert (official(clip=True) - official(clip=False)).abs().max() > 1e-3
