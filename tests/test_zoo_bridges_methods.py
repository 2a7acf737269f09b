"""I2SB, UniDB and ResShift against independent transcriptions of their official code (NVlabs/I2SB,
UniDB-SOC/UniDB, zsyOAOA/ResShift; docs/bridges.md), their samplers under the oracle model and in Monte Carlo,
and their relation to the generalized bridge (and UniDB's to GOUB). The bridge contract itself runs on them in
tests/test_contract.py (parametrized over every registered bridge)."""

import math

import numpy as np
import pytest
import torch

import bridgezoo as bz
from bridgezoo.generalized import sinh_coefficients
from bridgezoo.testing import image_pair, oracle

from test_reference import goub_code_tables

F64 = torch.float64


def coefficients(b, t):
    return [v.flatten() for v in b.coefficients(t)]


def oracle_samplers_hold(b, x0, mu, nfes=(5,)):
    """Every deterministic, oracle-exact sampler of `b` returns x0; returns the names it checked."""
    checked = []
    for sampler in b.samplers:
        info = b.sampler_info(sampler)
        if not (info.deterministic and info.oracle_exact):
            continue
        for nfe in nfes:
            out = b.sample(oracle(b, x0), mu, nfe=nfe, sampler=sampler)
            assert (out - x0).abs().max().item() < 1e-9, (b.name, sampler, nfe)
        checked.append(sampler)
    return checked


def marginal_mismatch(b, sampler, nfe, states=(0.25, 0.5, 0.75)):
    """Under the oracle, the worst |mean| and |std − 1| of z = (x_t − a·x0 − b·μ)/(c·π) over 3072 pixels at the
    given fractions of the grid (a stochastic sampler must follow the forward marginals)."""
    x0, mu = image_pair(11, (4, 3, 16, 16))
    _, traj = b.sample(oracle(b, x0), mu, nfe=nfe, sampler=sampler, generator=torch.Generator().manual_seed(0),
                       return_trajectory=True)
    worst = 0.0
    for frac in states:
        k = round(frac * (len(traj.t) - 1))
        a, bb, c = b.coefficients(traj.t[k : k + 1])
        z = (traj.x[k] - a * x0 - bb * mu) / (c * b.pi_field(x0, mu))
        worst = max(worst, abs(z.mean().item()), abs(z.std().item() - 1))
    return worst


def not_a_generalized_bridge(a, c, scales=(0.05, 0.5, 2.0, 5.0, 20.0)):
    """For every total S, the generalized bridge with Θ = a has Σ²/(2λ) = a·sinh(S − asinh(a·sinh S)), so
    c²/(a·sinh(S − asinh(a·sinh S))) would be the constant 2λ. Returns the smallest max/min spread of that ratio
    over the S tried (≫ 1: no S, and no λ, gives these coefficients)."""
    spreads = []
    for S in scales:
        u = torch.asinh(a * math.sinh(S))
        ratio = c**2 / (a * torch.sinh(S - u))
        spreads.append((ratio.max() / ratio.min()).item())
    return min(spreads)


