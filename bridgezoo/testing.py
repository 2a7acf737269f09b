"""The bridge contract as code: the checks every built-in bridge passes, runnable on your own bridge in one line.

    from bridgezoo.testing import check_bridge
    check_bridge("sine")                     # a registered name (or alias) ...
    check_bridge(SineBridge, sigma=0.2)      # ... or the class (registered or not), with options

`check_bridge` runs every check and raises `ContractError` (an AssertionError) whose message names each failing
property, the case (π, objective) and what was wrong. In a pytest file, one test per property:

    from bridgezoo.testing import contract_tests
    TestSine = contract_tests("sine")        # pytest collects TestSine::test_<check>[case]

bridgezoo's own tests/test_contract.py is `contract_tests(list_bridges())`: one piece of code serves both.

A case whose option values the bridge declares undefined (`Bridge.undefined`) must raise OptionError with
the reason instead. What is checked (see `CHECKS` for the exact claims): the coefficients (shape, dtype, finite; t = 0 is clean,
a = 1 and c = 0; a pinned bridge has x_1 = μ), q_sample against the formula for every π, option round trips and
error messages, target/predict_x0 round trips for every objective × π, finiteness at the ends of the sampling
grid, the grids, the training distribution of t, oracle sampling (a model that returns the exact target makes
every deterministic sampler return x0 and the others land near it), Monte Carlo marginals (a stochastic sampler's
intermediate states, under the oracle, follow q(x_t | x0, μ)), the training loss and `describe()`.

Only the public bridge API is used (docs/design.md, "Public API"), plus `sampler_info` (which samplers are
deterministic) and `coefficient_derivatives` (to skip the velocity round trip where dx_t/dt carries no x0), each in one
helper. All inputs are float64, seeded, and small: a full check of one bridge takes about a second on one CPU thread.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

import bridgezoo as bz
from bridgezoo.errors import suggest

F64 = torch.float64
PI_MODES = tuple(bz.PI_MODES)  # every π and every objective of the core: a new one is checked without new code
OBJECTIVES = tuple(bz.OBJECTIVES)


class ContractError(AssertionError):
    """A bridge breaks its contract; the message lists each failing property with the case and the reason."""


# ----------------------------------------------------------------------------- the bridge under test
class Subject:
    """The bridge under test: a registered name, a `Bridge` subclass or a `Bridge` instance, plus base options.

    `make(**overrides)` builds it (overrides win over the base options); `rebuild(b)` builds it again from
    `b.options`, the way a run directory rebuilds a bridge from its config.
    """

    def __init__(self, bridge: str | type | Any, **options):
        if isinstance(bridge, str):
            self.name, self.cls = bridge, None
        elif isinstance(bridge, type) and issubclass(bridge, bz.Bridge):
            self.name, self.cls = None, bridge
        elif isinstance(bridge, bz.Bridge):
            self.name, self.cls = None, type(bridge)
            options = {**bridge.options, **options}
        else:
            raise TypeError(f"expected a registered bridge name, a bridgezoo.Bridge subclass or instance; "
                            f"got {bridge!r}")
        self.options = options
        self.instance = bridge if isinstance(bridge, bz.Bridge) else None

    @property
    def label(self) -> str:
        return self.name if self.name is not None else (self.cls.name or self.cls.__name__)

    def make(self, **overrides):
        """The bridge with the base options and `overrides`: the instance under test itself where they are its own."""
        opts = {**self.options, **overrides}
        if self.instance is not None and opts == self.instance.options:
            return self.instance
        return bz.get_bridge(self.name, **opts) if self.name is not None else self.cls(**opts)

    def bridge_class(self) -> type:
        """The Bridge subclass under test."""
        return self.cls if self.cls is not None else type(bz.get_bridge(self.name, **self.options))

    def rebuild(self, b):
        return bz.get_bridge(b.name, **b.options) if self.name is not None else type(b)(**b.options)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{self.label!r} with {opts}" if opts else repr(self.label)


# ----------------------------------------------------------------------------- helpers (public API only)
def oracle(bridge, x0: torch.Tensor) -> Callable:
    """The model that returns the exact target computed from the true x0 (and the x_t it is given)."""

    def model(x_t, mu, t):
        return bridge.target(x0, mu, x_t, t)

    return model


def image_pair(seed: int = 0, shape: Sequence[int] = (2, 3, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded float64 pair (x0, μ) inside (-0.9, 0.9), so clipping never acts; μ = x0 + 0.4·noise, clamped."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(*shape, generator=g, dtype=F64) * 1.8 - 0.9
    mu = (x0 + 0.4 * torch.randn(x0.shape, generator=g, dtype=F64)).clamp(-0.9, 0.9)
    return x0, mu


def _noise(like: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.randn(like.shape, generator=torch.Generator().manual_seed(seed), dtype=like.dtype)


def _sampler_kind(b, sampler: str) -> tuple[bool, bool]:
    """(deterministic, exact under the oracle) for one of the bridge's samplers."""
    info = b.sampler_info(sampler)
    return bool(info.deterministic), bool(info.deterministic and info.oracle_exact)


