"""`bridgezoo bench`: grid expansion, skipping, resuming, and failures that do not stop the grid."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bridgezoo.bench import Grid, bench, expand, load_grid
from bridgezoo.errors import OptionError


def spec(**axes):
    return {"name": "t", "out": "runs/t", "shared": {"backbone": "unet-test", "iters": 3},
            "axes": {"bridge": ["rdbm", "goub"], "seed": [0, 1]} | axes}


def test_expansion_is_the_product_of_training_axes_and_nfe_is_evaluation_only():
    runs = expand(spec(pi=["zero", "one", "residual"], nfe=[5, 10], sampler=["ddim"]))
    assert len(runs) == 2 * 3 * 2  # bridge × π × seed; NFE does not multiply the training runs
    assert all(r.evals == [(5, "ddim"), (10, "ddim")] for r in runs)
    r = runs[0]
    assert r.eval_dir(5, "ddim") == r.directory
    assert r.eval_dir(10, "ddim") == r.directory / "evals" / "nfe10-ddim"
    assert len({r.name for r in runs}) == len(runs)
    assert {(r.config["bridge"], r.config["pi"], r.config["seed"]) for r in runs} == {
        (b, p, s) for b in ("rdbm", "goub") for p in ("zero", "one", "residual") for s in (0, 1)}
    assert all(r.config["backbone"] == "unet-test" and r.config["iters"] == 3 for r in runs)


def test_default_pi_and_the_same_pi_written_out_are_one_run():
    runs = expand(spec(pi=["default", "residual", "one"]))
    # rdbm's own π is residual (merged with the explicit one); goub's own π is one (merged likewise)
    assert sorted((r.config["bridge"], r.config["pi"]) for r in runs if r.config["seed"] == 0) == [
        ("goub", "one"), ("goub", "residual"), ("rdbm", "one"), ("rdbm", "residual")]


def test_run_names_change_with_training_settings_but_not_with_evaluation_settings():
    a = expand(spec(nfe=[10]))[0]
    b = expand(spec(nfe=[20]))[0]
    c = expand({**spec(), "shared": {"backbone": "unet-test", "iters": 4}})[0]
    assert a.name == b.name and a.name != c.name
    # zoo5's training crops come from the benchmark's side (--eval-max-side), so it is a training setting
    sides = {expand({**spec(), "shared": {"backbone": "unet-test", "iters": 3, "eval_max_side": s}})[0].name
             for s in (64, 96)}
    crop = {expand({**spec(), "shared": {"backbone": "unet-test", "iters": 3, "crop_border": c}})[0].name for c in (0, 4)}
    assert len(sides) == 2 and len(crop) == 1


def test_per_bridge_options_reach_only_that_bridge():
    runs = expand(spec() | {"bridge_opts": {"rdbm": {"lam": 1e-4}}})
    assert all(r.config["bridge_opts"] == ({"lam": 1e-4} if r.config["bridge"] == "rdbm" else {}) for r in runs)


@pytest.mark.parametrize("bad, message", [
    ({"shared": {"iter": 3}}, "'iter' is not a run option"),
    ({"axes": {"bridges": ["rdbm"]}}, "unknown axis 'bridges'"),
    ({"axes": {"bridge": "rdbm"}}, "must be a non-empty list"),
    ({"colour": 1}, "unknown top-level key 'colour'"),
    ({"shared": {"seed": 1}, "axes": {"seed": [0]}}, "both in [shared] and in [axes]"),
])
def test_bad_grids_name_the_file_and_the_key(tmp_path, bad, message):
    import tomllib  # noqa: F401 - the grid file is TOML

    path = tmp_path / "g.toml"
    lines = []
    for k, v in bad.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {json.dumps(vv)}" for kk, vv in v.items()]
        else:
            lines.insert(0, f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OptionError) as err:
        load_grid(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_file_that_is_not_toml_is_named(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text("name = [unclosed\n")
    with pytest.raises(OptionError, match="not valid TOML"):
        load_grid(path)


def _fake_grid(tmp_path, n_seeds=3):
    runs = expand(spec(seed=list(range(n_seeds))), out=tmp_path / "runs")
    return Grid("fake", None, tmp_path / "runs", runs)


def _finish(run, psnr=20.0):
    run.directory.mkdir(parents=True, exist_ok=True)
    (run.directory / "config.json").write_text("{}")
    (run.directory / "summary.json").write_text(json.dumps({"overall": {"psnr": psnr}, "input": {"psnr": 15.0}}))


def test_a_failing_run_is_recorded_and_the_grid_goes_on(tmp_path):
    grid = _fake_grid(tmp_path)
    launched = []

    def launch(run, slot):
        launched.append(run.name)
        if run.config["bridge"] == "goub" and run.config["seed"] == 1:
            return 2, "Traceback...\nOptionError: bad lam for goub\n", 0.1
        _finish(run)
        return 0, "", 0.1

    records = bench(grid, launch=launch, quiet=True)
    assert len(launched) == len(grid.runs) == 6
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error"] == "OptionError: bad lam for goub"
    assert "bad lam" in (Path(failed[0]["directory"]) / "error.txt").read_text()
    status = json.loads(grid.status_file.read_text())
    assert sorted(r["status"] for r in status["runs"]) == ["done"] * 5 + ["failed"]


def test_finished_runs_are_skipped_and_unfinished_ones_resumed(tmp_path):
    grid = _fake_grid(tmp_path, n_seeds=2)
    _finish(grid.runs[0])
    grid.runs[1].directory.mkdir(parents=True)
    (grid.runs[1].directory / "config.json").write_text("{}")  # started, not finished
    seen = {}

    def launch(run, slot):
        seen[run.name] = slot
        _finish(run)
        return 0, "", 0.0

    records = bench(grid, jobs=2, threads=1, launch=launch, quiet=True)
    assert grid.runs[0].name not in seen and records[grid.runs[0].name]["skipped"]
    assert records[grid.runs[1].name]["resumed"] is True
    assert all(records[r.name]["resumed"] is False for r in grid.runs[2:])
    assert all(slot == {"threads": 1} for slot in seen.values())
    assert bench(grid, launch=launch, quiet=True) and len(seen) == 3  # a second call launches nothing


def _weights_and_metadata(path):
    """Tensors and metadata of a safetensors file (its header's key order is not fixed between processes)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        return load_file(str(path)), f.metadata()


def test_bench_cli_real_runs_failure_skip_and_resume(tmp_path):
    """Real subprocesses: two tiny runs and one that fails; then a second call skips the finished ones, and a run
    whose evaluation was lost is resumed from its saved state (no retraining) and re-evaluated."""
    grid = tmp_path / "g.toml"
    grid.write_text(f"""
name = "tiny"
out = "{tmp_path / 'runs'}"
[shared]
iters = 3
batch = 2
patch = 32
eval_max_side = 32
tasks = ["derain"]
[axes]
bridge = ["fm", "rdbm"]
backbone = ["unet-test", "timm-unet/no_such_encoder"]
nfe = [2, 3]
sampler = ["ddim", "official"]
""")

    def by_name(status):  # "fm" / "rdbm" for the unet-test runs, "bad-fm" / "bad-rdbm" for the failing ones
        runs = json.loads(status.read_text())["runs"]
        return {("bad-" if "no_such" in r["name"] else "") + r["name"].split("-pi_")[0]: r for r in runs}

    cli = [sys.executable, "-m", "bridgezoo.cli", "bench", str(grid), "--quiet"]
    first = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1, first.stderr
    status = by_name(tmp_path / "runs" / "bench-tiny.json")
    assert status["fm"]["status"] == status["rdbm"]["status"] == "done"
    # a failure at run time (here: timm has no such encoder) is recorded and the grid goes on
    assert status["bad-fm"]["status"] == "failed" and "no_such_encoder" in status["bad-fm"]["error"]
    fm_dir = Path(status["fm"]["directory"])
    assert json.loads((fm_dir / "summary.json").read_text())["steps"] == 2
    assert json.loads((fm_dir / "evals" / "nfe3-ddim" / "summary.json").read_text())["steps"] == 3
    official = json.loads((fm_dir / "evals" / "nfe2-official" / "summary.json").read_text())
    assert (official["sampler"], official["steps"]) == ("euler", 2)  # fm's own sampler, not the run's ddim
    weights = _weights_and_metadata(fm_dir / "model.safetensors")
    log_lines = (fm_dir / "train.jsonl").read_text()
    (fm_dir / "summary.json").unlink()

    second = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert second.returncode == 1
    status = by_name(tmp_path / "runs" / "bench-tiny.json")
    assert status["rdbm"].get("skipped") is True
    assert status["fm"]["status"] == "done" and status["fm"]["resumed"] is True
    after = _weights_and_metadata(fm_dir / "model.safetensors")  # resumed at the last step: nothing retrained
    assert after[1] == weights[1] and all(torch.equal(after[0][k], v) for k, v in weights[0].items())
    assert (fm_dir / "train.jsonl").read_text() == log_lines
    assert (fm_dir / "summary.json").exists()


def test_the_committed_grids_expand_to_what_they_promise():
    root = Path(__file__).resolve().parents[1] / "benchmarks" / "grids"
    import bridgezoo as bz

    all_bridges = set(bz.list_bridges())
    assert len(all_bridges) >= 15
    for scale in ("cpu", "gpu"):
        zoo = load_grid(root / f"zoo_{scale}.toml")
        assert {r.config["bridge"] for r in zoo.runs} == all_bridges
        seeds = {r.config["seed"] for r in zoo.runs}
        assert len(seeds) >= (3 if scale == "gpu" else 1) and len(zoo.runs) == len(all_bridges) * len(seeds)
        pi = load_grid(root / f"pi_ablation_{scale}.toml")
        combos = {(r.config["bridge"], r.config["pi"]) for r in pi.runs}
        for bridge in ("rdbm", "goub", "bbdm", "ddbm-ve", "irsde", "rddm"):
            assert {(bridge, p) for p in ("zero", "one", "residual")} <= combos
        assert {("udbm", p) for p in ("zero", "one", "residual", "uncertainty")} <= combos  # its own π too
        assert len({r.config["seed"] for r in pi.runs}) >= (3 if scale == "gpu" else 1)
        ablated = {r.config["bridge"] for r in pi.runs}  # the zoo runs of the ablated bridges are reused by it
        assert {r.name for r in zoo.runs if r.config["bridge"] in ablated} <= {r.name for r in pi.runs}
    goub = next(r for r in load_grid(root / "zoo_gpu.toml").runs if r.config["bridge"] == "goub")
    assert goub.evals[-1] == (50, None)  # "official": goub's reverse SDE


def test_runs_are_spread_over_gpus_one_at_a_time_each(tmp_path, monkeypatch):
    import threading
    import time

    from bridgezoo.bench import slot_env

    # a container that lets this process use 6 of the host's 64 cores: each GPU's run gets 3 of the 6
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    grid = _fake_grid(tmp_path, n_seeds=3)
    busy, used, lock = set(), [], threading.Lock()

    def launch(run, slot):
        with lock:
            assert slot["gpu"] not in busy  # never two runs on one GPU
            assert slot["threads"] == 3  # each GPU's run: its share of the cores it may use
            busy.add(slot["gpu"])
            used.append(slot["gpu"])
        time.sleep(0.05)
        with lock:
            busy.discard(slot["gpu"])
        _finish(run)
        return 0, "", 0.05

    records = bench(grid, gpus=[0, 1], launch=launch, quiet=True)
    assert all(r["status"] == "done" for r in records.values()) and set(used) == {0, 1}
    env = slot_env({"gpu": 1}, base={"CUDA_VISIBLE_DEVICES": "0,1,2"})
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and "OMP_NUM_THREADS" not in env
    assert slot_env({"threads": 1}, base={})["OMP_NUM_THREADS"] == "1"
    assert slot_env({"gpu": 0, "threads": 3}, base={})["BRIDGEZOO_CPUS"] == "3"  # its data workers' budget


def test_an_official_sampler_that_is_ddim_is_evaluated_once():
    runs = expand(spec(nfe=[10], sampler=["ddim", "official"]))
    evals = {r.config["bridge"]: r.evals for r in runs}
    assert evals["rdbm"] == [(10, "ddim")]  # rdbm's own sampler is ddim
    assert evals["goub"] == [(10, "ddim"), (10, None)]  # goub's is the reverse SDE


def test_a_worker_past_its_timeout_is_stopped_and_says_so(tmp_path):
    from bridgezoo.bench import launch_worker

    run = _fake_grid(tmp_path, n_seeds=1).runs[0]  # a real worker process: stopped long before it could train
    code, error, seconds = launch_worker(run, {"threads": 1}, timeout=0.2)
    assert code == 124 and error.endswith("stopped after 0.2 s") and seconds < 30
    assert not (run.directory / "summary.json").exists()
