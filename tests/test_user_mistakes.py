"""A user's mistake never costs a run or a result: options fail before anything is written, broken plugins fail
in a second with their name, restore never overwrites, and what the data needed (conversions, padding) is said."""

import json
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import bridgezoo
from bridgezoo.registry import get_bridge, registry

from helpers import cli, fast

FAST = fast(batch=2, patch=16, eval_max_side=24, nfe=2)  # sliced below: FAST[:6] is backbone, batch, patch


@pytest.mark.parametrize("args, message", [
    (["--nfe", "0"], "--steps must be at least 1"),  # --nfe: the deprecated spelling of --steps
    (["--steps", "-3"], "--steps must be at least 1"),
    (["--tile", "8"], "--tile-overlap (32) must lie in [0, --tile (8))"),
    (["--sampler", "skip"], "bridge 'rdbm' has no sampler 'skip'"),
    (["--sampler", "dbim:eta=2"], "eta must be in [0, 1]"),
    (["--warmup", "500"], "--warmup must lie in [0, --iters = 30]"),
    (["--ema-decay", "1.5"], "--ema-decay must lie in [0, 1)"),
    (["--crop-border", "-1"], "--crop-border must not be negative"),
    (["--bridge-opt", "T=-4"], "T"),
    (["--backbone-opt", "residual_outptu=true"], "backbone 'unet-test' has no option 'residual_outptu'. Did you mean "
                                                 "'residual_output'?"),
])
def test_bad_options_fail_in_seconds_before_anything_is_written(tmp_path, args, message):
    out = tmp_path / "run"
    start = time.perf_counter()
    res = cli("run", "--out", out, "--iters", "30", *FAST[:-1], *args)  # FAST without --quiet: nothing trains
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert not out.exists() and "train" not in res.stdout
    assert time.perf_counter() - start < 60  # no training happened (a real run of 30 steps takes longer)


def test_the_preset_warmup_is_capped_for_short_runs():
    from bridgezoo.run import RunConfig

    from bridgezoo.presets import PRESETS

    assert RunConfig(iters=30).resolve(has_gpu=False).warmup == 2  # 5% of 30, not the preset's 60
    assert RunConfig().resolve(has_gpu=False).warmup == PRESETS["cpu-small"]["warmup"]  # the preset as measured
    assert RunConfig(iters=30, warmup=10).resolve(has_gpu=False).warmup == 10  # an explicit choice stays


class _BrokenPlugin:
    """A third-party bridge whose `schedule` has a bug (a KeyError), as a user's plugin might."""

    @staticmethod
    @bridgezoo.hookimpl
    def register_bridges(register):
        base = type(get_bridge("rdbm"))

        class Broken(base):
            def schedule(self, t):
                return self.options["lambda"]  # the option is called lam

        register(Broken, name="broken")


def test_a_broken_plugin_fails_at_start_with_its_name_and_writes_nothing(tmp_path):
    from bridgezoo.run import PluginCheckError
    from bridgezoo.run import RunConfig, run

    registry().load()
    registry().add_plugin(_BrokenPlugin())
    out = tmp_path / "run"
    start = time.perf_counter()
    with pytest.raises(PluginCheckError, match=r"bridge 'broken' \(plugin '_BrokenPlugin'.*coefficients.*KeyError"):
        run(RunConfig(bridge="broken", backbone="unet-test", iters=5, out=str(out), quiet=True))
    assert time.perf_counter() - start < 10 and not out.exists()


def test_a_plugin_whose_predict_x0_does_not_invert_its_target_is_caught():
    from bridgezoo.run import PluginCheckError, exercise_bridge

    bridge = get_bridge("rdbm", objective="x0")
    exercise_bridge(bridge)  # the built-in passes
    bridge.predict_x0 = lambda output, x_t, mu, t: output * 0.9
    with pytest.raises(PluginCheckError, match="predict_x0"):
        exercise_bridge(bridge)


