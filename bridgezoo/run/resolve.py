"""`RunConfig.resolve`: the preset's values for the options left unset, the device-dependent `auto` choices, then
every declared choice and bound checked (`options.option`'s `choices` and `minimum`) and the few checks that
relate two options."""

from __future__ import annotations

import dataclasses
import os

from ..errors import OptionError
from ..presets import COMPILE_MIN_ITERS, CPU_DEFAULTS, GPU_DEFAULTS, PRESETS
from .options import fields, flag


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
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        cores //= max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
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
    from .evaluate import check_tiles

    check_tiles(cfg.tile, cfg.tile_overlap)
    return cfg
