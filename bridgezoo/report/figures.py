"""The report's figures (PNG + SVG under figures/): drawn from the report folder's data (`RENDERED_FIGURES`) or,
when a report is collected, from the runs' sample images (`SAMPLE_FIGURES`)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .collect import with_settings
from .stats import PerImage, _finite, _per_seed, fmt_cell, interval
from .tables import PI_ORDER, value_columns


GOOD, NEUTRAL, BAD = "#1a9850", "#7f7f7f", "#d73027"


def _save(fig, out: Path, name: str, title: str, caption: str, dpi: int = 110) -> dict:
    """PNG + SVG of `fig` under out/figures; the figure for the page: {name, png, svg, title, caption}."""
    import matplotlib.pyplot as plt

    with plt.rc_context({"svg.hashsalt": name}):  # the same figure gives the same bytes (no date, fixed ids)
        for ext in ("png", "svg"):
            fig.savefig(out / "figures" / f"{name}.{ext}", dpi=dpi, bbox_inches="tight",
                        metadata={"Date": None} if ext == "svg" else None)
    plt.close(fig)
    return {"name": name, "png": f"figures/{name}.png", "svg": f"figures/{name}.svg", "title": title,
            "caption": caption}


def _interval_colours(low, high) -> list[str]:
    """Green where the 95% interval [low, high] lies above zero, red where below, grey where it covers zero or is
    unknown."""
    return [GOOD if _finite(lo) and lo > 0 else BAD if _finite(hi) and hi < 0 else NEUTRAL
            for lo, hi in zip(low, high)]


def _bounds(table: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) of the column NAME with its interval; where there is none, low = high = the mean."""
    mean = table[name].astype(float).to_numpy()
    low = table.get(f"{name}_lo", pd.Series(math.nan, index=table.index)).astype(float).to_numpy()
    high = table.get(f"{name}_hi", pd.Series(math.nan, index=table.index)).astype(float).to_numpy()
    return mean, np.where(np.isfinite(low), low, mean), np.where(np.isfinite(high), high, mean)


def _forest(ax, labels, table: pd.DataFrame, name: str, zero_label: str | None = None):
    """Dots with 95% interval bars for the column NAME of `table` (with NAME_ci / _lo / _hi), one row per label (top
    to bottom), coloured by `_interval_colours`, a dashed zero line, and each row's mean with its interval written
    in a column right of the axes."""
    y = np.arange(len(labels))
    mean, low, high = _bounds(table, name)
    colours = _interval_colours(table.get(f"{name}_lo", [math.nan] * len(table)),
                                table.get(f"{name}_hi", [math.nan] * len(table)))
    ax.hlines(y, low, high, colors=colours, lw=2.2)
    ax.scatter(mean, y, c=colours, s=28, zorder=3)
    ax.axvline(0, color="black", ls="--", lw=1)
    lo, hi = min(0.0, float(np.min(low))), max(0.0, float(np.max(high)))
    pad = 0.06 * (hi - lo or 1.0)
    ax.set_xlim(lo - pad, hi + pad)
    for yi, row in zip(y, table.to_dict("records")):
        text = fmt_cell(row, name)
        ax.text(1.02, yi, ("+" if row[name] >= 0 else "") + text, va="center", fontsize=7.5,
                color="#333", transform=ax.get_yaxis_transform())
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    if zero_label:
        ax.annotate(zero_label, xy=(0, 1), xycoords=("data", "axes fraction"), xytext=(3, 3),
                    textcoords="offset points", fontsize=7, ha="left", va="bottom")


def fig_gain(summary: pd.DataFrame, out: Path) -> dict | None:
    """The answer: each method's PSNR gain over the degraded input with its 95% interval, best first."""
    import matplotlib.pyplot as plt

    s = summary[np.isfinite(summary["gain_psnr"].astype(float))].sort_values("gain_psnr", ascending=False)
    if s.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(s) + 1.3))
    inputs = s["input_psnr"].mean()
    _forest(ax, list(s["method"]), s, "gain_psnr", f"degraded input ({inputs:.2f} dB)")
    ax.set_xlabel("PSNR gain over the degraded input (dB): mean over tasks and seeds, 95% interval")
    ax.set_title("Gain over the degraded input", fontsize=10, loc="left", pad=14)
    seeds = int(s["seeds"].max())
    over = _interval_words(s)
    return _save(fig, out, "gain", "Gain over the degraded input",
                 "Each row is a method, best first: the dot is its mean PSNR gain over the degraded input (the "
                 f"dashed zero line), the bar its 95% interval {over} ({seeds} seed(s) at most; "
                 "'[low, high]': bootstrap, '±': t). Green: the whole interval is above the input (the method "
                 "restores); red: below it (the method degrades); grey: not distinguishable from the input. Two "
                 "methods' bars overlapping does not mean they are tied: the summary table's paired difference to "
                 "the best method decides that.")


