"""The backbone contract over `list_backbones()` (prefix families such as `timm-unet/` are tested through a
concrete encoder), and the exact sizes of the U-Net ladder."""

import pytest
import torch

import bridgezoo as bz
from bridgezoo.backbone import backbone_card, count_params, count_params_thop_compatible

NAMES = [n + "resnet18" if n.endswith("/") else n for n in bz.list_backbones()]
# published NAFNet configurations of 10M+ parameters with 28-block stages: checked on the meta device only
# (test_nafnet_sizes_match_the_architecture_formula, test_big_nafnets_on_the_meta_device); nafnet-udbm-S runs the contract
META_ONLY = {"nafnet-udbm-M", "nafnet-udbm-L", "nafnet-refusion"}


def inputs(h=24, w=24, b=1, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g, dtype=dtype) * 2 - 1
    mu = torch.rand(b, 3, h, w, generator=g, dtype=dtype) * 2 - 1
    return x, mu, torch.full((b,), 0.3, dtype=dtype)


def build(name, seed=0, **kw):
    torch.manual_seed(seed)
    return bz.get_backbone(name, **kw).eval()


def one_step(net, lr=1e-2):
    """`net` after one Adam step on a fixed loss (eval mode): zero-initialised residual scales (NAFNet's β and γ,
    timm's zero_init_last) move by about lr, so every path, the time embedding's included, reaches the output."""
    x, mu, t = inputs(32, 32, b=2, seed=7)
    net.train()
    net(x, mu, t).square().mean().backward()
    torch.optim.Adam(net.parameters(), lr=lr).step()
    net.zero_grad()
    return net.eval()


def test_registered():
    assert {"unet-T", "unet-S", "unet-B", "unet-L", "unet-test", "timm-unet/"} <= set(bz.list_backbones())
    assert bz.list_backbones("unet-*") == ["unet-B", "unet-L", "unet-S", "unet-T", "unet-test"]


@pytest.mark.parametrize("name", [n for n in NAMES if n not in META_ONLY])
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
        assert torch.equal(a, b)
        net = one_step(build(name, seed=1))  # NAFNet's blocks are the identity until β, γ move
        with torch.no_grad():
            assert (net(x, mu, t) - net(x, mu, t + 0.4)).abs().max() > 1e-4

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


