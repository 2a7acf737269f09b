"""`bridgezoo run` / `restore` as real subprocesses with the micro backbone (seconds each)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import bridgezoo as bz

from helpers import cli, fast

FAST = fast(log_every=1)


def weights(path):
    return load_file(str(path))


@pytest.mark.parametrize("bridge", bz.list_bridges())
def test_run_every_bridge_then_restore_reproduces_the_eval_output(bridge, tmp_path):
    out = tmp_path / "run"
    res = cli("run", "--bridge", bridge, "--iters", "40", "--lr", "2e-3", "--out", out, *FAST)
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(log) == 40 and all(np.isfinite(r["loss"]) for r in log)
    probe = [r["probe_loss"] for r in log]  # fixed batch, t and noise: falls when the model learns
    assert np.mean(probe[-5:]) < 0.97 * np.mean(probe[:5]), probe
    config = json.loads((out / "config.json").read_text())
    assert config["bridge"] == bridge and config["versions"]["torch"] and config["bridge_options"]
    df = pd.read_csv(out / "eval.csv")
    summary = json.loads((out / "summary.json").read_text())
    from bridgezoo.data import SPLITS
    from bridgezoo.run import ZOO5_EVAL_VARIANTS

    assert len(df) == summary["images"] == len(SPLITS["test"]) * ZOO5_EVAL_VARIANTS and set(df["task"]) == {"lowlight"}
    assert summary["overall"]["psnr"] == pytest.approx(df["psnr"].mean())
    assert summary["lpips_status"] == "ok" or "LPIPS unavailable" in summary["lpips_status"]
    # restore with nothing but the weights file reproduces the evaluation output exactly
    lq = sorted((out / "samples").glob("*_lq.png"))[0]
    restored = tmp_path / "restored"
    res = cli("restore", "--weights", out / "model.safetensors", lq, "--out", restored, "--nfe", "4", "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    expected = iio.imread(str(lq).replace("_lq.png", "_output.png"))
    assert np.array_equal(iio.imread(restored / lq.name), expected)


def _kill_when(proc, path: Path, step: int, limit=300):
    start = time.time()
    while time.time() - start < limit:
        if path.exists():
            try:
                if json.loads(path.read_text())["step"] >= step:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        if proc.poll() is not None:
            raise AssertionError("the run ended before it could be killed")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for a checkpoint")


def test_sigkill_then_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    common = ["--bridge", "goub", "--iters", "24", "--save-every", "4", *FAST]
    ref = cli("run", "--out", tmp_path / "ref", *common)
    assert ref.returncode == 0, ref.stderr[-2000:]
    proc = subprocess.Popen([sys.executable, "-m", "bridgezoo.cli", "run", "--out", str(tmp_path / "cut"), *common],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, tmp_path / "cut" / "state" / "step.json", 8)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    res = cli("run", "--out", tmp_path / "cut", "--resume", *common)
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = weights(tmp_path / "ref" / "model.safetensors"), weights(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (tmp_path / "cut" / "train.jsonl").read_text().splitlines()]
    assert steps[-1] == 24 and min(steps) == 1


def test_sigint_saves_state_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bridgezoo.cli", "run", "--out", str(out), "--bridge", "fm",
                             "--iters", "400", "--save-every", "1000", *FAST],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.time()
    while not (out / "train.jsonl").exists() or len((out / "train.jsonl").read_text().splitlines()) < 3:
        assert time.time() - start < 300 and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err
    step = json.loads((out / "state" / "step.json").read_text())["step"]
    assert 3 <= step < 400


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_state(tmp_path):
    out = tmp_path / "run"
    res = cli("run", "--out", out, "--bridge", "rdbm", "--iters", "50", "--save-every", "1", "--lr", "1e30", *FAST)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "non-finite loss" in res.stderr and "at step" in res.stderr and "Traceback" not in res.stderr
    state_step = json.loads((out / "state" / "step.json").read_text())["step"]
    failed_step = int(res.stderr.split("at step ")[1].split(";")[0])
    assert state_step == failed_step  # the state of the last good step, not the failed one
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("args,message", [
    (["--data", "/no/such/folder"], "/no/such/folder: not a folder"),
    (["--bridge", "rdmb"], "Did you mean"),
    (["--iters", "0"], "--iters must be at least 1"),
    (["--bridge-opt", "lamda=0.1"], "has no option 'lamda'"),
    (["--backbone", "unet-q"], "unknown backbone 'unet-q'"),
])
def test_bad_options_fail_clearly_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    res = cli("run", "--out", out, *FAST, *args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert not out.exists()


def test_an_existing_run_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    res = cli("run", "--out", out, *FAST)
    assert res.returncode == 2 and "--resume" in res.stderr
    assert (out / "config.json").read_text() == "{}"


def test_tiled_restore_blends_to_the_untiled_result_for_a_pixelwise_model():
    from bridgezoo.run.evaluate import restore

    b = bz.get_bridge("rdbm", objective="x0", pi="one")
    model = lambda x, mu, t: 0.5 * mu + 0.1 * torch.tanh(x)  # noqa: E731 - a per-pixel model
    lq = torch.rand(1, 3, 70, 90) * 2 - 1
    full = restore(b, model, lq, nfe=5)
    tiled = restore(b, model, lq, nfe=5, tile=32, overlap=8)
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="tile-overlap"):
        restore(b, model, lq, nfe=5, tile=32, overlap=32)


def test_two_process_evaluation_gives_the_same_metrics_as_one(tmp_path):
    worker = Path(__file__).with_name("eval_worker.py")
    torchrun = Path(sys.executable).with_name("torchrun")
    for n in (1, 2):
        res = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", str(n), str(worker), str(tmp_path / f"p{n}")],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    one, two = (pd.read_csv(tmp_path / f"p{n}" / "eval.csv") for n in (1, 2))
    from bridgezoo.data import SPLITS

    assert len(one) == len(two) == 2 * len(SPLITS["test"])  # eval_worker: two tasks, one variant
    assert list(one["name"]) == list(two["name"]) and list(one["input_psnr"]) == list(two["input_psnr"])
    for col in ("psnr", "ssim", "psnr_y", "ssim_y"):  # float rounding can flip an 8-bit level: 1e-5 dB seen
        assert np.allclose(one[col], two[col], atol=1e-3, rtol=0), col


def test_fast_path_defaults_resolve_by_device_and_stay_switchable():
    from bridgezoo.errors import OptionError
    from bridgezoo.run import RunConfig

    cpu = RunConfig().resolve(has_gpu=False)
    assert (cpu.mixed_precision, cpu.channels_last) == ("no", "off")
    forced = RunConfig(mixed_precision="bf16", channels_last="on").resolve(has_gpu=False)
    assert (forced.mixed_precision, forced.channels_last) == ("bf16", "on")
    with pytest.raises(OptionError, match="--channels-last 'yes'"):
        RunConfig(channels_last="yes").resolve(has_gpu=False)


def test_channels_last_training_gives_the_fp32_weights_and_bf16_stays_close(tmp_path):
    """The fast paths as the runner uses them: channels_last changes only the memory layout (same weights to
    float tolerance); bf16 autocast training stays within a stated distance of fp32 after the same steps."""
    common = ["--bridge", "rdbm", "--iters", "4", "--lr", "1e-4", *FAST]
    results = {}
    for name, extra in (("base", []), ("cl", ["--channels-last", "on"]), ("bf16", ["--mixed-precision", "bf16"])):
        res = cli("run", "--out", tmp_path / name, *common, *extra)
        assert res.returncode == 0, res.stderr[-2000:]
        results[name] = weights(tmp_path / name / "model.safetensors")
        assert json.loads((tmp_path / name / "config.json").read_text())["channels_last"] == (
            "on" if name == "cl" else "off")
    # Adam normalises its step to about lr whatever the gradient, so where a gradient is near 0 float rounding of
    # the other memory layout can flip it: after four steps at lr 1e-4 two such runs differ by at most ~4·lr
    for key, base in results["base"].items():
        torch.testing.assert_close(results["cl"][key], base, atol=5e-4, rtol=0)
    worst = max(float((results["bf16"][k] - v).abs().max()) for k, v in results["base"].items())
    assert 0 < worst < 0.05  # bf16 really ran (weights differ) and stayed close: four AdamW steps at lr 1e-4
