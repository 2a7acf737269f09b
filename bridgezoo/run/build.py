"""Check and build a run once: `check_config` resolves the options, builds the bridge with its options and
exercises it (`exercise_bridge`: a broken plugin fails in a second with its name, not at step 1 of a run), checks
the sampler and steps against that bridge, the backbone name and options, the evaluation options and the data
source's existence; `build_model` makes the network around the bridge `check_config` returned (the one trained).
Nothing here writes a file.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from ..errors import BridgezooError, OptionError
from .options import RunConfig, flag



class PluginCheckError(OptionError):
    """A bridge plugin failed its start-up check; the message names the plugin, its distribution and the error."""


def _provider_text(kind: str, name: str) -> str:
    from ..registry import provider

    try:
        p = provider(kind, name)
    except BridgezooError:
        return ""
    return f" (plugin {p['plugin']!r} from distribution {p['distribution']} {p['version']})".replace(" )", ")")


# the contract's checks (bridgezoo.testing) a run repeats on its own bridge before anything is written: cheap ones
# that hold for every valid option value (the contract's grid and training-time checks test other step counts and
# samplers than the run's, and more distinct times than a T = 4 bridge has: `exercise_bridge` checks the run's own)
STARTUP_CHECKS = ("coefficients_shape_dtype_finite", "q_sample_matches_formula", "target_predict_x0_round_trip")


def exercise_bridge(bridge, sampler=None, steps: int | None = None) -> None:
    """Run the contract's `STARTUP_CHECKS` (`bridgezoo.testing`) on this bridge instance, in its own objective and
    π (the coefficients, q_sample against its formula, the target → predict_x0 round trip, on tiny float64
    batches), then the run's own sampling grid (`sampler` at `steps`) and training times. Raises
    `PluginCheckError` naming the bridge's plugin and the property that failed."""
    import inspect

    from ..options import PI_MODES
    from ..testing import CHECKS, Subject

    name = bridge.name or type(bridge).__name__

    def fail(what: str) -> PluginCheckError:
        return PluginCheckError(f"bridge {name!r}{_provider_text('bridge', name)} failed its start-up check: {what}")

    subject = Subject(bridge)
    own = {k: bridge.options.get(k) for k in ("objective", "pi")}
    skip = () if own["pi"] in PI_MODES else ("q_sample_matches_formula",)  # a π of an auxiliary network (udbm) has
    for check in (CHECKS[c] for c in STARTUP_CHECKS if c not in skip):    # no closed form: the round trip runs it
        params = inspect.signature(check.fn).parameters
        case = {k: v for k, v in own.items() if k in params and v is not None}
        try:
            check.run(subject, case)
        except Exception as exc:  # noqa: BLE001 - any error of a plugin is reported with its name
            detail = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
            raise fail(f"{check.name} ({check.claim}): {detail}") from None
    try:
        ts = bridge.sample_t(16, generator=torch.Generator().manual_seed(0))
        grid = bridge.timesteps(steps, sampler)
    except Exception as exc:  # noqa: BLE001
        raise fail(f"sample_t / timesteps: {type(exc).__name__}: {exc}") from None
    if not (ts.numel() == 16 and bool(((ts > 0) & (ts <= 1)).all())):
        raise fail(f"sample_t: training times must lie in (0, 1], got {ts.tolist()}")
    if not (abs(float(grid[-1])) < 1e-12 and bool((grid[1:] < grid[:-1]).all())):
        raise fail(f"timesteps: the sampling grid must decrease to 0, got {grid.tolist()}")


def check_config(cfg, has_gpu: bool | None = None):
    """(resolved RunConfig, bridge) or a BridgezooError naming the option and what is wrong. Builds no network,
    reads no image: the data folders are only checked to exist (their full validation follows in `run`)."""
    from ..data import open_data
    from ..data.io import DataError
    from ..registry import check_backbone_options

    if has_gpu is None:
        has_gpu = torch.cuda.is_available()
    cfg = cfg.resolve(has_gpu)
    bridge = build_bridge(cfg)
    sampler = bridge.get_sampler(cfg.sampler)  # unknown names and options: an error listing the valid ones
    try:
        bridge.timesteps(cfg.nfe, sampler)
    except Exception as exc:  # noqa: BLE001
        raise OptionError(f"{flag('nfe')} {cfg.nfe} with sampler {sampler.name!r} of bridge {bridge.name!r}: {exc}") from None
    exercise_bridge(bridge, sampler, cfg.nfe)
    check_backbone_options(cfg.backbone, cfg.backbone_opts)  # unknown names, options and values
    open_data(cfg.data).check(tasks=cfg.tasks, split=cfg.eval_split)  # exists, tasks and split known; no scan
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


