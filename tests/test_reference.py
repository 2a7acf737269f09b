"""Regression vectors and official-code reproductions, each recomputed here independently from BRIDGES.md's
transcription of the official formulas (plain Python floats, not the library's tables)."""

import itertools
import math

import pytest
import torch

import bridgezoo as bz

F64 = torch.float64


# ----------------------------------------------------------------------------- RDBM (MiliLab/RDBM code/rdbm.py)
def rdbm_code_tables(T=100, lamb=1e-4):
    """Θ[k], Σ[k], k = 0..T−1: iDDPM cosine betas as θ, inclusive cumsum (rdbm.py L93-102, L131-145)."""
    abar = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    thetas = [min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)]
    cum = list(itertools.accumulate(thetas))
    S = cum[-1]
    Theta = [math.sinh(S - c) / math.sinh(S) for c in cum]
    Sigma = [math.sqrt(max(2 * lamb * math.sinh(c) * math.sinh(S - c) / math.sinh(S), 0.0)) for c in cum]
    return S, Theta, Sigma


def test_rdbm_code_coefficients_and_reference_values():
    b = bz.get_bridge("rdbm", pi="one", lam=1e-4, objective="x0")
    S, Theta, Sigma = rdbm_code_tables()
    t = (torch.arange(100, dtype=F64) + 1) / 100
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(a, torch.tensor(Theta, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(c, torch.tensor(Sigma, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(a + bb, torch.ones_like(a))
    # BRIDGES.md §1 (≈ float64)
    assert b.clock.total == pytest.approx(7.878897, abs=1e-6)
    assert a[0].item() == pytest.approx(0.999369, abs=1e-6)
    assert c[0].item() == pytest.approx(3.552e-4, abs=1e-7)
    assert c.max().item() == pytest.approx(0.0099962, abs=1e-7) and int(c.argmax()) == 91
    assert a[-1].item() == 0 and c[-1].item() == 0
    assert c.max().item() == pytest.approx(math.sqrt(1e-4 * math.tanh(S / 2)), rel=1e-3)


def test_rdbm_paper_defaults():
    b = bz.get_bridge("rdbm")
    assert b.options["pi"] == "residual" and b.options["lam"] == pytest.approx(10 / 255)
    assert b.options["theta_schedule"] == "cosine" and b.options["T"] == 100 and b.default_nfe == 10
    assert b.objective == "noise" and b.options["loss_type"] == "l1" and b.samplers[0] == "ddim"


def official_rdbm_ddim(net, mu, T=100, nfe=10, lamb=1e-4):
    """rdbm.py ddim_sample, x0-prediction branch (L196-262): grid, init x = μ, first step with Σ_t = 0, last x = x̂0."""
    _, Theta, Sigma = rdbm_code_tables(T, lamb)
    times = torch.linspace(-1, T - 1, nfe + 1).int().tolist()[::-1]
    x, visited = mu.clone(), []
    for time, time_next in zip(times[:-1], times[1:]):
        visited.append(time)
        x0 = net(x, mu, time).clamp(-1, 1)
        if time_next < 0:
            x = x0
            continue
        th, sg, thn, sgn = Theta[time], Sigma[time], Theta[time_next], Sigma[time_next]
        if sg == 0:
            x = mu + thn * (x0 - mu)
        else:
            x = mu + (sgn / sg) * (x - mu) + (thn - th * sgn / sg) * (x0 - mu)
    return x, visited


def test_rdbm_ddim_reproduces_the_released_sampler():
    b = bz.get_bridge("rdbm", pi="one", lam=1e-4, objective="x0")
    g = torch.Generator().manual_seed(0)
    mu = torch.rand(2, 3, 8, 8, generator=g, dtype=F64) * 2 - 1
    net_k = lambda x, m, k: torch.tanh(1.3 * x - 0.4 * m + 0.01 * k + 0.2)  # noqa: E731 - any fixed network
    expected, visited = official_rdbm_ddim(net_k, mu)
    assert visited == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]
    seen = []

    def model(x, m, t):
        k = round(t[0].item() * 100) - 1  # the documented index ↔ t map: k ↔ t = (k+1)/T
        seen.append(k)
        return net_k(x, m, k)

    out = b.sample(model, mu, nfe=10)
    assert seen == visited
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    grid = b.timesteps(10)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], dtype=F64))


