"""Restoring images with a trained model (full resolution or tiled) and evaluating it on a dataset."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .conditioning import set_tasks
from .metrics import LPIPS, all_metrics


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to `path` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _tile_weight(h: int, w: int, overlap: int, device, dtype) -> torch.Tensor:
    """A feathering window: linear ramps over `overlap` pixels at each border, 1 inside (never 0)."""
    def ramp(n):
        r = torch.ones(n, device=device, dtype=dtype)
        k = min(overlap, n // 2)
        if k > 0:
            edge = (torch.arange(k, device=device, dtype=dtype) + 1) / (k + 1)
            r[:k], r[n - k :] = edge, edge.flip(0)
        return r

    return ramp(h)[:, None] * ramp(w)[None, :]


def restore(bridge, model, lq: torch.Tensor, nfe: int | None = None, sampler: str | None = None,
            tile: int | None = None, overlap: int = 32, seed: int = 0) -> torch.Tensor:
    """Restore one or a batch of degraded images (B×3×H×W in [-1, 1]) at any size.

    With `tile`, the image is cut into tile×tile windows overlapping by `overlap` pixels, each restored on its own
    and blended with linear feathering (for images too large for memory). The sampler's noise comes from a
    generator seeded with `seed`, so a restore is repeatable.
    """
    squeeze = lq.dim() == 3
    lq = lq[None] if squeeze else lq
    gen = torch.Generator(device=lq.device).manual_seed(seed)
    _, _, h, w = lq.shape
    if not tile or (h <= tile and w <= tile):
        out = bridge.sample(model, lq, nfe=nfe, sampler=sampler, generator=gen)
    else:
        if overlap >= tile:
            raise ValueError(f"--tile-overlap ({overlap}) must be smaller than --tile ({tile})")
        stride = tile - overlap
        ys = list(range(0, max(h - tile, 0) + 1, stride))
        xs = list(range(0, max(w - tile, 0) + 1, stride))
        if ys[-1] + tile < h:
            ys.append(h - tile)
        if xs[-1] + tile < w:
            xs.append(w - tile)
        out = torch.zeros_like(lq)
        norm = torch.zeros((1, 1, h, w), device=lq.device, dtype=lq.dtype)
        for y in ys:
            for x in xs:
                patch = lq[..., y : y + tile, x : x + tile]
                res = bridge.sample(model, patch, nfe=nfe, sampler=sampler, generator=gen)
                wgt = _tile_weight(res.shape[-2], res.shape[-1], overlap, lq.device, lq.dtype)
                out[..., y : y + tile, x : x + tile] += res * wgt
                norm[..., y : y + tile, x : x + tile] += wgt
        out = out / norm
    out = out.clamp(-1, 1)
    return out[0] if squeeze else out


def to01(x: torch.Tensor) -> np.ndarray:
    """3×H×W in [-1, 1] → H×W×3 float in [0, 1]."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def evaluate(bridge, model, dataset, out_dir: Path, nfe: int | None = None, sampler: str | None = None,
             tile: int | None = None, overlap: int = 32, crop_border: int = 0, samples: int = 2, seed: int = 0,
             accelerator=None, quiet: bool = False, device=None) -> dict:
    """Restore every item of `dataset`, write `eval.csv`, `summary.json` and `samples/` in `out_dir`.

    Items are split over processes when `accelerator` has several; the rows are gathered, so the metrics are
    those of one process. Each image's sampler noise is seeded by (seed, index). Without an accelerator the
    evaluation runs on `device` (the model's, e.g. a GPU; default CPU).
    """
    from tqdm.auto import tqdm

    from .data import write_png

    out_dir = Path(out_dir)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    device = accelerator.device if accelerator else torch.device(device or "cpu")
    lpips = LPIPS(device=device)
    rows, per_task_count = [], {}
    indices = list(range(rank, len(dataset), world))
    for i in tqdm(indices, desc="evaluate", disable=quiet or rank != 0, leave=False):
        item = dataset[i]
        lq, gt = item["lq"].to(device), item["gt"].to(device)
        set_tasks(model, item["task"])  # a task-conditioned model is told the image's task (else a no-op)
        start = time.perf_counter()
        with torch.no_grad():
            out = restore(bridge, model, lq, nfe=nfe, sampler=sampler, tile=tile, overlap=overlap, seed=seed * 100003 + i)
        seconds = time.perf_counter() - start
        row = {"index": i, "name": item["name"], "task": item["task"], "height": lq.shape[1], "width": lq.shape[2]}
        if "test_set" in item:
            row.update(test_set=item["test_set"], metric=item["metric"])
        row.update(all_metrics(to01(out), to01(gt), crop_border))
        row["lpips"] = lpips(out, gt)
        row.update({f"input_{k}": v for k, v in all_metrics(to01(lq), to01(gt), crop_border).items()})
        row.update({"nfe": nfe or bridge.default_nfe, "seconds": seconds})
        rows.append(row)
        group = item.get("test_set", item["task"])
        k = per_task_count.get(group, 0)
        if k < samples:
            per_task_count[group] = k + 1
            stem = item["name"].replace("/", "_")
            for tag, img in (("lq", lq), ("output", out), ("gt", gt)):
                write_png(out_dir / "samples" / f"{stem}_{tag}.png", to01(img))
    if world > 1:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    rows = sorted(rows, key=lambda r: r["index"])
    if rank != 0:
        return {}
    return write_results(rows, out_dir, bridge, nfe, sampler, lpips, crop_border)


