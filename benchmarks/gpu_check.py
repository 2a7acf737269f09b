"""One command that checks a CUDA machine for bridgezoo: right numbers, a busy GPU, and what each fast path buys.

    python benchmarks/gpu_check.py                      # on a GPU: ≤ 5 minutes on one H200; writes reports/gpu-<name>/
    python benchmarks/gpu_check.py --smoke --out /tmp/g # on CPU at tiny sizes, in seconds (the test suite runs it)

Sections, each written to OUT/gpu_check.json and OUT/README.md as soon as it is done (a run stopped by its time limit
keeps what it measured; `--budget` seconds skips what would not fit):
  parity      every bridge on the device (TF32 off) against the CPU from the same weights: the training loss on
              identical t and noise (relative difference), every deterministic sampler from the same initial state
              (max |Δ| of the output), the stochastic ones with device generators (finite, and their |Δ| for scale);
  peaks       the matmul peak of the device (bf16; fp32 with TF32; fp32 without), large square products;
  training    unet-L at 256², batch 16 (the trainer's step: per-item generators, clipping, fused AdamW) in fp32
              eager (PyTorch's default TF32: matmul off, cuDNN on), bf16, bf16 + channels_last, and bf16 +
              channels_last + torch.compile: it/s, MFU = 3·2·MACs·batch / time / bf16 peak, peak memory;
  real path   `bridgezoo run`'s own `bridgezoo.run.run` with the default data workers on zoo5 and on a generated folder of
              1280×720 pairs, its it/s against the same step on synthetic on-device data (how busy the GPU is);
  evaluation  images/s at NFE 10 of the bare sampler and of `evaluate` (batched, metrics overlapped) per precision;
              PSNR of one briefly trained model sampled in fp32, TF32 and bf16.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import bridgezoo as bz
from bridgezoo import precision
from bridgezoo.backbone import count_macs
from bridgezoo.registry import make_sampler, sampler_names
from bridgezoo.samplers import run_sampler
from bridgezoo.seeding import generator

SMOKE_PARITY_BRIDGES = ("ddpm", "meanflow", "rdbm")  # --smoke: one of each kind of path (noise, JVP, bridge)
PARITY_TOLERANCE = 1e-4  # max |Δ| of a deterministic sampler's output, device against CPU (issue target)
SIZES = {  # (backbone, side, batch, iterations of the real path, NFE at evaluation)
    "full": {"backbone": "unet-L", "side": 256, "batch": 16, "iters": 80, "nfe": 10, "steps": 15, "parity_side": 32},
    "smoke": {"backbone": "unet-test", "side": 32, "batch": 2, "iters": 4, "nfe": 2, "steps": 2, "parity_side": 16},
}


# ---------------------------------------------------------------------------------------------- helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tf32(enabled: bool | None):
    """TF32 for matmuls and cuDNN convolutions inside the block; None: PyTorch's defaults (matmul off, cuDNN on)."""
    return precision.tf32(False, conv=True) if enabled is None else precision.tf32(enabled)


