"""The GPU zoo in one call of a lent device machine: the fifteen bridges, the steps sweep and the π ablation,
trained and evaluated on one GPU within a time budget, brought back as two archives.

    # on the device machine, in the repository root (pypng travels as a wheel in .whl/, carried; README, "On a GPU"):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    pip install -q --no-deps --no-build-isolation -e .
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_zoo.py --out $OUT --work /tmp/zoo --budget 420 2>&1 | tee $OUT/log.txt
    # here, on CPU at tiny sizes in about a minute (the test suite runs it):
    python benchmarks/gpu_zoo.py --smoke --out /tmp/zoo-smoke

Within `--budget` seconds (default 420, counted from the start of this script):
  1. probe: `--slots` runs of rdbm at the grids' settings at once on the one GPU (as `bridgezoo bench --gpus
     0,0,...` runs them, each on its share of the CPU cores with its data worker), `--probe-iters` iterations each:
     the training it/s of one run while all train, a run's start-up seconds and an evaluation's seconds (fixed,
     and per step: each probe run is evaluated at 10 and at 1 DDIM steps);
  2. fit: the iterations per run that fit every run of GRIDS (a run two grids share counted once, udbm's two stages
     twice, each evaluation at its measured cost for its steps) into what is left, rounded down to hundreds (`--iters` fixes it);
     below `--min-iters` the x0 arm, then the steps sweep, then the π ablation are left out;
  3. the grids, written with those iterations to WORK/grids/, their runs in one pool of `--slots`, longest first; a
     run that would end after the deadline is not started (recorded as failed: not started);
  4. OUT/h200-results.tar.gz: each run's config.json, train.jsonl, summary.json, eval.csv, error.txt and its
     evaluations' (no weights, no state), the grids as run, the grids' status files and OUT/gpu_zoo.json (machine,
     probe, fit, timings, the GPU's utilization every 2 s); OUT/h200-samples.tar: the runs' own sample PNGs.
Then, here in the repository root: `tar xzf h200-results.tar.gz && tar xf h200-samples.tar` (runs/h200/...), copy
grids/*.toml over benchmarks/grids/ (their `iters` is what ran) and render each grid's report (its header).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import torch

from bridgezoo.bench import (Grid, GridRun, bench, launch_worker, load_grid, slot_env, worker_command, worker_spec,
                             write_status)
from bridgezoo.run.options import usable_cores

# benchmarks/grids/NAME.toml, run in one pool; in order of priority: where the fit would give fewer than --min-iters,
# the last ones are left out (the x0 arm first, the zoo never)
GRIDS = ("zoo_h200", "pi_ablation_h200", "samplers_h200", "pi_ablation_x0_h200")
GRID_DIR = Path(__file__).resolve().parent / "grids"
PROBE_BRIDGE = "rdbm"
SAFETY = 0.85  # of the slots' time left, what the fit plans to fill (the pool's tail, variation between bridges)
PACK_SECONDS = 15  # kept for packing the archives
SAMPLES_LIMIT = 15 * 2**20  # bytes of sample PNGs brought back (the device returns files of at most 16 MiB)
RESULT_FILES = ("config.json", "train.jsonl", "summary.json", "eval.csv", "error.txt", "data_info.json")
SMOKE = {  # --smoke: the same path on CPU at tiny sizes
    "shared": {"backbone": "unet-test", "batch": 2, "patch": 16, "eval_max_side": 32, "warmup": 1,
               "tasks": ["lowlight", "derain"]},
    "axes": {"zoo_h200": {"bridge": ["rdbm", "udbm"], "nfe": [10]}, "samplers_h200": {"bridge": ["rdbm"], "nfe": [10, 1]},
             "pi_ablation_h200": {"bridge": ["rdbm"]},
             "pi_ablation_x0_h200": {"bridge": ["rdbm"], "pi": ["one"]}},
    "slots": 2, "threads": 1, "probe_iters": 4, "iters": 4,
}


# ------------------------------------------------------------------------------------------------ grid files
def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)  # strings (TOML basic strings) and numbers


def set_keys(text: str, table: str, values: dict) -> str:
    """`text` (a grid file) with `key = value` of `[table]` replaced, or appended to the table, for each of
    `values`; comments and other lines kept."""
    lines = text.splitlines()
    start = lines.index(f"[{table}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    for key, value in values.items():
        line = f"{key} = {toml_value(value)}"
        at = next((i for i in range(start + 1, end) if re.match(rf"{re.escape(key)}\s*=", lines[i])), None)
        if at is None:
            lines.insert(end, line)
            end += 1
        else:
            lines[at] = line
    return "\n".join(lines) + "\n"


def write_grids(grid_dir: Path, runs_dir: Path, iters: int, smoke: bool, names=GRIDS) -> list[Grid]:
    """The grids `names` written to `grid_dir` with `iters` (and --smoke's sizes), loaded with their runs in
    `runs_dir`."""
    grid_dir.mkdir(parents=True, exist_ok=True)
    grids = []
    for name in names:
        text = set_keys((GRID_DIR / f"{name}.toml").read_text(), "shared", {"iters": iters})
        if smoke:
            text = set_keys(set_keys(text, "shared", SMOKE["shared"]), "axes", SMOKE["axes"][name])
        path = grid_dir / f"{name}.toml"
        path.write_text(text)
        grids.append(load_grid(path, out=runs_dir))
    return grids


def merged(grids: list[Grid]) -> list[GridRun]:
    """Every distinct run of `grids` once, owing the evaluations of every grid that has it (the first one, the run's
    own, is the same in all: 10 steps of its sampler)."""
    runs: dict[str, GridRun] = {}
    for grid in grids:
        for r in grid.runs:
            if r.name not in runs:
                runs[r.name] = GridRun(r.name, r.directory, dict(r.config), list(r.evals))
            else:
                assert runs[r.name].evals[0] == r.evals[0], f"{r.name}: two grids evaluate it first differently"
                runs[r.name].evals += [e for e in r.evals if e not in runs[r.name].evals]
    return list(runs.values())


def stages(run: GridRun) -> int:
    """Training passes of a run: udbm trains its stage-1 uncertainty network first, for as many iterations."""
    return 2 if run.config["bridge"] == "udbm" else 1


# ------------------------------------------------------------------------------------------------ probe and fit
def evaluation_seconds(summary: dict) -> float:
    """The wall-clock seconds of one evaluation, from its summary.json (images × steady seconds per image, plus the
    first batch's warm-up)."""
    return summary["images"] * summary["seconds_per_image"] + summary["eval_batch"] * max(
        0.0, (summary.get("warmup_seconds_per_image") or 0) - summary["seconds_per_image"])


def probe(template: GridRun, slots: list[dict], iters: int, work: Path, timeout: float) -> dict:
    """`len(slots)` copies of `template` (seeds 0, 1, ...) trained for `iters` at once, each on its slot, each then
    evaluated with DDIM at 10 steps and at 1: the median training it/s of a run while all train, the mean start-up
    (process start to first step, loading the model again, writing) and an evaluation's cost, its fixed seconds and
    its seconds per step. RuntimeError where one fails or they take over `timeout` seconds."""
    procs = []
    for i, slot in enumerate(slots):
        cfg = dict(template.config) | {"iters": iters, "seed": i, "out": str(work / f"probe-{i}")}
        spec = worker_spec(GridRun(f"probe-{i}", work / f"probe-{i}", cfg, [template.evals[0], (1, "ddim")]))
        procs.append((time.perf_counter(), subprocess.Popen(worker_command(spec), env=slot_env(slot),
                                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                            text=True)))
    rows = []
    for i, (start, proc) in enumerate(procs):
        try:
            err = proc.communicate(timeout=max(1.0, timeout - (time.perf_counter() - start)))[1]
        except subprocess.TimeoutExpired:
            for _, other in procs:
                other.kill()
            raise RuntimeError(f"probe run {i} did not finish in {timeout:.0f} s (stopped)") from None
        wall = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(f"probe run {i} failed (exit {proc.returncode}):\n{err[-3000:]}")
        directory = work / f"probe-{i}"
        log = [json.loads(ln) for ln in (directory / "train.jsonl").read_text().splitlines() if ln.strip()]
        rates = sorted(rec["it_per_s"] for rec in log[2:] or log if rec.get("it_per_s"))
        ten = evaluation_seconds(json.loads((directory / "summary.json").read_text()))
        one = evaluation_seconds(json.loads((directory / "evals" / "nfe1-ddim" / "summary.json").read_text()))
        step = max(0.0, (ten - one) / 9)
        rate = rates[len(rates) // 2]
        rows.append({"wall_s": wall, "it_per_s": rate, "eval_s": ten, "eval_fixed_s": max(0.0, one - step),
                     "eval_step_s": step, "startup_s": max(0.0, wall - iters / rate - ten - one)})
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("startup_s", "eval_s", "eval_fixed_s", "eval_step_s")}
    return {"runs": len(rows), "iters": iters, "it_per_s": sorted(r["it_per_s"] for r in rows)[len(rows) // 2],
            **mean, "per_run": rows}


def eval_cost(evaluation: tuple, measured: dict) -> float:
    """Estimated seconds of one evaluation (steps, sampler): its fixed seconds and its steps at the measured DDIM
    cost per step, doubled for a bridge's official sampler (a Heun step is two network evaluations)."""
    steps, sampler = evaluation
    return measured["eval_fixed_s"] + measured["eval_step_s"] * steps * (2 if sampler is None else 1)


def fit_iters(runs: list[GridRun], measured: dict, slots: int, seconds: float) -> dict:
    """The iterations per run (hundreds, at least 100) whose estimated pool time fits `seconds` on `slots`."""
    evals = sum(len(r.evals) for r in runs)
    fixed = sum(run_seconds(r, measured, iters=0) for r in runs)  # start-up and evaluations
    passes = sum(stages(r) for r in runs)
    train_s = slots * seconds * SAFETY - fixed
    iters = max(100, int(train_s * measured["it_per_s"] / passes) // 100 * 100)
    return {"iters": iters, "runs": len(runs), "evaluations": evals, "training_passes": passes,
            "seconds_left": round(seconds, 1), "fixed_s": round(fixed, 1), "train_s": round(train_s, 1)}


def plan_grids(grid_dir: Path, runs_dir: Path, measured: dict, slots: int, seconds: float, smoke: bool,
               min_iters: int) -> tuple[tuple[str, ...], dict]:
    """(the grids to run, their fit): all of GRIDS, or where that fit gives fewer than `min_iters`, the fewest left
    out from the end of GRIDS for which it does not (the zoo alone at least)."""
    names = GRIDS
    while True:
        fit = fit_iters(merged(write_grids(grid_dir, runs_dir, 100, smoke, names)), measured, slots, seconds)
        if fit["iters"] >= min_iters or len(names) == 1:
            return names, fit
        names = names[:-1]


def run_seconds(run: GridRun, measured: dict, iters: int) -> float:
    """Estimated seconds of one run: start-up, training passes, evaluations."""
    return (measured["startup_s"] + stages(run) * iters / measured["it_per_s"]
            + sum(eval_cost(e, measured) for e in run.evals))


# ------------------------------------------------------------------------------------------------ the pool
def launcher(deadline: float, estimate):
    """A `bench` launch that starts a run only if its estimated end is before `deadline`, and stops it there."""

    def launch(run: GridRun, slot: dict) -> tuple[int, str, float]:
        if time.perf_counter() + estimate(run) > deadline:
            return 3, "not started: it would end after the call's budget", 0.0
        return launch_worker(run, slot, timeout=max(1.0, deadline - time.perf_counter()))

    return launch


class Utilization(threading.Thread):
    """The GPU's utilization (%) and memory in use (GiB), sampled every `every` seconds (NVML through torch)."""

    def __init__(self, every: float = 2.0):
        super().__init__(daemon=True)
        self.every, self.samples, self.stopped = every, [], threading.Event()

    def run(self):
        start = time.perf_counter()
        while not self.stopped.wait(self.every):
            try:
                free, total = torch.cuda.mem_get_info()
                self.samples.append([round(time.perf_counter() - start, 1), torch.cuda.utilization(),
                                     round((total - free) / 2**30, 1)])
            except Exception:  # noqa: BLE001 - no NVML: no samples
                return


# ------------------------------------------------------------------------------------------------ archives
def pack(runs: list[GridRun], out: Path, root: Path, extra: list[Path]) -> dict:
    """The two archives in `out` (see the module docstring); paths inside are relative to `root` (runs/h200/...,
    grids/...), those of `extra` outside it are their names."""
    runs_dir = runs[0].directory.parent
    sizes = {}
    with tarfile.open(out / "h200-results.tar.gz", "w:gz") as tar:
        for path in extra:
            tar.add(path, arcname=path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name)
        for r in runs:
            for directory in [r.directory, *sorted((r.directory / "evals").glob("*"))]:
                for name in RESULT_FILES:
                    if (directory / name).is_file():
                        tar.add(directory / name, arcname=(directory / name).relative_to(root).as_posix())
        for status in sorted(runs_dir.glob("bench-*.json")):
            tar.add(status, arcname=status.relative_to(root).as_posix())
    pngs = sorted(p for r in runs for p in (r.directory / "samples").glob("*.png"))
    total, kept = 0, 0
    with tarfile.open(out / "h200-samples.tar", "w") as tar:
        for png in pngs:
            size = png.stat().st_size + 1024
            if total + size > SAMPLES_LIMIT:
                break
            tar.add(png, arcname=png.relative_to(root).as_posix())
            total, kept = total + size, kept + 1
    for name in ("h200-results.tar.gz", "h200-samples.tar"):
        sizes[name] = (out / name).stat().st_size
    return {"bytes": sizes, "sample_pngs": kept, "sample_pngs_left_out": len(pngs) - kept}


# ------------------------------------------------------------------------------------------------ main
def environment() -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cpus": usable_cores(),
           "host": platform.node()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env |= {"gpu": p.name, "gpu_memory_gib": round(p.total_memory / 2**30, 1), "sms": p.multi_processor_count,
                "cuda": torch.version.cuda}
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="where the archives and gpu_zoo.json go ($OUT)")
    p.add_argument("--budget", type=float, default=420, help="seconds for the whole script (default 420)")
    p.add_argument("--slots", type=int, default=8, help="runs at once on the GPU (default 8)")
    p.add_argument("--probe-iters", type=int, default=300, help="iterations of each probe run (default 300)")
    p.add_argument("--iters", type=int, default=None, help="iterations per run, instead of fitting them")
    p.add_argument("--min-iters", type=int, default=1000, help="where the fit gives fewer, grids are left out, "
                   "the last of GRIDS first, until it does not or only the zoo is left (default 1000)")
    p.add_argument("--work", type=Path, default=None, help="the grids as run go to WORK/grids, the run directories "
                   "to WORK/runs/h200 (default: OUT-work beside OUT); only the archives go to OUT")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and two bridges, on CPU (the test suite)")
    args = p.parse_args(argv)
    deadline = time.perf_counter() + args.budget
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = args.work or out.parent / f"{out.name}-work"
    runs_dir = work / "runs" / "h200"
    if runs_dir.exists() and any(runs_dir.iterdir()):
        print(f"gpu_zoo: {runs_dir} is not empty: give a fresh --work", file=sys.stderr)
        return 2
    cores = usable_cores()
    slots_n = SMOKE["slots"] if args.smoke else args.slots
    threads = SMOKE["threads"] if args.smoke else max(1, cores // slots_n)
    gpu = None if args.smoke or not torch.cuda.is_available() else 0
    slots = [{"gpu": gpu, "threads": threads} for _ in range(slots_n)]
    report = {"command": " ".join([os.path.basename(sys.argv[0]), *(argv if argv is not None else sys.argv[1:])]),
              "environment": environment(), "slots": slots_n, "threads_per_run": threads, "budget_s": args.budget}

    def save():
        (out / "gpu_zoo.json").write_text(json.dumps(report, indent=2))

    print(json.dumps(report["environment"]), flush=True)
    iters = SMOKE["iters"] if args.smoke else args.iters
    grid_dir = work / "grids"
    runs = merged(write_grids(grid_dir, runs_dir, iters or 100, args.smoke))
    template = next(r for r in runs if r.config["bridge"] == PROBE_BRIDGE)
    t0 = time.perf_counter()
    save()
    try:
        measured = probe(template, slots, SMOKE["probe_iters"] if args.smoke else args.probe_iters, work / "probe",
                         timeout=args.budget / 3)
    except RuntimeError as exc:  # a run of the grids' settings fails here: say why, nothing else to do
        report["error"] = str(exc)
        save()
        print(f"gpu_zoo: {exc}", file=sys.stderr)
        return 1
    report["probe"] = measured | {"wall_s": round(time.perf_counter() - t0, 1)}
    print(f"probe: {measured['it_per_s']:.1f} it/s per run with {slots_n} at once, start-up "
          f"{measured['startup_s']:.1f} s, evaluation {measured['eval_fixed_s']:.1f} s + "
          f"{measured['eval_step_s']:.2f} s per step", flush=True)
    left = deadline - time.perf_counter() - PACK_SECONDS
    names, fit = plan_grids(grid_dir, runs_dir, measured, slots_n, left, args.smoke,
                            min_iters=0 if iters else args.min_iters)
    report["fit"] = fit | {"chosen": iters or fit["iters"], "by": "--iters" if iters else "fit",
                           "grids": list(names), "left_out": [n for n in GRIDS if n not in names]}
    iters = iters or fit["iters"]
    for stale in set(GRIDS) - set(names):
        (grid_dir / f"{stale}.toml").unlink(missing_ok=True)
    grids = write_grids(grid_dir, runs_dir, iters, args.smoke, names)
    runs = sorted(merged(grids), key=lambda r: -run_seconds(r, measured, iters))
    print(f"fit: {iters} iterations per run, {len(runs)} runs, {fit['evaluations']} evaluations, "
          f"{left:.0f} s left; grids {', '.join(names)}" + (f" (left out: {', '.join(report['fit']['left_out'])})"
                                                             if report["fit"]["left_out"] else ""), flush=True)
    save()

    monitor = Utilization()
    if gpu is not None:
        monitor.start()
    pool = Grid("h200", None, runs_dir, runs)
    t0 = time.perf_counter()
    records = bench(pool, gpus=[gpu] * slots_n if gpu is not None else None, jobs=slots_n,
                    threads=threads, quiet=False,
                    launch=launcher(deadline - PACK_SECONDS, lambda r: run_seconds(r, measured, iters)),
                    command=report["command"])
    monitor.stopped.set()
    for grid in grids:  # each grid's own status file, as `bridgezoo bench` writes it
        write_status(grid, {r.name: records[r.name] for r in grid.runs if r.name in records}, report["command"])
    done = [rec for rec in records.values() if rec["status"] == "done"]
    report["pool"] = {"wall_s": round(time.perf_counter() - t0, 1), "done": len(done), "runs": len(runs),
                      "failed": {n: rec.get("error") for n, rec in records.items() if rec["status"] != "done"},
                      "utilization": monitor.samples}
    if monitor.samples:
        busy = [s[1] for s in monitor.samples]
        report["pool"]["mean_utilization_pct"] = round(sum(busy) / len(busy), 1)
    print(f"pool: {len(done)} of {len(runs)} runs done in {report['pool']['wall_s']:.0f} s", flush=True)
    for rec in sorted(done, key=lambda rec: -rec["psnr"]):
        print(f"  {rec['name']}: {rec['psnr']:.2f} dB (input {rec['input_psnr']:.2f})", flush=True)
    save()
    report["archives"] = pack(runs, out, work, [out / "gpu_zoo.json", *sorted(grid_dir.glob("*.toml"))])
    report["total_s"] = round(args.budget - (deadline - time.perf_counter()), 1)
    save()
    print(f"archives: {report['archives']}; {report['total_s']:.0f} s in all", flush=True)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
