"""indi (plugins/bridges/indi.py) against its paper (no official code): the path and its iteration, the oracle and
stochastic marginals, the straight-path relation after a time change."""


import pytest
import torch

import bridgezoo as bz
from bridgezoo.errors import OptionError
from bridgezoo.testing import check_bridge, oracle

from helpers import F64, pair, smooth_net, straight_path_relation_holds


@pytest.mark.parametrize("name", ["indi"])
def test_contract(name):
    check_bridge(name)


# ----------------------------------------------------------------------------- InDI
def test_indi_path_and_its_iteration():
    """Paper: x_t = (1 − t)x + t·y + t·ε_t·η; x_{t−δ} = (δ/t)·F(x_t, t) + (1 − δ/t)·x_t (+ noise)."""
    b = bz.get_bridge("indi", eps=0.05, eps_ratio=2.0, pi="one")
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=F64)
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(a, 1 - t)
    torch.testing.assert_close(bb, t)
    torch.testing.assert_close(c, t * 0.05 * (2 - t))  # ε_t = eps·(r − (r − 1)t)
    assert (b.objective, b.options["loss_type"]) == ("x0", "l2") and bz.get_bridge("indi").pi == "zero"
    # the deterministic iteration (r = 1) is the paper's formula, and the shared ddim exactly, for any network
    det = bz.get_bridge("indi", pi="one", clip_x0=False)
    x0, mu = pair(2)
    x = 0.3 * x0 + 0.7 * mu
    tt, ss = torch.full((2,), 0.7, dtype=F64), torch.full((2,), 0.45, dtype=F64)
    delta = 0.7 - 0.45
    ours, _ = det.get_sampler("indi").step(det, smooth_net, x, mu, tt, ss)
    torch.testing.assert_close(ours, (delta / 0.7) * smooth_net(x, mu, tt) + (1 - delta / 0.7) * x, atol=1e-14, rtol=0)
    torch.testing.assert_close(ours, det.get_sampler("ddim").step(det, smooth_net, x, mu, tt, ss)[0], atol=1e-14,
                               rtol=0)
    assert det.sampler_info("indi").deterministic and not b.sampler_info("indi").deterministic
    with pytest.raises(OptionError, match="must not grow with t"):
        bz.get_bridge("indi", eps_ratio=0.5)


@pytest.mark.parametrize("pi", ["one", "residual"])
def test_indi_oracle_and_stochastic_marginals(pi):
    x0, mu = pair(4)
    for opts in ({}, {"eps_ratio": 3.0, "eps": 0.1}):
        b = bz.get_bridge("indi", pi=pi, **opts)
        out = b.sample(oracle(b, x0), mu, nfe=7, generator=torch.Generator().manual_seed(0))
        assert (out - x0).abs().max() < 1e-12
    # the noisy iteration keeps the marginal t·ε_t: standardized states from an exact x_1, 20000 pixels
    b = bz.get_bridge("indi", pi=pi, eps=0.1, eps_ratio=3.0)
    x0 = torch.full((1, 1, 100, 200), 0.5, dtype=F64)
    mu = torch.full_like(x0, -0.3)
    g = torch.Generator().manual_seed(1)
    grid = b.timesteps(8)
    x = b.q_sample(x0, mu, grid[:1], torch.randn(x0.shape, generator=g, dtype=F64))
    states = [s for s, _ in b.get_sampler("indi").steps(b, oracle(b, x0), x, mu, grid, g)]
    for k in range(1, 8):
        a, bb, c = b.coefficients(grid[k : k + 1])
        z = (states[k - 1] - a * x0 - bb * mu) / (c * b.pi_field(x0, mu))
        assert abs(z.mean().item()) < 0.03 and abs(z.std().item() - 1) < 0.03, (k, z.mean().item(), z.std().item())


@pytest.mark.parametrize("name", ["indi"])
def test_straight_path_relation_exact_after_a_time_change(name):
    """π = zero: (a, b) = (1 − t, t) equals the generalized bridge's (Θ_τ, 1 − Θ_τ) at 1 − t = Θ_τ (λ = 0), for a
    θ schedule with total S = 2; with noise the relation is none: c(1) > 0 while Σ_1 = 0."""
    straight_path_relation_holds(name)
