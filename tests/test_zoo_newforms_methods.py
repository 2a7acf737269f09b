"""DDPM (conditional diffusion), InDI and MeanFlow: coefficients against independent transcriptions of the official
formulas (DDPM's code, InDI's and MeanFlow's papers), their samplers against the official loops and under the
oracle, Monte Carlo marginals, the relation to the generalized bridge, and the two-time backbone contract."""

import math

import numpy as np
import pytest
import torch

import bridgezoo as bz
from bridgezoo.errors import OptionError
from bridgezoo.generalized import sinh_coefficients
from bridgezoo.testing import check_bridge

from conftest import oracle
from test_bridges_official import pair

F64 = torch.float64


def smooth_net(x, mu, t):
    """A fixed smooth 'network' (t of shape [B] or [B, K])."""
    tt = t.reshape(x.shape[0], -1)
    return 0.4 * torch.tanh(x - 0.5 * mu + 0.3 * tt[:, :1].view(-1, 1, 1, 1)) + 0.1 * tt[:, -1:].view(-1, 1, 1, 1) * mu


@pytest.mark.parametrize("name", ["ddpm", "indi", "meanflow"])
def test_contract(name):
    check_bridge(name)


# ----------------------------------------------------------------------------- DDPM
def ddpm_tables(T=1000, lo=1e-4, hi=0.02):
    """hojonathanho/diffusion diffusion_utils_2.py: linear betas (L26-27), ᾱ = cumprod(1 − β) (L63-66)."""
    betas = np.linspace(lo, hi, T, dtype=np.float64)
    return betas, np.cumprod(1.0 - betas)