def _interval_words(summary: pd.DataFrame) -> str:
    """What the summary's intervals cover, in words, for a caption."""
    kinds = {str(k).split(",")[0] for k in summary.get("interval", pd.Series(["t"]))}
    if kinds == {"bootstrap"}:
        return "over seeds and test images (two-level bootstrap)"
    if "bootstrap" in kinds:
        return "over seeds and test images (two-level bootstrap) where per-image results exist, else over seeds (t)"
    return "over seeds (t)"


def fig_per_task(table: pd.DataFrame, out: Path) -> dict | None:
    """PSNR per task, one panel per task (wrapped), methods in the table's order, the task's input as a line."""
    import matplotlib.pyplot as plt

    tasks = value_columns(table)
    inputs = table[table["method"] == "degraded input"]
    rows = table[table["method"] != "degraded input"]
    if not tasks or rows.empty:
        return None
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols + 2.2, (0.24 * len(rows) + 1.0) * nrows),
                             sharey=True, squeeze=False)
    for k, task in enumerate(tasks):
        ax = axes[k // ncols, k % ncols]
        mean = rows[task].astype(float).to_numpy()
        _, low, high = _bounds(rows, task)
        y = np.arange(len(rows))
        ax.hlines(y, low, high, colors="#4c72b0", lw=2)
        ax.scatter(mean, y, color="#4c72b0", s=18, zorder=3)
        if len(inputs) and _finite(inputs[task].iloc[0]):
            ax.axvline(float(inputs[task].iloc[0]), color="black", ls="--", lw=1)
        ax.set_title(f"{task}  (input {float(inputs[task].iloc[0]):.2f} dB)" if len(inputs) else task, fontsize=9)
        ax.set_yticks(y, list(rows["method"]), fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
        if k // ncols == nrows - 1 or k + ncols >= len(tasks):
            ax.set_xlabel("PSNR (dB)", fontsize=8)
    for k in range(len(tasks), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    fig.tight_layout()
    return _save(fig, out, "per_task_psnr", "PSNR per task",
                 "One panel per task, methods in the order of the summary table: dot = mean PSNR over seeds, bar = "
                 "95% interval, dashed line = that task's degraded input. A dot right of the line restores the "
                 "task; compare panels to see which task decides the overall ranking.")



def fig_nfe(results: pd.DataFrame, out: Path, per_image: pd.DataFrame | PerImage | None = None,
            settings: dict[str, dict] | None = None) -> tuple[dict | None, str]:
    """PSNR against sampler steps per method (the steps removed from the name); not drawn unless some method has
    two step counts. A line joins only runs of the same training settings (`settings` column; named by what differs
    as in `pi_tables`, `settings` by key from settings.json)."""
    import matplotlib.pyplot as plt

    keys = results["settings"].astype(str)
    base = results["method"].map(lambda m: re.sub(r" \[.*\]$", "", re.sub(r" \d+ steps", "", m)))
    line = with_settings(base, keys, settings if settings is not None else {h: {"settings": h} for h in keys})
    results = results.assign(line=line)
    lines = [(name, g) for name, g in results.groupby("line", sort=False) if g["steps"].nunique() > 1]
    if not lines:
        values = sorted(set(results["steps"]))
        return None, (f"PSNR against sampler steps: not drawn, every method was evaluated at one step count "
                      f"({', '.join(map(str, values))})")
    per_image = per_image if isinstance(per_image, PerImage) else PerImage(per_image)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, g in lines:
        pts = [(nfe, interval(_per_seed(h, "psnr"), per_image.of(h), "psnr")) for nfe, h in g.groupby("steps")]
        x = [nfe for nfe, _ in pts]
        m = np.array([i.mean for _, i in pts])
        low = np.array([i.low if _finite(i.low) else i.mean for _, i in pts])
        high = np.array([i.high if _finite(i.high) else i.mean for _, i in pts])
        ax.errorbar(x, m, yerr=[m - low, high - m], marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("sampler steps (--steps)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1))  # outside: never on data
    return _save(fig, out, "psnr_vs_nfe", "PSNR against sampler steps",
                 "Mean PSNR over seeds (95% interval) at each sampler step count, one line per method: where a "
                 "line flattens, more steps buy nothing."), ""


def fig_compute(summary: pd.DataFrame, out: Path) -> tuple[dict | None, str]:
    """PSNR beside GMACs per image, one row per method; not drawn when every method costs the same."""
    import matplotlib.pyplot as plt

    gmacs = summary["gmacs_per_image"].astype(float)
    known = gmacs.dropna()
    if known.empty:
        return None, "Quality against compute: not drawn, the compute of these methods is unknown here"
    levels = sorted(known)
    distinct = 1 + sum(b > 1.05 * a for a, b in zip(levels, levels[1:]))
    if distinct < 2:
        return None, (f"Quality against compute: not drawn, every method costs the same "
                      f"({levels[0]:.4g} GMACs per 256² image)")
    s = summary.sort_values("psnr", ascending=False)
    y = np.arange(len(s))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 0.28 * len(s) + 1.4), sharey=True,
                                 gridspec_kw={"width_ratios": [3, 2]})
    _, low, high = _bounds(s, "psnr")
    ax.hlines(y, low, high, colors="#4c72b0", lw=2)
    ax.scatter(s["psnr"], y, color="#4c72b0", s=20, zorder=3)
    if s["input_psnr"].notna().any():
        ax.axvline(s["input_psnr"].mean(), color="black", ls="--", lw=1)
    ax.set_yticks(y, list(s["method"]), fontsize=7)
    ax.set_ylim(len(s) - 0.5, -0.5)
    ax.set_xlabel("PSNR (dB), 95% interval; dashed: degraded input", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    bx.barh(y, s["gmacs_per_image"].astype(float), color="#8172b3")
    bx.set_xlabel("GMACs per 256² image (backbone × network evaluations)", fontsize=8)
    bx.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out, "quality_vs_compute", "Quality and compute",
                 "Left: each method's mean PSNR (best first); right: what one 256² image costs it. A method "
                 "below another on the left and with a longer bar on the right is dominated."), ""


def fig_loss(curves: pd.DataFrame, out: Path, bridges=None) -> dict | None:
    """Probe-batch loss against step, one panel per bridge (wrapped; in the order of `bridges` where given), one
    colour per variant (π, settings, ...)."""
    import matplotlib.pyplot as plt

    if curves.empty:
        return None
    present = set(curves["bridge"])
    bridges = [b for b in dict.fromkeys([*(bridges or []), *curves["bridge"]]) if b in present]
    variants = list(dict.fromkeys(curves["variant"]))
    colours = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20")
    ncols = min(4, len(bridges))
    nrows = math.ceil(len(bridges) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.1 * ncols, 2.5 * nrows + 0.4), squeeze=False)
    for k, bridge in enumerate(bridges):
        ax = axes[k // ncols, k % ncols]
        for variant, g in curves[curves["bridge"] == bridge].groupby("variant", sort=False):
            c = g.groupby("step")["probe_loss"].mean()
            ax.plot(c.index, c.values, color=colours(variants.index(variant) % colours.N), lw=1.2)
        ax.set_yscale("log")
        ax.set_title(bridge, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for k in range(len(bridges), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    fig.supxlabel("step", fontsize=8)
    fig.supylabel("loss on a fixed probe batch", fontsize=8)
    fig.tight_layout()
    if any(variants):
        handles = [plt.Line2D([], [], color=colours(i % colours.N)) for i in range(len(variants))]
        fig.legend(handles, [v or "(default)" for v in variants], loc="upper center", ncol=min(4, len(variants)),
                   fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))  # below the panels: never on data
    return _save(fig, out, "training_loss", "Training loss",
                 "One panel per bridge, mean over seeds of the loss on a fixed probe batch (each method's own loss, "
                 "so compare shapes, not levels across panels): a curve still falling at the end means the runs "
                 "were stopped before convergence.")


def fig_pi(heat: pd.DataFrame, diffs: pd.DataFrame, out: Path) -> list[dict]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    cols = [p for p in PI_ORDER if p in heat.columns]
    values = heat.set_index("method")[cols].astype(float)
    notes = np.array([[fmt_cell(row, c).replace(" ± ", "\n± ").replace(" [", "\n[") for c in cols]
                      for row in heat.to_dict("records")])
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 3.2, 0.5 * len(heat) + 1.4))
    sns.heatmap(values, annot=notes, fmt="", annot_kws={"fontsize": 7}, cmap="viridis", ax=ax,
                cbar_kws={"label": "PSNR (dB)"})
    ax.set_xlabel("π")
    ax.set_ylabel("")
    ax.tick_params(labelsize=8)
    ax.set_title("π ablation: mean PSNR over seeds", fontsize=10, loc="left")
    files = [_save(fig, out, "pi_heatmap", "π ablation",
                   "Mean PSNR (± 95% interval) of each method (row) with each noise shape π (column); read along a "
                   "row: which π suits that bridge. Colours compare all cells.")]
    if diffs.empty:
        return files
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(diffs) + 1.3))
    _forest(ax, [f"{r.method}: {r.contrast}" for r in diffs.itertuples()], diffs, "mean_db")
    ax.set_xlabel("paired PSNR difference (dB), 95% interval"
                  + (" over seeds and test images" if diffs["mean_db_lo"].notna().any() and
                     diffs["mean_db_ci"].isna().all() else " over seeds" if diffs["mean_db_ci"].notna().all() else ""))
    ax.set_title("π ablation: paired differences", fontsize=10, loc="left")
    return files + [_save(fig, out, "pi_differences", "π ablation: paired differences",
                          "Each row: one method's PSNR with the first π minus with the second, paired by seed "
                          "and, where per-image results exist, by test image ('[low, high]': two-level bootstrap "
                          "over seeds and images; '±': t over seeds). Green / red: the interval excludes zero (the "
                          "first π is better / worse); grey: the seeds and images do not decide.")]