def write_results(rows, out_dir: Path, bridge, nfe, sampler, lpips, crop_border) -> dict:
    import pandas as pd

    df = pd.DataFrame(rows)
    buf = io.StringIO()
    df.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL)
    atomic_write_text(out_dir / "eval.csv", buf.getvalue())
    metrics = ["psnr", "ssim", "psnr_y", "ssim_y"]
    summary = {
        "images": len(df),
        "sampler": sampler or bridge.samplers[0],
        "nfe": nfe or bridge.default_nfe,
        "crop_border": crop_border,
        "conventions": "8-bit quantized, float64; PSNR/SSIM on RGB and on Y (BT.601); Gaussian SSIM (σ 1.5)",
        "overall": {m: float(df[m].replace(np.inf, np.nan).mean()) for m in metrics},
        "input": {m: float(df[f"input_{m}"].replace(np.inf, np.nan).mean()) for m in metrics},
        "per_task": {t: {m: float(g[m].replace(np.inf, np.nan).mean()) for m in metrics} | {"images": len(g)}
                     for t, g in df.groupby("task")},
        "seconds_per_image": float(df["seconds"].mean()),
        "lpips": float(df["lpips"].mean()) if lpips.available else None,
        "lpips_status": "ok" if lpips.available else lpips.reason,
    }
    summary["gain_psnr"] = summary["overall"]["psnr"] - summary["input"]["psnr"]
    if "test_set" in df:
        summary.update(per_test_set_summary(df))
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


CONVENTIONS = {"y": "Y (BT.601)", "rgb": "RGB"}


def per_test_set_summary(df) -> dict:
    """`per_test_set`: each test set's PSNR/SSIM in its literature's convention ("psnr", "ssim" are on Y for a "y"
    set, on RGB for an "rgb" one), its input's, and all four metrics; `overall_test_sets`: the mean over test sets
    of those headline numbers (every set weighs the same, as the papers average a task's test sets)."""
    mean = lambda g, col: float(g[col].replace(np.inf, np.nan).mean())  # noqa: E731
    per_set = {}
    for name, g in df.groupby("test_set", sort=False):
        metric = str(g["metric"].iloc[0])
        sfx = "_y" if metric == "y" else ""
        per_set[name] = {
            "task": str(g["task"].iloc[0]), "images": int(len(g)), "metric": metric,
            "convention": CONVENTIONS.get(metric, metric),
            "psnr": mean(g, f"psnr{sfx}"), "ssim": mean(g, f"ssim{sfx}"),
            "input_psnr": mean(g, f"input_psnr{sfx}"), "input_ssim": mean(g, f"input_ssim{sfx}"),
            "all": {m: mean(g, m) for m in ("psnr", "ssim", "psnr_y", "ssim_y")},
        }
    sets = list(per_set.values())
    overall = {k: float(np.mean([r[k] for r in sets])) for k in ("psnr", "ssim", "input_psnr", "input_ssim")}
    overall["test_sets"] = len(sets)
    overall["note"] = "mean over test sets of each set's headline PSNR/SSIM (its own convention, Y or RGB)"
    return {"per_test_set": per_set, "overall_test_sets": overall}