# ============================================================================================== I2SB
def i2sb_official_tables(T=1000, beta_max=0.3):
    """runner.py L58-63, L81-82 and diffusion.py L17-45, transcribed in numpy."""
    betas = np.linspace(1e-4**0.5, (beta_max / T) ** 0.5, T, dtype=np.float64) ** 2
    betas = np.concatenate([betas[: T // 2], np.flip(betas[: T // 2])])
    std_fwd = np.sqrt(np.cumsum(betas))
    std_bwd = np.sqrt(np.flip(np.cumsum(np.flip(betas))))
    denom = std_fwd**2 + std_bwd**2
    mu_x0, mu_x1, var = std_bwd**2 / denom, std_fwd**2 / denom, std_fwd**2 * std_bwd**2 / denom
    return betas, std_fwd, std_bwd, mu_x0, mu_x1, np.sqrt(var)


def official_space_indices(num_steps, count):
    """i2sb/util.py L86-100."""
    frac = 1 if count <= 1 else (num_steps - 1) / (count - 1)
    cur, out = 0.0, []
    for _ in range(count):
        out.append(round(cur))
        cur += frac
    return out


def test_i2sb_schedule_and_marginal_against_the_official_tables():
    b = bz.get_bridge("i2sb")
    betas, std_fwd, std_bwd, mu_x0, mu_x1, std_sb = i2sb_official_tables()
    assert np.allclose(betas, betas[::-1], rtol=0, atol=0) and betas[0] == pytest.approx(1e-4)
    S = betas.sum()
    assert b.clock.total == pytest.approx(S, rel=1e-14) and S == pytest.approx(0.1410273, abs=1e-7)
    t = torch.arange(1, 1001, dtype=F64) / 1000  # official step n ↔ t = (n+1)/T
    torch.testing.assert_close(b.sigma_f(t), torch.from_numpy(std_fwd), atol=1e-15, rtol=1e-13)
    a, bb, c = coefficients(b, t)
    F = torch.from_numpy(std_fwd**2)
    torch.testing.assert_close(a + bb, torch.ones_like(a), atol=1e-15, rtol=0)
    # the code's σ_b² counts β_n twice: mu_x0 − a = F·β_n/(S·(S + β_n)) exactly
    bet = torch.from_numpy(betas)
    torch.testing.assert_close(torch.from_numpy(mu_x0) - a, F * bet / (S * (S + bet)), atol=1e-15, rtol=1e-9)
    torch.testing.assert_close(c, (F * (S - F) / S).clamp_min(0).sqrt(), atol=1e-15, rtol=1e-12)
    assert (torch.from_numpy(mu_x0) - a).abs().max() < 8e-4 and std_sb[-1] == pytest.approx(0.0099965, abs=1e-7)
    assert a[-1].item() == 0 and c[-1].item() == 0  # pinned here; the code's step T−1 is not (c = 0.01)
    assert b.objective == "xt_minus_x0" and b.options["loss_type"] == "l2" and b.default_nfe == 999
    with pytest.raises(bz.OptionError, match="even"):
        bz.get_bridge("i2sb", T=999)


def test_i2sb_network_label_loss_and_x0_are_the_official_ones():
    b = bz.get_bridge("i2sb")
    x0, mu = image_pair(1, (3, 3, 5, 5))
    _, std_fwd, *_ = i2sb_official_tables()
    steps = [0, 417, 999]
    t = torch.tensor([(n + 1) / 1000 for n in steps], dtype=F64)
    sigma = torch.tensor(std_fwd[steps], dtype=F64).view(-1, 1, 1, 1)
    x_t = b.q_sample(x0, mu, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=F64))
    label = (x_t - x0) / sigma  # compute_label, runner.py L102-106
    net_out = label + 0.1 * torch.sin(3 * x_t)  # a network that is not exact
    net = lambda x, m, tt: net_out  # noqa: E731
    model = b.wrap(net)
    torch.testing.assert_close(b.wrap(lambda x, m, tt: label)(x_t, mu, t), b.target(x0, mu, x_t, t))
    torch.testing.assert_close(b.predict_x0(model(x_t, mu, t), x_t, mu, t), x_t - sigma * net_out)  # L108-113
    official = ((net_out - label) ** 2).mean()  # F.mse_loss(pred, label), L185
    torch.testing.assert_close(b.loss(model(x_t, mu, t), x0, mu, x_t, t), official, atol=1e-12, rtol=1e-10)
    plain = bz.get_bridge("i2sb", objective="x0")
    assert plain.wrap(net) is net and plain.loss_weight(t) is None


def test_i2sb_posterior_sampler_reproduces_the_official_loop():
    T, nfe = 1000, 10
    b = bz.get_bridge("i2sb", clip_x0=False)  # --clip-denoise is off by default
    _, std_fwd, *_ = i2sb_official_tables()
    steps = official_space_indices(T, nfe + 1)
    assert steps == [0, 100, 200, 300, 400, 500, 599, 699, 799, 899, 999]
    grid = b.timesteps(nfe)
    torch.testing.assert_close(grid[:-1], torch.tensor([(n + 1) / T for n in steps[::-1][:-1]], dtype=F64))
    assert grid[-1].item() == 0.0  # the official final step n = 0 is taken to the clean end

    mu = image_pair(2, (1, 3, 6, 6))[1]
    net = lambda x, m, n: 0.4 * torch.tanh(x - 0.5 * m + 0.001 * n)  # noqa: E731 - the label (x_t − x0)/σ_f at step n
    gen = torch.Generator().manual_seed(4)
    x, states = mu.clone(), []
    pairs = list(zip(steps[::-1][1:], steps[::-1][:-1]))
    for prev, n in pairs:  # ddpm_sampling + p_posterior, diffusion.py L66-99
        x0_hat = x - std_fwd[n] * net(x, mu, n)
        std_delta = math.sqrt(std_fwd[n] ** 2 - std_fwd[prev] ** 2)
        denom = std_fwd[prev] ** 2 + std_delta**2
        mean = std_delta**2 / denom * x0_hat + std_fwd[prev] ** 2 / denom * x
        z = torch.randn(x.shape, generator=gen, dtype=F64)
        if prev > 0:
            x = mean + math.sqrt(std_fwd[prev] ** 2 * std_delta**2 / denom) * z
        else:
            last_x, last_x0, x = x, x0_hat, mean
        states.append(x)
    model = b.wrap(lambda x_, m, tt: net(x_, m, round(tt[0].item() * T) - 1))
    ours, traj = b.sample(model, mu, nfe=nfe, generator=torch.Generator().manual_seed(4), return_trajectory=True)
    for k in range(nfe - 1):
        torch.testing.assert_close(traj.x[k + 1], states[k], atol=1e-12, rtol=0)
    torch.testing.assert_close(ours, last_x0, atol=1e-12, rtol=0)  # here: x̂0 at t = 0
    w = std_fwd[0] ** 2 / std_fwd[100] ** 2  # official: the noise-free posterior mean at σ_f = 0.01
    torch.testing.assert_close(states[-1] - ours, w * (last_x - last_x0), atol=1e-12, rtol=0)


def test_i2sb_ot_ode_is_pi_zero_and_the_samplers_under_the_oracle():
    x0, mu = image_pair(3)
    b = bz.get_bridge("i2sb", pi="zero")  # --ot-ode: q_sample without noise (L61-63)
    t = torch.full((2,), 0.3, dtype=F64)
    a, bb, _ = b.coefficients(t)
    torch.testing.assert_close(b.q_sample(x0, mu, t, torch.randn_like(x0)), a * x0 + bb * mu)
    assert {"ddim", "heun", "dpmpp_2m"} <= set(oracle_samplers_hold(bz.get_bridge("i2sb"), x0, mu, nfes=(5, 37)))
    posterior = bz.get_bridge("i2sb")
    out = posterior.sample(oracle(posterior, x0), mu, nfe=20, generator=torch.Generator().manual_seed(0))
    assert (out - x0).abs().max() < 1e-9  # every step samples q(x_s | x_t, x0), the last one at c = 0
    assert marginal_mismatch(posterior, "posterior", 100) < 0.1


def test_i2sb_is_the_theta_to_zero_limit_of_the_generalized_bridge():
    b = bz.get_bridge("i2sb")
    t = torch.linspace(0, 1, 201, dtype=F64)
    F, S = b.clock(t), b.clock.total
    target = coefficients(b, t)
    errs = []
    for eps in (1.0, 0.3, 0.1, 0.01):  # θ = ε·θ′: θ̄_{0:t} = ε·F/S, 2λ·ε = S
        gb = sinh_coefficients(eps * F / S, eps, S / (2 * eps))
        errs.append(max((u - v).abs().max().item() for u, v in zip(gb, target)))
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:])) and errs[-1] < 1e-5, errs
    assert b.relation["kind"] == "limit"


