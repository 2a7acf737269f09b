"""`bridgezoo bench --launcher submitit`: the job array on SLURM (its sbatch script), and a real grid on submitit's
local executor (separate processes): skip, failure, pre-emption → requeue → resume; `bridgezoo report` on it."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("submitit")

from bridgezoo.bench import Grid, bench, expand, job_in_flight, load_grid, plan, worker_command, write_job  # noqa: E402
from bridgezoo.bench.slurm import GridJob, bench_submitit, launcher_settings, make_executor, submit  # noqa: E402
from bridgezoo.errors import OptionError  # noqa: E402

TINY = """
[shared]
{backbone}
iters = {iters}
save_every = 2
nfe = 2
batch = 2
patch = 32
eval_max_side = 32
tasks = ["derain"]
{shared}
[axes]
bridge = {bridges}
{axes}
"""


def grid_file(path: Path, out: Path, bridges, launcher: str, iters: int = 16, shared: str = "", axes: str = "",
              name="g", backbone='backbone = "unet-test"') -> Path:
    path.write_text(f'name = "{name}"\nout = "{out}"\n' + TINY.format(iters=iters, bridges=json.dumps(bridges),
                                                                        shared=shared, axes=axes, backbone=backbone)
                    + "[launcher]\n" + launcher)
    return path


def fake_slurm(bin_dir: Path) -> None:
    """`srun`, `sbatch` (job 4242) and `sacct` (4242_0 running, 4242_1 pending, 4242_2 failed) stand-ins."""
    bin_dir.mkdir()
    scripts = {"srun": "exit 0",
               "sbatch": 'echo "Submitted batch job 4242"',
               "sacct": "printf 'JobID|State|NodeList\\n4242_0|RUNNING|n1\\n4242_1|PENDING|None\\n4242_2|FAILED|n2\\n'"}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)


def test_slurm_job_array_script_carries_the_launcher_table(tmp_path, monkeypatch):
    fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    logs = tmp_path / "logs" / "%j"
    path = grid_file(tmp_path / "g.toml", tmp_path / "runs", ["fm"], axes="seed = [0, 1, 2]", name="zoo", launcher=f"""
