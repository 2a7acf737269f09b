"""Which sampler gives each bridge its quality at the fewest network evaluations (the samplers grid's answer).

    bridgezoo bench benchmarks/grids/samplers_cpu.toml --jobs 2
    python benchmarks/samplers_table.py benchmarks/grids/samplers_cpu.toml --out reports/samplers-cpu

Reads the grid's evaluations with `bridgezoo.report` (the same loading, the same honest evaluation count: each
sampler is run with a free model and its network calls are counted) and writes, next to the grid's report,
`samplers.md` / `samplers.csv` (every bridge × sampler × NFE: PSNR, SSIM, network evaluations) and
`samplers.png` / `.svg` (PSNR against network evaluations, one panel per bridge, the degraded input as a line).
The question of the samplers issue: at ≤ 5 network evaluations, does the best shared sampler reach the PSNR that
`ddim` has at 10? Intervals are over the evaluation images (one trained model per bridge, seed 0).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bridgezoo.report import compute_column, find_runs, load_results, mean_ci

SHARED = ("ddim", "dbim", "euler_maruyama", "heun", "dpmpp_2m", "posterior")
READING_FILE = Path(__file__).with_name("samplers_reading.md")  # the committed reading of the committed numbers
READING = READING_FILE.read_text().splitlines() + [""] if READING_FILE.exists() else []


def per_image(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (bridge, sampler, NFE, image) from each evaluation's eval.csv."""
    frames = []
    for r in results.itertuples():
        df = pd.read_csv(Path(r.eval_dir) / "eval.csv")[["name", "psnr", "input_psnr"]]
        frames.append(df.assign(bridge=r.bridge, sampler=r.sampler, nfe=r.steps, evaluations=r.evaluations))  # nfe: steps
    return pd.concat(frames, ignore_index=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("grid", help="the samplers grid file (or run folders)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--budget", type=int, default=5, help="network evaluations allowed to the fast samplers")
    args = p.parse_args(argv)
    runs, left_out = find_runs([args.grid])
    results = compute_column(load_results(runs, left_out).results)
    images = per_image(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    for (bridge, sampler, nfe), g in images.groupby(["bridge", "sampler", "nfe"]):
        m, h, n = mean_ci(g["psnr"].replace(np.inf, np.nan).dropna())
        rows.append({"bridge": bridge, "sampler": sampler, "nfe": nfe, "evaluations": g["evaluations"].iloc[0],
                     "psnr": m, "ci95": h, "images": n, "input_psnr": g["input_psnr"].mean()})
    table = pd.DataFrame(rows).sort_values(["bridge", "sampler", "nfe"])
    table.to_csv(out / "samplers.csv", index=False)

    verdicts = []
    for bridge, g in table.groupby("bridge"):
        ref = g[(g.sampler == "ddim") & (g.nfe == 10)]
        fast = g[g.sampler.isin(SHARED) & (g.evaluations <= args.budget)]
        if ref.empty or fast.empty:
            continue
        best = fast.loc[fast.psnr.idxmax()]
        ddim_fast = g[(g.sampler == "ddim") & (g.evaluations <= args.budget)].psnr.max()
        verdicts.append({"bridge": bridge, "input PSNR": g.input_psnr.iloc[0], "ddim @ 10": ref.psnr.iloc[0],
                         f"ddim @ ≤{args.budget}": ddim_fast,
                         f"best shared @ ≤{args.budget}": f"{best.sampler} (NFE {best.nfe}, {best.evaluations:g} evals)",
                         "its PSNR": best.psnr, "reaches ddim @ 10": bool(best.psnr >= ref.psnr.iloc[0])})
    verdict = pd.DataFrame(verdicts)
    met = int(verdict["reaches ddim @ 10"].sum()) if len(verdict) else 0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    bridges = sorted(table.bridge.unique())
    cols = 4
    fig, axes = plt.subplots(math.ceil(len(bridges) / cols), cols, figsize=(4 * cols, 3.2 * math.ceil(len(bridges) / cols)),
                             squeeze=False, sharex=True)
    for ax, bridge in zip(axes.flat, bridges):
        g = table[table.bridge == bridge]
        for sampler, s in g.groupby("sampler"):
            s = s.sort_values("evaluations")
            ax.errorbar(s.evaluations, s.psnr, yerr=s.ci95, marker="o", ms=3, capsize=2, label=sampler,
                        ls="-" if sampler in SHARED else "--")
        ax.axhline(g.input_psnr.iloc[0], color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xticks([2, 3, 5, 10, 20, 40])
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(bridge)
        ax.set_xlabel("network evaluations")
        ax.set_ylabel("PSNR (dB)")
    for ax in list(axes.flat)[len(bridges):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    for ext in ("png", "svg"):
        fig.savefig(out / f"samplers.{ext}", dpi=110, metadata={"Date": None} if ext == "svg" else None)
    plt.close(fig)

    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])])
    lines = [
        "# Samplers against network evaluations (CPU)", "",
        f"Command: `bridgezoo bench {args.grid} --jobs 2` then `{command}`.  ",
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}. Mean PSNR (RGB) "
        f"over {int(table.images.max())} zoo5 test images ± 95% Student-t interval over images; one trained model per "
        "bridge (seed 0); network evaluations counted by running each sampler.", "",
        f"**At ≤ {args.budget} network evaluations the best shared sampler reaches `ddim`'s PSNR at NFE 10 for "
        f"{met} of {len(verdict)} bridges.**", "",
        verdict.to_markdown(index=False, floatfmt=".2f"), "",
        "![PSNR against network evaluations](samplers.png)", "",
        *READING,
        "Every bridge × sampler × NFE:", "",
        table.to_markdown(index=False, floatfmt=".2f"), "",
    ]
    if left_out:
        lines += ["Runs left out: " + "; ".join(f"{r['run']} ({r['reason']}: {r['detail']})" for r in left_out), ""]
    (out / "samplers.md").write_text("\n".join(lines))
    print(f"{met} of {len(verdict)} bridges: best shared sampler at ≤{args.budget} evaluations reaches ddim @ 10; "
          f"{out / 'samplers.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