def test_ddpm_schedule_is_the_official_table_on_the_official_grid():
    b = bz.get_bridge("ddpm")
    _, abar = ddpm_tables()
    t = torch.arange(1, 1001, dtype=F64) / 1000  # index k ↔ t = (k+1)/T
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(a, torch.tensor(np.sqrt(abar)), atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(c, torch.tensor(np.sqrt(1 - abar)), atol=1e-14, rtol=1e-12)
    assert torch.equal(bb, torch.zeros_like(bb))
    assert a[-1].item() == pytest.approx(0.00635, abs=5e-5) and c[-1].item() == pytest.approx(1, abs=3e-5)
    assert b.coefficients(torch.tensor(0.0, dtype=F64))[0].item() == 1.0
    assert (b.objective, b.options["loss_type"], b.pi, b.default_nfe, b.samplers[:2]) == \
        ("noise", "l2", "one", 1000, ("ancestral", "ddim"))
    assert torch.equal(b.timesteps(1000, "ancestral"), torch.arange(1000, -1, -1, dtype=F64) / 1000)


def test_ddpm_defines_only_pi_one_and_says_why():
    for pi in ("zero", "residual"):
        with pytest.raises(OptionError, match=r"pi='%s' is not defined for this method: conditional diffusion starts "
                                              r"from pure noise" % pi):
            bz.get_bridge("ddpm", pi=pi)
    assert bz.get_bridge("ddpm").defines(pi="one") and not bz.get_bridge("ddpm").defines(pi="zero")


def test_ddpm_starts_from_pure_noise_whatever_mu():
    b = bz.get_bridge("ddpm")
    mu = torch.full((1, 3, 64, 64), 0.9, dtype=F64)
    x = b.initial_state(mu, torch.Generator().manual_seed(0))
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05  # N(0, I), official L206


@pytest.mark.parametrize("variance", ["large", "small"])
def test_ddpm_ancestral_reproduces_the_official_loop(variance):
    """p_sample_loop (L200-215) with p_mean_variance (L128-168): eps-prediction, clipped x̂0, posterior mean
    (L114-126), σ² = β (fixedlarge) or the posterior variance (fixedsmall), no noise at index 0."""
    T = 50
    betas, abar = ddpm_tables(T, 1e-3, 0.2)
    abar_prev = np.append(1.0, abar[:-1])
    post_var = betas * (1 - abar_prev) / (1 - abar)
    coef1 = betas * np.sqrt(abar_prev) / (1 - abar)
    coef2 = (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar)
    mu = pair(3)[1][:1]
    eps_net = lambda x, i: 0.8 * torch.tanh(x - 0.3 * mu + 0.01 * i)  # noqa: E731 - ε̂ at official index i
    g = torch.Generator().manual_seed(5)
    x = torch.randn(mu.shape, generator=g, dtype=F64)
    for i in range(T - 1, -1, -1):
        x0 = (np.sqrt(1 / abar[i]) * x - np.sqrt(1 / abar[i] - 1) * eps_net(x, i)).clamp(-1, 1)
        mean = coef1[i] * x0 + coef2[i] * x
        var = betas[i] if variance == "large" else post_var[i]
        x = mean + (math.sqrt(var) * torch.randn(x.shape, generator=g, dtype=F64) if i > 0 else 0)
    b = bz.get_bridge("ddpm", T=T, beta_start=1e-3, beta_end=0.2, variance=variance)
    ours = b.sample(lambda x_, m, t: eps_net(x_, round(t[0].item() * T) - 1), mu, nfe=T,
                    generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours, x, atol=1e-10, rtol=0)


def test_ddpm_ddim_with_eta_is_the_shared_dbim():
    """DDIM (Song et al. 2021, Eq. 12): x_s = sqrt(ᾱ_s)·x̂0 + sqrt(1 − ᾱ_s − σ²)·ε̂ + σ·z, σ = η·sqrt((1 − ᾱ_s)/(1 − ᾱ_t))
    ·sqrt(1 − ᾱ_t/ᾱ_s): one step from a fixed state, same noise."""
    b = bz.get_bridge("ddpm", clip_x0=False)
    x0, mu = pair(1)
    t, s, eta = torch.full((2,), 0.7, dtype=F64), torch.full((2,), 0.4, dtype=F64), 0.6
    (at, _, ct), (as_, _, cs) = b.coefficients(t), b.coefficients(s)
    x = at * x0 + ct * torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    eps = smooth_net(x, mu, t)
    x0_hat = (x - ct * eps) / at
    sigma = eta * torch.sqrt(cs**2 / ct**2) * torch.sqrt(1 - at**2 / as_**2)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=F64)
    expected = as_ * x0_hat + torch.sqrt(cs**2 - sigma**2) * eps + sigma * z
    ours, _ = b.get_sampler(f"dbim:eta={eta}").step(b, smooth_net, x, mu, t, s, torch.Generator().manual_seed(9))
    torch.testing.assert_close(ours, expected, atol=1e-12, rtol=0)


def test_ddpm_relation_none_is_true_numerically():
    """Every generalized bridge has a + b = 1 (a = Θ, b = 1 − Θ); DDPM has b = 0 and a < 1 for t > 0 (and is a VP
    diffusion, a² + c² = 1), so no (θ, λ) and no time change maps one onto the other."""
    b = bz.get_bridge("ddpm")
    t = torch.linspace(0.01, 1, 50, dtype=F64)
    a, bb, c = b.coefficients(t)
    assert b.relation["kind"] == "none"
    assert ((a + bb) < 1 - 1e-4).all()
    torch.testing.assert_close(a**2 + c**2, torch.ones_like(a), atol=1e-12, rtol=0)
    theta, one_minus, _ = sinh_coefficients(torch.linspace(0, 2, 50, dtype=F64), 2.0, 0.1)
    torch.testing.assert_close(theta + one_minus, torch.ones_like(theta))


