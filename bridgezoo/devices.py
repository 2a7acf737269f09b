"""Coefficients computed where the data are: float64 on the data's device, tables copied there once.

A training or sampling step must only queue work on an accelerator. Moving t to the host to compute a bridge's
coefficients there and copying them back makes the host wait for the device twice per coefficient (a device→host
read, then a blocking host→device copy, after which PyTorch synchronises the stream). So coefficients are computed
in float64 on t's own device (CUDA has float64; Apple's MPS has none, so there they are computed on the CPU, the one
place a step still synchronises), and the tables a bridge builds at setup (schedules, grids: float64 on the CPU)
are copied to each device once and kept there (`PerDevice`). On the CPU nothing moves: the numbers are bit for bit
those of the host computation.
"""

from __future__ import annotations

import torch

F64 = torch.float64


def float64_device(device: torch.device | str | None) -> torch.device:
    """The device on which float64 work for data on `device` is done: the device itself, or the CPU for one without
    float64 (MPS)."""
    device = torch.device("cpu" if device is None else device)
    return torch.device("cpu") if device.type == "mps" else device


def moved(t: torch.Tensor, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """t on `device` (default: its own) in `dtype`: a copy from the host does not block the host (PyTorch would
    synchronise the stream after a blocking one); a copy to the host blocks (it is read right after)."""
    return t.to(device=t.device if device is None else device, dtype=dtype, non_blocking=t.device.type == "cpu")


def as_float64(t, device: torch.device | str | None = None) -> torch.Tensor:
    """t (a tensor or a number) detached, as float64 on `float64_device(device)`, by default t's own device (on the
    CPU or CUDA no copy is made)."""
    t = torch.as_tensor(t).detach()
    return moved(t, float64_device(t.device if device is None else device), F64)


def cast_like(v: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """v in `other`'s dtype on `other`'s device (`moved`)."""
    return moved(v, other.device, other.dtype)


class PerDevice:
    """A host tensor (a table built at setup) and its copies on the devices it is read on, each made once.

    `on(device)` returns the copy on `device` (the tensor itself on its own device): a table indexed or combined at
    every step with tensors on an accelerator is copied there the first time only, not at every call."""

    def __init__(self, tensor: torch.Tensor):
        self.host = tensor
        self._copies: dict[torch.device, torch.Tensor] = {tensor.device: tensor}

    def on(self, device: torch.device | str | None) -> torch.Tensor:
        device = torch.device("cpu" if device is None else device)
        copy = self._copies.get(device)
        if copy is None:
            copy = self._copies[device] = self.host.to(device)
        return copy