def _all_samplers(b) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*b.samplers, "ddim")))


def _speed_of_a(b, t: torch.Tensor) -> float:
    """max |da/dt| at t: where it is 0 the velocity of the π = 0 path does not contain x0."""
    return float(b.coefficient_derivatives(t)[0].abs().max())


def _close(actual, expected, what: str, atol: float, rtol: float = 0.0) -> None:
    """torch.testing.assert_close's test (same shape and dtype; |actual − expected| ≤ atol + rtol·|expected| or equal,
    NaN never close) without importing torch.testing, whose imports take seconds: every run's start-up check
    (`bridgezoo.run.build.exercise_bridge`) calls this."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} vs {expected.dtype}"
    diff = (actual - expected).abs()
    bad = ~((diff <= atol + rtol * expected.abs()) | (actual == expected))
    if bool(bad.any()):
        worst = diff[bad].nan_to_num(float("inf")).max().item()
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.numel()} elements are not close; the greatest "
                             f"difference is {worst:.3g} (atol {atol:g}, rtol {rtol:g})")


def _raises(exc_type, pattern: str, fn: Callable, what: str) -> BaseException:
    try:
        fn()
    except exc_type as exc:
        if not re.search(pattern, str(exc)):
            raise AssertionError(f"{what}: raised {type(exc).__name__} without {pattern!r}: {exc}") from None
        return exc
    raise AssertionError(f"{what}: no {exc_type.__name__} was raised")


# ----------------------------------------------------------------------------- the checks
@dataclass(frozen=True)
class Check:
    """One property of the contract: `fn(subject, **case)` raises AssertionError when it does not hold."""

    name: str
    claim: str
    fn: Callable
    cases: tuple[dict, ...] = ({},)

    def run(self, subject: Subject, case: dict | None = None) -> None:
        """Run the check on one case; a case the bridge declares undefined (`Bridge.undefined`, e.g. conditional
        diffusion with π ≠ one) is checked to raise OptionError with the bridge's reason instead."""
        case = case or {}
        with warnings.catch_warnings():  # π = 0 with the noise objective is a valid (warned) corner of the grid
            warnings.simplefilter("ignore", bz.DegenerateBridgeWarning)
            cls = subject.bridge_class()
            if case and not cls.defines(**case):
                _raises(bz.OptionError, "is not defined for this method: ", lambda: subject.make(**case),
                        f"{_case_id(case)} (declared undefined in {cls.__name__}.undefined)")
                return
            self.fn(subject, **case)


CHECKS: dict[str, Check] = {}


def _check(claim: str, cases: Iterable[dict] = ({},)):
    def add(fn):
        CHECKS[fn.__name__] = Check(fn.__name__, claim, fn, tuple(cases))
        return fn

    return add


def _grid(**axes) -> list[dict]:
    cases = [{}]
    for key, values in axes.items():
        cases = [{**c, key: v} for v in values for c in cases]
    return cases


@_check("coefficients(t) are three finite tensors of shape t.shape + (1, 1, 1) in t's float dtype; a 0-d t "
        "gives 0-d tensors")
