"""`bridgezoo report RUNS... --out reports/NAME`: tables, figures and an offline `index.html` from run directories.

RUNS are run directories (with `config.json` and `summary.json`), folders searched for them, or grid files (their
runs). One *result* is one evaluation of one run: the run's `summary.json` and any `evals/*/summary.json`.
A *method* is everything but the seed: bridge, π, backbone, NFE, sampler, training precision and the rest of the
training settings (what the run hash of `bridgezoo.bench.training_settings` covers). Runs that differ in any
training setting are never pooled; where one name would cover several settings, the differing settings are added to
it. Seeds are a method's repetitions and every run evaluates the same test images, so an interval covers both:
where each evaluation has its per-image results (`eval.csv`), a 95% percentile interval of a two-level bootstrap
(resample the seeds, then the images, the same images for every seed; `bootstrap_ci`), and a difference between two
methods or π modes is paired by image (and seed), which is what resolves a fraction of a dB; where per-image
results are missing (older runs), the 95% Student-t interval of the mean over seeds (mean ± t₀.₉₇₅,ₙ₋₁·s/√n; none
for n = 1). Tables write the first as "mean [low, high]", the second as "mean ± h". Runs left out (failed, missing
plugin, unfinished) are listed with the reason in `runs_left_out.csv`, in the tables' notes and on the page.

Two steps: *collect* reads the run directories and writes the report's data into the report folder
(`results_per_run.csv`, `per_task_per_run.csv`, `per_image_per_run.csv`, `training_curves.csv`,
`runs_left_out.csv`, `settings.json`, `report.json`) plus the figures that need the sample images; *render* makes
the tables, the other figures and `index.html` (the jinja2 template `templates/report.html.j2`) from that folder
alone, so `bridgezoo report --rebuild --out reports/NAME` renders a report again without its run directories.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluate import LEGACY_STEPS, steps_of

METRICS = ("psnr", "ssim", "psnr_y", "ssim_y")
PER_IMAGE_COLUMNS = (*METRICS, *(f"input_{m}" for m in METRICS))  # what per_image_per_run.csv keeps of eval.csv
METHOD_KEYS = ("bridge", "pi", "backbone", "steps", "sampler", "precision")
TRAINING_KEYS = ("bridge", "pi", "backbone", "precision")  # what names a training run (its curve)
PI_ORDER = ("zero", "one", "residual", "uncertainty")
# what `render_report` reads (results_per_run.csv is required; the others are used where present)
DATA_FILES = ("results_per_run.csv", "per_task_per_run.csv", "per_image_per_run.csv", "training_curves.csv",
              "runs_left_out.csv", "settings.json", "report.json")
HEADERS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "psnr_y": "PSNR Y (dB)", "ssim_y": "SSIM Y",
           "input_psnr": "input PSNR (dB)", "gain_psnr": "gain (dB)", "params_m": "params (M)",
           "evaluations": "network evaluations", "gmacs_per_image": "GMACs / image",
           "seconds_per_image": "s / image", "mean_db": "paired difference (dB)", "mean": "mean over tasks",
           "beats_input": "beats input (95%)", "vs_best_psnr": "PSNR − best (dB, paired)",
           "interval": "95% interval"}


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


BOOTSTRAP_DRAWS = 2000  # draws of the two-level bootstrap
BOOTSTRAP_SEED = 0  # its fixed numpy seed: a report renders to the same numbers every time


def _resample_counts(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """(draws, n) counts: how often each of n items is picked when n are drawn with replacement, per draw."""
    picks = rng.integers(0, n, size=(draws, n)) + n * np.arange(draws)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n).astype(np.float64)


def _as_matrix(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    return x.reshape(1, -1) if x.ndim == 1 else x


def bootstrap_means(values, strata=None, *, minus=None, draws: int = BOOTSTRAP_DRAWS,
                    seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """The two-level (hierarchical) bootstrap distribution of the mean of a seeds × images array: `draws` values.

    One draw resamples the seeds (rows) with replacement, then the test images (columns) with replacement — the
    same image indices for every seed of that draw, since every seed evaluates the same images — and takes the mean
    of the drawn cells (NaN cells, e.g. an infinite PSNR, are left out). `strata` (one label per image, e.g. its
    task) resamples the images within each stratum, so every draw keeps the test set's task mix. A 1-D `values` is
    one seed. `minus`, a second seeds' × images array over the same images (columns, same order), gives the
    distribution of mean(values) − mean(minus): one image draw for both (paired by image), each its own seed draw
    (for methods whose seeds do not pair; where they do, pass the per-seed, per-image difference as `values`).
    scipy.stats.bootstrap resamples one level only (or whole paired observations), hence this function.
    """
    parts = [(1.0, _as_matrix(values))] + ([(-1.0, _as_matrix(minus))] if minus is not None else [])
    images = parts[0][1].shape[1]
    if any(x.shape[1] != images for _, x in parts):
        raise ValueError(f"values has {images} images, minus {parts[-1][1].shape[1]}: not the same images")
    labels = np.zeros(images, dtype=int) if strata is None else pd.factorize(np.asarray(strata))[0]
    if len(labels) != images:
        raise ValueError(f"strata has {len(labels)} labels for {images} images")
    groups = [np.flatnonzero(labels == k) for k in range(labels.max() + 1)] if images else []
    rng = np.random.default_rng(seed)
    out = np.zeros(draws)
    step = max(1, min(draws, 1_000_000 // max(images, 1)))  # draws per block: bounded memory for the weights
    for start in range(0, draws, step):
        n = min(step, draws - start)
        image_w = np.zeros((n, images))
        for idx in groups:
            image_w[:, idx] = _resample_counts(rng, len(idx), n)
        for sign, x in parts:
            finite = np.isfinite(x)
            seed_w = _resample_counts(rng, x.shape[0], n)
            total = np.einsum("bs,si,bi->b", seed_w, np.where(finite, x, 0.0), image_w)
            count = np.einsum("bs,si,bi->b", seed_w, finite.astype(np.float64), image_w)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start:start + n] += sign * total / count
    return out


def bootstrap_ci(values, strata=None, *, minus=None, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of a seeds × images array (minus the mean of `minus`, where given) and its
    `level` percentile interval from `bootstrap_means` (seeds and images resampled; see there)."""
    def mean_of(v):
        x = _as_matrix(v)
        return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan

    mean = mean_of(values) - (mean_of(minus) if minus is not None else 0.0)
    dist = bootstrap_means(values, strata, minus=minus, draws=draws, seed=seed)
    if not np.isfinite(dist).any():
        return mean, math.nan, math.nan
    low, high = np.nanpercentile(dist, [50 * (1 - level), 50 * (1 + level)])
    return mean, float(low), float(high)