def package_versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("bridgezoo", "torch", "accelerate", "timm", "numpy", "scikit-image"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return versions


def build_bridge(cfg: RunConfig, options: dict | None = None):
    """The run's bridge: from `cfg.bridge_opts` and `cfg.pi`, or from a saved run's resolved `options` (so a
    changed plugin default never changes a trained model)."""
    from ..registry import get_bridge

    if options is None:
        options = dict(cfg.bridge_opts)
        if cfg.pi is not None:
            options["pi"] = cfg.pi
    return get_bridge(cfg.bridge, **options)


def build_model(cfg: RunConfig, bridge_options: dict | None = None, tasks: list[str] | None = None, bridge=None):
    """(bridge, wrapped model) from a resolved config: around `bridge` (the one `check_config` returned), else one
    built from a saved run's resolved `bridge_options` or the config's. A task-conditioned run
    (`cfg.task_conditioned`) needs `tasks`, the task names in the order of the network's embedding table."""
    from .conditioning import TaskConditioned
    from ..registry import get_backbone

    if bridge is None:
        bridge = build_bridge(cfg, bridge_options)
    options = bridge.backbone_options(3) | cfg.backbone_opts
    if not cfg.task_conditioned:
        return bridge, bridge.wrap(get_backbone(cfg.backbone, **options))
    if not tasks:
        raise OptionError("--task-conditioned: the data names no tasks")
    try:
        network = get_backbone(cfg.backbone, **options, num_tasks=len(tasks))
    except (TypeError, OptionError) as exc:
        if "num_tasks" not in str(exc):
            raise
        raise OptionError(f"--task-conditioned: backbone {cfg.backbone!r} takes no num_tasks option, so it cannot be "
                          f"told the task ({exc}); use unet-*, timm-unet/* or nafnet-*") from None
    return bridge, bridge.wrap(TaskConditioned(network, tasks))


def build_auxiliary(cfg: RunConfig, spec) -> torch.nn.Module:
    """A bridge's auxiliary network (`bridge.Auxiliary`), untrained: the spec's backbone or the run's."""
    from ..registry import get_backbone

    options = {"out_channels": spec.out_channels} | (cfg.backbone_opts if spec.backbone is None else {})
    return get_backbone(spec.backbone or cfg.backbone, **options)


def dataset_tasks(dataset) -> list[str]:
    """The task names of a dataset, in a fixed order (a training set's are the embedding rows of a task-conditioned
    network)."""
    tasks = getattr(dataset, "tasks", None)
    if callable(tasks):
        tasks = tasks()
    if tasks is None:
        tasks = sorted({p.task for p in getattr(dataset, "pairs", [])} or {dataset[0]["task"]})
    return list(tasks)


def check_eval_tasks(train_tasks: list[str], eval_tasks: list[str]) -> None:
    """A task-conditioned model can only be told the tasks it was trained on: an evaluation set with another task
    is an `OptionError` naming both lists, raised before training (not after, when the weights are written)."""
    unknown = [t for t in eval_tasks if t not in train_tasks]
    if unknown:
        raise OptionError(f"--task-conditioned: the evaluation data has the task(s) {', '.join(unknown)}, which the "
                          f"training data lacks (training tasks: {', '.join(train_tasks)}; evaluation tasks: "
                          f"{', '.join(eval_tasks)}); give each evaluation task folder the name of a training task "
                          "folder, or train without --task-conditioned")


def providers(cfg: RunConfig, bridge) -> dict:
    """Which plugin, distribution and version provide the run's bridge, backbone and evaluation sampler."""
    from ..registry import provider, sampler_provider

    return {"bridge": provider("bridge", cfg.bridge), "backbone": provider("backbone", cfg.backbone),
            "sampler": sampler_provider(bridge, cfg.sampler or bridge.samplers[0])}


def resolve_device(device: str | None = "auto") -> torch.device:
    """"auto" → the first GPU if there is one, else the CPU; otherwise any torch device string (cpu, cuda:1)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise OptionError(f"--device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {device!r}: no CUDA GPU is visible here (use --device cpu or auto)")
    return dev