# ----------------------------------------------------------------------------- InDI
def test_indi_path_and_its_iteration():
    """Paper: x_t = (1 − t)x + t·y + t·ε_t·η; x_{t−δ} = (δ/t)·F(x_t, t) + (1 − δ/t)·x_t (+ noise)."""
    b = bz.get_bridge("indi", eps=0.05, eps_ratio=2.0, pi="one")
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=F64)
    a, bb, c = (v.flatten() for v in b.coefficients(t))
    torch.testing.assert_close(a, 1 - t)
    torch.testing.assert_close(bb, t)
    torch.testing.assert_close(c, t * 0.05 * (2 - t))  # ε_t = eps·(r − (r − 1)t)
    assert (b.objective, b.options["loss_type"]) == ("x0", "l2") and bz.get_bridge("indi").pi == "zero"
    # the deterministic iteration (r = 1) is the paper's formula, and the shared ddim exactly, for any network
    det = bz.get_bridge("indi", pi="one", clip_x0=False)
    x0, mu = pair(2)
    x = 0.3 * x0 + 0.7 * mu
    tt, ss = torch.full((2,), 0.7, dtype=F64), torch.full((2,), 0.45, dtype=F64)
    delta = 0.7 - 0.45
    ours, _ = det.get_sampler("indi").step(det, smooth_net, x, mu, tt, ss)
    torch.testing.assert_close(ours, (delta / 0.7) * smooth_net(x, mu, tt) + (1 - delta / 0.7) * x, atol=1e-14, rtol=0)
    torch.testing.assert_close(ours, det.get_sampler("ddim").step(det, smooth_net, x, mu, tt, ss)[0], atol=1e-14,
                               rtol=0)
    assert det.sampler_info("indi").deterministic and not b.sampler_info("indi").deterministic
    with pytest.raises(OptionError, match="must not grow with t"):
        bz.get_bridge("indi", eps_ratio=0.5)


@pytest.mark.parametrize("pi", ["one", "residual"])
def test_indi_oracle_and_stochastic_marginals(pi):
    x0, mu = pair(4)
    for opts in ({}, {"eps_ratio": 3.0, "eps": 0.1}):
        b = bz.get_bridge("indi", pi=pi, **opts)
        out = b.sample(oracle(b, x0), mu, nfe=7, generator=torch.Generator().manual_seed(0))
        assert (out - x0).abs().max() < 1e-12
    # the noisy iteration keeps the marginal t·ε_t: standardized states from an exact x_1, 20000 pixels
    b = bz.get_bridge("indi", pi=pi, eps=0.1, eps_ratio=3.0)
    x0 = torch.full((1, 1, 100, 200), 0.5, dtype=F64)
    mu = torch.full_like(x0, -0.3)
    g = torch.Generator().manual_seed(1)
    grid = b.timesteps(8)
    x = b.q_sample(x0, mu, grid[:1], torch.randn(x0.shape, generator=g, dtype=F64))
    states = [s for s, _ in b.get_sampler("indi").steps(b, oracle(b, x0), x, mu, grid, g)]
    for k in range(1, 8):
        a, bb, c = b.coefficients(grid[k : k + 1])
        z = (states[k - 1] - a * x0 - bb * mu) / (c * b.pi_field(x0, mu))
        assert abs(z.mean().item()) < 0.03 and abs(z.std().item() - 1) < 0.03, (k, z.mean().item(), z.std().item())


@pytest.mark.parametrize("name", ["indi", "meanflow"])
def test_straight_path_relation_exact_after_a_time_change(name):
    """π = zero: (a, b) = (1 − t, t) equals the generalized bridge's (Θ_τ, 1 − Θ_τ) at 1 − t = Θ_τ (λ = 0), for a
    θ schedule with total S = 2; with noise the relation is none: c(1) > 0 while Σ_1 = 0."""
    b = bz.get_bridge(name)
    assert b.relation["kind"] == "exact" and b.relation["lam"] == 0.0
    tau = torch.linspace(0, 1, 21, dtype=F64)
    theta, one_minus, sigma = sinh_coefficients(2.0 * tau, 2.0, 0.0)
    a, bb, _ = b.coefficients(1 - theta)
    torch.testing.assert_close(a.flatten(), theta, atol=1e-14, rtol=0)
    torch.testing.assert_close(bb.flatten(), one_minus, atol=1e-14, rtol=0)
    noisy = bz.get_bridge(name, pi="one")
    assert noisy.relation["kind"] == "none" and noisy.coefficients(torch.tensor(1.0, dtype=F64))[2].item() > 0
    assert sinh_coefficients(torch.tensor(2.0, dtype=F64), 2.0, 0.3)[2].item() == 0


