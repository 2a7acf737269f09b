"""`bridgezoo report RUNS... --out reports/NAME`: tables, figures and an offline `index.html` from run directories.

RUNS are run directories (with `config.json` and `summary.json`), folders searched for them, or grid files (their
runs). One *result* is one evaluation of one run: the run's `summary.json` and any `evals/*/summary.json`.
A *method* is everything but the seed (bridge, π, backbone, NFE, sampler); seeds are its repetitions, and every
interval is a 95% Student-t confidence interval of the mean over seeds (mean ± t₀.₉₇₅,ₙ₋₁·s/√n; none for n = 1).
"""

from __future__ import annotations

import html
import json
import math
import platform
import re
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ("psnr", "ssim", "psnr_y", "ssim_y")
METHOD_KEYS = ("bridge", "pi", "backbone", "nfe", "sampler", "precision")
PI_ORDER = ("zero", "one", "residual")


# --------------------------------------------------------------------------------------------- statistics
def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the 95% t interval, n) of a sequence; half-width is NaN for fewer than 2 values."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v[0]), math.nan, 1
    return float(v.mean()), float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)), n


def fmt(mean: float, half: float, digits: int = 2) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" + ("" if not np.isfinite(half) else f" ± {half:.{digits}f}")


# --------------------------------------------------------------------------------------------- loading
def find_runs(paths) -> dict[Path, set[Path] | None]:
    """Run directories named by `paths` (run directories, folders containing them, or grid TOML files), each with
    the evaluation directories to read: for a grid, the ones it asks for; otherwise None (all of them)."""
    from .errors import OptionError

    found: list[Path] = []
    wanted: dict[Path, set[Path]] = {}
    everything: set[Path] = set()
    for p in map(Path, paths):
        if p.suffix == ".toml":  # a grid: its runs, and of each only the evaluations the grid asks for
            from .bench import load_grid

            for r in load_grid(p).runs:
                if (r.directory / "config.json").exists():
                    found.append(r.directory)
                    wanted.setdefault(r.directory, set()).update(r.eval_dir(*e) for e in r.evals)
        elif (p / "config.json").exists():
            found.append(p)
            everything.add(p)
        elif p.is_dir():
            runs = sorted(c.parent for c in p.rglob("config.json") if "state" not in c.parts)
            found += runs
            everything.update(runs)
        else:
            raise OptionError(f"{p}: not a run directory, a folder of runs or a grid file")
    if not found:
        raise OptionError(f"no run directories found in {', '.join(map(str, paths))}")
    return {run: None if run in everything else wanted[run] for run in dict.fromkeys(found)}


def _evaluations(run: Path, wanted: set[Path] | None = None) -> list[Path]:
    found = ([run] if (run / "summary.json").exists() else []) + sorted(
        p.parent for p in (run / "evals").glob("*/summary.json"))
    return [ev for ev in found if wanted is None or ev in wanted]


