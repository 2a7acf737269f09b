"""DDPM's official β table (hojonathanho/diffusion `diffusion_tf/diffusion_utils_2.py`), transcribed
(docs/bridges.md, "ddpm")."""


import numpy as np



# ----------------------------------------------------------------------------- DDPM
def ddpm_tables(T=1000, lo=1e-4, hi=0.02):
    """hojonathanho/diffusion diffusion_utils_2.py: linear betas (L26-27), ᾱ = cumprod(1 − β) (L63-66)."""
    betas = np.linspace(lo, hi, T, dtype=np.float64)
    return betas, np.cumprod(1.0 - betas)
