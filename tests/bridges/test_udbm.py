"""udbm (plugins/bridges/udbm.py) against its released code (tests/reference/udbm.py), with a fixed stand-in for
the stage-1 network; the oracle, the Monte Carlo law of its noisy start, and `bridgezoo run --bridge udbm`
training both stages and evaluating on zoo5."""

import json
import subprocess
import sys

import pytest
import torch

import bridgezoo as bz
from bridgezoo.seeding import randn

from helpers import F64, pair
from reference.udbm import T, official_sample, official_schedule, official_uncertainty


class Stage1(torch.nn.Module):
    """A fixed stand-in for the trained stage-1 network: its output spans the clamp at ±2."""

    def forward(self, x, mu, t):
        return 3 * torch.tanh(2 * x + mu)


def stage1_at_index(x, mu, k):
    return Stage1()(x, mu, k)


def net(x, mu, k):
    """A fixed stand-in for the stage-2 network at official index k (predicts a residual)."""
    return 0.4 * torch.tanh(x - mu + 1e-3 * k) + 0.1 * mu


def udbm(**options):
    b = bz.get_bridge("udbm", **options)
    b.attach_auxiliary(Stage1())
    return b


# ----------------------------------------------------------------------------- coefficients, marginal, losses
def test_official_defaults_and_the_fixed_uncertainty_before_stage_1():
    b = bz.get_bridge("udbm")
    assert (b.pi, b.objective, b.options["loss_type"], b.options["T"], b.default_nfe, b.samplers[0]) == \
        ("uncertainty", "residual", "l1", 1000, 1, "udbm")
    assert not b.pinned and b.auxiliary() is not None
    assert bz.get_bridge("udbm", pi="one", path="fixed").auxiliary() is None  # one stage: nothing uses d
    k = torch.arange(T)
    hq, lq, n = official_schedule(k, torch.full((T, 1, 1, 1), 0.5))  # get_t_sche's d_fixed = 0.5
    a, bb, c = b.coefficients(k.to(F64) / (T - 1))
    torch.testing.assert_close(a, hq, atol=1e-14, rtol=0)
    torch.testing.assert_close(bb, lq, atol=1e-14, rtol=0)
    torch.testing.assert_close(c * 1.5, n, atol=1e-13, rtol=0)  # π = 1 + d_fixed
    assert c[-1].item() == pytest.approx(1.0) and a[-1].item() == pytest.approx(0, abs=1e-8)  # x_1 = μ + (1 + d)ε


def test_q_sample_and_loss_are_the_official_ones_with_the_stage_1_uncertainty():
    x0, mu = pair()
    b = udbm()
    k = torch.tensor([3, 611])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    d = official_uncertainty(stage1_at_index, mu)
    assert 0 < d.min() and d.max() == 1.0  # the clamp acts
    torch.testing.assert_close(b.uncertainty(mu), d, atol=0, rtol=0)
    hq, lq, n = official_schedule(k, d)
    x_t = b.q_sample(x0, mu, k.to(F64) / (T - 1), noise)
    torch.testing.assert_close(x_t, hq * x0 + lq * mu + n * noise, atol=1e-13, rtol=0)
    out = net(x_t, mu, 5)
    torch.testing.assert_close(b.loss(out, x0, mu, x_t, k / (T - 1)), (out - (mu - x0)).abs().mean(), atol=1e-15,
                               rtol=0)  # pred_res with L1
    aux_loss = b.auxiliary().loss(Stage1(), x0, mu, None)  # S1 p_losses: A(cat(μ, μ)) against μ − x0, L1
    torch.testing.assert_close(aux_loss, (Stage1()(mu, mu, 1) - (mu - x0)).abs().mean(), atol=1e-15, rtol=0)
    # path=fixed keeps the noise field but bends every pixel's path at d_fixed
    hq5, lq5, _ = official_schedule(k, torch.full_like(d, 0.5))
    fixed = udbm(path="fixed").q_sample(x0, mu, k.to(F64) / (T - 1), noise)
    torch.testing.assert_close(fixed, hq5 * x0 + lq5 * mu + n * noise, atol=1e-13, rtol=0)


