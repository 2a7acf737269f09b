"""unidb (plugins/bridges/unidb.py) against its official code (tests/reference/unidb.py), its samplers under the
oracle, and its relation to GOUB."""

import math

import numpy as np
import pytest
import torch

import bridgezoo as bz
from bridgezoo.testing import image_pair

from helpers import F64, coefficients, marginal_mismatch, oracle_samplers_hold
from reference.unidb import official_unidb_step_mean, unidb_official_tables


def test_unidb_coefficients_equal_the_official_tables_in_half_units():
    b = bz.get_bridge("unidb")
    _, _, s, S, m, f, _, sb2 = unidb_official_tables()
    t = torch.arange(101, dtype=F64) / 100  # index i ↔ t = i/T
    a, bb, c = coefficients(b, t)
    torch.testing.assert_close(a, torch.tensor(m, dtype=F64), atol=1e-12, rtol=0)  # a is unit-free
    torch.testing.assert_close(bb, 1 - torch.tensor(m, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(c / 2, torch.tensor(f, dtype=F64), atol=1e-12, rtol=0)  # stds double on [-1, 1]
    assert a[-1].item() == pytest.approx(math.exp(-S) * 1e-7 / (1e-7 + sb2(S)), rel=1e-9) and a[-1].item() > 3e-8
    assert c[-1].item() == 0 and not b.pinned and b.default_nfe == 100 and b.samplers[0] == "reverse_sde"
    assert b.options["gamma_inv"] == pytest.approx(4e-7) and b.options["loss_type"] == "ml"


def test_unidb_reverse_sde_and_mean_ode_reproduce_the_official_loop_in_its_units():
    """The official loop on [0, 1] images (λ = 30/255, γ⁻¹ = 1e-7) equals bridgezoo's on [-1, 1] (x = 2x′ − 1)."""
    b = bz.get_bridge("unidb")
    mu = image_pair(4, (1, 3, 6, 6))[1]
    net = lambda x, m, i: 0.2 * torch.tanh(x + m + 0.01 * i)  # noqa: E731 - ε̂ (unit-free) of a network at step i
    model = lambda x, m, t: net(x, m, round(t[0].item() * 100))  # noqa: E731
    half = lambda v: (v + 1) / 2  # noqa: E731 - [-1, 1] → [0, 1]
    for sampler, noisy in (("mean_ode", False), ("reverse_sde", True)):
        gen = torch.Generator().manual_seed(6)
        x, mu01 = half(mu), half(mu)
        for i in range(100, 0, -1):
            mean, std = official_unidb_step_mean(x, mu01, net(2 * x - 1, mu, i), i)
            x = mean + (std * torch.randn(x.shape, generator=gen, dtype=F64) if noisy else 0)
        ours = b.sample(model, mu, sampler=sampler, generator=torch.Generator().manual_seed(6))
        torch.testing.assert_close(half(ours), x, atol=1e-10, rtol=0, msg=sampler)


def test_unidb_ml_loss_is_the_official_posterior_mean_l1():
    b = bz.get_bridge("unidb")
    lam = 60 / 255  # bridgezoo's units; a, f_m, f_n are unit-free and the loss is then in [-1, 1] units
    _, _, s, S, m, f, _, _ = unidb_official_tables(lam=lam, gamma_inv=4e-7)
    x0, mu = image_pair(5)
    g = torch.Generator().manual_seed(2)
    for i in (1, 50, 99):
        noise = torch.randn(x0.shape, generator=g, dtype=F64)
        x_t = m[i] * x0 + (1 - m[i]) * mu + f[i] * noise
        eps_hat = noise + 0.05 * torch.randn(x0.shape, generator=g, dtype=F64)
        pred, _ = official_unidb_step_mean(x_t, mu, eps_hat, i, lam=lam, gamma_inv=4e-7)
        f_m = m[i] / m[i - 1]  # L196-213
        f_n = (1 - m[i]) - (1 - m[i - 1]) * f_m
        f_s1 = f[i] ** 2 - f[i - 1] ** 2 * f_m**2
        r_mean = (f[i - 1] ** 2 * f_m * (x_t - f_n * mu) + f_s1 * (m[i - 1] * x0 + (1 - m[i - 1]) * mu)) / f[i] ** 2
        t = torch.full((2,), i / 100, dtype=F64)
        torch.testing.assert_close(b.loss(eps_hat, x0, mu, x_t, t), (pred - r_mean).abs().mean(), atol=1e-12, rtol=1e-9)


def test_unidb_tends_to_goub_as_gamma_grows_and_is_goub_at_gamma_inv_zero():
    goub = bz.get_bridge("goub")
    t = torch.linspace(0, 1, 101, dtype=F64)
    ref = coefficients(goub, t)
    gaps = []
    for g_inv in (4e-3, 4e-4, 4e-5, 4e-6, 4e-7):
        gaps.append(max((u - v).abs().max().item() for u, v in zip(coefficients(bz.get_bridge("unidb", gamma_inv=g_inv), t), ref)))
    ratios = [g1 / g2 for g1, g2 in zip(gaps, gaps[1:])]
    assert all(8 < r < 12 for r in ratios), (gaps, ratios)  # the gap is O(γ⁻¹)
    zero = bz.get_bridge("unidb", gamma_inv=0.0)
    for u, v in zip(coefficients(zero, t), ref):
        torch.testing.assert_close(u, v, atol=1e-15, rtol=0)
    x, mu = image_pair(6)
    tt = torch.full((2,), 0.37, dtype=F64)
    torch.testing.assert_close(zero.drift(x, mu, tt), goub.drift(x, mu, tt), atol=1e-14, rtol=0)
    model = lambda x_, m, s: 0.1 * torch.tanh(x_ - m)  # noqa: E731
    run = lambda b: b.sample(model, mu, generator=torch.Generator().manual_seed(1))  # noqa: E731
    torch.testing.assert_close(run(zero), run(goub), atol=1e-12, rtol=0)
    assert zero.relation["kind"] == "exact" and zero.relation["lam"] == pytest.approx((60 / 255) ** 2)
    unidb = bz.get_bridge("unidb")
    a, _, c = coefficients(unidb, torch.tensor([1.0], dtype=F64))
    assert c.item() == 0 and a.item() > 0 and unidb.relation["kind"] == "none"  # the witness of "none"


def test_unidb_drift_is_the_official_sde_and_its_moments_give_the_mean_but_not_goubs_variance():
    """The mean of the forward SDE dx = (1 + h(u))(μ − x)ds + sqrt(2λ²)dw (per unit of the clock s, u = S − s) is
    a(t)·(x0 − μ) — UniDB's m — and its variance σ̄_s²(γ⁻¹ + σ̄²_{u})/(γ⁻¹ + σ̄_S²), not the c² the code uses."""
    g_inv = 4e-3  # large, so that the two variances differ visibly
    b = bz.get_bridge("unidb", gamma_inv=g_inv)
    lam2, S = b.lam, b.clock.total
    sb2 = lambda v: lam2 * (1 - math.exp(-2 * v))  # noqa: E731
    h = lambda s: 2 * lam2 * math.exp(-2 * (S - s)) / (g_inv + sb2(S - s))  # noqa: E731 - sde_utils.py L243
    for tv in (0.2, 0.6, 0.9):
        t = torch.tensor([tv], dtype=F64)
        x, mu = torch.full((1, 1, 1, 1), 0.7, dtype=F64), torch.zeros(1, 1, 1, 1, dtype=F64)
        assert b.drift(x, mu, t).item() == pytest.approx(-(1 + h(b.clock(t).item())) * 0.7, rel=1e-12)
    # RK4 on the moment equations dm/ds = −(1 + h)m, dv/ds = −2(1 + h)v + 2λ², from (1, 0) at s = 0
    n, s_end = 20000, b.clock(torch.tensor([0.9], dtype=F64)).item()
    rhs = lambda s, y: np.array([-(1 + h(s)) * y[0], -2 * (1 + h(s)) * y[1] + 2 * lam2])  # noqa: E731
    y, s, ds = np.array([1.0, 0.0]), 0.0, s_end / n
    for _ in range(n):
        k1 = rhs(s, y)
        k2 = rhs(s + ds / 2, y + ds / 2 * k1)
        k3 = rhs(s + ds / 2, y + ds / 2 * k2)
        k4 = rhs(s + ds, y + ds * k3)
        y, s = y + ds / 6 * (k1 + 2 * k2 + 2 * k3 + k4), s + ds
    a, _, c = (v.item() for v in b.coefficients(torch.tensor(0.9, dtype=F64)))
    exact_var = sb2(s_end) * (g_inv + sb2(S - s_end)) / (g_inv + sb2(S))
    assert y[0] == pytest.approx(a, rel=1e-9) and y[1] == pytest.approx(exact_var, rel=1e-8)
    assert abs(y[1] / c**2 - 1) > 5e-3  # the official noise (GOUB's) is not the SDE's variance at finite γ


def test_unidb_samplers_under_the_oracle():
    x0, mu = image_pair(7)
    assert {"ddim", "heun", "dpmpp_2m"} <= set(oracle_samplers_hold(bz.get_bridge("unidb"), x0, mu, nfes=(5, 100)))
    b = bz.get_bridge("unidb")
    assert marginal_mismatch(b, "reverse_sde", 100) < 0.1
    assert marginal_mismatch(b, "posterior", 100) < 0.1  # valid: c/a falls only for t > 1 − 4e-7