def seconds_per_call(fn, device, warmup: int, reps: int) -> float:
    """Wall seconds of one call of `fn`, after `warmup` calls, averaged over `reps`, the device synchronised."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / reps


def peak_memory_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def fixed_draws(bridge, n: int, shape, seed: int = 0):
    """A `draw_times_and_noise` that returns the same CPU-drawn (t, noise) on every device: the training loss of
    two devices compared on identical t and noise (meanflow's (t, r) pairs included)."""
    cache = {}

    def draw(x0, generator=None, times=None):
        times = times or bridge.sample_t
        key = getattr(times, "__name__", "times")
        if key not in cache:
            g = torch.Generator().manual_seed(seed)
            cache[key] = (times(n, generator=g, device=torch.device("cpu")), torch.randn(shape, generator=g))
        t, noise = cache[key]
        return t.to(x0.device), noise.to(x0.device, x0.dtype)

    return draw


def synthetic_pair(n, side, device, seed=0):
    """(x0, mu) on `device`: smooth random images in [-1, 1] and a noisy, darker copy."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.nn.functional.interpolate(torch.rand(n, 3, side // 8, side // 8, generator=g), size=(side, side),
                                         mode="bilinear", align_corners=False) * 2 - 1
    mu = (0.6 * x0 + 0.1 * torch.randn(x0.shape, generator=g)).clamp(-1, 1)
    return x0.to(device), mu.to(device)


# ---------------------------------------------------------------------------------------------- sections
def environment(device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
           "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {"gpu": props.name, "gpu_memory_gib": props.total_memory / 2**30, "sms": props.multi_processor_count,
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                "tf32_switches_at_start": {f"{type(ns).__name__}.{attr}": str(getattr(ns, attr))
                                           for ns, attr, _, _ in precision._tf32_switches()}}
    return env


def peaks(device, smoke: bool) -> dict:
    """TFLOP/s of a large square matmul: bf16, fp32 with TF32, fp32 without."""
    n = 256 if smoke else 8192
    out = {}
    for label, dtype, allow in (("bf16", torch.bfloat16, False), ("tf32", torch.float32, True),
                                ("fp32", torch.float32, False)):
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        with tf32(allow):
            sec = seconds_per_call(lambda: a @ b, device, warmup=3, reps=2 if smoke else 10)
        out[label] = 2 * n**3 / sec / 1e12
        del a, b
    return {"tflops": out, "matrix": n}


def parity(device, size: dict, bridges=None) -> dict:
    """Every bridge (or `bridges`) and sampler on `device` against the CPU from the same weights, TF32 off."""
    side, n, nfe = size["parity_side"], 2, 4
    rows = []
    with tf32(False):
        for name in bridges or bz.list_bridges():
            row = {"bridge": name, "samplers": {}}
            try:
                bridge = bz.get_bridge(name)
                torch.manual_seed(0)
                cpu_model = bridge.wrap(bz.get_backbone("unet-test", **bridge.backbone_options(3))).eval()
                dev_model = copy.deepcopy(cpu_model).to(device)
                x0, mu = synthetic_pair(n, side, torch.device("cpu"))
                bridge.draw_times_and_noise = fixed_draws(bridge, n, x0.shape)
                with torch.no_grad():
                    losses = [float(bridge.training_loss(m, x0.to(d), mu.to(d)))
                              for m, d in ((cpu_model, torch.device("cpu")), (dev_model, device))]
                row["loss_cpu"], row["loss_device"] = losses
                row["loss_rel_diff"] = abs(losses[1] - losses[0]) / max(abs(losses[0]), 1e-12)
                t = torch.full((n,), 0.5)
                with torch.no_grad():  # one network call: the rounding floor every sampler step adds to
                    outs = [m(x0.to(d), mu.to(d), t.to(d)).cpu() for m, d in
                            ((cpu_model, torch.device("cpu")), (dev_model, device))]
                row["network_max_abs_diff"] = float((outs[1] - outs[0]).abs().max())
                for sname in sampler_names(bridge):
                    row["samplers"][sname] = sampler_parity(bridge, sname, cpu_model, dev_model, mu, device, nfe)
            except Exception as exc:  # noqa: BLE001 - a failure is a finding, recorded with its bridge
                row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
    det = [s["max_abs_diff"] for r in rows for s in r["samplers"].values() if s.get("deterministic") and "max_abs_diff" in s]
    return {"rows": rows, "worst_loss_rel_diff": max((r.get("loss_rel_diff", np.inf) for r in rows), default=None),
            "worst_deterministic_max_abs_diff": max(det, default=None),
            "errors": {r["bridge"]: r["error"] for r in rows if "error" in r}
            | {f"{r['bridge']}:{s}": v["error"] for r in rows for s, v in r["samplers"].items() if "error" in v},
            "shape": [n, 3, side, side], "nfe": nfe, "backbone": "unet-test"}


def sampler_parity(bridge, sname, cpu_model, dev_model, mu, device, nfe) -> dict:
    try:
        sampler = make_sampler(bridge, sname)
        info = sampler.info(bridge)
        start = sampler.initial_state(bridge, mu, torch.Generator().manual_seed(1))  # one state for both devices
        sampler.initial_state = lambda b, m, generator=None: start.to(m.device, m.dtype)
        out = {}
        with torch.no_grad():
            for label, model, dev in (("cpu", cpu_model, torch.device("cpu")), ("device", dev_model, device)):
                gen = torch.Generator(device=dev).manual_seed(2)
                out[label] = run_sampler(bridge, sampler, model, mu.to(dev), nfe, gen, False).float().cpu()
        diff = float((out["device"] - out["cpu"]).abs().max())
        row = {"deterministic": info.deterministic, "finite": bool(torch.isfinite(out["device"]).all()),
               "max_abs_diff": diff}
        if info.deterministic and diff > PARITY_TOLERANCE:  # rounding amplified, or a real difference? in float64:
            with torch.no_grad():
                o64 = [run_sampler(bridge, sampler, copy.deepcopy(m).double(), mu.double().to(d), nfe,
                                   torch.Generator(device=d).manual_seed(2), False).cpu()
                       for m, d in ((cpu_model, torch.device("cpu")), (dev_model, device))]
            row["max_abs_diff_float64"] = float((o64[1] - o64[0]).abs().max())
        return row
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}


# (label, bf16 autocast, channels_last, torch.compile, TF32 (None: PyTorch's default, matmul off and cuDNN on),
# cuDNN autotuning (torch.backends.cudnn.benchmark; PyTorch's default is off)): the first is PyTorch's defaults
MODES = [("fp32 eager", False, False, False, None, False), ("bf16", True, False, False, True, True),
         ("bf16, no cuDNN autotuning", True, False, False, True, False),
         ("bf16 + channels_last", True, True, False, True, True), ("bf16 + compile", True, False, True, True, True)]
DEFAULT_MODES = ["fp32 eager", "bf16", "bf16, no cuDNN autotuning", "bf16 + compile"]
SYNTHETIC_TWIN = "bf16, no cuDNN autotuning"  # how `bridgezoo run` trains a short GPU run: its real path is compared with it
ZOO5_STRIDE = 5  # the precision comparison's zoo5 subset: every 5th test image
SECTIONS = ("parity", "training", "real_path", "evaluation")


def build_unet(size, device, channels_last=False):
    bridge = bz.get_bridge("rdbm")
    torch.manual_seed(0)
    model = bridge.wrap(bz.get_backbone(size["backbone"], **bridge.backbone_options(3))).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return bridge, model


def training_modes(device, size, peak_bf16, modes, deadline) -> dict:
    """The trainer's step on synthetic on-device data in each mode: it/s, MFU against the bf16 peak, memory."""
    from bridgezoo.run import compile_backbone

    side, batch = size["side"], size["batch"]
    options = bz.get_bridge("rdbm").backbone_options(3)
    with torch.device("meta"):
        meta = bz.get_backbone(size["backbone"], **options)
        shape = (1, 3, side, side)
        macs = count_macs(meta, torch.empty(shape), torch.empty(shape), torch.empty(1))
    rows = {}
    for label, amp, channels_last, compiled, allow_tf32, *autotune in modes:
        torch.backends.cudnn.benchmark = autotune[0] if autotune else True  # as the trainer: one fixed shape
        if time.perf_counter() > deadline:
            rows[label] = {"skipped": "time budget"}
            continue
        try:
            reset_peak(device)
            bridge, model = build_unet(size, device, channels_last)
            if compiled:
                compile_backbone(model)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            x0, mu = (z.contiguous(memory_format=fmt) for z in synthetic_pair(batch, side, device))
            ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
            counter = iter(range(10**9))

            def step():
                k = next(counter)
                gens = [generator(0, "noise", k * batch + j, device=device) for j in range(batch)]
                with ctx():
                    loss = bridge.training_loss(model, x0, mu, generator=gens)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)

            with tf32(allow_tf32):
                t0 = time.perf_counter()
                step()
                sync(device)
                first = time.perf_counter() - t0
                sec = seconds_per_call(step, device, warmup=2, reps=size["steps"])
            rows[label] = {"it_per_s": 1 / sec, "images_per_s": batch / sec, "first_step_s": first,
                           "mfu_bf16_peak": 3 * 2 * macs * batch / sec / (peak_bf16 * 1e12),
                           "peak_memory_gib": peak_memory_gib(device)}
            del model, opt
        except Exception as exc:  # noqa: BLE001
            rows[label] = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    base = rows.get("fp32 eager", {}).get("it_per_s")
    for r in rows.values():
        if base and "it_per_s" in r:
            r["speedup_vs_fp32_eager"] = r["it_per_s"] / base
    return {"rows": rows, "gmacs_per_image": macs / 1e9, "backbone": size["backbone"], "side": side, "batch": batch}