def fmt(mean: float, half: float, digits: int = 2, low: float = math.nan, high: float = math.nan) -> str:
    """'mean ± half' for a t interval, 'mean [low, high]' for a percentile one (no half), 'mean' for none."""
    if not _finite(mean):
        return "–"
    if _finite(half):
        return f"{mean:.{digits}f} ± {half:.{digits}f}"
    if _finite(low) and _finite(high):
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{mean:.{digits}f}"


def fmt_cell(row, name: str, digits: int = 2) -> str:
    """`fmt` of the columns NAME, NAME_ci, NAME_lo, NAME_hi of a table row (a dict or a pandas row)."""
    get = (lambda k: row.get(k, math.nan)) if hasattr(row, "get") else (lambda k: getattr(row, k, math.nan))
    return fmt(get(name), get(f"{name}_ci"), digits, get(f"{name}_lo"), get(f"{name}_hi"))


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and bool(np.isfinite(x))


# --------------------------------------------------------------------------------------------- finding runs
def _installed(bridge: str) -> bool:
    from .errors import UnknownNameError
    from .registry import registry

    try:
        registry().entry("bridge", bridge)
        return True
    except UnknownNameError:
        return False


def why_left_out(run: Path, bridge: str | None = None, what: str = "") -> dict:
    """{run, reason, detail} for a run without the finished evaluation a report needs: failed (its `error.txt`),
    missing plugin (no installed plugin provides its bridge) or unfinished (not started, stopped, or not evaluated)."""
    if (run / "error.txt").exists():
        lines = [ln for ln in (run / "error.txt").read_text(errors="replace").splitlines() if ln.strip()]
        return {"run": str(run), "reason": "failed", "detail": lines[-1] if lines else "empty error.txt"}
    if bridge is None and (run / "config.json").exists():
        bridge = json.loads((run / "config.json").read_text()).get("bridge")
    if bridge is not None and not _installed(bridge):
        return {"run": str(run), "reason": "missing plugin", "detail": f"no installed plugin provides bridge {bridge!r}"}
    if not (run / "config.json").exists():
        return {"run": str(run), "reason": "unfinished", "detail": "not started (no config.json)"}
    if what:
        return {"run": str(run), "reason": "unfinished", "detail": f"evaluation {what} not written"}
    detail = "no summary.json"
    log = run / "train.jsonl"
    if log.exists():
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        iters = json.loads((run / "config.json").read_text()).get("iters")
        if lines:
            detail += f": training stopped at step {json.loads(lines[-1])['step']}" + (f" of {iters}" if iters else "")
    return {"run": str(run), "reason": "unfinished", "detail": detail}


