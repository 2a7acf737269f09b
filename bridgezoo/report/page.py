"""Building a report folder (`build_report`: collect, then render) and rendering it (`render_report`: tables,
figures and index.html from the folder alone, with the jinja2 template `templates/report.html.j2`)."""

from __future__ import annotations

import json
import math
import platform
import re
from pathlib import Path

import pandas as pd

from ..metrics import METRICS as METRIC_DECLARATIONS
from .collect import (DATA_FILES, METRICS, TRAINING_KEYS, _short, _steps_named, compute_column, find_runs, load_results,
                      method_label)
from .figures import (BAD, GOOD, RENDERED_FIGURES, SAMPLE_FIGURES, _interval_colours, fig_compute, fig_gain, fig_loss,
                      fig_nfe, fig_noise_maps, fig_per_task, fig_pi, fig_qualitative)
from .stats import INTERVAL_NOTE, PerImage, _finite, fmt_cell
from .tables import (PI_ORDER, _interval_column, per_task_table, pi_tables, summary_table, unification_table,
                     value_columns, with_input_row, write_table)



def _names(labels, limit: int = 6) -> str:
    labels = list(labels)
    return ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def answer_markdown(summary: pd.DataFrame, diffs: pd.DataFrame | None = None, left_out=()) -> str:
    """The page's first paragraph, from the numbers: the best method, its margin over the next, whether their 95%
    intervals separate, how many methods beat the degraded input, the π contrasts, and the runs left out."""
    s = summary.sort_values("psnr", ascending=False, kind="stable").reset_index(drop=True)
    best = s.iloc[0]
    seeds = int(best["seeds"])
    text = [f"**Best: {best['method']}**, {fmt_cell(best, 'psnr')} dB PSNR (mean over tasks, "
            f"{seeds} seed{'s' if seeds != 1 else ''})"
            + (f", {best['gain_psnr']:+.2f} dB against the degraded input ({best['input_psnr']:.2f} dB)."
               if _finite(best["input_psnr"]) else ".")]

    def has(row, name):
        return _finite(row.get(f"{name}_lo", math.nan)) and _finite(row.get(f"{name}_hi", math.nan))

    def paired(row):  # a bootstrap interval of the difference to the best (paired by image): it decides
        return has(row, "vs_best_psnr") and not _finite(row.get("vs_best_psnr_ci", math.nan))

    if len(s) > 1:
        second = s.iloc[1]
        margin = best["psnr"] - second["psnr"]
        sentence = f"Next: **{second['method']}**, {fmt_cell(second, 'psnr')} dB, a margin of {margin:.2f} dB"
        if paired(second):
            low, high = -second["vs_best_psnr_hi"], -second["vs_best_psnr_lo"]
            sentence += (f" (paired 95% interval over seeds and test images [{low:.2f}, {high:.2f}] dB)"
                         + ("; it excludes zero, so the lead holds across seeds and test images." if low > 0 else
                            f"; it includes zero, so {seeds} seed(s) and these test images do not establish this "
                            "ordering."))
        elif not (has(best, "psnr") and has(second, "psnr")):
            sentence += "; with one seed there are no intervals, so this ordering is untested."
        elif best["psnr_lo"] > second["psnr_hi"]:
            sentence += "; their 95% intervals separate, so the lead holds across seeds."
        else:
            sentence += f"; their 95% intervals overlap, so {seeds} seeds do not establish this ordering."
        text.append(sentence)
        if has(best, "psnr") or any(paired(r) for _, r in s.iloc[1:].iterrows()):
            apart = [r["method"] for _, r in s.iloc[1:].iterrows()
                     if (r["vs_best_psnr_hi"] < 0 if paired(r) else
                         has(r, "psnr") and has(best, "psnr") and r["psnr_hi"] < best["psnr_lo"])]
            text.append(f"{len(apart)} of the {len(s) - 1} other methods are clearly behind it (paired interval "
                        "below zero, or intervals apart).")
    text.append("\n\n")
    if s["gain_psnr"].notna().any() and s["gain_psnr_lo"].notna().any():
        colours = _interval_colours(s["gain_psnr_lo"], s["gain_psnr_hi"])
        above = [m for m, c in zip(s["method"], colours) if c == GOOD]
        below = [m for m, c in zip(s["method"], colours) if c == BAD]
        text.append(f"{len(above)} of {len(s)} methods beat the degraded input with their interval above it"
                    + (f" ({_names(above)})" if above else "")
                    + f"; {len(below)} {'is' if len(below) == 1 else 'are'} below it"
                    + ("; the rest cannot be told apart from the input." if len(above) + len(below) < len(s) else ".")
                    + "\n\n")
    if diffs is not None and not diffs.empty:
        for contrast, g in diffs.groupby("contrast", sort=False):
            decided = [f"{r.method} ({r.mean_db:+.2f} dB)" for r in g.itertuples()
                       if (_finite(r.mean_db_lo) and r.mean_db_lo > 0) or (_finite(r.mean_db_hi) and r.mean_db_hi < 0)]
            text.append(f"\n\nπ ablation, **{contrast}**: positive for {int((g['mean_db'] > 0).sum())} of {len(g)} "
                        "methods; the paired interval excludes zero for "
                        + (_names(decided) if decided else "none") + ".")
    if left_out:
        counts = pd.Series([r["reason"] for r in left_out]).value_counts()
        text.append(f"\n\n**{len(left_out)} run(s) or evaluation(s) left out** ("
                    + ", ".join(f"{n} {reason}" for reason, n in counts.items()) + "): listed under Details.")
    return re.sub(r" *\n\n+ *", "\n\n", " ".join(text)).strip()


