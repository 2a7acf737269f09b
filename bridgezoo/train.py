"""`bridgezoo run`: one training function for CPU, one GPU and `accelerate launch` on several, then evaluation.

The runner never special-cases a method: it calls `bridge.wrap`, `bridge.training_loss` and `bridge.sample`.
Everything that makes a run repeatable is a function of (seed, step): the batch of step k and the noise of
step k, so a resumed run continues bit for bit (on CPU) where an uninterrupted one would be.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import BridgezooError, OptionError
from .evaluate import atomic_write_text, evaluate

PRESETS = {
    # About 7 minutes on 2 CPU cores (2.1 it/s for rdbm on unet-T; measured, see README).
    "cpu-small": {"backbone": "unet-T", "iters": 800, "batch": 8, "patch": 64, "lr": 2e-3, "warmup": 40,
                  "ema_decay": 0.99, "eval_max_side": 128, "save_every": 100},
    # The RDBM lineage's scale (DiffUIR / DGSolver train.py: 256² crops, batch 10, lr 8e-5, 300k steps; RDDM EMA 0.995).
    "paper": {"backbone": "unet-L", "iters": 300000, "batch": 10, "patch": 256, "lr": 8e-5, "warmup": 1000,
              "ema_decay": 0.995, "eval_max_side": None, "save_every": 5000},
}


class TrainingError(BridgezooError):
    """Training stopped (non-finite loss, bad state); the message names the step and what is intact."""


@dataclass
class RunConfig:
    """Every option of a run; `resolve()` fills the preset's values for those left as None."""

    bridge: str = "rdbm"
    backbone: str | None = None
    data: str = "zoo5"
    eval_data: str | None = None
    tasks: list[str] | None = None
    iters: int | None = None
    batch: int | None = None
    patch: int | None = None
    lr: float | None = None
    warmup: int | None = None
    ema_decay: float | None = None
    nfe: int | None = None
    sampler: str | None = "ddim"
    pi: str | None = None
    bridge_opts: dict = field(default_factory=dict)
    backbone_opts: dict = field(default_factory=dict)
    mixed_precision: str = "auto"  # auto: bf16 autocast for training on a GPU that supports it, fp32 on CPU
    channels_last: str = "auto"  # auto: on with a GPU, off on CPU (no consistent CPU gain, reports/performance.md)
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
    num_workers: int = 0
    quiet: bool = False

    def resolve(self, has_gpu: bool) -> "RunConfig":
        cfg = dataclasses.replace(self)
        preset = cfg.preset
        if preset == "auto":
            preset = "paper" if has_gpu else "cpu-small"
        if preset not in PRESETS:
            raise OptionError(f"--preset {self.preset!r}: choose auto, {', '.join(PRESETS)}")
        cfg.preset = preset
        for key, value in PRESETS[preset].items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
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
        if cfg.channels_last == "auto":
            cfg.channels_last = "on" if has_gpu else "off"
        for name in ("iters", "batch", "patch", "grad_accum", "log_every", "save_every"):
            if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
                raise OptionError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
        if cfg.lr <= 0:
            raise OptionError(f"--lr must be positive, got {cfg.lr}")
        return cfg


