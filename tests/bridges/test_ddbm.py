"""ddbm-ve and ddbm-vp (plugins/bridges/ddbm.py) against their official code (docs/bridges.md, "ddbm-ve and
ddbm-vp"): marginals, preconditioning, reference values, network evaluations, the Heun sampler, condition scaling."""


import pytest
import torch

import bridgezoo as bz

from helpers import F64, pair


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


def test_ddbm_heun_clamps_its_result_like_karras_sample():
    """alexzhou907/DDBM karras_diffusion.py: `sample_heun` (L321-429) then `return x_0.clamp(-1, 1)` (L262).
    With σ_max = 2 and σ_min = 0.3 the last Euler step leaves [-1, 1] where D is saturated."""
    smax, smin, rho, N = 2.0, 0.3, 7.0, 4
    b = bz.get_bridge("ddbm-ve", sigma_max=smax, sigma_min=smin)
    mu = pair(seed=8, shape=(1, 3, 4, 4))[1]
    den = lambda x, sigma: (1.4 * torch.tanh(0.8 * x + 0.3 * mu + 0.05 * sigma)).clamp(-1, 1)  # noqa: E731

    def official(final_clamp):
        ramp = torch.linspace(0, 1, N, dtype=F64)
        sig = ((smax - 1e-4) ** (1 / rho) + ramp * (smin ** (1 / rho) - (smax - 1e-4) ** (1 / rho))) ** rho
        sig = sig.tolist() + [0.0]
        to_d = lambda x, s, D: -s * ((D - x) / s**2 - (mu - x) / (smax**2 - s**2))  # noqa: E731
        x = mu.clone()
        for s, sn in zip(sig[:-1], sig[1:]):
            d = to_d(x, s, den(x, s))
            x2 = x + d * (sn - s)
            x = x2 if sn == 0 else x + 0.5 * (d + to_d(x2, sn, den(x2, sn))) * (sn - s)
        return x.clamp(-1, 1) if final_clamp else x

    ours = b.sample(lambda x, m, t: den(x, t[0].item() * smax), mu, nfe=N)
    torch.testing.assert_close(ours, official(True), atol=1e-12, rtol=0)
    assert (official(False) - official(True)).abs().max() > 1e-3  # the clamp matters here
