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
