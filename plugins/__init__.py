"""bridgezoo's built-in plugins, installed as `bridgezoo_plugins` and registered through the `bridgezoo`
entry-point group exactly like a third-party package. One file per method."""
