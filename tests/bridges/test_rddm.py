"""rddm (plugins/bridges/rddm.py) against its official code (tests/reference/rddm.py): tables, the sampler's update
(and the residual clip it fixes), the two-network L1 + L1 loss."""


import pytest
import torch

import bridgezoo as bz

from helpers import F64, pair
from reference.rddm import rddm_tables


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
