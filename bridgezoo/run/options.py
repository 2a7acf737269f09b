"""The one declared table of a run's options: `RunConfig`.

Each field carries its command-line flag, help, choices, bounds and **role**, and everything else is derived from
it: `bridgezoo run`'s arguments (`add_arguments`, `from_namespace`), the resume check (`resume_conflicts`: every
field but the bookkeeping ones and those marked `resume_free`), a grid run's directory hash and the report's
grouping (`training_settings`: the training fields), the checks of `RunConfig.resolve` (choices and bounds) and
the help pages. A new run option is one field here. No torch import: `bridgezoo run --help` stays instant.

Roles: TRAINING changes the trained weights; EVALUATION changes the evaluation's numbers, not the weights;
BOOKKEEPING changes neither (where files go, logging, data-loading processes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import OptionError
from ..options import ALL_PI_MODES
from ..presets import COMPILE_MIN_ITERS, CPU_DEFAULTS, GPU_DEFAULTS, PRESETS

TRAINING, EVALUATION, BOOKKEEPING = "training", "evaluation", "bookkeeping"
EVAL_PRECISIONS = ("fp32", "tf32", "bf16")  # sampling arithmetic at evaluation (`bridgezoo.precision`)
MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")


def option(default: Any = None, help: str | Callable[[], str] = "", role: str = TRAINING, *, flag: str | None = None,
           choices: tuple | None = None, type: Callable | None = None, metavar: str | None = None,
           nargs: str | None = None, minimum: float | None = None, resume_free: bool | None = None,
           preset: bool = False, parse: Callable | None = None, aliases: dict[str, str] | None = None,
           factory: Callable | None = None):
    """A RunConfig field and its declaration.

    `help` may say `{preset}` where the presets' values go, or be a function (help computed when `--help` is
    printed); `minimum`: the smallest valid value (checked by `resolve`); `resume_free`: a resumed run may change it
    (default: bookkeeping options only); `preset`: None means the preset's value; `parse`: turns the parsed
    command-line value into the field's (repeatable KEY=VALUE flags); `aliases`: other spellings of the flag,
    each with the deprecation warning it prints."""
    if role not in (TRAINING, EVALUATION, BOOKKEEPING):
        raise ValueError(f"role {role!r}")
    meta = {"help": help, "role": role, "flag": flag, "choices": choices, "type": type, "metavar": metavar,
            "nargs": nargs, "minimum": minimum, "preset": preset, "parse": parse, "aliases": aliases or {},
            "resume_free": role == BOOKKEEPING if resume_free is None else resume_free}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def key_values(pairs, flag_name: str) -> dict:
    """KEY=VALUE strings (a repeatable flag) → {key: value}; anything else is an OptionError naming the flag."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise OptionError(f"{flag_name} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def json_values(pairs, flag_name: str) -> dict:
    """`key_values` with each value read as JSON where it is JSON (numbers, booleans, lists), else kept as text."""
    out = {}
    for key, value in key_values(pairs, flag_name).items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _backbone_opt_help() -> str:
    from ..options import BACKBONE_OPTIONS

    shared = "; ".join(f"{k}={type(o.default).__name__.upper()} ({o.help}; default {o.default})"
                       for k, o in BACKBONE_OPTIONS.items())
    return ("a backbone option, repeatable; the value is read as JSON where it is JSON. Every built-in backbone "
            f"takes {shared}; each backbone's own options (dim, dim_mults, width, ...) and their defaults: "
            "`bridgezoo list`. An option the backbone does not declare is an error before anything runs")


STEPS_HELP = ("the sampler's steps at evaluation (default: the bridge's, the steps column of `bridgezoo list`); the "
              "network evaluations they cost depend on the sampler (a Heun step is two, `bridgezoo list`) and are "
              "counted into eval.csv's evaluations column. --nfe: the deprecated name of --steps")
