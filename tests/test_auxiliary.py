"""A bridge's auxiliary network (`bridgezoo.Auxiliary`), the core's two-stage training, on a toy third-party bridge:
`bridgezoo run` trains it first, saves it, freezes it and hands it to the bridge; a run interrupted in stage 1 or
in stage 2 and resumed ends with the weights of an uninterrupted one; `load_model` restores it from the weights file."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import bridgezoo
import bridgezoo as bz
from bridgezoo.registry import registry
from bridgezoo.run import RunConfig, load_model, run

from dataset_fixtures import make_pair


class Crash(RuntimeError):
    """Stands for a process killed after its last saved state."""


class AuxSine(bz.Bridge):
    """The README's sine bridge whose condition is μ refined by an auxiliary network trained to predict x0."""

    paper = "A toy two-stage third-party bridge"
    option_defaults = {"objective": "x0", "pi": "one"}
    crash_at = {"aux": None, "main": None}  # crash on this call of the stage's training loss (counted from 1)
    calls = {"aux": 0, "main": 0}
    nan_at = None  # the stage-1 call whose loss is NaN

    def schedule(self, t):
        a = torch.cos(math.pi * t / 2) ** 2
        return a, 1 - a, 0.3 * torch.sin(math.pi * t).clamp_min(0)

    def auxiliary(self):
        return bz.Auxiliary(loss=self.auxiliary_loss, iters=6)

    @staticmethod
    def _count(stage):
        if torch.is_grad_enabled():  # training steps, not the probe loss
            AuxSine.calls[stage] += 1
            if AuxSine.calls[stage] == AuxSine.crash_at[stage]:
                raise Crash(stage)

    def auxiliary_loss(self, network, x0, mu, generator):
        self._count("aux")
        half = torch.full((mu.shape[0],), 0.5, dtype=mu.dtype, device=mu.device)
        loss = (network(mu, mu, half) - x0).abs().mean()
        return loss * float("nan") if AuxSine.calls["aux"] == AuxSine.nan_at else loss

    def training_loss(self, model, x0, mu, generator=None):
        self._count("main")
        half = torch.full((mu.shape[0],), 0.5, dtype=mu.dtype, device=mu.device)
        return super().training_loss(model, x0, self.auxiliary_network(mu, mu, half), generator)


class _Plugin:
    @staticmethod
    @bridgezoo.hookimpl
    def register_bridges(register):
        register(AuxSine, name="aux-sine")


@pytest.fixture()
def data(tmp_path):
    root = tmp_path / "data"
    for i in range(4):
        make_pair(root / "LQ" / f"{i}.png", root / "GT" / f"{i}.png", i, h=24, w=24)
    registry().load()
    registry().add_plugin(_Plugin())
    AuxSine.calls.update(aux=0, main=0)
    AuxSine.crash_at.update(aux=None, main=None)
    AuxSine.nan_at = None
    return root


def _run(data, out, resume=False):
    cfg = RunConfig(bridge="aux-sine", backbone="unet-test", data=str(data), iters=4, batch=2, patch=16,
                    log_every=1, save_every=2, num_workers=0, quiet=True, out=str(out))
    run(cfg, resume=resume)
    return load_file(str(out / "model.safetensors")), load_file(str(out / "auxiliary.safetensors"))


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stage, call", [("aux", 5), ("main", 3)])
def test_a_run_interrupted_in_either_stage_resumes_to_the_weights_of_an_uninterrupted_one(data, tmp_path, stage, call):
    model, aux = _run(data, tmp_path / "ref")
    assert AuxSine.calls == {"aux": 6, "main": 4}
    assert any(k.startswith("__auxiliary__.") for k in model) and aux  # saved in the run and inside the weights
    assert not (tmp_path / "ref" / "auxiliary_state").exists()  # stage 1's state is dropped once it is saved

    AuxSine.calls.update(aux=0, main=0)
    AuxSine.crash_at[stage] = call
    with pytest.raises(Crash):
        _run(data, tmp_path / "cut")
    assert (tmp_path / "cut" / ("auxiliary_state" if stage == "aux" else "state") / "step.json").exists()
    assert (tmp_path / "cut" / "auxiliary.safetensors").exists() == (stage == "main")
    AuxSine.crash_at[stage] = None
    AuxSine.calls.update(aux=0, main=0)
    model2, aux2 = _run(data, tmp_path / "cut", resume=True)
    # resumed from the state saved at step 4 of stage 1 (2 steps left, then all of stage 2), or at step 2 of stage 2
    assert AuxSine.calls == ({"aux": 2, "main": 4} if stage == "aux" else {"aux": 0, "main": 2})
    assert _equal(aux, aux2) and _equal(model, model2)
    steps = [json.loads(x)["step"] for x in (tmp_path / "cut" / "auxiliary.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_load_model_restores_the_frozen_auxiliary_network(data, tmp_path):
    model, aux = _run(data, tmp_path / "run")
    bridge, _, _ = load_model(tmp_path / "run" / "model.safetensors", device="cpu")
    net = bridge.auxiliary_network
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert _equal(aux, {k: v for k, v in net.state_dict().items()})


def test_pi_uncertainty_names_the_missing_auxiliary_network():
    with pytest.raises(bz.OptionError, match="auxiliary network, which this bridge does not declare"):
        bz.get_bridge("rdbm", pi="uncertainty")
    assert bz.get_bridge("rdbm").auxiliary() is None


def test_a_non_finite_stage_1_loss_stops_before_saving_the_auxiliary_network(data, tmp_path):
    AuxSine.nan_at = 3
    with pytest.raises(bz.BridgezooError, match="stage 1 .*non-finite loss"):
        _run(data, tmp_path / "run")
    assert not (tmp_path / "run" / "auxiliary.safetensors").exists() and AuxSine.calls["main"] == 0
    assert json.loads((tmp_path / "run" / "auxiliary_state" / "step.json").read_text())["step"] == 2