def _read01(path: Path) -> np.ndarray:
    from ..data import read_image

    return read_image(path)


def fig_qualitative(results: pd.DataFrame, out: Path, order=None, crop: int = 64) -> bool:
    """Rows: tasks (one sample each); columns: LQ, every method (its lowest seed; in `order` where given), GT;
    the same centre crop."""
    import matplotlib.pyplot as plt

    first = results.sort_values("seed").groupby("method", sort=False).first()
    first = first.reindex([m for m in order if m in first.index]) if order is not None else first
    stems = None
    for ev in first["eval_dir"]:
        names = {p.name[: -len("_output.png")] for p in (Path(ev) / "samples").glob("*_output.png")}
        stems = names if stems is None else stems & names
    ref = Path(first["eval_dir"].iloc[0]) / "samples"
    stems = sorted(s for s in stems or [] if (ref / f"{s}_gt.png").exists())  # a test set without ground truth: none
    by_task = {}
    for s in stems:
        by_task.setdefault(s.split("_")[0], s)
    if not by_task:
        return False
    cols = ["LQ", *first.index, "GT"]
    cell = 1.6 if len(cols) <= 10 else 0.9  # about one screen pixel per image pixel when there are many methods
    fig, axes = plt.subplots(len(by_task), len(cols), figsize=(cell * len(cols), (cell + 0.15) * len(by_task)),
                             squeeze=False)
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
    _save(fig, out, "qualitative", "", "", dpi=90)  # many image cells: keep the files small
    return True


