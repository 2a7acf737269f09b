"""UniDB's official code (UniDB-SOC/UniDB, GOU variant), transcribed: its coefficient tables and one step of its
loop in its own units (docs/bridges.md, "unidb")."""

import math



from reference.goub import goub_code_tables


# ============================================================================================== UniDB
def unidb_official_tables(T=100, lam=30 / 255, gamma_inv=1e-7, eps=0.005):
    """UniDB-GOU sde_utils.py L101-146, L190-194 in the official [0, 1] units: m, n, f_σ and the h-term pieces."""
    thetas, dt, s, *_ = goub_code_tables(T, lam, eps)
    S = s[-1]
    sb2 = lambda x: lam**2 * (1 - math.exp(-2 * x))  # noqa: E731
    m = [math.exp(-si) * (gamma_inv + sb2(S - si)) / (gamma_inv + sb2(S)) for si in s]
    f = [math.sqrt(sb2(si) * sb2(S - si) / sb2(S)) for si in s]
    sig2 = [2 * lam**2 * th for th in thetas]
    return thetas, dt, s, S, m, f, sig2, sb2


def official_unidb_step_mean(x, mu, eps_hat, i, T=100, lam=30 / 255, gamma_inv=1e-7):
    """x − [θ_i(μ − x) + h_i − σ_i²·score]·dt, h and score 0 at i == 100 (sde_utils.py L254-260, L322-337)."""
    thetas, dt, s, S, m, f, sig2, sb2 = unidb_official_tables(T, lam, gamma_inv)
    if i == T:
        h, score = 0.0, 0.0
    else:
        h = -(sig2[i] * math.exp(-2 * (S - s[i]))) / (gamma_inv + sb2(S - s[i])) * (x - mu)
        score = -eps_hat / f[i]
    return x - (thetas[i] * (mu - x) + h - sig2[i] * score) * dt, math.sqrt(sig2[i] * dt)
