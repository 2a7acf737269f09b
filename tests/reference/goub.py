"""GOUB's official code (Hammour-steak/GOUB `codes/utils/sde_utils.py`), transcribed: its coefficient tables
(in the official [-1, 1]/2 units) and one step of its mean-ODE / reverse-SDE loop (docs/bridges.md, "goub")."""

import itertools
import math




# ----------------------------------------------------------------------------- GOUB (Hammour-steak/GOUB sde_utils.py)
def goub_code_tables(T=100, lam=30 / 255, eps=0.005):
    """θ_i, dt, s_i and m, n, f_σ for i = 0..T from the official formulas (sde_utils.py L74-145, L181-187)."""
    N = T + 2
    abar = [math.cos(((k / N) + 0.008) / 1.008 * math.pi / 2) ** 2 for k in range(N + 1)]
    abar = [v / abar[0] for v in abar]
    thetas = [1 - v for v in abar[1:-1]]
    cum = [c - thetas[0] for c in itertools.accumulate(thetas)]
    dt = -math.log(eps) / cum[-1]
    s = [c * dt for c in cum]
    S = s[-1]
    sb2 = lambda x: lam**2 * (1 - math.exp(-2 * x))  # noqa: E731  σ̄² over a clock span x
    m = [math.exp(-si) * sb2(S - si) / sb2(S) for si in s]
    n = [((1 - math.exp(-si)) * sb2(S - si) + math.exp(-2 * (S - si)) * sb2(si)) / sb2(S) for si in s]
    f = [math.sqrt(sb2(si) * sb2(S - si) / sb2(S)) for si in s]
    return thetas, dt, s, m, n, f


def official_goub_pieces(T=100, lam=60 / 255):
    thetas, dt, s, m, n, f = goub_code_tables(T, lam)
    S = s[-1]
    sig2 = [2 * lam**2 * th for th in thetas]  # σ_i² = λ²·2θ_i (L116-117)
    sbar2_tT = [lam**2 * (1 - math.exp(-2 * (S - si))) for si in s]
    return thetas, dt, s, m, n, f, S, sig2, sbar2_tT


def official_goub_step_mean(x, mu, eps_hat, i, T=100, lam=60 / 255):
    """x − [θ_i(μ − x) + h_i − σ_i²·score]·dt with h, score := 0 at i == T (sde_utils.py L223-246, L299-331)."""
    thetas, dt, s, m, n, f, S, sig2, sbar2_tT = official_goub_pieces(T, lam)
    if i == T:
        h, score = 0.0, 0.0
    else:
        h = -sig2[i] * math.exp(-2 * (S - s[i])) / sbar2_tT[i] * (x - mu)
        score = -eps_hat / f[i]
    return x - (thetas[i] * (mu - x) + h - sig2[i] * score) * dt, math.sqrt(sig2[i] * dt)