# ============================================================================================== UniDB
def unidb_official_tables(T=100, lam=30 / 255, gamma_inv=1e-7, eps=0.005):
    """UniDB-GOU sde_utils.py L101-146, L190-194 in the official [0, 1] units: m, n, f_σ and the h-term pieces."""
    thetas, dt, s, *_ = goub_code_tables(T, lam, eps)
    S = s[-1]
    sb2 = lambda x: lam**2 * (1 - math.exp(-2 * x))  # noqa: E731
    m = [math.exp(-si) * (gamma_inv + sb2(S - si)) / (gamma_inv + sb2(S)) for si in s]
    f = [math.sqrt(sb2(si) * sb2(S - si) / sb2(S)) for si in s]
    sig2 = [2 * lam**2 * th for th in thetas]
    return thetas, dt, s, S, m, f, sig2, sb2


def official_unidb_step_mean(x, mu, eps_hat, i, T=100, lam=30 / 255, gamma_inv=1e-7):
    """x − [θ_i(μ − x) + h_i − σ_i²·score]·dt, h and score 0 at i == 100 (sde_utils.py L254-260, L322-337)."""
    thetas, dt, s, S, m, f, sig2, sb2 = unidb_official_tables(T, lam, gamma_inv)
    if i == T:
        h, score = 0.0, 0.0
    else:
        h = -(sig2[i] * math.exp(-2 * (S - s[i]))) / (gamma_inv + sb2(S - s[i])) * (x - mu)
        score = -eps_hat / f[i]
    return x - (thetas[i] * (mu - x) + h - sig2[i] * score) * dt, math.sqrt(sig2[i] * dt)


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


