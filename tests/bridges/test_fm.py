"""fm (plugins/bridges/fm.py): the π = 0 generalized bridge after a time change, its defaults and Euler sampler."""


import pytest
import torch

import bridgezoo as bz

from helpers import F64


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
