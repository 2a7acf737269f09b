"""IR-SDE, RDDM, DDBM-VE/VP and BBDM against independent transcriptions of their official code (BRIDGES.md
§3-§7), the limits that relate them to the generalized bridge, and the stochastic samplers under the oracle."""

import math

import pytest
import torch

import bridgezoo as bz
from bridgezoo.generalized import sinh_coefficients

from conftest import oracle
from test_reference import goub_code_tables

F64 = torch.float64


def pair(seed=0, shape=(2, 3, 6, 6)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g, dtype=F64) * 1.8 - 0.9
    mu = (x0 + 0.4 * torch.randn(shape, generator=g, dtype=F64)).clamp(-0.9, 0.9)
    return x0, mu


# ----------------------------------------------------------------------------- IR-SDE
def test_irsde_schedule_and_marginal():
    b = bz.get_bridge("irsde")
    thetas, dt, s, *_ = goub_code_tables()  # same construction as GOUB (BRIDGES.md §3)
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


# ----------------------------------------------------------------------------- RDDM
def rddm_tables(T=1000, sum_scale=1.0):
    Z = T * (T + 1) / 2
    abar = torch.cumsum(torch.tensor([(T - k) / Z for k in range(T)], dtype=F64), 0)
    bbar2 = torch.cumsum(torch.tensor([sum_scale * (k + 1) / Z for k in range(T)], dtype=F64), 0)
    return abar, bbar2


def test_rddm_tables():
    b = bz.get_bridge("rddm")
    abar, bbar2 = rddm_tables()
    t = (torch.arange(1000, dtype=F64) + 1) / 1000
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(bb, abar, atol=1e-12, rtol=0)
    torch.testing.assert_close(c**2, bbar2, atol=1e-12, rtol=0)
    torch.testing.assert_close(a, 1 - abar)
    assert bb[0].item() == pytest.approx(0.001998, abs=1e-6) and bb[-1].item() == pytest.approx(1.0)
    assert (c[0] ** 2).item() == pytest.approx(2.0e-6, abs=1e-8) and (c[-1] ** 2).item() == pytest.approx(1.0)
    assert b.objective == "res_noise" and b.out_channels(3) == 6 and b.default_nfe == 10
    assert b.relation["kind"] == "none"
    torch.testing.assert_close(b.timesteps(10)[:3], torch.tensor([1.0, 0.9, 0.8], dtype=F64))  # 999, 899, 799