def coefficients_shape_dtype_finite(subject):
    b = subject.make()
    for dtype in (torch.float32, F64):
        t = torch.linspace(0, 1, 101, dtype=dtype)
        for label, v in zip("abc", b.coefficients(t)):
            assert v.shape == (101, 1, 1, 1) and v.dtype == dtype, \
                f"{label}(t) for t of shape [101] and {dtype}: got shape {tuple(v.shape)} and {v.dtype}"
            bad = ~torch.isfinite(v.flatten())
            assert not bad.any(), f"{label}(t) is not finite at t = {t[bad].tolist()[:5]}"
    shape = tuple(b.coefficients(torch.tensor(0.5))[0].shape)
    assert shape == (), f"a(t) for a 0-d t has shape {shape}, expected ()"


@_check("t = 0 is the clean end: a(0) = 1, c(0) = 0 and q_sample(x0, μ, 0, ε) = x0")
def clean_end(subject):
    x0, mu = image_pair()
    b = subject.make()
    a, _, c = b.coefficients(torch.tensor([0.0, 1.0], dtype=F64))
    assert abs(a[0].item() - 1) <= 1e-12, f"a(0) = {a[0].item():.12g}, expected 1"
    assert abs(c[0].item()) <= 1e-12, f"c(0) = {c[0].item():.12g}, expected 0"
    _close(b.q_sample(x0, mu, torch.zeros(2, dtype=F64), _noise(x0, 1)), x0, "q_sample at t = 0 vs x0", atol=1e-12)


@_check("a bridge with `pinned = True` (the default) ends exactly at μ: q_sample(x0, μ, 1, ε) = μ; a bridge "
        "whose end is noisy or only close to μ must set `pinned = False`")
def pinned_end(subject):
    x0, mu = image_pair()
    b = subject.make()
    if not b.pinned:
        return
    a, bb, c = (v.item() for v in b.coefficients(torch.tensor(1.0, dtype=F64)))
    _close(b.q_sample(x0, mu, torch.ones(2, dtype=F64), _noise(x0, 1)), mu,
           f"pinned = True but x_1 ≠ μ (a(1) = {a:.6g}, b(1) = {bb:.6g}, c(1) = {c:.6g}); set `pinned = False` "
           "if the end is meant to be noisy", atol=1e-12)


@_check("q_sample(x0, μ, t, ε) = a·x0 + b·μ + c·π(x0, μ)⊙ε for every π, in float64 and float32",
        _grid(pi=PI_MODES))
def q_sample_matches_formula(subject, pi):
    x0, mu = image_pair()
    b = subject.make(pi=pi)
    t = torch.tensor([0.3, 0.7], dtype=F64)
    noise = _noise(x0, 2)
    a, bb, c = b.coefficients(t)
    field = {"zero": torch.zeros_like(x0), "one": torch.ones_like(x0), "residual": x0 - mu}[pi]
    _close(b.pi_field(x0, mu), field, f"pi_field for π = {pi}", atol=0)
    _close(b.q_sample(x0, mu, t, noise), a * x0 + bb * mu + c * field * noise, "q_sample vs the formula",
           atol=1e-7, rtol=1e-7)
    x32 = b.q_sample(x0.float(), mu.float(), t.float(), noise.float())
    assert x32.dtype == torch.float32 and x32.shape == x0.shape, \
        f"q_sample on float32 inputs gave {x32.dtype} of shape {tuple(x32.shape)}"


@_check("rebuilding from `b.name` and `b.options` gives the same options, name and coefficients")
def options_round_trip(subject):
    b = subject.make()
    again = subject.rebuild(b)
    assert again.options == b.options, f"options changed on rebuild: {b.options} -> {again.options}"
    assert again.name == b.name, f"name changed on rebuild: {b.name!r} -> {again.name!r}"
    if subject.name is not None:
        assert b.name == subject.name, f"get_bridge({subject.name!r}).name is {b.name!r}"
    t = torch.linspace(0, 1, 11, dtype=F64)
    for label, u, v in zip("abc", b.coefficients(t), again.coefficients(t)):
        assert torch.equal(u, v), f"{label}(t) differs after a rebuild from b.options"