NFE_DEPRECATED = ("--nfe is deprecated: it sets the sampler's steps, not its network evaluations (a Heun step is "
                  "two); use --steps")


@dataclass
class RunConfig:
    """Every option of a run; `resolve()` fills the preset's values for those left as None and checks them."""

    bridge: str = option("rdbm", "bridge name (default rdbm; see `bridgezoo list`)")
    backbone: str | None = option(None, "backbone (default: unet-L with a GPU, unet-T without; `bridgezoo list`)")
    data: str = option("zoo5", "zoo5 (embedded, default), a folder of paired images, or NAME:PATH of a published "
                       "dataset in its authors' layout, e.g. lol:/data/LOL or universal5:/data/Restoration "
                       "(`bridgezoo data list`)")
    eval_data: str | None = option(None, "paired folder to evaluate on (default: DATA/test if present)", EVALUATION)
    eval_sets: list[str] | None = option(None, "with --data NAME:PATH: the test sets to evaluate (default: the "
                                         "dataset's own)", EVALUATION, nargs="+", metavar="SET")
    eval_limit: int | None = option(None, "with --data NAME:PATH: at most N images per test set, evenly spaced "
                                    "(default: all)", EVALUATION, type=int, metavar="N", minimum=1)
    tasks: list[str] | None = option(None, "tasks to train and evaluate (zoo5 or a multi-task dataset such as "
                                     "universal5; default: all, balanced)", nargs="+")
    task_batch: str | None = option(
        None, "items of each task in every training batch, e.g. fog=8,light=2,rain=4,snow=4,blur=2 (DiffUIR's task "
        "names fog, light, rain, snow, blur or bridgezoo's dehaze, lowlight, derain, desnow, deblur), or a preset: "
        "diffuir (4:1:2:2:1, used with --grad-accum 2) or udbm (8:2:4:4:2); for zoo5 and registered datasets with "
        "those tasks (universal5). --batch defaults to the total and must be a multiple of it (default: none, each "
        "draw's task cycles through the tasks, so every task is drawn equally often over the run and a batch mixes "
        "them at random)", metavar="TASK=N,...|PRESET")
    iters: int | None = option(None, "training iterations, i.e. optimizer steps (default from the preset: {preset})",
                               type=int, metavar="N", minimum=1, preset=True)
    batch: int | None = option(None, "training pairs per step, split over the processes; with --grad-accum N an "
                               "optimizer step sees N×BATCH pairs (default from the preset: {preset})", type=int,
                               minimum=1, preset=True)
    patch: int | None = option(None, "side of the random square training crops, pixels (default from the preset: "
                               "{preset})", type=int, metavar="PIXELS", minimum=1, preset=True)
    lr: float | None = option(None, "peak learning rate of AdamW, reached after the linear warm-up, then cosine decay "
                              "to 0 at the last iteration (default from the preset: {preset})", type=float,
                              preset=True)
    warmup: int | None = option(None, "linear learning-rate warm-up steps (default: the preset's ({preset}), at most "
                                "5%% of --iters)", type=int, metavar="N", minimum=0, preset=True)
    ema_decay: float | None = option(None, "EMA decay of the evaluated weights (default from the preset: {preset})",
                                     type=float, preset=True)
    nfe: int | None = option(None, STEPS_HELP, EVALUATION, flag="--steps", type=int, metavar="K", minimum=1,
                             aliases={"--nfe": NFE_DEPRECATED})  # its older name: config.json and grids keep it
    sampler: str | None = option("ddim", "sampler at evaluation: NAME or NAME:KEY=VALUE,... (default ddim, shared by "
                                 "all bridges; see `bridgezoo list`)", EVALUATION)
    pi: str | None = option(None, "noise modulation π: zero (flow matching), one (classic bridges), residual (RDBM: "
                            "x0 − mu) or uncertainty (the field of a bridge's auxiliary network, udbm) (default: the "
                            "bridge's own, the π column of `bridgezoo list`)", choices=ALL_PI_MODES)
    bridge_opts: dict = option(None, "any bridge option (repeatable; `bridgezoo list` shows each bridge's)",
                               flag="--bridge-opt", metavar="KEY=VALUE", factory=dict,
                               parse=lambda v: key_values(v, "--bridge-opt"))
    backbone_opts: dict = option(None, _backbone_opt_help, flag="--backbone-opt", metavar="KEY=VALUE", factory=dict,
                                 parse=lambda v: json_values(v, "--backbone-opt"))
    mixed_precision: str = option("auto", "training autocast (default auto: bf16 on a GPU that supports it, fp32 on "
                                  "CPU); the evaluation's is --eval-precision", choices=MIXED_PRECISIONS)
    channels_last: str = option("auto", "channels_last memory format for training (default auto: off; the U-Nets' "
                                "GroupNorm made it 0.74× as fast on an H200, reports/gpu-h200)",
                                choices=("auto", "on", "off"))
    compile: str = option("auto", "torch.compile the network for training (default auto: on for GPU runs of "
                          f"{COMPILE_MIN_ITERS} iterations or more, where its ~2 minutes of compiling pay off: 2.2× "
                          "bf16 eager for unet-L on an H200, reports/gpu-h200); the evaluation runs uncompiled",
                          choices=("auto", "on", "off"), resume_free=True)
    tf32: str = option("on", "TF32 for training's fp32 matmuls and convolutions on a GPU (default on; bf16 autocast "
                       "covers most of them); evaluation has its own --eval-precision", choices=("on", "off"))
    eval_precision: str = option("fp32", "the evaluation's sampling arithmetic: fp32 (default, exact: TF32 off), tf32, "
                                 "or bf16 autocast; stated in config.json and summary.json", EVALUATION,
                                 choices=EVAL_PRECISIONS)
    eval_batch: int | None = option(None, "same-size images sampled at once at evaluation, each with its own noise, so "
                                    f"the results do not depend on it (default: {GPU_DEFAULTS['eval_batch']} with a "
                                    f"GPU, {CPU_DEFAULTS['eval_batch']} on CPU)", BOOKKEEPING, type=int, metavar="N",
                                    minimum=1)
    seed: int = option(0, "seed of the training batches, times and noise, and of the evaluation samplers' noise; part "
                       "of the default run directory's name (default 0)", type=int)
    preset: str = option("auto", "fills every option left unset (values below); auto (default): paper with a GPU, "
                         "cpu-small without", choices=("auto", *PRESETS))
    out: str | None = option(None, "run directory (default runs/BRIDGE-BACKBONE-sSEED)", BOOKKEEPING)
    weight_decay: float = option(0.0, "AdamW's decoupled weight decay (default 0)", type=float, minimum=0)
    grad_clip: float = option(1.0, "clip the gradients' global norm to this before each optimizer step; 0: no "
                              "clipping (default 1)", type=float, minimum=0)
    grad_accum: int = option(1, "accumulate the gradients of N batches per optimizer step (an effective batch of "
                             "N×BATCH with the memory of one; default 1)", type=int, metavar="N", minimum=1)
    log_every: int = option(10, "append a train.jsonl line (loss, probe loss, learning rate, it/s) every N "
                            "iterations (default 10)", BOOKKEEPING, type=int, metavar="N", minimum=1)
    save_every: int | None = option(None, "save the resumable state (state/) every N iterations, and at the end or on "
                                    "Ctrl-C (default from the preset: {preset})", BOOKKEEPING, type=int, metavar="N",
                                    minimum=1, preset=True)
    eval_max_side: int | None = option(  # training too: on zoo5 it is the benchmark's resolution, the crops' source
        None, "zoo5's resolution: its photographs are fitted to this long side, pixels, for the test images and the "
        "training crops alike, and the degradations scale with it (default from the preset: {preset})", type=int,
        metavar="PIXELS", minimum=8, preset=True)
    eval_split: str = option("test", "zoo5's split to evaluate on: test (default) or val", EVALUATION)
    eval_seed: int = option(0, "seed of the zoo5 evaluation images' degradations: fixed, so every training seed sees "
                            "one test set (default 0)", EVALUATION, type=int)
    tile: int | None = option(None, "evaluate in overlapping tiles of SIZE×SIZE pixels, for images too large for "
                              "memory (default: whole images)", EVALUATION, type=int, metavar="SIZE", minimum=8)
    tile_overlap: int = option(32, "pixels shared by neighbouring tiles, blended linearly; smaller than --tile "
                               "(default 32)", EVALUATION, type=int, metavar="PIXELS", minimum=0)
    crop_border: int = option(0, "pixels removed at each border before metrics (default 0)", EVALUATION, type=int,
                              metavar="PIXELS", minimum=0)
    samples: int = option(2, "test images per task whose input, output and ground truth are saved as PNG in samples/ "
                          "(default 2)", EVALUATION, type=int, metavar="N", minimum=0)
    num_workers: int | None = option(None, f"data-loading worker processes (default: {GPU_DEFAULTS['num_workers']} per "
                                     "process with a GPU, capped by the cores; "
                                     f"{CPU_DEFAULTS['num_workers']} on CPU, where workers take cores from training)",
                                     BOOKKEEPING, flag="--workers", type=int, metavar="N", minimum=0)
    quiet: bool = option(False, "no progress bars or messages", BOOKKEEPING)
    task_conditioned: bool = option(False, "tell the network each image's task (a learned task embedding added to its "
                                    "time embedding) instead of the blind universal model of RDBM / DiffUIR; "
                                    "restoring then needs --task")
    strict_pairs: bool = option(False, "own folders (--data PATH, --eval-data): a file without a partner is an error "
                                "before anything runs (default: skipped with a warning and counted in config.json's "
                                "data_info)", BOOKKEEPING)
    log_with: str | None = option(None, "also log to tensorboard, wandb, mlflow or all (comma-separated for several; "
                                  "needs pip install 'bridgezoo[tracking]'): losses, lr, throughput, evaluation, "
                                  "samples, config", BOOKKEEPING, metavar="TRACKER")

    def resolve(self, has_gpu: bool) -> "RunConfig":
        """A copy with the preset's values for the options left unset, `auto` resolved for this device, and every
        declared choice and bound checked (`resolve` below)."""
        return resolve(self, has_gpu)

    @classmethod
    def from_saved(cls, saved: dict, **overrides) -> "RunConfig":
        """The RunConfig of a run's saved config.json (unknown keys ignored), with `overrides` applied."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in overrides if k not in fields]
        if unknown:
            raise OptionError(f"unknown run option(s): {', '.join(unknown)}")
        return cls(**({k: v for k, v in saved.items() if k in fields} | overrides))


def fields(config_class=None) -> tuple:
    """The declared options (dataclass fields) of `config_class` (default: RunConfig, looked up when called)."""
    return dataclasses.fields(config_class or sys.modules[__name__].RunConfig)


def flag(name: str, config_class=None) -> str:
    """The command-line flag of a RunConfig field."""
    for f in fields(config_class):
        if f.name == name:
            return f.metadata["flag"] or "--" + name.replace("_", "-")
    return "--" + name.replace("_", "-")


def names(role: str, config_class=None) -> frozenset:
    """The fields of one role."""
    return frozenset(f.name for f in fields(config_class) if f.metadata["role"] == role)


def training_settings(config: dict, config_class=None) -> dict:
    """The entries of a run configuration that decide the trained weights, sorted: every key but the evaluation
    and bookkeeping fields (keys that are not fields, such as the resolved bridge options, are kept)."""
    other = names(EVALUATION, config_class) | names(BOOKKEEPING, config_class)
    return {k: v for k, v in sorted(config.items()) if k not in other}


def resume_conflicts(given: dict, saved: dict, config_class=None) -> list[str]:
    """'--flag VALUE (saved: VALUE)' for every field of `given` (a resolved RunConfig as a dict) that differs from the
    resumed run's saved config, except those a resume may change (`resume_free`)."""
    free = {f.name for f in fields(config_class) if f.metadata["resume_free"]}
    out = []
    for key, value in given.items():
        if key in free or key not in saved:
            continue
        if json.dumps(value, sort_keys=True, default=str) != json.dumps(saved[key], sort_keys=True, default=str):
            out.append(f"{flag(key, config_class)} {value!r} (saved: {saved[key]!r})")
    return out


