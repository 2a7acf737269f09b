"""Closed forms against simulation: Euler–Maruyama paths of the SDEs, written here from their definitions
(not with the library's drift code), match the library's closed-form mean and variance within 4 MC standard errors."""

import math

import pytest
import torch

import bridgezoo as bz

F64 = torch.float64
N_PATHS = 20000


def check_moments(paths, mean, var, label):
    n = paths.numel()
    m, v = paths.mean().item(), paths.var().item()
    se_mean = math.sqrt(var / n)
    se_var = var * math.sqrt(2 / (n - 1))
    assert abs(m - mean) <= 4 * se_mean, f"{label}: mean {m:.6g} vs closed form {mean:.6g} (se {se_mean:.2g})"
    assert abs(v - var) <= 4 * se_var, f"{label}: var {v:.6g} vs closed form {var:.6g} (se {se_var:.2g})"


@pytest.mark.parametrize("pi", ["one", "residual"])
def test_generalized_bridge_sde_matches_its_marginal(pi):
    """dx = θ_t·coth(θ̄_{t:1})·(μ − x)dt + sqrt(2π²λθ_t)·dw from x(0) = x0 (RDBM paper), on RDBM's cosine θ."""
    T, lam, M = 100, 0.05, 40
    abar = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    thetas = [min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)]
    S = sum(thetas)
    x0, mu = 0.6, -0.2
    pi_val = 1.0 if pi == "one" else x0 - mu
    bridge = bz.get_bridge("rdbm", pi=pi, lam=lam, T=T)
    g = torch.Generator().manual_seed(0)
    x = torch.full((N_PATHS,), x0, dtype=F64)
    s = 0.0
    checkpoints = {20: None, 50: None, 80: None}
    for k in range(80):
        ds = thetas[k] / M
        for _ in range(M):
            drift = (mu - x) / math.tanh(S - s)
            x = x + drift * ds + math.sqrt(2 * lam * ds) * pi_val * torch.randn(N_PATHS, generator=g, dtype=F64)
            s += ds
        if k + 1 in checkpoints:
            t = torch.tensor([(k + 1) / T], dtype=F64)
            a, b, c = (v.item() for v in bridge.coefficients(t))
            check_moments(x, a * x0 + b * mu, (c * pi_val) ** 2, f"t={(k + 1) / T}")


def test_goub_forward_sde_matches_its_marginal():
    """GOUB's forward SDE as the official code writes it, in its [0, 1] units: dx = [θ_t(μ − x) + h_t]dt + σ_t dw,
    h_t = −σ_t²·e^{−2(S − s_t)}/σ̄²_{t:T}·(x − μ), σ_t² = 2λ²θ_t (sde_utils.py L223-229), λ = 30/255."""
    T, lam, eps, M = 100, 30 / 255, 0.005, 20
    N = T + 2
    abar = [math.cos(((k / N) + 0.008) / 1.008 * math.pi / 2) ** 2 for k in range(N + 1)]
    thetas = [1 - v / abar[0] for v in abar[1:-1]]
    cum_T = sum(thetas) - thetas[0]
    dt = -math.log(eps) / cum_T
    S = cum_T * dt
    x0, mu = 0.7, 0.3
    bridge = bz.get_bridge("goub")
    g = torch.Generator().manual_seed(1)
    x = torch.full((N_PATHS,), x0, dtype=F64)
    s = 0.0
    for i in range(1, 76):
        sub = dt / M
        sig2 = 2 * lam**2 * thetas[i]
        for _ in range(M):
            h = -sig2 * math.exp(-2 * (S - s)) / (lam**2 * (1 - math.exp(-2 * (S - s)))) * (x - mu)
            x = x + (thetas[i] * (mu - x) + h) * sub + math.sqrt(sig2 * sub) * torch.randn(N_PATHS, generator=g, dtype=F64)
            s += thetas[i] * sub
        if i in (5, 25, 50, 75):
            a, b, c = (v.item() for v in bridge.coefficients(torch.tensor([i / T], dtype=F64)))
            # bridgezoo works in [-1, 1]: means map affinely (a + b = 1), stds halve in [0, 1] units
            check_moments(x, a * x0 + b * mu, (c / 2) ** 2, f"i={i}")