def fig_noise_maps(results: pd.DataFrame, out: Path, times=(0.1, 0.3, 0.5, 0.7, 0.9)) -> bool:
    """Per-pixel noise std c(t)·|π| for π = one and π = residual, on one test pair, for one bridge of the report:
    the first with a run at π = residual (else the first installed), on the sample pair whose degradation varies most
    over the image (the largest spatial std of |x0 − μ|, the mean over RGB), where π = residual departs most from a
    flat π = one: where the noise adapts to the degradation."""
    import matplotlib.pyplot as plt
    import torch

    from ..registry import get_bridge

    installed = results[results["installed"].astype(bool)]
    if installed.empty:
        return False
    residual = installed[installed["pi"] == "residual"]
    name = (residual if len(residual) else installed)["bridge"].iloc[0]
    ev = Path(installed.loc[installed["bridge"] == name, "eval_dir"].iloc[0]) / "samples"
    gt_of = lambda lq: ev / f"{lq.name[: -len('_lq.png')]}_gt.png"  # noqa: E731
    lqs = sorted(p for p in ev.glob("*_lq.png") if gt_of(p).exists())
    if not lqs:
        return False
    lq_path = max(lqs, key=lambda p: float(np.abs(_read01(gt_of(p)) - _read01(p)).mean(-1).std()))
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
    _save(fig, out, "noise_std_maps", "", "")
    return True


# figures `render_report` draws from the report folder's data
RENDERED_FIGURES = frozenset({"gain", "pi_heatmap", "pi_differences", "per_task_psnr", "psnr_vs_nfe",
                              "quality_vs_compute", "training_loss"})
# figures drawn from the sample images when the report is collected; the page shows them if they exist
SAMPLE_FIGURES = {
    "qualitative": ("The same crops", "The same centre crop of one test image per task (rows): the degraded input, "
                    "every method (its lowest seed) and the ground truth. Look for methods that only copy the input "
                    "and for artefacts that PSNR averages away."),
    "noise_std_maps": ("Where the noise goes", "The per-pixel noise std c(t)·|π| of one bridge along t, for "
                       "π = one (flat) and π = residual (large where the image is most degraded)."),
}
