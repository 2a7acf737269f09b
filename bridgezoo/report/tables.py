"""The report's tables: summary, per task, π ablation and unification, written as CSV (numbers), markdown and
LaTeX (mean with interval) and returned for the page."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import METRICS as METRIC_DECLARATIONS
from .collect import METRICS, with_settings
from .stats import Interval, PerImage, _finite, _per_seed, fmt_cell, interval, paired_difference

PI_ORDER = ("zero", "one", "residual", "uncertainty")
HEADERS = {m: METRIC_DECLARATIONS[m].label for m in METRICS} | {
           f"input_{m}": f"input {METRIC_DECLARATIONS[m].label}" for m in METRICS} | {
           "gain_psnr": "gain (dB)", "params_m": "params (M)",
           "evaluations": "network evaluations", "gmacs_per_image": "GMACs / image",
           "seconds_per_image": "s / image", "mean_db": "paired difference (dB)", "mean": "mean over tasks",
           "beats_input": "beats input (95%)", "vs_best_psnr": "PSNR − best (dB, paired)",
           "interval": "95% interval"}


def _gain(d: pd.DataFrame) -> pd.Series:
    return d["psnr"] - d["input_psnr"]


def summary_table(results: pd.DataFrame, per_image: pd.DataFrame | PerImage | None = None) -> pd.DataFrame:
    """One row per method, best mean PSNR first: seeds, mean and 95% interval of each metric, input PSNR, gain,
    whether the gain's interval is above 0 (`beats_input`), the paired PSNR difference to the best method
    (`vs_best_psnr`), params, evaluations, GMACs, s/image, and which interval the row has. Each interval is the
    two-level bootstrap over seeds and images where every evaluation of the method has `per_image` rows, else the
    t interval over seeds (see `interval`)."""
    per_image = per_image if isinstance(per_image, PerImage) else PerImage(per_image)
    rows, groups = [], {}
    for label, g in results.groupby("method", sort=False):
        images = per_image.of(g)
        groups[label] = (g, images)
        row = {"method": label, "seeds": g["seed"].nunique()}
        found = {m: interval(_per_seed(g, m), images, m) for m in METRICS}
        for m in METRICS:
            row |= found[m].cells(m)
        row["input_psnr"] = g["input_psnr"].mean()
        gain = interval(_per_seed(g.assign(gain=_gain(g)), "gain"), images, _gain)
        row |= gain.cells("gain_psnr")
        row["beats_input"] = "yes" if gain.low > 0 else "no" if _finite(gain.low) else "–"
        for col in ("params_m", "evaluations", "gmacs_per_image", "seconds_per_image"):
            row[col] = g[col].mean() if col in g else math.nan
        row["interval"] = found["psnr"].describe()
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("psnr", ascending=False, kind="stable").reset_index(drop=True)
    best_g, best_images = groups[table["method"].iloc[0]]
    vs_best = [Interval(math.nan)] + [
        paired_difference(_per_seed(groups[m][0], "psnr"), _per_seed(best_g, "psnr"), groups[m][1], best_images,
                          "psnr", common_seeds=False) for m in table["method"].iloc[1:]]
    cells = pd.DataFrame([d.cells("vs_best_psnr") for d in vs_best])
    at = list(table.columns).index("beats_input") + 1
    return pd.concat([table.iloc[:, :at], cells, table.iloc[:, at:]], axis=1)


def per_task_table(per_task: pd.DataFrame, metric: str = "psnr", order=None,
                   per_image: pd.DataFrame | PerImage | None = None) -> pd.DataFrame:
    """method × task: mean over seeds with its 95% interval (columns TASK, TASK_ci, TASK_lo, TASK_hi: see
    `summary_table`), plus the task mean; rows in `order` (method names) where given."""
    per_image = per_image if isinstance(per_image, PerImage) else PerImage(per_image)
    out = {}
    for (label, task), g in per_task.groupby(["method", "task"], sort=False):
        out.setdefault(label, {}).update(interval(_per_seed(g, metric), per_image.of(g, task), metric).cells(task))
    table = pd.DataFrame.from_dict(out, orient="index").rename_axis("method").reset_index()
    table["mean"] = table[value_columns(table)].mean(axis=1)
    return _ordered(table, order)


def value_columns(table: pd.DataFrame) -> list[str]:
    """A method × task table's task columns (not the method, the mean or an interval's _ci / _lo / _hi)."""
    return [c for c in table.columns if c not in ("method", "mean") and not _interval_column(c, table)]


def _interval_column(col: str, table) -> bool:
    return any(col.endswith(sfx) and col[: -len(sfx)] in table for sfx in ("_ci", "_lo", "_hi"))


def _ordered(table: pd.DataFrame, order) -> pd.DataFrame:
    if order is None:
        return table
    rank = {m: i for i, m in enumerate(order)}
    return table.sort_values("method", key=lambda s: s.map(lambda m: rank.get(m, len(rank))), kind="stable"
                             ).reset_index(drop=True)


def with_input_row(table: pd.DataFrame, per_task: pd.DataFrame) -> pd.DataFrame:
    """The PSNR table plus a row for the degraded inputs (the same images for every method)."""
    if "input_psnr" not in per_task or per_task["input_psnr"].isna().all():
        return table
    inputs = per_task.groupby("task")["input_psnr"].mean()
    row = {"method": "degraded input"} | {t: inputs.get(t, math.nan) for t in value_columns(table)}
    row["mean"] = float(np.nanmean([v for k, v in row.items() if k != "method"]))
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def _without_pi(label: str) -> str:
    """A method name without its π and without the settings in brackets that `with_settings` added to it."""
    return re.sub(r" \[.*\]$", "", re.sub(r" π=\S+", "", label))


def pi_tables(results: pd.DataFrame, order=None, per_image: pd.DataFrame | PerImage | None = None,
              settings: dict[str, dict] | None = None) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(method × π mean PSNR with its interval, paired differences between π modes with theirs), or None if no
    row has two π modes.

    A row is a method without its π: runs are in one row, and so compared, only where they differ in π alone —
    the same bridge, backbone, steps, sampler and training precision (the method name without π) and the same
    training settings (`settings` column, the bridge's options other than π included). Where one name without π
    covers several settings, the rows are named by what differs (`with_settings`; `settings` by key, from
    settings.json; without it, by the settings key), e.g. RDBM's paper configuration (λ = 10/255, noise objective)
    and its released one (λ = 1e-4, x0 objective) are two rows, never paired. Only each run's own evaluation (not
    extra NFE / sampler evaluations) is used. Differences are paired by seed (the same row with two π modes, on
    the seeds both have) and, with per-image results, by test image: the two-level bootstrap of the per-seed,
    per-image differences (see `paired_difference`). Rows follow the first appearance of their methods in `order`
    where given.
    """
    per_image = per_image if isinstance(per_image, PerImage) else PerImage(per_image)
    results = results[results["primary"].astype(bool)]
    keys = results["settings"].astype(str)
    settings = settings if settings is not None else {h: {"settings": h} for h in keys}
    results = results.assign(row=with_settings(results["method"].map(_without_pi), keys, settings))
    if results.groupby("row")["pi"].nunique().max() < 2:  # no method was run with two π modes
        return None
    if order is not None:
        rank = {m: i for i, m in reversed(list(enumerate(order)))}
        first = results.groupby("row")["method"].agg(lambda ms: min(rank.get(m, len(rank)) for m in ms))
        results = results.sort_values("row", key=lambda s: s.map(first), kind="stable")
    grid, cells = {}, {}
    for (row, pi), g in results.groupby(["row", "pi"], sort=False):
        cells[(row, pi)] = (_per_seed(g, "psnr"), per_image.of(g))
        grid.setdefault(row, {}).update(interval(*cells[(row, pi)], "psnr").cells(pi))
    heat = pd.DataFrame.from_dict(grid, orient="index").rename_axis("method").reset_index()
    first = [c for p in PI_ORDER for c in (p, f"{p}_ci", f"{p}_lo", f"{p}_hi") if c in heat.columns]
    heat = heat[["method", *first, *[c for c in heat.columns if c not in first and c != "method"]]]
    diffs = []
    for a, b in (("residual", "one"), ("residual", "zero"), ("one", "zero"), ("uncertainty", "one")):
        for row in dict.fromkeys(results["row"]):
            if (row, a) not in cells or (row, b) not in cells:
                continue
            (sa, ia), (sb, ib) = cells[(row, a)], cells[(row, b)]
            common = sa.index.intersection(sb.index)
            if len(common) == 0:
                continue
            d = paired_difference(sa, sb, ia, ib, "psnr")
            diffs.append({"method": row, "contrast": f"{a} − {b}"} | d.cells("mean_db")
                         | {"pairs": len(common), "images": d.images if d.kind == "bootstrap" else math.nan,
                            "wins": int((sa.loc[common] - sb.loc[common] > 0).sum())})
    columns = ["method", "contrast", "mean_db", "mean_db_ci", "mean_db_lo", "mean_db_hi", "pairs", "images", "wins"]
    return heat, pd.DataFrame(diffs, columns=columns)