def test_training_times_are_the_official_indices():
    t = bz.get_bridge("udbm").sample_t(4000, generator=torch.Generator().manual_seed(0))
    k = t * (T - 1)
    assert torch.allclose(k, k.round(), atol=1e-3) and k.min() >= 1 and k.max() <= T - 1


# ----------------------------------------------------------------------------- the sampler
@pytest.mark.parametrize("nfe", [1, 4])
@pytest.mark.parametrize("sampler", ["udbm", "ddim"])
def test_sampler_reproduces_the_official_loop(nfe, sampler):
    _, mu = pair(3)
    b = udbm(clip_x0=True)
    z = randn(mu.shape, torch.Generator().manual_seed(7), dtype=F64)
    expected = official_sample(net, stage1_at_index, mu, nfe, z)
    ours = b.sample(lambda x, m, t: net(x, m, round(t[0].item() * (T - 1))), mu, nfe=nfe, sampler=sampler,
                    generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("objective", ["residual", "x0", "noise"])
def test_oracle_sampling_returns_x0_with_the_per_pixel_path(objective):
    x0, mu = pair(5)
    b = udbm(objective=objective, clip_x0=False)

    def oracle(x_t, m, t):
        return b.target(x0, m, x_t, t)

    for nfe in (1, 2, 5):  # from the noise, x̂0 divides by a(1) ≈ 1e-9: the contract's 1e-5
        out = b.sample(oracle, mu, nfe=nfe, generator=torch.Generator().manual_seed(0))
        assert (out - x0).abs().max().item() < (1e-5 if objective == "noise" else 1e-12)


def test_the_noisy_start_follows_its_law():
    """Monte Carlo: x_1 = S_p(1)·μ + c(1)·(1 + d)·z, d per pixel."""
    _, mu = pair(9, shape=(4, 3, 16, 16))
    b = udbm()
    x1 = b.initial_state(mu, torch.Generator().manual_seed(0))
    d = official_uncertainty(stage1_at_index, mu)
    _, lq, n = official_schedule(torch.full((4,), T - 1), d)
    z = (x1 - lq * mu) / n
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05
    assert torch.equal(b.initial_state(mu, torch.Generator().manual_seed(0)), x1)


def test_samplers_that_do_not_apply_are_refused_with_the_reason():
    b = bz.get_bridge("udbm")
    assert set(b.samplers) == {"udbm", "ddim"}
    with pytest.raises(bz.OptionError, match="sampler 'heun' does not apply to it: its log-SNR weights"):
        b.sample(lambda x, m, t: x, torch.zeros(1, 3, 4, 4), sampler="heun")
    with pytest.raises(bz.OptionError, match="velocity is infinite"):
        bz.get_bridge("udbm", objective="velocity")


# ----------------------------------------------------------------------------- the command line
def test_run_trains_both_stages_and_evaluates_on_zoo5(tmp_path):
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "bridgezoo.cli", "run", "--bridge", "udbm", "--backbone", "unet-test",
                          "--iters", "3", "--bridge-opt", "aux_iters=2", "--batch", "2", "--patch", "16",
                          "--eval-max-side", "24", "--tasks", "lowlight", "--log-every", "1", "--quiet",
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len((out / "auxiliary.jsonl").read_text().splitlines()) == 2  # stage 1
    assert len((out / "train.jsonl").read_text().splitlines()) == 3  # stage 2
    assert (out / "auxiliary.safetensors").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] > 0 and summary["steps"] == 1


def test_sigint_in_stage_1_saves_its_state_and_exits_cleanly(tmp_path):
    """(Exact resume from that state: tests/test_auxiliary.py.)"""
    import signal
    import time

    out = tmp_path / "run"
    args = ["--bridge", "udbm", "--backbone", "unet-test", "--iters", "2", "--bridge-opt", "aux_iters=400",
            "--batch", "2", "--patch", "16", "--eval-max-side", "24", "--tasks", "lowlight", "--log-every", "1",
            "--save-every", "1000", "--quiet", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "bridgezoo.cli", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    start = time.time()
    while not (out / "auxiliary.jsonl").exists() or len((out / "auxiliary.jsonl").read_text().splitlines()) < 2:
        assert time.time() - start < 300 and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err
    step = json.loads((out / "auxiliary_state" / "step.json").read_text())["step"]
    assert 2 <= step < 400 and not (out / "auxiliary.safetensors").exists()
