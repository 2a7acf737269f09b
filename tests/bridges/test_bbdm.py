"""bbdm (plugins/bridges/bbdm.py) against its official code (docs/bridges.md, "bbdm"): schedule, step lists, the skip
sampler's update and its η fix."""

import math

import pytest
import torch

import bridgezoo as bz
from bridgezoo.testing import oracle

from helpers import F64, pair


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


def test_bbdm_skip_list_is_the_official_float32_arange():
    """xuekt98/BBDM BrownianBridgeModel.py L71-73: `torch.arange(T − 1, 1, step=−((T − 1)/(steps − 2))).long()`
    + [1, 0], in torch's default dtype (float32): 666, 333, 222, 111 at 200 steps (float64 gives 665, …)."""
    T = 1000
    b = bz.get_bridge("bbdm")
    official = {steps: torch.cat([torch.arange(T - 1, 1, step=-((T - 1) / (steps - 2))).long(), torch.tensor([1, 0])])
                for steps in (200, 100, 20, 5)}
    for steps, indices in official.items():
        assert torch.equal(torch.round(b.timesteps(steps)[:-1] * T - 1).long(), indices), steps
    assert {666, 333, 222, 111} <= set(official[200].tolist()) and not {665, 332, 221, 110} & set(official[200].tolist())
    # the sampler on that list against a transcription of the official loop (L171-221, η = 1)
    m = torch.linspace(0.001, 0.999, T, dtype=F64)
    delta = 2 * (m - m**2)
    mu = pair(seed=9, shape=(1, 3, 4, 4))[1]
    net = lambda x, y, k: 0.5 * torch.tanh(x - y + 0.001 * k)  # noqa: E731 - predicts x_t − x0
    gen = torch.Generator().manual_seed(4)
    idx = official[200].tolist()
    x = mu.clone()
    for i, k in enumerate(idx):
        x0 = (x - net(x, mu, k)).clamp(-1, 1)
        if k == 0:
            break
        n = idx[i + 1]
        var = (delta[k] - delta[n] * (1 - m[k]) ** 2 / (1 - m[n]) ** 2) * delta[n] / delta[k]
        x = ((1 - m[n]) * x0 + m[n] * mu + ((delta[n] - var) / delta[k]).sqrt() * (x - (1 - m[k]) * x0 - m[k] * mu)
             + var.sqrt() * torch.randn(x.shape, generator=gen, dtype=F64))
    ours = b.sample(lambda x_, y, t: net(x_, y, round(t[0].item() * T) - 1), mu, nfe=200,
                    generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours, x0, atol=1e-12, rtol=0)