def unification_table(bridges) -> pd.DataFrame:
    from ..registry import get_bridge

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
    return pd.DataFrame(rows, columns=["bridge", "relation", "θ", "λ", "π (default)", "objective", "note"])


def _with_ci(df: pd.DataFrame, digits=2) -> pd.DataFrame:
    """Merge X with its X_ci / X_lo / X_hi columns into 'mean ± h' (t interval) or 'mean [low, high]' (bootstrap
    interval) strings for the markdown / LaTeX / HTML versions."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        if _interval_column(col, df):
            continue
        if f"{col}_ci" in df or f"{col}_lo" in df:
            d = 4 if "ssim" in col else digits
            out[col] = [fmt_cell(r, col, d) for r in df.to_dict("records")]
        elif col in ("seeds", "pairs", "images", "wins"):  # counts: whole numbers, "–" where there is none
            out[col] = df[col].map(lambda v: str(int(v)) if _finite(v) else "–")
        elif pd.api.types.is_float_dtype(df[col]):
            spec = ".4g" if col in ("params_m", "evaluations", "gmacs_per_image", "seconds_per_image") else (
                ".4f" if "ssim" in col else f".{digits}f")
            out[col] = df[col].map(lambda v, spec=spec: "–" if not np.isfinite(v) else format(v, spec))
        else:
            out[col] = df[col]
    return out


def write_table(df: pd.DataFrame, out: Path, name: str, title: str = "", notes=(), best=None) -> dict:
    """CSV (raw numbers), markdown and LaTeX (mean ± CI strings, the notes below); returns the table for the page:
    {id, title, notes, files, columns: [{name, numeric}], rows: [[{text, sort, best}]]}. `best` maps a column to
    "max" or "min": its best value (the degraded-input row aside) is marked on the page."""
    df = df.reset_index(drop=True)
    df.to_csv(out / f"{name}.csv", index=False)
    pretty = _with_ci(df, digits=4 if "ssim" in name else 2)
    notes = list(notes)
    md = pretty.to_markdown(index=False, disable_numparse=True) + "\n"
    (out / f"{name}.md").write_text(md + "".join(f"\nNote: {n}\n" for n in notes))
    (out / f"{name}.tex").write_text(pretty.to_latex(index=False, escape=True)
                                     + "".join(f"% Note: {n}\n" for n in notes))
    marks = {}
    for col, how in (best or {}).items():
        if col not in df or not pd.api.types.is_numeric_dtype(df[col]):
            continue
        values = df[col].where(df["method"] != "degraded input") if "method" in df else df[col]
        if values.notna().sum() < 2 or values.max() - values.min() <= 1e-12:
            continue  # one value, or all equal: nothing is best
        marks[col] = values.idxmax() if how == "max" else values.idxmin()
    columns, rows = [c for c in pretty.columns], []
    numeric = {c: pd.api.types.is_numeric_dtype(df[c]) for c in columns}
    for i in range(len(df)):
        rows.append([{"text": pretty.at[i, c],
                      "sort": ("" if not _finite(df.at[i, c]) else repr(float(df.at[i, c]))) if numeric[c]
                      else str(df.at[i, c]),
                      "best": marks.get(c) == i} for c in columns])
    return {"id": name, "title": title, "notes": notes, "files": [f"{name}.{e}" for e in ("csv", "md", "tex")],
            "columns": [{"name": HEADERS.get(c, c), "numeric": numeric[c]} for c in columns], "rows": rows}
