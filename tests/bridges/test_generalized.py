"""The generalized (θ, λ, π) bridge (bridgezoo/generalized.py): its θ schedules, and IR-SDE, DDBM-VE and BBDM as
its limits (docs/bridges.md, "How the methods relate to the generalized bridge")."""

import itertools

import pytest
import torch

import bridgezoo as bz
from bridgezoo.generalized import sinh_coefficients

from helpers import F64


def test_theta_schedules_are_distinct_and_valid():
    totals, curves = {}, {}
    for schedule in ("cosine", "linear", "sigmoid", "constant", "irsde-cosine"):
        b = bz.get_bridge("rdbm", theta_schedule=schedule)
        t = torch.linspace(0, 1, 201, dtype=F64)
        a = b.coefficients(t)[0].flatten()
        assert a[0].item() == pytest.approx(1, abs=1e-14) and a[-1] == 0 and (a[1:] <= a[:-1]).all()
        totals[schedule] = b.clock.total
        curves[schedule] = a
    names = list(curves)
    for i, j in itertools.combinations(range(len(names)), 2):
        assert (curves[names[i]] - curves[names[j]]).abs().max() > 1e-2, (names[i], names[j])
    assert totals["sigmoid"] == pytest.approx(totals["linear"], rel=1e-9)  # a symmetric sigmoid keeps the sum
    assert totals["constant"] == pytest.approx(1.0)
    assert totals["linear"] == pytest.approx(100 * (1e-3 + 0.2) / 2, rel=1e-9)


# ----------------------------------------------------------------------------- limits
def _errors(scales, gb_coeffs, target):
    errs = [max((u - v).abs().max().item() for u, v in zip(gb_coeffs(e), target)) for e in scales]
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:])), errs
    return errs


def test_irsde_is_the_limit_of_a_growing_total_schedule():
    b = bz.get_bridge("irsde")
    t = torch.linspace(0, 1, 101, dtype=F64)
    s = b.clock(t)
    lam = b.options["stationary_std"] ** 2
    target = [v.flatten() for v in b.coefficients(t)]
    errs = _errors([6, 8, 12, 16, 24], lambda S: sinh_coefficients(s, S, lam), target)
    assert errs[-1] < 1e-6


def test_ddbm_ve_and_bbdm_are_theta_to_zero_limits():
    t = torch.linspace(0, 1, 101, dtype=F64)
    ve = bz.get_bridge("ddbm-ve", sigma_max=2.0)
    target = [v.flatten() for v in ve.coefficients(t)]
    # constant θ = ε, so θ̄_{0:t} = ε·m with m = σ²/σ_M² = t², and 2λε = σ_M²
    errs = _errors([1.0, 0.5, 0.2, 0.1, 0.01], lambda e: sinh_coefficients(e * t**2, e, 4.0 / (2 * e)), target)
    assert errs[-1] < 1e-4
    bb = bz.get_bridge("bbdm")
    m = bb.m(t)
    target = [v.flatten() for v in bb.coefficients(t)]
    errs = _errors([1.0, 0.5, 0.2, 0.1, 0.01], lambda e: sinh_coefficients(e * m, e, 1.0 / e), target)
    assert errs[-1] < 1e-4
