"""No host–device synchronisation on the per-step path: one training step of every bridge and every sampling step of
every sampler make the host wait for the device nowhere.

On a GPU a step must only queue kernels. The host waits for the device at a read of a device value (`.item()`,
`bool(t)`, `float(t)`, `.tolist()`, `.numpy()`, `.cpu()`: `aten._local_scalar_dense` or a device→host copy), at a
blocking host→device copy (`.to(device)` of a host tensor without `non_blocking`: PyTorch synchronises the stream
after it), and at an operation whose output shape depends on device values (`nonzero`, boolean masks). CI has no
GPU, so two stand-ins are used:

- the real step on the CPU, with per-item generators as the runner uses them, counting every `.item()`-like read
  (`aten._local_scalar_dense`, seen by a TorchDispatchMode) and every `.cpu()`, `.tolist()` and `.numpy()` call
  (wrapped: on a CPU tensor they do not dispatch), which would all be synchronisations with the data on a GPU;
- the step with its data and network on the "meta" device, a device without values that follows CUDA's rules
  (a host tensor in an operation with a device tensor is an error, except a 0-dim one, as on CUDA): the counter
  sees every device→host read and copy and every blocking host→device copy, and answers them with placeholder
  values so that old code runs to the end and its syncs can be counted. Work the method does on host values (its
  grid of times, decisions taken from Python floats) is not a synchronisation and is not counted there.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import bridgezoo as bz
from bridgezoo.run.conditioning import TaskConditioned, set_tasks

aten = torch.ops.aten
SHAPE = (2, 3, 16, 16)
DATA_DEPENDENT = {aten.nonzero.default, aten.masked_select.default, aten._unique2.default, aten.unique_dim.default,
                  aten.unique_consecutive.default, aten.repeat_interleave.Tensor}


def _on(device_type, *tensors) -> bool:
    return any(isinstance(x, torch.Tensor) and (device_type is None or x.device.type == device_type) for x in tensors)


class SyncCounter(TorchDispatchMode):
    """Counts the operations that would make the host wait for the device, by kind.

    `device_type=None`: every call counts (a CPU run standing for a GPU one). `device_type="meta"`: only those on
    meta tensors count, and device→host reads are answered with zeros (meta tensors have no values)."""

    def __init__(self, device_type: str | None = None):
        super().__init__()
        self.device_type, self.counts = device_type, Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        fake = self.device_type is not None
        if func is aten._local_scalar_dense.default and _on(self.device_type, args[0]):
            self.counts["item"] += 1
            if fake:
                return False if args[0].dtype == torch.bool else 0 if not args[0].is_floating_point() else 0.0
        elif func is aten._to_copy.default and fake:
            source, target = args[0], torch.device(kwargs.get("device") or args[0].device)
            if source.device.type == self.device_type and target.type == "cpu":
                self.counts["device->host copy"] += 1
                return torch.zeros(source.shape, dtype=kwargs.get("dtype") or source.dtype)
            if source.device.type == "cpu" and target.type == self.device_type and not kwargs.get("non_blocking"):
                self.counts["blocking host->device copy"] += 1
        elif func is aten.copy_.default and fake:
            dst, src = args[0], args[1]
            if src.device.type == self.device_type and dst.device.type == "cpu":
                self.counts["device->host copy"] += 1
                return dst
            if src.device.type == "cpu" and dst.device.type == self.device_type and not (len(args) > 2 and args[2]):
                self.counts["blocking host->device copy"] += 1
        elif (func in DATA_DEPENDENT or func is aten.equal.default) and _on(self.device_type, *args):
            self.counts[f"data-dependent {func.__name__}"] += 1
        elif func is aten.index.Tensor and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                               for i in args[1] if i is not None) and _on(self.device_type, args[0]):
            self.counts["boolean-mask index"] += 1
        return func(*args, **kwargs)


@contextmanager
def counting(monkeypatch, device_type: str | None = None):
    """A SyncCounter active over the block, with `.cpu()`, `.tolist()` and `.numpy()` counted as reads too."""
    counter = SyncCounter(device_type)
    for name in ("cpu", "tolist", "numpy"):
        original = getattr(torch.Tensor, name)

        def wrapped(self, *args, _original=original, _name=name, **kwargs):
            if _on(counter.device_type, self) and not (_name == "cpu" and device_type is not None):  # meta .cpu()
                counter.counts[f".{_name}()"] += 1  # is a _to_copy, seen by the mode
                if device_type is not None:
                    return _original(torch.zeros(self.shape, dtype=self.dtype), *args, **kwargs)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    try:
        with counter:
            yield counter.counts
    finally:
        monkeypatch.undo()


def _network(bridge, device, num_tasks=0):
    """The micro U-Net the runner would build for `bridge` (its own time embedding and task table included)."""
    torch.manual_seed(0)
    extra = {"num_tasks": num_tasks} if num_tasks else {}
    return bz.get_backbone("unet-test", **bridge.backbone_options(3), **extra).to(device)


class TinyNet(torch.nn.Module):
    """The smallest network of the backbone protocol: a convolution of [x_t, μ] plus a linear function of the
    time(s) (a sampler's syncs do not depend on the network; on meta tensors the U-Net is slow to trace)."""

    def __init__(self, out_channels: int = 3, time_inputs: int = 1):
        super().__init__()
        self.conv = torch.nn.Conv2d(6, out_channels, 3, padding=1)
        self.time = torch.nn.Linear(time_inputs, out_channels)

    def forward(self, x_t, mu, t):
        t = t.reshape(x_t.shape[0], -1).to(x_t.dtype)  # [B] or [B, time_inputs]
        return self.conv(torch.cat([x_t, mu], dim=1)) + self.time(t)[:, :, None, None]


def _pair(device):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(SHAPE, generator=g) * 2 - 1
    return x0.to(device), (x0 + 0.3 * torch.randn(SHAPE, generator=g)).clamp(-1, 1).to(device)


BRIDGES = bz.list_bridges()


@pytest.mark.parametrize("name", BRIDGES)
def test_a_training_step_reads_nothing_back_on_the_cpu(name, monkeypatch):
    """bridge.training_loss with the runner's per-item generators: no .item()/bool/float/.cpu()/.tolist()."""
    bridge = bz.get_bridge(name)
    model = bridge.wrap(_network(bridge, "cpu"))
    x0, mu = _pair("cpu")
    gens = [torch.Generator().manual_seed(k) for k in range(SHAPE[0])]
    bridge.training_loss(model, x0, mu, generator=gens)  # tables built and cached
    with counting(monkeypatch) as counts:
        bridge.training_loss(model, x0, mu, generator=gens).backward()
    assert not counts, f"{name}: {dict(counts)} per training step"


@pytest.mark.parametrize("name", BRIDGES)
def test_a_training_step_stays_on_the_device(name, monkeypatch):
    """The same step with data and network on a simulated device: no sync, no blocking host→device copy, no host
    table mixed with device tensors (that would raise here, as on CUDA)."""
    bridge = bz.get_bridge(name)
    model = bridge.wrap(_network(bridge, "meta"))
    x0, mu = _pair("meta")
    gens = [None] * SHAPE[0]  # meta has no generators; the per-item path is the same
    with counting(monkeypatch, "meta") as counts:
        bridge.training_loss(model, x0, mu, generator=gens)  # tables copied to the device once
        counts.clear()
        bridge.training_loss(model, x0, mu, generator=gens)
    assert not counts, f"{name}: {dict(counts)} per training step"


def test_a_task_conditioned_step_stays_on_the_device(monkeypatch):
    """The runner binds each batch's task labels, then trains: the labels reach the device without a sync."""
    bridge = bz.get_bridge("rdbm")
    model = bridge.wrap(TaskConditioned(_network(bridge, "meta", num_tasks=2), ["derain", "desnow"]))
    x0, mu = _pair("meta")
    with counting(monkeypatch, "meta") as counts:
        set_tasks(model, ["derain", "desnow"])
        bridge.training_loss(model, x0, mu)
        counts.clear()
        set_tasks(model, ["desnow", "derain"])
        bridge.training_loss(model, x0, mu)
        bridge.training_loss(model, x0, mu)
    assert not counts, f"{dict(counts)} per task-conditioned training step"


SAMPLER_CASES = [(b, s) for b in BRIDGES for s in bz.get_bridge(b).samplers]


@pytest.mark.parametrize("name,sampler", SAMPLER_CASES)
def test_sampling_steps_stay_on_the_device(name, sampler, monkeypatch):
    """A whole sampling run (start, then every step of a 4-step grid) with data and network on a simulated device:
    every decision a sampler takes is on its host grid, every coefficient on the device."""
    bridge = bz.get_bridge(name)
    model = bridge.wrap(TinyNet(**bridge.backbone_options(3)).to("meta"))
    _, mu = _pair("meta")
    nfe = 4
    with counting(monkeypatch, "meta") as counts:
        bridge.sample(model, mu, nfe=nfe, sampler=sampler)  # tables copied to the device once
        counts.clear()
        bridge.sample(model, mu, nfe=nfe, sampler=sampler)
    assert not counts, f"{name} × {sampler}: {dict(counts)} in {nfe} steps"


def test_tables_are_copied_to_a_device_once():
    """A bridge's tables (its clock, its grid of training times) are copied to a device the first time only."""
    from bridgezoo.devices import PerDevice, float64_device

    table = PerDevice(torch.arange(4, dtype=torch.float64))
    assert table.on("cpu") is table.host and table.on(None) is table.host
    assert table.on("meta") is table.on(torch.device("meta")) and table.on("meta").device.type == "meta"
    assert float64_device("mps") == torch.device("cpu") and float64_device("cuda:1") == torch.device("cuda:1")
    bridge = bz.get_bridge("rdbm")
    t = torch.full((3,), 0.5, device="meta")
    bridge.coefficients(t, t)
    assert bridge.clock._copies.on("meta") is bridge.clock._copies.on("meta")
    assert bridge.sample_t(2, device="meta").device.type == "meta"
    assert bridge._train_grid("meta") is bridge._train_grid("meta")
    assert all(v.device.type == "meta" for v in bridge.coefficients(t) + bridge.coefficient_derivatives(t))
