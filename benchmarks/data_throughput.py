"""Data throughput of one DataLoader worker (one process, one thread): how many training items per second the data
path can deliver, for each zoo5 task and for a folder of 1280×720 PNG pairs (GoPro-sized) cut into 256² patches.

    python benchmarks/data_throughput.py                # writes reports/data-throughput-cpu/
    python benchmarks/data_throughput.py --smoke --out /tmp/dt   # a tiny run (seconds), as the tests run it

Measured per item (ms) and as items/s:
- zoo5, every task: `Zoo5Train` items (a random crop of a training photograph, degraded), after the photographs
  are loaded (a one-off per process, reported separately as `photographs_load_s`; `Zoo5Train.warm()` in the main
  process before workers fork spares them that) and one untimed item;
- the paired folder: the dataset scan (`PairedFolders(...)` in a first process and again in a later one, which
  reuses the scan record), a first pass over every pair with an empty decoded-image cache (each draw decodes two
  PNGs) and further passes served from the cache (new crops of the same pairs).

A worker feeds `items/s` items; a GPU step of batch B needs B items, so B / (items/s × workers) seconds of data time
must hide behind each step. Writes OUT/data_throughput.json and OUT/README.md (command, machine, tables).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # one worker = one thread; set before
    os.environ.setdefault(_var, "1")  # numpy and torch start their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

TARGET_MS = {"paired cached": 10.0, "derain": 30.0, "desnow": 30.0}  # the targets on one CPU thread


def time_calls(fn, n: int) -> dict:
    """Call fn(k) for k in range(n); per-call wall time: mean and median ms, items/s (from the mean)."""
    ms = []
    for k in range(n):
        t = time.perf_counter()
        fn(k)
        ms.append((time.perf_counter() - t) * 1e3)
    mean = statistics.fmean(ms)
    return {"items": n, "ms_per_item": round(mean, 3), "median_ms": round(statistics.median(ms), 3),
            "items_per_s": round(1e3 / mean, 1)}


def bench_zoo5(patch: int, side: int, items: int) -> tuple[float, list[dict]]:
    """(seconds to load zoo5's training photographs in this process, one row per task of `items` items)."""
    from bridgezoo.data import TASKS, Zoo5Train
    from bridgezoo.data.zoo5 import SPLITS, source

    t = time.perf_counter()
    for name in SPLITS["train"]:
        source(name, side)
    load_s = time.perf_counter() - t
    rows = []
    for task in TASKS:
        ds = Zoo5Train(tasks=[task], patch=patch, length=items + 1, seed=0, side=side)
        ds[items]  # untimed: the task's first call pays one-off imports and allocations
        rows.append({"task": task, **time_calls(lambda k: ds[k], items)})
    return load_s, rows


def make_paired_folder(root: Path, pairs: int, width: int, height: int, seed: int = 0) -> Path:
    """`pairs` PNG pairs of width×height under root/{LQ,GT}: zoo5 training photographs resized to the frame with
    mild sensor noise (GT, σ 1/255) and stronger noise (LQ, σ 8/255), so the files compress like photographs."""
    import imageio.v3 as iio
    from skimage.transform import resize

    from bridgezoo.data.zoo5 import SPLITS, source

    rng = np.random.default_rng(seed)
    for k in range(pairs):
        photo = resize(source(SPLITS["train"][k % len(SPLITS["train"])])[0], (height, width), order=1)
        gt = np.clip(photo + rng.normal(0, 1 / 255, photo.shape), 0, 1)
        lq = np.clip(gt + rng.normal(0, 8 / 255, photo.shape), 0, 1)
        for sub, img in (("GT", gt), ("LQ", lq)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            iio.imwrite(root / sub / f"{k:04d}.png", (img * 255 + 0.5).astype(np.uint8))
    return root


def image_cache():
    """This process's decoded-image cache, or None where the data path has none (to measure the code before it)."""
    from bridgezoo.data import io

    return io.image_cache() if hasattr(io, "image_cache") else None


def cache_counts() -> dict | None:
    cache = image_cache()
    return None if cache is None else {"hits": cache.hits, "misses": cache.misses, "mib": round(cache.nbytes / 2**20, 1)}


def bench_paired(root: Path, patch: int, pairs: int, cached_passes: int) -> dict:
    """Scan times and per-item times of the paired folder: first pass (empty cache), then cached passes."""
    from bridgezoo.data import PairedFolders

    t = time.perf_counter()
    PairedFolders(root, patch=patch, seed=0)  # the first process to scan this folder
    scan_first = time.perf_counter() - t
    t = time.perf_counter()
    ds = PairedFolders(root, patch=patch, seed=0)  # a later process (another rank, the next run)
    scan_again = time.perf_counter() - t
    if image_cache() is not None:
        image_cache().clear()
    uncached = {**time_calls(lambda k: ds.draw(k, seed=k), pairs), "cache": cache_counts()}
    cached = {**time_calls(lambda k: ds.draw(k % pairs, seed=pairs + k), pairs * cached_passes), "cache": cache_counts()}
    return {"pairs": pairs, "scan_first_s": round(scan_first, 3), "scan_again_s": round(scan_again, 3),
            "scan_again_decoded": getattr(ds, "scan_decoded", None), "uncached": uncached, "cached": cached}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu or platform.machine(), "logical_cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}


def load_average() -> float | None:
    """The machine's 1-minute load average (other processes competing for the cores make the times noisy)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def targets(result: dict) -> dict:
    """Each target of the issue: measured ms, target ms, met."""
    zoo = {r["task"]: r["ms_per_item"] for r in result["zoo5"]["tasks"]}
    measured = {"paired cached": result["paired"]["cached"]["ms_per_item"], "derain": zoo.get("derain"),
                "desnow": zoo.get("desnow")}
    return {k: {"ms": measured[k], "target_ms": v, "met": measured[k] is not None and measured[k] <= v}
            for k, v in TARGET_MS.items()}


def markdown(result: dict) -> str:
    s, z, p = result["settings"], result["zoo5"], result["paired"]
    lines = [f"# Data throughput per worker ({'smoke run' if s['smoke'] else 'one process, one thread'})", "",
             f"Command: `{result['command']}`  ",
             "Machine: {cpu}, {logical_cpus} logical CPUs, {threads} torch thread(s); Python {python}, torch {torch}, "
             "numpy {numpy}; 1-minute load average {load_average_1min[0]} at the start, {load_average_1min[1]} at the "
             "end (other processes competing for the CPUs slow the timings).".format(**result["machine"]), "",
             f"## zoo5 training items ({s['zoo5_patch']}² patches of the {s['zoo5_side']}-px photographs)", "",
             f"Loading the training photographs: {z['photographs_load_s']:.2f} s, once per process.", "",
             "| task | ms/item (mean) | ms/item (median) | items/s |", "|---|---:|---:|---:|"]
    lines += [f"| {r['task']} | {r['ms_per_item']:.1f} | {r['median_ms']:.1f} | {r['items_per_s']:.0f} |"
              for r in z["tasks"]]
    lines += ["", f"## Paired PNG folder ({s['width']}×{s['height']}, {p['pairs']} pairs, {s['patch']}² patches)", "",
              f"Dataset scan: {p['scan_first_s']:.2f} s in the first process, {p['scan_again_s']:.3f} s in a later one"
              + (f" (which decoded {p['scan_again_decoded']} files)." if p["scan_again_decoded"] is not None else "."),
              "", "| pass | items | ms/item (mean) | ms/item (median) | items/s |", "|---|---:|---:|---:|---:|"]
    for name in ("uncached", "cached"):
        r = p[name]
        lines.append(f"| {name} | {r['items']} | {r['ms_per_item']:.1f} | {r['median_ms']:.1f} | {r['items_per_s']:.0f} |")
    if p["cached"]["cache"]:
        c = p["cached"]["cache"]
        lines += ["", f"Decoded-image cache after both passes: {c['hits']} hits, {c['misses']} misses, {c['mib']} MiB held "
                  "(per process; `BRIDGEZOO_IMAGE_CACHE_MB` sets the budget)."]
    lines += ["", "## Targets (one thread)", "", "| item | ms | target ms | met |", "|---|---:|---:|---|"]
    lines += [f"| {k} | {v['ms']} | {v['target_ms']:g} | {'yes' if v['met'] else 'no'} |" for k, v in result["targets"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("reports/data-throughput-cpu"))
    p.add_argument("--smoke", action="store_true", help="tiny sizes and counts: a check that runs in seconds")
    p.add_argument("--items", type=int, default=40, help="zoo5 items timed per task")
    p.add_argument("--pairs", type=int, default=8, help="image pairs in the generated folder")
    p.add_argument("--cached-passes", type=int, default=4, help="passes over the pairs served from the cache")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.smoke:
        s = dict(zoo5_patch=32, zoo5_side=64, items=2, width=160, height=90, patch=32, pairs=2, cached_passes=1)
    else:
        s = dict(zoo5_patch=256, zoo5_side=512, items=args.items, width=1280, height=720, patch=256,
                 pairs=args.pairs, cached_passes=args.cached_passes)
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BRIDGEZOO_CACHE_DIR"] = str(Path(tmp) / "cache")  # a fresh scan record: the first scan is real
        load_s, rows = bench_zoo5(s["zoo5_patch"], s["zoo5_side"], s["items"])
        folder = make_paired_folder(Path(tmp) / "pairs", s["pairs"], s["width"], s["height"])
        paired = bench_paired(folder, s["patch"], s["pairs"], s["cached_passes"])
    result = {"command": " ".join(["python", *sys.argv]),
              "machine": {**machine(), "load_average_1min": [load_before, load_average()]},
              "settings": {"smoke": args.smoke, **s},
              "zoo5": {"photographs_load_s": round(load_s, 3), "tasks": rows}, "paired": paired}
    result["targets"] = targets(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / "README.md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
