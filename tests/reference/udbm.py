"""UDBM's released code (Jabruson/UDBM `UDBM-ICML26/` @ e3389b5), transcribed: `src/model_udbm_s2_*.py`
`_calculate_schedule`, the stage-1 uncertainty of `p_losses` and `sample_uncertainty_aware_bridge` (docs/bridges.md,
"udbm")."""


import torch


from helpers import F64


T = 1000


# ----------------------------------------------------------------------------- the official code, transcribed
def official_schedule(k, d):
    """(hq, lq, noise) at official indices k (shape [B]) for the uncertainty d ([B, C, H, W]): S2 _calculate_schedule."""
    t = (k.to(F64) / (T - 1)).view(-1, 1, 1, 1)
    p = 0.5 + (1 - d) * (1.0 - 0.5)
    num = t**p
    lq = num / (num + (1 - t) ** p + 1e-9)
    noise = (1.0 + d) * 5.0 * (4 * t * (1 - t)) + (d + 1.0) * 5.0 * 0.2 * t**2
    return 1 - lq, lq, noise


def official_uncertainty(stage1, x_input):
    """S2 p_losses / sample_uncertainty_aware_bridge: clamp(A(cat(x, x), t=1), −2, 2), abs, × 0.5."""
    u = stage1(x_input, x_input, 1).clamp(-2, 2)
    return u.abs() * 0.5


def official_sample(net, stage1, x_input, steps, z):
    """S2 sample_uncertainty_aware_bridge (eta 0) with noise z for the start; net(x, μ, k) → predicted residual."""
    d = official_uncertainty(stage1, x_input)
    times = list(reversed(torch.linspace(-1, T - 1, steps=steps + 1).int().tolist()))
    last = torch.full((x_input.shape[0],), T - 1)
    _, tlq, tn = official_schedule(last, d)
    img = tlq * x_input + tn * z
    for time, time_next in zip(times[:-1], times[1:]):
        x_start = (x_input - net(img, x_input, time)).clamp(-1, 1)
        if time_next < 0:
            return x_start
        hq, lq, n = official_schedule(torch.full((x_input.shape[0],), time), d)
        hq2, lq2, n2 = official_schedule(torch.full((x_input.shape[0],), time_next), d)
        r = n2 / n
        img = r * img + (lq2 - r * lq) * x_input + (hq2 - r * hq) * x_start
