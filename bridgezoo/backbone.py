"""Backbone protocol, shared building blocks, and parameter / MAC counting.

A backbone is a `torch.nn.Module` with `forward(x_t, mu, t) -> Tensor`: x_t and mu are [B, C, H, W] in [-1, 1],
t is continuous in [0, 1] with shape [B]; the output has `out_channels` channels and the input's H×W (any size:
backbones pad internally and crop back). A backbone built with `time_inputs=K` (K > 1; a two-time model such as
MeanFlow asks for it through `Bridge.backbone_options`) takes t of shape [B, K] and embeds each column with its
own time MLP, the embeddings summed (`embed_times`). A backbone built with `num_tasks=N` (N > 0) is task-conditioned:
`forward(x_t, mu, t, task=...)` takes the task index (LongTensor [B] in [0, N)) and adds a learned embedding of it
to the time embedding (`TaskEmbedding`, class conditioning as in ADM's class-conditional U-Net); the core's
`bridgezoo.run.conditioning.TaskConditioned` binds the index so bridges and samplers still call `model(x_t, mu, t)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- counting
def count_params(model: nn.Module) -> int:
    """True number of parameters."""
    return sum(p.numel() for p in model.parameters())


def count_params_thop_compatible(model: nn.Module) -> int:
    """Parameters of modules whose type is *exactly* nn.Conv2d or nn.Linear — what `thop` counts (it skips
    weight-standardized convs, a subclass, and every normalization layer). Matches the RDBM paper's figures."""
    return sum(p.numel() for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear) for p in m.parameters(recurse=False))


