"""Collecting a report: finding run directories (`find_runs`), reading their evaluations (`load_results`), the
training settings that keep runs apart (`settings_of`, `settings_key`), method names and compute columns."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pandas as pd

from ..run.evaluate import LEGACY_STEPS, steps_of
from ..metrics import REFERENCE_METRICS
from .stats import _finite

METRICS = REFERENCE_METRICS  # the metrics a report tabulates (bridgezoo.metrics.REGISTRY)
PER_IMAGE_COLUMNS = (*METRICS, *(f"input_{m}" for m in METRICS))  # what per_image_per_run.csv keeps of eval.csv
METHOD_KEYS = ("bridge", "pi", "backbone", "steps", "sampler", "precision")
TRAINING_KEYS = ("bridge", "pi", "backbone", "precision")  # what names a training run (its curve)
# what `render_report` reads: `build_report` writes them all, and a folder without one of them is refused
DATA_FILES = ("results_per_run.csv", "per_task_per_run.csv", "per_image_per_run.csv", "training_curves.csv",
              "runs_left_out.csv", "settings.json", "report.json")


def _installed(bridge: str) -> bool:
    from ..errors import UnknownNameError
    from ..registry import registry

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
    from ..errors import OptionError

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
            from ..bench import load_grid

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
    `RunConfig` fields declared with the training role (`run.options.training_settings`), with the bridge's resolved options (π removed)
    instead of the options it was given; a field missing from an older config.json takes today's default."""
    from ..run.options import training_settings
    from ..run import RunConfig

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
        from ..errors import OptionError

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


COMPARED_AXES = ("pi", "steps", "sampler")  # what the π table, the steps figure and the sampler rows compare


def method_label(df: pd.DataFrame, settings: dict[str, dict] | None = None, keys=METHOD_KEYS) -> pd.Series:
    """A readable method name from the `keys` that vary in `df` (the bridge always). Where one name, or one name
    without its compared axes (π, steps, sampler), covers runs with different training settings, the settings that
    differ are added in brackets, e.g. `[patch 7]`: `rdbm π=one` and `rdbm π=residual` trained with other bridge
    options are named by those options, not by π alone."""
    varying = [k for k in keys if k == "bridge" or df[k].nunique() > 1]

    def label(r, skip=()):
        parts = [str(r["bridge"])]
        for k in (k for k in varying[1:] if k not in skip):
            parts.append({"pi": f"π={r['pi']}", "steps": f"{r['steps']} steps", "sampler": str(r["sampler"]),
                          "backbone": str(r["backbone"]),
                          "precision": ("fp32" if r["precision"] == "no" else r["precision"]) + " training"}[k])
        return " ".join(parts)

    if not len(df):
        return pd.Series([], dtype=object)
    names = df.apply(label, axis=1)
    if settings is None or "settings" not in df:
        return names
    return with_settings(names, df["settings"], settings, groups=df.apply(label, axis=1, skip=COMPARED_AXES))


def with_settings(names: pd.Series, keys: pd.Series, settings: dict[str, dict], groups: pd.Series | None = None
                  ) -> pd.Series:
    """`names` where one name (or one of `groups`, each a set of names, default the names) covers several training
    settings (`keys`: each row's `settings_key`, `settings`: the settings by key) with the settings that differ
    between them added in brackets, e.g. `rdbm [patch 7]`, so rows that differ in their settings are never one row."""
    out = names.copy()
    for _, g in keys.groupby(names if groups is None else groups, sort=False):
        keys_here = list(dict.fromkeys(g))
        if len(keys_here) < 2:
            continue
        fields = sorted(set().union(*(settings[h] for h in keys_here)))
        differing = [f for f in fields if len({_short(settings[h].get(f)) for h in keys_here}) > 1]
        for h in keys_here:
            text = ", ".join(f"{f} {_short(settings[h].get(f))}" for f in differing) or f"settings {h}"
            out[g.index[g == h]] += f" [{text}]"
    return out


def compute_column(results: pd.DataFrame) -> pd.DataFrame:
    """Adds params (M), network evaluations per image and GMACs per image (GMACs at 256² × evaluations). The
    evaluations are those counted while the run sampled (summary.json), else (older runs) counted by running the
    sampler with a free model."""
    from ..backbone import backbone_card
    from ..registry import get_backbone, get_bridge

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

    from ..registry import get_bridge

    try:
        bridge = get_bridge(bridge_name, **({} if pi in (None, "default") else {"pi": pi}))
        channels = bridge.out_channels(3)
        model = bridge.wrap(lambda x, mu, t: torch.zeros(x.shape[0], channels, *x.shape[2:]))
        _, traj = bridge.sample(model, torch.zeros(1, 3, 8, 8), nfe=nfe, sampler=sampler, return_trajectory=True,
                                generator=torch.Generator().manual_seed(0))
        return float(traj.nfe)
    except Exception:  # noqa: BLE001 - a bridge that is not installed here: unknown
        return math.nan



def _steps_named(frame: pd.DataFrame) -> pd.DataFrame:
    """A report CSV written before the sampler's steps and its network evaluations were named apart: its "nfe"
    column is the steps, and its method names said "NFE 10" for "10 steps"."""
    frame = frame.rename(columns={LEGACY_STEPS: "steps"})
    if "method" in frame:
        frame["method"] = frame["method"].astype(str).str.replace(r"\bNFE (\d+)", r"\1 steps", regex=True)
    return frame