def test_rddm_sampler_reproduces_the_official_update_and_fixes_the_residual_clip():
    T = 1000
    abar, bbar2 = rddm_tables()
    bbar = bbar2.sqrt()
    x0, mu = pair(5, (1, 3, 5, 5))
    net = lambda x, m, k: torch.cat([1.6 * torch.tanh(m - x + 0.001 * k), 0.5 * torch.tanh(x + m)], 1)  # noqa: E731

    def official(clip_res):
        gen = torch.Generator().manual_seed(3)
        x = mu + torch.randn(mu.shape, generator=gen, dtype=F64)
        times = torch.linspace(-1, T - 1, 11).int().tolist()[::-1]
        for k, k_next in zip(times[:-1], times[1:]):
            out = net(x, mu, k)
            res, eps = out[:, :3].clamp(-clip_res, clip_res), out[:, 3:]
            x0_hat = (x - abar[k] * res - bbar[k] * eps).clamp(-1, 1)
            if k_next < 0:
                return x0_hat
            x = x - (abar[k] - abar[k_next]) * res - (bbar[k] - bbar[k_next]) * eps

    model = lambda x, m, t: net(x, m, round(t[0].item() * T) - 1)  # noqa: E731
    for clip_res, opts in ((1.0, {"official_residual_clip": True}), (2.0, {})):
        ours = bz.get_bridge("rddm", **opts).sample(model, mu, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(ours, official(clip_res), atol=1e-12, rtol=0)
    assert (official(1.0) - official(2.0)).abs().max() > 1e-3  # the clip matters where |R̂| > 1


def test_rddm_loss_is_l1_plus_l1_and_two_networks():
    b = bz.get_bridge("rddm")
    x0, mu = pair(6)
    t = torch.full((2,), 0.5, dtype=F64)
    x_t = b.q_sample(x0, mu, t, torch.randn_like(x0))
    target = b.target(x0, mu, x_t, t)
    out = target + torch.cat([torch.full_like(x0, 0.1), torch.full_like(x0, 0.3)], 1)
    assert b.loss(out, x0, mu, x_t, t).item() == pytest.approx(0.1 + 0.3)
    net = bz.get_backbone("unet-test", out_channels=6)
    two = bz.get_bridge("rddm", networks=2).wrap(net)
    assert sum(p.numel() for p in two.parameters()) == 2 * sum(p.numel() for p in net.parameters())
    with torch.no_grad():
        y = two(x0.float(), mu.float(), t.float())
    assert y.shape == (2, 6, 6, 6)
    torch.testing.assert_close(y[:, :3], net(x0.float(), mu.float(), t.float())[:, :3])


# ----------------------------------------------------------------------------- DDBM
def test_ddbm_ve_marginal_and_preconditioning():
    b = bz.get_bridge("ddbm-ve")
    sig = torch.tensor([0.002, 1.0, 40.0, 79.9], dtype=F64)
    a, bb, c = (v.flatten() for v in b.coefficients(sig / 80))
    torch.testing.assert_close(a, 1 - sig**2 / 6400)
    torch.testing.assert_close(c, sig * (1 - sig**2 / 6400).sqrt())
    c_in, c_skip, c_out = (v.flatten() for v in b.preconditioning(sig / 80))
    A = a**2 * 0.25 + bb**2 * 0.25 + c**2
    torch.testing.assert_close(c_in, A.rsqrt())
    torch.testing.assert_close(c_skip, a * 0.25 / A)
    torch.testing.assert_close(c_out, (bb**2 * 0.0625 + 0.25 * c**2).sqrt() * A.rsqrt())
    torch.testing.assert_close(b.loss_weight(sig / 80), 1 / c_out**2)
    assert b.relation["kind"] == "limit" and b.objective == "x0" and b.options["loss_type"] == "l2"


def test_ddbm_vp_reference_values_and_official_T1_option():
    b = bz.get_bridge("ddbm-vp")
    a, bb, c = (v.item() for v in b.coefficients(torch.tensor([0.5], dtype=F64)))
    assert a == pytest.approx(0.7105, abs=1e-4) and bb == pytest.approx(0.2604, abs=1e-4)
    assert a + bb == pytest.approx(0.9709, abs=1e-4) and b.relation["kind"] == "none"
    t = torch.tensor([0.3, 0.7], dtype=F64)
    for u, v in zip(b.preconditioning(t), bz.get_bridge("ddbm-vp", official_precond_T1=True).preconditioning(t)):
        torch.testing.assert_close(u, v)  # identical at sigma_max = 1
    b2, b2_off = bz.get_bridge("ddbm-vp", sigma_max=2.0), bz.get_bridge("ddbm-vp", sigma_max=2.0, official_precond_T1=True)
    assert (b2.preconditioning(t)[2] - b2_off.preconditioning(t)[2]).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["ddbm-ve", "ddbm-vp"])
def test_ddbm_network_evaluations(name):
    mu = torch.zeros(1, 3, 4, 4, dtype=F64)
    for churn, expected in ((0.0, 79), (0.33, 119)):
        b = bz.get_bridge(name, churn=churn)
        _, traj = b.sample(lambda x, m, t: torch.zeros_like(x), mu, nfe=40, return_trajectory=True,
                           generator=torch.Generator().manual_seed(0))
        assert traj.nfe == expected


def test_ddbm_ve_heun_reproduces_the_official_sampler():
    smax, smin, rho, N = 80.0, 0.002, 7.0, 12
    b = bz.get_bridge("ddbm-ve")
    mu = pair(8, (1, 3, 4, 4))[1]
    den = lambda x, sigma: torch.tanh(0.7 * x + 0.2 * mu + 0.01 * sigma)  # noqa: E731 - a fixed denoiser D(x, σ)
    ramp = torch.linspace(0, 1, N, dtype=F64)
    sig = ((smax - 1e-4) ** (1 / rho) + ramp * (smin ** (1 / rho) - (smax - 1e-4) ** (1 / rho))) ** rho
    sig = torch.cat([sig, torch.zeros(1, dtype=F64)]).tolist()

    def to_d(x, s, D):
        return -s * ((D - x) / s**2 - (mu - x) / (smax**2 - s**2))

    x = mu.clone()
    for i in range(N):
        s, sn = sig[i], sig[i + 1]
        d = to_d(x, s, den(x, s).clamp(-1, 1))
        x2 = x + d * (sn - s)
        if sn == 0:
            x = x2
        else:
            x = x + 0.5 * (d + to_d(x2, sn, den(x2, sn).clamp(-1, 1))) * (sn - s)
    ours = b.sample(lambda x_, m, t: den(x_, t[0].item() * smax), mu, nfe=N)
    torch.testing.assert_close(ours, x, atol=1e-10, rtol=0)


def test_ddbm_condition_scaling():
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, cond, t):
            seen["cond"] = cond
            return torch.zeros_like(x)

    mu = torch.full((1, 3, 2, 2), 0.4)
    t = torch.full((1,), 0.5)
    bz.get_bridge("ddbm-ve").wrap(Spy())(mu, mu, t)
    assert torch.allclose(seen["cond"], mu / 0.5)
    bz.get_bridge("ddbm-ve", condition_scaling="none").wrap(Spy())(mu, mu, t)
    assert torch.equal(seen["cond"], mu)


