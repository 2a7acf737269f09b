"""The contract every registered bridge must satisfy (parametrized over `list_bridges()`: a new bridge is checked
without new test code). The oracle test: with a model returning the exact target, deterministic samplers return x0."""

import pytest
import torch

import bridgezoo as bz
from bridgezoo.bridge import OBJECTIVES, PI_MODES

from conftest import BRIDGES, oracle

F64 = torch.float64


def test_builtins_are_registered():
    assert {"rdbm", "goub", "fm"} <= set(BRIDGES)


@pytest.mark.parametrize("name", BRIDGES)
class TestBridgeContract:
    def test_coefficients_shape_dtype_and_finite(self, name):
        b = bz.get_bridge(name)
        for dtype in (torch.float32, F64):
            t = torch.linspace(0, 1, 101, dtype=dtype)
            for v in b.coefficients(t):
                assert v.shape == (101, 1, 1, 1) and v.dtype == dtype
                assert torch.isfinite(v).all()
            assert b.coefficients(torch.tensor(0.5))[0].shape == ()

    def test_clean_end_and_pinned_end(self, name, images64):
        x0, mu = images64
        b = bz.get_bridge(name)
        noise = torch.randn_like(x0)
        zero, one = torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
        torch.testing.assert_close(b.q_sample(x0, mu, zero, noise), x0, atol=1e-12, rtol=0)
        a, bb, c = b.coefficients(torch.tensor([0.0, 1.0], dtype=F64))
        assert a[0].item() == pytest.approx(1, abs=1e-12) and c[0].item() == pytest.approx(0, abs=1e-12)
        if b.pinned:
            torch.testing.assert_close(b.q_sample(x0, mu, one, noise), mu, atol=1e-12, rtol=0)

    @pytest.mark.parametrize("pi", PI_MODES)
    def test_q_sample_matches_formula(self, name, pi, images64):
        x0, mu = images64
        b = bz.get_bridge(name, pi=pi)
        t = torch.tensor([0.3, 0.7], dtype=F64)
        noise = torch.randn_like(x0)
        a, bb, c = b.coefficients(t)
        field = {"zero": torch.zeros_like(x0), "one": torch.ones_like(x0), "residual": x0 - mu}[pi]
        torch.testing.assert_close(b.q_sample(x0, mu, t, noise), a * x0 + bb * mu + c * field * noise)
        x32 = b.q_sample(x0.float(), mu.float(), t.float(), noise.float())
        assert x32.dtype == torch.float32 and x32.shape == x0.shape

    def test_options_round_trip(self, name):
        b = bz.get_bridge(name)
        again = bz.get_bridge(b.name, **b.options)
        assert again.options == b.options and again.name == b.name == name
        t = torch.linspace(0, 1, 11, dtype=F64)
        for u, v in zip(b.coefficients(t), again.coefficients(t)):
            assert torch.equal(u, v)

    def test_unknown_option_and_sampler_name_the_valid_ones(self, name):
        with pytest.raises(bz.OptionError, match="Did you mean 'pi'") as err:
            bz.get_bridge(name, pii="one")
        assert "objective" in str(err.value)
        with pytest.raises(bz.OptionError, match="not one of"):
            bz.get_bridge(name, pi="half")
        b = bz.get_bridge(name)
        with pytest.raises(bz.OptionError, match="Valid samplers"):
            b.sample(lambda x, m, t: x, torch.zeros(1, 3, 4, 4), sampler="nope")

    @pytest.mark.parametrize("objective", OBJECTIVES)
    @pytest.mark.parametrize("pi", PI_MODES)
    def test_target_predict_x0_round_trip(self, name, objective, pi, images64):
        x0, mu = images64
        b = bz.get_bridge(name, objective=objective, pi=pi)
        noise = torch.randn_like(x0)
        for tv in (0.0, 0.01, 0.37, 0.5, 0.93):
            t = torch.full((2,), tv, dtype=F64)
            if objective == "velocity" and b.coefficient_derivatives(t)[0].abs().max() < 1e-12:
                continue  # a path that starts with zero speed (DDBM-VE: a = 1 − t²) has no x0 in its velocity
            x_t = b.q_sample(x0, mu, t, noise)
            target = b.target(x0, mu, x_t, t)
            assert target.shape[1] == b.out_channels(3)
            assert torch.isfinite(target).all()
            torch.testing.assert_close(b.predict_x0(target, x_t, mu, t), x0, atol=1e-9, rtol=0)

    @pytest.mark.parametrize("objective", OBJECTIVES)
    def test_no_nan_at_the_ends_of_the_grid(self, name, objective, images64):
        x0, mu = images64
        b = bz.get_bridge(name, objective=objective)
        grid = b.timesteps(b.default_nfe)
        for tv in (grid[0].item(), grid[-1].item(), grid[1].item(), grid[-2].item()):
            t = torch.full((2,), tv, dtype=F64)
            x_t = b.q_sample(x0, mu, t, torch.randn_like(x0))
            out = b.target(x0, mu, x_t, t)
            assert torch.isfinite(out).all() and torch.isfinite(b.predict_x0(out, x_t, mu, t)).all()
            assert torch.isfinite(b.loss(out, x0, mu, x_t, t))

    def test_timesteps(self, name):
        b = bz.get_bridge(name)
        for sampler in b.samplers:
            for nfe in (1, 5, b.default_nfe):
                grid = b.timesteps(nfe, sampler)
                assert grid[0].item() == pytest.approx(1.0, abs=1e-3) and grid[-1].item() == 0.0  # DDBM starts at σ_max − 1e-4
                assert (grid[1:] < grid[:-1]).all(), (sampler, nfe, grid)

    def test_sample_t_in_range_and_seeded(self, name):
        b = bz.get_bridge(name)
        t1 = b.sample_t(500, generator=torch.Generator().manual_seed(3))
        t2 = b.sample_t(500, generator=torch.Generator().manual_seed(3))
        assert torch.equal(t1, t2) and t1.shape == (500,)
        assert (t1 > 0).all() and (t1 <= 1).all() and t1.unique().numel() > 5

    @pytest.mark.parametrize("pi", PI_MODES)
    def test_oracle_deterministic_samplers_return_x0(self, name, pi, images64):
        x0, mu = images64
        b = bz.get_bridge(name, pi=pi)
        for sampler in b.samplers + ("ddim",):
            info = b.sampler_info(sampler)
            if not (info.deterministic and info.oracle_exact):
                continue
            for nfe in (2, 5, b.default_nfe):  # nfe = 1 from a pinned end cannot use a noise prediction
                out, traj = b.sample(oracle(b, x0), mu, nfe=nfe, sampler=sampler, return_trajectory=True)
                err = (out - x0).abs().max().item()
                assert err <= 1e-5, f"{name}/{sampler}/pi={pi}/nfe={nfe}: max error {err:.3g}"
                assert traj.x.shape[0] == len(traj.t) and traj.nfe >= len(traj.t) - 1

    def test_oracle_other_samplers_get_close(self, name, images64):
        """Deterministic samplers that are not exact by construction, and stochastic ones, land near x0."""
        x0, mu = images64
        b = bz.get_bridge(name)
        for sampler in b.samplers:
            info = b.sampler_info(sampler)
            if info.deterministic and info.oracle_exact:
                continue
            out = b.sample(oracle(b, x0), mu, sampler=sampler, generator=torch.Generator().manual_seed(0))
            start_err = (mu - x0).abs().mean().item()
            err = (out - x0).abs().mean().item()
            assert err < 0.1 * start_err, f"{name}/{sampler}: mean error {err:.3g} vs {start_err:.3g} at the start"

    def test_training_loss_prefers_the_oracle(self, name, images64):
        x0, mu = images64
        b = bz.get_bridge(name)
        g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
        good = b.training_loss(oracle(b, x0), x0, mu, generator=g())
        bad = b.training_loss(lambda x, m, t: oracle(b, x0)(x, m, t) + 0.1, x0, mu, generator=g())
        assert good.dim() == 0 and torch.isfinite(good)
        assert good.item() < 0.5 * bad.item()
        if b.options["loss_type"] != "ml":
            assert good.item() == pytest.approx(0.0, abs=1e-9)

    def test_describe_and_relation(self, name):
        d = bz.get_bridge(name).describe()
        assert d["relation"]["kind"] in ("exact", "limit", "none")
        assert d["samplers"][0] == bz.get_bridge(name).samplers[0] and d["paper"]


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