def write_pair_folder(root: Path, n: int, width: int, height: int, seed: int = 0) -> Path:
    """n generated lq/gt PNG pairs of width×height under root (smooth colour fields + texture; lq darker, noisy)."""
    from bridgezoo.data import write_png

    rng = np.random.default_rng(seed)
    for sub in ("lq", "gt"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    for i in range(n):
        f = rng.uniform(2, 12, size=(3, 2))
        gt = np.stack([0.5 + 0.4 * np.sin(f[c, 0] * xs * 6.28 + f[c, 1] * ys * 6.28 + i) for c in range(3)], -1)
        lq = np.clip(0.5 * gt + rng.normal(0, 0.05, gt.shape), 0, 1)
        write_png(root / "gt" / f"{i:04d}.png", gt)
        write_png(root / "lq" / f"{i:04d}.png", lq)
    return root


def real_path(device, size, data, out_dir, iters, extra=None) -> dict:
    """`bridgezoo.run.run` as `bridgezoo run` calls it (default workers): it/s from its train.jsonl after the first log line."""
    from bridgezoo.run import RunConfig, run

    cfg = RunConfig(bridge="rdbm", backbone=size["backbone"], data=data, iters=iters, batch=size["batch"],
                    patch=size["side"], log_every=max(1, iters // 6), save_every=10**6, quiet=True,
                    out=str(out_dir), **(extra or {}))
    start = time.perf_counter()
    summary = run(cfg)
    wall = time.perf_counter() - start
    log = [json.loads(line) for line in (Path(out_dir) / "train.jsonl").read_text().splitlines()]
    rates = [r["it_per_s"] for r in log[1:]] or [log[-1]["it_per_s"]]
    saved = json.loads((Path(out_dir) / "config.json").read_text())
    return {"it_per_s": float(np.mean(rates)), "wall_s": wall, "workers": saved["num_workers"],
            "eval_psnr": summary.get("overall", {}).get("psnr") if summary else None,
            "eval_seconds_per_image": summary.get("seconds_per_image") if summary else None}


def evaluation(device, size, model_dir, folder, warm_folder, deadline) -> dict:
    """Images/s of the bare sampler and of `evaluate` per precision; the PSNR of one model in each precision."""
    from bridgezoo.data import PairedFolders
    from bridgezoo.run.evaluate import evaluate
    from bridgezoo.precision import precision_context
    from bridgezoo.run import load_model, make_datasets

    out = {"bare_sampler": {}, "evaluate": {}, "psnr": {}}
    bridge, model, cfg = load_model(Path(model_dir) / "model.safetensors", device=device)
    nfe, batch = size["nfe"], size["batch"]
    _, zoo_eval = make_datasets(cfg.resolve(device.type == "cuda"))
    zoo_eval = torch.utils.data.Subset(zoo_eval, range(0, len(zoo_eval), ZOO5_STRIDE))  # both degradations of the
    out["psnr_images"] = len(zoo_eval)  # first test photograph of every task, and so on: a tenth of the set
    per_image = {}
    for prec in ("fp32", "tf32", "bf16"):
        if time.perf_counter() > deadline:
            break
        target = Path(model_dir) / f"zoo5-{prec}"
        s = evaluate(bridge, model, zoo_eval, target, nfe=nfe, sampler="ddim", device=device, quiet=True,
                     precision=prec, batch=batch, samples=0)
        per_image[prec] = pd.read_csv(target / "eval.csv")["psnr"].to_numpy()
        out["psnr"][prec] = {"psnr": s["overall"]["psnr"], "input_psnr": s["input"]["psnr"]}
        if prec != "fp32":
            d = per_image[prec] - per_image["fp32"]
            out["psnr"][prec] |= {"mean_diff_vs_fp32_db": float(d.mean()), "max_abs_diff_vs_fp32_db": float(np.abs(d).max())}
    _, mu = synthetic_pair(batch, size["side"], device)
    for prec in ("fp32", "tf32", "bf16"):
        with torch.no_grad(), precision_context(prec, device):
            sec = seconds_per_call(lambda: bridge.sample(model, mu, nfe=nfe, sampler="ddim"), device, 1,
                                   2 if size["steps"] < 5 else 5)
        out["bare_sampler"][prec] = {"images_per_s": batch / sec}
    evalset = PairedFolders(folder)
    for prec in ("fp32", "bf16"):
        if time.perf_counter() > deadline:
            break
        evaluate(bridge, model, PairedFolders(warm_folder), Path(model_dir) / f"eval-warm-{prec}", nfe=nfe,
                 sampler="ddim", device=device, quiet=True, precision=prec, batch=batch, samples=0)  # other images
        start = time.perf_counter()
        s = evaluate(bridge, model, evalset, Path(model_dir) / f"eval-{prec}", nfe=nfe, sampler="ddim",
                     device=device, quiet=True, precision=prec, batch=batch, samples=0)
        wall = time.perf_counter() - start
        out["evaluate"][prec] = {"images_per_s": len(evalset) / wall, "images": len(evalset), "wall_s": wall,
                                      "psnr": s["overall"]["psnr"]}
        out["evaluate"][prec]["fraction_of_bare_sampler"] = (
            out["evaluate"][prec]["images_per_s"] / out["bare_sampler"][prec]["images_per_s"])
    return out


# ---------------------------------------------------------------------------------------------- report
def timed_rows(rows: dict, cells) -> list[str]:
    """Markdown rows `| label | cells(r)... |` for measured rows, `| label | why not |` for failed or skipped ones."""
    return [f"| {label} | " + (" | ".join(cells(r)) if "it_per_s" in r else str(r.get("error") or r.get("skipped")))
            + " |" for label, r in rows.items()]


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"# bridgezoo GPU check: {env.get('gpu', env['device'])}", "",
             f"Command: `{result['command']}`  ", f"torch {env['torch']}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, "
             f"Python {env['python']}, {env['cpu_cores']} CPU cores; {result['seconds']:.0f} s in all.", ""]
    if "peaks" in result:
        p = result["peaks"]["tflops"]
        lines += [f"Matmul peaks ({result['peaks']['matrix']}³): bf16 {p['bf16']:.0f}, fp32 with TF32 {p['tf32']:.0f}, "
                  f"fp32 {p['fp32']:.1f} TFLOP/s.", ""]
    if "parity" in result:
        par = result["parity"]
        lines += ["## Parity: device (TF32 off) against CPU from the same weights", "",
                  f"{par['backbone']} at {par['shape']}, NFE {par['nfe']}. Worst training-loss relative difference "
                  f"{par['worst_loss_rel_diff']:.2e} (target 1e-5); worst deterministic sampler max |Δ| "
                  f"{par['worst_deterministic_max_abs_diff']:.2e} (target 1e-4). Errors: {par['errors'] or 'none'}.", "",
                  "| bridge | loss rel. Δ | one network call max abs Δ | deterministic samplers: max abs Δ (float64 where over "
                  "1e-4) | stochastic (device generators): finite |",
                  "|---|---|---|---|---|"]
        for r in par["rows"]:
            det = ", ".join(f"{k} {v['max_abs_diff']:.1e}" + (f" (float64 {v['max_abs_diff_float64']:.0e})"
                                                             if "max_abs_diff_float64" in v else "")
                            for k, v in r["samplers"].items() if v.get("deterministic"))
            sto = ", ".join(f"{k} {'yes' if v.get('finite') else 'NO'}" for k, v in r["samplers"].items()
                            if "deterministic" in v and not v["deterministic"])
            lines.append(f"| {r['bridge']} | {r.get('loss_rel_diff', float('nan')):.1e} | "
                         f"{r.get('network_max_abs_diff', float('nan')):.1e} | {det} | {sto} |")
        lines.append("")
    if "training" in result:
        tr = result["training"]
        lines += [f"## Training step: {tr['backbone']} at {tr['side']}², batch {tr['batch']} "
                  f"({tr['gmacs_per_image']:.1f} GMACs per image per forward)", "",
                  "| mode | it/s | × fp32 eager | MFU (bf16 peak) | peak memory GiB | first step s |", "|---|---|---|---|---|---|"]
        lines += timed_rows(tr["rows"], lambda r: [
            f"{r['it_per_s']:.2f}", f"{r.get('speedup_vs_fp32_eager', float('nan')):.2f}", f"{100 * r['mfu_bf16_peak']:.1f}%",
            f"{r['peak_memory_gib'] or 0:.1f}", f"{r['first_step_s']:.1f}"]) + [""]
    if result.get("real_path"):
        lines += ["## The real `bridgezoo run` path against the same step on synthetic on-device data", "",
                  "| data | workers | it/s | synthetic it/s | busy |", "|---|---|---|---|---|"]
        lines += timed_rows(result["real_path"], lambda r: [
            str(r["workers"]), f"{r['it_per_s']:.2f}", f"{r.get('synthetic_it_per_s', float('nan')):.2f}",
            f"{100 * r.get('busy', float('nan')):.0f}%"]) + [""]
    if "evaluation" in result:
        ev = result["evaluation"]
        lines += ["## Evaluation", "", "| precision | bare sampler images/s | evaluate images/s | evaluate / bare | zoo5 PSNR | mean Δ vs fp32 dB | max abs Δ dB |",
                  "|---|---|---|---|---|---|---|"]
        for prec in ("fp32", "tf32", "bf16"):
            b = ev.get("bare_sampler", {}).get(prec, {})
            e = ev.get("evaluate", {}).get(prec, {})
            q = ev.get("psnr", {}).get(prec, {})
            lines.append(f"| {prec} | {b.get('images_per_s', float('nan')):.1f} | {e.get('images_per_s', float('nan')):.1f} | "
                         f"{e.get('fraction_of_bare_sampler', float('nan')):.2f} | {q.get('psnr', float('nan')):.3f} | "
                         f"{q.get('mean_diff_vs_fp32_db', 0):+.4f} | {q.get('max_abs_diff_vs_fp32_db', 0):.4f} |")
        lines.append("")
    if result.get("errors"):
        lines += ["## Sections that failed", ""] + [f"- {k}: `{v[:400]}`" for k, v in result["errors"].items()] + [""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="output folder (default reports/gpu-<gpu name>)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, runs on CPU in seconds (the test suite)")
    p.add_argument("--budget", type=float, default=290.0, help="seconds; sections that would not fit are skipped")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile mode")
    p.add_argument("--parity-bridges", nargs="+", default=None, metavar="BRIDGE",
                   help="the bridges of the parity section (default: every registered one)")
    p.add_argument("--sections", nargs="+", default=None, choices=SECTIONS,
                   help="run only these sections (default: all)")
    p.add_argument("--modes", nargs="+", default=None, choices=[m[0] for m in MODES],
                   help="training modes to time (default: all but the channels_last one)")
    args = p.parse_args(argv)
    if args.smoke:
        args.no_compile = True  # inductor's first compile takes minutes on a small CPU
        args.parity_bridges = args.parity_bridges or list(SMOKE_PARITY_BRIDGES)
    start = time.perf_counter()
    deadline = start + args.budget
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    size = SIZES["smoke" if args.smoke else "full"]
    gpu = torch.cuda.get_device_name(device).lower().replace("nvidia ", "").replace(" ", "-") if device.type == "cuda" else "cpu"
    out = Path(args.out or f"reports/gpu-{gpu}")
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(["python", *sys.argv]), "environment": environment(device), "errors": {}}
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))

    def save():
        result["seconds"] = time.perf_counter() - start
        (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
        (out / "README.md").write_text(markdown(result))

    def section(name, fn):
        print(f"[{time.perf_counter() - start:6.1f} s] {name}", flush=True)
        try:
            result[name] = fn()
        except Exception:  # noqa: BLE001 - recorded, the other sections still run
            result["errors"][name] = traceback.format_exc()[-2000:]
            print(result["errors"][name], file=sys.stderr, flush=True)
        save()

    wanted = set(args.sections or SECTIONS)
    section("peaks", lambda: peaks(device, args.smoke))
    if "parity" in wanted:
        section("parity", lambda: parity(device, size, args.parity_bridges))
    peak_bf16 = result.get("peaks", {}).get("tflops", {}).get("bf16", float("nan"))
    modes = [m for m in MODES if m[0] in (args.modes or DEFAULT_MODES) and not m[3]]
    if "training" in wanted:
        section("training", lambda: training_modes(device, size, peak_bf16, modes, deadline))
    folder = write_pair_folder(work / "hd" / "train", 8 if args.smoke else 48, *((64, 48) if args.smoke else (1280, 720)))
    test_folder = write_pair_folder(work / "eval", 4 if args.smoke else 64, size["side"], size["side"], seed=1)
    result["real_path"] = {}

    def real(label, data, extra=None):
        if time.perf_counter() > deadline - 60:
            return {"skipped": "time budget"}
        r = real_path(device, size, data, work / f"run-{label}", size["iters"], extra)
        synthetic = result.get("training", {}).get("rows", {}).get(SYNTHETIC_TWIN, {}).get("it_per_s")
        if device.type == "cpu":
            synthetic = None
        if synthetic:
            r |= {"synthetic_it_per_s": synthetic, "busy": r["it_per_s"] / synthetic}
        return r

    # a briefly trained model for the evaluation section; its in-run evaluation in TF32 (full-size zoo5 in exact
    # fp32 takes about a minute of the check's five)
    zoo_extra = {"lr": 4e-4, "ema_decay": 0.9, "eval_max_side": None if not args.smoke else 40,
                 "tasks": None if not args.smoke else ["lowlight"], "eval_precision": "tf32"}
    if "real_path" in wanted:
        section("real_path_zoo5", lambda: real("zoo5", "zoo5", zoo_extra))
        section("real_path_folder", lambda: real("folder", str(folder.parent)))
    for key in ("real_path_zoo5", "real_path_folder"):
        if key in result:
            result["real_path"][key.removeprefix("real_path_")] = result.pop(key)
    save()
    if "evaluation" in wanted and (work / "run-zoo5" / "model.safetensors").exists():
        warm_folder = write_pair_folder(work / "eval-warm", 4 if args.smoke else 16, size["side"], size["side"], seed=2)
        section("evaluation", lambda: evaluation(device, size, work / "run-zoo5", test_folder, warm_folder, deadline))
    compiled = [m for m in MODES if m[0] in (args.modes or DEFAULT_MODES) and m[3]]
    if "training" in wanted and compiled and not args.no_compile and time.perf_counter() < deadline - 90:
        section("training_compile", lambda: training_modes(device, size, peak_bf16, compiled, deadline + 120))
        if "training_compile" in result and "training" in result:
            row = result.pop("training_compile")["rows"]
            base = result["training"]["rows"].get("fp32 eager", {}).get("it_per_s")
            for r in row.values():
                if base and "it_per_s" in r:
                    r["speedup_vs_fp32_eager"] = r["it_per_s"] / base
            result["training"]["rows"] |= row
    save()
    print(markdown(result))
    return 0 if not result["errors"] else 1



if __name__ == "__main__":
    sys.exit(main())
