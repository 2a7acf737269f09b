"""`nafnet-*`: the time-conditioned NAFNet of IR-SDE / Refusion (`ConditionalNAFNet`), sizes from CPU scale to the
published configurations.

Read from Algolzw/image-restoration-sde at 2598d73, `codes/config/deraining/models/modules/DenoisingNAFNet_arch.py`
(the same file in deblurring/, deshadow/, inpainting/, sisr/) and `.../modules/module_util.py`:

- NAFBlock (L15-84), channels c: x → LayerNorm → x·(1 + scale) + shift → 1×1 conv c→2c → 3×3 depthwise → SimpleGate
  (split channels in two halves, multiply; L9-12) → simplified channel attention (x · 1×1conv(global average pool))
  → 1×1 conv c→c; y = input + β·x; then the FFN half: LayerNorm(y) → ·(1 + scale) + shift → 1×1 conv c→2c →
  SimpleGate → 1×1 conv c→c; out = y + γ·x. β, γ are per-channel and start at zero (L48-49), so every block is the
  identity at initialisation (and the network ignores t until a first step has moved β, γ). No dropout (rate 0).
- Time conditioning: per block SimpleGate → Linear(2·width, 4c) on the time embedding (L18-20), chunked into
  (shift_att, scale_att, shift_ffn, scale_ffn) in that order (L51-54, L58). The time embedding (L92-101): sinusoidal
  of dimension `width` (module_util L29-41: f_k = exp(−ln 1e4 · k/(half − 1)), [sin, cos], the same formula as
  `backbone.SinusoidalTimeEmbedding`) → Linear(width, 8·width) → SimpleGate → Linear(4·width, 4·width).
- LayerNorm (module_util L70-79): over channels, gain only, no bias (`backbone.ChannelLayerNorm`; it keeps ε = 1e-5
  under autocast, where the official code takes 1e-3 for non-fp32 inputs).
- Network (L87-188): input cat(x_t − μ, μ) (L153-154) → 3×3 conv to `width` (L103); per encoder level its blocks
  then a 2×2 stride-2 conv doubling the channels (L122); middle blocks; per decoder level a bias-free 1×1 conv
  doubling channels → PixelShuffle(2) (L132-136), plus the encoder's features (L174), then its blocks; a 3×3 conv
  to the image channels (L105); padded to a multiple of 2^levels (L145, L183-188) and cropped back (L179).
  No output residual.

Options (published values in refusion.yml, the 14 ConditionalNAFNet option files under codes/config/*/options/:
width 64, enc_blk_nums [1, 1, 1, 28], middle_blk_num 1, dec_blk_nums [1, 1, 1, 1]); UDBM (UDBM-ICML26 README,
"Model Zoo": stage-2 networks width 16 / 24 / 48 with blocks [1, 1, 1, 28]; its middle and decoder counts are
not stated there, taken as Refusion's 1 and [1, 1, 1, 1]).

Differences from the official code, all bridgezoo's backbone protocol (`bridgezoo.backbone`): t ∈ [0, 1] is
multiplied by `time_scale` (1000, as the U-Net; IR-SDE / Refusion feed the step index i ∈ 1..T, T = 100 in
refusion.yml, i.e. time_scale = 100 on their grid); padding reflects (`pad_to_multiple`) where the official one
pads zeros; `out_channels` may differ from the image channels (RDDM's two outputs); `residual_output` returns
prediction + μ; `time_inputs = K` takes t of shape [B, K] with one time MLP per column, embeddings summed (MeanFlow);
`num_tasks` adds the zero-initialised `TaskEmbedding` to the time embedding (`--task-conditioned`).
"""

from __future__ import annotations

import torch
from torch import nn

from bridgezoo import hookimpl
from bridgezoo.backbone import (ChannelLayerNorm, SinusoidalTimeEmbedding, condition_on_task, embed_times,
                                extra_time_mlps, pad_to_multiple, task_embedding)