cluster = "slurm"
partition = "gpu"
gpus_per_node = 2
cpus_per_task = 6
mem_gb = 32
timeout_min = 90
array_parallelism = 2
folder = "{logs}"
slurm_account = "mylab"
slurm_signal_delay_s = 120
slurm_setup = ["module load cuda/12.4"]
""")
    grid = load_grid(path)
    settings = launcher_settings(grid.launcher, grid)
    assert settings.cluster == "slurm"
    jobs = submit(make_executor(settings), grid.runs, settings)

    script = (tmp_path / "logs" / "4242" / "4242_submission.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=6",
                 "#SBATCH --mem=32GB", "#SBATCH --time=90", "#SBATCH --array=0-2%2", "#SBATCH --account=mylab",
                 "#SBATCH --signal=USR2@120", "#SBATCH --job-name=bridgezoo-zoo", "module load cuda/12.4",
                 f"#SBATCH --output={tmp_path / 'logs'}/%A_%a/%A_%a_0_log.out"):
        assert line in script.splitlines(), (line, script)
    assert f"-m submitit.core._submit {tmp_path / 'logs'}/%j" in script
    # one array element per grid run, each a checkpointable GridJob that trains on both GPUs, the job's 6 cores
    # shared by its 2 processes (3 threads each: 6 each oversubscribed the job's cores)
    assert [j.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2"]
    for run, job in zip(grid.runs, jobs):
        fn = job.submission().function
        assert isinstance(fn, GridJob) and fn.spec["name"] == run.name and fn.spec["config"] == run.config
        assert (fn.processes, fn.threads) == (2, 3)
        assert callable(fn.checkpoint)
        record = json.loads((run.directory / "job.json").read_text())
        assert record["state"] == "submitted" and record["job_id"] == job.job_id and record["cluster"] == "slurm"
        assert record["stdout"] == str(tmp_path / "logs" / job.job_id / f"{job.job_id}_0_log.out")
    assert "accelerate.commands.launch" in worker_command(fn.spec, fn.processes)
    # sacct: 4242_0 running, 4242_1 pending, 4242_2 failed -> a second `bench` starts only the third run again
    records, todo = plan(grid)
    assert [r.name for r in todo] == [grid.runs[2].name]
    assert [records[r.name]["status"] for r in grid.runs[:2]] == ["running", "running"]
    assert records[grid.runs[1].name]["job_id"] == "4242_1"


@pytest.mark.parametrize("table, message", [
    ({"partiton": "gpu"}, "unknown key 'partiton'. Did you mean 'partition'?"),
    ({"timeout_min": "2h"}, "timeout_min = '2h': expected int"),
    ({"gpus_per_node": 0}, "gpus_per_node = 0: must be at least 1"),
    ({"slurm_acount": "x"}, "slurm_acount: not an sbatch parameter submitit knows. Did you mean 'account'"),
    ({"partition": "a", "slurm_partition": "b"}, "both 'partition' and 'slurm_partition'"),
    ({"cluster": "pbs"}, "cluster = 'pbs': choose slurm, local or auto"),
])
def test_bad_launcher_tables_name_the_key(tmp_path, table, message):
    grid = Grid("g", None, tmp_path, [])
    with pytest.raises(OptionError) as err:
        launcher_settings(table, grid, where="g.toml: [launcher]")
    assert message in str(err.value) and "g.toml: [launcher]" in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_run_owned_by_a_live_job_is_not_started_twice(tmp_path):
    runs = expand({"shared": {"backbone": "unet-test", "iters": 3}, "axes": {"bridge": ["fm", "rdbm"]}},
                  out=tmp_path / "runs")
    grid = Grid("own", None, tmp_path / "runs", runs)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    write_job(runs[0].directory, {"cluster": "local", "host": host, "job_id": str(os.getpid()), "state": "running"})
    write_job(runs[1].directory, {"cluster": "local", "host": host, "job_id": str(dead.pid), "state": "running"})
    assert job_in_flight(runs[0].directory) and job_in_flight(runs[1].directory) is None
    launched = []

    def launch(run, slot):
        launched.append(run.name)
        return 1, "boom\n", 0.0

    records = bench(grid, launch=launch, quiet=True)
    assert launched == [runs[1].name]  # the live job's run is left alone; the dead job's run is started again
    assert records[runs[0].name]["status"] == "running" and records[runs[0].name]["job_id"] == str(os.getpid())
    write_job(runs[0].directory, {"cluster": "local", "host": host, "job_id": str(os.getpid()), "state": "done"})
    assert job_in_flight(runs[0].directory) is None


def _wait_and_preempt(run_glob: Path, at_step: int, running, limit=400) -> int:
    """Send the pre-emption signal (SIGUSR2, as SLURM does) to the job running the run once it saved `at_step`."""
    start = time.time()
    while time.time() - start < limit:
        for directory in run_glob.parent.glob(run_glob.name):
            try:
                step = json.loads((directory / "state" / "step.json").read_text())["step"]
                job = json.loads((directory / "job.json").read_text())
            except (OSError, json.JSONDecodeError, KeyError):
                continue
            if step >= at_step and job.get("pid"):
                os.kill(job["pid"], signal.SIGUSR2)
                return step
        assert running(), "a grid ended before its run could be pre-empted"
        time.sleep(0.02)
    raise AssertionError("timed out waiting for a saved step")


def test_submitit_local_grid_failure_preemption_resume_skip_and_report(tmp_path):
    """Two grids on submitit's local executor, side by side. A: fm and a bridge that does not exist. B: the same fm
    run (tracked with TensorBoard), pre-empted mid-training: requeued, resumed, and equal to A's uninterrupted run."""
    launcher = 'cluster = "local"\narray_parallelism = 2\ntimeout_min = 30\n'
    # A's second run fails at run time (timm has no such encoder); options that fail `preflight` stop a grid before
    # anything is submitted (tests/test_user_mistakes.py)
    grid_a = grid_file(tmp_path / "a.toml", tmp_path / "a", ["fm"], launcher, name="a", backbone="",
                       axes='backbone = ["unet-test", "timm-unet/no_such_encoder"]')
    grid_b = grid_file(tmp_path / "b.toml", tmp_path / "b", ["fm"], launcher, shared='log_with = "tensorboard"',
                       name="b")
    driver_a = subprocess.Popen([sys.executable, "-m", "bridgezoo.cli", "bench", str(grid_a), "--launcher", "submitit",
                                 "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result_b = {}
    driver_b = threading.Thread(target=lambda: result_b.update(bench_submitit(load_grid(grid_b), quiet=True)))
    driver_b.start()
    signalled_at = _wait_and_preempt(tmp_path / "b" / "fm-*", 2, lambda: driver_a.poll() is None and driver_b.is_alive())
    _, err_a = driver_a.communicate(timeout=600)
    driver_b.join(600)
    assert driver_a.returncode == 1 and [r["status"] for r in result_b.values()] == ["done"], err_a

    status_a = {("bad" if "no_such" in r["name"] else "fm"): r
                for r in json.loads((tmp_path / "a" / "bench-a.json").read_text())["runs"]}
    fm_a, bad = status_a["fm"], status_a["bad"]
    assert fm_a["status"] == "done" and fm_a["attempts"] == 1 and not fm_a["requeued_at_steps"]
    assert bad["status"] == "failed" and "unknown timm encoder 'no_such_encoder'" in bad["error"]
    assert bad["job_id"] and "unknown timm encoder 'no_such_encoder'" in Path(bad["stderr"]).read_text()
    assert "no_such_encoder" in (Path(bad["directory"]) / "error.txt").read_text()
    assert f"job {bad['job_id']}" in err_a and bad["stderr"] in err_a

    fm_b = json.loads((tmp_path / "b" / "bench-b.json").read_text())["runs"][0]
    assert fm_b["status"] == "done" and fm_b["attempts"] == 2 and fm_b["resumed"] is True
    (saved_step,) = fm_b["requeued_at_steps"]  # the state saved when the job was pre-empted, mid-training
    assert signalled_at <= saved_step < 16
    assert "Requeued job" in Path(fm_b["stdout"]).read_text()
    a, b = load_file(Path(fm_a["directory"]) / "model.safetensors"), load_file(Path(fm_b["directory"]) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # resumed == uninterrupted

    # the resumed run went on logging into the same TensorBoard run, up to the last step and its evaluation
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(Path(fm_b["directory"]) / "tensorboard"))
    events.Reload()
    assert max(e.step for e in events.Scalars("train/loss")) == 16
    assert events.Scalars("eval/psnr")[-1].value == pytest.approx(fm_b["psnr"], rel=1e-6)

    # a second call skips the finished run and submits nothing
    only_fm = grid_file(tmp_path / "a2.toml", tmp_path / "a", ["fm"], launcher, name="a")
    jobs_before = set((tmp_path / "a" / "submitit").iterdir())
    records = bench_submitit(load_grid(only_fm), quiet=True)
    assert [r.get("skipped") for r in records.values()] == [True]
    assert set((tmp_path / "a" / "submitit").iterdir()) == jobs_before

    # `bridgezoo report` takes the grid whatever launched it (its [launcher] table included): the finished run, not
    # the failed one, with the evaluations the grid asks for
    from bridgezoo.report import find_runs

    runs, left_out = find_runs([grid_a])
    assert runs == {Path(fm_a["directory"]): {Path(fm_a["directory"])}}
    assert [(Path(r["run"]).name, r["reason"]) for r in left_out] == [(Path(bad["directory"]).name, "failed")]
