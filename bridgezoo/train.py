"""`bridgezoo run`: one training function for CPU, one GPU and `accelerate launch` on several, then evaluation.

The runner never special-cases a method: it calls `bridge.wrap`, `bridge.training_loss` and `bridge.sample`.
Everything that makes a run repeatable is a function of (seed, step): the batch of step k and the noise of
step k, so a resumed run continues bit for bit (on CPU) where an uninterrupted one would be.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .conditioning import set_tasks
from .errors import BridgezooError, OptionError
from .evaluate import atomic_write_text, evaluate
from .seeding import derive_seed, generator
from .precision import PRECISIONS, eager
from .preflight import flag
from .presets import COMPILE_MIN_ITERS, CPU_DEFAULTS, GPU_DEFAULTS, PRESETS  # no torch there: `run --help` shows them
from .tracking import RunTracker




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


class TrainingError(BridgezooError):
    """Training stopped (non-finite loss, bad state); the message names the step and what is intact."""


@dataclass
class RunConfig:
    """Every option of a run; `resolve()` fills the preset's values for those left as None."""

    bridge: str = "rdbm"
    backbone: str | None = None
    data: str = "zoo5"  # zoo5, a folder of paired images, or NAME:PATH of a registered dataset (`bridgezoo data list`)
    eval_data: str | None = None
    eval_sets: list[str] | None = None  # NAME:PATH data: the test sets to evaluate (default: the dataset's own)
    eval_limit: int | None = None  # NAME:PATH data: at most this many images per test set, evenly spaced
    tasks: list[str] | None = None
    task_batch: str | None = None  # per-task counts in every batch (`bridgezoo.data.composition`); None: balanced stream
    iters: int | None = None
    batch: int | None = None
    patch: int | None = None
    lr: float | None = None
    warmup: int | None = None  # None: the preset's, capped at 5% of --iters
    ema_decay: float | None = None
    nfe: int | None = None  # the sampler's steps at evaluation (--steps; None: the bridge's default_nfe)
    sampler: str | None = "ddim"
    pi: str | None = None
    bridge_opts: dict = field(default_factory=dict)
    backbone_opts: dict = field(default_factory=dict)
    mixed_precision: str = "auto"  # auto: bf16 autocast for training on a GPU that supports it, fp32 on CPU
    channels_last: str = "auto"  # auto: off (GroupNorm U-Nets run slower in it on an H200 and on CPU; see resolve)
    compile: str = "auto"  # torch.compile of the network for training (auto: on for GPU runs of COMPILE_MIN_ITERS+)
    tf32: str = "on"  # TF32 for the fp32 matmuls and convolutions of training on a GPU (on/off); no effect on CPU
    eval_precision: str = "fp32"  # sampling at evaluation: fp32 (exact, TF32 off), tf32 or bf16 (autocast)
    eval_batch: int | None = None  # images sampled at once at evaluation (None: GPU_DEFAULTS / CPU_DEFAULTS)
    seed: int = 0
    preset: str = "auto"
    out: str | None = None
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    grad_accum: int = 1
    log_every: int = 10
    save_every: int | None = None
    eval_max_side: int | None = None
    eval_split: str = "test"
    eval_seed: int = 0  # the degradations of the zoo5 evaluation images: fixed, so every training seed sees one test set
    tile: int | None = None
    tile_overlap: int = 32
    crop_border: int = 0
    samples: int = 2
    num_workers: int | None = None  # data-loading processes (None: `default_workers`)
    quiet: bool = False
    task_conditioned: bool = False  # the network is told each image's task (bridgezoo.conditioning); blind by default
    strict_pairs: bool = False  # own folders: a file without a partner is an error (default: skipped, warned, counted)
    log_with: str | None = None  # experiment trackers: tensorboard, wandb, mlflow, all (comma-separated); see tracking.py

    def resolve(self, has_gpu: bool) -> "RunConfig":
        cfg = dataclasses.replace(self)
        preset = cfg.preset
        if preset == "auto":
            preset = "paper" if has_gpu else "cpu-small"
        if preset not in PRESETS:
            raise OptionError(f"--preset {self.preset!r}: choose auto, {', '.join(PRESETS)}")
        cfg.preset = preset
        if cfg.task_batch is not None:  # the batch is the composition's total unless given (then a multiple of it)
            from .data.composition import batch_pattern, format_composition, parse_task_batch, total

            comp = parse_task_batch(cfg.task_batch)
            cfg.task_batch = format_composition(comp)
            if cfg.batch is None:
                cfg.batch = total(comp)
            elif cfg.batch >= 1:
                batch_pattern(comp, cfg.batch)
        warmup_from_preset = cfg.warmup is None
        for key, value in PRESETS[preset].items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        if warmup_from_preset and cfg.iters:  # the preset's warm-up is 5% of its iterations; keep that share
            cfg.warmup = min(cfg.warmup, max(1, round(0.05 * cfg.iters)))
        if cfg.backbone is None:
            cfg.backbone = "unet-L" if has_gpu else "unet-T"
        if cfg.out is None:
            cfg.out = f"runs/{cfg.bridge}-{cfg.backbone.replace('/', '_')}-s{cfg.seed}"
        if cfg.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise OptionError(f"--mixed-precision {cfg.mixed_precision!r}: choose auto, no, bf16 or fp16")
        if cfg.mixed_precision == "auto":  # the fast path where it is safe: training only; sampling stays fp32
            cfg.mixed_precision = "bf16" if has_gpu and torch.cuda.is_bf16_supported() else "no"
        if cfg.channels_last not in ("auto", "on", "off"):
            raise OptionError(f"--channels-last {cfg.channels_last!r}: choose auto, on or off")
        if cfg.channels_last == "auto":  # off: the U-Nets' GroupNorm is slower in channels_last (0.74× bf16 on an
            cfg.channels_last = "off"    # H200, reports/gpu-h200; no consistent CPU gain, reports/performance.md)
        if cfg.compile == "auto":  # compiling pays for itself after ~1400 iterations of unet-L on an H200
            cfg.compile = "on" if has_gpu and cfg.iters >= COMPILE_MIN_ITERS else "off"
        for name, choices in (("compile", ("on", "off")), ("tf32", ("on", "off")),
                              ("eval_precision", PRECISIONS)):
            if getattr(cfg, name) not in choices:
                raise OptionError(f"{flag(name)} {getattr(cfg, name)!r}: choose {', '.join(choices)}")
        if cfg.num_workers is None:
            cfg.num_workers = default_workers(has_gpu)
        if cfg.eval_batch is None:
            cfg.eval_batch = (GPU_DEFAULTS if has_gpu else CPU_DEFAULTS)["eval_batch"]
        for name in ("iters", "batch", "patch", "grad_accum", "log_every", "save_every", "eval_batch"):
            if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
                raise OptionError(f"{flag(name)} must be at least 1, got {getattr(cfg, name)}")
        if cfg.lr <= 0:
            raise OptionError(f"--lr must be positive, got {cfg.lr}")
        if not 0 <= cfg.warmup <= cfg.iters:
            raise OptionError(f"--warmup must lie in [0, --iters = {cfg.iters}], got {cfg.warmup}")
        if not 0 <= cfg.ema_decay < 1:
            raise OptionError(f"--ema-decay must lie in [0, 1), got {cfg.ema_decay}")
        if cfg.nfe is not None and cfg.nfe < 1:
            raise OptionError(f"{flag('nfe')} must be at least 1 (or left out for the bridge's default), got {cfg.nfe}")
        if cfg.tile is not None and cfg.tile < 8:
            raise OptionError(f"--tile must be at least 8 pixels, got {cfg.tile}")
        if cfg.tile_overlap < 0 or (cfg.tile is not None and cfg.tile_overlap >= cfg.tile):
            raise OptionError(f"--tile-overlap ({cfg.tile_overlap}) must lie in [0, --tile ({cfg.tile}))")
        if cfg.eval_max_side is not None and cfg.eval_max_side < 8:
            raise OptionError(f"--eval-max-side must be at least 8 pixels, got {cfg.eval_max_side}")
        for name in ("crop_border", "samples", "num_workers", "weight_decay", "grad_clip"):
            if getattr(cfg, name) < 0:
                raise OptionError(f"{flag(name)} must not be negative, got {getattr(cfg, name)}")
        return cfg

    @classmethod
    def from_saved(cls, saved: dict, **overrides) -> "RunConfig":
        """The RunConfig of a run's saved config.json (unknown keys ignored), with `overrides` applied."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in overrides if k not in fields]
        if unknown:
            raise OptionError(f"unknown run option(s): {', '.join(unknown)}")
        return cls(**({k: v for k, v in saved.items() if k in fields} | overrides))


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
    from .registry import get_bridge

    if options is None:
        options = dict(cfg.bridge_opts)
        if cfg.pi is not None:
            options["pi"] = cfg.pi
    return get_bridge(cfg.bridge, **options)


def build(cfg: RunConfig, bridge_options: dict | None = None, tasks: list[str] | None = None):
    """(bridge, wrapped model) from a resolved config (and a saved run's resolved bridge options). A task-conditioned
    run (`cfg.task_conditioned`) needs `tasks`, the task names in the order of the network's embedding table."""
    from .conditioning import TaskConditioned
    from .registry import get_backbone

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


def dataset_tasks(dataset) -> list[str]:
    """The task names of a dataset, in a fixed order (a training set's are the embedding rows of a task-conditioned
    network)."""
    tasks = getattr(dataset, "tasks", None)
    if callable(tasks):
        tasks = tasks()
    if tasks is None:
        tasks = sorted({p.task for p in getattr(dataset, "pairs", [])} or {dataset[0]["task"]})
    return list(tasks)


# the README's measured first command (RDBM as its authors released it, with a residual output, told the task):
# what a run that made its inputs worse is pointed to (tests/test_readme.py keeps the two equal)
FIRST_COMMAND = ("bridgezoo run --bridge rdbm --pi one --bridge-opt lam=1e-4 --bridge-opt objective=x0 "
                 "--backbone nafnet-T --backbone-opt residual_output=true --task-conditioned --iters 6000")


def low_gain_hint(summary: dict, data: str = "zoo5") -> list[str]:
    """The closing lines of a run whose EMA model is worse than its inputs (`summary["gain_psnr"]` < 0, in dB):
    what to try instead (the README's first command, on `data`; longer training; the committed zoo report). []
    when the model gained (or the summary has no gain)."""
    gain = summary.get("gain_psnr")
    if gain is None or not gain < 0:
        return []
    command = FIRST_COMMAND + ("" if data == "zoo5" else f" --data {shlex.quote(data)}")
    return [f"the EMA model is worse than its inputs ({gain:+.2f} dB PSNR); at a small budget try the README's "
            f"measured first command (RDBM as its authors released it):",
            f"  {command}",
            "or train longer (--iters); reports/zoo-cpu/READING.md names the bridges that learn at the CPU budget"]


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
    from .registry import provider, sampler_provider

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


ZOO5_EVAL_VARIANTS = 2  # two degradations of every zoo5 test photograph per task: 50 test images


def make_datasets(cfg: RunConfig):
    """(training dataset, evaluation dataset or None); validates user folders before anything runs."""
    from .data import TASKS, PairedFolders, Zoo5Eval, Zoo5Train
    from .data.adapters import parse_data_spec
    from .data.paired import plain_task_name

    draws = cfg.iters * cfg.batch * cfg.grad_accum  # one item per draw of the training stream
    spec = None if cfg.data == "zoo5" else parse_data_spec(cfg.data)
    if spec is None and (cfg.eval_sets or cfg.eval_limit):
        raise OptionError("--eval-sets and --eval-limit apply to --data NAME:PATH (a registered dataset), not to "
                          f"--data {cfg.data}")
    pattern = None
    if cfg.task_batch is not None:
        from .data.composition import batch_pattern, check_composition, parse_task_batch

        if cfg.data != "zoo5" and spec is None:
            raise OptionError(f"--task-batch applies to zoo5 and to registered datasets (--data NAME:PATH, e.g. "
                              f"universal5:/data/Restoration), not to the folder --data {cfg.data}")
        comp = parse_task_batch(cfg.task_batch)
        known = TASKS if cfg.data == "zoo5" else spec[0].tasks()
        check_composition(comp, known, cfg.tasks, data="zoo5" if cfg.data == "zoo5" else spec[0].name)
        pattern = batch_pattern(comp, cfg.batch)
    if cfg.data == "zoo5":
        train = Zoo5Train(tasks=cfg.tasks, patch=cfg.patch, length=draws, seed=cfg.seed, side=cfg.eval_max_side,
                          batch_pattern=pattern)
        evalset = Zoo5Eval(cfg.eval_split, tasks=cfg.tasks, max_side=cfg.eval_max_side, seed=cfg.eval_seed,
                           variants=ZOO5_EVAL_VARIANTS)
        return train, evalset
    if spec is not None:  # a registered dataset in its authors' layout
        adapter, root = spec
        if cfg.eval_data:
            raise OptionError(f"--eval-data does not apply to --data {cfg.data}; choose its test sets with "
                              "--eval-sets (see `bridgezoo data list`)")
        train = adapter.training_set(root, patch=cfg.patch, length=draws, seed=cfg.seed, tasks=cfg.tasks,
                                     batch_pattern=pattern)
        evalset = adapter.evaluation_set(root, sets=cfg.eval_sets, limit=cfg.eval_limit, tasks=cfg.tasks)
        return train, evalset
    root = Path(cfg.data)
    train_root = root / "train" if (root / "train").is_dir() else root
    train = PairedFolders(train_root, patch=cfg.patch, seed=cfg.seed, strict=cfg.strict_pairs)
    eval_root = Path(cfg.eval_data) if cfg.eval_data else (root / "test" if (root / "test").is_dir() else None)
    # a plain evaluation pair is the training data's one task (`mydata`), whatever its own folder is called
    evalset = (PairedFolders(eval_root, seed=cfg.seed, task=plain_task_name(train_root), strict=cfg.strict_pairs)
               if eval_root else None)
    return train, evalset


def describe_data(train_set, eval_set, cfg: RunConfig) -> dict:
    """What the run found in its data, as notes for the log and a record for config.json."""
    info, notes = {}, []
    for split, ds in (("train", train_set), ("eval", eval_set)):
        if ds is None:
            continue
        if hasattr(ds, "describe"):
            d = ds.describe(split)
        else:
            d = {"items": len(ds), "notes": [f"{split}: {len(ds)} {cfg.data} item(s)"]}
        notes += d.pop("notes")
        info[split] = d
    info["notes"] = notes
    return info


def lr_lambda(warmup: int, total: int):
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    return tuple(torch.randperm(n, generator=generator(seed, "epoch", epoch)).tolist())


def batch_indices(step: int, batch: int, n: int, seed: int) -> list[int]:
    """The dataset indices of global step `step`: consecutive slices of a per-epoch permutation seeded by (seed, epoch)."""
    per_epoch = max(1, n // batch)
    epoch, k = divmod(step, per_epoch)
    perm = _epoch_permutation(n, seed, epoch)
    return list(perm[k * batch : (k + 1) * batch])


def draw_item(dataset, index: int, seed: int):
    """Item `index` of a training dataset for one draw: datasets with random augmentation (crops, flips) take the
    draw's own seed through `draw(index, seed)`; the others are already a function of the index (zoo5)."""
    draw = getattr(dataset, "draw", None)
    return draw(index, seed) if draw is not None else dataset[index]


def collate(items):
    return {"lq": torch.stack([it["lq"] for it in items]), "gt": torch.stack([it["gt"] for it in items]),
            "task": [it["task"] for it in items]}


class Batches(torch.utils.data.IterableDataset):
    """The batches of steps [start, stop) for this process, in order: (step, batch, draws).

    Each global batch of `batch` items is split over the processes (rank r takes positions r, r + world, …);
    `draws` are the global draw numbers step·batch + position of this process's items. The augmentation of an item
    and the noise it is trained with are seeded by (seed, draw), so a run gives the same global batches, the
    same crops and the same noise on 1 or N processes, and a resumed run continues exactly.
    """

    def __init__(self, dataset, batch, start, stop, seed, rank=0, world=1):
        self.dataset, self.batch, self.start, self.stop, self.seed = dataset, batch, start, stop, seed
        self.rank, self.world = rank, world

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        for step in range(self.start + wid, self.stop, nw):
            if getattr(self.dataset, "batch_pattern", None):  # a fixed per-task composition: position j of every
                idx = list(range(step * self.batch, (step + 1) * self.batch))  # batch is the pattern's task j
            else:
                idx = batch_indices(step, self.batch, len(self.dataset), self.seed)
            positions = range(self.rank, len(idx), self.world)
            draws = [step * self.batch + j for j in positions]
            items = [draw_item(self.dataset, idx[j], derive_seed(self.seed, "draw", d)) for j, d in zip(positions, draws)]
            yield step, collate(items), draws


def set_training_precision(cfg: RunConfig, device: torch.device) -> None:
    """The GPU's math for training: TF32 for fp32 matmuls and convolutions (`--tf32`). cuDNN's autotuner
    (`cudnn.benchmark`) stays off: on an H200 it bought nothing for unet-L (6.20 against 6.19 it/s) and cost 15–25 s
    at the first step (reports/gpu-h200). No effect on CPU."""
    from .precision import set_tf32

    if device.type == "cuda":
        set_tf32(cfg.tf32 == "on")


def backbone_of(model: torch.nn.Module) -> torch.nn.Module:
    """The registered network inside a bridge's wrappers (Preconditioned, TaskConditioned, ...: each keeps it as
    `.network`)."""
    while isinstance(getattr(model, "network", None), torch.nn.Module):
        model = model.network
    return model


def compile_backbone(model: torch.nn.Module) -> None:
    """torch.compile the backbone in place (`nn.Module.compile`: its state dict and module tree are unchanged, so
    checkpoints, EMA and saved weights are those of the eager network)."""
    backbone_of(model).compile()


def batch_to_device(batch: dict, device: torch.device, channels_last: bool = False):
    """(x0, mu) of a collated batch on `device`: non-blocking copies from pinned memory, channels_last when the
    network is (so its first convolution does not convert the layout)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return tuple(batch[k].to(device, non_blocking=True).contiguous(memory_format=fmt) for k in ("gt", "lq"))


def _save_state(accelerator, run: Path, step: int, name: str = "state") -> None:
    """Accelerate state (model, optimizer, scheduler, EMA, RNG) + step, replaced atomically as the directory
    `name` (the auxiliary network's stage keeps its own, `auxiliary_state`)."""
    state, tmp, old = run / name, run / f"{name}.tmp", run / f"{name}.old"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / "step.json").write_text(json.dumps({"step": step}))
        if state.exists():
            os.replace(state, old)
        os.replace(tmp, state)
        if old.exists():
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _state_dir(run: Path, name: str = "state") -> Path | None:
    for folder in (name, f"{name}.old"):  # NAME.old survives a kill between the two renames
        if (run / folder / "step.json").exists():
            return run / folder
    return None


AUXILIARY_PREFIX = "__auxiliary__."  # the auxiliary network's tensors inside model.safetensors


def save_weights(path: Path, model: torch.nn.Module, cfg: dict, auxiliary: torch.nn.Module | None = None) -> None:
    """EMA weights as safetensors with the full resolved config in the metadata; atomic. A bridge's trained
    auxiliary network is stored beside them (keys prefixed `AUXILIARY_PREFIX`), so the file alone restores."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if auxiliary is not None:
        tensors |= {AUXILIARY_PREFIX + k: v.detach().cpu().contiguous() for k, v in auxiliary.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"format": "bridgezoo-1", "config": json.dumps(cfg)})
    os.replace(tmp, path)


def load_model(weights: str | Path, device: str | torch.device | None = "auto"):
    """(bridge, model, config) from a `model.safetensors` written by `bridgezoo run`: nothing else is needed.

    The bridge is rebuilt from the options the run resolved and saved (not today's plugin defaults); `device`:
    "auto" (the GPU if there is one), "cpu", "cuda:1", ... A model whose bridge or backbone plugin is not installed
    names the distribution (and version) that provided it.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .errors import UnknownNameError

    path = Path(weights)
    if not path.is_file():
        raise OptionError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001
        raise OptionError(f"{path}: not a safetensors file ({exc})") from None
    if meta.get("format") != "bridgezoo-1" or "config" not in meta:
        raise OptionError(f"{path}: no bridgezoo config in its metadata; was it written by `bridgezoo run`?")
    saved = json.loads(meta["config"])
    cfg = RunConfig.from_saved(saved)
    try:
        bridge, model = build(cfg, saved.get("bridge_options"), saved.get("task_names"))
    except UnknownNameError as exc:
        kind = "bridge" if f"bridge {cfg.bridge!r}" in str(exc) else "backbone"
        prov = saved.get("providers", {}).get(kind)
        hint = (f" This model was trained with {kind} {getattr(cfg, kind)!r} from distribution "
                f"{prov['distribution']} {prov['version']} (plugin {prov['plugin']!r}); install it "
                f"(pip install '{prov['distribution']}=={prov['version']}') to use this model."
                if prov else " The model does not record which distribution provided it.")
        raise OptionError(f"{path}: {exc}{hint}") from None
    tensors = load_file(str(path))
    aux = {k[len(AUXILIARY_PREFIX):]: tensors.pop(k) for k in [k for k in tensors if k.startswith(AUXILIARY_PREFIX)]}
    spec = bridge.auxiliary()
    if spec is not None:
        if not aux:
            raise OptionError(f"{path}: bridge {cfg.bridge!r} needs its trained auxiliary network, which this file "
                              "lacks")
        network = build_auxiliary(cfg, spec)
        network.load_state_dict(aux)
        bridge.attach_auxiliary(network.to(resolve_device(device)))
    model.load_state_dict(tensors)
    return bridge, model.to(resolve_device(device)).eval(), cfg


def build_auxiliary(cfg: RunConfig, spec) -> torch.nn.Module:
    """A bridge's auxiliary network (`bridge.Auxiliary`), untrained: the spec's backbone or the run's."""
    from .registry import get_backbone

    options = {"out_channels": spec.out_channels} | (cfg.backbone_opts if spec.backbone is None else {})
    return get_backbone(spec.backbone or cfg.backbone, **options)


def train_auxiliary(cfg: RunConfig, bridge, train_set, run_dir: Path, stop_requested: list, say) -> torch.nn.Module | None:
    """Stage 1 of a two-stage bridge: train the auxiliary network its options declare (`bridge.auxiliary()`), save
    it as `auxiliary.safetensors` and attach it, frozen, to the bridge; None for a one-stage bridge.

    A run that already has `auxiliary.safetensors` loads it. Otherwise the network is trained like the bridge's
    (the run's optimizer, schedule, batch, clipping, precision) on its own stream of batches and noise, seeded by
    (seed, "auxiliary", draw), from initial weights seeded by (seed, "auxiliary"); its state is saved in
    `auxiliary_state/` every --save-every steps and on interruption, so a resumed stage 1 continues exactly, and
    the bridge's network (built before, from the run's seed) starts stage 2 the same either way."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    spec = bridge.auxiliary()
    if spec is None:
        return None
    final = run_dir / "auxiliary.safetensors"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "auxiliary"))
        network = build_auxiliary(cfg, spec)
    acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available(),
                      gradient_accumulation_steps=cfg.grad_accum,
                      dataloader_config=DataLoaderConfiguration(split_batches=True))
    device = acc.device
    if final.exists():
        network.load_state_dict(load_file(str(final)))
        bridge.attach_auxiliary(network.to(device))
        return network
    iters = spec.iters or cfg.iters
    seed = derive_seed(cfg.seed, "auxiliary")
    network = network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(min(cfg.warmup, iters), iters))
    model, optimizer, scheduler = acc.prepare(network, optimizer, scheduler)
    start, state = 0, _state_dir(run_dir, "auxiliary_state")
    if state is not None:
        acc.load_state(str(state))
        start = json.loads((state / "step.json").read_text())["step"]
        say(f"resuming the auxiliary network (stage 1) at step {start}")
    else:
        say(f"stage 1: training the auxiliary network for {iters} iterations")
    loader = torch.utils.data.DataLoader(
        Batches(train_set, cfg.batch, start * cfg.grad_accum, iters * cfg.grad_accum, seed, acc.process_index,
                acc.num_processes), batch_size=None, num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    log = open(run_dir / "auxiliary.jsonl", "a") if acc.is_main_process else None
    bar = tqdm(total=iters, initial=start, desc="stage 1", disable=cfg.quiet or not acc.is_main_process)
    step = start
    bad = torch.zeros((), dtype=torch.bool, device=device)  # a non-finite loss, looked at before logging or saving

    def check_finite() -> None:
        if bool(acc.gather(bad.reshape(1)).any()):
            raise TrainingError(f"stage 1 (auxiliary network): non-finite loss by step {step}; stopped without saving "
                                "(the last state in auxiliary_state/ is intact); try a lower --lr or "
                                "--mixed-precision no")

    try:
        model.train()
        for micro, batch, draws in loader:
            step = micro // cfg.grad_accum
            gens = [generator(seed, "noise", d, device=device) for d in draws]
            x0, mu = batch_to_device(batch, device)
            with acc.accumulate(model):
                with acc.autocast():
                    loss = spec.loss(model, x0, mu, gens)
                bad = bad | ~torch.isfinite(loss.detach())
                acc.backward(loss)
                if acc.sync_gradients and cfg.grad_clip:
                    acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if (micro + 1) % cfg.grad_accum:
                continue
            step += 1
            bar.update(1)
            saving = step % cfg.save_every == 0 or step == iters or bool(stop_requested)
            if saving or step % cfg.log_every == 0:
                check_finite()
            if log and (step % cfg.log_every == 0 or step == iters):
                log.write(json.dumps({"step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0]}) + "\n")
                log.flush()
            if step % cfg.save_every == 0 or stop_requested:
                _save_state(acc, run_dir, step, "auxiliary_state")
            if stop_requested:
                say(f"\ninterrupted in stage 1 at step {step}: state saved in {run_dir / 'auxiliary_state'}; "
                    "continue with --resume")
                raise KeyboardInterrupt
    finally:
        bar.close()
        if log:
            log.close()
    network = acc.unwrap_model(model)
    if acc.is_main_process:
        tmp = final.with_name(f".{final.name}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}, str(tmp))
        os.replace(tmp, final)
        for folder in ("auxiliary_state", "auxiliary_state.old"):
            shutil.rmtree(run_dir / folder, ignore_errors=True)
    acc.wait_for_everyone()
    bridge.attach_auxiliary(network)
    return network


def evaluate_run(cfg: RunConfig, bridge, model, eval_set, out_dir, nfe: int | None = None, sampler: str | None = None,
                 accelerator=None, device=None, quiet: bool | None = None) -> dict:
    """`evaluate` with a run's evaluation settings (tiles, crop, samples, seed, precision, batch): the in-run
    evaluation, `bench`'s extra (NFE, sampler) evaluations and a loaded model's all go through here. `nfe` and
    `sampler` default to the run's."""
    return evaluate(bridge, model, eval_set, out_dir, nfe=cfg.nfe if nfe is None else nfe,
                    sampler=cfg.sampler if sampler is None else sampler, tile=cfg.tile, overlap=cfg.tile_overlap,
                    crop_border=cfg.crop_border, samples=cfg.samples, seed=cfg.seed, accelerator=accelerator,
                    device=device, quiet=cfg.quiet if quiet is None else quiet, batch=cfg.eval_batch,
                    precision=cfg.eval_precision or "fp32")


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run never writes into a folder it did not make; a resumed one needs its config.json."""
    if resume:
        return
    if (run_dir / "config.json").exists():
        raise OptionError(f"{run_dir}: a run already exists there; use --resume to continue it or --out for a new one")
    if run_dir.exists():
        if not run_dir.is_dir():
            raise OptionError(f"--out {run_dir}: exists and is not a folder")
        # what `bridgezoo bench` writes before a run starts: its failure record and the job that owns the run
        foreign = [p.name for p in run_dir.iterdir() if p.name not in ("error.txt", "job.json")]
        if foreign:
            raise OptionError(f"--out {run_dir}: the folder exists and holds files bridgezoo did not write "
                              f"({', '.join(sorted(foreign)[:5])}); choose a new or empty folder")


def run(cfg: RunConfig, resume: bool = False) -> dict:
    """Train (or resume), save, evaluate. Returns the evaluation summary (or {} if there is no eval data).

    Everything that can be checked is checked before anything is written (`preflight.check_config`). With
    `resume`, `cfg` must equal the run's saved options (except out/quiet/workers/logging): a conflict is an
    error naming each option and its saved value (`RunConfig.from_saved` builds the saved config).
    """
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import set_seed
    from timm.utils import ModelEmaV3
    from tqdm.auto import tqdm

    from .progress import tqdm_disable

    from .preflight import check_config, resume_conflicts, saved_config

    has_gpu = torch.cuda.is_available()
    cfg, _ = check_config(cfg, has_gpu)
    tracker = RunTracker(cfg.log_with, cfg.out)  # an unknown or uninstalled tracker fails here, before any writing
    run_dir = Path(cfg.out)
    _check_run_dir(run_dir, resume)
    saved = None
    if resume:
        saved = saved_config(run_dir)
        conflicts = resume_conflicts(dataclasses.asdict(cfg), saved)
        if conflicts:
            raise OptionError(f"--resume {run_dir}: options differ from the run's saved config.json: "
                              + "; ".join(conflicts) + ". Resume without them to continue with the saved options, "
                              "or start a new run with --out")
    # split_batches: `Batches` splits each global batch over the processes, so the scheduler steps once per
    # optimizer step (accelerate's default would step it once per process and end the cosine N times too early)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not has_gpu,
                              gradient_accumulation_steps=cfg.grad_accum,
                              dataloader_config=DataLoaderConfiguration(split_batches=True),
                              log_with=tracker.trackers or None)
    world = accelerator.num_processes
    if cfg.batch % world:
        raise OptionError(f"--batch {cfg.batch} is the global batch and must split evenly over {world} processes")
    say = (lambda *a: None) if cfg.quiet or not accelerator.is_main_process else (lambda *a: print(*a, flush=True))
    # build everything (and validate the data) before writing anything; the seed fixes the initial weights
    set_seed(cfg.seed)
    train_set, eval_set = make_datasets(cfg)
    tasks = ((saved.get("task_names") if saved else None) or dataset_tasks(train_set)) if cfg.task_conditioned else None
    if tasks and eval_set is not None:
        check_eval_tasks(tasks, dataset_tasks(eval_set))
    bridge, model = build(cfg, saved.get("bridge_options") if saved else None, tasks)
    say(f"bridgezoo run: bridge {cfg.bridge}, backbone {cfg.backbone} ({'GPU' if has_gpu else 'no GPU'}: "
        f"preset {cfg.preset}), {cfg.iters} iterations of batch {cfg.batch} at {cfg.patch}², data {cfg.data}, "
        f"mixed precision {cfg.mixed_precision}, channels_last {cfg.channels_last} → {run_dir}")
    data_info = describe_data(train_set, eval_set, cfg)
    for line in data_info["notes"]:
        say(line)
    device = accelerator.device
    set_training_precision(cfg, device)
    model = model.to(device)
    if cfg.channels_last == "on":
        model = model.to(memory_format=torch.channels_last)
    # the EMA copy is taken before `accelerator.prepare` patches the network's forward with its autocast: it samples
    # at evaluation in the precision asked for there (--eval-precision), exactly as `load_model` + `evaluate` do
    ema = ModelEmaV3(model, decay=cfg.ema_decay)
    if cfg.compile == "on":
        compile_backbone(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup, cfg.iters))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    accelerator.register_for_checkpointing(ema)
    config = saved if saved else dataclasses.asdict(cfg) | {
        "bridge_options": bridge.options, "task_names": tasks, "providers": providers(cfg, bridge), "data_info": data_info,
        "versions": package_versions(), "device": str(accelerator.device), "processes": world,
        "command": " ".join(sys.argv)}
    start = 0
    if resume:
        state = _state_dir(run_dir)
        if state is not None:
            try:
                accelerator.load_state(str(state))
            except Exception as exc:  # noqa: BLE001 - a state that does not fit the model: say so in one line
                first = str(exc).strip().splitlines()[0][:300]
                raise TrainingError(f"--resume {run_dir}: the saved state in {state} does not fit this run's model "
                                    f"({type(exc).__name__}: {first}); nothing was changed") from None
            start = json.loads((state / "step.json").read_text())["step"]
            say(f"resuming {run_dir} at step {start}")
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    tracker.start(accelerator, config)  # a tracker that cannot start fails before config.json exists
    if accelerator.is_main_process and not resume:
        atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2, default=str))
    accelerator.wait_for_everyone()

    stop_requested = []
    handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            handlers[sig] = signal.signal(sig, lambda signum, frame: stop_requested.append(signum))
        except ValueError:  # not the main thread
            pass
    if cfg.num_workers and hasattr(train_set, "warm"):
        train_set.warm()  # load what every item needs once, before the workers fork and inherit it
    try:  # stage 1 of a two-stage bridge (its auxiliary network), or nothing
        if start and bridge.auxiliary() is not None and not (run_dir / "auxiliary.safetensors").exists():
            raise TrainingError(f"--resume {run_dir}: the run is at step {start} of stage 2 but its trained "
                                "auxiliary network (auxiliary.safetensors) is missing; start a new run with --out")
        with torch.random.fork_rng(devices=[]):  # stage 1 leaves the global RNG as stage 2 would find it anyway
            auxiliary = train_auxiliary(cfg, bridge, train_set, run_dir, stop_requested, say)
    except BaseException:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        raise
    log = open(run_dir / "train.jsonl", "a") if accelerator.is_main_process else None
    loader = torch.utils.data.DataLoader(
        Batches(train_set, cfg.batch, start * cfg.grad_accum, cfg.iters * cfg.grad_accum, cfg.seed,
                accelerator.process_index, world),
        batch_size=None, num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    probe = collate([train_set[i] for i in range(min(len(train_set), 8))])
    to_device = functools.partial(batch_to_device, device=device, channels_last=cfg.channels_last == "on")

    def probe_loss() -> float:
        """The loss on a fixed batch with fixed t and noise: a smooth learning curve (the step loss is noisy in t).
        The unwrapped network in eval mode: no collective under DDP, no BatchNorm statistics moved."""
        net = accelerator.unwrap_model(model)
        net.eval()
        try:
            with torch.no_grad(), accelerator.autocast(), eager():
                set_tasks(net, probe["task"])
                gens = [generator(cfg.seed, "probe", j, device=device) for j in range(probe["gt"].shape[0])]
                x0, mu = to_device(probe)
                return bridge.training_loss(net, x0, mu, generator=gens).item()
        finally:
            net.train()

    # the first step whose loss was not finite, kept on the device and looked at only when a log line or a state is
    # written (a host sync every step would stall the GPU); no state is ever saved after a non-finite step
    first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def check_finite() -> None:
        bad = accelerator.gather(first_bad.reshape(1))  # every rank agrees
        if bool((bad >= 0).any()):
            rank = int(torch.where(bad >= 0, bad, bad.max() + 1).argmin())
            good = _state_dir(run_dir)
            raise TrainingError(
                f"non-finite loss on process {rank} at step {int(bad[rank])}; stopped without saving. The last good "
                "state" + (f" ({good}, step {json.loads((good / 'step.json').read_text())['step']}) is intact"
                           if good else " is the start (nothing was saved yet)")
                + "; try a lower --lr or --mixed-precision no")

    bar = tqdm(total=cfg.iters, initial=start, desc="train",
               disable=tqdm_disable(cfg.quiet or not accelerator.is_main_process))
    t0, last, step = time.perf_counter(), start, start
    try:
        model.train()
        for micro, batch, draws in loader:
            step = micro // cfg.grad_accum
            gens = [generator(cfg.seed, "noise", d, device=device) for d in draws]
            x0, mu = to_device(batch)
            set_tasks(model, batch["task"])  # a task-conditioned network is told each item's task (else a no-op)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = bridge.training_loss(model, x0, mu, generator=gens)
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.grad_clip:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if (micro + 1) % cfg.grad_accum:
                continue
            ema.update(accelerator.unwrap_model(model), step=step)
            step += 1
            bar.update(1)
            saving = step % cfg.save_every == 0 or step == cfg.iters or bool(stop_requested)
            if step % cfg.log_every == 0 or step == cfg.iters or saving:
                check_finite()
            if step % cfg.log_every == 0 or step == cfg.iters:
                now = time.perf_counter()
                rate = (step - last) / max(now - t0, 1e-9)
                t0, last = now, step
                global_loss = accelerator.reduce(loss.detach().float().reshape(1), "mean").item()  # all ranks
                bar.set_postfix(loss=f"{global_loss:.4f}", it_s=f"{rate:.2f}")
                if log:
                    record = {"step": step, "loss": global_loss, "probe_loss": probe_loss(),
                              "lr": scheduler.get_last_lr()[0], "it_per_s": rate}
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    tracker.log_train(record)
            if saving:
                _save_state(accelerator, run_dir, step)
            if stop_requested:
                say(f"\ninterrupted at step {step}: state saved in {run_dir / 'state'}; continue with --resume")
                raise KeyboardInterrupt
    finally:
        bar.close()
        if log:
            log.close()
        for sig, h in handlers.items():
            signal.signal(sig, h)
    ema_model = ema.module.eval()
    if accelerator.is_main_process:
        save_weights(run_dir / "model.safetensors", ema_model, config, auxiliary)
    if eval_set is None:
        tracker.finish()
        say("no evaluation data (give --eval-data or a test/ folder); weights saved")
        return {}
    summary = evaluate_run(cfg, bridge, ema_model, eval_set, run_dir, accelerator=accelerator)
    tracker.log_eval(summary, step=cfg.iters)
    tracker.finish()
    if summary:
        o, i = summary["overall"], summary["input"]
        no_gt = sum(r["images"] for r in summary.get("per_test_set", {}).values() if r["metric"] == "nr")
        scored = f"the {len(eval_set) - no_gt} with ground truth of {len(eval_set)}" if no_gt else f"{len(eval_set)}"
        say(f"EMA model on {scored} {cfg.data} images: PSNR {o['psnr']:.2f} dB (input {i['psnr']:.2f} dB, "
            f"{summary['gain_psnr']:+.2f} dB), SSIM {o['ssim']:.4f} (input {i['ssim']:.4f}); "
            f"{summary['seconds_per_image']:.2f} s/image at {summary['steps']} sampler steps "
            f"({summary['evaluations']:g} network evaluations per image); {summary['lpips_status']}")
        for name, r in summary.get("per_test_set", {}).items():
            if r["metric"] == "nr":  # no ground truth: no PSNR; the no-reference score or why there is none
                score = (f"NIQE {r['niqe']:.3f} (input {r['input_niqe']:.3f})" if r["niqe"] is not None
                         else summary.get("niqe_status", "no NIQE"))
                say(f"  {name} ({r['images']} images, no ground truth; restored/{name}/): {score}")
                continue
            say(f"  {name} ({r['images']} images, {r['convention']}): PSNR {r['psnr']:.2f} dB "
                f"(input {r['input_psnr']:.2f} dB), SSIM {r['ssim']:.4f}")
        say(f"results in {run_dir}: summary.json, eval.csv, samples/, model.safetensors")
        for line in low_gain_hint(summary, cfg.data):
            say(line)
    return summary