def _evaluations(run: Path, wanted: set[Path] | None = None) -> list[Path]:
    found = ([run] if (run / "summary.json").exists() else []) + sorted(
        p.parent for p in (run / "evals").glob("*/summary.json"))
    return [ev for ev in found if wanted is None or ev in wanted]


def find_runs(paths) -> tuple[dict[Path, set[Path] | None], list[dict]]:
    """(runs, left_out) named by `paths` (run directories, folders containing them, or grid TOML files).

    runs: each run directory with a finished evaluation → the evaluation directories to read (for a grid, the ones
    it asks for; None for a run named directly or found in a folder: all of them). left_out: `why_left_out` of every
    run without a finished evaluation and of every evaluation a grid asks for that is not written.
    """
    from .errors import OptionError

    requests: dict[Path, set[Path] | None] = {}
    bridges: dict[Path, str] = {}
    eval_names: dict[Path, str] = {}

    def request(run: Path, wanted: set[Path] | None):
        if run not in requests:
            requests[run] = wanted
        elif requests[run] is not None:
            requests[run] = None if wanted is None else requests[run] | wanted

    for p in map(Path, paths):
        if p.suffix == ".toml":  # a grid: its runs, and of each only the evaluations the grid asks for
            from .bench import load_grid

            for r in load_grid(p).runs:
                names = {r.eval_dir(*e): f"NFE {e[0] if e[0] is not None else 'default'}, "
                                         f"sampler {e[1] or 'official'}" for e in r.evals}
                eval_names |= names
                bridges[r.directory] = r.config["bridge"]
                request(r.directory, set(names))
        elif (p / "config.json").exists() or (p / "error.txt").exists():
            request(p, None)
        elif p.is_dir():
            for run in sorted({c.parent for pattern in ("config.json", "error.txt") for c in p.rglob(pattern)
                               if "state" not in c.relative_to(p).parts}):
                request(run, None)
        else:
            raise OptionError(f"{p}: not a run directory, a folder of runs or a grid file")
    if not requests:
        raise OptionError(f"no run directories found in {', '.join(map(str, paths))}")
    found, left_out = {}, []
    for run, wanted in requests.items():
        evals = _evaluations(run, wanted)
        if not evals:
            left_out.append(why_left_out(run, bridges.get(run)))
            continue
        found[run] = wanted
        left_out += [why_left_out(run, bridges.get(run), eval_names[ev]) for ev in sorted(wanted or ())
                     if ev not in evals]
    return found, left_out


def settings_of(config: dict) -> dict:
    """A run's training settings that are not a method key (bridge, π, backbone, precision) or the seed: the
    `RunConfig` fields that `bench.training_settings` covers, with the bridge's resolved options (π removed)
    instead of the options it was given; a field missing from an older config.json takes today's default."""
    from .bench import training_settings
    from .run import RunConfig

    defaults = dataclasses.asdict(RunConfig())
    full = {k: config.get(k, default) for k, default in defaults.items()}
    opts = config.get("bridge_options", config.get("bridge_opts")) or {}
    full["bridge_opts"] = {k: v for k, v in opts.items() if k != "pi"}
    return {k: v for k, v in training_settings(full).items()
            if k not in ("bridge", "pi", "backbone", "seed", "mixed_precision", "resume")}


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]


@dataclasses.dataclass
class Collected:
    """What the run directories say: one row per evaluation (`results`), per evaluation and task (`per_task`),
    per logged training step (`curves`); the runs left out; the training settings by `settings_key`; one row per
    evaluation and test image (`per_image`, from each evaluation's eval.csv where it has one)."""

    results: pd.DataFrame
    per_task: pd.DataFrame
    curves: pd.DataFrame
    left_out: list[dict]
    settings: dict[str, dict]
    per_image: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


