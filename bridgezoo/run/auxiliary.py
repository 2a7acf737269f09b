"""Stage 1 of a two-stage bridge: its auxiliary network (`bridge.Auxiliary`, e.g. UDBM's uncertainty network),
trained with the run's own loop, optimizer, schedule, batch, clipping and precision before the bridge's network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..progress import tqdm_disable
from ..seeding import derive_seed, generator
from .build import build_auxiliary
from .loop import optimizer_and_schedule, train_loop
from .options import RunConfig
from .rundir import load_state, save_state, state_dir, write_tensors
from .stream import Batches, batch_to_device


def train_auxiliary(cfg: RunConfig, bridge, train_set, run_dir: Path, stop_requested: list, say) -> torch.nn.Module | None:
    """Train the auxiliary network `bridge.auxiliary()` declares, save it as `auxiliary.safetensors` and attach it,
    frozen, to the bridge; None for a one-stage bridge.

    A run that already has `auxiliary.safetensors` loads it. Otherwise the network is trained like the bridge's on
    its own stream of batches and noise, seeded by (seed, "auxiliary", draw), from initial weights seeded by
    (seed, "auxiliary"); its state is saved in `auxiliary_state/` every --save-every steps and on interruption, so
    a resumed stage 1 continues exactly, and the bridge's network (built before, from the run's seed) starts stage
    2 the same either way."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from safetensors.torch import load_file
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
    # plain AdamW (not fused on a GPU), as stage 1 always trained: its weights match runs made before
    optimizer, scheduler = optimizer_and_schedule(cfg, network.parameters(), iters, min(cfg.warmup, iters))
    model, optimizer, scheduler = acc.prepare(network, optimizer, scheduler)
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    start, state = 0, state_dir(run_dir, "auxiliary_state")
    if state is not None:
        start = load_state(acc, state, parts)
        say(f"resuming the auxiliary network (stage 1) at step {start}")
    else:
        say(f"stage 1: training the auxiliary network for {iters} iterations")
    loader = torch.utils.data.DataLoader(
        Batches(train_set, cfg.batch, start * cfg.grad_accum, iters * cfg.grad_accum, seed, acc.process_index,
                acc.num_processes), batch_size=None, num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    log = open(run_dir / "auxiliary.jsonl", "a") if acc.is_main_process else None

    def loss(model, batch, draws):
        gens = [generator(seed, "noise", d, device=device) for d in draws]
        x0, mu = batch_to_device(batch, device)
        return spec.loss(model, x0, mu, gens)

    def record(step, value, lr, rate):
        if log:
            log.write(json.dumps({"step": step, "loss": value, "lr": lr}) + "\n")
            log.flush()

    bar = tqdm(total=iters, initial=start, desc="stage 1", disable=tqdm_disable(cfg.quiet or not acc.is_main_process))
    try:
        train_loop(acc, model, optimizer, scheduler, loader, loss, iters=iters, start=start, grad_accum=cfg.grad_accum,
                   grad_clip=cfg.grad_clip, log_every=cfg.log_every, save_every=cfg.save_every,
                   stop_requested=stop_requested, save=lambda step: save_state(acc, run_dir, step, parts,
                                                                                "auxiliary_state"),
                   record=record, save_at_end=False, say=say, bar=bar,
                   bad_message=lambda rank, step: (
                       f"stage 1 (auxiliary network): non-finite loss on process {rank} at step {step}; stopped "
                       "without saving (the last state in auxiliary_state/ is intact); try a lower --lr or "
                       "--mixed-precision no"),
                   stop_message=lambda step: (f"\ninterrupted in stage 1 at step {step}: state saved in "
                                              f"{run_dir / 'auxiliary_state'}; continue with --resume"))
    finally:
        bar.close()
        if log:
            log.close()
    network = acc.unwrap_model(model)
    if acc.is_main_process:
        write_tensors(final, network.state_dict())
        for folder in ("auxiliary_state", "auxiliary_state.old"):
            shutil.rmtree(run_dir / folder, ignore_errors=True)
    acc.wait_for_everyone()
    bridge.attach_auxiliary(network)
    return network