def count_macs(model: nn.Module, x_t: torch.Tensor, mu: torch.Tensor, t: torch.Tensor) -> int:
    """Multiply-accumulates of one forward call (conv + matmul, torch.utils.flop_counter FLOPs / 2).

    Works on the meta device, so the count costs no compute: build the model and inputs under
    `torch.device("meta")`.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x_t, mu, t)
    return counter.get_total_flops() // 2


def backbone_card(factory, channels: int = 3, size: int = 256, **options) -> dict:
    """Counts for `bridgezoo list`: true and thop-compatible parameters, GMACs at size×size (meta device)."""
    with torch.device("meta"):
        model = factory(out_channels=channels, **options)
        x = torch.empty(1, channels, size, size)
        k = len(getattr(model, "extra_time_mlps", ())) + 1  # the times the backbone takes (MeanFlow: 2)
        t = torch.empty(1) if k == 1 else torch.empty(1, k)
        macs = count_macs(model, x, x, t)
    return {"params": count_params(model), "params_thop": count_params_thop_compatible(model),
            "gmacs": macs / 1e9,
            "input": f"{getattr(model, 'input_form', 'cat(x_t, mu)')}: {2 * channels} channels, any H×W; t in [0, 1]"}


# ----------------------------------------------------------------------------- padding
def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W (bottom/right) up to a multiple; replicate where the image is too small to reflect."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


# ----------------------------------------------------------------------------- building blocks
class SinusoidalTimeEmbedding(nn.Module):
    """[sin(t·f_k), cos(t·f_k)], f_k = exp(−ln(1e4)·k/(half − 1)), k < half = dim/2 (DDPM / lucidrains)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        dtype = t.dtype if t.is_floating_point() else torch.float32
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=dtype) * (-math.log(10000.0) / (half - 1)))
        args = t.to(dtype)[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class WSConv2d(nn.Conv2d):
    """Weight-standardized convolution: each output filter normalized to zero mean, unit variance (Qiao et al.).

    The standardization is computed from the weight in fp32 (fp64 for a float64 network) with ε = 1e-5 whatever the
    activations' dtype. (lucidrains'
    denoising-diffusion-pytorch, which DiffUIR's U-Net follows, takes ε = 1e-3 when the *input* is not fp32: under
    bf16 autocast that trains a different network from the one evaluated in fp32.)"""

    eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.weight.dtype in (torch.float32, torch.float64) else self.weight.float()
        var, mean = torch.var_mean(w, dim=(1, 2, 3), unbiased=False, keepdim=True)
        w = ((w - mean) * torch.rsqrt(var + self.eps)).to(self.weight.dtype)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of NCHW with a gain only (no bias)."""

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics in fp32 under autocast
        var, mean = torch.var_mean(xf, dim=1, unbiased=False, keepdim=True)
        return ((xf - mean) * torch.rsqrt(var + 1e-5) * self.g).to(x.dtype)


class ConvBlock(nn.Module):
    """WS-conv 3×3 → GroupNorm(8) → optional x·(scale + 1) + shift → SiLU."""

    def __init__(self, dim_in: int, dim_out: int, groups: int = 8):
        super().__init__()
        self.proj = WSConv2d(dim_in, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(math.gcd(groups, dim_out), dim_out)
        self.act = nn.SiLU()

    def forward(self, x, scale_shift=None):
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResnetBlock(nn.Module):
    """Two ConvBlocks with time scale-and-shift on the first; 1×1 conv on the residual path if channels change."""

    def __init__(self, dim_in: int, dim_out: int, time_dim: int, groups: int = 8):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, dim_out * 2))
        self.block1 = ConvBlock(dim_in, dim_out, groups)
        self.block2 = ConvBlock(dim_out, dim_out, groups)
        self.res_conv = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x, t_emb):
        scale_shift = self.mlp(t_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.block2(self.block1(x, scale_shift))
        return h + self.res_conv(x)


class LinearAttention(nn.Module):
    """Linear attention (Shen et al.): softmax over features for q, over positions for k; heads × dim_head hidden."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x):
        b, _, h, w = x.shape
        q, k, v = (z.reshape(b, self.heads, -1, h * w) for z in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class FullAttention(nn.Module):
    """Multi-head softmax attention over all positions (scaled dot product).

    q, k and v are handed to `scaled_dot_product_attention` contiguous in its [B, heads, N, d] layout: the fused
    kernels (flash / memory-efficient, on CPU and CUDA) need a unit stride on d, and without them the math kernel
    builds the N×N matrix (3.3 GB per head-batch at 720p); with them memory is linear in N."""

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        qkv = self.to_qkv(x).reshape(b, 3, self.heads, -1, h * w).transpose(-1, -2).contiguous()
        out = F.scaled_dot_product_attention(*qkv.unbind(1))  # q, k, v: [B, heads, N, d], unit stride on d
        return self.to_out(out.transpose(-1, -2).reshape(b, -1, h, w))


class PreNormResidual(nn.Module):
    """x + fn(LayerNorm(x))."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = ChannelLayerNorm(dim), fn

    def forward(self, x):
        return x + self.fn(self.norm(x))


def time_mlp(dim: int) -> nn.Sequential:
    """Sinusoidal embedding of dim → Linear(dim, 4·dim) → GELU → Linear(4·dim, 4·dim)."""
    return nn.Sequential(SinusoidalTimeEmbedding(dim), nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim * 4))


def extra_time_mlps(dim: int, time_inputs: int, build=time_mlp) -> nn.ModuleList:
    """The time MLPs of columns 1..K−1 of a K-time backbone (empty for K = 1, so one-time state dicts are unchanged);
    `build(dim)` makes one (default the U-Net's `time_mlp`)."""
    if time_inputs < 1:
        raise ValueError(f"time_inputs must be >= 1, got {time_inputs}")
    return nn.ModuleList(build(dim) for _ in range(time_inputs - 1))


class TaskEmbedding(nn.Module):
    """A learned vector per task, added to a backbone's time embedding (ADM-style class conditioning; Dhariwal &
    Nichol 2021, `guided_diffusion/unet.py` label_emb). Zero-initialised, so a task-conditioned network starts as the
    blind one and learns what each task needs."""

    def __init__(self, num_tasks: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(num_tasks, dim)
        nn.init.zeros_(self.table.weight)

    def forward(self, emb: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        if task is None:
            raise ValueError(f"this backbone is task-conditioned ({self.table.num_embeddings} tasks): call it with "
                             "task= (a task index per image)")
        task = torch.as_tensor(task, device=emb.device).long().reshape(-1).expand(emb.shape[0])
        return emb + self.table(task).to(emb.dtype)


def task_embedding(num_tasks: int, dim: int) -> TaskEmbedding | None:
    """The task table of a backbone built with `num_tasks` (None for 0: a blind backbone's state dict is unchanged)."""
    if num_tasks < 0:
        raise ValueError(f"num_tasks must be >= 0, got {num_tasks}")
    return TaskEmbedding(num_tasks, dim) if num_tasks else None


def condition_on_task(emb: torch.Tensor, table: TaskEmbedding | None, task) -> torch.Tensor:
    """emb + the task's embedding for a task-conditioned backbone; a blind backbone given a task is an error."""
    if table is None:
        if task is not None:
            raise ValueError("this backbone was built without num_tasks: it takes no task")
        return emb
    return table(emb, task)


def embed_times(t, batch: int, mlps, scale: float, dtype, device) -> torch.Tensor:
    """Σ_k mlps[k](scale·t[:, k]): t a scalar or of shape [B] (one time, broadcast to `batch`) or [B, K] with
    K = len(mlps) (e.g. MeanFlow's (t, t − r); summed embeddings as its PyTorch port's t- and r-embedders,
    zhuyu-cs/MeanFlow `sit.py` L247-255). Returns [batch, embedding dim]."""
    t = torch.as_tensor(t, device=device)
    given = tuple(t.shape)
    if t.dim() <= 1:
        t = t.reshape(-1).expand(batch)[:, None]
    if t.dim() != 2 or t.shape[1] != len(mlps):
        raise ValueError(f"this backbone takes {len(mlps)} time input(s) (time_inputs={len(mlps)}): t of shape "
                         f"{'[B]' if len(mlps) == 1 else f'[B, {len(mlps)}]'}, got {given}")
    t = t.expand(batch, -1) * scale
    return sum(mlp(t[:, k].to(dtype)) for k, mlp in enumerate(mlps))