# ----------------------------------------------------------------------------- MeanFlow
def test_meanflow_path_target_and_one_step_oracle():
    b = bz.get_bridge("meanflow", pi="one", sigma=0.2)
    x0, mu = pair(5)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    t, r = torch.full((2,), 0.8, dtype=F64), torch.full((2,), 0.3, dtype=F64)
    z_t, z_r = b.q_sample(x0, mu, t, eps), b.q_sample(x0, mu, r, eps)
    # z_t = (1 − t)x0 + t(μ + σε): the velocity μ − x0 + σε is the average velocity over any [r, t]
    torch.testing.assert_close(z_t, 0.2 * x0 + 0.8 * (mu + 0.2 * eps))
    torch.testing.assert_close(b.target(x0, mu, z_t, torch.stack([t, r], 1)), mu - x0 + 0.2 * eps)
    torch.testing.assert_close((z_t - z_r) / 0.5, mu - x0 + 0.2 * eps)
    for nfe in (1, 3):  # z_r = z_t − (t − r)·u (Eq. 12): the oracle lands on x0 from x_1 = μ + σε
        b1 = bz.get_bridge("meanflow")
        out = b1.sample(oracle(b1, x0), mu, nfe=nfe, sampler="meanflow")
        assert (out - x0).abs().max() < 1e-12
    assert (b.default_nfe, b.samplers[:2], b.objective, b.time_inputs) == (1, ("meanflow", "ddim"), "velocity", 2)
    with pytest.raises(OptionError, match="objective='x0' is not defined for this method: MeanFlow's network"):
        bz.get_bridge("meanflow", objective="x0")


def test_meanflow_time_pairs_follow_the_paper():
    b = bz.get_bridge("meanflow")
    tr = b.sample_tr(40000, torch.Generator().manual_seed(0))
    t, r = tr[:, 0], tr[:, 1]
    assert (r <= t).all() and ((t > 0) & (t < 1)).all()
    assert abs((r != t).double().mean().item() - 0.25) < 0.01
    # both draws are logit-normal(−0.4, 1): the mean of logit over the pair (t, r) where r ≠ t
    both = torch.cat([t[r != t], r[r != t]])
    logit = torch.log(both / (1 - both))
    assert abs(logit.mean().item() + 0.4) < 0.03 and abs(logit.std().item() - 1) < 0.03


