"""The shared samplers of the core (`bridgezoo/samplers.py`), registered through the same entry-point group a
third-party sampler package uses: ddim, dbim, posterior, euler_maruyama, heun, dpmpp_2m."""

from bridgezoo import hookimpl
from bridgezoo.samplers import SHARED_SAMPLERS


@hookimpl
def register_samplers(register):
    for name, cls in SHARED_SAMPLERS.items():
        register(cls, name=name)
