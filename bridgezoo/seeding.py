"""Seeds derived from named parts, collision-free.

Every random stream of a run is named by a tuple such as (seed, "noise", draw) or (seed, "epoch", epoch). The tuple
is hashed with SHA-256 and the first 63 bits are the seed, so two different tuples never share a stream in
practice (the old arithmetic `seed * 1_000_003 + micro * 101 + rank` gave (seed 0, micro 1) and (seed 0, micro 0,
rank 101) the same stream). Parts are joined with a separator that cannot occur inside an `int`, and strings are
length-prefixed, so ("1", "23") and ("12", "3") differ.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(*parts) -> int:
    """A 63-bit seed from (seed, stream name, step, ...); deterministic across processes and platforms."""
    text = "\x1f".join(f"{type(p).__name__}:{len(str(p))}:{p}" for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(*parts, device="cpu") -> torch.Generator:
    """A torch generator on `device` seeded by `derive_seed(*parts)`."""
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))


def numpy_rng(*parts) -> np.random.Generator:
    """A NumPy generator seeded by `derive_seed(*parts)`."""
    return np.random.default_rng(derive_seed(*parts))


def randn(shape, generator=None, device=None, dtype=None) -> torch.Tensor:
    """Standard normal noise of `shape` (first dimension the batch) from one generator, or from a sequence of one
    generator per batch item: item i is then drawn from generator i alone, exactly as `randn((1, *shape[1:]))`
    on it, so an image's noise does not depend on the batch it is in (batched evaluation, split training
    batches). With one generator (or None) this is `torch.randn(shape, ...)` unchanged."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.cat([torch.randn((1, *shape[1:]), generator=g, device=device, dtype=dtype) for g in generator])
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)
