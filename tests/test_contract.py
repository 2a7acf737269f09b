"""The contract every registered bridge must satisfy (parametrized over `list_bridges()`: a new bridge is checked
without new test code). The checks live in `bridgezoo.testing`, where a plugin author runs them on their own bridge;
the tests below also check that they catch broken bridges with a message naming the broken property."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bridgezoo as bz
from bridgezoo.testing import CHECKS, ContractError, check_bridge, contract_tests

from helpers import BRIDGES


def test_builtins_are_registered():
    assert {"rdbm", "goub", "fm"} <= set(BRIDGES)


# One test per property of the contract, parametrized over (bridge, case): the same code a plugin author runs
# with `bridgezoo.testing.check_bridge("my-bridge")` (see bridgezoo/testing.py for every claim).
TestBridgeContract = contract_tests(BRIDGES)


def test_pi_zero_with_the_noise_objective_warns_that_nothing_can_be_learned(images64):
    """With π = 0 the noise target is identically 0, and the model that predicts it restores μ exactly."""
    import warnings

    from bridgezoo.bridge import DegenerateBridgeWarning

    x0, mu = images64
    with pytest.warns(DegenerateBridgeWarning, match="nothing to learn"):
        b = bz.get_bridge("rdbm", pi="zero")
    t = torch.full((2,), 0.6, dtype=torch.float64)
    x_t = b.q_sample(x0, mu, t, torch.randn_like(x0))
    assert float(b.target(x0, mu, x_t, t).abs().max()) < 1e-12  # zero up to rounding
    out = b.sample(lambda x, m, tt: torch.zeros_like(x), mu, nfe=5, sampler="ddim")
    torch.testing.assert_close(out, mu, atol=1e-12, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateBridgeWarning)
        bz.get_bridge("rdbm", pi="zero", objective="x0")  # a meaningful π = 0 bridge: no warning
        bz.get_bridge("rdbm")


# ----------------------------------------------------------------------------- the checks catch broken bridges
class SineBridge(bz.Bridge):
    """The README's example plugin, unregistered: a = cos²(πt/2), b = 1 − a, c = σ·sin(πt)."""

    paper = "An example third-party bridge"
    option_spec = {"sigma": bz.Option(0.3, "peak noise std, in [-1, 1] units")}
    option_defaults = {"objective": "x0", "pi": "one"}

    def schedule(self, t):
        a = torch.cos(math.pi * t / 2) ** 2
        return a, 1 - a, self.options["sigma"] * torch.sin(math.pi * t).clamp_min(0)


class NotCleanAtZero(SineBridge):
    def schedule(self, t):
        a, b, c = super().schedule(t)
        return 0.9 * a, 1 - 0.9 * a, c


class NoisyEndLeftPinned(SineBridge):
    """c(1) = σ: the end is noisy, but `pinned` was left at its default True."""

    def schedule(self, t):
        a, b, _ = super().schedule(t)
        return a, b, self.options["sigma"] * torch.sin(math.pi * t / 2)


class WrongInverse(SineBridge):
    """predict_x0 of the residual objective forgets the sign: not the inverse of target."""

    def predict_x0(self, output, x_t, mu, t):
        if self.objective == "residual":
            return mu + output
        return super().predict_x0(output, x_t, mu, t)


class CrashingCoefficients(SineBridge):
    def schedule(self, t):
        return self.tables["a"], None, None  # a plugin bug: no such attribute


def test_a_correct_third_party_bridge_passes_every_check():
    ran = check_bridge(SineBridge)
    assert {r.split("[")[0] for r in ran} == set(CHECKS)
    assert "target_predict_x0_round_trip[objective=residual,pi=one]" in ran
    assert len(ran) == sum(len(c.cases) for c in CHECKS.values())
    check_bridge(SineBridge, sigma=0.1, only=["pinned_end", "q_sample_matches_formula"])


@pytest.mark.parametrize("broken, check, reason", [
    (NotCleanAtZero, "clean_end", "a(0) = 0.9"),
    (NoisyEndLeftPinned, "pinned_end", "set `pinned = False`"),
    (WrongInverse, "target_predict_x0_round_trip[objective=residual,pi=", "predict_x0(target) vs x0"),
    (CrashingCoefficients, "coefficients_shape_dtype_finite", "raised AttributeError"),
])
def test_a_broken_bridge_fails_naming_the_property(broken, check, reason):
    with pytest.raises(ContractError) as err:
        check_bridge(broken)
    text = str(err.value)
    failing = [line for line in text.splitlines() if line.startswith(f"  {check}")]
    assert failing and reason in failing[0], text
    assert text.startswith(f"bridge '{broken.__name__}'"), text
    assert "(property: " in text


def test_the_broken_bridges_pass_every_other_check():
    """Each defect is caught by the property it breaks, not by accident elsewhere."""
    others = {"NotCleanAtZero": ["clean_end", "target_predict_x0_round_trip"],  # velocity at t = 0 too
              "NoisyEndLeftPinned": ["pinned_end"], "WrongInverse": ["target_predict_x0_round_trip"]}
    for cls in (NotCleanAtZero, NoisyEndLeftPinned, WrongInverse):
        check_bridge(cls, skip=others[cls.__name__] + ["oracle_deterministic_samplers_return_x0",
                                                       "oracle_other_samplers_get_close", "monte_carlo_marginals"])


def test_a_wrong_stochastic_sampler_fails_the_monte_carlo_marginals(monkeypatch):
    """IR-SDE's reverse SDE with the noise doubled: the oracle still lands near x0 in the mean, but the states no
    longer follow the forward marginal."""
    from bridgezoo_plugins.bridges.irsde import IRSDE

    check_bridge("irsde", only=["monte_carlo_marginals"])
    original = IRSDE.diffusion_sq
    monkeypatch.setattr(IRSDE, "diffusion_sq", lambda self, t: 4 * original(self, t))
    with pytest.raises(ContractError, match=r"monte_carlo_marginals\[pi=one\]: sampler 'posterior'|"
                                            r"monte_carlo_marginals\[pi=one\]: sampler 'reverse_sde'"):
        check_bridge("irsde", only=["monte_carlo_marginals"])


def test_check_bridge_accepts_names_instances_and_rejects_unknown_checks():
    check_bridge("fm", only=["clean_end", "options_round_trip"])
    check_bridge(bz.get_bridge("goub", pi="residual"), only=["options_round_trip"])
    with pytest.raises(ValueError, match="Did you mean 'clean_end'"):
        check_bridge("fm", only=["clean_ends"])
    with pytest.raises(TypeError, match="registered bridge name"):
        check_bridge(3.0)


def test_contract_tests_in_a_third_party_test_file(tmp_path):
    """The pytest form, as a plugin author writes it: one line per bridge, one test per property; a broken bridge
    fails exactly the tests of the property it breaks."""
    (tmp_path / "test_mine.py").write_text(
        "from bridgezoo.testing import contract_tests\n"
        "from test_contract import SineBridge, NoisyEndLeftPinned\n"
        "TestSine = contract_tests(SineBridge, sigma=0.2)\n"
        "TestNoisy = contract_tests(NoisyEndLeftPinned, only=['pinned_end', 'clean_end'])\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    n_cases = sum(len(c.cases) for c in CHECKS.values())
    assert f"1 failed, {n_cases + 1} passed" in res.stdout, res.stdout + res.stderr
    assert "FAILED test_mine.py::TestNoisy::test_pinned_end" in res.stdout, res.stdout
    assert "set `pinned = False`" in res.stdout
