"""Built-in sampler plugins: `shared.py` registers the core's shared samplers (`bridgezoo/samplers.py`)."""
