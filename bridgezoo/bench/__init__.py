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
`bench` runs them in a pool on this machine; `bridgezoo.bench.slurm.bench_submitit` (`--launcher submitit`) runs the
same workers as the jobs of a SLURM job array, configured by an optional `[launcher]` table (see slurm.py).
A run whose `RUN/job.json` names a job still queued or running is left alone by both.

Modules: `grid` (the file, its expansion, the training-settings hash), `jobs` (job records, status file), `pool`
(the local pool and the worker), `slurm` (SLURM job arrays through submitit: import it only for
`--launcher submitit`, it needs the `cluster` extra).
"""

from .grid import (AXES, EVAL_AXES, TRAIN_AXES, Grid, GridRun, check_grid, expand, load_grid,
                   training_key, training_settings)
from .jobs import (JOB_FILE, done_record, failed_record, job_in_flight, plan, read_job, slurm_state, write_job,
                   write_status)
from .pool import bench, launch_worker, run_one, slot_env, worker_command, worker_spec

__all__ = ["AXES", "EVAL_AXES", "TRAIN_AXES", "Grid", "GridRun", "check_grid", "expand", "load_grid",
           "training_key", "training_settings", "JOB_FILE", "done_record", "failed_record", "job_in_flight", "plan",
           "read_job", "slurm_state", "write_job", "write_status", "bench", "launch_worker", "run_one", "slot_env",
           "worker_command", "worker_spec"]
