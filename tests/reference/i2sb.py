"""I2SB's official code (NVlabs/I2SB `i2sb/diffusion.py`, `i2sb/runner.py`, `i2sb/util.py`), transcribed: its schedule
tables and the evaluation step indices (docs/bridges.md, "i2sb")."""


import numpy as np



# ============================================================================================== I2SB
def i2sb_official_tables(T=1000, beta_max=0.3):
    """runner.py L58-63, L81-82 and diffusion.py L17-45, transcribed in numpy."""
    betas = np.linspace(1e-4**0.5, (beta_max / T) ** 0.5, T, dtype=np.float64) ** 2
    betas = np.concatenate([betas[: T // 2], np.flip(betas[: T // 2])])
    std_fwd = np.sqrt(np.cumsum(betas))
    std_bwd = np.sqrt(np.flip(np.cumsum(np.flip(betas))))
    denom = std_fwd**2 + std_bwd**2
    mu_x0, mu_x1, var = std_bwd**2 / denom, std_fwd**2 / denom, std_fwd**2 * std_bwd**2 / denom
    return betas, std_fwd, std_bwd, mu_x0, mu_x1, np.sqrt(var)


def official_space_indices(num_steps, count):
    """i2sb/util.py L86-100."""
    frac = 1 if count <= 1 else (num_steps - 1) / (count - 1)
    cur, out = 0.0, []
    for _ in range(count):
        out.append(round(cur))
        cur += frac
    return out
