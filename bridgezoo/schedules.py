"""Schedules as continuous clocks, and the grid of official step indices.

A *clock* is the cumulative schedule s(t) = θ̄_{0:t} = ∫_0^t θ, a non-decreasing function of continuous time
t ∈ [0, 1] with s(0) = 0. Methods defined on a discrete grid of T steps give s at the knots t_k = k/T; between
knots s is linear, i.e. θ(t) = ds/dt is piecewise constant, which is the exact continuous-time process whose
Euler step over one official step reproduces the official update. All tables are built in float64 on the CPU and
read on t's device (copied there once, `devices.PerDevice`).
"""

from __future__ import annotations

import math

import torch

from .devices import PerDevice

F64 = torch.float64


class Clock:
    """Piecewise-linear cumulative schedule s(t) through the knots (k/n, values[k]), k = 0..n, values[0] = 0."""

    def __init__(self, values: torch.Tensor, name: str = "custom"):
        values = torch.as_tensor(values, dtype=F64).flatten()
        if values.numel() < 2 or values[0] != 0:
            raise ValueError(f"clock {name!r}: need at least two knots and values[0] == 0")
        if bool((values[1:] < values[:-1]).any()):
            raise ValueError(f"clock {name!r}: the cumulative schedule must be non-decreasing")
        self.values = values
        self.n = values.numel() - 1
        self.name = name
        self._total = float(values[-1])
        self._copies = PerDevice(values)

    @property
    def total(self) -> float:
        """S = s(1) = θ̄_{0:1} (a Python float, read once: using it costs no device synchronisation)."""
        return self._total

    def _interval(self, tt: torch.Tensor) -> torch.Tensor:
        # The interval that ends at or after tt = t·n; on a knot, the one that ends there (the official step's).
        # The 1e-9 makes float32 grid points such as (k+1)/T land on their knot.
        return (torch.ceil(tt.detach() - 1e-9).long() - 1).clamp(0, self.n - 1)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """s(t) in float64, same shape as t, for t in [0, 1]; differentiable in t (left derivative on a knot)."""
        tt = torch.as_tensor(t, dtype=F64) * self.n
        idx = self._interval(tt)
        values = self._copies.on(tt.device)
        lo, hi = values[idx], values[idx + 1]
        return lo + (tt - idx.to(F64)) * (hi - lo)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        """θ(t) = ds/dt (per unit of t); on a knot, the rate of the interval that ends there (official index)."""
        idx = self._interval(torch.as_tensor(t, dtype=F64) * self.n)
        values = self._copies.on(idx.device)
        return (values[idx + 1] - values[idx]) * self.n


def iddpm_cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """iDDPM cosine betas β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), max_beta), ᾱ(u) = cos²((u + s)/(1 + s)·π/2), i = 0..T−1
    (Nichol & Dhariwal 2021, Eq. 17)."""
    u = torch.arange(T + 1, dtype=F64) / T
    abar = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return torch.clamp(1 - abar[1:] / abar[:-1], max=max_beta)


def linear_betas(T: int, start: float | None = None, end: float | None = None) -> torch.Tensor:
    """DDPM linear betas, scaled as in iDDPM so the total does not depend on T: 1e-4·1000/T … 0.02·1000/T."""
    scale = 1000.0 / T
    start = 1e-4 * scale if start is None else start
    end = 0.02 * scale if end is None else end
    return torch.linspace(start, end, T, dtype=F64)


def sigmoid_betas(T: int, start: float | None = None, end: float | None = None, tau: float = 6.0) -> torch.Tensor:
    """Sigmoid betas: start + (end − start)·sigmoid(linspace(−τ, τ, T)), with the scaled linear range by default."""
    scale = 1000.0 / T
    start = 1e-4 * scale if start is None else start
    end = 0.02 * scale if end is None else end
    return start + (end - start) * torch.sigmoid(torch.linspace(-tau, tau, T, dtype=F64))


def inclusive_clock(thetas: torch.Tensor, name: str) -> Clock:
    """Clock whose value at t = (k+1)/T is the inclusive sum θ_0 + … + θ_k; s(0) = 0."""
    return Clock(torch.cat([torch.zeros(1, dtype=F64), torch.cumsum(thetas, 0)]), name)


def index_grid(T: int, nfe: int) -> torch.Tensor:
    """The grid `linspace(−1, T−1, nfe+1).int()` of official step indices, reversed, as t with index k ↔ t = (k+1)/T
    (computed in float32 then truncated, as official DDIM-style codes do); the last entry, index −1, is t = 0."""
    idx = torch.linspace(-1, T - 1, nfe + 1).int().to(F64)
    return (idx.flip(0) + 1) / T