def load_results(runs, left_out: list[dict] | None = None) -> Collected:
    """The results of `runs` (a list of run directories, or `find_runs`'s mapping run → evaluations to read)."""
    rows, task_rows, curves, settings, image_frames = [], [], [], {}, []
    left_out = list(left_out or [])
    runs = runs if isinstance(runs, dict) else dict.fromkeys(runs)
    for run, wanted in runs.items():
        evals = _evaluations(run, wanted)
        if not evals or not (run / "config.json").exists():
            left_out.append(why_left_out(run))
            continue
        cfg = json.loads((run / "config.json").read_text())
        run_settings = settings_of(cfg)
        key = settings_key(run_settings)
        settings[key] = run_settings
        base = {"run": str(run), "bridge": cfg["bridge"], "backbone": cfg["backbone"], "seed": cfg.get("seed", 0),
                "pi": cfg.get("bridge_options", {}).get("pi") or cfg.get("pi") or "default",
                "iters": cfg.get("iters"), "patch": cfg.get("patch"), "batch": cfg.get("batch"),
                "precision": cfg.get("mixed_precision") or "no", "settings": key,
                "installed": _installed(cfg["bridge"])}
        for ev in evals:
            s = json.loads((ev / "summary.json").read_text())
            row = base | {"eval_dir": str(ev), "primary": ev == run, "steps": steps_of(s), "sampler": s["sampler"],
                          "evaluations": s.get("evaluations", math.nan),  # counted while sampling (newer runs)
                          "images": s["images"], "seconds_per_image": s["seconds_per_image"],
                          "crop_border": s.get("crop_border", 0), "conventions": s.get("conventions", "")}
            row |= {m: s["overall"][m] for m in METRICS} | {f"input_{m}": s["input"][m] for m in METRICS}
            rows.append(row)
            inputs = {}
            if (ev / "eval.csv").exists():  # the degraded inputs' per-task PSNR, for reference lines
                per_image = pd.read_csv(ev / "eval.csv")
                inputs = per_image.groupby("task")["input_psnr"].mean().to_dict()
                if {"name", "task"} <= set(per_image.columns):  # the per-image values, for the intervals
                    image_frames.append(_image_rows(per_image, run, base["seed"], steps_of(s), s["sampler"]))
            for task, vals in s["per_task"].items():
                task_rows.append({"run": str(run), "seed": base["seed"], "steps": steps_of(s), "sampler": s["sampler"],
                                  "task": task, "input_psnr": inputs.get(task, math.nan)}
                                 | {m: vals[m] for m in METRICS})
        log = run / "train.jsonl"
        if log.exists():
            for line in log.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    curves.append({"run": str(run), "seed": base["seed"], "step": rec["step"], "loss": rec["loss"],
                                   "probe_loss": rec.get("probe_loss", rec["loss"])})
    if not rows:
        from .errors import OptionError

        raise OptionError("none of the runs has a finished evaluation (summary.json): " + "; ".join(
            f"{r['run']} ({r['reason']}: {r['detail']})" for r in left_out))
    # one evaluation per (run, NFE, sampler): an "official" one that is ddim again is a copy; a run's own
    # evaluation comes first in `_evaluations`, so keeping the first keeps it
    results = pd.DataFrame(rows).drop_duplicates(["run", "steps", "sampler"], keep="first").reset_index(drop=True)
    per_task = pd.DataFrame(task_rows).drop_duplicates(["run", "steps", "sampler", "task"], keep="first")
    per_image = (pd.concat(image_frames, ignore_index=True).drop_duplicates(
        ["run", "steps", "sampler", "task", "image"], keep="first").reset_index(drop=True) if image_frames else
        pd.DataFrame(columns=["run", "seed", "steps", "sampler", "task", "image", *PER_IMAGE_COLUMNS]))
    return Collected(results, per_task, pd.DataFrame(curves), left_out, settings, per_image)


def _image_rows(eval_csv: pd.DataFrame, run: Path, seed, nfe, sampler) -> pd.DataFrame:
    """One evaluation's eval.csv as per-image rows: run, seed, nfe, sampler, task, image (the test set's name and
    the image's name, where eval.csv has test sets: two sets may hold equal names), and the metrics it has."""
    image = eval_csv["name"].astype(str)
    if "test_set" in eval_csv:
        image = eval_csv["test_set"].astype(str) + "/" + image
    out = pd.DataFrame({"run": str(run), "seed": seed, "steps": nfe, "sampler": sampler,
                        "task": eval_csv["task"].astype(str), "image": image})
    for col in PER_IMAGE_COLUMNS:
        out[col] = eval_csv[col] if col in eval_csv else math.nan
    return out


def _short(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)


def method_label(df: pd.DataFrame, settings: dict[str, dict] | None = None, keys=METHOD_KEYS) -> pd.Series:
    """A readable method name from the `keys` that vary in `df` (the bridge always). Where one name covers runs
    with different training settings, the settings that differ are added in brackets, e.g. `[patch 7]`."""
    varying = [k for k in keys if k == "bridge" or df[k].nunique() > 1]

    def label(r):
        parts = [str(r["bridge"])]
        for k in varying[1:]:
            parts.append({"pi": f"π={r['pi']}", "steps": f"{r['steps']} steps", "sampler": str(r["sampler"]),
                          "backbone": str(r["backbone"]),
                          "precision": ("fp32" if r["precision"] == "no" else r["precision"]) + " training"}[k])
        return " ".join(parts)

    names = df.apply(label, axis=1) if len(df) else pd.Series([], dtype=object)
    if settings is None or "settings" not in df:
        return names
    out = names.copy()
    for _, g in df.groupby(names, sort=False):
        keys_here = list(dict.fromkeys(g["settings"]))
        if len(keys_here) < 2:
            continue
        fields = sorted(set().union(*(settings[h] for h in keys_here)))
        differing = [f for f in fields if len({_short(settings[h].get(f)) for h in keys_here}) > 1]
        for h in keys_here:
            text = ", ".join(f"{f} {_short(settings[h].get(f))}" for f in differing) or f"settings {h}"
            out[g.index[g["settings"] == h]] += f" [{text}]"
    return out