def preset_values(key: str) -> str:
    """`cpu-small 800, paper 300000`: a run option's value in each preset, for help texts."""
    return ", ".join(f"{name} {'full size' if v.get(key) is None else v.get(key)}" for name, v in PRESETS.items())


class DeprecatedAlias(argparse.Action):
    """A flag's other spelling: sets the same option and prints the deprecation its declaration gives."""

    def __init__(self, *args, warnings: dict | None = None, **kwargs):
        self.warnings = warnings or {}
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.warnings:
            print(f"bridgezoo: warning: {self.warnings[option_string]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def help_text(f: dataclasses.Field) -> str:
    text = f.metadata["help"]
    text = text() if callable(text) else text
    return text.replace("{preset}", preset_values(f.name)) if f.metadata["preset"] else text


def add_arguments(parser: argparse.ArgumentParser, config_class=None) -> None:
    """One argparse option per RunConfig field, in declaration order; every default None ("not given"), so
    `from_namespace` keeps only what was given and RunConfig's own defaults apply."""
    for f in fields(config_class):
        m = f.metadata
        spellings = [m["flag"] or "--" + f.name.replace("_", "-"), *m["aliases"]]
        kwargs = {"dest": f.name, "default": None, "help": help_text(f)}
        if f.type in ("bool", bool):
            kwargs["action"] = "store_true"
        elif m["parse"] is not None:
            kwargs |= {"action": "append", "metavar": m["metavar"]}
        else:
            kwargs |= {k: m[k] for k in ("type", "choices", "metavar", "nargs") if m[k] is not None}
            if m["aliases"]:
                kwargs |= {"action": DeprecatedAlias, "warnings": m["aliases"]}
        parser.add_argument(*spellings, **kwargs)


def from_namespace(namespace: argparse.Namespace, config_class=None) -> dict:
    """The RunConfig keyword arguments among parsed options: the fields given (not None), parsed by their `parse`."""
    out = {}
    for f in fields(config_class):
        value = getattr(namespace, f.name, None)
        if value is None or (value is False and f.type in ("bool", bool)):
            continue
        out[f.name] = f.metadata["parse"](value) if f.metadata["parse"] else value
    return out


def check_tiles(tile: int | None, overlap: int) -> None:
    """Tiles of `tile` pixels (None or 0: whole images) overlapping by `overlap` pixels: the overlap must lie in
    [0, tile). The one check of `run` (`RunConfig.resolve`), `restore` and the tiled restoration itself."""
    if tile and not 0 <= overlap < tile:
        raise OptionError(f"--tile-overlap ({overlap}) must lie in [0, --tile ({tile}))")


# ----------------------------------------------------------------------------------------- RunConfig.resolve


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, which a container or `taskset` may limit below the
    machine's count), at least 1."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(has_gpu: bool) -> int:
    """Data-loading processes per training process: with a GPU, GPU_DEFAULTS's capped by the cores this process
    may use less one (for the main process); on CPU, CPU_DEFAULTS's (workers take cores from training). The cores
    of a process: BRIDGEZOO_CPUS where `bench` or the SLURM launcher set its share, else the machine's divided by
    the processes started on it (LOCAL_WORLD_SIZE under accelerate / torchrun)."""
    if not has_gpu:
        return CPU_DEFAULTS["num_workers"]
    if os.environ.get("BRIDGEZOO_CPUS"):
        cores = int(os.environ["BRIDGEZOO_CPUS"])
    else:
        cores = usable_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(GPU_DEFAULTS["num_workers"], cores - 1))