# --------------------------------------------------------------------------------------------- the report
def _machine() -> str:
    import os

    import torch

    return (f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} logical CPUs, "
            f"{'GPU: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}; "
            f"Python {platform.python_version()}, torch {torch.__version__}").replace("  ", " ")


def build_report(paths, out: str | Path, command: str | None = None, title: str | None = None) -> dict:
    """Collect `paths` into the report folder `out` and render it; returns `render_report`'s summary."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    runs, left_out = find_runs(paths)
    data = load_results(runs, left_out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    results = compute_column(data.results)
    results["method"] = method_label(results, data.settings)
    results.to_csv(out / "results_per_run.csv", index=False)
    # per-task rows and curves belong to an evaluation / a run: that evaluation's method, that run's training label
    per_task = data.per_task.merge(results[["run", "steps", "sampler", "method"]], on=["run", "steps", "sampler"])
    per_task.to_csv(out / "per_task_per_run.csv", index=False)
    per_image = data.per_image.merge(results[["run", "steps", "sampler", "method"]], on=["run", "steps", "sampler"])
    per_image.to_csv(out / "per_image_per_run.csv", index=False)  # what the intervals over images resample
    runs_table = results.drop_duplicates("run").set_index("run")
    training = method_label(runs_table, data.settings, TRAINING_KEYS)
    curves = data.curves if not data.curves.empty else pd.DataFrame(columns=["run", "seed", "step", "probe_loss"])
    if not curves.empty:
        curves = curves.assign(bridge=curves["run"].map(runs_table["bridge"]), method=curves["run"].map(training))
        curves["variant"] = [m[len(b):].strip() for m, b in zip(curves["method"], curves["bridge"])]
    else:
        curves = curves.assign(bridge=[], method=[], variant=[])
    curves.to_csv(out / "training_curves.csv", index=False)
    pd.DataFrame(data.left_out, columns=["run", "reason", "detail"]).to_csv(out / "runs_left_out.csv", index=False)
    (out / "settings.json").write_text(json.dumps(data.settings, indent=2, sort_keys=True, default=str) + "\n")
    command = command or "bridgezoo report " + " ".join(map(str, paths)) + f" --out {out}"
    meta = {"title": title or out.name, "command": command, "machine": _machine()}
    (out / "report.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "command.txt").write_text(command + "\n")
    for name in SAMPLE_FIGURES:  # drawn again below (or left out): never a previous report's picture
        for ext in ("png", "svg"):
            (out / "figures" / f"{name}.{ext}").unlink(missing_ok=True)
    fig_qualitative(results, out, order=list(summary_table(results)["method"]))
    fig_noise_maps(results, out)
    return render_report(out)


def render_report(out: str | Path, title: str | None = None, rerender_command: str | None = None) -> dict:
    """Tables, figures and index.html of the report folder `out` from the data it holds (see the module
    docstring); returns {"tables", "figures", "html", "runs", "left_out"}."""
    import matplotlib

    from ..errors import OptionError

    matplotlib.use("Agg")
    out = Path(out)
    if not (out / "results_per_run.csv").exists():
        raise OptionError(f"{out}: no results_per_run.csv here; not a folder written by `bridgezoo report`")
    missing = [f for f in DATA_FILES if not (out / f).exists()]
    if missing:
        raise OptionError(f"{out}: {', '.join(missing)} missing; a report folder is written by `bridgezoo report RUNS "
                          "--out FOLDER` (collect it again from its runs)")
    (out / "figures").mkdir(exist_ok=True)
    results = _steps_named(pd.read_csv(out / "results_per_run.csv"))
    meta = json.loads((out / "report.json").read_text())
    if title:
        meta["title"] = title
    settings = json.loads((out / "settings.json").read_text())
    left_out = pd.read_csv(out / "runs_left_out.csv", dtype=str).fillna("").to_dict("records")

    notes = []
    if left_out:
        counts = pd.Series([r["reason"] for r in left_out]).value_counts()
        notes.append(f"left out: {len(left_out)} run(s) or evaluation(s) without a finished result ("
                     + ", ".join(f"{n} {reason}" for reason, n in counts.items())
                     + "); each with its reason in runs_left_out.csv and index.html")
    split = sorted({m for m in results["method"] if re.search(r" \[.*\]$", m)})
    if split:
        notes.append("runs with different training settings are separate rows (settings in brackets): "
                     + _names(split))
    repeated = [m for m, g in results.groupby("method", sort=False) if g["run"].nunique() > g["seed"].nunique()]
    if repeated:
        notes.append("several runs share a seed (their mean is that seed's value, n = seeds): " + _names(repeated))
    missing = sorted(set(results.loc[~results["installed"].astype(bool), "bridge"]))
    if missing:
        notes.append("bridge(s) not installed here, so their parameters, network evaluations and GMACs are "
                     "unknown: " + ", ".join(missing))

    per_image = PerImage(_steps_named(pd.read_csv(out / "per_image_per_run.csv", dtype={
        "run": str, "sampler": str, "task": str, "image": str})))
    summary = summary_table(results, per_image)
    order = list(summary["method"])
    metric_best = {m: METRIC_DECLARATIONS[m].best for m in METRICS} | {
        "gain_psnr": "max", "seconds_per_image": "min", "gmacs_per_image": "min"}
    notes = notes + [INTERVAL_NOTE]
    summary_notes = notes + ["beats input: yes where the gain's 95% interval is above 0; PSNR − best: each method "
                             "minus the best one on the same test images (and seeds, where both have the same seeds)"]
    tables = [write_table(summary, out, "summary", "Overall (mean over tasks)", summary_notes, metric_best)]
    per_task = _steps_named(pd.read_csv(out / "per_task_per_run.csv"))
    psnr_table = None
    for metric in METRICS:
        table = per_task_table(per_task, metric, order, per_image)
        table = with_input_row(table, per_task) if metric == "psnr" else table
        psnr_table = table if metric == "psnr" else psnr_table
        best = {c: "max" for c in table.columns if c != "method" and not _interval_column(c, table)}
        tables.append(write_table(table, out, f"per_task_{metric}",
                                  f"Per task: {metric.upper().replace('_Y', ' (Y)')}", notes, best))

    answer_figures, figures, not_drawn = [], [], []
    gain = fig_gain(summary, out)
    answer_figures.append(gain)
    pi = pi_tables(results, order, per_image, settings)
    if pi is not None:
        tables.append(write_table(pi[0], out, "pi_ablation", "π ablation: PSNR (dB) per method and π", notes,
                                  {c: "max" for c in PI_ORDER}))
        tables.append(write_table(pi[1], out, "pi_differences", "π ablation: paired differences (dB)",
                                  notes + ["paired by seed (the same method and seed with two π modes) and, with "
                                           "per-image results, by test image"]))
        answer_figures += fig_pi(*pi, out)
    else:  # no row has two π modes: no π table of an earlier rendering stays
        for name, ext in ((n, e) for n in ("pi_ablation", "pi_differences") for e in ("csv", "md", "tex")):
            (out / f"{name}.{ext}").unlink(missing_ok=True)
    figures.append(fig_per_task(psnr_table, out))
    for fig, reason in (fig_nfe(results, out, per_image, settings), fig_compute(summary, out)):
        figures.append(fig)
        not_drawn += [reason] if reason else []
    curves = pd.read_csv(out / "training_curves.csv", dtype={"variant": str}, keep_default_na=False)
    if not curves.empty:
        figures.append(fig_loss(curves, out, list(dict.fromkeys(results.set_index("method").loc[order, "bridge"]))))
    for name, (fig_title, caption) in SAMPLE_FIGURES.items():
        if (out / "figures" / f"{name}.png").exists():
            figures.append({"name": name, "png": f"figures/{name}.png", "svg": f"figures/{name}.svg",
                            "title": fig_title, "caption": caption})
    tables.append(write_table(unification_table(sorted(set(results["bridge"]))), out, "unification",
                              "Unification: each bridge and the generalized (θ, λ, π) bridge"))

    drawn = [f for f in answer_figures + figures if f]
    for name in RENDERED_FIGURES - {f["name"] for f in drawn}:  # not drawn this time: no stale picture stays
        for ext in ("png", "svg"):
            (out / "figures" / f"{name}.{ext}").unlink(missing_ok=True)
    page = _page(meta=meta, results=results, summary=summary, pi=pi, left_out=left_out, settings=settings,
                 notes=notes, tables=tables, answer_figures=[f for f in answer_figures if f],
                 figures=[f for f in figures if f], not_drawn=not_drawn, out=out, rerender_command=rerender_command,
                 tasks=value_columns(psnr_table))
    (out / "index.html").write_text(page)
    return {"tables": sorted(p.name for p in out.glob("*.csv")),
            "figures": [p for f in drawn for p in (f["png"], f["svg"])], "html": str(out / "index.html"),
            "runs": int(results["run"].nunique()), "left_out": left_out}


def _settings_view(results: pd.DataFrame, settings: dict[str, dict]) -> tuple[str, list[dict], list[str]]:
    """(the settings every run shares as text, backbone and training precision first where they are one; one row
    per settings group with what differs; the differing keys)."""
    used = [h for h in dict.fromkeys(results["settings"]) if h in settings]
    fields = sorted(set().union(*(settings[h] for h in used))) if used else []
    differing = [f for f in fields if len({_short(settings[h].get(f)) for h in used}) > 1]
    constant = [f"backbone {results['backbone'].iloc[0]}"] if results["backbone"].nunique() == 1 else []
    if results["precision"].nunique() == 1:
        constant.append("training precision " + str(results["precision"].iloc[0]).replace("no", "fp32"))
    shared = "; ".join(constant + ([f"{f} {_short(settings[used[0]].get(f))}" for f in fields if f not in differing]
                                   if used else []))
    groups = [{"key": h, "runs": int(results.loc[results["settings"] == h, "run"].nunique()),
               "bridges": ", ".join(sorted(set(results.loc[results["settings"] == h, "bridge"]))),
               "values": [_short(settings[h].get(f)) for f in differing]} for h in used] if differing else []
    return shared, groups, differing


def _page(meta, results, summary, pi, left_out, settings, notes, tables, answer_figures, figures, not_drawn, out,
          rerender_command, tasks) -> str:
    import jinja2
    from markdown_it import MarkdownIt

    markdown = MarkdownIt("js-default")  # CommonMark + tables; raw HTML in the markdown is escaped
    reading = (out / "READING.md").read_text() if (out / "READING.md").exists() else ""
    env = jinja2.Environment(loader=jinja2.PackageLoader("bridgezoo", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    shared, groups, differing = _settings_view(results, settings)
    crop = sorted(set(results["crop_border"]))
    return env.get_template("report.html.j2").render(
        title=meta["title"], command=meta.get("command", ""), machine=meta.get("machine"),
        rerender_command=rerender_command,
        answer=markdown.render(answer_markdown(summary, pi[1] if pi else None, left_out)),
        reading=markdown.render(reading) if reading else "",
        runs=int(results["run"].nunique()), methods=len(summary), evaluations=len(results),
        seeds=int(results["seed"].nunique()), tasks=tasks,
        left_out=left_out, notes=notes, tables=tables, answer_figures=answer_figures, figures=figures,
        not_drawn=not_drawn, conventions=str(results["conventions"].iloc[0]), crop=", ".join(map(str, crop)),
        shared_settings=shared, settings_groups=groups, differing=differing,
        data_files=list(DATA_FILES))
