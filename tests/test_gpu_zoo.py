"""The prepared GPU-zoo call (`benchmarks/gpu_zoo.py`) and its grids: the call's whole path on CPU at tiny sizes, its
archives rendered into reports as they will be here after a GPU session, and the pieces it plans with."""

import importlib.util
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_zoo", ROOT / "benchmarks" / "gpu_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_zoo = _module()


def test_the_smoke_call_trains_every_planned_run_and_its_archives_render_the_two_reports(tmp_path):
    out = tmp_path / "OUT"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_zoo.py"), "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    record = json.loads((out / "gpu_zoo.json").read_text())
    assert record["pool"]["failed"] == {} and record["pool"]["done"] == record["pool"]["runs"] == 5
    assert record["probe"]["it_per_s"] > 0 and record["fit"]["chosen"] == 4

    here = tmp_path / "here"  # the repository root here, after the call: unpack both archives
    here.mkdir()
    with tarfile.open(out / "h200-results.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(here)
    with tarfile.open(out / "h200-samples.tar") as tar:
        pngs = tar.getnames()
        tar.extractall(here)
    assert not [n for n in names if n.endswith(".safetensors") or "/state/" in n], "weights or state packed"
    assert pngs and all(n.startswith("runs/h200/") and n.endswith(".png") and "/evals/" not in n for n in pngs)
    grids = {p.stem: tomllib.loads(p.read_text()) for p in (here / "grids").glob("*.toml")}
    assert set(grids) == set(gpu_zoo.GRIDS) and all(g["shared"]["iters"] == 4 for g in grids.values())

    def report(*grid_names):
        dest = here / f"report-{grid_names[0]}"
        cmd = [sys.executable, "-m", "bridgezoo.cli", "report", *(f"grids/{g}.toml" for g in grid_names),
               "--out", str(dest)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=here)
        assert done.returncode == 0, done.stderr[-3000:]
        return dest

    zoo = pd.read_csv(report("zoo_h200", "samplers_h200") / "results_per_run.csv")
    assert set(zoo["bridge"]) == {"rdbm", "udbm"}
    assert set(zoo.loc[zoo["bridge"] == "rdbm", "steps"]) == {1, 10}  # the zoo's steps and the sweep's
    pi = pd.read_csv(report("pi_ablation_h200", "pi_ablation_x0_h200") / "results_per_run.csv")
    assert {"zero", "one", "residual"} <= set(pi["pi"])


def test_set_keys_replaces_or_appends_a_key_of_one_table_and_keeps_the_rest():
    text = '# a grid\nname = "g"\n\n[shared]\niters = 3000  # a comment\nbatch = 16\n\n[axes]\nbridge = ["a"]\n'
    new = gpu_zoo.set_keys(text, "shared", {"iters": 700, "tasks": ["lowlight", "derain"], "task_conditioned": True})
    parsed = tomllib.loads(new)
    assert parsed["shared"] == {"iters": 700, "batch": 16, "tasks": ["lowlight", "derain"], "task_conditioned": True}
    assert parsed["axes"] == {"bridge": ["a"]} and new.startswith("# a grid\n")
    assert tomllib.loads(gpu_zoo.set_keys(new, "axes", {"bridge": ["b", "c"]}))["axes"]["bridge"] == ["b", "c"]


def test_the_committed_grids_share_their_models_and_plan_forty_runs(tmp_path):
    grids = gpu_zoo.write_grids(tmp_path / "grids", tmp_path / "runs", 1200, smoke=False)
    by_name = {g.name: {r.name: r for r in g.runs} for g in grids}
    zoo, samplers = by_name["zoo-h200"], by_name["samplers-h200"]
    assert set(zoo) == set(samplers) and len(zoo) == 15  # the steps sweep evaluates the zoo's own models
    shared_pi = set(by_name["pi-ablation-h200"]) & set(zoo)
    assert len(shared_pi) == 8  # each of the eight first bridges' own π is one of zero, one, residual
    runs = gpu_zoo.merged(grids)
    assert len(runs) == 15 + 24 - 8 + 9 and sum(map(gpu_zoo.stages, runs)) == len(runs) + 1  # udbm: two stages
    for r in runs:  # every grid that has a run asks for its own evaluation first: 10 DDIM steps
        assert r.evals[0] == (10, "ddim") and len(set(r.evals)) == len(r.evals)
        assert r.config["iters"] == 1200 and r.config["compile"] == "off"
    sweep = next(r for r in runs if r.config["bridge"] == "fm")
    assert {e[0] for e in sweep.evals} == {1, 2, 3, 5, 10, 100} and (100, None) in sweep.evals  # Euler at 100 steps


def test_the_fit_takes_the_most_iterations_whose_estimate_fits_the_slots_time(tmp_path):
    runs = gpu_zoo.merged(gpu_zoo.write_grids(tmp_path / "grids", tmp_path / "runs", 100, smoke=False))
    measured = {"it_per_s": 40.0, "startup_s": 8.0, "eval_fixed_s": 1.5, "eval_step_s": 0.1}
    fit = gpu_zoo.fit_iters(runs, measured, slots=8, seconds=370)

    def pool_seconds(iters):  # the same estimate written out: every run's start-up, training passes, evaluations
        evaluations = sum(1.5 + 0.1 * steps * (1 if sampler else 2) for r in runs for steps, sampler in r.evals)
        return sum(8.0 + gpu_zoo.stages(r) * iters / 40.0 for r in runs) + evaluations

    budget = 8 * 370 * gpu_zoo.SAFETY
    assert fit["iters"] % 100 == 0 and pool_seconds(fit["iters"]) <= budget < pool_seconds(fit["iters"] + 100)
    assert pool_seconds(fit["iters"]) == pytest.approx(sum(gpu_zoo.run_seconds(r, measured, fit["iters"]) for r in runs))


def test_a_run_that_would_end_after_the_deadline_is_not_started(tmp_path):
    run = gpu_zoo.merged(gpu_zoo.write_grids(tmp_path / "grids", tmp_path / "runs", 100, smoke=False))[0]
    launch = gpu_zoo.launcher(time.perf_counter() + 5, estimate=lambda r: 60.0)
    code, error, seconds = launch(run, {"gpu": None, "threads": 1})
    assert code != 0 and "not started" in error and seconds == 0.0 and not run.directory.exists()


def test_where_the_fit_is_too_short_the_last_grids_are_left_out_and_the_zoo_kept(tmp_path):
    args = (tmp_path / "grids", tmp_path / "runs")
    fast = {"it_per_s": 60.0, "startup_s": 5.0, "eval_fixed_s": 0.5, "eval_step_s": 0.05}
    names, fit = gpu_zoo.plan_grids(*args, fast, slots=8, seconds=370, smoke=False, min_iters=1000)
    assert names == gpu_zoo.GRIDS and fit["iters"] >= 1000
    slow = {"it_per_s": 20.0, "startup_s": 10.0, "eval_fixed_s": 2.0, "eval_step_s": 0.1}
    names, fit = gpu_zoo.plan_grids(*args, slow, slots=8, seconds=370, smoke=False, min_iters=1000)
    assert names[0] == "zoo_h200" and names == gpu_zoo.GRIDS[: len(names)] and len(names) < len(gpu_zoo.GRIDS)
    assert fit["iters"] >= 1000 or names == ("zoo_h200",)
    if len(names) + 1 <= len(gpu_zoo.GRIDS):  # one grid more would have fallen short
        longer = gpu_zoo.GRIDS[: len(names) + 1]
        runs = gpu_zoo.merged(gpu_zoo.write_grids(*args, 100, False, longer))
        assert gpu_zoo.fit_iters(runs, slow, 8, 370)["iters"] < 1000
