"""`bridgezoo bench GRID.toml`: expand a grid of runs, skip finished ones, resume unfinished ones, record failures.

A grid file (TOML)::

    name = "zoo-cpu"                 # used for the status file
    out = "runs/cpu"                 # run directories go here (relative to the current directory)
    [shared]                         # any `bridgezoo run` option (RunConfig field) shared by every run
    backbone = "unet-T"
    iters = 200
    [axes]                           # lists; the grid is their Cartesian product
    bridge = ["rdbm", "goub"]
    pi = ["default", "one"]          # "default" = the bridge's own π
    seed = [0, 1, 2]
    nfe = [10, 20]                   # evaluation-only axes: one training run, one evaluation per (nfe, sampler)
    sampler = ["ddim", "official"]   # "official": each bridge's own first sampler
    [bridge_opts.rdbm]               # options for one bridge only (optional)
    lam = 0.0001

Training axes are bridge, pi, backbone and seed (plus anything in `shared`); nfe and sampler only change the
evaluation, so a trained model is evaluated once per (nfe, sampler) and never retrained. A run directory's name
carries a hash of its resolved training configuration, so two grids that contain the same run share it.

Every run is a subprocess (`python -m bridgezoo.bench --worker SPEC`): a crash, an out-of-memory kill or a bad
option fails that run only; its error goes to `RUN/error.txt` and to the grid's status file, and the grid goes on.
`bench` runs them in a pool on this machine; `bridgezoo.cluster.bench_submitit` (`--launcher submitit`) runs the
same workers as the jobs of a SLURM job array, configured by an optional `[launcher]` table (see cluster.py).
A run whose `RUN/job.json` names a job still queued or running is left alone by both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import OptionError, suggest

TRAIN_AXES = ("bridge", "pi", "backbone", "seed")
EVAL_AXES = ("nfe", "sampler")
AXES = TRAIN_AXES + EVAL_AXES
TOP_KEYS = ("name", "out", "description", "shared", "axes", "bridge_opts", "launcher")


def _run_fields() -> list[str]:
    from .run import RunConfig

    return [f.name for f in dataclasses.fields(RunConfig)]


@dataclass
class GridRun:
    """One training run of a grid and the evaluations it owes."""

    name: str
    directory: Path
    config: dict  # RunConfig keyword arguments
    evals: list[tuple[int | None, str | None]]

    def eval_dir(self, nfe, sampler) -> Path:
        """Where the evaluation at (nfe, sampler) is written: the run directory for the first, `evals/...` else."""
        if (nfe, sampler) == self.evals[0]:
            return self.directory
        return self.directory / "evals" / f"nfe{nfe if nfe is not None else 'default'}-{sampler or 'official'}"

    def missing_evals(self) -> list[tuple[int | None, str | None]]:
        return [e for e in self.evals if not (self.eval_dir(*e) / "summary.json").exists()]

    @property
    def finished(self) -> bool:
        return not self.missing_evals()


@dataclass
class Grid:
    name: str
    path: Path | None
    out: Path
    runs: list[GridRun]
    description: str = ""
    launcher: dict = dataclasses.field(default_factory=dict)  # the [launcher] table (used by --launcher submitit)

    @property
    def status_file(self) -> Path:
        return self.out / f"bench-{self.name}.json"


def _as_list(value, key: str, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise OptionError(f"{where}: [axes] {key} must be a non-empty list, got {value!r}")
    return value


def _default_pi(bridge: str) -> str:
    """The bridge's own π; "default" for a bridge that cannot be built here (its run will fail with the reason)."""
    from .registry import get_bridge

    try:
        return get_bridge(bridge).pi
    except Exception:  # noqa: BLE001 - recorded as that run's failure, not the grid's
        return "default"


def training_settings(config: dict) -> dict:
    """The entries of a run configuration that decide the trained weights (the options declared with the training
    role in `bridgezoo.run.options`; evaluation and bookkeeping ones excluded), sorted."""
    from .run.options import training_settings as declared

    return declared(config)


