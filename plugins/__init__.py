"""bridgezoo's built-in plugins, installed as `bridgezoo_plugins`, one module per method, backbone family, dataset
or sampler set, by kind: `bridges/`, `backbones/`, `datasets/`, `samplers/`. The core loads them from
`bridgezoo.registry.DEFAULT_PLUGINS` through the same hooks a third-party package implements (third parties
register through the `bridgezoo` entry-point group)."""
