"""i2sb (plugins/bridges/i2sb.py) against its official code (tests/reference/i2sb.py), its samplers under the oracle
and in Monte Carlo, and its relation to the generalized bridge. The bridge contract runs in tests/test_contract.py."""

import math

import numpy as np
import pytest
import torch

import bridgezoo as bz
from bridgezoo.generalized import sinh_coefficients
from bridgezoo.testing import image_pair, oracle

from helpers import F64, coefficients, marginal_mismatch, oracle_samplers_hold
from reference.i2sb import i2sb_official_tables, official_space_indices


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
