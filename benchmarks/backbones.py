"""Backbones measured at the first command's budget: one table of PSNR gains over the degraded inputs, overall and
per task, with 95% bootstrap intervals over the test images, from finished `bridgezoo run` directories and
`benchmarks/regression_ceiling.py` outputs.

    python benchmarks/backbones.py runs/rdbm-unet-T-s0 runs/rdbm-nafnet-T ceilings/nafnet-T --out reports/backbones-cpu

Each DIR needs `eval.csv` (per image: task, psnr, input_psnr) and either `config.json` (a run) or `ceiling.json`
(a regression ceiling); `time.txt`, where present, is the run's `/usr/bin/time -v` output and gives its wall
clock and CPU time (user + system: the compute a run cost, comparable between runs that shared the machine, where
their wall clocks are not). Copies each DIR's result files to OUT/runs/<name>/ (so the table rebuilds from OUT alone: pass
OUT/runs/* again) and writes OUT/results.csv and OUT/table.md. The interval is `bridgezoo.report.bootstrap_ci` of
the per-image gain, images resampled within each task for the overall mean (the report's bootstrap).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pandas as pd

from bridgezoo.report import bootstrap_ci

KEPT = ("eval.csv", "summary.json", "config.json", "ceiling.json", "time.txt")


def describe(d: Path) -> dict:
    """What was trained in DIR: kind, backbone, budget and command, from its config.json or ceiling.json."""
    if (d / "config.json").exists():
        c = json.loads((d / "config.json").read_text())
        kind = f"{c['bridge']} π={c['pi']} " + " ".join(f"{k}={v}" for k, v in sorted(c["bridge_opts"].items()))
    elif (d / "ceiling.json").exists():
        c = json.loads((d / "ceiling.json").read_text())
        kind = "regression ceiling"
    else:
        raise SystemExit(f"{d}: neither config.json (a run) nor ceiling.json (a regression ceiling)")
    wall = cpu = None
    if (d / "time.txt").exists():
        text = (d / "time.txt").read_text()
        m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
        if m:
            wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text)) or None
    return {"name": d.name, "kind": kind, "backbone": c["backbone"],
            "budget": f"{c['iters']} × {c['batch']} at {c['patch']}²", "wall_s": wall, "cpu_s": cpu, "command": c["command"]}


def gains(d: Path) -> list[dict]:
    """Mean PSNR gain over the inputs, overall and per task, with its 95% interval over the test images."""
    e = pd.read_csv(d / "eval.csv")
    gain = e["psnr"] - e["input_psnr"]
    rows = [("all", gain.to_numpy(), e["task"].to_numpy(), e)]
    rows += [(t, g.to_numpy(), None, e[e["task"] == t]) for t, g in gain.groupby(e["task"])]
    out = []
    for task, values, strata, part in rows:
        mean, low, high = bootstrap_ci(values, strata)
        out.append({"task": task, "psnr": part["psnr"].mean(), "input_psnr": part["input_psnr"].mean(),
                    "gain": mean, "low": low, "high": high, "images": len(part)})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    rows = []
    for d in args.dirs:
        info = describe(d)
        rows += [{**info, **g} for g in gains(d)]
        keep = args.out / "runs" / d.name
        if keep.resolve() != d.resolve():
            keep.mkdir(parents=True, exist_ok=True)
            for name in KEPT:
                if (d / name).exists():
                    shutil.copy2(d / name, keep / name)
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "results.csv", index=False)
    tasks = sorted(t for t in df["task"].unique() if t != "all")
    cell = lambda r: f"{r.gain:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"  # noqa: E731
    lines = ["| run | backbone | budget | wall clock | CPU time | PSNR | gain, all tasks | " + " | ".join(tasks) + " |",
             "|" + "---|" * (7 + len(tasks))]
    for name, g in df.groupby("name", sort=False):
        by = g.set_index("task")
        r = by.loc["all"]
        wall, cpu = (f"{v / 60:.1f} min" if pd.notna(v) else "" for v in (r.wall_s, r.cpu_s))
        lines.append(f"| {r.kind} (`{name}`) | {r.backbone} | {r.budget} | {wall} | {cpu} | {r.psnr:.2f} dB | **{cell(r)}** | "
                     + " | ".join(cell(by.loc[t]) if t in by.index else "not trained" for t in tasks) + " |")
    inputs = df[df["task"] != "all"].groupby("task")["input_psnr"].first()
    lines.append("")
    lines.append("Degraded inputs: " + ", ".join(f"{t} {inputs[t]:.2f} dB" for t in tasks)
                 + f"; all {df[df['task'] == 'all']['input_psnr'].iloc[0]:.2f} dB.")
    lines.append("")
    lines.append("Commands:")
    lines.append("")
    lines += [f"- `{name}`: `{g['command'].iloc[0]}`" for name, g in df.groupby("name", sort=False)]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