@_check("an unknown option, a bad choice and an unknown sampler raise OptionError naming the valid ones")
def bad_names_are_named(subject):
    err = _raises(bz.OptionError, "Did you mean 'pi'", lambda: subject.make(pii="one"), "option pii='one'")
    assert "objective" in str(err), f"the error for an unknown option does not list the valid ones: {err}"
    _raises(bz.OptionError, "not one of", lambda: subject.make(pi="half"), "option pi='half'")
    b = subject.make()
    _raises(bz.OptionError, "Valid samplers",
            lambda: b.sample(lambda x, m, t: x, torch.zeros(1, 3, 4, 4), sampler="nope"), "sampler='nope'")


@_check("predict_x0(target(x0, μ, x_t, t), x_t, μ, t) = x0 (to 1e-9, float64) for every objective × π, the target "
        "is finite and has out_channels(3) channels", _grid(objective=OBJECTIVES, pi=PI_MODES))
def target_predict_x0_round_trip(subject, objective, pi):
    x0, mu = image_pair()
    b = subject.make(objective=objective, pi=pi)
    noise = _noise(x0, 3)
    for tv in (0.0, 0.01, 0.37, 0.5, 0.93):
        t = torch.full((2,), tv, dtype=F64)
        if objective == "velocity" and _speed_of_a(b, t) < 1e-12:
            continue  # a path that starts with zero speed (DDBM-VE: a = 1 − t²) has no x0 in its velocity
        x_t = b.q_sample(x0, mu, t, noise)
        target = b.target(x0, mu, x_t, t)
        assert target.shape[1] == b.out_channels(3), \
            f"t = {tv}: target has {target.shape[1]} channels, out_channels(3) = {b.out_channels(3)}"
        assert torch.isfinite(target).all(), f"t = {tv}: the target is not finite"
        _close(b.predict_x0(target, x_t, mu, t), x0, f"t = {tv}: predict_x0(target) vs x0", atol=1e-9)


@_check("target, predict_x0 and loss are finite at the first two and last two times of the sampling grid, for "
        "every objective", _grid(objective=OBJECTIVES))
def finite_at_grid_ends(subject, objective):
    x0, mu = image_pair()
    b = subject.make(objective=objective)
    grid = b.timesteps(b.default_nfe)
    for i, tv in enumerate((grid[0].item(), grid[-1].item(), grid[1].item(), grid[-2].item())):
        t = torch.full((2,), tv, dtype=F64)
        x_t = b.q_sample(x0, mu, t, _noise(x0, 4 + i))
        out = b.target(x0, mu, x_t, t)
        assert torch.isfinite(out).all(), f"t = {tv}: the target is not finite"
        assert torch.isfinite(b.predict_x0(out, x_t, mu, t)).all(), f"t = {tv}: predict_x0 is not finite"
        assert torch.isfinite(b.loss(out, x0, mu, x_t, t)), f"t = {tv}: the loss is not finite"


@_check("timesteps(nfe, sampler) starts at 1 (to 1e-3), ends at exactly 0 and strictly decreases, for every "
        "sampler and nfe in (1, 5, default_nfe)")
def timesteps_decrease_from_1_to_0(subject):
    b = subject.make()
    for sampler in b.samplers:
        for nfe in (1, 5, b.default_nfe):
            grid = b.timesteps(nfe, sampler)
            where = f"timesteps({nfe}, {sampler!r}) = {grid.tolist()[:6]}{' …' if len(grid) > 6 else ''}"
            assert abs(grid[0].item() - 1.0) <= 1e-3, f"{where} does not start at 1"  # DDBM starts at σ_max − 1e-4
            assert grid[-1].item() == 0.0, f"{where} does not end at 0"
            assert (grid[1:] < grid[:-1]).all(), f"{where} does not strictly decrease"


@_check("sample_t(n, generator) gives n times in (0, 1], the same for the same seed, and more than 5 distinct")
def sample_t_in_range_and_seeded(subject):
    b = subject.make()
    t1 = b.sample_t(500, generator=torch.Generator().manual_seed(3))
    t2 = b.sample_t(500, generator=torch.Generator().manual_seed(3))
    assert t1.shape == (500,), f"sample_t(500) has shape {tuple(t1.shape)}"
    assert torch.equal(t1, t2), "sample_t with the same seed gave different times"
    assert (t1 > 0).all() and (t1 <= 1).all(), f"sample_t left (0, 1]: min {t1.min().item()}, max {t1.max().item()}"
    assert t1.unique().numel() > 5, f"sample_t gave only {t1.unique().numel()} distinct times"


