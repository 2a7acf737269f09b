"""The backbone contract over `list_backbones()` (prefix families such as `timm-unet/` are tested through a
concrete encoder), and the exact sizes of the U-Net ladder."""

import pytest
import torch

import bridgezoo as bz
from bridgezoo.backbone import backbone_card, count_params, count_params_thop_compatible

NAMES = [n + "resnet18" if n.endswith("/") else n for n in bz.list_backbones()]


def inputs(h=24, w=24, b=1, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g, dtype=dtype) * 2 - 1
    mu = torch.rand(b, 3, h, w, generator=g, dtype=dtype) * 2 - 1
    return x, mu, torch.full((b,), 0.3, dtype=dtype)


def build(name, seed=0, **kw):
    torch.manual_seed(seed)
    return bz.get_backbone(name, **kw).eval()


def test_registered():
    assert {"unet-T", "unet-S", "unet-B", "unet-L", "unet-test", "timm-unet/"} <= set(bz.list_backbones())
    assert bz.list_backbones("unet-*") == ["unet-B", "unet-L", "unet-S", "unet-T", "unet-test"]


@pytest.mark.parametrize("name", NAMES)
class TestBackboneContract:
    def test_any_size_in_any_size_out(self, name):
        net = build(name)
        x, mu, t = inputs(37, 53)
        with torch.no_grad():
            assert net(x, mu, t).shape == (1, 3, 37, 53)
            net6 = build(name, out_channels=6)  # e.g. RDDM's res_noise objective
            assert net6(x, mu, t).shape == (1, 6, 37, 53)

    def test_t_changes_the_output_and_seed_makes_it_repeatable(self, name):
        x, mu, t = inputs()
        with torch.no_grad():
            a = build(name, seed=1)(x, mu, t)
            b = build(name, seed=1)(x, mu, t)
            c = build(name, seed=1)(x, mu, t + 0.4)
        assert torch.equal(a, b)
        assert (a - c).abs().max() > 1e-4

    def test_gradients_reach_every_parameter(self, name):
        net = build(name).train()
        x, mu, t = inputs(32, 32, b=2)
        net(x, mu, t).square().mean().backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, missing[:5]
        # zero-initialized residual branches (timm's zero_init_last) pass gradients only after one step
        torch.optim.SGD(net.parameters(), lr=1e-2).step()
        net.zero_grad()
        net(x, mu, t).square().mean().backward()
        dead = [n for n, p in net.named_parameters() if p.grad.abs().max() == 0]
        assert not dead, dead[:5]

    def test_bf16_autocast_and_channels_last(self, name):
        net = build(name)
        x, mu, t = inputs()
        with torch.no_grad():
            ref = net(x, mu, t)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = net(x, mu, t)
            cl = net(x.contiguous(memory_format=torch.channels_last), mu.contiguous(memory_format=torch.channels_last), t)
        assert torch.isfinite(low).all()
        assert (low.float() - ref).abs().mean() < 0.05 * ref.abs().mean() + 1e-3
        torch.testing.assert_close(cl, ref, atol=1e-4, rtol=1e-4)


LADDER = {  # true params, thop-compatible params, GMACs (conv + matmul) at 1×6×256×256 — UNET.md A.1
    "unet-T": (0.886e6, 0.449e6, 17.3),
    "unet-S": (3.269e6, 1.076e6, 24.2),
    "unet-B": (12.41e6, 3.653e6, 83.6),
    "unet-L": (36.26e6, 7.738e6, 119.2),
}


@pytest.mark.parametrize("name", LADDER)
def test_ladder_sizes(name):
    params, thop, gmacs = LADDER[name]
    card = backbone_card(lambda **o: bz.get_backbone(name, **o))
    assert card["params"] == pytest.approx(params, rel=0.01)
    assert card["params_thop"] == pytest.approx(thop, rel=0.01)
    assert card["gmacs"] == pytest.approx(gmacs, rel=0.03)


def test_thop_count_skips_standardized_convs_and_norms():
    net = bz.get_backbone("unet-test")
    from bridgezoo.backbone import WSConv2d

    ws = sum(p.numel() for m in net.modules() if isinstance(m, WSConv2d) for p in m.parameters(recurse=False))
    norms = sum(p.numel() for m in net.modules() if isinstance(m, torch.nn.GroupNorm) for p in m.parameters())
    assert ws > 0 and norms > 0
    assert count_params(net) - count_params_thop_compatible(net) >= ws + norms


def test_residual_output_adds_mu():
    x, mu, t = inputs()
    plain = build("unet-test", seed=3)
    res = build("unet-test", seed=3, residual_output=True)
    with torch.no_grad():
        torch.testing.assert_close(res(x, mu, t), plain(x, mu, t) + mu)


def test_a_few_steps_lower_the_loss_of_unet_test():
    bridge = bz.get_bridge("rdbm", objective="x0")
    torch.manual_seed(0)
    net = bz.get_backbone("unet-test")
    x0, mu, _ = inputs(16, 16, b=4, seed=5)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)

    def loss_at(seed):
        return bridge.training_loss(net, x0, mu, generator=torch.Generator().manual_seed(seed))

    with torch.no_grad():
        before = sum(loss_at(s).item() for s in range(4))
    for step in range(30):
        opt.zero_grad()
        loss_at(100 + step).backward()
        opt.step()
    with torch.no_grad():
        after = sum(loss_at(s).item() for s in range(4))
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("encoder", ["convnext_atto", "efficientnet_b0", "mobilenetv3_small_100"])
def test_timm_encoders(encoder):
    net = build(f"timm-unet/{encoder}")
    x, mu, t = inputs(37, 53)
    with torch.no_grad():
        y = net(x, mu, t)
    assert y.shape == (1, 3, 37, 53) and torch.isfinite(y).all()
    assert net.encoder.feature_info.channels()[0] > 0 and not net.config["pretrained"]


def test_timm_unknown_encoder_is_a_clear_error():
    with pytest.raises(bz.OptionError, match="unknown timm encoder 'resnet81'.*resnet18"):
        bz.get_backbone("timm-unet/resnet81")


def test_unknown_backbone_suggests():
    with pytest.raises(bz.UnknownNameError, match="Did you mean 'unet-L'"):
        bz.get_backbone("unet-l")


def test_full_attention_reaches_the_fused_kernel_and_keeps_its_output():
    """FullAttention hands SDPA contiguous [B, heads, N, d] q/k/v, so the fused (flash) kernel runs: the peak of
    tensors alive stays far below one N×N score matrix (the math kernel, reached by transposed views, builds
    heads of them), and the output is the math kernel's within 1e-5."""
    import torch.nn.functional as F

    from bridgezoo.backbone import FullAttention
    from bridgezoo.memory import peak_tensor_bytes

    torch.manual_seed(0)
    attn, x = FullAttention(32).eval(), torch.randn(1, 32, 48, 48)
    n = 48 * 48
    with torch.no_grad():
        peak, out = peak_tensor_bytes(attn, x)
        q, k, v = (z.reshape(1, attn.heads, -1, n).transpose(-1, -2) for z in attn.to_qkv(x).chunk(3, dim=1))
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            math = attn.to_out(F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape(1, -1, 48, 48))
    assert peak < n * n * 4, f"{peak / 2**20:.1f} MiB alive at once: the N×N scores were built"
    torch.testing.assert_close(out, math, rtol=0, atol=1e-5)