def test_the_start_up_check_accepts_valid_few_step_bridges_and_checks_the_runs_own_grid():
    """ResShift's journal setting (T = 4) and udbm with T = 8 are valid runs: the start-up check tests the run's
    sampler and steps, not every sampler at 5 steps, nor more distinct training times than T."""
    from bridgezoo.run import RunConfig, check_config

    for bridge, opts in (("resshift", {"T": "4", "min_noise_level": "0.2"}), ("udbm", {"T": "8"})):
        cfg, b = check_config(RunConfig(bridge=bridge, backbone="unet-test", bridge_opts=opts), has_gpu=False)
        assert b.options["T"] == int(opts["T"])


# ------------------------------------------------------------------------------------------------ restore
@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "run"
    res = cli("run", "--out", out, "--iters", "2", *FAST)
    assert res.returncode == 0, res.stderr[-2000:]
    return out


def _image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.full((20, 24, 3), value, np.uint8))


def test_restore_keeps_same_stem_and_same_name_inputs_apart_and_never_overwrites(model_run, tmp_path):
    _image(tmp_path / "in" / "a.png", 50)
    _image(tmp_path / "in" / "a.jpg", 200)
    _image(tmp_path / "in" / "sub" / "b.png", 90)
    _image(tmp_path / "x" / "flower.png", 30)
    _image(tmp_path / "y" / "flower.png", 220)
    out = tmp_path / "out"
    res = cli("restore", "--run", model_run, tmp_path / "in", tmp_path / "x", tmp_path / "y", "--out", out, "--nfe", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["a_jpg.png", "a_png.png", "sub/b.png", "x/flower.png", "y/flower.png"]
    assert iio.imread(out / "a_png.png").mean() < iio.imread(out / "a_jpg.png").mean()  # each from its own input
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    again = cli("restore", "--run", model_run, tmp_path / "in", "--out", out, "--nfe", "2")
    assert again.returncode == 2 and "exist already" in again.stderr and "--overwrite" in again.stderr
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before
    forced = cli("restore", "--run", model_run, tmp_path / "in", "--out", out, "--nfe", "2", "--overwrite")
    assert forced.returncode == 0, forced.stderr[-2000:]


# ------------------------------------------------------------------------------------------- data notes
def test_a_run_on_own_folders_says_what_it_found_converted_and_padded(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for sub in ("LQ", "GT"):
            (tmp_path / "data" / split / sub).mkdir(parents=True)
        for i in range(n):
            gt = rng.integers(0, 256, (12, 14), dtype=np.uint8)  # grayscale, smaller than the 16px patch
            iio.imwrite(tmp_path / "data" / split / "GT" / f"{i}.png", gt)
            iio.imwrite(tmp_path / "data" / split / "LQ" / f"{i}.png", gt // 2)
    out = tmp_path / "run"
    res = cli("run", "--out", out, "--data", tmp_path / "data", "--iters", "2", *FAST[:6], "--nfe", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "train: 3 pair(s)" in res.stdout and "eval: 2 pair(s)" in res.stdout
    assert "train: grayscale converted to RGB: 6 file(s)" in res.stdout
    assert "3 pair(s) smaller than the 16px training patch are reflect-padded" in res.stdout
    info = json.loads((out / "config.json").read_text())["data_info"]
    assert info["train"]["pairs"] == 3 and info["train"]["conversions"] == {"grayscale converted to RGB": 6}


def test_bench_dry_run_catches_unknown_bridges_and_bad_bridge_options(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text(f"""
name = "bad"
out = "{tmp_path / 'runs'}"
[shared]
backbone = "unet-test"
iters = 3
[axes]
bridge = ["rdbm", "rdmb", "goub"]
[bridge_opts.goub]
lamda = 0.1
""")
    res = cli("bench", grid, "--dry-run")
    assert res.returncode == 2, res.stdout + res.stderr
    lines = {ln.split()[0] + ln.split("/")[-1].split("-pi_")[0]: ln for ln in res.stdout.splitlines() if "/" in ln}
    assert lines["todordbm"] and "unknown bridge 'rdmb'. Did you mean" in lines["BADrdmb"] and "no option 'lamda'" in lines["BADgoub"]
    real = cli("bench", grid, "--quiet")
    assert real.returncode == 2 and "2 run(s) have bad options, nothing was run" in real.stderr
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------- own folders' task names
def _own_folders(root, train_tasks, test_tasks, side=40):
    """`root/train` and `root/test` of real PNG pairs: a plain LQ/GT pair where a task is None, else one
    `TASK/{LQ,GT}` folder per task."""
    from dataset_fixtures import make_pair

    for split, tasks, n in (("train", train_tasks, 3), ("test", test_tasks, 2)):
        for k, task in enumerate(tasks):
            where = root / split if task is None else root / split / task
            for i in range(n):
                make_pair(where / "LQ" / f"{i}.png", where / "GT" / f"{i}.png", 10 * k + i, h=side, w=side)
    return root


def test_own_train_and_test_folders_are_one_task_named_after_the_data_folder(tmp_path):
    data, out = _own_folders(tmp_path / "mydata", [None], [None]), tmp_path / "run"
    res = cli("run", "--data", data, "--bridge", "fm", "--backbone", "unet-test", "--iters", "20", "--patch", "32",
              "--task-conditioned", "--batch", "2", "--nfe", "2", "--out", out, "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert config["task_names"] == ["mydata"]
    assert config["data_info"]["train"]["per_task"] == {"mydata": 3}
    assert config["data_info"]["eval"]["per_task"] == {"mydata": 2}
    assert list(summary["per_task"]) == ["mydata"]


def test_a_conditioned_run_whose_test_folder_has_an_unknown_task_fails_before_writing(tmp_path):
    data, out = _own_folders(tmp_path / "mydata", ["Deraining"], ["Deraining", "Dehazing"]), tmp_path / "run"
    res = cli("run", "--data", data, "--bridge", "fm", "--backbone", "unet-test", "--iters", "20", "--patch", "32",
              "--task-conditioned", "--out", out)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "training tasks: Deraining;" in res.stderr and "evaluation tasks: Dehazing, Deraining" in res.stderr
    assert not out.exists() and "bridgezoo run:" not in res.stdout  # nothing trained, nothing written


# ------------------------------------------------------------------------------------- a model that lost
def test_a_run_worse_than_its_inputs_says_what_to_try(tmp_path):
    from bridgezoo.run import FIRST_COMMAND

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i in range(2):  # inputs 1 level off their targets (48 dB): 2 steps of training cannot match them
            gt = rng.integers(1, 255, (24, 24, 3), dtype=np.uint8)
            for sub, img in (("LQ", gt + rng.choice(np.array([-1, 1], np.int16), gt.shape).astype(np.uint8)),
                             ("GT", gt)):
                (tmp_path / "d" / split / sub).mkdir(parents=True, exist_ok=True)
                iio.imwrite(tmp_path / "d" / split / sub / f"{i}.png", img)
    res = cli("run", "--out", tmp_path / "run", "--data", tmp_path / "d", "--iters", "2", *FAST[:6], "--nfe", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    gain = json.loads((tmp_path / "run" / "summary.json").read_text())["gain_psnr"]
    assert gain < 0
    closing = res.stdout[res.stdout.index("results in"):]
    assert "worse than its inputs" in closing and FIRST_COMMAND in closing and "reports/zoo-cpu" in closing
    assert len(closing.strip().splitlines()) == 4  # the results line and the 3-line hint


def test_the_low_gain_hint_is_only_for_a_loss_and_names_own_data():
    from bridgezoo.run import FIRST_COMMAND, low_gain_hint

    assert low_gain_hint({"gain_psnr": 0.4}) == [] and low_gain_hint({}) == [] and low_gain_hint({"gain_psnr": 0.0}) == []
    lines = low_gain_hint({"gain_psnr": -0.47})
    assert len(lines) == 3 and "(-0.47 dB PSNR)" in lines[0] and lines[1].strip() == FIRST_COMMAND
    assert low_gain_hint({"gain_psnr": -1.0}, "my data")[1].strip() == f"{FIRST_COMMAND} --data 'my data'"


def test_own_folders_run_into_a_log_file_reads_cleanly(tmp_path):
    """A newcomer's run on their own folders with its output piped to a log (issue 28): no progress-bar frames, the
    data warning in one line without Python's source line, the skipped file counted in config.json; and
    --strict-pairs makes that file an error before anything is written."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for sub in ("LQ", "GT"):
            (tmp_path / "mydata" / split / sub).mkdir(parents=True)
        for i in range(2):
            gt = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            iio.imwrite(tmp_path / "mydata" / split / "GT" / f"img{i}.png", gt)
            iio.imwrite(tmp_path / "mydata" / split / "LQ" / f"img{i}.png", gt // 2)
    iio.imwrite(tmp_path / "mydata" / "train" / "LQ" / "extra.png", gt)  # no partner in GT/
    out = tmp_path / "run"
    strict = cli("run", "--data", tmp_path / "mydata", "--out", out, "--strict-pairs", *FAST[:-3])
    assert strict.returncode == 2 and "without a partner" in strict.stderr and "extra.png" in strict.stderr
    assert "Traceback" not in strict.stderr and not out.exists()
    res = cli("run", "--data", tmp_path / "mydata", "--out", out, "--bridge", "fm", "--iters", "2", *FAST[:-3])
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "\r" not in log and "it/s]" not in log, log[-2000:]  # tqdm draws frames with \r; none into a pipe
    assert "EMA model on 2" in res.stdout
    warning = [line for line in res.stderr.splitlines() if "without a partner" in line]
    assert len(warning) == 1 and warning[0].startswith("bridgezoo: warning: 1 file(s) without a partner"), res.stderr
    assert ".py:" not in res.stderr and "warnings.warn" not in res.stderr and "PairedFolders(" not in res.stderr
    data_info = json.loads((out / "config.json").read_text())["data_info"]
    assert data_info["train"]["unpaired"] == 1 and data_info["eval"]["unpaired"] == 0


def test_restore_skip_existing_resumes_its_own_outputs_and_refuses_others(model_run, tmp_path):
    for name, value in (("a", 40), ("b", 120), ("c", 200)):
        _image(tmp_path / "in" / f"{name}.png", value)
    out = tmp_path / "out"
    first = cli("restore", "--run", model_run, tmp_path / "in", "--out", out, "--nfe", "2", "--quiet")
    assert first.returncode == 0, first.stderr[-2000:]
    (out / "b.png").unlink()  # interrupted before b
    kept = (out / "a.png").read_bytes(), (out / "c.png").read_bytes()
    resumed = cli("restore", "--run", model_run, tmp_path / "in", "--out", out, "--nfe", "2", "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "restored 1 image(s)" in resumed.stdout and "skipped 2" in resumed.stdout
    assert ((out / "a.png").read_bytes(), (out / "c.png").read_bytes()) == kept and (out / "b.png").exists()
    _image(out / "a.png", 7)  # a file restore did not write; and b, c were made at 2 steps, not 3
    before = {p: p.read_bytes() for p in out.iterdir()}
    refused = cli("restore", "--run", model_run, tmp_path / "in", "--out", out, "--nfe", "3", "--skip-existing")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "1 output file(s) were not written by `bridgezoo restore`, e.g." in refused.stderr and "a.png" in refused.stderr
    assert "2 were written by a restore of other inputs, weights or settings" in refused.stderr, refused.stderr
    assert {p: p.read_bytes() for p in out.iterdir()} == before
