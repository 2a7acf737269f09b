"""The GPU path's arithmetic, checked on CPU: what a GPU run trains and evaluates is the network `load_model`
rebuilds, in the precision the run states (issue: in-run evaluation in bf16, WSConv's dtype-dependent ε, MeanFlow's
JVP under bf16 autocast)."""

import json

import pandas as pd
import pytest
import torch

import bridgezoo as bz
from bridgezoo.backbone import WSConv2d
from bridgezoo.seeding import generator
from bridgezoo.run import backbone_of, batch_to_device, evaluate_run, load_model, make_datasets

from helpers import cli, fast

FAST = fast()


def test_the_in_run_evaluation_of_a_bf16_run_is_the_saved_model_evaluated_in_fp32(tmp_path):
    """The EMA copy used to be taken from the accelerate-prepared network, whose forward carries the training's
    autocast: the in-run evaluation then sampled in bf16 while `load_model` + evaluate sampled in fp32."""
    run = tmp_path / "run"
    res = cli("run", "--bridge", "rdbm", "--iters", "6", "--mixed-precision", "bf16", "--out", run, *FAST)
    assert res.returncode == 0, res.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["mixed_precision"] == "bf16" and config["eval_precision"] == "fp32"
    bridge, model, cfg = load_model(run / "model.safetensors", device="cpu")
    _, eval_set = make_datasets(cfg.resolve(has_gpu=False))
    evaluate_run(cfg, bridge, model, eval_set, tmp_path / "again", quiet=True)
    in_run, again = (pd.read_csv(d / "eval.csv") for d in (run, tmp_path / "again"))
    for column in ("psnr", "ssim", "psnr_y", "ssim_y"):
        assert in_run[column].tolist() == again[column].tolist(), column  # bit for bit


