"""The evaluation path: per-image generators (batched = unbatched), input metrics once per content, metrics on
threads, honest timing, an exact precision that no outer autocast leaks into, and restoring a photograph-sized
image within a memory bound by choosing tiles from the free memory."""

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

import bridgezoo as bz
from bridgezoo.run import evaluate as ev
from bridgezoo.run.conditioning import TaskConditioned


class Images:
    """An in-memory evaluation set: two tasks, two image sizes, in an order that makes mixed batches."""

    def __init__(self, sizes=((24, 32), (24, 32), (32, 24), (24, 32), (24, 32), (24, 32)), dtype=torch.float32):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i, (h, w) in enumerate(sizes):
            gt = torch.rand(3, h, w, generator=g, dtype=dtype) * 2 - 1
            lq = (gt + 0.3 * torch.randn(3, h, w, generator=g, dtype=dtype)).clamp(-1, 1)
            self.items.append({"lq": lq, "gt": gt, "task": ("derain", "desnow")[i % 2], "name": f"img{i}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return dict(self.items[i])


def conditioned_model(bridge):
    torch.manual_seed(0)
    net = bz.get_backbone("unet-test", num_tasks=2, **bridge.backbone_options(3))
    return bridge.wrap(TaskConditioned(net, ["derain", "desnow"])).eval()


def outputs_of(monkeypatch, run) -> dict:
    """{image name: restored 3×H×W} of the evaluation `run()` performs (captured where it is scored)."""
    seen, score = {}, ev._score

    def keep(item, out, *args):
        seen[item["name"]] = out
        return score(item, out, *args)

    monkeypatch.setattr(ev, "_score", keep)
    run()
    monkeypatch.setattr(ev, "_score", score)
    return seen


@pytest.mark.parametrize("sampler", ["ddim", "euler_maruyama"])
def test_batched_evaluation_restores_each_image_as_unbatched(tmp_path, monkeypatch, sampler):
    """Same-size images sampled together, each with its own generator and task label, give what each gives alone
    (a deterministic and a stochastic sampler), and the metrics do not depend on the metric threads. In float64:
    in float32 the CPU's batched convolution kernels alone round differently from the single-image ones (~2e-6
    after one network call), whatever the sampler's noise."""
    bridge = bz.get_bridge("rdbm", pi="one")
    model, data = conditioned_model(bridge).double(), Images(dtype=torch.float64)
    alone = outputs_of(monkeypatch, lambda: ev.evaluate(bridge, model, data, tmp_path / "b1", nfe=3, sampler=sampler,
                                                        quiet=True, batch=1))
    together = outputs_of(monkeypatch, lambda: ev.evaluate(bridge, model, data, tmp_path / "b4", nfe=3,
                                                           sampler=sampler, quiet=True, batch=4, metric_threads=2))
    for name, out in alone.items():
        torch.testing.assert_close(together[name], out, rtol=0, atol=1e-6, msg=name)
    one, four = (pd.read_csv(tmp_path / d / "eval.csv") for d in ("b1", "b4"))
    assert list(four["batch"]) == [2, 2, 1, 3, 3, 3] and list(one["batch"]) == [1] * 6
    assert list(four["warmup"]) == [True, True, False, False, False, False]
    pd.testing.assert_frame_equal(one.drop(columns=["seconds", "batch", "warmup"]),
                                  four.drop(columns=["seconds", "batch", "warmup"]), atol=1e-6, rtol=0)
    summary = json.loads((tmp_path / "b4" / "summary.json").read_text())
    assert summary["eval_batch"] == 4 and summary["precision"] == "fp32"
    assert summary["seconds_per_image"] == pytest.approx(four["seconds"][~four["warmup"]].mean())
    assert summary["warmup_seconds_per_image"] == pytest.approx(four["seconds"][four["warmup"]].mean())


def test_evaluation_noise_is_the_named_stream_of_each_image(tmp_path, monkeypatch):
    """Image i's noise is `seeding.generator(seed, "eval", i)`, and `restore` with the same seed reproduces image 0."""
    from bridgezoo.seeding import generator

    bridge = bz.get_bridge("rdbm", pi="one")
    model, data = conditioned_model(bridge), Images()
    outs = outputs_of(monkeypatch, lambda: ev.evaluate(bridge, model, data, tmp_path, nfe=3, sampler="euler_maruyama",
                                                       quiet=True, seed=5))
    from bridgezoo.run.conditioning import set_tasks

    for i in (0, 3):
        set_tasks(model, data[i]["task"])
        own = bridge.sample(model, data[i]["lq"][None], nfe=3, sampler="euler_maruyama", generator=generator(5, "eval", i))
        torch.testing.assert_close(outs[f"img{i}"], own[0].clamp(-1, 1), rtol=0, atol=1e-6)
    set_tasks(model, data[0]["task"])
    torch.testing.assert_close(ev.restore(bridge, model, data[0]["lq"], nfe=3, sampler="euler_maruyama", seed=5),
                               outs["img0"], rtol=0, atol=1e-6)


def test_input_metrics_are_computed_once_per_content(tmp_path, monkeypatch):
    """A second evaluation of the same images (bench: other NFE or samplers, from another dataset object) computes
    only the outputs' metrics; an image whose content changed is measured again."""
    calls = []
    all_metrics = ev.all_metrics
    monkeypatch.setattr(ev, "all_metrics", lambda *a: calls.append(1) or all_metrics(*a))
    monkeypatch.setattr(ev, "_INPUT_METRICS", type(ev._INPUT_METRICS)())  # an empty cache for this test
    bridge = bz.get_bridge("rdbm")
    model = bridge.wrap(bz.get_backbone("unet-test")).eval()
    data = Images(sizes=((16, 16),) * 3)
    first = ev.evaluate(bridge, model, data, tmp_path / "a", nfe=2, quiet=True, crop_border=1)
    assert len(calls) == 3 + 3
    second = ev.evaluate(bridge, model, Images(sizes=((16, 16),) * 3), tmp_path / "b", nfe=3, quiet=True,
                         crop_border=1)
    assert len(calls) == 6 + 3 and first["input"] == second["input"]
    data.items[1]["lq"] = data.items[1]["lq"] * 0.9
    ev.evaluate(bridge, model, data, tmp_path / "c", nfe=2, quiet=True, crop_border=1)
    assert len(calls) == 9 + 3 + 1


def test_fp32_evaluation_ignores_an_outer_autocast_and_states_its_precision(tmp_path, monkeypatch):
    bridge = bz.get_bridge("rdbm")
    torch.manual_seed(0)
    model, data = bridge.wrap(bz.get_backbone("unet-test")).eval(), Images(sizes=((16, 16),) * 2)
    plain = outputs_of(monkeypatch, lambda: ev.evaluate(bridge, model, data, tmp_path / "a", nfe=2, quiet=True))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = outputs_of(monkeypatch, lambda: ev.evaluate(bridge, model, data, tmp_path / "b", nfe=2, quiet=True))
    bf16 = outputs_of(monkeypatch, lambda: ev.evaluate(bridge, model, data, tmp_path / "c", nfe=2, quiet=True,
                                                       precision="bf16"))
    for name in plain:
        torch.testing.assert_close(inside[name], plain[name], rtol=0, atol=0)
        assert 0 < float((bf16[name] - plain[name]).abs().max()) < 0.2
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["precision"] == "bf16"


def test_precision_context_sets_tf32_inside_and_restores_it():
    from bridgezoo.errors import OptionError
    from bridgezoo.precision import _tf32_switches, precision_context

    before = [getattr(ns, attr) for ns, attr, _, _ in _tf32_switches()]
    for precision, on in (("fp32", False), ("tf32", True)):
        with precision_context(precision, "cpu"):
            assert [getattr(ns, attr) for ns, attr, _, _ in _tf32_switches()] == [
                (tf if on else off) for _, _, off, tf in _tf32_switches()]
            assert not torch.is_autocast_enabled("cpu")
    with precision_context("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")
    assert [getattr(ns, attr) for ns, attr, _, _ in _tf32_switches()] == before
    with pytest.raises(OptionError, match="fp32, tf32, bf16"):
        with precision_context("fp16", "cpu"):
            pass


def test_timing_reports_the_warm_up_batch_apart():
    df = pd.DataFrame({"seconds": [9.0, 9.0, 1.0, 2.0], "warmup": [True, True, False, False]})
    timing = ev.timing_summary(df)
    assert timing["seconds_per_image"] == 1.5 and timing["warmup_seconds_per_image"] == 9.0
    ev.device_sync("cpu")  # nothing queued on a CPU


def test_tiles_are_chosen_from_the_memory_at_hand_and_a_clear_error_names_tile():
    bridge = bz.get_bridge("rdbm")
    model = bridge.wrap(bz.get_backbone("unet-test")).eval()
    lq = torch.zeros(1, 3, 300, 400)
    roomy = ev.TilePlanner(bridge, model, budget=1 << 40).plan(lq)
    assert roomy.tile == 0 and roomy.message is None
    planner = ev.TilePlanner(bridge, model, budget=int(0.4 * roomy.image_bytes))
    tight = planner.plan(lq)
    assert 64 <= tight.tile < 400 and tight.tile % 16 == 0 and "--tile" in tight.message
    assert tight.image_bytes <= 0.4 * roomy.image_bytes
    assert planner.batch_that_fits(tight, lq, 8) == 1
    with pytest.raises(MemoryError, match="--tile SIZE"):
        ev.TilePlanner(bridge, model, budget=1000).plan(lq)
    assert ev.TilePlanner(bridge, model, budget=1000).plan(lq[..., :64, :64]).tile == 0  # small: never measured


TINY = '''
import resource, sys, torch, torch.nn.functional as F
from torch import nn
import bridgezoo as bz
from bridgezoo.backbone import FullAttention, PreNormResidual
from bridgezoo.run.evaluate import restore
from bridgezoo.memory import peak_tensor_bytes

class Tiny(nn.Module):
    """conv → full attention over the 1/8-resolution map (the U-Net's middle) → conv."""
    def __init__(self):
        super().__init__()
        self.inp, self.out = nn.Conv2d(6, 16, 3, padding=1), nn.Conv2d(16, 3, 3, padding=1)
        self.attn = PreNormResidual(16, FullAttention(16, heads=2, dim_head=8))
    def forward(self, x, mu, t):
        h = F.silu(self.inp(torch.cat([x, mu], 1)))
        h = h + F.interpolate(self.attn(F.avg_pool2d(h, 8)), size=h.shape[-2:])
        return self.out(h)

torch.manual_seed(0)
bridge = bz.get_bridge("rdbm", objective="x0")
model = bridge.wrap(Tiny()).eval()
lq = torch.rand(3, 1050, 1680) * 2 - 1
restore(bridge, model, lq[:, :32, :32], nfe=1)  # libraries loaded, kernels chosen: then count
peak_tensor_bytes(torch.zeros, 1)  # the probe's one-time cost: its dispatch mode imports torch's tracing modules
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = restore(bridge, model, lq, nfe=1, budget=BUDGET, say=lambda line: print("SAID", line))
assert out.shape == lq.shape and bool(torch.isfinite(out).all())
print("EXTRA_MB", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
'''


def test_restoring_a_photograph_stays_within_the_memory_at_hand(tmp_path):
    """A 1680×1050 image with 200 MiB usable: `restore` measures its model, sees that the whole image would not
    fit (about 0.6 GiB here; 6 GB with the N×N attention of old), says which tiles it uses, and its process grows
    by less than the 200 MiB (maximum resident set, in a fresh process, counted after the libraries and the
    probe's tracing modules are loaded: a fixed ~150 MB once)."""
    budget = 200 << 20
    script = tmp_path / "tiny.py"
    script.write_text(textwrap.dedent(TINY).replace("BUDGET", str(budget)))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert res.returncode == 0, res.stderr[-2000:]
    said = [line for line in res.stdout.splitlines() if line.startswith("SAID")]
    assert len(said) == 1 and "1680×1050" in said[0] and "tiles" in said[0] and "--tile" in said[0], res.stdout
    assert float(said[0].split("needs about ")[1].split(" GiB")[0]) > budget / 2**30
    extra = float(res.stdout.split("EXTRA_MB")[1])
    assert extra < budget / 2**20, res.stdout


def test_eval_csv_names_steps_and_counts_the_network_evaluations_made(tmp_path):
    """Steps and network evaluations are named apart: Heun at 4 steps makes 2·4 − 1 = 7 backbone calls per image,
    counted on the backbone (a forward hook), in eval.csv and summary.json; a tiled image counts per tile."""
    bridge = bz.get_bridge("ddbm-ve")
    model = conditioned_model(bridge)
    summary = ev.evaluate(bridge, model, Images(), tmp_path / "whole", nfe=4, sampler="heun", quiet=True, batch=3)
    rows = pd.read_csv(tmp_path / "whole" / "eval.csv")
    assert "nfe" not in rows and set(rows["steps"]) == {4} and set(rows["evaluations"]) == {7}
    assert summary["steps"] == 4 and summary["evaluations"] == 7 and "nfe" not in summary
    ddim = ev.evaluate(bridge, model, Images(), tmp_path / "tiles", nfe=4, sampler="ddim", quiet=True, tile=16,
                       overlap=4)
    assert ddim["steps"] == 4 and ddim["evaluations"] == 4  # each tile is sampled in 4 evaluations
    assert ev.steps_of({"nfe": 10}) == 10 and ev.steps_of({"steps": 3, "nfe": 10}) == 3  # older summaries
