"""Each shared sampler on a problem with a known answer: does it reproduce the data distribution, and how coarse a
step can it take before it breaks?

    python benchmarks/sampler_gaussian_oracle.py --out reports/samplers-cpu

The data are Gaussian, x0 ~ N(m, s²) independently per pixel, with a constant degraded image μ, and every bridge is
run with π = one, so x_t = a·x0 + b·μ + c·ε is Gaussian and the Bayes-optimal network is known in closed form:
E[x0 | x_t] = m + a·s²/(a²·s² + c²)·(x_t − a·m − b·μ), returned in each bridge's objective space through
`bridge.target`. A sampler that integrates the bridge's probability-flow ODE or reverse SDE correctly returns
samples with mean m and standard deviation s as its steps shrink; a deterministic sampler from a pinned start
(c(1) = 0: RDBM, GOUB, DDBM, I2SB) returns the posterior mean, std 0, by construction. The table gives, per bridge ×
sampler × NFE, the samples' mean and std (target m = 0, s = 0.3, over 4 × 64² pixels, seed 0); `std/s` far above 1
at coarse steps is an unstable discretisation, which amplifies a trained network's errors the same way.
Writes `gaussian-oracle.md` and `gaussian-oracle.csv` into --out.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import pandas as pd
import torch

from bridgezoo.registry import get_bridge, make_sampler, sampler_names
from bridgezoo.samplers import SHARED_SAMPLERS, run_sampler

F64 = torch.float64
MEAN, STD, MU = 0.0, 0.3, 0.5
BRIDGES = ("rdbm", "goub", "irsde", "rddm", "ddbm-ve", "ddbm-vp", "bbdm", "fm")
NFES = (2, 3, 5, 10, 20, 50, 200)


def posterior_mean_model(bridge, mean: float = MEAN, std: float = STD):
    """The Bayes-optimal network for x0 ~ N(mean, std²) under a π = one bridge, in the bridge's objective space."""

    def model(x_t, mu, t):
        a, b, c = bridge.coefficients(t, x_t)
        variance = a * a * std * std + c * c
        gain = torch.where(variance > 0, a * std * std / variance.clamp_min(1e-300), torch.zeros_like(variance))
        return bridge.target(mean + gain * (x_t - a * mean - b * mu), mu, x_t, t)

    return model


def sample_moments(bridge_name: str, sampler: str, nfe: int, shape=(4, 1, 64, 64), seed: int = 0):
    """(mean, std) of the sampler's outputs under the oracle; None if the sampler does not apply to the bridge."""
    bridge = get_bridge(bridge_name, pi="one", clip_x0=False)
    if sampler not in sampler_names(bridge):  # e.g. euler_maruyama on a non-Markov bridge
        return None
    mu = torch.full(shape, MU, dtype=F64)
    out = run_sampler(bridge, make_sampler(bridge, sampler), posterior_mean_model(bridge), mu, nfe=nfe,
                      generator=torch.Generator().manual_seed(seed))
    return float(out.mean()), float(out.std())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bridges", default=",".join(BRIDGES))
    ap.add_argument("--nfe", default=",".join(map(str, NFES)))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.bridges.split(","):
        for sampler in SHARED_SAMPLERS:
            for nfe in map(int, args.nfe.split(",")):
                moments = sample_moments(name, sampler, nfe)
                if moments is not None:
                    rows.append({"bridge": name, "sampler": sampler, "nfe": nfe, "mean": moments[0],
                                 "std": moments[1], "std_ratio": moments[1] / STD})
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "gaussian-oracle.csv", index=False)
    table = df.assign(cell=[f"{m:+.3f} / {r:.2f}" for m, r in zip(df["mean"], df["std_ratio"])]).pivot_table(
        index=["bridge", "sampler"], columns="nfe", values="cell", aggfunc="first", sort=False)
    lines = ["# Shared samplers on a Gaussian problem with a known answer", "",
             f"Command: `python benchmarks/{Path(__file__).name} --out {args.out}` "
             f"({platform.machine()}, {platform.system()}, Python {sys.version.split()[0]}, torch {torch.__version__}).",
             "", __doc__.split("\n\n", 2)[2].split("Writes")[0].strip().replace("\n", " "), "",
             f"Cells: sample mean / (sample std ÷ s); target {MEAN:+.3f} / 1.00. Columns: NFE (the sampler's steps).",
             "", table.reset_index().to_markdown(index=False), ""]
    (args.out / "gaussian-oracle.md").write_text("\n".join(lines))
    print(table.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