def training_key(config: dict) -> str:
    """A short hash of `training_settings(config)`: the last part of a grid run's directory name."""
    return hashlib.sha256(json.dumps(training_settings(config), sort_keys=True, default=str).encode()).hexdigest()[:8]


def _official_sampler(bridge: str) -> str | None:
    from .registry import get_bridge

    try:
        return get_bridge(bridge).samplers[0]
    except Exception:  # noqa: BLE001 - the run will fail with the reason
        return None


def _distinct_evals(evals, bridge: str, resolve_official) -> list:
    """Drop an "official" evaluation that is the same as another one (a bridge whose own sampler is ddim)."""
    official = resolve_official(bridge) if any(s is None for _, s in evals) else None
    out, keys = [], set()
    for nfe, sampler in evals:
        key = (nfe, sampler or official or "official")
        if key not in keys:
            keys.add(key)
            out.append((nfe, sampler))
    return out


def expand(spec: dict, out: Path | None = None, where: str = "grid", resolve_pi=_default_pi,
           resolve_official=_official_sampler) -> list[GridRun]:
    """The runs of a grid description (the parsed TOML): one per combination of the training axes."""
    for key in spec:
        if key not in TOP_KEYS:
            raise OptionError(f"{where}: unknown top-level key {key!r}.{suggest(key, TOP_KEYS)} "
                              f"Allowed: {', '.join(TOP_KEYS)}")
    fields = _run_fields()
    shared = dict(spec.get("shared", {}))
    axes = dict(spec.get("axes", {}))
    for key in shared:
        if key not in fields or key in ("out", "resume"):
            raise OptionError(f"{where}: [shared] {key!r} is not a run option.{suggest(key, fields)}")
        if key in axes:
            raise OptionError(f"{where}: {key!r} is both in [shared] and in [axes]; keep one")
    if shared.get("log_with"):
        from .run.tracking import parse_log_with

        parse_log_with(shared["log_with"], option=f"{where}: [shared] log_with")
    for key in axes:
        if key not in AXES:
            raise OptionError(f"{where}: unknown axis {key!r}.{suggest(key, AXES)} Axes: {', '.join(AXES)}")
    from .run import RunConfig

    defaults = RunConfig()
    values = {k: _as_list(axes[k], k, where) if k in axes else [shared.get(k, getattr(defaults, k))] for k in AXES}
    per_bridge = spec.get("bridge_opts", {})
    out = Path(out if out is not None else spec.get("out", "runs/bench"))
    samplers = [None if v in (None, "official") else v for v in values["sampler"]]  # None: the bridge's own
    evals = list(itertools.product(values["nfe"], samplers))
    runs: dict[str, GridRun] = {}
    for bridge, pi, backbone, seed in itertools.product(*(values[k] for k in TRAIN_AXES)):
        if pi in (None, "default"):
            pi = resolve_pi(bridge)  # still "default" for a bridge that cannot be built here
        config = dict(shared) | {"bridge": bridge, "backbone": backbone, "seed": seed if seed is not None else 0,
                                 "pi": None if pi == "default" else pi, "nfe": evals[0][0], "sampler": evals[0][1]}
        config["bridge_opts"] = dict(shared.get("bridge_opts", {})) | dict(per_bridge.get(bridge, {}))
        config["quiet"] = True
        name = "-".join([bridge, f"pi_{pi}", str(backbone or "auto").replace("/", "_"),
                         f"s{config['seed']}", training_key(config)])
        if name in runs:  # "default" and the bridge's own π written out are the same run
            continue
        config["out"] = str(out / name)
        runs[name] = GridRun(name, out / name, config, _distinct_evals(evals, bridge, resolve_official))
    return list(runs.values())


