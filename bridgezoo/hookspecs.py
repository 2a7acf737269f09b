"""pluggy hook specifications of the project `bridgezoo` (entry-point group `bridgezoo`)."""

import pluggy

hookspec = pluggy.HookspecMarker("bridgezoo")
hookimpl = pluggy.HookimplMarker("bridgezoo")


@hookspec
def register_bridges(register):
    """Register bridges: register(BridgeSubclass, name="my-bridge", aliases=(), summary="...")."""


@hookspec
def register_backbones(register):
    """Register backbones: register(factory, name="my-net", aliases=(), summary="..."); factory(**opts) -> nn.Module;
    the factory's `option_spec` ({key: bz.Option}) declares what --backbone-opt may set."""


@hookspec
def register_datasets(register):
    """Register datasets: register(AdapterSubclass, name="my-data", aliases=(), summary="..."), a subclass of
    `bridgezoo.data.adapters.DatasetAdapter`; used as `--data my-data:PATH`."""


@hookspec
def register_samplers(register):
    """Register samplers: register(SamplerSubclass, name="my-sampler", summary="...", bridges=None).

    `bridges=None`: a shared sampler, offered to every bridge its `applies_to` accepts; `bridges=(BridgeClass, ...)`:
    only for those bridge classes and their subclasses (a method's own sampler). A sampler registered for a bridge
    may carry the name of a shared one: for that bridge, the name means the bridge's own (e.g. DDBM's `heun`)."""