from bridgezoo.options import BACKBONE_OPTIONS, Option


class SimpleGate(nn.Module):
    """[B, 2C, ...] → [B, C, ...]: the first half of the channels times the second (NAFNet's gate)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """One time-conditioned NAFNet block on c channels: forward(x [B, c, H, W], emb [B, time_dim]) -> [B, c, H, W]."""

    def __init__(self, c: int, time_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(SimpleGate(), nn.Linear(time_dim // 2, 4 * c))
        self.norm1, self.norm2 = ChannelLayerNorm(c), ChannelLayerNorm(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)  # depthwise
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))  # simplified channel attention
        self.conv3 = nn.Conv2d(c, c, 1)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.gate = SimpleGate()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        shift_att, scale_att, shift_ffn, scale_ffn = self.mlp(emb)[:, :, None, None].chunk(4, dim=1)
        h = self.norm1(x) * (scale_att + 1) + shift_att
        h = self.gate(self.conv2(self.conv1(h)))
        y = x + self.conv3(h * self.sca(h)) * self.beta
        h = self.norm2(y) * (scale_ffn + 1) + shift_ffn
        return y + self.conv5(self.gate(self.conv4(h))) * self.gamma


class NAFStage(nn.ModuleList):
    """A run of NAFBlocks sharing the time embedding: forward(x, emb)."""

    def __init__(self, c: int, time_dim: int, blocks: int):
        super().__init__(NAFBlock(c, time_dim) for _ in range(blocks))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x, emb)
        return x


def nafnet_time_mlp(width: int) -> nn.Sequential:
    """t (already scaled) [B] → [B, 4·width]: sinusoidal(width) → Linear(width, 8·width) → SimpleGate →
    Linear(4·width, 4·width)."""
    return nn.Sequential(SinusoidalTimeEmbedding(width), nn.Linear(width, 8 * width), SimpleGate(),
                         nn.Linear(4 * width, 4 * width))


class ConditionalNAFNet(nn.Module):
    """forward(x_t, mu, t, task=None) -> [B, out_channels, H, W] for any H×W; the network sees cat(x_t − μ, μ).

    width: channels of the first level (level i has width·2^i, the middle width·2^levels); enc_blocks / dec_blocks:
    blocks per level (same length = levels; dec_blocks listed from the deepest level up); middle_blocks; channels:
    image channels C (input 2C); out_channels, residual_output, time_scale, time_inputs, num_tasks: the backbone
    protocol (module docstring).
    """

    input_form = "cat(x_t - mu, mu)"  # what `bridgezoo list` shows (`backbone.backbone_card`)
    option_spec = BACKBONE_OPTIONS | {  # what --backbone-opt may set (channels ... num_tasks: the runner's)
        "width": Option(16, "channels of the first level (even); level i has width·2^i"),
        "enc_blocks": Option((1, 1, 1, 28), "NAFBlocks per encoder level (its length = the number of levels)"),
        "middle_blocks": Option(1, "NAFBlocks at the deepest level"),
        "dec_blocks": Option((1, 1, 1, 1), "NAFBlocks per decoder level, deepest first (as many as enc_blocks)"),
    }

    def __init__(self, width: int = 16, enc_blocks=(1, 1, 1, 28), middle_blocks: int = 1, dec_blocks=(1, 1, 1, 1),
                 channels: int = 3, out_channels: int | None = None, residual_output: bool = False,
                 time_scale: float = 1000.0, time_inputs: int = 1, num_tasks: int = 0):
        super().__init__()
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"enc_blocks {list(enc_blocks)} and dec_blocks {list(dec_blocks)} must name as many levels")
        if width % 2:
            raise ValueError(f"width must be even (the sinusoidal embedding and SimpleGate halve it), got {width}")
        if residual_output and out_channels not in (None, channels):
            raise ValueError(f"residual_output adds μ, so out_channels must equal channels ({channels}), got {out_channels}")
        self.config = {"width": width, "enc_blocks": list(enc_blocks), "middle_blocks": middle_blocks,
                       "dec_blocks": list(dec_blocks), "channels": channels, "out_channels": out_channels or channels,
                       "residual_output": residual_output, "time_scale": time_scale, "time_inputs": time_inputs,
                       "num_tasks": num_tasks}
        self.out_channels = out_channels or channels
        self.residual_output, self.time_scale = residual_output, time_scale
        self.stride = 2 ** len(enc_blocks)
        time_dim = 4 * width
        self.time_mlp = nafnet_time_mlp(width)
        self.extra_time_mlps = extra_time_mlps(width, time_inputs, nafnet_time_mlp)
        self.intro = nn.Conv2d(2 * channels, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        chan = width
        for n in enc_blocks:
            self.encoders.append(NAFStage(chan, time_dim, n))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle = NAFStage(chan, time_dim, middle_blocks)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, 2 * chan, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(NAFStage(chan, time_dim, n))
        self.ending = nn.Conv2d(width, self.out_channels, 3, padding=1)
        self.task_embedding = task_embedding(num_tasks, time_dim)  # last: the other layers' initialisation is unchanged

    def forward(self, x_t: torch.Tensor, mu: torch.Tensor, t: torch.Tensor, task=None) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(torch.cat([x_t - mu, mu], dim=1), self.stride)
        emb = embed_times(t, x.shape[0], [self.time_mlp, *self.extra_time_mlps], self.time_scale,
                          self.intro.weight.dtype, x.device)
        emb = condition_on_task(emb, self.task_embedding, task)
        x = self.intro(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x, emb)
            skips.append(x)
            x = down(x)
        x = self.middle(x, emb)
        for up, decoder in zip(self.ups, self.decoders):
            x = decoder(up(x) + skips.pop(), emb)
        x = self.ending(x)[..., :h, :w]
        return x + mu if self.residual_output else x


# name: (width, enc_blocks, middle_blocks, dec_blocks, summary)
SIZES = {
    "nafnet-T": (16, (1, 1, 1, 1), 1, (1, 1, 1, 1), "CPU scale"),
    "nafnet-S": (32, (1, 1, 1, 4), 1, (1, 1, 1, 1), "small"),
    "nafnet-udbm-S": (16, (1, 1, 1, 28), 1, (1, 1, 1, 1), "UDBM-S stage 2 (UDBM-ICML26)"),
    "nafnet-udbm-M": (24, (1, 1, 1, 28), 1, (1, 1, 1, 1), "UDBM-M stage 2 (UDBM-ICML26)"),
    "nafnet-udbm-L": (48, (1, 1, 1, 28), 1, (1, 1, 1, 1), "UDBM-L stage 2 (UDBM-ICML26)"),
    "nafnet-refusion": (64, (1, 1, 1, 28), 1, (1, 1, 1, 1), "IR-SDE / Refusion refusion.yml"),
}


def _factory(name: str):
    width, enc, mid, dec, _ = SIZES[name]

    def build(**options) -> ConditionalNAFNet:
        return ConditionalNAFNet(**({"width": width, "enc_blocks": enc, "middle_blocks": mid, "dec_blocks": dec}
                                    | options))

    build.__name__ = name.replace("-", "_")
    build.__doc__ = f"{name}: ConditionalNAFNet(width={width}, enc_blocks={enc}, middle_blocks={mid}, dec_blocks={dec})"
    spec = ConditionalNAFNet.option_spec
    build.option_spec = spec | {key: Option(value, spec[key].help) for key, value in
                                (("width", width), ("enc_blocks", enc), ("middle_blocks", mid), ("dec_blocks", dec))}
    return build


@hookimpl
def register_backbones(register):
    for name, (width, enc, mid, dec, note) in SIZES.items():
        summary = f"time-conditioned NAFNet ({note}), width {width}, blocks {list(enc)}/{mid}/{list(dec)}"
        register(_factory(name), name=name, summary=summary)
