"""The local pool: each grid run in a worker subprocess (`python -m bridgezoo.bench --worker SPEC`) on a slot of
this machine (one GPU, or a share of the CPU cores); a failed run is recorded and the grid goes on."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .grid import Grid, GridRun
from .jobs import done_record, failed_record, plan, write_status


def run_one(spec: dict) -> dict:
    """Train (or resume) one grid run and write its missing evaluations. Runs inside the worker process."""
    from ..run import RunConfig, evaluate_run, load_model, make_datasets, run

    grid_run = GridRun(spec["name"], Path(spec["config"]["out"]), spec["config"], [tuple(e) for e in spec["evals"]])
    missing = grid_run.missing_evals()
    summaries = {}
    if grid_run.evals[0] in missing:  # the run's own evaluation: train (or resume) first
        directory = grid_run.directory
        summaries[grid_run.evals[0]] = run(RunConfig(**grid_run.config), resume=(directory / "config.json").exists())
    extra = [e for e in missing if e != grid_run.evals[0]]
    if extra and int(os.environ.get("RANK", "0")) == 0:  # under `accelerate launch`: the first process evaluates
        bridge, model, saved = load_model(grid_run.directory / "model.safetensors", device="auto")  # the slot's GPU
        _, eval_set = make_datasets(saved)
        for nfe, sampler in extra:  # None is the bridge's own here ("official", its default steps); in
            # evaluate_run None is the run's own (its --sampler, ddim by default), so resolve it first
            summaries[(nfe, sampler)] = evaluate_run(saved, bridge, model, eval_set, grid_run.eval_dir(nfe, sampler),
                                                     nfe=bridge.default_nfe if nfe is None else nfe,
                                                     sampler=bridge.samplers[0] if sampler is None else sampler,
                                                     quiet=True,
                                                     device=next(model.parameters()).device)
    return {f"nfe{k[0]}-{k[1]}": v.get("overall", {}).get("psnr") for k, v in summaries.items() if v}


def worker_spec(run: GridRun) -> dict:
    """What a worker process needs to train and evaluate `run` (JSON-serializable)."""
    return {"name": run.name, "config": run.config, "evals": run.evals}


def worker_command(spec: dict, processes: int = 1) -> list[str]:
    """The worker's command line; several processes (GPUs of one node) go through `accelerate launch`."""
    payload = json.dumps(spec)
    if processes > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                "-m", "bridgezoo.bench", "--worker", payload]
    return [sys.executable, "-m", "bridgezoo.bench", "--worker", payload]


def slot_env(slot: dict, base: dict | None = None) -> dict:
    """The environment of a run on `slot`: only its GPU visible, and its share of the CPU cores (its compute
    threads, and what its data workers may take: `run.options.default_workers` reads BRIDGEZOO_CPUS)."""
    env = dict(os.environ if base is None else base)
    if slot.get("gpu") is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(slot["gpu"])
    if slot.get("threads"):
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = env["BRIDGEZOO_CPUS"] = str(slot["threads"])
    return env


def launch_worker(run: GridRun, slot: dict, timeout: float | None = None) -> tuple[int, str, float]:
    """Run one grid run in a subprocess on `slot` (its GPU or its CPU threads); (exit code, stderr tail, seconds).
    A run still going after `timeout` seconds is stopped: exit code 124, its stderr tail and why."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(worker_command(worker_spec(run)), env=slot_env(slot), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return 124, err[-3000:] + f"\nstopped after {timeout:.1f} s", time.perf_counter() - start
    return proc.returncode, (proc.stderr or "")[-4000:], time.perf_counter() - start


def bench(grid: Grid, jobs: int = 1, gpus: list[int] | None = None, threads: int | None = None,
          quiet: bool = False, launch=launch_worker, command: str = "") -> dict:
    """Run every unfinished run of `grid`; returns {run name: record}. A failed run does not stop the grid.

    `gpus`: one run at a time per listed GPU. Otherwise `jobs` runs at a time, each limited to `threads` CPU
    threads (default: the cores divided by `jobs`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..progress import rich_bar

    bar = rich_bar(quiet)  # else (a pipe, a log) one plain line per finished run
    grid.out.mkdir(parents=True, exist_ok=True)
    from ..run.options import usable_cores

    if gpus:  # a GPU listed k times runs k runs at once; each run gets its share of the cores
        per = threads or max(1, usable_cores() // len(gpus))
        slots = [{"gpu": g, "threads": per} for g in gpus]
    else:
        jobs = max(1, jobs)
        per = threads or max(1, usable_cores() // jobs)
        slots = [{"threads": per} for _ in range(jobs)]
    records, todo = plan(grid)
    write_status(grid, records, command)
    free = queue.SimpleQueue()  # the slots not in use
    for slot in slots:
        free.put(slot)
    lock = threading.Lock()  # guards records, the status file and the progress bar

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=not bar) as progress:
        task = progress.add_task(f"grid {grid.name}", total=len(grid.runs), completed=len(grid.runs) - len(todo),
                                 info=f"{len(grid.runs) - len(todo)} already done")

        def work(r: GridRun):
            slot = free.get()
            try:
                resumed = (r.directory / "config.json").exists()
                code, err, seconds = launch(r, slot)
            finally:
                free.put(slot)
            timing = {"seconds": round(seconds, 1), "resumed": resumed}
            if code == 0 and r.finished:
                rec = done_record(r, **timing)
                info = f"{r.name}: {rec['psnr']:.2f} dB"
            else:
                rec = failed_record(r, err, code, **timing)
                info = f"[red]{r.name} failed: {rec['error'][:80]}"
            with lock:
                records[r.name] = rec
                write_status(grid, records, command)
                progress.update(task, advance=1, info=info)
                if not bar and not quiet:
                    ended = sum(rec["status"] in ("done", "failed") for rec in records.values())
                    print(f"{ended} of {len(grid.runs)}: {info.removeprefix('[red]')}", flush=True)
            return rec

        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            list(pool.map(work, todo))
    return records


def worker_main(spec_json: str) -> int:
    import torch

    from ..errors import BridgezooError

    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    try:
        result = run_one(json.loads(spec_json))
    except BridgezooError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0
