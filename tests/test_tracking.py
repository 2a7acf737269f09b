"""`bridgezoo run --log-with`: accelerate's trackers, read back from what they wrote (TensorBoard always; W&B offline
and a local MLflow store where those packages are installed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridgezoo.run import tracking
from bridgezoo.bench import expand, load_grid
from bridgezoo.errors import OptionError
from bridgezoo.run.tracking import RunTracker, flatten_config, parse_log_with
from bridgezoo.run import RunConfig, run

from helpers import fast

FAST = fast(bridge="fm", batch=2, eval_max_side=32, nfe=2, tasks="derain", iters=4, log_every=1)


def bridgezoo_run(out: Path, *args, env=None):
    res = subprocess.run([sys.executable, "-m", "bridgezoo.cli", "run", "--out", str(out), *FAST, *args],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    return log, json.loads((out / "summary.json").read_text())


def test_tensorboard_events_hold_the_losses_evaluation_samples_and_config(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from bridgezoo.data import read_image

    out = tmp_path / "run"
    log, summary = bridgezoo_run(out, "--log-with", "tensorboard")
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    for key in ("loss", "probe_loss", "lr", "it_per_s"):  # the numbers of train.jsonl, step by step
        logged = events.Scalars(f"train/{key}")
        assert [e.step for e in logged] == [r["step"] for r in log] == [1, 2, 3, 4]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in log], rel=1e-6)
    expected = {"eval/psnr": summary["overall"]["psnr"], "eval/ssim_y": summary["overall"]["ssim_y"],
                "eval/input/psnr": summary["input"]["psnr"], "eval/derain/psnr": summary["per_task"]["derain"]["psnr"],
                "eval/gain_psnr": summary["gain_psnr"], "eval/seconds_per_image": summary["seconds_per_image"]}
    for tag, value in expected.items():
        (event,) = events.Scalars(tag)
        assert event.step == 4 and event.value == pytest.approx(value, rel=1e-6), tag
    # one image per evaluated sample: LQ, output and GT side by side
    stems = sorted(p.name[: -len("_gt.png")] for p in (out / "samples").glob("*_gt.png"))
    assert stems and sorted(events.Tags()["images"]) == [f"samples/{s}" for s in stems]
    h, w, _ = read_image(out / "samples" / f"{stems[0]}_gt.png").shape
    image = events.Images(f"samples/{stems[0]}")[0]
    assert (image.height, image.width) == (h, 3 * w)
    # the resolved configuration as hyper-parameters (TensorBoard writes them in a sub-run)
    (sub,) = [p for p in (out / "tensorboard").iterdir() if p.is_dir() and any(p.glob("events.out.tfevents.*"))]
    hp_events = EventAccumulator(str(sub))
    hp_events.Reload()
    content = hp_events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["bridge"].string_value == "fm" and hparams["iters"].number_value == 4
    assert hparams["bridge_options/pi"].string_value == "zero" and hparams["backbone"].string_value == "unet-test"
    assert json.loads((out / "trackers.json").read_text())["trackers"] == ["tensorboard"]


def test_wandb_offline_and_mlflow_local_store(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local store, for this test's own client too
    store = f"file://{tmp_path / 'mlruns'}"
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", MLFLOW_TRACKING_URI=store,
               MLFLOW_ALLOW_FILE_STORE="true")
    out = tmp_path / "run"
    log, summary = bridgezoo_run(out, "--log-with", "wandb,mlflow", env=env)
    ids = json.loads((out / "trackers.json").read_text())
    # W&B: the offline run file of the recorded id holds the logged keys, the samples and the config
    (run_file,) = (out / "wandb").glob(f"offline-run-*/run-{ids['wandb_id']}.wandb")
    data = run_file.read_bytes()
    for key in (b"train/loss", b"train/probe_loss", b"eval/psnr", b"eval/derain/psnr", b"samples/derain_",
                b"bridge_options/pi"):
        assert key in data, key
    # MLflow: metrics with their steps, parameters and the sample images as artifacts
    client = mlflow.tracking.MlflowClient(store)
    history = client.get_metric_history(ids["mlflow_run_id"], "train/loss")
    assert [m.step for m in history] == [r["step"] for r in log]
    assert [m.value for m in history] == pytest.approx([r["loss"] for r in log])
    assert client.get_metric_history(ids["mlflow_run_id"], "eval/psnr")[0].value == pytest.approx(
        summary["overall"]["psnr"])
    assert client.get_run(ids["mlflow_run_id"]).data.params["bridge"] == "fm"
    artifacts = {a.path for a in client.list_artifacts(ids["mlflow_run_id"], "samples")}
    assert artifacts == {f"samples/{p.name}" for p in (out / "samples").glob("*.png")}


def test_a_resumed_run_logs_into_the_same_tracker_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "_installed", lambda module: True)  # the tracker objects only; nothing starts
    (tmp_path / "trackers.json").write_text(json.dumps({"wandb_id": "abc123", "mlflow_run_id": "f00d"}))
    wandb, mlf = RunTracker("wandb,mlflow", tmp_path).trackers
    assert wandb.init_kwargs["id"] == "abc123" and wandb.init_kwargs["resume"] == "allow"
    assert mlf.run_id == "f00d" and mlf.run_name == tmp_path.name
    fresh = RunTracker("wandb", tmp_path / "new").trackers[0]
    assert len(fresh.init_kwargs["id"]) == 16 and fresh.init_kwargs["id"] != "abc123"


def test_a_missing_tracker_fails_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "_installed", lambda module: module == "tensorboard")
    out = tmp_path / "run"
    with pytest.raises(OptionError, match=r"--log-with wandb: the 'wandb' package is not installed; pip install "
                                          r"'bridgezoo\[tracking\]'"):
        run(RunConfig(bridge="fm", backbone="unet-test", iters=2, out=str(out), log_with="wandb", quiet=True))
    assert not out.exists()
    assert parse_log_with("all") == ["tensorboard"]  # all = the trackers that are installed
    assert parse_log_with(None) == [] and parse_log_with("tensorboard,tensorboard") == ["tensorboard"]
    with pytest.raises(OptionError, match="Did you mean 'tensorboard'"):
        parse_log_with("tensorbord")
    monkeypatch.setattr(tracking, "_installed", lambda module: False)
    with pytest.raises(OptionError, match="none of tensorboard, wandb, mlflow is installed"):
        parse_log_with("all")


def test_grids_take_log_with_without_changing_the_runs(tmp_path):
    spec = {"shared": {"backbone": "unet-test", "iters": 3}, "axes": {"bridge": ["fm", "rdbm"]}}
    tracked = {**spec, "shared": {**spec["shared"], "log_with": "tensorboard"}}
    plain, logged = expand(spec), expand(tracked)
    assert [r.name for r in plain] == [r.name for r in logged]  # tracking does not change what is trained
    assert all(r.config["log_with"] == "tensorboard" for r in logged)
    path = tmp_path / "g.toml"
    path.write_text('[shared]\nlog_with = "tensorbord"\n[axes]\nbridge = ["fm"]\n')
    with pytest.raises(OptionError, match=r"g.toml: \[shared\] log_with 'tensorbord': unknown tracker"):
        load_grid(path)


def test_hyper_parameters_are_flat_scalars():
    flat = flatten_config({"bridge": "rdbm", "iters": 3, "tasks": ["derain", "deblur"], "nfe": None,
                           "bridge_options": {"lam": 0.04, "schedule": {"kind": "cosine"}}, "quiet": True})
    assert flat == {"bridge": "rdbm", "iters": 3, "tasks": '["derain", "deblur"]', "nfe": "None",
                    "bridge_options/lam": 0.04, "bridge_options/schedule/kind": "cosine", "quiet": True}