@_check("with the oracle model, every deterministic sampler marked exact returns x0 (max error 1e-5) at nfe 2, 5 "
        "and default_nfe, for every π, and its trajectory has one state per visited time", _grid(pi=PI_MODES))
def oracle_deterministic_samplers_return_x0(subject, pi):
    x0, mu = image_pair()
    b = subject.make(pi=pi)
    for sampler in _all_samplers(b):
        deterministic, exact = _sampler_kind(b, sampler)
        if not exact:
            continue
        for nfe in (2, 5, b.default_nfe):  # nfe = 1 from a pinned end cannot use a noise prediction
            out, traj = b.sample(oracle(b, x0), mu, nfe=nfe, sampler=sampler, return_trajectory=True)
            err = (out - x0).abs().max().item()
            assert err <= 1e-5, f"sampler {sampler!r}, nfe = {nfe}: max error {err:.3g} from x0"
            assert traj.x.shape[0] == len(traj.t) and traj.nfe >= len(traj.t) - 1, \
                f"sampler {sampler!r}, nfe = {nfe}: trajectory of {traj.x.shape[0]} states for {len(traj.t)} " \
                f"times and {traj.nfe} network evaluations"


@_check("with the oracle model, samplers that are not exact by construction (and stochastic ones) land near x0: "
        "mean error below 0.1 × that of μ, at default_nfe")
def oracle_other_samplers_get_close(subject):
    x0, mu = image_pair()
    b = subject.make()
    for sampler in b.samplers:
        if _sampler_kind(b, sampler)[1]:
            continue
        out = b.sample(oracle(b, x0), mu, sampler=sampler, generator=torch.Generator().manual_seed(0))
        start_err = (mu - x0).abs().mean().item()
        err = (out - x0).abs().mean().item()
        assert err < 0.1 * start_err, f"sampler {sampler!r}: mean error {err:.3g} vs {start_err:.3g} at the start"


MC_SHAPE = (4, 3, 16, 16)  # 3072 pixels: the standard error of the mean of z is 0.018
MC_TOLERANCE = 0.1


@_check(f"with the oracle model, the states of every stochastic sampler at 1/4, 1/2 and 3/4 of its grid (nfe = "
        f"max(default_nfe, 100)) follow the forward marginal: z = (x_t − a·x0 − b·μ)/(c·π) over {math.prod(MC_SHAPE)} "
        f"pixels has |mean| and |std − 1| below {MC_TOLERANCE}", _grid(pi=("one", "residual")))
