"""Where a trained bridge loses: the quality of its one-step x̂0 at every t of its sampler grid.

For each test image and each time t of the sampler's grid this measures three PSNRs (dB, RGB, 8-bit, as
`bridgezoo.run.evaluate`):
- `true x_t`: x̂0 = model's prediction from a *true* x_t = a·x0 + b·μ + c·π⊙ε (what training teaches),
- `chain`: x̂0 the sampler used at that step, from the state its own chain reached (what sampling gets),
- `state`: the chain's state x_t itself against x0,
and, for reference, the input μ and the final output. At t = 1 of a pinned bridge x_t = μ, so the first step's
x̂0 is a direct regressor's output: a regressor of the same budget is the bar for it.

    python benchmarks/x0_vs_t.py RUN_DIR [RUN_DIR ...] --out reports/x0-vs-t-cpu

Writes OUT/x0_vs_t.csv (run, t, image, kind, psnr), OUT/x0_vs_t.png (mean PSNR against t per run) and
OUT/README.md (command, machine, the table of means).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bridgezoo.run.conditioning import set_tasks
from bridgezoo.run.evaluate import to01
from bridgezoo.metrics import psnr
from bridgezoo.seeding import generator
from bridgezoo.run import load_model, make_datasets


def study(run_dir: Path, nfe: int | None, sampler: str | None, seed: int = 0) -> pd.DataFrame:
    bridge, model, cfg = load_model(run_dir / "model.safetensors", device="cpu")
    _, eval_set = make_datasets(cfg)
    nfe = nfe or cfg.nfe or bridge.default_nfe
    sampler = sampler or cfg.sampler
    net = model  # load_model returns the bridge's wrapped model already (wrapping again would precondition twice)
    rows = []
    for i in range(len(eval_set)):
        item = eval_set[i]
        x0, mu = item["gt"][None], item["lq"][None]
        set_tasks(net, item["task"])  # a task-conditioned model is told the image's task (else a no-op)
        gt = to01(x0[0])
        q = lambda x: psnr(to01(x[0]), gt)  # noqa: E731
        with torch.no_grad():
            out, traj = bridge.sample(net, mu, nfe=nfe, sampler=sampler, generator=generator(seed, "x0-vs-t", i),
                                      return_trajectory=True)
            rows += [(item["name"], item["task"], 1.0, "input", q(mu)), (item["name"], item["task"], 0.0, "final", q(out))]
            for k in range(len(traj.x0_pred)):
                t = traj.t[k].reshape(1).float()
                noise = torch.randn(x0.shape, generator=generator(seed, "x0-vs-t-noise", i, k))
                x_t = bridge.q_sample(x0, mu, t, noise)
                rows += [(item["name"], item["task"], float(t), "true x_t", q(bridge.x0_hat(net, x_t, mu, t))),
                         (item["name"], item["task"], float(t), "chain", q(traj.x0_pred[k])),
                         (item["name"], item["task"], float(t), "state", q(traj.x[k]))]
    df = pd.DataFrame(rows, columns=["image", "task", "t", "kind", "psnr"])
    df["t"] = df["t"].round(4)
    df.insert(0, "run", run_dir.name)
    return df


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders of `bridgezoo run` (with model.safetensors)")
    p.add_argument("--nfe", type=int, default=None, help="default: the run's")
    p.add_argument("--sampler", default=None, help="default: the run's")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    df = pd.concat([study(r, args.nfe, args.sampler) for r in args.runs])
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "x0_vs_t.csv", index=False)
    means = df.groupby(["run", "kind", "t"])["psnr"].mean().unstack("t").sort_index(axis=1, ascending=False)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (run, kind), row in means.iterrows():
        if kind in ("true x_t", "chain"):
            ax.plot(row.index, row.values, marker="o", ls="-" if kind == "chain" else "--", label=f"{run}: {kind}")
    ax.set(xlabel="t (1 = degraded input)", ylabel="PSNR of x̂0 (dB)", title="one-step x̂0 against t")
    ax.invert_xaxis()
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "x0_vs_t.png", dpi=120)
    table = means.map(lambda v: "" if np.isnan(v) else f"{v:.2f}").to_markdown()
    (args.out / "README.md").write_text(
        f"# One-step x̂0 against t\n\nCommand: `{' '.join(['python', *sys.argv])}`  \n"
        f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}.\n\n"
        f"Mean PSNR (dB) over the test images; columns are t (1 = the degraded input).\n\n{table}\n\n"
        "![x̂0 against t](x0_vs_t.png)\n")
    print(table)


if __name__ == "__main__":
    main()
