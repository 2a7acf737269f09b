"""Numeric precision of a block of work, stated once: exact fp32, TF32 or bf16 autocast.

On an NVIDIA GPU since Ampere, "fp32" is not exact by default: cuDNN convolutions run in TF32 (10-bit mantissa)
unless told otherwise, and matmuls may too. `precision_context` fixes the policy for the code inside it and puts
the previous one back afterwards:

- "fp32": TF32 off for matmul and cuDNN convolutions, autocast disabled (an outer autocast is not inherited);
- "tf32": TF32 on for both, autocast disabled;
- "bf16": autocast to bfloat16 on the device (TF32 settings left as they are).

On a CPU the TF32 switches change nothing (CPU kernels are IEEE fp32), so "fp32" and "tf32" agree there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .errors import OptionError

from .run.options import EVAL_PRECISIONS as PRECISIONS  # declared with --eval-precision


def check_precision(precision: str) -> str:
    """`precision` if it is one of PRECISIONS, else an OptionError naming them."""
    if precision not in PRECISIONS:
        raise OptionError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def _tf32_switches() -> list[tuple[object, str, object, object]]:
    """(namespace, attribute, value for TF32 off, value for TF32 on) of the matmul and convolution switches.

    PyTorch >= 2.9 has `fp32_precision` ("ieee" | "tf32"); mixing it with the legacy `allow_tf32` flags is an
    error there, so the new one is used wherever it exists."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(getattr(conv, "conv", None), "fp32_precision"):
        return [(matmul, "fp32_precision", "ieee", "tf32"), (conv.conv, "fp32_precision", "ieee", "tf32")]
    return [(matmul, "allow_tf32", False, True), (conv, "allow_tf32", False, True)]


def set_tf32(enabled: bool, conv: bool | None = None) -> None:
    """TF32 on (`enabled`) or off for CUDA matmuls, and for cuDNN convolutions (`conv`, default: as matmuls), from
    now on in this process. PyTorch's own default is matmuls off, convolutions on: `set_tf32(False, conv=True)`."""
    for (ns, attr, off, on), flag in zip(_tf32_switches(), (enabled, enabled if conv is None else conv)):
        setattr(ns, attr, on if flag else off)


@contextlib.contextmanager
def tf32(enabled: bool, conv: bool | None = None) -> Iterator[None]:
    """`set_tf32(enabled, conv)` inside the block; the previous switches restored after."""
    switches = _tf32_switches()
    saved = [getattr(ns, attr) for ns, attr, _, _ in switches]
    try:
        set_tf32(enabled, conv)
        yield
    finally:
        for (ns, attr, _, _), value in zip(switches, saved):
            setattr(ns, attr, value)


@contextlib.contextmanager
def no_autotuning() -> Iterator[None]:
    """cuDNN autotuning (`torch.backends.cudnn.benchmark`) off inside the block, restored after: sampling meets
    many shapes (image sizes, tiles, memory-probe crops) and each would be tuned anew, for seconds on an H200
    (reports/gpu-h200), while training's one fixed shape is tuned once."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


@contextlib.contextmanager
def precision_context(precision: str, device) -> Iterator[None]:
    """Run the block in `precision` ("fp32", "tf32" or "bf16", see the module docstring) on `device`, without cuDNN
    autotuning (`no_autotuning`: the block samples)."""
    device_type = torch.device(device).type
    check_precision(precision)
    if precision == "bf16":
        with torch.autocast(device_type, dtype=torch.bfloat16), no_autotuning():
            yield
        return
    with tf32(precision == "tf32"), torch.autocast(device_type, enabled=False), no_autotuning():
        yield


def eager():
    """A block in which a `torch.compile`d network runs eagerly: for calls that would otherwise compile a second
    graph or meet a transform the compiled graph does not support (the trainer's probe loss at another batch size
    and in eval mode; MeanFlow's forward-mode JVP). Nothing to do for an eager network or an older torch."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance else contextlib.nullcontext()