# ----------------------------------------------------------------------------- BBDM
def test_bbdm_schedule_and_step_list():
    b = bz.get_bridge("bbdm")
    t = (torch.arange(1000, dtype=F64) + 1) / 1000
    a, m, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(m, torch.linspace(0.001, 0.999, 1000, dtype=F64), atol=1e-14, rtol=0)
    assert (c**2).max().item() == pytest.approx(0.5, abs=1e-5) and (c[-1] ** 2).item() == pytest.approx(0.001998, abs=1e-9)
    steps = torch.round(b.timesteps(200) * 1000 - 1).long().tolist()
    assert len(steps) == 201 and steps[:6] == [999, 993, 988, 983, 978, 973]
    assert steps[-7:] == [20, 15, 10, 5, 1, 0, -1]
    assert b.relation["kind"] == "limit" and not b.pinned and b.objective == "xt_minus_x0"


def test_bbdm_cosine_step_list_stays_inside_the_schedule():
    official = (torch.cos(torch.linspace(0, 1000, 21, dtype=F64) / 1000 * math.pi) + 1) / 2 * 1000
    assert official[0].item() == 1000  # one past the last index, 999
    grid = bz.get_bridge("bbdm", sample_type="cosine").timesteps(20)
    steps = torch.round(grid[:-1] * 1000 - 1)
    assert steps[0].item() == 999 and steps[-1].item() == 0 and (steps[1:] < steps[:-1]).all()
    off = bz.get_bridge("bbdm", sample_type="cosine", official_cosine_steps=True).timesteps(20)
    torch.testing.assert_close(off[:-1] * 1000 - 1, official)
    assert off[0].item() > 1  # the official list evaluates the schedule past its end


def test_bbdm_skip_sampler_official_update_and_eta_fix():
    T = 1000
    m = torch.linspace(0.001, 0.999, T, dtype=F64)
    delta = 2 * (m - m**2)
    mu = pair(9, (1, 3, 4, 4))[1]
    net = lambda x, y, k: 0.5 * torch.tanh(x - y + 0.001 * k)  # noqa: E731 - predicts x_t − x0

    def official(eta, steps=20):
        gen = torch.Generator().manual_seed(4)
        idx = torch.arange(T - 1, 1, -(T - 1) / (steps - 2), dtype=F64).long().tolist() + [1, 0]
        x = mu.clone()
        for i, k in enumerate(idx):
            x0 = (x - net(x, mu, k)).clamp(-1, 1)
            if k == 0:
                return x0
            n = idx[i + 1]
            var = (delta[k] - delta[n] * (1 - m[k]) ** 2 / (1 - m[n]) ** 2) * delta[n] / delta[k]
            x = ((1 - m[n]) * x0 + m[n] * mu + ((delta[n] - var) / delta[k]).sqrt() * (x - (1 - m[k]) * x0 - m[k] * mu)
                 + eta * var.sqrt() * torch.randn(x.shape, generator=gen, dtype=F64))

    model = lambda x, y, t: net(x, y, round(t[0].item() * T) - 1)  # noqa: E731
    run = lambda **o: bz.get_bridge("bbdm", **o).sample(model, mu, nfe=20, generator=torch.Generator().manual_seed(4))  # noqa: E731
    torch.testing.assert_close(run(eta=0.5, official_eta=True), official(0.5), atol=1e-12, rtol=0)
    torch.testing.assert_close(run(eta=1.0), official(1.0), atol=1e-12, rtol=0)  # default == official at η = 1
    assert (run(eta=0.5) - official(0.5)).abs().max() > 1e-4  # η now scales the mean coefficient too
    x0, mu2 = pair(10)
    b0 = bz.get_bridge("bbdm", eta=0.0)  # η = 0 is deterministic DDIM: oracle-exact
    assert b0.sampler_info("skip").deterministic
    assert (b0.sample(oracle(b0, x0), mu2, nfe=20) - x0).abs().max() < 1e-9


# ----------------------------------------------------------------------------- limits
def _errors(scales, gb_coeffs, target):
    errs = [max((u - v).abs().max().item() for u, v in zip(gb_coeffs(e), target)) for e in scales]
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:])), errs
    return errs


def test_irsde_is_the_limit_of_a_growing_total_schedule():
    b = bz.get_bridge("irsde")
    t = torch.linspace(0, 1, 101, dtype=F64)
    s = b.clock(t)
    lam = b.options["stationary_std"] ** 2
    target = [v.flatten() for v in b.coefficients(t)]
    errs = _errors([6, 8, 12, 16, 24], lambda S: sinh_coefficients(s, S, lam), target)
    assert errs[-1] < 1e-6