def load_results(runs) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(results: one row per evaluation, per_task: one row per evaluation and task, curves: training logs) of
    `runs` (a list of run directories, or `find_runs`'s mapping run → evaluation directories to read).

    Runs without a finished evaluation are skipped (listed in `results.attrs["unfinished"]`).
    """
    rows, task_rows, curves, unfinished = [], [], [], []
    runs = runs if isinstance(runs, dict) else dict.fromkeys(runs)
    for run, wanted in runs.items():
        cfg = json.loads((run / "config.json").read_text())
        evals = _evaluations(run, wanted)
        if not evals:
            unfinished.append(str(run))
            continue
        base = {"run": str(run), "bridge": cfg["bridge"], "backbone": cfg["backbone"], "seed": cfg.get("seed", 0),
                "pi": cfg.get("bridge_options", {}).get("pi") or cfg.get("pi") or "default",
                "iters": cfg.get("iters"), "patch": cfg.get("patch"), "batch": cfg.get("batch"),
                "precision": cfg.get("mixed_precision") or "no"}
        for ev in evals:
            s = json.loads((ev / "summary.json").read_text())
            row = base | {"eval_dir": str(ev), "primary": ev == run, "nfe": s["nfe"], "sampler": s["sampler"], "images": s["images"],
                          "seconds_per_image": s["seconds_per_image"], "crop_border": s.get("crop_border", 0),
                          "conventions": s.get("conventions", "")}
            row |= {m: s["overall"][m] for m in METRICS} | {f"input_{m}": s["input"][m] for m in METRICS}
            rows.append(row)
            inputs = {}
            if (ev / "eval.csv").exists():  # the degraded inputs' per-task PSNR, for reference lines
                inputs = pd.read_csv(ev / "eval.csv").groupby("task")["input_psnr"].mean().to_dict()
            for task, vals in s["per_task"].items():
                task_rows.append(base | {"nfe": s["nfe"], "sampler": s["sampler"], "task": task,
                                         "input_psnr": inputs.get(task, math.nan)} | {m: vals[m] for m in METRICS})
        log = run / "train.jsonl"
        if log.exists():
            for line in log.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    curves.append(base | {"step": rec["step"], "loss": rec["loss"],
                                          "probe_loss": rec.get("probe_loss", rec["loss"])})
    if not rows:
        from .errors import OptionError

        raise OptionError("none of the runs has a finished evaluation (summary.json): " + ", ".join(unfinished))
    # one evaluation per (run, NFE, sampler): an "official" one that is ddim again is a copy; a run's own
    # evaluation comes first in `_evaluations`, so keeping the first keeps it
    results = pd.DataFrame(rows).drop_duplicates(["run", "nfe", "sampler"], keep="first")
    per_task = pd.DataFrame(task_rows).drop_duplicates(["run", "nfe", "sampler", "task"], keep="first")
    results.attrs["unfinished"] = unfinished
    return results, per_task, pd.DataFrame(curves)


def method_label(df: pd.DataFrame) -> pd.Series:
    """A readable method name from the METHOD_KEYS that vary in `df` (the bridge always)."""
    varying = [k for k in METHOD_KEYS if k == "bridge" or df[k].nunique() > 1]
    def label(r):
        parts = [str(r["bridge"])]
        for k in varying[1:]:
            parts.append({"pi": f"π={r['pi']}", "nfe": f"NFE {r['nfe']}", "sampler": str(r["sampler"]),
                          "backbone": str(r["backbone"]), "precision": ("fp32" if r["precision"] == "no" else r["precision"]) + " training"}[k])
        return " ".join(parts)
    return df.apply(label, axis=1)


def compute_column(results: pd.DataFrame) -> pd.DataFrame:
    """Adds params (M), network evaluations per image and GMACs per image (GMACs at 256² × evaluations)."""
    from .backbone import backbone_card
    from .registry import get_backbone, get_bridge

    cards, evals = {}, {}
    out = results.copy()
    for i, r in out.iterrows():
        key = (r["bridge"], r["backbone"])
        if key not in cards:
            try:
                bridge = get_bridge(r["bridge"])
                out_ch = bridge.out_channels(3)
                cards[key] = backbone_card(lambda **o: get_backbone(r["backbone"], **(o | {"out_channels": out_ch})))
            except Exception:  # noqa: BLE001 - an unknown or uncountable backbone leaves the columns empty
                cards[key] = {"params": math.nan, "gmacs": math.nan}
        ekey = (r["bridge"], r["pi"], r["nfe"], r["sampler"])
        if ekey not in evals:
            evals[ekey] = network_evaluations(r["bridge"], r["pi"], r["nfe"], r["sampler"])
        out.loc[i, "params_m"] = cards[key]["params"] / 1e6
        out.loc[i, "evaluations"] = evals[ekey]
        out.loc[i, "gmacs_per_image"] = cards[key]["gmacs"] * evals[ekey]
    return out


def network_evaluations(bridge_name: str, pi: str, nfe: int, sampler: str) -> float:
    """Network calls the sampler makes for one image, counted by running it with a free model on an 8×8 input."""
    import torch

    from .registry import get_bridge

    try:
        bridge = get_bridge(bridge_name, **({} if pi in (None, "default") else {"pi": pi}))
        channels = bridge.out_channels(3)
        model = bridge.wrap(lambda x, mu, t: torch.zeros(x.shape[0], channels, *x.shape[2:]))
        _, traj = bridge.sample(model, torch.zeros(1, 3, 8, 8), nfe=nfe, sampler=sampler, return_trajectory=True,
                                generator=torch.Generator().manual_seed(0))
        return float(traj.nfe)
    except Exception:  # noqa: BLE001 - a bridge that is not installed here: unknown
        return math.nan


# --------------------------------------------------------------------------------------------- tables
def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per method: seeds, mean ± CI of each metric, input PSNR, gain, params, evaluations, GMACs, s/image."""
    rows = []
    for label, g in results.groupby("method", sort=False):
        row = {"method": label, "seeds": g["seed"].nunique()}
        for m in METRICS:
            mean, half, _ = mean_ci(g[m])
            row[m], row[f"{m}_ci"] = mean, half
        row["input_psnr"] = g["input_psnr"].mean()
        gain, gain_ci, _ = mean_ci(g["psnr"] - g["input_psnr"])
        row["gain_psnr"], row["gain_psnr_ci"] = gain, gain_ci
        for col in ("params_m", "evaluations", "gmacs_per_image", "seconds_per_image"):
            row[col] = g[col].mean() if col in g else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def per_task_table(per_task: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """method × task: mean over seeds with its CI half-width (columns TASK and TASK_ci), plus the task mean."""
    out = {}
    for (label, task), g in per_task.groupby(["method", "task"], sort=False):
        mean, half, _ = mean_ci(g[metric])
        out.setdefault(label, {})[task], out[label][f"{task}_ci"] = mean, half
    table = pd.DataFrame.from_dict(out, orient="index").rename_axis("method").reset_index()
    tasks = [c for c in table.columns if c != "method" and not c.endswith("_ci")]
    table["mean"] = table[tasks].mean(axis=1)
    return table


def with_input_row(table: pd.DataFrame, per_task: pd.DataFrame) -> pd.DataFrame:
    """The PSNR table plus a row for the degraded inputs (the same images for every method)."""
    if "input_psnr" not in per_task or per_task["input_psnr"].isna().all():
        return table
    inputs = per_task.groupby("task")["input_psnr"].mean()
    row = {"method": "degraded input"} | {t: inputs.get(t, math.nan) for t in table.columns
                                          if t not in ("method", "mean") and not t.endswith("_ci")}
    row["mean"] = float(np.nanmean([v for k, v in row.items() if k != "method"]))
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def pi_tables(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(bridge × π mean PSNR with CI, paired differences between π modes with CI), or None if π does not vary.

    Only each run's own evaluation (not extra NFE / sampler evaluations) is used. Differences are paired: the same
    bridge, backbone, seed, NFE and sampler with two π modes.
    """
    results = results[results["primary"]]
    if results.groupby("bridge")["pi"].nunique().max() < 2:  # no bridge was run with two π modes
        return None
    grid = {}
    for (bridge, pi), g in results.groupby(["bridge", "pi"]):
        grid.setdefault(bridge, {})[pi], grid[bridge][f"{pi}_ci"] = mean_ci(g["psnr"])[:2]
    heat = pd.DataFrame.from_dict(grid, orient="index").rename_axis("bridge").reset_index()
    order = [c for p in PI_ORDER for c in (p, f"{p}_ci") if c in heat.columns]
    heat = heat[["bridge", *order, *[c for c in heat.columns if c not in order and c != "bridge"]]]
    keys = ["bridge", "backbone", "seed", "nfe", "sampler", "precision"]
    wide = results.pivot_table(index=keys, columns="pi", values="psnr", aggfunc="mean")
    diffs = []
    for a, b in (("residual", "one"), ("residual", "zero"), ("one", "zero")):
        if a not in wide or b not in wide:
            continue
        d = (wide[a] - wide[b]).dropna()
        for bridge, g in d.groupby(level="bridge"):
            mean, half, n = mean_ci(g.values)
            diffs.append({"bridge": bridge, "contrast": f"{a} − {b}", "mean_db": mean, "ci_db": half, "pairs": n,
                          "wins": int((g.values > 0).sum())})
    return heat, pd.DataFrame(diffs)


def unification_table(bridges) -> pd.DataFrame:
    from .registry import get_bridge

    rows = []
    for name in bridges:
        try:
            d = get_bridge(name).describe()
        except Exception:  # noqa: BLE001
            continue
        rel = d["relation"]
        lam = rel.get("lam")
        rows.append({"bridge": name, "relation": rel.get("kind"), "θ": rel.get("theta") or "–",
                     "λ": f"{lam:.4g}" if isinstance(lam, float) else (lam if lam is not None else "–"),
                     "π (default)": d["pi"], "objective": d["objective"], "note": rel.get("note", "")})
    return pd.DataFrame(rows)


def _with_ci(df: pd.DataFrame, digits=2) -> pd.DataFrame:
    """Merge X and X_ci columns into 'mean ± ci' strings for the markdown / LaTeX / HTML versions."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        if col.endswith("_ci"):
            continue
        if f"{col}_ci" in df:
            d = 4 if "ssim" in col else digits
            out[col] = [fmt(m, h, d) for m, h in zip(df[col], df[f"{col}_ci"])]
        elif pd.api.types.is_float_dtype(df[col]):
            spec = ".4g" if col in ("params_m", "evaluations", "gmacs_per_image", "seconds_per_image") else (
                ".4f" if "ssim" in col else f".{digits}f")
            out[col] = df[col].map(lambda v, spec=spec: "–" if not np.isfinite(v) else format(v, spec))
        else:
            out[col] = df[col]
    return out


def write_table(df: pd.DataFrame, out: Path, name: str) -> str:
    """CSV (raw numbers), markdown and LaTeX (mean ± CI strings); returns the HTML version."""
    df.to_csv(out / f"{name}.csv", index=False)
    pretty = _with_ci(df, digits=4 if "ssim" in name else 2)
    (out / f"{name}.md").write_text(pretty.to_markdown(index=False, disable_numparse=True) + "\n")
    (out / f"{name}.tex").write_text(pretty.to_latex(index=False, escape=True))
    return pretty.to_html(index=False, classes="table", border=0, escape=True)


# --------------------------------------------------------------------------------------------- figures
def _save(fig, out: Path, name: str, dpi: int = 130) -> list[str]:
    import matplotlib.pyplot as plt

    files = []
    for ext in ("png", "svg"):
        fig.savefig(out / "figures" / f"{name}.{ext}", dpi=dpi, bbox_inches="tight")
        files.append(f"figures/{name}.{ext}")
    plt.close(fig)
    return files


def fig_per_task(per_task: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib.pyplot as plt

    table = per_task_table(per_task)
    tasks = [c for c in table.columns if c not in ("method", "mean") and not c.endswith("_ci")]
    methods = list(table["method"])
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(tasks) * max(1, len(methods)) / 3), 4))
    width = 0.8 / max(1, len(methods))
    colors = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    for j, (_, r) in enumerate(table.iterrows()):
        xs = np.arange(len(tasks)) + (j - (len(methods) - 1) / 2) * width
        means = [r[t] for t in tasks]
        errs = [r.get(f"{t}_ci", math.nan) for t in tasks]
        ax.bar(xs, means, width, yerr=[0 if not np.isfinite(e) else e for e in errs], capsize=2,
               label=r["method"], color=colors(j % colors.N))
    if "input_psnr" in per_task and per_task["input_psnr"].notna().any():
        inputs = per_task.groupby("task")["input_psnr"].mean()
        for i, t in enumerate(tasks):
            if np.isfinite(inputs.get(t, math.nan)):
                ax.hlines(inputs[t], i - 0.45, i + 0.45, colors="black", linestyles="--", lw=1.2,
                          label="degraded input" if i == 0 else None)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel("PSNR (dB, RGB)")
    lo = np.nanmin(table[tasks].to_numpy(dtype=float))
    ax.set_ylim(max(0, lo - 3), None)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    ax.set_title("PSNR per task (mean over seeds, 95% CI)")
    return _save(fig, out, "per_task_psnr")


def fig_nfe(results: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    keys = [k for k in METHOD_KEYS if k != "nfe"]
    for key, g in results.groupby(keys, sort=False):
        pts = [(nfe, *mean_ci(h["psnr"])[:2]) for nfe, h in g.groupby("nfe")]
        x, m, e = zip(*pts)
        ax.errorbar(x, m, yerr=[0 if not np.isfinite(v) else v for v in e], marker="o", capsize=3,
                    label=re.sub(r" NFE \d+", "", g["method"].iloc[0]))
    ax.set_xscale("log")
    ax.set_xlabel("sampler steps (NFE setting)")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("PSNR against NFE")
    return _save(fig, out, "psnr_vs_nfe")


def fig_compute(summary: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for _, r in summary.iterrows():
        ax.errorbar(r["gmacs_per_image"], r["psnr"], yerr=0 if not np.isfinite(r["psnr_ci"]) else r["psnr_ci"],
                    marker="o", capsize=3, label=r["method"])
    x = summary["gmacs_per_image"].dropna()
    if len(x) and x.min() > 0 and x.max() / x.min() > 3:
        ax.set_xscale("log")
    elif len(x):  # (nearly) equal compute: a plain axis around it, no offset notation
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.set_xlim(0.8 * x.min(), 1.25 * x.max())
    if summary["input_psnr"].notna().any():
        ax.axhline(summary["input_psnr"].mean(), color="black", ls="--", lw=1, label="degraded input")
    ax.set_xlabel("GMACs per 256² image (backbone GMACs × network evaluations)")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.set_title("Quality against compute")
    return _save(fig, out, "quality_vs_compute")


def fig_loss(curves: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if not curves.empty:
        for label, g in curves.groupby("method", sort=False):
            c = g.groupby("step")["probe_loss"].mean()
            ax.plot(c.index, c.values, label=label)
        ax.set_yscale("log")
        ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss on a fixed probe batch (each method's own loss)")
    ax.set_title("Training loss (mean over seeds)")
    return _save(fig, out, "training_loss")


def fig_pi(heat: pd.DataFrame, diffs: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    cols = [p for p in PI_ORDER if p in heat.columns]
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2, 0.5 * len(heat) + 1.5))
    sns.heatmap(heat.set_index("bridge")[cols].astype(float), annot=True, fmt=".2f", cmap="viridis", ax=ax,
                cbar_kws={"label": "PSNR (dB)"})
    ax.set_xlabel("π")
    ax.set_title("π ablation: mean PSNR over seeds")
    files = _save(fig, out, "pi_heatmap")
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(1, len(diffs)) + 1.5))
    labels = [f"{r.bridge}: {r.contrast}" for r in diffs.itertuples()]
    ax.errorbar(diffs["mean_db"], np.arange(len(diffs)), xerr=diffs["ci_db"].fillna(0), fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(np.arange(len(diffs)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("paired PSNR difference (dB), 95% CI over seeds")
    ax.set_title("π ablation: paired differences")
    return files + _save(fig, out, "pi_differences")


def _read01(path: Path) -> np.ndarray:
    from .data import read_image

    return read_image(path)


def fig_qualitative(results: pd.DataFrame, out: Path, crop: int = 64) -> list[str]:
    """Rows: tasks (one sample each); columns: LQ, every method (its lowest seed), GT; the same centre crop."""
    import matplotlib.pyplot as plt

    first = results.sort_values("seed").groupby("method", sort=False).first()
    stems = None
    for ev in first["eval_dir"]:
        names = {p.name[: -len("_output.png")] for p in (Path(ev) / "samples").glob("*_output.png")}
        stems = names if stems is None else stems & names
    stems = sorted(stems or [])
    by_task = {}
    for s in stems:
        by_task.setdefault(s.split("_")[0], s)
    if not by_task:
        return []
    cols = ["LQ", *first.index, "GT"]
    cell = 1.6 if len(cols) <= 10 else 0.9  # about one screen pixel per image pixel when there are many methods
    fig, axes = plt.subplots(len(by_task), len(cols), figsize=(cell * len(cols), (cell + 0.15) * len(by_task)),
                             squeeze=False)
    ref = Path(first["eval_dir"].iloc[0]) / "samples"
    for i, (task, stem) in enumerate(by_task.items()):
        imgs = [_read01(ref / f"{stem}_lq.png")]
        imgs += [_read01(Path(ev) / "samples" / f"{stem}_output.png") for ev in first["eval_dir"]]
        imgs.append(_read01(ref / f"{stem}_gt.png"))
        h, w = imgs[0].shape[:2]
        c = min(crop, h, w)
        y, x = (h - c) // 2, (w - c) // 2
        for j, img in enumerate(imgs):
            ax = axes[i, j]
            ax.imshow(np.clip(img[y : y + c, x : x + c], 0, 1))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j].replace(" ", "\n"), fontsize=7 if cell > 1 else 5)
            if j == 0:
                ax.set_ylabel(task, fontsize=8)
    fig.suptitle(f"The same {crop}² centre crop (test split, first sample per task)", fontsize=9)
    return _save(fig, out, "qualitative", dpi=90)  # many image cells: keep the files small


def fig_noise_maps(results: pd.DataFrame, out: Path, times=(0.1, 0.3, 0.5, 0.7, 0.9)) -> list[str]:
    """Per-pixel noise std c(t)·|π| for π = one and π = residual, on one test pair, for one bridge of the report
    (rdbm if present): where RDBM's noise adapts to the degradation."""
    import matplotlib.pyplot as plt
    import torch

    from .registry import get_bridge

    name = "rdbm" if "rdbm" in set(results["bridge"]) else results["bridge"].iloc[0]
    ev = Path(results.loc[results["bridge"] == name, "eval_dir"].iloc[0]) / "samples"
    lqs = sorted(ev.glob("*_lq.png"))
    if not lqs:
        return []
    lq_path = next((p for task in ("dehaze", "lowlight", "desnow") for p in lqs if p.name.startswith(task)), lqs[0])
    stem = lq_path.name[: -len("_lq.png")]
    mu = torch.from_numpy(_read01(lq_path).transpose(2, 0, 1))[None] * 2 - 1
    x0 = torch.from_numpy(_read01(ev / f"{stem}_gt.png").transpose(2, 0, 1))[None] * 2 - 1
    maps = {}
    for pi in ("one", "residual"):
        b = get_bridge(name, pi=pi)
        for t in times:
            _, _, c = b.coefficients(torch.tensor([t], dtype=torch.float64))
            maps[(pi, t)] = (float(c.reshape(-1)[0]) * b.pi_field(x0, mu).abs().mean(1))[0].numpy()
    fig, axes = plt.subplots(2, len(times), figsize=(2 * len(times), 4.4), squeeze=False)
    for i, pi in enumerate(("one", "residual")):  # one colour scale per row: π = one is flat, π = residual is not
        vmax = max(float(maps[(pi, t)].max()) for t in times) or 1.0
        for j, t in enumerate(times):
            im = axes[i, j].imshow(maps[(pi, t)], cmap="magma", vmin=0, vmax=vmax)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(f"t = {t}", fontsize=8)
            if j == 0:
                axes[i, j].set_ylabel(f"π = {pi}", fontsize=8)
        fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.9, label="c(t)·|π| ([-1, 1] units)")
    fig.suptitle(f"{name}: per-pixel noise std on {stem} (mean over RGB)", fontsize=9)
    return _save(fig, out, "noise_std_maps")


# --------------------------------------------------------------------------------------------- the report
def _machine() -> str:
    import os

    import torch

    return (f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} logical CPUs, "
            f"{'GPU: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}; "
            f"Python {platform.python_version()}, torch {torch.__version__}").replace("  ", " ")


def build_report(paths, out: str | Path, command: str | None = None, title: str | None = None) -> dict:
    """Write the report into `out`; returns {"tables": [...], "figures": [...], "html": path}."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    runs = find_runs(paths)
    results, per_task, curves = load_results(runs)
    results = compute_column(results)
    results["method"] = method_label(results)
    # per-task rows belong to (run, nfe, sampler): that evaluation's method name
    per_task = per_task.merge(results[["run", "nfe", "sampler", "method"]], on=["run", "nfe", "sampler"])
    if not curves.empty:  # a run's training curve is shown under its first evaluation's method name
        curves["method"] = curves["run"].map(results.drop_duplicates("run").set_index("run")["method"])
    results.to_csv(out / "results_per_run.csv", index=False)

    summary = summary_table(results)
    html_tables = {"Overall (mean over tasks)": write_table(summary, out, "summary")}
    for metric in ("psnr", "ssim", "psnr_y", "ssim_y"):
        table = per_task_table(per_task, metric)
        html_tables[f"Per task: {metric.upper().replace('_Y', ' (Y)')}"] = write_table(
            with_input_row(table, per_task) if metric == "psnr" else table, out, f"per_task_{metric}")
    figures = fig_per_task(per_task, out) + fig_nfe(results, out) + fig_compute(summary, out) + fig_loss(curves, out)
    pi = pi_tables(results)
    if pi is not None:
        html_tables["π ablation: PSNR (dB) per bridge and π"] = write_table(pi[0], out, "pi_ablation")
        html_tables["π ablation: paired differences (dB)"] = write_table(pi[1], out, "pi_differences")
        figures += fig_pi(*pi, out)
    figures += fig_qualitative(results, out) + fig_noise_maps(results, out)
    bridges = sorted(set(results["bridge"]))
    html_tables["Unification: each bridge and the generalized (θ, λ, π) bridge"] = write_table(
        unification_table(bridges), out, "unification")

    command = command or "bridgezoo report " + " ".join(map(str, paths)) + f" --out {out}"
    conventions = results["conventions"].iloc[0]
    crop = sorted(set(results["crop_border"]))
    reading = (out / "READING.md").read_text() if (out / "READING.md").exists() else ""
    page = _html(title or out.name, command, conventions, crop, results, html_tables, figures, reading)
    (out / "index.html").write_text(page)
    (out / "command.txt").write_text(command + "\n")
    return {"tables": sorted(p.name for p in out.glob("*.csv")), "figures": figures, "html": str(out / "index.html"),
            "runs": len(runs), "unfinished": results.attrs.get("unfinished", [])}


def _html(title, command, conventions, crop, results, tables, figures, reading) -> str:
    e = html.escape
    settings = results.drop_duplicates("run")[["iters", "batch", "patch", "backbone"]].drop_duplicates()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}}"
        "table{border-collapse:collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
        "text-align:right}img{max-width:100%}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}</style>",
        f"</head><body><h1>{e(title)}</h1>",
        f"<p><b>Produced by</b>: <code>{e(command)}</code></p>",
        f"<p><b>Machine</b>: {e(_machine())}</p>",
        f"<p><b>Runs</b>: {results['run'].nunique()} ({results['seed'].nunique()} seed(s)); evaluations: {len(results)}."
        " Training settings: " + e("; ".join(", ".join(f"{k} {v}" for k, v in rec.items())
                                             for rec in settings.to_dict("records")))
        + (f". Unfinished runs left out: {len(results.attrs['unfinished'])}" if results.attrs.get("unfinished") else "")
        + "</p>",
        "<h2>Metric conventions</h2>",
        f"<p>{e(conventions)}; crop border {e(str(crop))} px; images as 8-bit PNG in [0, 255]. Intervals are 95% "
        "Student-t confidence intervals of the mean over seeds (none for one seed). GMACs are the backbone's "
        "multiply-accumulates for one 256² evaluation times the sampler's network evaluations.</p>",
    ]
    if reading:
        parts += ["<h2>Reading</h2>", f"<pre>{e(reading)}</pre>"]
    for name, table in tables.items():
        parts += [f"<h2>{e(name)}</h2>", table]
    parts.append("<h2>Figures</h2>")
    for f in figures:
        if f.endswith(".png"):
            parts.append(f"<figure><img src='{e(f)}' alt='{e(f)}'><figcaption>{e(f)} "
                         f"(<a href='{e(f[:-4])}.svg'>svg</a>)</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)

