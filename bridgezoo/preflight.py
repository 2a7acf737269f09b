"""Everything about a run that can be checked before anything is written or trained.

`check_config` is the one function `bridgezoo run`, `bridgezoo bench` (and its `--dry-run`) and the grids use: it
resolves the preset, builds the bridge with its options, exercises it once (`exercise_bridge`: a broken plugin
fails in a second with its name, not at step 1 of a run), checks the sampler and NFE against that bridge, the
backbone name and options, the evaluation options and the data source's existence. `resume_conflicts` compares a resumed
run's options with the ones it saved.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import BridgezooError, OptionError

F64 = torch.float64

# Options a resumed run may change: they do not touch the trained weights or the evaluation's numbers.
RESUME_FREE = frozenset({"out", "quiet", "num_workers", "log_every", "save_every", "log_with", "compile", "eval_batch",
                         "strict_pairs"})
# CLI spellings of RunConfig fields where they differ from --field-name.
FLAGS = {"num_workers": "--workers", "bridge_opts": "--bridge-opt", "backbone_opts": "--backbone-opt",
         "nfe": "--steps"}  # `nfe`: the sampler's steps (its older name; config.json and grid files keep it)


class PluginCheckError(OptionError):
    """A bridge plugin failed its start-up check; the message names the plugin, its distribution and the error."""


def flag(field: str) -> str:
    """The command-line flag of a RunConfig field."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def _provider_text(kind: str, name: str) -> str:
    from .registry import provider

    try:
        p = provider(kind, name)
    except BridgezooError:
        return ""
    return f" (plugin {p['plugin']!r} from distribution {p['distribution']} {p['version']})".replace(" )", ")")


def exercise_bridge(bridge) -> None:
    """Call the bridge once the way training and sampling will: coefficients at a few t, a q_sample → target →
    predict_x0 round trip on a tiny float64 batch, the training-time sampler and the sampling grid. Raises
    `PluginCheckError` naming the bridge's plugin and what failed."""
    name = bridge.name or type(bridge).__name__

    def fail(what: str, detail: str):
        raise PluginCheckError(f"bridge {name!r}{_provider_text('bridge', name)} failed its start-up check: "
                               f"{what}: {detail}")

    t = torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=F64)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=g, dtype=F64) * 1.6 - 0.8
    mu = (x0 + 0.3 * torch.randn(x0.shape, generator=g, dtype=F64)).clamp(-0.9, 0.9)
    noise = torch.randn(x0.shape, generator=g, dtype=F64)
    steps = [
        ("coefficients(t)", lambda: bridge.coefficients(t)),
        ("q_sample", lambda: bridge.q_sample(x0, mu, t, noise)),
    ]
    results = {}
    for what, call in steps:
        try:
            results[what] = call()
        except Exception as exc:  # noqa: BLE001 - any error of a plugin is reported with its name
            fail(what, f"{type(exc).__name__}: {exc}")
    if not all(torch.isfinite(torch.as_tensor(v)).all() for v in results["coefficients(t)"]):
        fail("coefficients(t)", f"non-finite values at t = {t.tolist()}")
    x_t = results["q_sample"]
    try:
        target = bridge.target(x0, mu, x_t, t)
        back = bridge.predict_x0(target, x_t, mu, t)
    except Exception as exc:  # noqa: BLE001
        fail("target / predict_x0", f"{type(exc).__name__}: {exc}")
    inner = slice(0, 3)  # t < 1: where x0 is recoverable from x_t for every objective
    err = float((back[inner] - x0[inner]).abs().max())
    if not err < 1e-4:
        fail("predict_x0(target(x0)) ≠ x0", f"max error {err:.3g} at t in {t[inner].tolist()}")
    try:
        ts = bridge.sample_t(16, generator=torch.Generator().manual_seed(0))
        grid = bridge.timesteps(None)
    except Exception as exc:  # noqa: BLE001
        fail("sample_t / timesteps", f"{type(exc).__name__}: {exc}")
    if not (ts.numel() == 16 and bool(((ts > 0) & (ts <= 1)).all())):
        fail("sample_t", f"training times must lie in (0, 1], got {ts.tolist()}")
    if not (abs(float(grid[-1])) < 1e-12 and bool((grid[1:] < grid[:-1]).all())):
        fail("timesteps", f"the sampling grid must decrease to 0, got {grid.tolist()}")


def check_config(cfg, has_gpu: bool | None = None):
    """(resolved RunConfig, bridge) or a BridgezooError naming the option and what is wrong. Builds no network,
    reads no image: the data folders are only checked to exist (their full validation follows in `run`)."""
    from .data.io import DataError
    from .registry import check_backbone_options
    from .train import build_bridge

    if has_gpu is None:
        has_gpu = torch.cuda.is_available()
    cfg = cfg.resolve(has_gpu)
    bridge = build_bridge(cfg)
    exercise_bridge(bridge)
    sampler = bridge.get_sampler(cfg.sampler)  # unknown names and options: an error listing the valid ones
    try:
        bridge.timesteps(cfg.nfe, sampler)
    except Exception as exc:  # noqa: BLE001
        raise OptionError(f"{flag('nfe')} {cfg.nfe} with sampler {sampler.name!r} of bridge {bridge.name!r}: {exc}") from None
    check_backbone_options(cfg.backbone, cfg.backbone_opts)  # unknown names, options and values
    if cfg.data == "zoo5":
        from .data.zoo5 import SPLITS, check_tasks

        check_tasks(cfg.tasks)
        if cfg.eval_split not in SPLITS:
            raise OptionError(f"--eval-split {cfg.eval_split!r}: zoo5 splits are {', '.join(SPLITS)}")
    else:
        from .data.adapters import parse_data_spec

        spec = parse_data_spec(cfg.data)  # NAME:PATH of a registered dataset: unknown names fail here
        if spec is not None:
            if not spec[1].is_dir():
                raise DataError(f"--data {cfg.data}: {spec[1]} is not a folder")
        elif not Path(cfg.data).is_dir():
            raise DataError(f"{cfg.data}: not a folder (--data takes zoo5, a folder of paired images, or NAME:PATH "
                            "of a dataset from `bridgezoo data list`)")
        elif cfg.tasks:
            raise OptionError("--tasks selects tasks of zoo5 or of a multi-task dataset; with --data FOLDER, point "
                              "--data at the task's folder")
    if cfg.eval_data and not Path(cfg.eval_data).is_dir():
        raise DataError(f"{cfg.eval_data}: not a folder (--eval-data)")
    return cfg, bridge


def saved_config(run_dir: Path) -> dict:
    """The config.json of a run directory, or an OptionError saying there is nothing to resume."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise OptionError(f"--resume: {run_dir} has no config.json, so there is no run to resume "
                          "(drop --resume to start one there)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise OptionError(f"{path}: not valid JSON ({exc}); it was not written by `bridgezoo run`") from None


def resume_conflicts(given: dict, saved: dict) -> list[str]:
    """'--flag VALUE (saved: VALUE)' for every option of `given` (resolved RunConfig fields) that differs from the
    resumed run's saved config, except those a resume may change (RESUME_FREE)."""
    out = []
    for key, value in given.items():
        if key in RESUME_FREE or key not in saved:
            continue
        if json.dumps(value, sort_keys=True, default=str) != json.dumps(saved[key], sort_keys=True, default=str):
            out.append(f"{flag(key)} {value!r} (saved: {saved[key]!r})")
    return out
