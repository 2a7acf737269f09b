"""resshift (plugins/bridges/resshift.py) against its official code (tests/reference/resshift.py), its samplers under
the oracle and in Monte Carlo, and that it is not a generalized bridge."""

import math

import numpy as np
import pytest
import torch

import bridgezoo as bz
from bridgezoo.testing import image_pair, oracle

from helpers import F64, coefficients, marginal_mismatch, not_a_generalized_bridge, oracle_samplers_hold
from reference.resshift import resshift_official_sqrt_etas


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