def compute_column(results: pd.DataFrame) -> pd.DataFrame:
    """Adds params (M), network evaluations per image and GMACs per image (GMACs at 256² × evaluations). The
    evaluations are those counted while the run sampled (summary.json), else (older runs) counted by running the
    sampler with a free model."""
    from .backbone import backbone_card
    from .registry import get_backbone, get_bridge

    cards, evals = {}, {}
    out = results.copy()
    for i, r in out.iterrows():
        try:
            built_with = get_bridge(r["bridge"]).backbone_options(3)  # out_channels, and time_inputs if not 1
            key = (r["backbone"], tuple(sorted(built_with.items())))
        except Exception:  # noqa: BLE001 - a bridge not installed here: unknown
            key = None
        if key not in cards:
            try:
                cards[key] = backbone_card(lambda **o: get_backbone(key[0], **(o | dict(key[1]))))
            except Exception:  # noqa: BLE001 - an unknown or uncountable backbone leaves the columns empty
                cards[key] = {"params": math.nan, "gmacs": math.nan}
        counted = r.get("evaluations", math.nan)
        if not _finite(counted):
            ekey = (r["bridge"], r["pi"], r["steps"], r["sampler"])
            if ekey not in evals:
                evals[ekey] = network_evaluations(r["bridge"], r["pi"], r["steps"], r["sampler"])
            counted = evals[ekey]
        out.loc[i, "params_m"] = cards[key]["params"] / 1e6
        out.loc[i, "evaluations"] = counted
        out.loc[i, "gmacs_per_image"] = cards[key]["gmacs"] * counted
    return out


def network_evaluations(bridge_name: str, pi: str, nfe: int, sampler: str) -> float:
    """Network calls the sampler makes for one image at `nfe` steps, counted by running it with a free model on an
    8×8 input (for runs evaluated before eval.csv counted them)."""
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
def _per_seed(g: pd.DataFrame, column) -> pd.Series:
    """One value per seed (the mean where two runs of one method share a seed): the interval's repetitions."""
    return g.groupby("seed")[column].mean()


INTERVAL_NOTE = ("95% intervals: 'mean [low, high]' is the percentile interval of a two-level bootstrap over seeds "
                 f"and test images ({BOOTSTRAP_DRAWS} draws resampling the seeds, then the images, the same images "
                 "for every seed; with one seed it covers the images only); 'mean ± h' is the Student-t interval "
                 "over seeds, for runs without per-image results (eval.csv); none for one such seed")


@dataclasses.dataclass
class Interval:
    """A mean and its 95% interval [low, high]; `half` is the t interval's half-width (NaN for a bootstrap one),
    `kind` says which interval it is ("bootstrap", "t" or "" for none), `seeds` and `images` what it covers."""

    mean: float
    low: float = math.nan
    high: float = math.nan
    half: float = math.nan
    kind: str = ""
    seeds: int = 0
    images: int = 0

    def cells(self, name: str) -> dict:
        """The table columns NAME, NAME_ci (t half-width), NAME_lo and NAME_hi (the interval's bounds)."""
        return {name: self.mean, f"{name}_ci": self.half, f"{name}_lo": self.low, f"{name}_hi": self.high}

    def describe(self) -> str:
        if self.kind == "bootstrap":
            return (f"bootstrap, {self.seeds} seed{'s' * (self.seeds != 1)} × {self.images} images"
                    + (" (images only)" if self.seeds == 1 else ""))
        return f"t, {self.seeds} seeds" if self.kind == "t" else f"none ({self.seeds} seed, no per-image results)"


def _t_interval(seed_values) -> Interval:
    mean, half, n = mean_ci(seed_values)
    if _finite(half):
        return Interval(mean, mean - half, mean + half, half, "t", n)
    return Interval(mean, seeds=n)