def test_meanflow_training_loss_is_the_jvp_identity_with_adaptive_weight():
    """u_tgt = v − (t − r)·(v·∂_z u + ∂_t u), here by central finite differences along (z + h·v, t + h), and the
    gradient of mean(sg(w)·‖u − u_tgt‖²), w = 1/(‖Δ‖² + 1e-3); the value is the plain per-pixel MSE."""
    b = bz.get_bridge("meanflow", pi="one", sigma=0.2, ratio_r_neq_t=1.0)  # every pair has r < t
    x0, mu = pair(6)
    w = torch.tensor(0.7, dtype=F64, requires_grad=True)
    model = b.wrap(lambda x, m, tt: w * torch.tanh(x * (1 + tt[:, :1].view(-1, 1, 1, 1)) - m * tt[:, 1:].view(-1, 1, 1, 1)))
    gen = torch.Generator().manual_seed(3)
    loss = b.training_loss(model, x0, mu, generator=gen)
    (grad,) = torch.autograd.grad(loss, w)
    # independent recomputation with the same draws
    gen = torch.Generator().manual_seed(3)
    tr = b.sample_tr(2, gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=F64)
    t, r = tr[:, 0].to(F64), tr[:, 1].to(F64)
    T4 = t.view(-1, 1, 1, 1)
    z = (1 - T4) * x0 + T4 * (mu + 0.2 * eps)
    v = mu - x0 + 0.2 * eps
    u = lambda zz, tt: model(zz, mu, torch.stack([tt, r], 1))  # noqa: E731
    h = 1e-6
    with torch.no_grad():
        dudt = (u(z + h * v, t + h) - u(z - h * v, t - h)) / (2 * h)
        target = v - (t - r).view(-1, 1, 1, 1) * dudt
    delta = u(z, t) - target
    norm2 = delta.square().flatten(1).sum(1)
    paper = (norm2 / (norm2.detach() + 1e-3)).mean()
    (grad_paper,) = torch.autograd.grad(paper, w)
    torch.testing.assert_close(grad, grad_paper, rtol=1e-6, atol=0)
    assert loss.item() == pytest.approx(delta.square().mean().item(), rel=1e-6)
    assert (r < t).all()


def test_two_time_backbones_embed_each_time():
    """`time_inputs=2`: t of shape [B, 2], one time MLP per column (swapping the columns changes the output);
    time_inputs=1 keeps the one-time state dict; a wrong shape is a clear error; the runner asks for it."""
    torch.manual_seed(0)
    one = bz.get_backbone("unet-test")
    two = bz.get_backbone("unet-test", time_inputs=2)
    assert set(two.state_dict()) - set(one.state_dict()) and not any("extra" in k for k in one.state_dict())
    x = torch.randn(2, 3, 16, 16)
    tr = torch.tensor([[0.9, 0.2], [0.5, 0.1]])
    with torch.no_grad():
        assert not torch.allclose(two(x, x, tr), two(x, x, tr.flip(1)))
        # column 0 through the one-time MLP: a two-time net whose extra MLP outputs 0 is the one-time net at t
        two.load_state_dict(one.state_dict(), strict=False)
        for p in two.extra_time_mlps[0][-1].parameters():
            p.zero_()
        torch.testing.assert_close(two(x, x, tr), one(x, x, tr[:, 0]))
    with pytest.raises(ValueError, match=r"takes 2 time input\(s\).*got \(2,\)"):
        two(x, x, tr[:, 0])
    timm_two = bz.get_backbone("timm-unet/resnet18", time_inputs=2)
    assert timm_two(x, x, tr).shape == x.shape
    assert bz.get_bridge("meanflow").backbone_options(3) == {"out_channels": 3, "time_inputs": 2}
    assert bz.get_bridge("indi").backbone_options(3) == {"out_channels": 3}


def test_meanflow_trains_a_batchnorm_backbone_and_its_report_card_counts_both_times():
    """The JVP leaves BatchNorm running statistics alone (an in-place update inside torch.func is an error) and
    the real forward updates them once; `backbone_card` builds and counts a two-time backbone."""
    from bridgezoo.backbone import backbone_card

    torch.manual_seed(0)
    b = bz.get_bridge("meanflow")
    net = bz.get_backbone("timm-unet/resnet18", **b.backbone_options(3))
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms
    before = norms[0].num_batches_tracked.item()
    x0, mu = (torch.rand(2, 3, 32, 32) * 2 - 1 for _ in range(2))
    loss = b.training_loss(b.wrap(net.train()), x0, mu, generator=torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and norms[0].num_batches_tracked.item() == before + 1
    assert all(m.track_running_stats for m in norms)
    card = backbone_card(lambda **o: bz.get_backbone("unet-T", **(o | b.backbone_options(3))), size=32)
    one = backbone_card(lambda **o: bz.get_backbone("unet-T", **o), size=32)
    assert card["params"] > one["params"] and card["gmacs"] > 0
