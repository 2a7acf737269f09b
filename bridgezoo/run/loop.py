"""The one training loop: optimizer steps over a stream of batches (`stream.Batches`), with gradient accumulation,
clipping, the EMA, a non-finite-loss guard that never syncs the host at every step, logging, saving and Ctrl-C.
`bridgezoo run` trains its network and a two-stage bridge's auxiliary network with it, and
`benchmarks/regression_ceiling.py` its direct regressor."""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from ..errors import BridgezooError


class TrainingError(BridgezooError):
    """Training stopped (non-finite loss, bad state); the message names the step and what is intact."""


def lr_lambda(warmup: int, total: int):
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return f


def optimizer_and_schedule(cfg, params, iters: int, warmup: int, device: torch.device | None = None):
    """AdamW at `cfg.lr` with `cfg.weight_decay` (fused on a GPU) and its warm-up + cosine schedule over `iters`."""
    fused = device is not None and device.type == "cuda"
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, iters))


def train_loop(accelerator, model, optimizer, scheduler, batches, loss: Callable, *, iters: int, start: int,
               grad_accum: int, grad_clip: float, log_every: int, save_every: int, stop_requested: list,
               save: Callable[[int], None], record: Callable | None = None, ema=None, save_at_end: bool = True,
               bad_message: Callable[[int, int], str], stop_message: Callable[[int], str], say: Callable,
               bar) -> int:
    """Optimizer steps `start`..`iters` over `batches` ((micro, batch, draws) from `stream.Batches`, micro-batches
    numbered `grad_accum` per step); returns the last step.

    `loss(model, batch, draws)` is the micro-batch's loss (under the accelerator's autocast). After each optimizer
    step: the EMA update (`ema`), every `log_every` steps and at the last one `record(step, loss, lr, it_per_s)` (the
    loss averaged over the processes), every `save_every` steps, at the last (`save_at_end`) and on Ctrl-C
    `save(step)`. The first non-finite loss is kept on the device and looked at only before a log line or a save,
    so there is no host sync at every step and nothing is saved after it: a TrainingError with
    `bad_message(rank, step)`. A stop request (SIGINT / SIGTERM appended to `stop_requested`) saves, says
    `stop_message(step)` and raises KeyboardInterrupt.
    """
    device = accelerator.device
    first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def check_finite() -> None:
        bad = accelerator.gather(first_bad.reshape(1))  # every rank agrees
        if bool((bad >= 0).any()):
            rank = int(torch.where(bad >= 0, bad, bad.max() + 1).argmin())
            raise TrainingError(bad_message(rank, int(bad[rank])))

    t0, last, step = time.perf_counter(), start, start
    model.train()
    for micro, batch, draws in batches:
        step = micro // grad_accum
        with accelerator.accumulate(model):
            with accelerator.autocast():
                value = loss(model, batch, draws)
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(value.detach()), step, first_bad)
            accelerator.backward(value)
            if accelerator.sync_gradients and grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if (micro + 1) % grad_accum:
            continue
        if ema is not None:
            ema.update(accelerator.unwrap_model(model), step=step)
        step += 1
        bar.update(1)
        saving = step % save_every == 0 or (save_at_end and step == iters) or bool(stop_requested)
        logging = step % log_every == 0 or step == iters
        if logging or saving:
            check_finite()
        if logging and record is not None:
            now = time.perf_counter()
            rate = (step - last) / max(now - t0, 1e-9)
            t0, last = now, step
            mean_loss = accelerator.reduce(value.detach().float().reshape(1), "mean").item()  # all ranks
            bar.set_postfix(loss=f"{mean_loss:.4f}", it_s=f"{rate:.2f}")
            record(step, mean_loss, scheduler.get_last_lr()[0], rate)
        if saving:
            save(step)
        if stop_requested:
            say(stop_message(step))
            raise KeyboardInterrupt
    return step


def set_training_precision(cfg, device: torch.device) -> None:
    """The GPU's math for training: TF32 for fp32 matmuls and convolutions (`--tf32`). cuDNN's autotuner
    (`cudnn.benchmark`) stays off: on an H200 it bought nothing for unet-L (6.20 against 6.19 it/s) and cost 15–25 s
    at the first step (reports/gpu-h200). No effect on CPU."""
    from ..precision import set_tf32

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
