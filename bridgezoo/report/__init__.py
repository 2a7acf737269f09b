"""`bridgezoo report RUNS... --out reports/NAME`: tables, figures and an offline `index.html` from run directories.

RUNS are run directories (with `config.json` and `summary.json`), folders searched for them, or grid files (their
runs). One *result* is one evaluation of one run: the run's `summary.json` and any `evals/*/summary.json`. A
*method* is everything but the seed: bridge, π, backbone, NFE, sampler, training precision and the rest of the
training settings (what the run hash of `bridgezoo.bench.training_settings` covers). Runs that differ in any
training setting are never pooled; where one name, or one name without the axis a table or figure compares (π,
steps, sampler), would cover several settings, the differing settings are added to it, and two methods are compared
along π or steps only where they differ in that alone. Seeds are a method's repetitions and every run evaluates the
same test images, so an interval covers both: where each evaluation has its per-image results (`eval.csv`), a 95%
percentile interval of a two-level bootstrap (resample the seeds, then the images, the same images for every seed;
`bootstrap_ci`), and a difference between two methods or π modes is paired by image (and seed), which is what
resolves a fraction of a dB; where per-image results are missing (older runs), the 95% Student-t interval of the
mean over seeds (mean ± t₀.₉₇₅,ₙ₋₁·s/√n; none for n = 1). Tables write the first as "mean [low, high]", the second
as "mean ± h". Runs left out (failed, missing plugin, unfinished) are listed with the reason in `runs_left_out.csv`,
in the tables' notes and on the page.

Two steps: *collect* reads the run directories and writes the report's data into the report folder
(`results_per_run.csv`, `per_task_per_run.csv`, `per_image_per_run.csv`, `training_curves.csv`,
`runs_left_out.csv`, `settings.json`, `report.json`) plus the figures that need the sample images; *render* makes
the tables, the other figures and `index.html` (the jinja2 template `templates/report.html.j2`) from that folder
alone, so `bridgezoo report --rebuild --out reports/NAME` renders a report again without its run directories.

Modules: `collect` (finding runs, reading their evaluations, training settings), `stats` (intervals), `tables`,
`figures` and `page` (building and rendering a report folder).
"""
# what other code imports from `bridgezoo.report` (cli, benchmarks/, tests/)
from .collect import compute_column, find_runs, load_results
from .figures import fig_qualitative
from .page import build_report, render_report
from .stats import bootstrap_ci, bootstrap_means, mean_ci

__all__ = ["bootstrap_ci", "bootstrap_means", "build_report", "compute_column", "fig_qualitative", "find_runs",
           "load_results", "mean_ci", "render_report"]