class PerImage:
    """Per-image results (`per_image_per_run.csv`) by evaluation (run, NFE, sampler)."""

    def __init__(self, frame: pd.DataFrame | None):
        frame = frame if frame is not None else pd.DataFrame()
        groups = frame.groupby(["run", "steps", "sampler"]) if not frame.empty else []
        self.by_evaluation = {(str(r), int(n), str(sp)): g for (r, n, sp), g in groups}

    def of(self, evaluations: pd.DataFrame, task: str | None = None) -> pd.DataFrame | None:
        """The per-image rows of `evaluations` (rows with run, nfe, sampler; of one task where given), or None
        unless every one of them has per-image rows."""
        keys = {(str(r), int(n), str(sp))
                for r, n, sp in zip(evaluations["run"], evaluations["steps"], evaluations["sampler"])}
        if not keys or not keys <= self.by_evaluation.keys():
            return None
        rows = pd.concat([self.by_evaluation[k] for k in sorted(keys)], ignore_index=True)
        rows = rows[rows["task"] == task] if task is not None else rows
        return rows if len(rows) else None


def seed_image_matrix(images: pd.DataFrame, value) -> tuple[pd.DataFrame, np.ndarray] | None:
    """(seeds × images table of `value`, each image's task): `value` is a column of the per-image rows or a function
    of them; runs that share a seed are averaged, ±inf (a perfect PSNR) is NaN as in summary.json. None where the
    seeds did not evaluate the same images or no value is finite."""
    v = value(images) if callable(value) else images[value]
    keys = ["seed", "task", "image"]
    table = images[keys].assign(value=pd.to_numeric(v, errors="coerce").replace([np.inf, -np.inf], np.nan))
    table = table.groupby(keys)["value"].mean().unstack(["task", "image"])
    present = images.groupby(keys).size().unstack(["task", "image"])
    if present.isna().to_numpy().any() or not np.isfinite(table.to_numpy()).any():
        return None
    return table, table.columns.get_level_values("task").to_numpy()


def interval(seed_values: pd.Series, images: pd.DataFrame | None = None, value=None) -> Interval:
    """The mean of `seed_values` (one per seed) with the two-level bootstrap interval over seeds and the per-image
    `value` of `images` where they have it (see `bootstrap_ci`), else the t interval over seeds."""
    found = seed_image_matrix(images, value) if images is not None else None
    if found is not None:
        table, tasks = found
        _, low, high = bootstrap_ci(table.to_numpy(), tasks)
        if _finite(low):
            return Interval(float(seed_values.mean()), low, high, math.nan, "bootstrap", len(table), table.shape[1])
    return _t_interval(seed_values)


def paired_difference(a: pd.Series, b: pd.Series, a_images=None, b_images=None, value=None,
                      common_seeds: bool = True) -> Interval:
    """A − B from their per-seed values `a`, `b` (and per-image rows `a_images`, `b_images` with `value`), paired
    by test image and, on the seeds both have, by seed (`common_seeds`; else, where the seed sets differ, each
    method's seeds are resampled on their own). With per-image rows for both on the same images: the two-level
    bootstrap interval of the difference; else the t interval of the per-seed differences (none for unpaired
    seeds). `seeds` counts the seed pairs (0 for unpaired seeds)."""
    common = a.index.intersection(b.index)
    paired = common_seeds or (set(a.index) == set(b.index))
    if paired and len(common) == 0:
        return Interval(math.nan)
    seed_diff = a.loc[common] - b.loc[common] if paired else None
    mean = float(seed_diff.mean()) if paired else float(a.mean() - b.mean())
    found = [seed_image_matrix(x, value) if x is not None else None for x in (a_images, b_images)]
    if all(f is not None for f in found) and set(found[0][0].columns) == set(found[1][0].columns):
        (ta, tasks), (tb, _) = found
        tb = tb[ta.columns]
        if paired:
            _, low, high = bootstrap_ci((ta.loc[common] - tb.loc[common]).to_numpy(), tasks)
        else:
            _, low, high = bootstrap_ci(ta.to_numpy(), tasks, minus=tb.to_numpy())
        if _finite(low):
            return Interval(mean, low, high, math.nan, "bootstrap", len(common) if paired else 0, ta.shape[1])
    if paired:
        return _t_interval(seed_diff)
    return Interval(mean)


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
    return re.sub(r" π=\S+", "", label)


