"""`timm-unet/<encoder>`: a time-conditioned U-Net decoder over any timm encoder.

The encoder is `timm.create_model(encoder, features_only=True, in_chans=2C)` over cat(x_t, μ); its
`feature_info` gives the channels and strides of the skips. The decoder uses the same blocks as the U-Net ladder
(ResNet blocks with time scale-and-shift, GroupNorm, SiLU): a middle block on the deepest features, then per skip
nearest upsampling, concatenation and a ResNet block, and finally a full-resolution ResNet block over
cat(features, a 3×3 stem of the input) and a 1×1 conv. The encoder itself does not see t. `time_inputs=K`: t of
shape [B, K], one time MLP per time, embeddings summed (`backbone.embed_times`).

`pretrained=False` by default: weights cannot be downloaded on machines without a network. With
`pretrained=True` they load from the user's timm / Hugging Face cache; if that fails, the error says why.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bridgezoo import hookimpl
from bridgezoo.backbone import (ResnetBlock, condition_on_task, embed_times, extra_time_mlps, pad_to_multiple,
                                task_embedding, time_mlp)
from bridgezoo.errors import OptionError
from bridgezoo.options import BACKBONE_OPTIONS, Option


class TimmUNet(nn.Module):
    """forward(x_t, mu, t, task=None) -> [B, out_channels, H, W] for any H×W (reflect-padded to the encoder's stride);
    num_tasks > 0: task-conditioned (`backbone.TaskEmbedding`)."""

    option_spec = BACKBONE_OPTIONS | {  # what --backbone-opt may set; the encoder is the name's part after '/'
        "dim": Option(32, "channels of the decoder's full-resolution block; its time embedding has 4·dim"),
        "pretrained": Option(False, "load the encoder's ImageNet weights from the timm / Hugging Face cache"),
    }

    def __init__(self, encoder: str = "resnet18", channels: int = 3, out_channels: int | None = None, dim: int = 32,
                 pretrained: bool = False, residual_output: bool = False, time_scale: float = 1000.0,
                 time_inputs: int = 1, num_tasks: int = 0):
        super().__init__()
        import timm

        try:
            self.encoder = timm.create_model(encoder, features_only=True, in_chans=2 * channels, pretrained=pretrained)
        except RuntimeError as exc:
            if "Unknown model" in str(exc) or "Unknown" in str(exc):
                import difflib

                close = difflib.get_close_matches(encoder, timm.list_models(), n=3)
                raise OptionError(f"timm-unet: unknown timm encoder {encoder!r}"
                                  + (f"; did you mean {', '.join(close)}?" if close else "")) from None
            raise
        except Exception as exc:  # pretrained weights not in the cache, no network
            if pretrained:
                raise OptionError(f"timm-unet/{encoder}: pretrained weights could not be loaded ({type(exc).__name__}: "
                                  f"{exc}); put them in the timm / Hugging Face cache or use pretrained=False") from exc
            raise
        self.config = {"encoder": encoder, "channels": channels, "out_channels": out_channels or channels, "dim": dim,
                       "pretrained": pretrained, "residual_output": residual_output, "time_scale": time_scale,
                       "time_inputs": time_inputs, "num_tasks": num_tasks}
        self.out_channels = out_channels or channels
        self.residual_output, self.time_scale = residual_output, time_scale
        chs = self.encoder.feature_info.channels()
        self.stride = max(self.encoder.feature_info.reduction())
        tdim = dim * 4
        self.time_mlp = time_mlp(dim)
        self.extra_time_mlps = extra_time_mlps(dim, time_inputs)
        self.task_embedding = task_embedding(num_tasks, tdim)
        self.stem = nn.Conv2d(2 * channels, dim, 3, padding=1)
        self.mid = ResnetBlock(chs[-1], chs[-1], tdim)
        self.ups = nn.ModuleList()
        current = chs[-1]
        for skip in reversed(chs[:-1]):
            self.ups.append(ResnetBlock(current + skip, skip, tdim))
            current = skip
        self.final_res_block = ResnetBlock(current + dim, dim, tdim)
        self.final_conv = nn.Conv2d(dim, self.out_channels, 1)

    def forward(self, x_t: torch.Tensor, mu: torch.Tensor, t: torch.Tensor, task=None) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(torch.cat([x_t, mu], dim=1), self.stride)
        emb = embed_times(t, x.shape[0], [self.time_mlp, *self.extra_time_mlps], self.time_scale,
                          self.stem.weight.dtype, x.device)
        emb = condition_on_task(emb, self.task_embedding, task)
        feats = self.encoder(x)
        y = self.mid(feats[-1], emb)
        for block, skip in zip(self.ups, reversed(feats[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="nearest")
            y = block(torch.cat([y, skip], dim=1), emb)
        y = F.interpolate(y, size=x.shape[-2:], mode="nearest")
        y = self.final_conv(self.final_res_block(torch.cat([y, self.stem(x)], dim=1), emb))[..., :h, :w]
        return y + mu if self.residual_output else y


def build(encoder: str, **options) -> TimmUNet:
    return TimmUNet(encoder=encoder, **options)


build.option_spec = TimmUNet.option_spec


@hookimpl
def register_backbones(register):
    register(build, name="timm-unet/",
             summary="U-Net decoder over any timm encoder: timm-unet/<encoder>, e.g. timm-unet/resnet18")
