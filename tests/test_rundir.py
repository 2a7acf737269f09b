"""The run directory's resumable state is written and read without pickles: resuming a run directory someone else
wrote cannot execute code."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from bridgezoo.errors import OptionError
from bridgezoo.run import RunConfig, run
from bridgezoo.run.rundir import load_tree, save_tree

TINY = dict(bridge="rdbm", backbone="unet-test", iters=4, batch=2, patch=16, eval_max_side=32, save_every=2,
            quiet=True, data="zoo5", tasks=["derain"])


class _Planted:
    """Unpickling this writes a marker file: what a malicious custom_checkpoint_0.pkl could do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_state_trees_round_trip_exactly_without_pickles(tmp_path):
    import random

    import numpy as np

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    tree = {"optimizer": opt.state_dict(), "python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(), "nested": {1: (0.1, None, True, "x"), "inf": float("inf")}}
    save_tree(tree, tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.safetensors"]
    back = load_tree(tmp_path / "t")
    assert back["python"] == tree["python"] and back["nested"] == tree["nested"]
    assert back["numpy"][0] == "MT19937" and np.array_equal(back["numpy"][1], tree["numpy"][1])
    assert back["numpy"][1].dtype == np.uint32 and back["numpy"][2:] == tree["numpy"][2:]
    assert torch.equal(back["torch"], tree["torch"])
    state = back["optimizer"]["state"][0]
    assert all(torch.equal(state[k], tree["optimizer"]["state"][0][k]) for k in state)
    fresh = torch.optim.AdamW(net.parameters(), lr=1e-3)
    fresh.load_state_dict(back["optimizer"])  # what a resume does
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_resume_never_unpickles_a_planted_state(tmp_path):
    out = tmp_path / "run"
    run(RunConfig(out=str(out), **TINY))
    state = out / "state"
    assert not list(state.glob("*.pkl")) and not list(state.glob("*.bin"))  # nothing to unpickle is written
    (out / "model.safetensors").unlink()
    marker = tmp_path / "executed"
    # a state in accelerate's old layout, its pickles planted: refused before anything is loaded
    shutil.rmtree(state)
    state.mkdir()
    (state / "step.json").write_text(json.dumps({"step": 2}))
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl"):
        (state / name).write_bytes(pickle.dumps(_Planted(marker)))
    with pytest.raises(OptionError, match="not a state bridgezoo can load safely.*custom_checkpoint_0.pkl"):
        run(RunConfig(out=str(out), **TINY), resume=True)
    assert not marker.exists()


def test_a_pickle_planted_beside_a_valid_state_is_never_read(tmp_path):
    out = tmp_path / "run"
    cfg = RunConfig(out=str(out), **TINY)
    run(cfg)
    marker = tmp_path / "executed"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"):
        (out / "state" / name).write_bytes(pickle.dumps(_Planted(marker)))
    json.dump({"step": 2}, open(out / "state" / "step.json", "w"))  # resume from step 2 of 4
    (out / "model.safetensors").unlink()
    summary = run(cfg, resume=True)
    assert summary and not marker.exists()
