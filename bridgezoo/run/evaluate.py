"""Restoring images with a trained model (full resolution or tiled) and evaluating it on a dataset."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .conditioning import set_tasks
from ..memory import NotEnoughMemory, available_bytes, peak_bytes
from ..metrics import LPIPS, NIQE, REFERENCE_METRICS, all_metrics, eval_columns, per_test_set_summary
from ..precision import check_precision, precision_context
from ..presets import CPU_DEFAULTS, GPU_DEFAULTS
from ..seeding import generator as seeded_generator
from .options import check_tiles


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


# ---------------------------------------------------------------------------------------------- memory and tiles
PROBE_SIDES = (64, 128)  # the crops (pixels a side) whose peak memory is measured to predict a whole image's
MIN_TILE = 64  # the smallest tile chosen automatically (pixels a side)
TILE_STEP = 16  # automatic tile sizes are multiples of this
MEMORY_MARGIN = 1.5  # measured tensor bytes × this: allocator caching, fragmentation, library workspaces (cuDNN)
USABLE_FRACTION = 0.8  # of the memory the device has free


@dataclass(frozen=True)
class MemoryModel:
    """Peak extra bytes of restoring one image of p pixels: margin·(linear·p + quadratic·p²), fitted to two probes.

    The quadratic term is zero with the fused attention kernels (memory linear in pixels) and catches a backbone
    whose attention builds the N×N matrix (N ∝ p)."""

    linear: float
    quadratic: float

    def bytes(self, pixels: int) -> float:
        return MEMORY_MARGIN * (self.linear * pixels + self.quadratic * pixels * pixels)


def measure_memory(bridge, model, lq: torch.Tensor, sampler=None) -> MemoryModel:
    """Fit `MemoryModel` from one sampler step (nfe 1) on two top-left crops of `lq` (B×3×H×W, the batch kept so
    task labels stay bound), each measured by `bridgezoo.memory.peak_bytes`, per image. A probe rather than an
    analytic bound: it holds for any backbone (plugins, timm encoders, attention kernels) without knowing it."""
    points = []
    for side in PROBE_SIDES:
        crop = lq[..., : min(side, lq.shape[-2]), : min(side, lq.shape[-1])]
        gens = [torch.Generator(device=lq.device).manual_seed(0) for _ in range(lq.shape[0])]
        peak, _ = peak_bytes(lq.device, bridge.sample, model, crop, nfe=1, sampler=sampler, generator=gens)
        points.append((crop.shape[-2] * crop.shape[-1], peak / lq.shape[0]))
    (p1, m1), (p2, m2) = points
    if p2 == p1:
        return MemoryModel(max(m1, m2) / p1, 0.0)
    quadratic = max((m2 / p2 - m1 / p1) / (p2 - p1), 0.0)
    return MemoryModel(max(m1 / p1 - quadratic * p1, m2 / p2 - quadratic * p2, 0.0), quadratic)


@dataclass(frozen=True)
class TilePlan:
    """How images of one size are restored: `tile` 0 (whole) or the tile side; `image_bytes` the predicted peak of
    one image at a time (0 when not measured); `message` the one line saying why tiles were chosen, else None."""

    tile: int
    image_bytes: float = 0.0
    message: str | None = None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


class TilePlanner:
    """Chooses whole-image or tiled restoration from the image size and the device's free memory.

    Images up to the largest probe crop are restored whole without measuring. For larger ones the model's memory
    is measured once (`measure_memory`) and the whole image is restored if its predicted peak fits in
    USABLE_FRACTION of `available_bytes` (or `budget` bytes); else the largest tile (a multiple of TILE_STEP, at
    least MIN_TILE and more than the overlap) that fits; else `NotEnoughMemory` naming `--tile`."""

    def __init__(self, bridge, model, sampler=None, overlap: int = 32, budget: int | None = None):
        self.bridge, self.model, self.sampler, self.overlap, self.budget = bridge, model, sampler, overlap, budget
        self.memory: MemoryModel | None = None

    def available(self, device) -> float:
        return self.budget if self.budget is not None else USABLE_FRACTION * available_bytes(device)

    def plan(self, lq: torch.Tensor) -> TilePlan:
        """The plan for `lq` (B×3×H×W; one image's needs, whatever B)."""
        h, w = lq.shape[-2:]
        if h * w <= PROBE_SIDES[-1] ** 2:
            return TilePlan(0)
        if self.memory is None:
            self.memory = measure_memory(self.bridge, self.model, lq, self.sampler)
        fixed = 4 * lq[0].nbytes  # the image, its output, the blending weights
        need = lambda th, tw: self.memory.bytes(min(th, h) * min(tw, w)) + fixed  # noqa: E731
        budget = self.available(lq.device)
        if need(h, w) <= budget:
            return TilePlan(0, need(h, w))
        smallest = max(MIN_TILE, (self.overlap // TILE_STEP + 1) * TILE_STEP)
        for tile in range(max(h, w) // TILE_STEP * TILE_STEP, smallest - 1, -TILE_STEP):
            if need(tile, tile) <= budget:
                return TilePlan(tile, need(tile, tile),
                                f"a {w}×{h} image needs about {_gib(need(h, w))} whole, {_gib(budget)} is usable on "
                                f"{lq.device}: restoring it in {tile}×{tile} tiles (about {_gib(need(tile, tile))}; "
                                "--tile sets the size)")
        raise NotEnoughMemory(
            f"a {w}×{h} image needs about {_gib(need(h, w))} whole and {_gib(need(smallest, smallest))} even in "
            f"{smallest}×{smallest} tiles, but only {_gib(budget)} is usable on {lq.device}: free memory, restore on "
            "another device (--device), or force a tile size with --tile SIZE")

    def batch_that_fits(self, plan: TilePlan, lq: torch.Tensor, wanted: int) -> int:
        """How many images of `plan` fit at once (at most `wanted`, at least 1)."""
        if not plan.image_bytes:
            return wanted
        return max(1, min(wanted, int(self.available(lq.device) // plan.image_bytes)))


def _restore_tiles(bridge, model, lq, nfe, sampler, tile: int, overlap: int, generator) -> torch.Tensor:
    """Restore B×3×H×W in tile×tile windows overlapping by `overlap`, blended with linear feathering."""
    check_tiles(tile, overlap)
    _, _, h, w = lq.shape
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
            res = bridge.sample(model, patch, nfe=nfe, sampler=sampler, generator=generator)
            wgt = _tile_weight(res.shape[-2], res.shape[-1], overlap, lq.device, lq.dtype)
            out[..., y : y + tile, x : x + tile] += res * wgt
            norm[..., y : y + tile, x : x + tile] += wgt
    return out / norm


def restore(bridge, model, lq: torch.Tensor, nfe: int | None = None, sampler: str | None = None,
            tile: int | None = None, overlap: int = 32, seed: int = 0, generator=None, precision: str = "fp32",
            budget: int | None = None, say: Callable[[str], None] | None = None) -> torch.Tensor:
    """Restore one or a batch of degraded images (B×3×H×W in [-1, 1]) at any size.

    `tile`: None chooses from the image size and the device's free memory (`TilePlanner`: the whole image when it
    fits, else the largest tiles that do, said in one line through `say`); 0 restores the whole image; a size cuts
    the image into tile×tile windows overlapping by `overlap` pixels, each restored on its own and blended with
    linear feathering. The sampler's noise comes from `generator` (one, or one per image) or else from
    `seeding.generator(seed, "eval", 0)`, the noise `evaluate` gives its first image, so a restore is repeatable
    and reproduces that image of an evaluation with the same seed. `precision`: see `bridgezoo.precision`; `budget`: usable bytes
    (default: a fraction of the device's free memory)."""
    squeeze = lq.dim() == 3
    lq = lq[None] if squeeze else lq
    gen = generator if generator is not None else seeded_generator(seed, "eval", 0, device=lq.device)
    with precision_context(precision, lq.device), torch.no_grad():
        if tile is None:
            plan = TilePlanner(bridge, model, sampler, overlap, budget).plan(lq)
            tile = plan.tile
            if plan.message and say:
                say(plan.message)
        _, _, h, w = lq.shape
        if not tile or (h <= tile and w <= tile):
            out = bridge.sample(model, lq, nfe=nfe, sampler=sampler, generator=gen)
        else:
            out = _restore_tiles(bridge, model, lq, nfe, sampler, tile, overlap, gen)
    out = out.to(lq.dtype).clamp(-1, 1)
    return out[0] if squeeze else out


def to01(x: torch.Tensor) -> np.ndarray:
    """3×H×W in [-1, 1] → H×W×3 float in [0, 1]."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def device_sync(device) -> None:
    """Wait until `device` has finished its queued work (CUDA kernels run asynchronously), so a wall-clock interval
    measures the work itself; nothing to wait for on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------- input metrics
_INPUT_METRICS: OrderedDict[tuple, dict] = OrderedDict()  # (content hash, crop_border) -> metrics of the input
_INPUT_METRICS_LOCK = threading.Lock()
INPUT_METRICS_CACHE_SIZE = 100_000  # entries (four floats each)


def _content_key(*tensors: torch.Tensor) -> str:
    """A BLAKE2 digest of the tensors' shapes, dtypes and bytes (hashlib releases the GIL on large buffers)."""
    h = hashlib.blake2b(digest_size=20)
    for t in tensors:
        a = np.ascontiguousarray(t.detach().cpu().numpy())
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def input_metrics(lq: torch.Tensor, gt: torch.Tensor, crop_border: int) -> dict:
    """`all_metrics` of the degraded input against the ground truth (3×H×W in [-1, 1]), computed once per content:
    kept in memory for the process, so the evaluations of one model (`bench`: several NFE and samplers) and the
    runs sharing a data set do not recompute them."""
    key = (_content_key(lq, gt), crop_border)
    with _INPUT_METRICS_LOCK:
        if key in _INPUT_METRICS:
            _INPUT_METRICS.move_to_end(key)
            return dict(_INPUT_METRICS[key])
    metrics = all_metrics(to01(lq), to01(gt), crop_border)
    with _INPUT_METRICS_LOCK:
        _INPUT_METRICS[key] = dict(metrics)
        while len(_INPUT_METRICS) > INPUT_METRICS_CACHE_SIZE:
            _INPUT_METRICS.popitem(last=False)
    return metrics


# ---------------------------------------------------------------------------------------------- evaluation
GPU_METRIC_THREADS = 4  # metric threads off the CPU (a CPU scores inline, one image at a time)


def same_size_batches(dataset, indices, batch: int, prefetch: bool = False):
    """Yield lists of (index, item) of up to `batch` consecutive items whose images have one size; with
    `prefetch`, the next items are decoded in a background thread while the caller works."""
    pool = ThreadPoolExecutor(1) if prefetch else None
    try:
        pending = deque(pool.submit(dataset.__getitem__, i) for i in indices[: 2 * batch]) if pool else deque()
        following = iter(indices[2 * batch :] if pool else indices)
        group = []
        for i in indices:
            if pool:
                item = pending.popleft().result()
                nxt = next(following, None)
                if nxt is not None:
                    pending.append(pool.submit(dataset.__getitem__, nxt))
            else:
                item = dataset[next(following)]
            if group and (len(group) == batch or group[0][1]["lq"].shape != item["lq"].shape):
                yield group
                group = []
            group.append((i, item))
        if group:
            yield group
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)


def _score(item: dict, out: torch.Tensor, crop_border: int, sample_dir: Path | None, niqe=None,
           out_dir: Path | None = None) -> dict:
    """Metrics of one restored image (CPU tensors 3×H×W in [-1, 1]) and of its input; its PNGs if `sample_dir`.

    An unpaired image (`item["gt"]` None, a test set without ground truth) gets no PSNR/SSIM: its no-reference
    score (`niqe`, None where unavailable) and its input's, and the restored image is always written to
    `out_dir/restored/TESTSET/STEM.png` (for such a set the images are the result)."""
    from ..data import write_png

    if item["gt"] is None:
        row = {"niqe": niqe(to01(out)) if niqe else None, "input_niqe": niqe(to01(item["lq"])) if niqe else None}
        if out_dir is not None:
            write_png(out_dir / "restored" / f"{item['name']}.png", to01(out))
    else:
        row = all_metrics(to01(out), to01(item["gt"]), crop_border)
        row.update({f"input_{k}": v for k, v in input_metrics(item["lq"], item["gt"], crop_border).items()})
    if sample_dir is not None:
        stem = item["name"].replace("/", "_")
        for tag, img in (("lq", item["lq"]), ("output", out), ("gt", item["gt"])):
            if img is not None:
                write_png(sample_dir / f"{stem}_{tag}.png", to01(img))
    return row


def evaluate(bridge, model, dataset, out_dir: Path, nfe: int | None = None, sampler: str | None = None,
             tile: int | None = None, overlap: int = 32, crop_border: int = 0, samples: int = 2, seed: int = 0,
             accelerator=None, quiet: bool = False, device=None, batch: int | None = None, precision: str = "fp32",
             metric_threads: int | None = None) -> dict:
    """Restore every item of `dataset`, write `eval.csv`, `summary.json` and `samples/` in `out_dir`.

    Items are split over processes when `accelerator` has several; the rows are gathered, so the metrics are
    those of one process. Without an accelerator the evaluation runs on `device` (the model's, e.g. a GPU; default
    CPU). Each image's sampler noise comes from its own generator, `seeding.generator(seed, "eval", index)`, so
    up to `batch` consecutive same-size images are sampled at once (default: `presets.CPU_DEFAULTS` / `GPU_DEFAULTS`)
    with the results they would get alone. `tile`: as in `restore` (None: chosen from the free memory, which also
    caps the batch). `precision`: "fp32" (exact), "tf32" or "bf16" (`bridgezoo.precision`). Metrics and sample
    PNGs are computed by `metric_threads` threads while the next batch samples (default 0 on a CPU: inline;
    GPU_METRIC_THREADS elsewhere, with the next items decoded in the background); the input's metrics once per
    content (`input_metrics`). `seconds` is each image's share of its batch's wall-clock time, the device
    synchronised; the first batch (warm-up) is reported apart in summary.json.
    """
    from tqdm.auto import tqdm

    from ..progress import tqdm_disable
    from ..samplers import count_evaluations
    from .loop import backbone_of

    check_precision(precision)
    out_dir = Path(out_dir)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    device = accelerator.device if accelerator else torch.device(device or "cpu")
    on_cpu = device.type == "cpu"
    batch = batch or (CPU_DEFAULTS if on_cpu else GPU_DEFAULTS)["eval_batch"]
    metric_threads = (0 if on_cpu else GPU_METRIC_THREADS) if metric_threads is None else metric_threads
    lpips = LPIPS(device=device)
    niqe = NIQE() if getattr(dataset, "unpaired_sets", None) else None  # only where a test set has no ground truth
    planner = TilePlanner(bridge, model, sampler, overlap) if tile is None else None
    plans: dict[tuple, TilePlan] = {}
    say = (lambda m: None) if quiet or rank != 0 else tqdm.write
    rows, per_task_count, first = [], {}, True
    indices = list(range(rank, len(dataset), world))
    pool = ThreadPoolExecutor(metric_threads) if metric_threads else None
    progress = tqdm(total=len(indices), desc="evaluate", disable=tqdm_disable(quiet or rank != 0), leave=False)
    try:
        for group in same_size_batches(dataset, indices, batch, prefetch=pool is not None):
            lq_all = torch.stack([item["lq"] for _, item in group])
            if not on_cpu:
                lq_all = lq_all.pin_memory()
            lq_all = lq_all.to(device, non_blocking=True)
            size = tile
            step = len(group)
            if planner is not None:
                shape = tuple(lq_all.shape[1:])
                if shape not in plans:
                    set_tasks(model, [item["task"] for _, item in group])
                    with precision_context(precision, device):
                        plans[shape] = planner.plan(lq_all)
                    if plans[shape].message:
                        say(plans[shape].message)
                size = plans[shape].tile
                step = planner.batch_that_fits(plans[shape], lq_all, len(group))
            for lo in range(0, len(group), step):
                part, lq = group[lo : lo + step], lq_all[lo : lo + step]
                set_tasks(model, [item["task"] for _, item in part])  # a task-conditioned model is told each image's task
                gens = [seeded_generator(seed, "eval", i, device=device) for i, _ in part]
                device_sync(device)
                start = time.perf_counter()
                with count_evaluations(backbone_of(model)) as counted:  # the evaluations made, not assumed
                    out = restore(bridge, model, lq, nfe=nfe, sampler=sampler, tile=size, overlap=overlap,
                                  generator=gens, precision=precision)
                device_sync(device)
                seconds = (time.perf_counter() - start) / len(part)
                out_cpu = out.float().cpu()
                for j, (i, item) in enumerate(part):
                    row = {"index": i, "name": item["name"], "task": item["task"],
                           "height": item["lq"].shape[1], "width": item["lq"].shape[2]}
                    if "test_set" in item:
                        row.update(test_set=item["test_set"], metric=item["metric"])
                    paired = item["gt"] is not None
                    row["lpips"] = lpips(out[j], item["gt"].to(device)) if lpips.available and paired else None
                    row.update({"steps": nfe or bridge.default_nfe, "evaluations": counted.per_run,
                                "seconds": seconds, "batch": len(part), "warmup": first})
                    group_name = item.get("test_set", item["task"])
                    k = per_task_count.get(group_name, 0)
                    sample_dir = None
                    if k < samples:
                        per_task_count[group_name] = k + 1
                        sample_dir = out_dir / "samples"
                    args = (item, out_cpu[j], crop_border, sample_dir, niqe, out_dir)
                    rows.append((row, pool.submit(_score, *args) if pool else _score(*args)))
                first = False
                progress.update(len(part))
        rows = [_merge(row, scored.result() if pool else scored) for row, scored in rows]
    finally:
        progress.close()
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    if world > 1:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    rows = sorted(rows, key=lambda r: r["index"])
    if rank != 0:
        return {}
    settings = {"eval_batch": batch, "precision": precision,
                "auto_tiles": {f"{s[2]}x{s[1]}": p.tile for s, p in plans.items() if p.tile}}
    if niqe is not None:
        settings["niqe_status"] = niqe.status if niqe.available else niqe.reason
    return write_results(rows, out_dir, bridge, nfe, sampler, lpips, crop_border, settings)


COLUMNS = ("index", "name", "task", "height", "width", "test_set", "metric", *eval_columns(), "steps", "evaluations",
           "seconds", "batch", "warmup")
# eval.csv and summary.json before the sampler's steps and its network evaluations were named apart: "nfe" held the
# steps (`steps_of` reads either)
LEGACY_STEPS = "nfe"


def steps_of(record) -> int | None:
    """The sampler steps of a summary.json (dict) or eval.csv row: "steps", or the older files' "nfe"."""
    value = record.get("steps", record.get(LEGACY_STEPS))
    return None if value is None else int(value)


def _merge(row: dict, scored: dict) -> dict:
    """One eval.csv row: the image's description, its metrics and its timing, in COLUMNS order."""
    merged = {**row, **scored}
    return {c: merged[c] for c in COLUMNS if c in merged}


def write_results(rows, out_dir: Path, bridge, nfe, sampler, lpips, crop_border, settings: dict | None = None) -> dict:
    """Write eval.csv (one row per image) and summary.json (means, per task and test set, timing, `settings`)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    metrics = REFERENCE_METRICS
    for col in (*metrics, *(f"input_{m}" for m in metrics)):
        if col not in df:  # only test sets without ground truth: no PSNR at all, never one against nothing
            df[col] = np.nan
    buf = io.StringIO()
    df.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL)
    atomic_write_text(out_dir / "eval.csv", buf.getvalue())
    summary = {
        "images": len(df),
        "sampler": sampler or bridge.samplers[0],
        "steps": nfe or bridge.default_nfe,  # the sampler's steps (its grid's intervals)
        "evaluations": float(df["evaluations"].mean()),  # network evaluations per image, counted while sampling
        "crop_border": crop_border,
        "conventions": "8-bit quantized, float64; PSNR/SSIM on RGB and on Y (BT.601); Gaussian SSIM (σ 1.5)",
        "overall": {m: float(df[m].replace(np.inf, np.nan).mean()) for m in metrics},
        "input": {m: float(df[f"input_{m}"].replace(np.inf, np.nan).mean()) for m in metrics},
        "per_task": {t: {m: float(g[m].replace(np.inf, np.nan).mean()) for m in metrics} | {"images": len(g)}
                     for t, g in df.groupby("task")},
        **timing_summary(df),
        "lpips": float(df["lpips"].mean()) if lpips.available else None,
        "lpips_status": "ok" if lpips.available else lpips.reason,
    }
    summary["gain_psnr"] = summary["overall"]["psnr"] - summary["input"]["psnr"]
    summary.update(settings or {})
    if "test_set" in df:
        summary.update(per_test_set_summary(df))
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def timing_summary(df) -> dict:
    """`seconds_per_image`: the mean wall-clock seconds per image (its share of its batch, the device synchronised)
    after the first batch, whose warm-up (kernel selection, allocator growth) is `warmup_seconds_per_image`; with a
    single batch, that batch's."""
    warm = df["warmup"].astype(bool) if "warmup" in df else np.zeros(len(df), bool)
    steady = df.loc[~warm, "seconds"] if (~warm).any() else df["seconds"]
    return {"seconds_per_image": float(steady.mean()),
            "warmup_seconds_per_image": float(df.loc[warm, "seconds"].mean()) if warm.any() else None,
            "timing": "wall-clock seconds per image (its batch's time / batch size, device synchronised), the first "
                      "batch (warm-up) apart"}
