"""ResShift's official schedule (zsyOAOA/ResShift @ 3ce1d81 `models/gaussian_diffusion.py`, the
"exponential" η schedule), transcribed (docs/bridges.md, "resshift")."""

import math

import numpy as np



# ============================================================================================== ResShift
def resshift_official_sqrt_etas(T=15, kappa=2.0, min_noise_level=0.04, etas_end=0.99, power=0.3):
    """gaussian_diffusion.py L32-66 ("exponential"), in numpy."""
    etas_start = min(min_noise_level / kappa, min_noise_level)
    increaser = math.exp(1 / (T - 1) * math.log(etas_end / etas_start))
    base = np.ones([T]) * increaser
    power_timestep = np.linspace(0, 1, T, endpoint=True) ** power * (T - 1)
    return np.power(base, power_timestep) * etas_start
