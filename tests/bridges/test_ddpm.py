"""ddpm (plugins/bridges/ddpm.py) against the official code (tests/reference/ddpm.py): schedule, π, the pure-noise
start, the ancestral loop, DDIM with η as the shared dbim, and its relation 'none'."""

import math

import numpy as np
import pytest
import torch

import bridgezoo as bz
from bridgezoo.errors import OptionError
from bridgezoo.generalized import sinh_coefficients
from bridgezoo.testing import check_bridge

from helpers import F64, pair, smooth_net
from reference.ddpm import ddpm_tables


@pytest.mark.parametrize("name", ["ddpm"])
def test_contract(name):
    check_bridge(name)


def test_ddpm_schedule_is_the_official_table_on_the_official_grid():
    b = bz.get_bridge("ddpm")
    _, abar = ddpm_tables()
    t = torch.arange(1, 1001, dtype=F64) / 1000  # index k ↔ t = (k+1)/T
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(a, torch.tensor(np.sqrt(abar)), atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(c, torch.tensor(np.sqrt(1 - abar)), atol=1e-14, rtol=1e-12)
    assert torch.equal(bb, torch.zeros_like(bb))
    assert a[-1].item() == pytest.approx(0.00635, abs=5e-5) and c[-1].item() == pytest.approx(1, abs=3e-5)
    assert b.coefficients(torch.tensor(0.0, dtype=F64))[0].item() == 1.0
    assert (b.objective, b.options["loss_type"], b.pi, b.default_nfe, b.samplers[:2]) == \
        ("noise", "l2", "one", 1000, ("ancestral", "ddim"))
    assert torch.equal(b.timesteps(1000, "ancestral"), torch.arange(1000, -1, -1, dtype=F64) / 1000)


def test_ddpm_defines_only_pi_one_and_says_why():
    for pi in ("zero", "residual"):
        with pytest.raises(OptionError, match=r"pi='%s' is not defined for this method: conditional diffusion starts "
                                              r"from pure noise" % pi):
            bz.get_bridge("ddpm", pi=pi)
    assert bz.get_bridge("ddpm").defines(pi="one") and not bz.get_bridge("ddpm").defines(pi="zero")


def test_ddpm_starts_from_pure_noise_whatever_mu():
    b = bz.get_bridge("ddpm")
    mu = torch.full((1, 3, 64, 64), 0.9, dtype=F64)
    x = b.initial_state(mu, torch.Generator().manual_seed(0))
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05  # N(0, I), official L206


@pytest.mark.parametrize("variance", ["large", "small"])
def test_ddpm_ancestral_reproduces_the_official_loop(variance):
    """p_sample_loop (L200-215) with p_mean_variance (L128-168): eps-prediction, clipped x̂0, posterior mean
    (L114-126), σ² = β (fixedlarge) or the posterior variance (fixedsmall), no noise at index 0."""
    T = 50
    betas, abar = ddpm_tables(T, 1e-3, 0.2)
    abar_prev = np.append(1.0, abar[:-1])
    post_var = betas * (1 - abar_prev) / (1 - abar)
    coef1 = betas * np.sqrt(abar_prev) / (1 - abar)
    coef2 = (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar)
    mu = pair(3)[1][:1]
    eps_net = lambda x, i: 0.8 * torch.tanh(x - 0.3 * mu + 0.01 * i)  # noqa: E731 - ε̂ at official index i
    g = torch.Generator().manual_seed(5)
    x = torch.randn(mu.shape, generator=g, dtype=F64)
    for i in range(T - 1, -1, -1):
        x0 = (np.sqrt(1 / abar[i]) * x - np.sqrt(1 / abar[i] - 1) * eps_net(x, i)).clamp(-1, 1)
        mean = coef1[i] * x0 + coef2[i] * x
        var = betas[i] if variance == "large" else post_var[i]
        x = mean + (math.sqrt(var) * torch.randn(x.shape, generator=g, dtype=F64) if i > 0 else 0)
    b = bz.get_bridge("ddpm", T=T, beta_start=1e-3, beta_end=0.2, variance=variance)
    ours = b.sample(lambda x_, m, t: eps_net(x_, round(t[0].item() * T) - 1), mu, nfe=T,
                    generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours, x, atol=1e-10, rtol=0)


def test_ddpm_ddim_with_eta_is_the_shared_dbim():
    """DDIM (Song et al. 2021, Eq. 12): x_s = sqrt(ᾱ_s)·x̂0 + sqrt(1 − ᾱ_s − σ²)·ε̂ + σ·z, σ = η·sqrt((1 − ᾱ_s)/(1 − ᾱ_t))
    ·sqrt(1 − ᾱ_t/ᾱ_s): one step from a fixed state, same noise."""
    b = bz.get_bridge("ddpm", clip_x0=False)
    x0, mu = pair(1)
    t, s, eta = torch.full((2,), 0.7, dtype=F64), torch.full((2,), 0.4, dtype=F64), 0.6
    (at, _, ct), (as_, _, cs) = b.coefficients(t), b.coefficients(s)
    x = at * x0 + ct * torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    eps = smooth_net(x, mu, t)
    x0_hat = (x - ct * eps) / at
    sigma = eta * torch.sqrt(cs**2 / ct**2) * torch.sqrt(1 - at**2 / as_**2)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=F64)
    expected = as_ * x0_hat + torch.sqrt(cs**2 - sigma**2) * eps + sigma * z
    ours, _ = b.get_sampler(f"dbim:eta={eta}").step(b, smooth_net, x, mu, t, s, torch.Generator().manual_seed(9))
    torch.testing.assert_close(ours, expected, atol=1e-12, rtol=0)


def test_ddpm_relation_none_is_true_numerically():
    """Every generalized bridge has a + b = 1 (a = Θ, b = 1 − Θ); DDPM has b = 0 and a < 1 for t > 0 (and is a VP
    diffusion, a² + c² = 1), so no (θ, λ) and no time change maps one onto the other."""
    b = bz.get_bridge("ddpm")
    t = torch.linspace(0.01, 1, 50, dtype=F64)
    a, bb, c = b.coefficients(t)
    assert b.relation["kind"] == "none"
    assert ((a + bb) < 1 - 1e-4).all()
    torch.testing.assert_close(a**2 + c**2, torch.ones_like(a), atol=1e-12, rtol=0)
    theta, one_minus, _ = sinh_coefficients(torch.linspace(0, 2, 50, dtype=F64), 2.0, 0.1)
    torch.testing.assert_close(theta + one_minus, torch.ones_like(theta))
