"""meanflow (plugins/bridges/meanflow.py) against its paper (official code in JAX): path, target, one-step oracle,
time pairs, the JVP training loss, the two-time backbone contract, training with batch norm."""


import pytest
import torch

import bridgezoo as bz
from bridgezoo.errors import OptionError
from bridgezoo.testing import check_bridge, oracle

from helpers import F64, pair, straight_path_relation_holds


@pytest.mark.parametrize("name", ["meanflow"])
def test_contract(name):
    check_bridge(name)


@pytest.mark.parametrize("name", ["meanflow"])
def test_straight_path_relation_exact_after_a_time_change(name):
    """π = zero: (a, b) = (1 − t, t) equals the generalized bridge's (Θ_τ, 1 − Θ_τ) at 1 − t = Θ_τ (λ = 0), for a
    θ schedule with total S = 2; with noise the relation is none: c(1) > 0 while Σ_1 = 0."""
    straight_path_relation_holds(name)


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