def package_versions() -> dict:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("bridgezoo", "torch", "accelerate", "timm", "numpy", "scikit-image"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return versions


def build(cfg: RunConfig):
    """(bridge, wrapped model) from a resolved config."""
    from .registry import get_backbone, get_bridge

    opts = dict(cfg.bridge_opts)
    if cfg.pi is not None:
        opts["pi"] = cfg.pi
    bridge = get_bridge(cfg.bridge, **opts)
    network = get_backbone(cfg.backbone, out_channels=bridge.out_channels(3), **cfg.backbone_opts)
    return bridge, bridge.wrap(network)


def make_datasets(cfg: RunConfig):
    """(training dataset, evaluation dataset or None); validates user folders before anything runs."""
    from .data import PairedFolders, Zoo5Eval, Zoo5Train

    if cfg.data == "zoo5":
        train = Zoo5Train(tasks=cfg.tasks, patch=cfg.patch, length=cfg.iters * cfg.batch * cfg.grad_accum,
                          seed=cfg.seed)
        evalset = Zoo5Eval(cfg.eval_split, tasks=cfg.tasks, max_side=cfg.eval_max_side, seed=cfg.eval_seed)
        return train, evalset
    root = Path(cfg.data)
    train_root = root / "train" if (root / "train").is_dir() else root
    train = PairedFolders(train_root, patch=cfg.patch, seed=cfg.seed)
    eval_root = Path(cfg.eval_data) if cfg.eval_data else (root / "test" if (root / "test").is_dir() else None)
    evalset = PairedFolders(eval_root, seed=cfg.seed) if eval_root else None
    return train, evalset


def lr_lambda(warmup: int, total: int):
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


def batch_indices(step: int, batch: int, n: int, seed: int) -> list[int]:
    """The dataset indices of global step `step`: consecutive slices of a per-epoch permutation seeded by (seed, epoch)."""
    per_epoch = max(1, n // batch)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return perm[k * batch : (k + 1) * batch].tolist()


def collate(items):
    return {"lq": torch.stack([it["lq"] for it in items]), "gt": torch.stack([it["gt"] for it in items]),
            "task": [it["task"] for it in items]}


class Batches(torch.utils.data.IterableDataset):
    """The batches of steps [start, stop) for this process (a slice of each global batch), in order."""

    def __init__(self, dataset, batch, start, stop, seed, rank=0, world=1):
        self.dataset, self.batch, self.start, self.stop, self.seed = dataset, batch, start, stop, seed
        self.rank, self.world = rank, world

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        for step in range(self.start + wid, self.stop, nw):
            idx = batch_indices(step, self.batch, len(self.dataset), self.seed)[self.rank :: self.world]
            yield step, collate([self.dataset[i] for i in idx])


def _save_state(accelerator, run: Path, step: int) -> None:
    """Accelerate state (model, optimizer, scheduler, EMA, RNG) + step, replaced atomically as a directory."""
    state, tmp, old = run / "state", run / "state.tmp", run / "state.old"
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


def _state_dir(run: Path) -> Path | None:
    for name in ("state", "state.old"):  # state.old survives a kill between the two renames
        if (run / name / "step.json").exists():
            return run / name
    return None


def save_weights(path: Path, model: torch.nn.Module, cfg: dict) -> None:
    """EMA weights as safetensors with the full resolved config in the metadata; atomic."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"format": "bridgezoo-1", "config": json.dumps(cfg)})
    os.replace(tmp, path)


def load_model(weights: str | Path, device="cpu"):
    """(bridge, model, config) from a `model.safetensors` written by `bridgezoo run`: nothing else is needed."""
    from safetensors import safe_open
    from safetensors.torch import load_file

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
    cfg_dict = json.loads(meta["config"])
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    cfg = RunConfig(**{k: v for k, v in cfg_dict.items() if k in fields})
    bridge, model = build(cfg)
    model.load_state_dict(load_file(str(path)))
    return bridge, model.to(device).eval(), cfg


def run(cfg: RunConfig, resume: bool = False) -> dict:
    """Train (or resume), save, evaluate. Returns the evaluation summary (or {} if there is no eval data)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from timm.utils import ModelEmaV3
    from tqdm.auto import tqdm

    has_gpu = torch.cuda.is_available()
    cfg = cfg.resolve(has_gpu)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not has_gpu,
                              gradient_accumulation_steps=cfg.grad_accum)
    say = (lambda *a: None) if cfg.quiet or not accelerator.is_main_process else (lambda *a: print(*a, flush=True))
    run_dir = Path(cfg.out)
    if run_dir.exists() and (run_dir / "config.json").exists() and not resume:
        raise OptionError(f"{run_dir}: a run already exists there; use --resume to continue it or --out for a new one")
    # build everything (and validate the data) before writing anything; the seed fixes the initial weights
    set_seed(cfg.seed)
    bridge, model = build(cfg)
    bridge.get_sampler(cfg.sampler)  # an unknown sampler or option fails here, not after training
    train_set, eval_set = make_datasets(cfg)
    say(f"bridgezoo run: bridge {cfg.bridge}, backbone {cfg.backbone} ({'GPU' if has_gpu else 'no GPU'}: "
        f"preset {cfg.preset}), {cfg.iters} iterations of batch {cfg.batch} at {cfg.patch}², data {cfg.data}, "
        f"mixed precision {cfg.mixed_precision}, channels_last {cfg.channels_last} → {run_dir}")
    if cfg.channels_last == "on":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup, cfg.iters))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    ema = ModelEmaV3(accelerator.unwrap_model(model), decay=cfg.ema_decay)
    accelerator.register_for_checkpointing(ema)
    config = dataclasses.asdict(cfg) | {"bridge_options": bridge.options, "versions": package_versions(),
                                         "device": str(accelerator.device), "processes": accelerator.num_processes,
                                         "command": " ".join(sys.argv)}
    start = 0
    if resume:
        state = _state_dir(run_dir)
        if state is not None:
            accelerator.load_state(str(state))
            start = json.loads((state / "step.json").read_text())["step"]
            say(f"resuming {run_dir} at step {start}")
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2, default=str))

    stop_requested = []
    handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            handlers[sig] = signal.signal(sig, lambda signum, frame: stop_requested.append(signum))
        except ValueError:  # not the main thread
            pass
    log = open(run_dir / "train.jsonl", "a") if accelerator.is_main_process else None
    loader = torch.utils.data.DataLoader(
        Batches(train_set, cfg.batch, start * cfg.grad_accum, cfg.iters * cfg.grad_accum, cfg.seed,
                accelerator.process_index, accelerator.num_processes),
        batch_size=None, num_workers=cfg.num_workers)
    probe = collate([train_set[i] for i in range(min(len(train_set), 8))])

    def probe_loss() -> float:
        """The loss on a fixed batch with fixed t and noise: a smooth learning curve (the step loss is noisy in t)."""
        with torch.no_grad(), accelerator.autocast():
            g = torch.Generator(device=accelerator.device).manual_seed(cfg.seed + 12345)
            return bridge.training_loss(model, probe["gt"].to(accelerator.device), probe["lq"].to(accelerator.device),
                                        generator=g).item()

    bar = tqdm(total=cfg.iters, initial=start, desc="train", disable=cfg.quiet or not accelerator.is_main_process)
    t0, last, step = time.perf_counter(), start, start
    try:
        model.train()
        for micro, batch in loader:
            step = micro // cfg.grad_accum
            gen = torch.Generator(device=accelerator.device).manual_seed(
                cfg.seed * 1_000_003 + micro * 101 + accelerator.process_index)
            x0, mu = batch["gt"].to(accelerator.device), batch["lq"].to(accelerator.device)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = bridge.training_loss(model, x0, mu, generator=gen)
                if not torch.isfinite(loss):
                    good = _state_dir(run_dir)
                    raise TrainingError(
                        f"non-finite loss ({loss.item()}) at step {step}; stopped without saving. The last good state"
                        + (f" ({good}, step {json.loads((good / 'step.json').read_text())['step']}) is intact"
                           if good else " is the start (nothing was saved yet)")
                        + "; try a lower --lr or --mixed-precision no")
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
            if step % cfg.log_every == 0 or step == cfg.iters:
                now = time.perf_counter()
                rate = (step - last) / max(now - t0, 1e-9)
                t0, last = now, step
                bar.set_postfix(loss=f"{loss.item():.4f}", it_s=f"{rate:.2f}")
                if log:
                    log.write(json.dumps({"step": step, "loss": loss.item(), "probe_loss": probe_loss(),
                                          "lr": scheduler.get_last_lr()[0], "it_per_s": rate}) + "\n")
                    log.flush()
            if step % cfg.save_every == 0 or step == cfg.iters or stop_requested:
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
        save_weights(run_dir / "model.safetensors", ema_model, config)
    if eval_set is None:
        say("no evaluation data (give --eval-data or a test/ folder); weights saved")
        return {}
    summary = evaluate(bridge, ema_model, eval_set, run_dir, nfe=cfg.nfe, sampler=cfg.sampler, tile=cfg.tile,
                       overlap=cfg.tile_overlap, crop_border=cfg.crop_border, samples=cfg.samples, seed=cfg.seed,
                       accelerator=accelerator, quiet=cfg.quiet)
    if summary:
        o, i = summary["overall"], summary["input"]
        say(f"EMA model on {len(eval_set)} {cfg.data} images: PSNR {o['psnr']:.2f} dB (input {i['psnr']:.2f} dB, "
            f"{summary['gain_psnr']:+.2f} dB), SSIM {o['ssim']:.4f} (input {i['ssim']:.4f}); "
            f"{summary['seconds_per_image']:.2f} s/image at NFE {summary['nfe']}; {summary['lpips_status']}")
        say(f"results in {run_dir}: summary.json, eval.csv, samples/, model.safetensors")
    return summary