def load_grid(path: str | Path, out: str | Path | None = None) -> Grid:
    """Read and expand a grid file; errors name the file and the key."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise OptionError(f"{path}: no such grid file")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"{path}: not valid TOML ({exc})") from None
    runs = expand(spec, out, where=str(path))
    launcher = spec.get("launcher", {})
    if not isinstance(launcher, dict):
        raise OptionError(f"{path}: [launcher] must be a table of executor parameters, got {launcher!r}")
    return Grid(spec.get("name", path.stem), path, Path(out or spec.get("out", "runs/bench")), runs,
                spec.get("description", ""), launcher)


def check_grid(grid: Grid) -> dict[str, str]:
    """{run name: what is wrong} for every run whose options fail `run.check_config` (unknown bridge, bad
    bridge_opts, a sampler or NFE the bridge does not have, ...), including every evaluation's (nfe, sampler)."""
    import dataclasses as dc

    from .errors import BridgezooError
    from .run import check_config
    from .run import RunConfig

    problems = {}
    for r in grid.runs:
        try:
            cfg, bridge = check_config(RunConfig(**r.config))
            for nfe, sampler in r.evals[1:]:
                check_config(dc.replace(cfg, nfe=nfe, sampler=sampler))
        except (BridgezooError, TypeError) as exc:
            problems[r.name] = str(exc)
    return problems


# ---------------------------------------------------------------------------------------------- execution
def run_one(spec: dict) -> dict:
    """Train (or resume) one grid run and write its missing evaluations. Runs inside the worker process."""
    from .run import RunConfig, evaluate_run, load_model, make_datasets, run

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
    threads, and what its data workers may take: `run.resolve.default_workers` reads BRIDGEZOO_CPUS)."""
    env = dict(os.environ if base is None else base)
    if slot.get("gpu") is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(slot["gpu"])
    if slot.get("threads"):
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = env["BRIDGEZOO_CPUS"] = str(slot["threads"])
    return env


def _launch(run: GridRun, slot: dict) -> tuple[int, str, float]:
    """Run one grid run in a subprocess on `slot` (its GPU or its CPU threads); (exit code, stderr tail, seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(worker_command(worker_spec(run)), env=slot_env(slot), capture_output=True, text=True)
    return proc.returncode, (proc.stderr or "")[-4000:], time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- bookkeeping
JOB_FILE = "job.json"  # RUN/job.json: the submitit job that owns a run (written by the launcher and by the job)
# SLURM states (sacct) of a job that still owns its run: queued, running, or on its way back to the queue
ACTIVE_SLURM_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                       "SUSPENDED", "RESIZING", "PREEMPTED", "READY", "UNKNOWN"}


