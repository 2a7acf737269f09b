"""Where a bridge finds its samplers by name, without importing the registry (which imports `bridge` to check what
plugins register, so the other direction would be an import circle). `bridgezoo.registry` installs itself here
when it is imported, and the package's `__init__` imports it, so it is installed before any bridge exists."""

from __future__ import annotations

from typing import Any

_sampler_source: Any = None


def install_sampler_source(source: Any) -> None:
    """Make `source` the one bridges ask: it has `sampler_names(bridge)` → the names of every sampler that applies
    (official first) and `make_sampler(bridge, spec)` → a `Sampler` from NAME or NAME:KEY=VALUE,..."""
    global _sampler_source
    _sampler_source = source


def sampler_source() -> Any:
    """The installed source (`bridgezoo.registry`, unless a test installs another)."""
    if _sampler_source is None:
        raise RuntimeError("no sampler source is installed: import bridgezoo (its registry installs itself)")
    return _sampler_source