LADDER = {  # true params, thop-compatible params, GMACs (conv + matmul) at 1×6×256×256 — README "Backbones"
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


@pytest.mark.parametrize("name", ["unet-test", "nafnet-T"])
def test_residual_output_adds_mu(name):
    x, mu, t = inputs(37, 53)
    plain = build(name, seed=3)
    res = build(name, seed=3, residual_output=True)
    with torch.no_grad():
        torch.testing.assert_close(res(x, mu, t), plain(x, mu, t) + mu)
    with pytest.raises(ValueError, match="residual_output adds"):
        build(name, residual_output=True, out_channels=6)


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


# ----------------------------------------------------------------------------- NAFNet (plugins/backbones/nafnet.py)
def nafnet_counts(width, enc, mid, dec, size=256, channels=3):
    """(parameters, MACs at size×size) of IR-SDE's ConditionalNAFNet, transcribed by hand from its layers (read
    off DenoisingNAFNet_arch.py, independently of plugins/backbones/nafnet.py). A block on c channels with time dim 4w:
    Linear(2w, 4c); 1×1 c→2c; 3×3 depthwise on 2c; SCA 1×1 c→c; 1×1 c→c; 1×1 c→2c; 1×1 c→c; two gain-only
    LayerNorms (c each); β, γ (c each)."""
    w, hw = width, size * size
    params = 24 * w * w + 12 * w  # time MLP: Linear(w, 8w) + Linear(4w, 4w)
    macs = 8 * w * w + 16 * w * w
    params += (2 * channels * 9 + 1) * w + (9 * w + 1) * channels  # intro, ending 3×3 convs
    macs += hw * 9 * w * (2 * channels + channels)

    def blocks(n, c, pixels):
        block_params = 2 * w * 4 * c + 4 * c + 7 * c * c + (2 + 18 + 2 + 1 + 1 + 2 + 1) * c + 4 * c
        block_macs = 2 * w * 4 * c + pixels * (2 * c * c + 18 * c + c * c + 2 * c * c + c * c) + c * c
        return n * block_params, n * block_macs

    c, pixels = w, hw
    for n in enc:
        p, m = blocks(n, c, pixels)
        params, macs = params + p + 8 * c * c + 2 * c, macs + m + (pixels // 4) * 8 * c * c  # + 2×2 stride-2 conv
        c, pixels = 2 * c, pixels // 4
    p, m = blocks(mid, c, pixels)
    params, macs = params + p, macs + m
    for n in dec:
        params, macs = params + 2 * c * c, macs + pixels * 2 * c * c  # bias-free 1×1 c→2c before PixelShuffle
        c, pixels = c // 2, pixels * 4
        p, m = blocks(n, c, pixels)
        params, macs = params + p, macs + m
    return params, macs


def test_nafnet_sizes_match_the_architecture_formula():
    """Every nafnet-* size's count in `bridgezoo list` (meta device) against the hand transcription; the published
    configurations are those of refusion.yml (width 64, [1, 1, 1, 28] / 1 / [1, 1, 1, 1]) and UDBM's README
    (widths 16 / 24 / 48, [1, 1, 1, 28])."""
    from bridgezoo_plugins.backbones.nafnet import SIZES

    assert {"nafnet-T", "nafnet-S", "nafnet-udbm-S", "nafnet-udbm-M", "nafnet-udbm-L", "nafnet-refusion"} <= set(SIZES)
    assert SIZES["nafnet-refusion"][:4] == (64, (1, 1, 1, 28), 1, (1, 1, 1, 1))
    assert [SIZES[f"nafnet-udbm-{s}"][:2] for s in "SML"] == [(16, (1, 1, 1, 28)), (24, (1, 1, 1, 28)), (48, (1, 1, 1, 28))]
    for name, (width, enc, mid, dec, _) in SIZES.items():
        card = backbone_card(lambda **o: bz.get_backbone(name, **o))
        params, macs = nafnet_counts(width, enc, mid, dec)
        assert card["params"] == params, name
        assert card["gmacs"] == pytest.approx(macs / 1e9, rel=1e-6), name
        assert card["input"].startswith("cat(x_t - mu, mu): 6 channels")
    assert nafnet_counts(64, (1, 1, 1, 28), 1, (1, 1, 1, 1))[0] == 76_608_387  # nafnet-refusion, by the formula
    assert backbone_card(lambda **o: bz.get_backbone("nafnet-T", **o))["params"] < 1.3e6  # CPU scale


def test_big_nafnets_on_the_meta_device():
    """The published sizes left out of the contract: odd H×W in and out, two outputs, two times (meta device)."""
    with torch.device("meta"):
        for name in sorted(META_ONLY):
            x = torch.empty(1, 3, 37, 53)
            assert bz.get_backbone(name)(x, x, torch.empty(1)).shape == (1, 3, 37, 53)
            assert bz.get_backbone(name, out_channels=6, time_inputs=2)(x, x, torch.empty(1, 2)).shape == (1, 6, 37, 53)


def live_nafnet(name="nafnet-T", seed=0, **kw):
    """A NAFNet whose β, γ are non-zero (as after training), so that the time embedding reaches the output."""
    net = build(name, seed=seed, **kw)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if n.endswith(("beta", "gamma")):
                p.fill_(0.5)
    return net


def test_nafnet_blocks_are_the_identity_at_init():
    """Official initialisation (β = γ = 0): the freshly built network ignores t; after one step it does not."""
    x, mu, t = inputs(37, 53)
    net = build("nafnet-T")
    with torch.no_grad():
        assert torch.equal(net(x, mu, t), net(x, mu, t + 0.5))
        assert (live_nafnet()(x, mu, t) - live_nafnet()(x, mu, t + 0.5)).abs().max() > 1e-3


def test_nafnet_input_is_the_difference_and_the_degraded_image():
    """The official input cat(x_t − μ, μ): the intro conv sees x_t − μ (shifting x_t and μ together changes only
    the μ half)."""
    net = live_nafnet()
    x, mu, t = inputs()
    seen = {}
    net.intro.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))  # returns None: input unchanged
    with torch.no_grad():
        net(x, mu, t)
    torch.testing.assert_close(seen["x"][..., :24, :24], torch.cat([x - mu, mu], dim=1))  # padded to 32


