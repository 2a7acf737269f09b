"""The SDE bridges' samplers (plugins/bridges/sde.py: the reverse SDE of irsde, goub and rdbm) and the other
stochastic samplers under the oracle: errors within the injected noise, states that follow the forward marginals,
and that these checks catch a flipped sign or a wrong coefficient."""

import math

import pytest
import torch

import bridgezoo as bz
from bridgezoo.testing import oracle

from helpers import F64, pair


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
    from bridgezoo_plugins.bridges.irsde import IRSDE

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
