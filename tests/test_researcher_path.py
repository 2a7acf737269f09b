"""The researcher's path: own data, several processes, resume and reload never change a result silently."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import bridgezoo as bz
from bridgezoo.data import PairedFolders
from bridgezoo.seeding import derive_seed
from bridgezoo.run import Batches, RunConfig, batch_indices, load_model, lr_lambda

from helpers import cli, fast

FAST = fast(log_every=1)
TORCHRUN = Path(sys.executable).with_name("torchrun")


def paired_folder(root: Path, n: int = 1, size=(48, 64)) -> Path:
    rng = np.random.default_rng(0)
    for sub in ("LQ", "GT"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        gt = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        iio.imwrite(root / "GT" / f"img{i}.png", gt)
        iio.imwrite(root / "LQ" / f"img{i}.png", (gt // 2).astype(np.uint8))
    return root


# ----------------------------------------------------------------------------------------------- 1. crops
def test_own_folders_draw_a_new_crop_of_each_image_at_every_step(tmp_path):
    data = PairedFolders(paired_folder(tmp_path, n=1), patch=16, seed=0)
    crops = {tuple(b["gt"][0].flatten()[:64].tolist()) for _, b, _ in Batches(data, 1, 0, 40, seed=0)}
    assert len(crops) >= 30  # 40 draws from (48−16+1)·(64−16+1)·2 positions; the old code drew one crop per image


def test_a_resumed_stream_continues_exactly_and_processes_split_the_global_batch(tmp_path):
    data = PairedFolders(paired_folder(tmp_path, n=3), patch=16, seed=5)
    full = list(Batches(data, 4, 0, 12, seed=5))
    resumed = list(Batches(data, 4, 7, 12, seed=5))
    for (s1, b1, d1), (s2, b2, d2) in zip(full[7:], resumed):
        assert s1 == s2 and d1 == d2 and torch.equal(b1["gt"], b2["gt"]) and torch.equal(b1["lq"], b2["lq"])
    ranks = [list(Batches(data, 4, 0, 12, seed=5, rank=r, world=2)) for r in (0, 1)]
    for step in range(12):
        _, one, draws = full[step]
        (_, a, da), (_, b, db) = ranks[0][step], ranks[1][step]
        assert da + db == draws[0::2] + draws[1::2]
        assert torch.equal(one["gt"][0::2], a["gt"]) and torch.equal(one["gt"][1::2], b["gt"])


def test_seeds_of_different_streams_never_collide():
    # the old per-step seed seed·1_000_003 + micro·101 + rank gave these two the same stream
    old = lambda seed, micro, rank: seed * 1_000_003 + micro * 101 + rank  # noqa: E731
    assert old(0, 1, 0) == old(0, 0, 101)
    assert derive_seed(0, "noise", 1, 0) != derive_seed(0, "noise", 0, 101)
    seeds = {derive_seed(s, name, k) for s in range(4) for name in ("noise", "draw", "epoch") for k in range(500)}
    assert len(seeds) == 4 * 3 * 500
    # the old epoch permutation seed·7919 + epoch: (seed 0, epoch 7919) = (seed 1, epoch 0)
    assert batch_indices(0, 4, 50, seed=1) != batch_indices(7919 * 12, 4, 50, seed=0)


# ----------------------------------------------------------------------------------------- 2. processes
def test_two_processes_follow_the_learning_rate_and_weights_of_one(tmp_path):
    args = [*FAST, "--iters", "6", "--warmup", "3", "--bridge", "rdbm"]
    for n in (1, 2):
        res = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", str(n), "-m", "bridgezoo.cli", "run",
                              "--out", str(tmp_path / f"p{n}"), *args], capture_output=True, text=True, timeout=600,
                             env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert res.returncode == 0, res.stderr[-3000:]
    logs = [pd.read_json(tmp_path / f"p{n}" / "train.jsonl", lines=True) for n in (1, 2)]
    assert list(logs[0]["lr"]) == list(logs[1]["lr"])  # the old code stepped the scheduler twice per step
    schedule = lr_lambda(3, 6)  # the lr logged after step k is the one of step k + 1
    assert list(logs[0]["lr"]) == pytest.approx([2e-3 * schedule(k) for k in range(1, 7)])
    np.testing.assert_allclose(logs[0]["probe_loss"], logs[1]["probe_loss"], rtol=2e-3)  # measured 5.5e-4
    np.testing.assert_allclose(logs[0]["loss"], logs[1]["loss"], rtol=2e-3)  # the mean over both processes
    one, two = (load_file(str(tmp_path / f"p{n}" / "model.safetensors")) for n in (1, 2))
    # same batches, crops, t and noise: only the order of float reductions differs. Measured 1.7e-4 after six
    # AdamW steps at lr 2e-3 (Adam normalises near-zero gradients, so rounding can move a weight by ~lr/10)
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst < 5e-4, worst


def test_a_loss_that_is_not_finite_on_one_process_stops_every_process(tmp_path):
    worker = Path(__file__).with_name("run_worker.py")
    opts = {"bridge": "nan-on-rank1", "backbone": "unet-test", "iters": 8, "batch": 2, "patch": 16,
            "tasks": ["lowlight"], "eval_max_side": 24, "quiet": True, "save_every": 1}
    res = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(worker), str(tmp_path / "run"), json.dumps(opts)],
                         capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode != 0
    assert res.stderr.count("rank error: non-finite loss") == 2, res.stderr[-3000:]  # both ranks, no hang
    assert "on process 1" in res.stderr
    assert json.loads((tmp_path / "run" / "state" / "step.json").read_text())["step"] == 2


# -------------------------------------------------------------------------------------- 3. resume, reload
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "rdbm"
    res = cli("run", "--out", out, "--bridge", "rdbm", "--iters", "3", *FAST)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def _snapshot(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_resume_with_conflicting_options_names_each_and_changes_nothing(finished_run):
    before = _snapshot(finished_run)
    res = cli("run", "--out", finished_run, "--resume", "--bridge", "goub", "--iters", "5", "--pi", "one")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    for text in ("--bridge 'goub' (saved: 'rdbm')", "--iters 5 (saved: 3)", "--pi 'one' (saved: None)"):
        assert text in res.stderr, res.stderr
    assert _snapshot(finished_run) == before


def test_resume_with_another_backbone_is_one_clear_line(finished_run):
    res = cli("run", "--out", finished_run, "--resume", "--backbone", "unet-T")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "--backbone 'unet-T' (saved: 'unet-test')" in res.stderr


def test_resume_without_options_continues_with_the_saved_ones(tmp_path):
    out = tmp_path / "run"
    res = cli("run", "--out", out, "--bridge", "goub", "--iters", "4", "--save-every", "2", "--seed", "3", *FAST)
    assert res.returncode == 0
    saved = (out / "config.json").read_text()
    (out / "summary.json").unlink()
    res = cli("run", "--out", out, "--resume")  # no other option: bridge goub, seed 3, unet-test … as saved
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "config.json").read_text() == saved and (out / "summary.json").exists()
    res = cli("run", "--out", tmp_path / "none", "--resume")
    assert res.returncode == 2 and "no config.json" in res.stderr


def test_weights_restore_identically_after_a_plugin_default_changes(finished_run, monkeypatch):
    from bridgezoo.bridge import Option
    from bridgezoo.registry import registry

    lq = torch.rand(1, 3, 24, 24) * 2 - 1
    bridge, model, _ = load_model(finished_run / "model.safetensors", device="cpu")
    before = bridge.sample(model, lq, nfe=4)
    cls = registry().entry("bridge", "rdbm").obj
    changed = dict(cls._options, lam=Option(0.5, "changed default"), T=Option(7, "changed default"))
    monkeypatch.setattr(cls, "_options", changed)
    assert bz.get_bridge("rdbm").options["lam"] == 0.5  # today's default did change
    bridge2, model2, _ = load_model(finished_run / "model.safetensors", device="cpu")
    assert bridge2.options == bridge.options
    assert torch.equal(bridge2.sample(model2, lq, nfe=4), before)


def test_the_run_records_who_provides_its_bridge_backbone_and_sampler(finished_run):
    from safetensors import safe_open

    config = json.loads((finished_run / "config.json").read_text())
    assert config["providers"]["bridge"]["distribution"] == "bridgezoo"
    assert config["providers"]["sampler"] == {"plugin": "samplers", "distribution": "bridgezoo",
                                              "version": config["providers"]["bridge"]["version"]}
    assert config["providers"]["backbone"]["version"] == bz.__version__ if hasattr(bz, "__version__") else True
    with safe_open(str(finished_run / "model.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["config"])["providers"] == config["providers"]


def test_restore_names_the_missing_plugin_distribution(finished_run, tmp_path):
    from safetensors.torch import save_file

    config = json.loads((finished_run / "config.json").read_text())
    config["bridge"] = "my-bridge"
    config["providers"]["bridge"] = {"plugin": "mine", "distribution": "my-bridges", "version": "1.2"}
    weights = tmp_path / "model.safetensors"
    save_file(load_file(str(finished_run / "model.safetensors")), str(weights),
              metadata={"format": "bridgezoo-1", "config": json.dumps(config)})
    res = cli("restore", "--weights", weights, finished_run / "samples", "--out", tmp_path / "o")
    assert res.returncode == 2 and "my-bridges 1.2" in res.stderr and "pip install" in res.stderr, res.stderr


# ----------------------------------------------------------------------------------------------- 4. device
def test_device_auto_is_the_gpu_when_there_is_one(monkeypatch):
    from bridgezoo.errors import OptionError
    from bridgezoo.run import resolve_device

    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(OptionError, match="no CUDA GPU"):
        resolve_device("cuda:1")


def test_bench_evaluations_run_on_the_device_of_the_loaded_model(finished_run, monkeypatch):
    import bridgezoo.run
    import bridgezoo.run.runner
    from bridgezoo.bench import run_one

    seen = {}
    real_load = bridgezoo.run.load_model

    def load(path, device="cpu"):
        seen["load"] = device
        return real_load(path, device="cpu")

    monkeypatch.setattr(bridgezoo.run, "load_model", load)
    # bench's extra evaluations go through run.evaluate_run, which calls the evaluate imported into run.runner
    monkeypatch.setattr(bridgezoo.run.runner, "evaluate", lambda *a, **k: seen.setdefault("eval", k["device"]) and {})
    config = json.loads((finished_run / "config.json").read_text())
    config = {k: v for k, v in config.items() if k in RunConfig.__dataclass_fields__}
    run_one({"name": "x", "config": config, "evals": [[4, "ddim"], [2, "ddim"]]})
    assert seen == {"load": "auto", "eval": torch.device("cpu")}


def test_restore_on_a_missing_gpu_is_a_clear_error(finished_run, tmp_path):
    res = cli("restore", "--run", finished_run, finished_run / "samples", "--out", tmp_path / "o", "--device", "cuda")
    assert res.returncode == 2 and "no CUDA GPU" in res.stderr and not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------- 5. probe
def test_the_probe_loss_uses_the_network_in_eval_mode(tmp_path):
    import bridgezoo
    from bridgezoo.registry import registry
    from bridgezoo.run import run

    calls = []

    class BNNet(torch.nn.Module):
        def __init__(self, out_channels=3, **_):
            super().__init__()
            self.conv = torch.nn.Conv2d(6, out_channels, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(out_channels)

        def forward(self, x, mu, t):
            calls.append((x.shape[0], self.training))
            return self.bn(self.conv(torch.cat([x, mu], 1)))

    class Plugin:
        @staticmethod
        @bridgezoo.hookimpl
        def register_backbones(register):
            register(BNNet, name="bn-net")

    registry().load()
    registry().add_plugin(Plugin())
    run(RunConfig(backbone="bn-net", iters=4, batch=2, patch=16, tasks=["lowlight"], eval_max_side=24,
                  log_every=1, quiet=True, out=str(tmp_path / "run")))
    train_calls = [mode for n, mode in calls if n == 2]
    probe_calls = [mode for n, mode in calls if n == 8]
    assert len(train_calls) == 4 and all(train_calls)
    assert len(probe_calls) == 4 and not any(probe_calls)