# ----------------------------------------------------------------------------- GOUB (Hammour-steak/GOUB sde_utils.py)
def goub_code_tables(T=100, lam=30 / 255, eps=0.005):
    """θ_i, dt, s_i and m, n, f_σ for i = 0..T from the official formulas (sde_utils.py L74-145, L181-187)."""
    N = T + 2
    abar = [math.cos(((k / N) + 0.008) / 1.008 * math.pi / 2) ** 2 for k in range(N + 1)]
    abar = [v / abar[0] for v in abar]
    thetas = [1 - v for v in abar[1:-1]]
    cum = [c - thetas[0] for c in itertools.accumulate(thetas)]
    dt = -math.log(eps) / cum[-1]
    s = [c * dt for c in cum]
    S = s[-1]
    sb2 = lambda x: lam**2 * (1 - math.exp(-2 * x))  # noqa: E731  σ̄² over a clock span x
    m = [math.exp(-si) * sb2(S - si) / sb2(S) for si in s]
    n = [((1 - math.exp(-si)) * sb2(S - si) + math.exp(-2 * (S - si)) * sb2(si)) / sb2(S) for si in s]
    f = [math.sqrt(sb2(si) * sb2(S - si) / sb2(S)) for si in s]
    return thetas, dt, s, m, n, f


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
    # BRIDGES.md §2 (≈), in the official [0, 1] units
    assert (c / 2).max().item() == pytest.approx(0.117060, abs=1e-6) and int(c.argmax()) == 73
    assert a[1].item() == pytest.approx(0.9998236, abs=1e-7) and (c[1] / 2).item() == pytest.approx(2.2096e-3, abs=1e-7)
    assert a[99].item() == pytest.approx(1.0426e-3, abs=1e-7) and (c[99] / 2).item() == pytest.approx(0.0509976, abs=1e-7)
    rel = b.relation
    assert rel["kind"] == "exact" and rel["lam"] == pytest.approx((60 / 255) ** 2)


def _official_goub_pieces(T=100, lam=60 / 255):
    thetas, dt, s, m, n, f = goub_code_tables(T, lam)
    S = s[-1]
    sig2 = [2 * lam**2 * th for th in thetas]  # σ_i² = λ²·2θ_i (L116-117)
    sbar2_tT = [lam**2 * (1 - math.exp(-2 * (S - si))) for si in s]
    return thetas, dt, s, m, n, f, S, sig2, sbar2_tT


def official_goub_step_mean(x, mu, eps_hat, i, T=100, lam=60 / 255):
    """x − [θ_i(μ − x) + h_i − σ_i²·score]·dt with h, score := 0 at i == T (sde_utils.py L223-246, L299-331)."""
    thetas, dt, s, m, n, f, S, sig2, sbar2_tT = _official_goub_pieces(T, lam)
    if i == T:
        h, score = 0.0, 0.0
    else:
        h = -sig2[i] * math.exp(-2 * (S - s[i])) / sbar2_tT[i] * (x - mu)
        score = -eps_hat / f[i]
    return x - (thetas[i] * (mu - x) + h - sig2[i] * score) * dt, math.sqrt(sig2[i] * dt)


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
    thetas, dt, s, m, n, f, S, sig2, sbar2_tT = _official_goub_pieces()
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


