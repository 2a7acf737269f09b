"""rdbm (plugins/bridges/rdbm.py) against its released code (tests/reference/rdbm.py): coefficients and reference
values, paper defaults, the released DDIM sampler, and GOUB as its π = one case on GOUB's schedule."""

import math

import pytest
import torch

import bridgezoo as bz

from helpers import F64
from reference.rdbm import official_rdbm_ddim, rdbm_code_tables


def test_rdbm_code_coefficients_and_reference_values():
    b = bz.get_bridge("rdbm", pi="one", lam=1e-4, objective="x0")
    S, Theta, Sigma = rdbm_code_tables()
    t = (torch.arange(100, dtype=F64) + 1) / 100
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(a, torch.tensor(Theta, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(c, torch.tensor(Sigma, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(a + bb, torch.ones_like(a))
    # values of the released code's tables (code/rdbm.py, float64)
    assert b.clock.total == pytest.approx(7.878897, abs=1e-6)
    assert a[0].item() == pytest.approx(0.999369, abs=1e-6)
    assert c[0].item() == pytest.approx(3.552e-4, abs=1e-7)
    assert c.max().item() == pytest.approx(0.0099962, abs=1e-7) and int(c.argmax()) == 91
    assert a[-1].item() == 0 and c[-1].item() == 0
    assert c.max().item() == pytest.approx(math.sqrt(1e-4 * math.tanh(S / 2)), rel=1e-3)


def test_rdbm_paper_defaults():
    b = bz.get_bridge("rdbm")
    assert b.options["pi"] == "residual" and b.options["lam"] == pytest.approx(10 / 255)
    assert b.options["theta_schedule"] == "cosine" and b.options["T"] == 100 and b.default_nfe == 10
    assert b.objective == "noise" and b.options["loss_type"] == "l1" and b.samplers[0] == "ddim"


def test_rdbm_ddim_reproduces_the_released_sampler():
    b = bz.get_bridge("rdbm", pi="one", lam=1e-4, objective="x0")
    g = torch.Generator().manual_seed(0)
    mu = torch.rand(2, 3, 8, 8, generator=g, dtype=F64) * 2 - 1
    net_k = lambda x, m, k: torch.tanh(1.3 * x - 0.4 * m + 0.01 * k + 0.2)  # noqa: E731 - any fixed network
    expected, visited = official_rdbm_ddim(net_k, mu)
    assert visited == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]
    seen = []

    def model(x, m, t):
        k = round(t[0].item() * 100) - 1  # the documented index ↔ t map: k ↔ t = (k+1)/T
        seen.append(k)
        return net_k(x, m, k)

    out = b.sample(model, mu, nfe=10)
    assert seen == visited
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    grid = b.timesteps(10)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], dtype=F64))


# ----------------------------------------------------------------------------- identities
def test_rdbm_on_goub_schedule_with_pi_one_equals_goub():
    goub = bz.get_bridge("goub")
    rdbm = bz.get_bridge("rdbm", pi="one", theta_schedule="irsde-cosine", lam=(60 / 255) ** 2, objective="noise")
    t = torch.linspace(0, 1, 1001, dtype=F64)
    for u, v in zip(goub.coefficients(t), rdbm.coefficients(t)):
        torch.testing.assert_close(u, v, atol=1e-14, rtol=0)
    mu = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=F64) * 2 - 1
    net = lambda x, m, t: 0.1 * torch.tanh(x - m + t.view(-1, 1, 1, 1))  # noqa: E731
    for sampler in ("ddim", "reverse_sde"):
        u = goub.sample(net, mu, nfe=100, sampler=sampler, generator=torch.Generator().manual_seed(1))
        v = rdbm.sample(net, mu, nfe=100, sampler=sampler, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(u, v, atol=1e-12, rtol=0)
