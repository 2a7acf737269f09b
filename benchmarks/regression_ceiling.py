"""What the main job's budget buys at best: the same backbone, data stream, optimizer, schedule and EMA as
`bridgezoo run` (preset cpu-small by default), trained as a *direct regressor* x̂0 = net(μ, μ, t = 1) with L1.

At inference this is the x0-objective DDIM of any pinned bridge at NFE 1 (x_1 = μ, one call, x_0 = x̂0), so the
evaluation below is `bridgezoo.run.evaluate` with rdbm(objective=x0) at NFE 1: the same metric code as every run. A
bridge trained on the same budget spends most of its updates on t < 1, so in PSNR this is a practical ceiling
for the main job at this budget, not a competitor.

    python benchmarks/regression_ceiling.py --out reports/regression-ceiling-cpu     # ~7 min on 2 CPU cores

Writes OUT/summary.json, OUT/eval.csv, OUT/samples/ (as a run does), OUT/README.md (command, machine, numbers) and
OUT/ceiling.json (the options, the command and the times; read by benchmarks/backbones.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from bridgezoo.run.conditioning import set_tasks
from bridgezoo.run.evaluate import evaluate
from bridgezoo.presets import PRESETS
from bridgezoo.run import Batches, RunConfig, build_model, dataset_tasks, make_datasets, optimizer_and_schedule, train_loop


def main(argv=None):
    preset = PRESETS["cpu-small"]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default=preset["backbone"])
    p.add_argument("--iters", type=int, default=preset["iters"])
    p.add_argument("--batch", type=int, default=preset["batch"])
    p.add_argument("--patch", type=int, default=preset["patch"])
    p.add_argument("--lr", type=float, default=preset["lr"])
    p.add_argument("--warmup", type=int, default=None, help="default: the preset's, at most 5%% of --iters (as `run`)")
    p.add_argument("--ema-decay", type=float, default=preset["ema_decay"])
    p.add_argument("--eval-max-side", type=int, default=preset["eval_max_side"])
    p.add_argument("--residual-output", action="store_true", help="net predicts x0 − μ (identity at start)")
    p.add_argument("--task-conditioned", action="store_true",
                   help="tell the network each image's task (as `bridgezoo run --task-conditioned`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from timm.utils import ModelEmaV3

    torch.manual_seed(args.seed)
    cfg = RunConfig(backbone=args.backbone, iters=args.iters, batch=args.batch, patch=args.patch, lr=args.lr,
                    warmup=args.warmup, ema_decay=args.ema_decay, eval_max_side=args.eval_max_side, seed=args.seed,
                    preset="cpu-small", bridge_opts={"objective": "x0"},
                    backbone_opts={"residual_output": args.residual_output},
                    task_conditioned=args.task_conditioned).resolve(has_gpu=False)
    args.warmup = cfg.warmup  # resolved exactly as `bridgezoo run` resolves it
    train_set, eval_set = make_datasets(cfg)  # the very data stream and test images of `bridgezoo run`
    # the network exactly as `bridgezoo run` builds it for rdbm(objective=x0), whose wrap is the identity
    bridge, net = build_model(cfg, tasks=dataset_tasks(train_set) if args.task_conditioned else None)
    # the optimizer, schedule, EMA and loop of `bridgezoo run` (bridgezoo.run.loop), with the regression loss
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    accelerator = Accelerator(cpu=True)
    opt, sched = optimizer_and_schedule(cfg, net.parameters(), args.iters, args.warmup)
    ema = ModelEmaV3(net, decay=args.ema_decay)
    model, opt, sched = accelerator.prepare(net, opt, sched)
    losses = []

    def loss(model, batch, draws):
        mu, x0 = batch["lq"], batch["gt"]
        set_tasks(model, batch["task"])
        return (model(mu, mu, torch.ones(mu.shape[0])) - x0).abs().mean()

    start = time.perf_counter()
    train_loop(accelerator, model, opt, sched, Batches(train_set, args.batch, 0, args.iters, args.seed), loss,
               iters=args.iters, start=0, grad_accum=1, grad_clip=cfg.grad_clip, log_every=1,
               save_every=args.iters + 1, save_at_end=False, stop_requested=[], save=lambda step: None,
               record=lambda step, value, lr, rate: losses.append(value), ema=ema, say=print,
               bar=tqdm(total=args.iters, disable=True), stop_message=str,
               bad_message=lambda rank, step: f"non-finite loss at step {step}; try a lower --lr")
    train_s = time.perf_counter() - start
    out = Path(args.out)
    summary = evaluate(bridge, ema.module.eval(), eval_set, out, nfe=1, sampler="ddim", seed=args.seed, quiet=True)
    total_s = time.perf_counter() - start
    o, i = summary["overall"], summary["input"]
    tasks = "\n".join(f"| {t} | {v['psnr']:.2f} |" for t, v in summary["per_task"].items())
    command = " ".join(["python", *sys.argv])
    (out / "README.md").write_text(
        f"# Regression ceiling of the main job's budget\n\nCommand: `{command}`  \n"
        f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}.  \n"
        f"{args.backbone}, {args.iters} iterations of batch {args.batch} at {args.patch}², lr {args.lr}, warm-up "
        f"{args.warmup} + cosine, EMA {args.ema_decay}, residual output: {args.residual_output}, task-conditioned: {args.task_conditioned}.  \n"
        f"Training {train_s / 60:.1f} min, total {total_s / 60:.1f} min; last-50 mean L1 "
        f"{sum(losses[-50:]) / len(losses[-50:]):.4f}.\n\n"
        f"PSNR {o['psnr']:.2f} dB vs input {i['psnr']:.2f} dB (gain {summary['gain_psnr']:+.2f} dB); "
        f"SSIM {o['ssim']:.4f} vs {i['ssim']:.4f}.\n\n| task | PSNR (dB) |\n|---|---|\n{tasks}\n")
    (out / "ceiling.json").write_text(json.dumps({**vars(args), "command": command, "train_s": train_s,
                                                  "total_s": total_s, "threads": torch.get_num_threads()}, indent=1))
    print(json.dumps({"psnr": o["psnr"], "input_psnr": i["psnr"], "gain": summary["gain_psnr"],
                      "train_minutes": train_s / 60, "per_task": {t: v["psnr"] for t, v in summary["per_task"].items()}}))


if __name__ == "__main__":
    main()
