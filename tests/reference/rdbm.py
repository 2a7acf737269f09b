"""RDBM's released code (MiliLab/RDBM `code/rdbm.py`), transcribed in plain Python floats: its coefficient
tables and its DDIM loop (docs/bridges.md, "rdbm" and "RDBM paper vs released code")."""

import itertools
import math

import torch



# ----------------------------------------------------------------------------- RDBM (MiliLab/RDBM code/rdbm.py)
def rdbm_code_tables(T=100, lamb=1e-4):
    """Θ[k], Σ[k], k = 0..T−1: iDDPM cosine betas as θ, inclusive cumsum (rdbm.py L93-102, L131-145)."""
    abar = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    thetas = [min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)]
    cum = list(itertools.accumulate(thetas))
    S = cum[-1]
    Theta = [math.sinh(S - c) / math.sinh(S) for c in cum]
    Sigma = [math.sqrt(max(2 * lamb * math.sinh(c) * math.sinh(S - c) / math.sinh(S), 0.0)) for c in cum]
    return S, Theta, Sigma


def official_rdbm_ddim(net, mu, T=100, nfe=10, lamb=1e-4):
    """rdbm.py ddim_sample, x0-prediction branch (L196-262): grid, init x = μ, first step with Σ_t = 0, last x = x̂0."""
    _, Theta, Sigma = rdbm_code_tables(T, lamb)
    times = torch.linspace(-1, T - 1, nfe + 1).int().tolist()[::-1]
    x, visited = mu.clone(), []
    for time, time_next in zip(times[:-1], times[1:]):
        visited.append(time)
        x0 = net(x, mu, time).clamp(-1, 1)
        if time_next < 0:
            x = x0
            continue
        th, sg, thn, sgn = Theta[time], Sigma[time], Theta[time_next], Sigma[time_next]
        if sg == 0:
            x = mu + thn * (x0 - mu)
        else:
            x = mu + (sgn / sg) * (x - mu) + (thn - th * sgn / sg) * (x0 - mu)
    return x, visited
