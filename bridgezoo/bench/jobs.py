"""A grid's bookkeeping: each run's job record (`RUN/job.json`, written by the SLURM launcher and its jobs), whether
a job still owns a run, the done/failed records and the grid's status file (`OUT/bench-NAME.json`)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from .grid import Grid, GridRun


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
    from ..run.evaluate import atomic_write_text

    atomic_write_text(Path(directory) / JOB_FILE, json.dumps(record, indent=2))


def slurm_state(record: dict) -> str:
    """SLURM's state of the job named in a `RUN/job.json` record (sacct, through submitit; ImportError without it)."""
    import submitit

    job = submitit.SlurmJob(folder=record.get("folder") or ".", job_id=str(record["job_id"]))
    return job.state


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


def write_status(grid: Grid, records: dict, command: str) -> None:
    from ..run.evaluate import atomic_write_text

    payload = {"grid": grid.name, "file": str(grid.path) if grid.path else None, "command": command,
               "runs": [records[r.name] for r in grid.runs if r.name in records]}
    atomic_write_text(grid.status_file, json.dumps(payload, indent=2))