def test_nafnet_task_embedding_is_blind_at_init_and_learns():
    x, mu, t = inputs(b=2)
    net = live_nafnet(num_tasks=3)
    blind = live_nafnet()
    blind.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("task_embedding")})
    tasks = {k: torch.full((2,), k) for k in range(3)}
    with torch.no_grad():
        ref = blind(x, mu, t)
        for k in range(3):
            assert torch.equal(net(x, mu, t, task=tasks[k]), ref)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    net.train()
    (net(x, mu, t, task=tasks[1]) - x).square().mean().backward()
    opt.step()
    net.eval()
    with torch.no_grad():
        assert net.task_embedding.table.weight[1].abs().max() > 0 and net.task_embedding.table.weight[0].abs().max() == 0
        assert (net(x, mu, t, task=tasks[1]) - net(x, mu, t, task=tasks[0])).abs().max() > 1e-4
        torch.testing.assert_close(net(x, mu, t, task=tasks[0]), net(x, mu, t, task=tasks[2]))
    with pytest.raises(ValueError, match="task-conditioned"):
        net(x, mu, t)


def test_nafnet_takes_two_times_for_meanflow():
    x, mu, _ = inputs(b=2)
    net = live_nafnet(time_inputs=bz.get_bridge("meanflow").backbone_options(3)["time_inputs"])
    t = torch.tensor([[0.7, 0.2], [0.4, 0.1]])
    with torch.no_grad():
        out = net(x, mu, t)
        assert out.shape == (2, 3, 24, 24)
        assert (out - net(x, mu, t + torch.tensor([0.0, 0.3]))).abs().max() > 1e-4  # the second time matters
    with pytest.raises(ValueError, match=r"2 time input"):
        net(x, mu, t[:, 0])
    one, two = (backbone_card(lambda **o: bz.get_backbone("nafnet-T", **o), time_inputs=k)["params"] for k in (1, 2))
    assert two - one == 24 * 16 * 16 + 12 * 16  # one more time MLP


@pytest.mark.parametrize("bridge", bz.list_bridges())
def test_every_bridge_trains_and_samples_through_nafnet(bridge):
    """Each bridge's loss backpropagates through nafnet-T built with its backbone_options, and its default sampler
    restores through it (finite, μ's shape)."""
    b = bz.get_bridge(bridge)
    torch.manual_seed(0)
    model = b.wrap(bz.get_backbone("nafnet-T", **b.backbone_options(3)))
    x0, mu, _ = inputs(16, 16, b=2, seed=3)
    loss = b.training_loss(model, x0, mu, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    with torch.no_grad():
        out = b.sample(model, mu, nfe=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == mu.shape and torch.isfinite(out).all()


def test_every_backbone_declares_exactly_the_options_its_factory_takes():
    """--backbone-opt is checked against `option_spec`; the declaration and the constructor must not drift apart."""
    import inspect

    from bridgezoo.options import BACKBONE_PROTOCOL
    from bridgezoo.registry import _backbone_entry, backbone_option_spec

    for name in bz.list_backbones():
        example = name + "resnet18" if name.endswith("/") else name
        spec = backbone_option_spec(example)
        assert spec is not None, name
        with torch.device("meta"):
            net = bz.get_backbone(example)
        takes = set(inspect.signature(type(net).__init__).parameters) - {"self", "encoder", *BACKBONE_PROTOCOL}
        assert set(spec) == takes, (name, set(spec) ^ takes)
        assert {k: v for k, v in net.config.items() if k in spec} == {
            k: list(o.default) if isinstance(o.default, tuple) else o.default for k, o in spec.items()}, name
    assert _backbone_entry("timm-unet/resnet18")[1] == ("resnet18",)


def test_an_unknown_backbone_option_names_close_matches():
    from bridgezoo.errors import OptionError

    with pytest.raises(OptionError, match=r"backbone 'unet-T' has no option 'residual_outptu'\. Did you mean "
                                          r"'residual_output'\?.*dim_mults \(default \(1, 1, 1, 1\)\)"):
        bz.get_backbone("unet-T", residual_outptu=True)
    with pytest.raises(OptionError, match="option width='wide' is not a valid int"):
        bz.get_backbone("nafnet-T", width="wide")
    assert bz.get_backbone("unet-test", residual_output="true").residual_output is True  # parsed as declared
