"""`bridgezoo run`: one training function for CPU, one GPU and `accelerate launch` on several, then evaluation.

The runner never special-cases a method: it calls `bridge.wrap`, `bridge.training_loss` and `bridge.sample`.
Everything that makes a run repeatable is a function of (seed, step): the batch of step k and the noise of
step k, so a resumed run continues bit for bit (on CPU) where an uninterrupted one would be. One path: check and
build (`build.check_config`, `build.build_model`), the data (`stream`), stage 1 of a two-stage bridge (`auxiliary`),
the loop (`loop.train_loop`), the run directory (`rundir`), the evaluation (`evaluate_run`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shlex
import signal
import sys
from pathlib import Path

import torch

from .conditioning import set_tasks
from ..errors import BridgezooError, OptionError
from .evaluate import atomic_write_text, evaluate
from ..precision import eager
from ..seeding import generator
from .tracking import RunTracker
from .auxiliary import train_auxiliary
from .build import build_model, check_config, check_eval_tasks, dataset_tasks, package_versions, providers, saved_config
from .loop import TrainingError, compile_backbone, optimizer_and_schedule, set_training_precision, train_loop
from .options import RunConfig, resume_conflicts
from .rundir import check_run_dir, load_state, save_state, save_weights, state_dir
from .stream import Batches, batch_to_device, collate, describe_data, make_datasets

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


def evaluate_run(cfg: RunConfig, bridge, model, eval_set, out_dir, nfe: int | None = None, sampler: str | None = None,
                 accelerator=None, device=None, quiet: bool | None = None) -> dict:
    """`evaluate` with a run's evaluation settings (tiles, crop, samples, seed, precision, batch): the in-run
    evaluation, `bench`'s extra (steps, sampler) evaluations and a loaded model's all go through here. `nfe` (the
    steps) and `sampler` default to the run's."""
    return evaluate(bridge, model, eval_set, out_dir, nfe=cfg.nfe if nfe is None else nfe,
                    sampler=cfg.sampler if sampler is None else sampler, tile=cfg.tile, overlap=cfg.tile_overlap,
                    crop_border=cfg.crop_border, samples=cfg.samples, seed=cfg.seed, accelerator=accelerator,
                    device=device, quiet=cfg.quiet if quiet is None else quiet, batch=cfg.eval_batch,
                    precision=cfg.eval_precision or "fp32")


def _say_results(say, summary: dict, cfg: RunConfig, eval_set, run_dir: Path) -> None:
    """The closing lines: overall and per test set, where the files are, and a hint if the model got worse."""
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


def run(cfg: RunConfig, resume: bool = False) -> dict:
    """Train (or resume), save, evaluate. Returns the evaluation summary (or {} if there is no eval data).

    Everything that can be checked is checked before anything is written (`build.check_config`). With `resume`,
    `cfg` must equal the run's saved options (except those declared `resume_free`): a conflict is an error naming
    each option and its saved value (`RunConfig.from_saved` builds the saved config).
    """
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import set_seed
    from timm.utils import ModelEmaV3
    from tqdm.auto import tqdm

    from ..progress import tqdm_disable

    has_gpu = torch.cuda.is_available()
    cfg, checked_bridge = check_config(cfg, has_gpu)
    tracker = RunTracker(cfg.log_with, cfg.out)  # an unknown or uninstalled tracker fails here, before any writing
    run_dir = Path(cfg.out)
    check_run_dir(run_dir, resume)
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
    # a resumed run rebuilds its bridge from the options it saved (a changed plugin default never changes it)
    bridge, model = build_model(cfg, saved.get("bridge_options") if saved else None, tasks,
                          bridge=None if saved and saved.get("bridge_options") is not None else checked_bridge)
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
    optimizer, scheduler = optimizer_and_schedule(cfg, model.parameters(), cfg.iters, cfg.warmup, device)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "ema": ema}
    config = saved if saved else dataclasses.asdict(cfg) | {
        "bridge_options": bridge.options, "task_names": tasks, "providers": providers(cfg, bridge), "data_info": data_info,
        "versions": package_versions(), "device": str(accelerator.device), "processes": world,
        "command": " ".join(sys.argv)}
    start = 0
    state = state_dir(run_dir) if resume else None
    if state is not None:
        try:
            start = load_state(accelerator, state, parts)
        except BridgezooError:
            raise
        except Exception as exc:  # noqa: BLE001 - a state that does not fit the model: say so in one line
            first = str(exc).strip().splitlines()[0][:300]
            raise TrainingError(f"--resume {run_dir}: the saved state in {state} does not fit this run's model "
                                f"({type(exc).__name__}: {first}); nothing was changed") from None
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

    def loss(model, batch, draws):
        gens = [generator(cfg.seed, "noise", d, device=device) for d in draws]
        x0, mu = to_device(batch)
        set_tasks(model, batch["task"])  # a task-conditioned network is told each item's task (else a no-op)
        return bridge.training_loss(model, x0, mu, generator=gens)

    def record(step, value, lr, rate):
        if log:
            line = {"step": step, "loss": value, "probe_loss": probe_loss(), "lr": lr, "it_per_s": rate}
            log.write(json.dumps(line) + "\n")
            log.flush()
            tracker.log_train(line)

    def bad_message(rank, step):
        good = state_dir(run_dir)
        return (f"non-finite loss on process {rank} at step {step}; stopped without saving. The last good state"
                + (f" ({good}, step {json.loads((good / 'step.json').read_text())['step']}) is intact" if good
                   else " is the start (nothing was saved yet)") + "; try a lower --lr or --mixed-precision no")

    bar = tqdm(total=cfg.iters, initial=start, desc="train",
               disable=tqdm_disable(cfg.quiet or not accelerator.is_main_process))
    try:
        train_loop(accelerator, model, optimizer, scheduler, loader, loss, iters=cfg.iters, start=start,
                   grad_accum=cfg.grad_accum, grad_clip=cfg.grad_clip, log_every=cfg.log_every,
                   save_every=cfg.save_every, stop_requested=stop_requested, ema=ema, record=record, say=say, bar=bar,
                   save=lambda step: save_state(accelerator, run_dir, step, parts), bad_message=bad_message,
                   stop_message=lambda step: (f"\ninterrupted at step {step}: state saved in {run_dir / 'state'}; "
                                              "continue with --resume"))
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
        _say_results(say, summary, cfg, eval_set, run_dir)
    return summary