# ----------------------------------------------------------------------------- identities
def test_rdbm_on_goub_schedule_with_pi_one_equals_goub():
    goub = bz.get_bridge("goub")
    rdbm = bz.get_bridge("rdbm", pi="one", theta_schedule="irsde-cosine", lam=(60 / 255) ** 2, objective="noise")
    t = torch.linspace(0, 1, 1001, dtype=F64)
    for u, v in zip(goub.coefficients(t), rdbm.coefficients(t)):
        torch.testing.assert_close(u, v, atol=1e-14, rtol=0)
    mu = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=F64) * 2 - 1
    net = lambda x, m, t: 0.1 * torch.tanh(x - m + t.view(-1, 1, 1, 1))  # noqa: E731
    for sampler in ("ddim", "reverse_sde"):
        u = goub.sample(net, mu, nfe=100, sampler=sampler, generator=torch.Generator().manual_seed(1))
        v = rdbm.sample(net, mu, nfe=100, sampler=sampler, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(u, v, atol=1e-12, rtol=0)


@pytest.mark.parametrize("schedule", ["cosine", "linear", "sigmoid", "irsde-cosine"])
def test_fm_is_the_pi_zero_generalized_bridge_after_the_time_change(schedule):
    gb = bz.get_bridge("rdbm", pi="zero", theta_schedule=schedule, objective="velocity")
    fm = bz.get_bridge("fm", objective="velocity")
    t = torch.linspace(0.005, 0.995, 199, dtype=F64)
    Theta, gb_b, _ = gb.coefficients(t)
    tau = 1 - Theta.flatten()  # FM's own time: τ_FM = 1 − Θ_t runs from 0 (clean) to 1 (μ)
    fa, fb, _ = fm.coefficients(tau)
    torch.testing.assert_close(fa, Theta, atol=1e-14, rtol=0)
    torch.testing.assert_close(fb, gb_b, atol=1e-14, rtol=0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(199, 3, 2, 2, generator=g, dtype=F64)
    mu = torch.rand(199, 3, 2, 2, generator=g, dtype=F64)
    noise = torch.randn(x0.shape, generator=g, dtype=F64)
    torch.testing.assert_close(gb.q_sample(x0, mu, t, noise), fm.q_sample(x0, mu, tau, noise), atol=1e-14, rtol=0)
    # velocities map by the chain rule: v_GB(t) = v_FM(τ)·dτ/dt, dτ/dt = −dΘ/dt
    dTheta = gb.coefficient_derivatives(t)[0]
    v_gb = gb.target(x0, mu, None, t)
    v_fm = fm.target(x0, mu, None, tau)
    torch.testing.assert_close(v_gb, v_fm * (-dTheta), atol=1e-12, rtol=1e-9)
    assert fm.relation["kind"] == "exact" and fm.relation["pi"] == "zero"


def test_fm_defaults_and_euler_matches_closed_form():
    fm = bz.get_bridge("fm")
    assert fm.pi == "zero" and fm.objective == "velocity" and fm.options["loss_type"] == "l2"
    assert fm.samplers[0] == "euler" and fm.default_nfe == 100
    # with a constant velocity field v = μ − x0 Euler is exact; with v = c·x (linear), Euler's product formula
    mu = torch.full((1, 1, 1, 1), 0.5, dtype=F64)
    fm_raw = bz.get_bridge("fm", clip_x0=False)
    out = fm_raw.sample(lambda x, m, t: 2.0 * x, mu, nfe=7, sampler="euler")
    assert out.item() == pytest.approx(0.5 * (1 - 2.0 / 7) ** 7, rel=1e-12)


def test_theta_schedules_are_distinct_and_valid():
    totals, curves = {}, {}
    for schedule in ("cosine", "linear", "sigmoid", "constant", "irsde-cosine"):
        b = bz.get_bridge("rdbm", theta_schedule=schedule)
        t = torch.linspace(0, 1, 201, dtype=F64)
        a = b.coefficients(t)[0].flatten()
        assert a[0].item() == pytest.approx(1, abs=1e-14) and a[-1] == 0 and (a[1:] <= a[:-1]).all()
        totals[schedule] = b.clock.total
        curves[schedule] = a
    names = list(curves)
    for i, j in itertools.combinations(range(len(names)), 2):
        assert (curves[names[i]] - curves[names[j]]).abs().max() > 1e-2, (names[i], names[j])
    assert totals["sigmoid"] == pytest.approx(totals["linear"], rel=1e-9)  # a symmetric sigmoid keeps the sum
    assert totals["constant"] == pytest.approx(1.0)
    assert totals["linear"] == pytest.approx(100 * (1e-3 + 0.2) / 2, rel=1e-9)