def _check_declared(cfg) -> None:
    """Every field's declared choices and minimum (None: unset, allowed)."""
    for f in fields(type(cfg)):
        value, m = getattr(cfg, f.name), f.metadata
        if value is None:
            continue
        if m["choices"] is not None and value not in m["choices"]:
            raise OptionError(f"{flag(f.name)} {value!r}: choose {', '.join(map(str, m['choices']))}")
        if m["minimum"] is not None and value < m["minimum"]:
            raise OptionError(f"{flag(f.name)} must " + ("not be negative" if m["minimum"] == 0 else
                                                         f"be at least {m['minimum']}") + f", got {value}")


def resolve(self, has_gpu: bool):
    """A copy of the RunConfig `self` with the preset applied and `auto` resolved for this device, checked."""
    cfg = dataclasses.replace(self)
    if cfg.preset == "auto":
        cfg.preset = "paper" if has_gpu else "cpu-small"
    if cfg.preset not in PRESETS:
        raise OptionError(f"--preset {self.preset!r}: choose auto, {', '.join(PRESETS)}")
    if cfg.task_batch is not None:  # the batch is the composition's total unless given (then a multiple of it)
        from ..data.composition import batch_pattern, format_composition, parse_task_batch, total

        comp = parse_task_batch(cfg.task_batch)
        cfg.task_batch = format_composition(comp)
        if cfg.batch is None:
            cfg.batch = total(comp)
        elif cfg.batch >= 1:
            batch_pattern(comp, cfg.batch)
    warmup_from_preset = cfg.warmup is None
    for key, value in PRESETS[cfg.preset].items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    if warmup_from_preset and cfg.iters:  # the preset's warm-up is 5% of its iterations; keep that share
        cfg.warmup = min(cfg.warmup, max(1, round(0.05 * cfg.iters)))
    if cfg.backbone is None:
        cfg.backbone = "unet-L" if has_gpu else "unet-T"
    if cfg.out is None:
        cfg.out = f"runs/{cfg.bridge}-{cfg.backbone.replace('/', '_')}-s{cfg.seed}"
    if cfg.mixed_precision == "auto":  # the fast path where it is safe: training only; sampling stays fp32
        import torch

        cfg.mixed_precision = "bf16" if has_gpu and torch.cuda.is_bf16_supported() else "no"
    if cfg.channels_last == "auto":  # off: the U-Nets' GroupNorm is slower in channels_last (0.74× bf16 on an
        cfg.channels_last = "off"    # H200, reports/gpu-h200; no consistent CPU gain, reports/performance.md)
    if cfg.compile == "auto" and isinstance(cfg.iters, int):  # compiling pays after ~1400 iterations of unet-L
        cfg.compile = "on" if has_gpu and cfg.iters >= COMPILE_MIN_ITERS else "off"
    if cfg.num_workers is None:
        cfg.num_workers = default_workers(has_gpu)
    if cfg.eval_batch is None:
        cfg.eval_batch = (GPU_DEFAULTS if has_gpu else CPU_DEFAULTS)["eval_batch"]
    _check_declared(cfg)
    if cfg.lr <= 0:
        raise OptionError(f"--lr must be positive, got {cfg.lr}")
    if cfg.warmup > cfg.iters:
        raise OptionError(f"--warmup must lie in [0, --iters = {cfg.iters}], got {cfg.warmup}")
    if not 0 <= cfg.ema_decay < 1:
        raise OptionError(f"--ema-decay must lie in [0, 1), got {cfg.ema_decay}")
    check_tiles(cfg.tile, cfg.tile_overlap)
    return cfg
