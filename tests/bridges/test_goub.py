"""goub (plugins/bridges/goub.py) against its official code (tests/reference/goub.py): coefficients, the mean-ODE and
reverse-SDE loops, the maximum-likelihood loss, samplers and defaults."""


import pytest
import torch

import bridgezoo as bz

from helpers import F64
from reference.goub import goub_code_tables, official_goub_pieces, official_goub_step_mean


def test_goub_coefficients_equal_the_official_tables_in_half_units():
    b = bz.get_bridge("goub")
    thetas, dt, s, m, n, f = goub_code_tables()
    t = torch.arange(101, dtype=F64) / 100
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(a, torch.tensor(m, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(bb, torch.tensor(n, dtype=F64), atol=1e-12, rtol=0)
    # [-1, 1] units: every std doubles
    torch.testing.assert_close(c / 2, torch.tensor(f, dtype=F64), atol=1e-12, rtol=0)
    assert dt == pytest.approx(0.1040938, abs=1e-7) and b.clock.total == pytest.approx(5.298317, abs=1e-6)
    # values of the official code's tables (sde_utils.py, float64), in the official [0, 1] units
    assert (c / 2).max().item() == pytest.approx(0.117060, abs=1e-6) and int(c.argmax()) == 73
    assert a[1].item() == pytest.approx(0.9998236, abs=1e-7) and (c[1] / 2).item() == pytest.approx(2.2096e-3, abs=1e-7)
    assert a[99].item() == pytest.approx(1.0426e-3, abs=1e-7) and (c[99] / 2).item() == pytest.approx(0.0509976, abs=1e-7)
    rel = b.relation
    assert rel["kind"] == "exact" and rel["lam"] == pytest.approx((60 / 255) ** 2)


def test_goub_mean_ode_and_reverse_sde_reproduce_the_official_loop():
    b = bz.get_bridge("goub")
    g = torch.Generator().manual_seed(1)
    mu = torch.rand(1, 3, 6, 6, generator=g, dtype=F64) * 2 - 1
    net_i = lambda x, m, i: 0.1 * torch.tanh(x + m + 0.01 * i)  # noqa: E731

    def model(x, m, t):
        return net_i(x, m, round(t[0].item() * 100))  # index i ↔ t = i/T

    x = mu.clone()
    for i in range(100, 0, -1):
        x, _ = official_goub_step_mean(x, mu, net_i(x, mu, i), i)
    torch.testing.assert_close(b.sample(model, mu, sampler="mean_ode"), x, atol=1e-10, rtol=0)

    gen_official, gen_ours = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = mu.clone()
    for i in range(100, 0, -1):
        mean, std = official_goub_step_mean(x, mu, net_i(x, mu, i), i)
        x = mean + std * torch.randn(x.shape, generator=gen_official, dtype=F64)  # official: −σ√dt·z, same law
    ours = b.sample(model, mu, sampler="reverse_sde", generator=gen_ours)
    torch.testing.assert_close(ours, x, atol=1e-10, rtol=0)


def test_goub_ml_loss_is_the_official_posterior_mean_l1():
    b = bz.get_bridge("goub")
    thetas, dt, s, m, n, f, S, sig2, sbar2_tT = official_goub_pieces()
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(2, 3, 5, 5, generator=g, dtype=F64) * 2 - 1
    mu = torch.rand(2, 3, 5, 5, generator=g, dtype=F64) * 2 - 1
    for i in (1, 2, 37, 73, 99):
        noise = torch.randn(x0.shape, generator=g, dtype=F64)
        x_t = m[i] * x0 + n[i] * mu + f[i] * noise
        eps_hat = noise + 0.05 * torch.randn(x0.shape, generator=g, dtype=F64)
        pred, _ = official_goub_step_mean(x_t, mu, eps_hat, i)
        f_m = m[i] / m[i - 1]
        f_n = n[i] - n[i - 1] * f_m
        f_s1 = f[i] ** 2 - f[i - 1] ** 2 * f_m**2
        r_mean = (f[i - 1] ** 2 * f_m * (x_t - f_n * mu) + f_s1 * (m[i - 1] * x0 + n[i - 1] * mu)) / f[i] ** 2
        expected = (pred - r_mean).abs().mean()
        t = torch.full((2,), i / 100, dtype=F64)
        assert b.coefficients(t)[2][0].item() == pytest.approx(f[i], rel=1e-12)  # same units: λ = 60/255 here
        torch.testing.assert_close(b.loss(eps_hat, x0, mu, x_t, t), expected, atol=1e-12, rtol=1e-9)


def test_goub_samplers_and_defaults():
    b = bz.get_bridge("goub")
    assert b.samplers[:2] == ("reverse_sde", "mean_ode") and b.default_nfe == 100
    assert b.objective == "noise" and b.options["loss_type"] == "ml" and b.pi == "one"
    t = b.sample_t(4000, generator=torch.Generator().manual_seed(0))
    idx = torch.round(t.double() * 100)
    assert idx.min() == 1 and idx.max() == 99  # official t ~ U{1..T−1}
    # the pinned-end rule follows the clock, not a hard-coded t == 100: with T = 50 the first step is also safe
    b50 = bz.get_bridge("goub", T=50)
    out = b50.sample(lambda x, m, t: torch.zeros_like(x), torch.zeros(1, 3, 4, 4, dtype=F64), sampler="mean_ode")
    assert torch.isfinite(out).all()