def monte_carlo_marginals(subject, pi):
    x0, mu = image_pair(11, MC_SHAPE)
    b = subject.make(pi=pi)
    nfe = max(b.default_nfe, 100)
    for sampler in b.samplers:
        if _sampler_kind(b, sampler)[0]:
            continue
        _, traj = b.sample(oracle(b, x0), mu, nfe=nfe, sampler=sampler, generator=torch.Generator().manual_seed(0),
                           return_trajectory=True)
        k_max = len(traj.t) - 1
        for k in (k_max // 4, k_max // 2, 3 * k_max // 4):
            t = traj.t[k : k + 1].to(F64)
            a, bb, c = b.coefficients(t)
            std = (c * b.pi_field(x0, mu)).expand_as(x0)
            keep = std.abs() > 1e-3
            if keep.sum() < 100:
                continue  # (almost) no noise at this t: nothing to standardize
            z = ((traj.x[k].to(F64) - a * x0 - bb * mu) / std)[keep]
            m, s = z.mean().item(), z.std().item()
            assert abs(m) < MC_TOLERANCE and abs(s - 1) < MC_TOLERANCE, \
                f"sampler {sampler!r}, nfe = {nfe}, state {k} at t = {t.item():.4g}: standardized residual has " \
                f"mean {m:.3f} and std {s:.3f} (expected 0 and 1)"


@_check("training_loss is a finite scalar, less than half of it for an oracle shifted by 0.1, and 0 for the oracle "
        "unless loss_type is 'ml'")
def training_loss_prefers_the_oracle(subject):
    x0, mu = image_pair()
    b = subject.make()
    seeded = lambda: torch.Generator().manual_seed(1)  # noqa: E731 - the same t and noise for both models
    good = b.training_loss(oracle(b, x0), x0, mu, generator=seeded())
    bad = b.training_loss(lambda x, m, t: oracle(b, x0)(x, m, t) + 0.1, x0, mu, generator=seeded())
    assert good.dim() == 0 and torch.isfinite(good), f"training_loss is {good!r}, expected a finite scalar"
    assert good.item() < 0.5 * bad.item(), f"loss of the oracle {good.item():.4g} vs shifted oracle {bad.item():.4g}"
    if b.options.get("loss_type") != "ml":
        assert abs(good.item()) <= 1e-9, f"loss of the oracle is {good.item():.3g}, expected 0"


@_check("describe() names a relation kind (exact, limit or none), lists the samplers with the official default "
        "first, and has a non-empty `paper`")
def describe_and_relation(subject):
    b = subject.make()
    d = b.describe()
    assert d["relation"]["kind"] in ("exact", "limit", "none"), f"relation kind {d['relation']['kind']!r}"
    assert d["samplers"][0] == b.samplers[0], f"describe() samplers {d['samplers']} vs b.samplers {b.samplers}"
    assert d["paper"], "the class attribute `paper` (the citation) is empty"


# ----------------------------------------------------------------------------- running them
def _case_id(case: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in case.items())


def _selected(only: Iterable[str] | None, skip: Iterable[str]) -> list[Check]:
    wanted = list(CHECKS) if only is None else list(only)
    for name in (*wanted, *skip):
        if name not in CHECKS:
            raise ValueError(f"unknown contract check {name!r}.{suggest(name, CHECKS)} Checks: {', '.join(CHECKS)}")
    return [CHECKS[n] for n in wanted if n not in set(skip)]


def check_bridge(bridge, *, only: Iterable[str] | None = None, skip: Iterable[str] = (), **options) -> list[str]:
    """Run the contract on `bridge` (a registered name, a Bridge subclass or instance) built with `options`.

    `only` / `skip` select checks by name (see `CHECKS`). Every check runs; for each that fails, the first failing
    case is reported. Raises `ContractError` listing them; returns the ids of the cases that ran.
    """
    subject = Subject(bridge, **options)
    ran, failures = [], []
    for check in _selected(only, skip):
        for case in check.cases:
            case_id = f"{check.name}[{_case_id(case)}]" if case else check.name
            ran.append(case_id)
            try:
                check.run(subject, case)
            except Exception as exc:  # noqa: BLE001 - a bridge that crashes fails the property it crashed in
                reason = str(exc) if isinstance(exc, AssertionError) else f"raised {type(exc).__name__}: {exc}"
                reason = "\n      ".join(line for line in reason.splitlines() if line.strip())
                failures.append(f"{case_id}: {reason}\n    (property: {check.claim})")
                break
    if failures:
        raise ContractError(f"bridge {subject!r} breaks {len(failures)} contract propert"
                            f"{'y' if len(failures) == 1 else 'ies'}:\n  " + "\n  ".join(failures))
    return ran


def contract_tests(bridges, *, only: Iterable[str] | None = None, skip: Iterable[str] = (), **options) -> type:
    """A pytest test class with one test per check, parametrized over its cases (and over `bridges` if a list).

    `bridges`: a registered name, a Bridge subclass or instance, or a list of them. Assign the result to a
    module-level name that starts with `Test` so pytest collects it: `TestSine = contract_tests("sine")`.
    """
    import pytest

    many = isinstance(bridges, (list, tuple))
    subjects = [Subject(b, **options) for b in (bridges if many else [bridges])]
    namespace: dict[str, Any] = {"__doc__": f"The bridgezoo contract on {', '.join(map(repr, subjects))}."}
    for check in _selected(only, skip):
        params = [pytest.param(s, case, id="-".join(filter(None, [s.label if many else "", _case_id(case)])) or s.label)
                  for s in subjects for case in check.cases]

        def test(self, subject, case, _check=check):
            _check.run(subject, case)

        test.__name__ = f"test_{check.name}"
        test.__doc__ = check.claim
        namespace[test.__name__] = pytest.mark.parametrize(("subject", "case"), params)(test)
    return type("TestBridgeContract", (), namespace)