def test_wsconv_standardizes_the_same_way_whatever_the_activation_dtype():
    """A WS-convolution fed by another convolution sees bf16 under autocast; its ε must not change with that."""
    torch.manual_seed(0)
    conv = WSConv2d(64, 64, 3, padding=1)  # default init: filter variance ~6e-4, where ε = 1e-3 would rescale by ~0.6
    x = torch.randn(2, 64, 8, 8)
    reference = conv(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = conv(x.to(torch.bfloat16)).float()
    relative = ((low - reference).norm() / reference.norm()).item()
    assert relative < 2e-2, relative  # bf16 rounding only (measured ~4e-3); the old ε = 1e-3 gave ~0.3


def test_meanflow_trains_a_batchnorm_backbone_under_bf16_autocast():
    """torch.func.jvp under bf16 autocast met fp32 tangents and bf16 weights at the first BatchNorm'd convolution."""
    bridge = bz.get_bridge("meanflow")
    model = bridge.wrap(bz.get_backbone("timm-unet/resnet18", **bridge.backbone_options(3)))
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = bridge.training_loss(model, x0, 0.5 * x0, generator=[generator(0, "noise", i) for i in range(2)])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_meanflow_jvp_target_ignores_an_outer_autocast():
    """The JVP target is computed in fp32 even when the loss runs under bf16 autocast: with a model whose output
    is linear in z, the training loss's target part is the same in both precisions up to the forward's rounding."""
    bridge = bz.get_bridge("meanflow")
    model = bridge.wrap(bz.get_backbone("unet-test", **bridge.backbone_options(3)))
    x0 = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    gens = lambda: [generator(0, "noise", i) for i in range(2)]  # noqa: E731
    with torch.no_grad():
        fp32 = bridge.training_loss(model, x0, 0.5 * x0, generator=gens())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = bridge.training_loss(model, x0, 0.5 * x0, generator=gens())
    assert abs(bf16.item() - fp32.item()) < 0.05 * abs(fp32.item())


@pytest.mark.parametrize("bridge", ["ddbm-ve", "rdbm", "i2sb"])
def test_backbone_of_finds_the_registered_network_inside_the_bridge_wrappers(bridge):
    from bridgezoo.run.conditioning import TaskConditioned

    b = bz.get_bridge(bridge)
    network = bz.get_backbone("unet-test", **b.backbone_options(3), num_tasks=2)
    model = b.wrap(TaskConditioned(network, ["a", "b"]))
    assert backbone_of(model) is network
    keys = list(model.state_dict())
    backbone_of(model).compile()  # in place: the module tree and the saved names do not change
    assert list(model.state_dict()) == keys


def test_batches_go_to_the_device_in_the_network_memory_format():
    batch = {"gt": torch.rand(2, 3, 8, 8), "lq": torch.rand(2, 3, 8, 8), "task": ["a", "b"]}
    x0, mu = batch_to_device(batch, torch.device("cpu"), channels_last=True)
    assert x0.is_contiguous(memory_format=torch.channels_last) and torch.equal(mu, batch["lq"])
    x0, _ = batch_to_device(batch, torch.device("cpu"))
    assert x0.is_contiguous()


@pytest.mark.parametrize("args,message", [
    (["--eval-precision", "fp8"], "--eval-precision"),
    (["--tf32", "maybe"], "--tf32"),
    (["--eval-batch", "0"], "--eval-batch must be at least 1"),
])
def test_bad_precision_and_batch_options_fail_before_anything_is_written(tmp_path, args, message):
    res = cli("run", "--out", tmp_path / "run", "--iters", "2", *FAST, *args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_data_workers_default_to_the_cores_a_gpu_process_may_use(monkeypatch):
    from bridgezoo.run import default_workers

    assert default_workers(has_gpu=False) == 0  # on CPU workers take cores from the training threads
    monkeypatch.setenv("BRIDGEZOO_CPUS", "4")  # bench's or the SLURM job's share for this process
    assert default_workers(has_gpu=True) == 3
    monkeypatch.setenv("BRIDGEZOO_CPUS", "64")
    assert default_workers(has_gpu=True) == 8
    monkeypatch.delenv("BRIDGEZOO_CPUS")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1024")  # more processes than cores: no workers, not a negative count
    assert default_workers(has_gpu=True) == 0


def test_compile_auto_compiles_long_gpu_runs_only():
    from bridgezoo.presets import COMPILE_MIN_ITERS
    from bridgezoo.run import RunConfig

    def resolved(has_gpu, iters):
        return RunConfig(iters=iters, mixed_precision="no").resolve(has_gpu).compile

    assert resolved(True, COMPILE_MIN_ITERS) == "on" and resolved(True, COMPILE_MIN_ITERS - 1) == "off"
    assert resolved(False, 10**6) == "off"  # inductor's first compile takes minutes on a small CPU
    assert RunConfig(iters=10, compile="on").resolve(False).compile == "on"  # asked for: done


def test_a_compiled_network_runs_eagerly_inside_eager():
    """The probe loss (another batch size, eval mode) must not compile a second graph of the training network."""
    import torch._dynamo

    from bridgezoo.precision import eager

    torch._dynamo.reset()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.SiLU())
    x = torch.rand(2, 3, 8, 8)
    reference = net(x)
    net.compile()
    with eager():
        out = net(x)
    assert torch.equal(out, reference)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 0  # nothing was compiled


def test_wsconv_keeps_float64_for_a_float64_network():
    torch.manual_seed(0)
    conv = WSConv2d(8, 8, 3, padding=1).double()
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64)
    w = conv.weight
    standardized = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.var(dim=(1, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
    expected = torch.nn.functional.conv2d(x, standardized, conv.bias, padding=1)
    assert (conv(x) - expected).abs().max().item() < 1e-12


def test_meanflow_trains_a_compiled_backbone():
    """`--compile` compiles the backbone in place; MeanFlow's JVP runs it eagerly (forward-mode AD through a
    compiled graph is not supported), the loss's own forward goes through the graph (dynamo with its eager backend
    here: the tracing is what is tested, not inductor's code generation)."""
    import torch._dynamo

    torch._dynamo.reset()
    bridge = bz.get_bridge("meanflow")
    model = bridge.wrap(bz.get_backbone("unet-test", **bridge.backbone_options(3)))
    backbone_of(model).compile(backend="eager")
    x0 = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for step in range(3):
        loss = bridge.training_loss(model, x0, 0.5 * x0, generator=[generator(0, "noise", 2 * step + j) for j in range(2)])
        loss.backward()
        assert torch.isfinite(loss)
    # one graph for the training forward; the JVP traced through dynamo recompiled at every call (18 graphs in 3 steps)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