def pi_tables(results: pd.DataFrame, order=None, per_image: pd.DataFrame | PerImage | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(method × π mean PSNR with its interval, paired differences between π modes with theirs), or None if π does
    not vary.

    A row is a method without its π (bridge, backbone, NFE, sampler, precision and training settings). Only each
    run's own evaluation (not extra NFE / sampler evaluations) is used. Differences are paired by seed (the same
    row with two π modes, on the seeds both have) and, with per-image results, by test image: the two-level
    bootstrap of the per-seed, per-image differences (see `paired_difference`). Rows follow the first appearance
    of their methods in `order` where given.
    """
    per_image = per_image if isinstance(per_image, PerImage) else PerImage(per_image)
    results = results[results["primary"].astype(bool)].assign(row=lambda d: d["method"].map(_without_pi))
    if results.groupby("row")["pi"].nunique().max() < 2:  # no method was run with two π modes
        return None
    if order is not None:
        rank = {r: i for i, r in reversed(list(enumerate(map(_without_pi, order))))}
        results = results.sort_values("row", key=lambda s: s.map(lambda r: rank.get(r, len(rank))), kind="stable")
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


# --------------------------------------------------------------------------------------------- figures
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


def _steps_named(frame: pd.DataFrame) -> pd.DataFrame:
    """A report CSV written before the sampler's steps and its network evaluations were named apart: its "nfe"
    column is the steps, and its method names said "NFE 10" for "10 steps"."""
    frame = frame.rename(columns={LEGACY_STEPS: "steps"})
    if "method" in frame:
        frame["method"] = frame["method"].astype(str).str.replace(r"\bNFE (\d+)", r"\1 steps", regex=True)
    return frame


def fig_nfe(results: pd.DataFrame, out: Path, per_image: pd.DataFrame | PerImage | None = None
            ) -> tuple[dict | None, str]:
    """PSNR against sampler steps per method (the steps removed from the name); not drawn unless some method has
    two step counts."""
    import matplotlib.pyplot as plt

    results = results.assign(line=results["method"].map(lambda m: re.sub(r" \d+ steps", "", m)))
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
    from .data import read_image

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
    """Per-pixel noise std c(t)·|π| for π = one and π = residual, on one test pair, for one bridge of the report
    (rdbm if present): where RDBM's noise adapts to the degradation."""
    import matplotlib.pyplot as plt
    import torch

    from .registry import get_bridge

    installed = results[results["installed"]]
    if installed.empty:
        return False
    name = "rdbm" if "rdbm" in set(installed["bridge"]) else installed["bridge"].iloc[0]
    ev = Path(installed.loc[installed["bridge"] == name, "eval_dir"].iloc[0]) / "samples"
    lqs = sorted(p for p in ev.glob("*_lq.png") if (ev / f"{p.name[: -len('_lq.png')]}_gt.png").exists())
    if not lqs:
        return False
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
    _save(fig, out, "noise_std_maps", "", "")
    return True


# figures `render_report` draws from the report folder's data
RENDERED_FIGURES = frozenset({"gain", "pi_heatmap", "pi_differences", "per_task_psnr", "psnr_vs_nfe",
                              "quality_vs_compute"})
# figures drawn from the sample images when the report is collected; the page shows them if they exist
SAMPLE_FIGURES = {
    "qualitative": ("The same crops", "The same centre crop of one test image per task (rows): the degraded input, "
                    "every method (its lowest seed) and the ground truth. Look for methods that only copy the input "
                    "and for artefacts that PSNR averages away."),
    "noise_std_maps": ("Where the noise goes", "The per-pixel noise std c(t)·|π| of one bridge along t, for "
                       "π = one (flat) and π = residual (large where the image is most degraded)."),
    "training_loss": ("Training loss", "Mean over seeds of the loss on a fixed probe batch (each method's own "
                      "loss): a curve still falling at the end means the runs were stopped before convergence."),
}


# --------------------------------------------------------------------------------------------- the answer
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


def _old_folder_meta(out: Path, title: str | None) -> dict:
    """report.json for a folder written before it existed: the command from command.txt (its --title), the machine
    from the old index.html where it names one (else the machine rendering the page now, said as such)."""
    import html

    command = (out / "command.txt").read_text().strip() if (out / "command.txt").exists() else ""
    words = shlex.split(command) if command else []
    found = words[words.index("--title") + 1] if "--title" in words[:-1] else None
    old_page = (out / "index.html").read_text() if (out / "index.html").exists() else ""
    machine = re.search(r"<p><b>Machine</b>: (.*?)</p>", old_page)
    return {"title": title or found or out.name, "command": command,
            "machine": html.unescape(machine.group(1)) if machine else None,
            "rendering_machine": None if machine else _machine()}