def read_job(directory: Path) -> dict:
    """The run's job record (`RUN/job.json`), or {} when there is none or it is unreadable."""
    try:
        return json.loads((Path(directory) / JOB_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_job(directory: Path, record: dict) -> None:
    from .run.evaluate import atomic_write_text

    atomic_write_text(Path(directory) / JOB_FILE, json.dumps(record, indent=2))


def job_in_flight(directory: Path) -> dict | None:
    """The record of a submitit job that still owns the run in `directory` (queued, running or being requeued).

    A SLURM job is asked about with sacct (a state sacct cannot tell counts as still owning the run); a job of
    submitit's local executor lives as long as its controller process, whose pid is its job id, on its host.
    Such a run is never started a second time; delete `RUN/job.json` to release a run whose job is known gone.
    """
    record = read_job(directory)
    if record.get("state") not in ("submitted", "running", "requeued"):
        return None
    if record.get("cluster") == "slurm":
        try:
            from .cluster import slurm_state

            state = slurm_state(record)
        except ImportError:  # submitit is not installed here: it cannot be checked, so it is left alone
            return record
        return record if state.split()[0].upper() in ACTIVE_SLURM_STATES else None
    if record.get("cluster") == "local" and record.get("host") == socket.gethostname():
        try:
            os.kill(int(record["job_id"]), 0)
        except (ProcessLookupError, ValueError, KeyError):
            return None
        except PermissionError:
            pass
    return record


def done_record(run: GridRun, **extra) -> dict:
    summary = json.loads((run.directory / "summary.json").read_text())
    return {"name": run.name, "directory": str(run.directory), "status": "done",
            "psnr": summary["overall"]["psnr"], "input_psnr": summary["input"]["psnr"]} | extra


def failed_record(run: GridRun, error_text: str, exit_code, write_error: bool = True, **extra) -> dict:
    """A failure: its last non-empty line is the error; the full text goes to `RUN/error.txt`."""
    lines = [ln for ln in (error_text or "").strip().splitlines() if ln.strip()]
    rec = {"name": run.name, "directory": str(run.directory), "status": "failed", "exit_code": exit_code,
           "error": lines[-1].strip() if lines else f"exit code {exit_code}, no message"} | extra
    if write_error:
        run.directory.mkdir(parents=True, exist_ok=True)
        (run.directory / "error.txt").write_text(error_text or "")
    return rec


def plan(grid: Grid) -> tuple[dict, list[GridRun]]:
    """({name: record} of the runs not to start: finished, or owned by a job still in flight; the runs to start)."""
    records, todo = {}, []
    for r in grid.runs:
        if r.finished:
            records[r.name] = {"name": r.name, "status": "done", "directory": str(r.directory), "skipped": True}
        elif job := job_in_flight(r.directory):
            records[r.name] = {"name": r.name, "status": "running", "directory": str(r.directory),
                               "job_id": job.get("job_id"), "stdout": job.get("stdout"),
                               "note": "owned by a submitit job still queued or running; not started again"}
        else:
            todo.append(r)
    return records, todo


def _write_status(grid: Grid, records: dict, command: str) -> None:
    from .run.evaluate import atomic_write_text

    payload = {"grid": grid.name, "file": str(grid.path) if grid.path else None, "command": command,
               "runs": [records[r.name] for r in grid.runs if r.name in records]}
    atomic_write_text(grid.status_file, json.dumps(payload, indent=2))


def bench(grid: Grid, jobs: int = 1, gpus: list[int] | None = None, threads: int | None = None,
          quiet: bool = False, launch=_launch, command: str = "") -> dict:
    """Run every unfinished run of `grid`; returns {run name: record}. A failed run does not stop the grid.

    `gpus`: one run at a time per listed GPU. Otherwise `jobs` runs at a time, each limited to `threads` CPU
    threads (default: the cores divided by `jobs`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .progress import rich_bar

    bar = rich_bar(quiet)  # else (a pipe, a log) one plain line per finished run
    grid.out.mkdir(parents=True, exist_ok=True)
    if gpus:  # a GPU listed k times runs k runs at once; each run gets its share of the cores
        per = threads or max(1, (os.cpu_count() or 1) // len(gpus))
        slots = [{"gpu": g, "threads": per} for g in gpus]
    else:
        jobs = max(1, jobs)
        per = threads or max(1, (os.cpu_count() or 1) // jobs)
        slots = [{"threads": per} for _ in range(jobs)]
    records, todo = plan(grid)
    _write_status(grid, records, command)
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
                _write_status(grid, records, command)
                progress.update(task, advance=1, info=info)
                if not bar and not quiet:
                    ended = sum(rec["status"] in ("done", "failed") for rec in records.values())
                    print(f"{ended} of {len(grid.runs)}: {info.removeprefix('[red]')}", flush=True)
            return rec

        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            list(pool.map(work, todo))
    return records


def _worker_main(spec_json: str) -> int:
    import torch

    from .errors import BridgezooError

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


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[2]))
    print("usage: python -m bridgezoo.bench --worker SPEC_JSON (internal; use `bridgezoo bench GRID.toml`)",
          file=sys.stderr)
    sys.exit(2)
