"""bridgezoo: every diffusion-bridge image-restoration method in one fair arena.

    import bridgezoo as bz
    b = bz.get_bridge("rdbm")                 # the paper's defaults: π = x0 − μ, λ = 10/255, cosine θ
    loss = b.training_loss(b.wrap(net), x0, mu)
    x0_hat = b.sample(b.wrap(net), mu, nfe=10)                # its official sampler
    x0_hat = b.sample(b.wrap(net), mu, nfe=5, sampler="dbim:eta=0.3")   # any sampler in b.samplers

Attributes are imported lazily, so `bridgezoo --help` does not import torch.
"""

from __future__ import annotations

import importlib

from . import registry  # noqa: F401 - torch-free; installs itself as the source of bridges' samplers (lookup.py)
from .hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "Bridge": "bridge", "PI_MODES": "bridge", "DegenerateBridgeWarning": "bridge", "Auxiliary": "bridge",
    "Option": "options", "OBJECTIVES": "objectives", "OBJECTIVE_TABLE": "objectives",
    "Sampler": "samplers", "SamplerInfo": "samplers", "Trajectory": "samplers",
    "GeneralizedBridge": "generalized",
    "list_bridges": "registry", "get_bridge": "registry", "list_backbones": "registry",
    "get_backbone": "registry", "plugin_records": "registry", "list_datasets": "registry", "get_dataset": "registry",
    "sampler_records": "registry",
    "DatasetAdapter": "data.adapters", "MixAdapter": "data.adapters", "SplitSpec": "data.adapters",
    "BridgezooError": "errors", "OptionError": "errors", "PluginError": "errors", "UnknownNameError": "errors",
}

__all__ = ["hookimpl", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bridgezoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