def test_ddbm_ve_and_bbdm_are_theta_to_zero_limits():
    t = torch.linspace(0, 1, 101, dtype=F64)
    ve = bz.get_bridge("ddbm-ve", sigma_max=2.0)
    target = [v.flatten() for v in ve.coefficients(t)]
    # constant θ = ε, so θ̄_{0:t} = ε·m with m = σ²/σ_M² = t², and 2λε = σ_M²
    errs = _errors([1.0, 0.5, 0.2, 0.1, 0.01], lambda e: sinh_coefficients(e * t**2, e, 4.0 / (2 * e)), target)
    assert errs[-1] < 1e-4
    bb = bz.get_bridge("bbdm")
    m = bb.m(t)
    target = [v.flatten() for v in bb.coefficients(t)]
    errs = _errors([1.0, 0.5, 0.2, 0.1, 0.01], lambda e: sinh_coefficients(e * m, e, 1.0 / e), target)
    assert errs[-1] < 1e-4


# ----------------------------------------------------------------------------- stochastic samplers, oracle
def rms_error(b, sampler, nfe, seed=0):
    x0, mu = pair(11, (4, 3, 16, 16))
    out = b.sample(oracle(b, x0), mu, sampler=sampler, nfe=nfe, generator=torch.Generator().manual_seed(seed))
    return (out - x0).square().mean().sqrt().item()


def last_step_std(b, nfe):
    """The std of the noise the reverse SDE injects in its last step: sqrt(g²·Δ) (π = 1)."""
    grid = b.timesteps(nfe, "reverse_sde")
    t, s = grid[-2:-1], grid[-1:]
    return (b.diffusion_sq(t) * b.clock_increment(t, s)).sqrt().item()


@pytest.mark.parametrize("name", ["irsde", "goub", "rdbm"])
def test_reverse_sde_error_is_within_the_implied_std_and_shrinks_with_nfe(name):
    b = bz.get_bridge(name, pi="one")
    errs = [rms_error(b, "reverse_sde", n) for n in (10, 25, 100)]
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] <= 2 * last_step_std(b, 100), (errs, last_step_std(b, 100))


def marginal_mismatch(b, sampler="reverse_sde", nfe=100):
    """Under the oracle, the reverse SDE's states must follow the forward marginal q(x_t | x0, μ): the standardized
    residual (x_t − a·x0 − b·μ)/c over all pixels has mean 0 and std 1. Returns the worst |mean|, |std − 1|."""
    x0, mu = pair(11, (4, 3, 16, 16))
    _, traj = b.sample(oracle(b, x0), mu, sampler=sampler, nfe=nfe, generator=torch.Generator().manual_seed(0),
                       return_trajectory=True)
    worst = 0.0
    for k in (nfe // 4, nfe // 2, 3 * nfe // 4):
        a, bb, c = b.coefficients(traj.t[k : k + 1], x0)
        z = (traj.x[k] - a * x0 - bb * mu) / c
        worst = max(worst, abs(z.mean().item()), abs(z.std().item() - 1))
    return worst


@pytest.mark.parametrize("name", ["irsde", "goub", "rdbm"])
def test_reverse_sde_states_follow_the_forward_marginals(name):
    assert marginal_mismatch(bz.get_bridge(name, pi="one")) < 0.1


def test_the_stochastic_oracle_tests_catch_a_flipped_sign_and_a_wrong_coefficient(monkeypatch):
    from bridgezoo_plugins.irsde import IRSDE

    assert marginal_mismatch(bz.get_bridge("irsde")) < 0.1
    monkeypatch.setattr(IRSDE, "drift", lambda self, x, mu, t: x - mu)  # flipped sign
    assert marginal_mismatch(bz.get_bridge("irsde")) > 0.3  # fails it by far
    monkeypatch.undo()
    # a units slip: the std converted twice, g² = 2·(2λ)² instead of 2λ²
    monkeypatch.setattr(IRSDE, "diffusion_sq", lambda self, t: torch.full((t.shape[0], 1, 1, 1), 8 * self.lam**2, dtype=F64))
    assert marginal_mismatch(bz.get_bridge("irsde")) > 0.1  # fails the criterion of the test above


def test_exact_stochastic_samplers_and_ddbm_churn():
    for name, sampler, opts in (("irsde", "posterior", {}), ("bbdm", "skip", {}), ("rddm", "rddm", {"eta": 1.0})):
        assert rms_error(bz.get_bridge(name, **opts), sampler, 20) < 1e-9, name  # each step samples q(x_s | x_t, x0)
    for name in ("ddbm-ve", "ddbm-vp"):
        b = bz.get_bridge(name, churn=0.33)
        tau = b.options["sigma_min"]
        std = math.sqrt(b._g2(torch.tensor(tau, dtype=F64)).item() * 0.33 * tau)  # the last churn injection
        assert rms_error(b, "heun", 40) <= 2 * std + 1e-6, name
