"""The U-Net ladder of the DiffUIR / RDDM lineage that RDBM reports (sizes T, S, B, L), and a micro `unet-test`.

Structure (the `Unet` of DiffUIR `src/model.py` and of RDDM `…/src/residual_denoising_diffusion_pytorch.py`, whose sizes
RDBM counts with thop; README "Backbones"): 7×7 stem over cat(x_t, μ); per level two ResNet blocks (weight-standardized
3×3 conv, GroupNorm(8), time scale-and-shift, SiLU) and linear attention (4 heads of 32); 4×4 stride-2 downsampling
between levels; middle ResNet – full attention – ResNet; a mirrored decoder with skip concatenation and nearest
upsampling + 3×3 conv; a final ResNet block over cat(features, stem) and a 1×1 conv. t ∈ [0, 1] is multiplied by
`time_scale` (1000) before the sinusoidal embedding. Any H×W: reflect-padded to the network's stride, cropped back.

Measured at 1×6×256×256 (tests/test_backbones.py): true params T 0.886M, S 3.269M, B 12.41M, L 36.26M; thop-
compatible params T 0.449M, S 1.076M, B 3.653M, L 7.738M (RDBM's table); conv + matmul MACs T 17.3, S 24.2,
B 83.6, L 119.2 G per network evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from bridgezoo import hookimpl
from bridgezoo.backbone import (FullAttention, LinearAttention, PreNormResidual, ResnetBlock, condition_on_task,
                                embed_times, extra_time_mlps, pad_to_multiple, task_embedding, time_mlp)
from bridgezoo.options import BACKBONE_OPTIONS, Option


class UNet(nn.Module):
    """forward(x_t, mu, t) -> [B, out_channels, H, W].

    dim, dim_mults: widths (dims = [dim, dim·m…]); channels: image channels C (input is 2C);
    out_channels: C or the bridge's `out_channels(C)`; residual_output: return prediction + μ (for x0 objectives,
    as RDBM's network reportedly does); time_scale: t is multiplied by it before the embedding; time_inputs: how
    many times t carries ([B] or [B, K], one time MLP per time, embeddings summed: `backbone.embed_times`); num_tasks: > 0 makes it task-conditioned
    (forward takes task=, a learned embedding added to the time embedding: `backbone.TaskEmbedding`).
    """

    option_spec = BACKBONE_OPTIONS | {  # what --backbone-opt may set (channels ... num_tasks: the runner's)
        "dim": Option(64, "channels of the first level; level i has dim·dim_mults[i]"),
        "dim_mults": Option((1, 2, 4, 8), "width multiplier per level (its length = the number of levels)"),
        "heads": Option(4, "attention heads"),
        "dim_head": Option(32, "channels per attention head"),
        "groups": Option(8, "GroupNorm groups"),
    }

    def __init__(self, dim: int = 64, dim_mults=(1, 2, 4, 8), channels: int = 3, out_channels: int | None = None,
                 residual_output: bool = False, time_scale: float = 1000.0, heads: int = 4, dim_head: int = 32,
                 groups: int = 8, time_inputs: int = 1, num_tasks: int = 0):
        super().__init__()
        if residual_output and out_channels not in (None, channels):
            raise ValueError(f"residual_output adds μ, so out_channels must equal channels ({channels}), got {out_channels}")
        self.config = {"dim": dim, "dim_mults": list(dim_mults), "channels": channels,
                       "out_channels": out_channels or channels, "residual_output": residual_output,
                       "time_scale": time_scale, "heads": heads, "dim_head": dim_head, "groups": groups,
                       "time_inputs": time_inputs, "num_tasks": num_tasks}
        self.channels, self.out_channels = channels, out_channels or channels
        self.residual_output, self.time_scale = residual_output, time_scale
        self.stride = 2 ** (len(dim_mults) - 1)
        tdim = dim * 4
        self.init_conv = nn.Conv2d(2 * channels, dim, 7, padding=3)
        self.time_mlp = time_mlp(dim)
        self.extra_time_mlps = extra_time_mlps(dim, time_inputs)
        self.task_embedding = task_embedding(num_tasks, tdim)
        dims = [dim, *(dim * m for m in dim_mults)]
        pairs = list(zip(dims[:-1], dims[1:]))
        self.downs = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(d_in, d_in, tdim, groups), ResnetBlock(d_in, d_in, tdim, groups),
                PreNormResidual(d_in, LinearAttention(d_in, heads, dim_head)),
                nn.Conv2d(d_in, d_out, 3, padding=1) if last else nn.Conv2d(d_in, d_out, 4, stride=2, padding=1),
            ]))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, tdim, groups)
        self.mid_attn = PreNormResidual(mid, FullAttention(mid, heads, dim_head))
        self.mid_block2 = ResnetBlock(mid, mid, tdim, groups)
        self.ups = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(reversed(pairs)):
            last = i == len(pairs) - 1
            self.ups.append(nn.ModuleList([
                ResnetBlock(d_out + d_in, d_out, tdim, groups), ResnetBlock(d_out + d_in, d_out, tdim, groups),
                PreNormResidual(d_out, LinearAttention(d_out, heads, dim_head)),
                nn.Conv2d(d_out, d_in, 3, padding=1) if last else
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(d_out, d_in, 3, padding=1)),
            ]))
        self.final_res_block = ResnetBlock(dim * 2, dim, tdim, groups)
        self.final_conv = nn.Conv2d(dim, self.out_channels, 1)

    def forward(self, x_t: torch.Tensor, mu: torch.Tensor, t: torch.Tensor, task=None) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(torch.cat([x_t, mu], dim=1), self.stride)
        emb = embed_times(t, x.shape[0], [self.time_mlp, *self.extra_time_mlps], self.time_scale,
                          self.init_conv.weight.dtype, x.device)
        emb = condition_on_task(emb, self.task_embedding, task)
        x = self.init_conv(x)
        stem = x
        skips = []
        for block1, block2, attn, down in self.downs:
            x = block1(x, emb)
            skips.append(x)
            x = attn(block2(x, emb))
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, emb)), emb)
        for block1, block2, attn, up in self.ups:
            x = block1(torch.cat([x, skips.pop()], dim=1), emb)
            x = attn(block2(torch.cat([x, skips.pop()], dim=1), emb))
            x = up(x)
        x = self.final_conv(self.final_res_block(torch.cat([x, stem], dim=1), emb))[..., :h, :w]
        return x + mu if self.residual_output else x


SIZES = {
    "unet-T": (32, (1, 1, 1, 1)),
    "unet-S": (32, (1, 2, 2, 4)),
    "unet-B": (64, (1, 2, 2, 4)),
    "unet-L": (64, (1, 2, 4, 8)),
    "unet-test": (16, (1, 1, 2, 2)),
}


def _factory(name: str):
    dim, mults = SIZES[name]

    def build(**options) -> UNet:
        options.setdefault("dim", dim)
        options.setdefault("dim_mults", mults)
        return UNet(**options)

    build.__name__ = name.replace("-", "_")
    build.__doc__ = f"{name}: UNet(dim={dim}, dim_mults={mults})"
    spec = UNet.option_spec
    build.option_spec = spec | {"dim": Option(dim, spec["dim"].help), "dim_mults": Option(mults, spec["dim_mults"].help)}
    return build


@hookimpl
def register_backbones(register):
    for name, (dim, mults) in SIZES.items():
        summary = f"DiffUIR/RDDM U-Net, dim {dim}, mults {mults}" + (" (micro, for tests)" if name == "unet-test" else "")
        register(_factory(name), name=name, summary=summary)
