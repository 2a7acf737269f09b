"""`bridgezoo bench GRID.toml --launcher submitit`: each run of a grid is one job of a SLURM job array.

Needs `pip install "bridgezoo[cluster]"` (submitit). The grid file's `[launcher]` table (or `--launcher-opt
KEY=VALUE`) holds the executor's parameters::

    [launcher]
    cluster = "slurm"             # slurm, local (submitit's local executor: separate processes on this machine),
                                  # or auto (default): slurm where `srun` exists, local elsewhere
    partition = "gpu"
    gpus_per_node = 1             # more than 1: the run trains on all of them through `accelerate launch`
    cpus_per_task = 8             # shared by the job's processes: OMP_NUM_THREADS = cpus_per_task / gpus_per_node
    mem_gb = 64
    timeout_min = 1440            # time limit of one job (default 1440); a run that hits it is requeued and resumes
    array_parallelism = 16        # jobs of the array running at once (local: runs at once, default 1)
    max_num_timeout = 3           # how many times one run may hit the time limit and be requeued (default 3)
    folder = "runs/zoo/submitit/%j"   # job scripts, pickles and logs, on a filesystem the nodes share
                                      # (default: OUT/submitit/%j)
    slurm_account = "mylab"       # any other sbatch parameter submitit knows, prefixed slurm_
    slurm_setup = ["module load cuda/12.4"]

Bookkeeping is the local pool's: finished runs are skipped, unfinished ones resume from their saved state, a
failed run is recorded in the grid's status file (with its job id and the paths of its logs) and in `RUN/error.txt`,
and the grid goes on. `RUN/job.json` names the job that owns a run; while that job is queued or running, a second
`bridgezoo bench` leaves the run alone instead of starting it twice.

Time limits and pre-emption follow submitit's checkpointing protocol: SLURM signals the job (USR2, `signal_delay_s`
before the limit), submitit calls `GridJob.checkpoint`, which stops the training process the way Ctrl-C does (it
saves its state at the end of the current step) and returns the same job to be requeued; the requeued job trains
with `resume`, exactly as `bridgezoo run --resume` continues a run.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from ..errors import BridgezooError, OptionError, suggest
from .grid import Grid, GridRun
from .jobs import done_record, failed_record, plan, read_job, write_job, write_status
from .pool import worker_command, worker_spec

# [launcher] keys of our own: (type, meaning). Anything else must be an sbatch parameter prefixed `slurm_`.
LAUNCHER_KEYS = {
    "cluster": (str, "slurm, local or auto"),
    "folder": (str, "submitit's folder for scripts, pickles and logs (shared by the nodes)"),
    "partition": (str, "SLURM partition"),
    "gpus_per_node": (int, "GPUs of one job"),
    "cpus_per_task": (int, "CPU cores of one job, shared by its processes (their OMP_NUM_THREADS and data workers)"),
    "mem_gb": ((int, float), "memory of one job, GB"),
    "timeout_min": (int, "time limit of one job, minutes"),
    "array_parallelism": (int, "jobs of the array running at once"),
    "max_num_timeout": (int, "requeues allowed after hitting the time limit"),
}
DEFAULT_TIMEOUT_MIN = 1440
STOP_TIMEOUT_S = 60  # how long a checkpoint waits for the training process to save its state and exit


class RunFailed(BridgezooError):
    """The training process of a grid job exited with an error (its last line is the message)."""


@dataclass
class LauncherSettings:
    """The validated `[launcher]` table: the submitit cluster, its folder and AutoExecutor parameters."""

    cluster: str
    folder: Path
    parameters: dict = field(default_factory=dict)  # AutoExecutor.update_parameters keyword arguments
    max_num_timeout: int = 3
    parallelism: int | None = None
    threads: int | None = None
    processes: int = 1


def launcher_settings(table: dict, grid: Grid, where: str = "[launcher]") -> LauncherSettings:
    """Check a `[launcher]` table (merged with `--launcher-opt`s) before anything is written; errors name the key."""
    slurm_keys = sorted(submitit.SlurmExecutor._valid_parameters())
    for key, value in table.items():
        if key in LAUNCHER_KEYS:
            kind, meaning = LAUNCHER_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise OptionError(f"{where} {key} = {value!r}: expected {getattr(kind, '__name__', 'a number')} "
                                  f"({meaning})")
            if kind is int and value < 1:
                raise OptionError(f"{where} {key} = {value}: must be at least 1")
        elif key.startswith("slurm_"):
            name = key[len("slurm_"):]
            if name not in slurm_keys:
                raise OptionError(f"{where} {key}: not an sbatch parameter submitit knows.{suggest(name, slurm_keys)} "
                                  f"Known: {', '.join(slurm_keys)}")
            if name in ("partition", "array_parallelism") and name in table:
                raise OptionError(f"{where}: both {name!r} and {key!r}; keep one")
        else:
            raise OptionError(f"{where}: unknown key {key!r}.{suggest(key, LAUNCHER_KEYS)} Keys: "
                              f"{', '.join(LAUNCHER_KEYS)}, and any sbatch parameter as slurm_NAME")
    cluster = table.get("cluster", "auto")
    if cluster not in ("auto", "slurm", "local"):
        raise OptionError(f"{where} cluster = {cluster!r}: choose slurm, local or auto")
    if cluster == "auto":
        cluster = "slurm" if shutil.which("srun") else "local"
    parameters = {"name": f"bridgezoo-{grid.name}", "timeout_min": table.get("timeout_min", DEFAULT_TIMEOUT_MIN)}
    parameters |= {k: table[k] for k in ("gpus_per_node", "cpus_per_task", "mem_gb") if k in table}
    parameters |= {f"slurm_{k}": table[k] for k in ("partition", "array_parallelism") if k in table}
    parameters |= {k: v for k, v in table.items() if k.startswith("slurm_")}
    folder = Path(table.get("folder", str(grid.out / "submitit" / "%j")))
    parallelism = table.get("array_parallelism", table.get("slurm_array_parallelism"))
    processes = max(1, table.get("gpus_per_node", 1))
    threads = max(1, table["cpus_per_task"] // processes) if table.get("cpus_per_task") else None  # per process
    return LauncherSettings(cluster, folder, parameters, table.get("max_num_timeout", 3), parallelism, threads,
                            processes)


def make_executor(settings: LauncherSettings) -> submitit.AutoExecutor:
    """submitit's executor for `settings` (SLURM's needs `srun` on PATH, as submitit checks)."""
    executor = submitit.AutoExecutor(folder=settings.folder, cluster=settings.cluster,
                                     **{f"{settings.cluster}_max_num_timeout": settings.max_num_timeout})
    try:
        executor.update_parameters(**settings.parameters)
    except (NameError, ValueError, AssertionError) as exc:
        raise OptionError(f"[launcher]: submitit rejects the parameters: {exc}") from None
    return executor


def submit(executor: submitit.AutoExecutor, runs: list[GridRun], settings: LauncherSettings) -> list:
    """Submit `runs` as one job array (one job each on clusters without arrays); their submitit jobs, in order."""
    jobs = executor.submit_array([GridJob(worker_spec(r), settings.threads, settings.processes) for r in runs])
    for r, job in zip(runs, jobs):
        if read_job(r.directory).get("job_id") != job.job_id:  # the job may already have written its own record
            write_job(r.directory, {"launcher": "submitit", "cluster": settings.cluster, "job_id": job.job_id,
                                    "host": socket.gethostname(), "state": "submitted",
                                    "folder": str(settings.folder), "stdout": str(job.paths.stdout),
                                    "stderr": str(job.paths.stderr)})
    return jobs


class GridJob(submitit.helpers.Checkpointable):
    """One grid run as a submitit job: trains and evaluates it in a child process (`python -m bridgezoo.bench
    --worker`, the local pool's worker), so a crash fails that run only and a time limit or pre-emption can stop
    it cleanly. Its stdout goes to the job's log; its stderr to the job's error log and, on failure, to
    `RUN/error.txt`.
    """

    def __init__(self, spec: dict, threads: int | None = None, processes: int = 1):
        self.spec, self.threads, self.processes = spec, threads, processes
        self._proc = self._pump = None

    @property
    def directory(self) -> Path:
        return Path(self.spec["config"]["out"])

    def _record(self, **changes) -> dict:
        record = read_job(self.directory) | changes | {"updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_job(self.directory, record)
        return record

    def __call__(self) -> dict:
        env = submitit.JobEnvironment()
        self.directory.mkdir(parents=True, exist_ok=True)
        previous = read_job(self.directory)
        same_job = previous.get("job_id") == env.job_id  # a requeued job: count its attempts and checkpoints
        attempt = previous.get("attempt", 0) + 1 if same_job else 1
        resumed = (self.directory / "config.json").exists()
        write_job(self.directory, {
            "launcher": "submitit", "cluster": env.cluster, "job_id": env.job_id, "host": socket.gethostname(),
            "pid": os.getpid(), "state": "running", "attempt": attempt, "resumed": resumed,
            "folder": os.environ.get("SUBMITIT_FOLDER"), "stdout": str(env.paths.stdout),
            "stderr": str(env.paths.stderr), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "checkpoints": previous.get("checkpoints", []) if same_job else []})
        child_env = dict(os.environ)
        if self.threads:
            child_env["OMP_NUM_THREADS"] = child_env["MKL_NUM_THREADS"] = child_env["BRIDGEZOO_CPUS"] = str(self.threads)
        # The pre-emption signal is submitit's to handle here; the child ignores it (SLURM signals every process of
        # the step) and is stopped by `checkpoint` with SIGTERM instead. SIG_IGN survives the exec.
        usr_sig = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
        handler = signal.signal(usr_sig, signal.SIG_IGN)
        try:
            self._proc = subprocess.Popen(worker_command(self.spec, self.processes), env=child_env,
                                          stderr=subprocess.PIPE, text=True)
        finally:
            signal.signal(usr_sig, handler)
        tail: collections.deque = collections.deque(maxlen=400)
        self._pump = threading.Thread(target=self._forward_stderr, args=(self._proc, tail), daemon=True)
        self._pump.start()
        while self._pump.is_alive():  # the main thread stays free for submitit's signal handler
            self._pump.join(0.5)
        code = self._proc.returncode
        if code != 0:
            text = "".join(tail)
            self.directory.joinpath("error.txt").write_text(text)
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            error = lines[-1] if lines else f"exit code {code}, no message"
            self._record(state="failed", exit_code=code, error=error)
            raise RunFailed(f"{self.spec['name']}: {error} (exit code {code}; {self.directory / 'error.txt'})")
        self._record(state="done", exit_code=0)
        return {"name": self.spec["name"], "attempt": attempt}

    @staticmethod
    def _forward_stderr(proc, tail) -> None:
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            tail.append(line)
        proc.wait()

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on a time limit or pre-emption: stop training at the end of its current step (SIGTERM;
        the run saves its state) and hand back this run to be requeued, which resumes it."""
        proc, pump = self._proc, self._pump
        if proc is not None and pump is not None and pump.is_alive():
            proc.send_signal(signal.SIGTERM)
            pump.join(STOP_TIMEOUT_S)
            if pump.is_alive():
                proc.kill()
                pump.join()
        step = None
        try:
            step = json.loads((self.directory / "state" / "step.json").read_text())["step"]
        except (OSError, json.JSONDecodeError, KeyError):
            pass
        self._record(state="requeued", checkpoints=read_job(self.directory).get("checkpoints", []) + [step])
        return submitit.helpers.DelayedSubmission(GridJob(self.spec, self.threads, self.processes))

    def __getstate__(self) -> dict:  # the child process and its thread stay behind
        return {"spec": self.spec, "threads": self.threads, "processes": self.processes}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._proc = self._pump = None


def _finished_record(run: GridRun, job, seconds: float) -> dict:
    """The grid record of a job that has ended: done, or failed with its job id, logs and error."""
    info = read_job(run.directory)
    mine = info.get("job_id") == job.job_id
    extra = {"seconds": round(seconds, 1), "resumed": bool(info.get("resumed")) if mine else None,
             "job_id": job.job_id, "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr),
             "attempts": info.get("attempt") if mine else None,
             "requeued_at_steps": info.get("checkpoints") if mine else None}
    exc = job.exception()
    if exc is None and run.finished:
        return done_record(run, **extra)
    if mine and info.get("state") == "failed":  # the job wrote error.txt and its error itself
        return failed_record(run, info.get("error", ""), info.get("exit_code"), write_error=False, **extra)
    # the job ended without saying why (killed, out of memory, too many timeouts): submitit's own account
    text = str(exc) if exc is not None else "the job ended without finishing the run"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    rec = failed_record(run, text, info.get("exit_code"), **extra) | {"error": first}
    if mine:
        write_job(run.directory, info | {"state": "failed", "error": first})
    return rec


def bench_submitit(grid: Grid, options: dict | None = None, quiet: bool = False, command: str = "",
                   poll_s: float | None = None) -> dict:
    """Run every unfinished run of `grid` as a submitit job and wait for them; returns {run name: record}.

    `options` override the grid's `[launcher]` table. On SLURM every run is one job of one array (SLURM runs
    `array_parallelism` at a time); with the local executor, `array_parallelism` runs at a time (default 1).
    The status file lists each job's id and log paths as soon as it is submitted.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    where = (f"{grid.path}: [launcher]" if grid.path else "[launcher]") + (" or --launcher-opt" if options else "")
    settings = launcher_settings(dict(grid.launcher) | dict(options or {}), grid, where)
    from ..progress import rich_bar

    bar = rich_bar(quiet)  # else (a pipe, a log) one plain line per finished run
    grid.out.mkdir(parents=True, exist_ok=True)
    records, todo = plan(grid)
    write_status(grid, records, command)
    if not todo:
        return records
    executor = make_executor(settings)
    poll_s = poll_s or (1.0 if settings.cluster == "local" else 30.0)
    limit = len(todo) if settings.cluster == "slurm" else (settings.parallelism or 1)
    pending, active = list(todo), []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), disable=not bar) as progress:
        task = progress.add_task(f"grid {grid.name} ({settings.cluster})", total=len(grid.runs),
                                 completed=len(grid.runs) - len(todo), info=f"submitting {len(todo)} run(s)")
        while pending or active:
            if pending and len(active) < limit:
                batch, pending = pending[: limit - len(active)], pending[limit - len(active):]
                for r, job in zip(batch, submit(executor, batch, settings)):
                    active.append((r, job, time.time()))
                    records[r.name] = {"name": r.name, "directory": str(r.directory), "status": "submitted",
                                       "job_id": job.job_id, "stdout": str(job.paths.stdout),
                                       "stderr": str(job.paths.stderr)}
                write_status(grid, records, command)
            ended = [a for a in active if a[1].done()]
            for r, job, started in ended:
                active.remove((r, job, started))
                rec = records[r.name] = _finished_record(r, job, time.time() - started)
                write_status(grid, records, command)
                info = (f"{r.name}: {rec['psnr']:.2f} dB" if rec["status"] == "done"
                        else f"[red]{r.name} failed (job {job.job_id}): {rec['error'][:80]}")
                progress.update(task, advance=1, info=info)
                if not bar and not quiet:
                    ended_runs = sum(rec["status"] in ("done", "failed") for rec in records.values())
                    print(f"{ended_runs} of {len(grid.runs)}: {info.removeprefix('[red]')}", flush=True)
            if not ended:
                time.sleep(poll_s)
    return records