def render_report(out: str | Path, title: str | None = None, rerender_command: str | None = None) -> dict:
    """Tables, figures and index.html of the report folder `out` from the data it holds (see the module
    docstring); returns {"tables", "figures", "html", "runs", "left_out"}."""
    import matplotlib

    from .errors import OptionError

    matplotlib.use("Agg")
    out = Path(out)
    if not (out / "results_per_run.csv").exists():
        raise OptionError(f"{out}: no results_per_run.csv here; not a folder written by `bridgezoo report`")
    (out / "figures").mkdir(exist_ok=True)
    results = _steps_named(pd.read_csv(out / "results_per_run.csv"))
    meta = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    if meta is None:
        meta = _old_folder_meta(out, title)
        (out / "report.json").write_text(json.dumps(meta, indent=2) + "\n")
    if title:
        meta["title"] = title
    if "settings" not in results:  # written before the settings were recorded: the ones its columns name
        results["settings"] = [settings_key({"iters": i, "batch": b, "patch": p})
                               for i, b, p in zip(results["iters"], results["batch"], results["patch"])]
    settings = (json.loads((out / "settings.json").read_text()) if (out / "settings.json").exists() else
                {h: {"iters": int(g["iters"].iloc[0]), "batch": int(g["batch"].iloc[0]), "patch": int(g["patch"].iloc[0])}
                 for h, g in results.groupby("settings")})
    if "installed" not in results:
        results["installed"] = results["bridge"].map(_installed)
    left_out = (pd.read_csv(out / "runs_left_out.csv", dtype=str).fillna("").to_dict("records")
                if (out / "runs_left_out.csv").exists() else [])

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
        "run": str, "sampler": str, "task": str, "image": str})) if (out / "per_image_per_run.csv").exists() else None)
    summary = summary_table(results, per_image)
    order = list(summary["method"])
    metric_best = {c: "max" for c in ("psnr", "ssim", "psnr_y", "ssim_y", "gain_psnr")} | {
        "seconds_per_image": "min", "gmacs_per_image": "min"}
    notes = notes + [INTERVAL_NOTE]
    summary_notes = notes + ["beats input: yes where the gain's 95% interval is above 0; PSNR − best: each method "
                             "minus the best one on the same test images (and seeds, where both have the same seeds)"]
    tables = [write_table(summary, out, "summary", "Overall (mean over tasks)", summary_notes, metric_best)]
    per_task = (_steps_named(pd.read_csv(out / "per_task_per_run.csv")) if (out / "per_task_per_run.csv").exists()
                else None)
    psnr_table = None
    for metric in METRICS:
        if per_task is not None:
            table = per_task_table(per_task, metric, order, per_image)
            table = with_input_row(table, per_task) if metric == "psnr" else table
        else:  # a folder written before per_task_per_run.csv: its own per-task tables, in today's order
            table = _ordered(pd.read_csv(out / f"per_task_{metric}.csv"), order + ["degraded input"])
        psnr_table = table if metric == "psnr" else psnr_table
        best = {c: "max" for c in table.columns if c != "method" and not _interval_column(c, table)}
        tables.append(write_table(table, out, f"per_task_{metric}",
                                  f"Per task: {metric.upper().replace('_Y', ' (Y)')}", notes, best))

    answer_figures, figures, not_drawn = [], [], []
    gain = fig_gain(summary, out)
    answer_figures.append(gain)
    pi = pi_tables(results, order, per_image)
    if pi is not None:
        tables.append(write_table(pi[0], out, "pi_ablation", "π ablation: PSNR (dB) per method and π", notes,
                                  {c: "max" for c in PI_ORDER}))
        tables.append(write_table(pi[1], out, "pi_differences", "π ablation: paired differences (dB)",
                                  notes + ["paired by seed (the same method and seed with two π modes) and, with "
                                           "per-image results, by test image"]))
        answer_figures += fig_pi(*pi, out)
    figures.append(fig_per_task(psnr_table, out))
    for fig, reason in (fig_nfe(results, out, per_image), fig_compute(summary, out)):
        figures.append(fig)
        not_drawn += [reason] if reason else []
    curves = (pd.read_csv(out / "training_curves.csv", dtype={"variant": str}, keep_default_na=False)
              if (out / "training_curves.csv").exists() else None)
    if curves is not None and not curves.empty:
        figures.append(fig_loss(curves, out, list(dict.fromkeys(results.set_index("method").loc[order, "bridge"]))))
    for name, (fig_title, caption) in SAMPLE_FIGURES.items():
        if (curves is None or name != "training_loss") and (out / "figures" / f"{name}.png").exists():
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
        rendering_machine=meta.get("rendering_machine"), rerender_command=rerender_command,
        answer=markdown.render(answer_markdown(summary, pi[1] if pi else None, left_out)),
        reading=markdown.render(reading) if reading else "",
        runs=int(results["run"].nunique()), methods=len(summary), evaluations=len(results),
        seeds=int(results["seed"].nunique()), tasks=tasks,
        left_out=left_out, notes=notes, tables=tables, answer_figures=answer_figures, figures=figures,
        not_drawn=not_drawn, conventions=str(results["conventions"].iloc[0]), crop=", ".join(map(str, crop)),
        shared_settings=shared, settings_groups=groups, differing=differing,
        data_files=[f for f in DATA_FILES if (out / f).exists()])
