"""RDDM's official schedule tables (nachifur/RDDM `…/src/residual_denoising_diffusion_pytorch.py`), transcribed
(docs/bridges.md, "rddm")."""


import torch


from helpers import F64


# ----------------------------------------------------------------------------- RDDM
def rddm_tables(T=1000, sum_scale=1.0):
    Z = T * (T + 1) / 2
    abar = torch.cumsum(torch.tensor([(T - k) / Z for k in range(T)], dtype=F64), 0)
    bbar2 = torch.cumsum(torch.tensor([sum_scale * (k + 1) / Z for k in range(T)], dtype=F64), 0)
    return abar, bbar2
