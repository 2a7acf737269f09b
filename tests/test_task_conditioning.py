"""Task conditioning (`bridgezoo run --task-conditioned`): the label reaches the network, training learns a
different embedding per task, and `restore --task` reproduces the evaluation; mistakes are one clear line."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import bridgezoo as bz
from bridgezoo.run.conditioning import TaskConditioned, set_tasks, task_names
from bridgezoo.errors import OptionError

from helpers import cli, fast

FAST = fast(nfe=3, tasks=None, log_every=1, bridge="rdbm", bridge_opt="objective=x0")


@pytest.mark.parametrize("backbone", ["unet-test", "timm-unet/resnet18"])
def test_the_bound_task_is_the_index_the_network_receives(backbone):
    torch.manual_seed(0)
    net = bz.get_backbone(backbone, num_tasks=3)
    model = TaskConditioned(net, ["derain", "lowlight", "dehaze"]).eval()
    x, mu, t = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32), torch.rand(4)
    # zero-initialised table: before training the task-conditioned network is the blind one
    set_tasks(model, "lowlight")
    assert torch.equal(model(x, mu, t), net(x, mu, t, task=torch.ones(4, dtype=torch.long)))
    with torch.no_grad():
        net.task_embedding.table.weight.normal_()
    blind = bz.get_backbone(backbone)
    blind.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("task_embedding")})
    outs = {}
    for name, index in (("derain", 0), ("lowlight", 1), ("dehaze", 2)):
        set_tasks(model, name)
        outs[name] = model(x, mu, t)
        assert torch.equal(outs[name], net(x, mu, t, task=torch.full((4,), index)))
    assert not torch.allclose(outs["derain"], outs["dehaze"])
    # one label per image of a batch
    set_tasks(model, ["derain", "lowlight", "dehaze", "derain"])
    mixed = model(x, mu, t)
    assert torch.equal(mixed[2], outs["dehaze"][2]) and torch.equal(mixed[1], outs["lowlight"][1])
    with pytest.raises(OptionError, match="'desnow'.*derain, lowlight, dehaze"):
        set_tasks(model, "desnow")
    with pytest.raises(ValueError, match="task-conditioned"):
        net(x, mu, t)
    with pytest.raises(ValueError, match="without num_tasks"):
        blind(x, mu, t, task=torch.zeros(4, dtype=torch.long))
    assert task_names(model) == ["derain", "lowlight", "dehaze"] and task_names(blind) is None


def test_run_learns_a_task_embedding_and_restore_needs_and_uses_the_task(tmp_path):
    out = tmp_path / "run"
    res = cli("run", "--task-conditioned", "--tasks", "lowlight", "dehaze", "--iters", "12", "--out", out, *FAST)
    assert res.returncode == 0, res.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["task_conditioned"] is True and config["task_names"] == ["lowlight", "dehaze"]
    w = load_file(str(out / "model.safetensors"))
    table = w["network.task_embedding.table.weight"]
    assert table.shape[0] == 2 and not torch.allclose(table[0], table[1])  # each task moved its own row
    lq = sorted((out / "samples").glob("dehaze_*_lq.png"))[0]
    expected = iio.imread(str(lq).replace("_lq.png", "_output.png"))
    res = cli("restore", "--run", out, lq, "--out", tmp_path / "none", "--quiet")
    assert res.returncode != 0 and "task-conditioned" in res.stderr and "--task" in res.stderr
    assert not (tmp_path / "none").exists()
    res = cli("restore", "--run", out, lq, "--out", tmp_path / "bad", "--task", "derain", "--quiet")
    assert res.returncode != 0 and "lowlight, dehaze" in res.stderr and not (tmp_path / "bad").exists()
    res = cli("restore", "--run", out, lq, "--out", tmp_path / "ok", "--task", "dehaze", "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    assert np.array_equal(iio.imread(tmp_path / "ok" / lq.name), expected)  # the evaluation's output exactly
    res = cli("restore", "--run", out, lq, "--out", tmp_path / "other", "--task", "lowlight", "--quiet")
    assert res.returncode == 0 and not np.array_equal(iio.imread(tmp_path / "other" / lq.name), expected)


def test_a_blind_model_refuses_a_task(tmp_path):
    out = tmp_path / "run"
    assert cli("run", "--tasks", "lowlight", "--iters", "2", "--out", out, *FAST).returncode == 0
    res = cli("restore", "--run", out, next((out / "samples").glob("*_lq.png")), "--out", tmp_path / "r",
              "--task", "lowlight", "--quiet")
    assert res.returncode != 0 and "blind model" in res.stderr