# ============================================================================================== ResShift
def resshift_official_sqrt_etas(T=15, kappa=2.0, min_noise_level=0.04, etas_end=0.99, power=0.3):
    """gaussian_diffusion.py L32-66 ("exponential"), in numpy."""
    etas_start = min(min_noise_level / kappa, min_noise_level)
    increaser = math.exp(1 / (T - 1) * math.log(etas_end / etas_start))
    base = np.ones([T]) * increaser
    power_timestep = np.linspace(0, 1, T, endpoint=True) ** power * (T - 1)
    return np.power(base, power_timestep) * etas_start


@pytest.mark.parametrize("config", [{}, {"T": 4, "min_noise_level": 0.2}])  # NeurIPS 2023; journal version
def test_resshift_schedule_and_marginal_against_the_official_tables(config):
    b = bz.get_bridge("resshift", **config)
    T = b.options["T"]
    sqrt_etas = resshift_official_sqrt_etas(**config)
    t = torch.arange(1, T + 1, dtype=F64) / T  # index k ↔ t = (k+1)/T
    a, bb, c = coefficients(b, t)
    etas = torch.from_numpy(sqrt_etas**2)
    torch.testing.assert_close(bb, etas, atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(a, 1 - etas, atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(c, 2.0 * torch.from_numpy(sqrt_etas), atol=1e-14, rtol=1e-12)  # κ·sqrt(η), L205-208
    assert c[0].item() == pytest.approx(config.get("min_noise_level", 0.04))  # κ·sqrt(η_1) = min_noise_level
    assert bb[-1].item() == pytest.approx(0.9801) and not b.pinned
    assert b.objective == "x0" and b.options["loss_type"] == "l2" and b.default_nfe == T


def test_resshift_sampler_reproduces_the_official_loop():
    T, kappa = 15, 2.0
    b = bz.get_bridge("resshift", input_scaling="none")
    sqrt_etas = resshift_official_sqrt_etas()
    etas = sqrt_etas**2
    etas_prev = np.append(0.0, etas[:-1])
    alpha = etas - etas_prev
    post_var = kappa**2 * etas_prev / etas * alpha  # L152-161
    post_var_clipped = np.append(post_var[1], post_var[1:])
    mu = image_pair(8, (1, 3, 6, 6))[1]
    net = lambda x, y, k: 1.4 * torch.tanh(0.5 * x + 0.5 * y + 0.02 * k)  # noqa: E731 - x̂0 of a network at step k
    gen = torch.Generator().manual_seed(9)
    x = mu + kappa * sqrt_etas[-1] * torch.randn(mu.shape, generator=gen, dtype=F64)  # prior_sample, L517-529
    for k in range(T - 1, -1, -1):  # p_sample_loop_progressive, L451-472
        x0_hat = net(x, mu, k).clamp(-1, 1)
        mean = etas_prev[k] / etas[k] * x + alpha[k] / etas[k] * x0_hat
        noise = torch.randn(x.shape, generator=gen, dtype=F64)
        x = mean + (k != 0) * math.exp(0.5 * math.log(post_var_clipped[k])) * noise
    model = lambda x_, y, t: net(x_, y, round(t[0].item() * T) - 1)  # noqa: E731
    ours = b.sample(model, mu, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(ours, x, atol=1e-12, rtol=0)


def test_resshift_network_input_scaling_and_loss():
    seen = {}

    def net(x, y, t):
        seen["x"] = x
        return torch.zeros_like(x)

    x_t, mu = image_pair(9)
    t = torch.full((2,), 7 / 15, dtype=F64)
    eta = resshift_official_sqrt_etas()[6] ** 2
    for mode, scale in (("pixel", 3 * 2.0 * math.sqrt(eta) + 1), ("latent", math.sqrt(4.0 * eta + 1)), ("none", 1.0)):
        bz.get_bridge("resshift", input_scaling=mode).wrap(net)(x_t, mu, t)  # _scale_input, L598-609
        torch.testing.assert_close(seen["x"], x_t / scale, atol=1e-14, rtol=0, msg=mode)
    b = bz.get_bridge("resshift")
    x0 = image_pair(10)[0]
    out = x0 + 0.1 * torch.cos(5 * x0)
    torch.testing.assert_close(b.loss(out, x0, mu, x_t, t), ((x0 - out) ** 2).mean())  # unweighted MSE, L565-581


def test_resshift_samplers_under_the_oracle_and_in_monte_carlo():
    x0, mu = image_pair(11)
    assert oracle_samplers_hold(bz.get_bridge("resshift"), x0, mu, nfes=(5, 15)) == ["ddim", "dbim", "heun", "dpmpp_2m"]
    for pi in ("one", "residual"):
        b = bz.get_bridge("resshift", pi=pi)
        out = b.sample(oracle(b, x0), mu, generator=torch.Generator().manual_seed(0))
        assert (out - x0).abs().max() < 1e-12  # the last step has η_s = 0: x̂0 exactly
        assert marginal_mismatch(b, "resshift", 100) < 0.1, pi


def test_resshift_is_not_a_generalized_bridge():
    b = bz.get_bridge("resshift")
    t = torch.linspace(0.02, 1, 50, dtype=F64)
    a, _, c = coefficients(b, t)
    torch.testing.assert_close(c**2 / (1 - a), torch.full_like(a, 4.0))  # c² = κ²(1 − a), κ = 2
    assert not_a_generalized_bridge(a, c) > 1.5  # no (S, λ) reproduces (a, c)
    assert b.relation["kind"] == "none"
    # the check recognizes a generalized bridge: GOUB's coefficients give a constant ratio at its own S
    goub = bz.get_bridge("goub")
    ga, _, gc = coefficients(goub, torch.linspace(0.05, 0.95, 50, dtype=F64))
    u = torch.asinh(ga * math.sinh(goub.clock.total))
    ratio = gc**2 / (ga * torch.sinh(goub.clock.total - u))
    torch.testing.assert_close(ratio, torch.full_like(ratio, 2 * goub.lam), atol=1e-12, rtol=1e-9)
