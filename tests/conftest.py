import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one thread per worker (and per subprocess it starts),
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"  # or two workers on two cores slow down
    torch.set_num_threads(1)  # by an order of magnitude


@pytest.fixture
def images64():
    """A float64 pair (x0, μ) of shape [2, 3, 8, 8] inside (-0.9, 0.9), so clipping never acts."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 1.8 - 0.9
    mu = (x0 + 0.4 * torch.randn(x0.shape, generator=g, dtype=torch.float64)).clamp(-0.9, 0.9)
    return x0, mu


@pytest.fixture(autouse=True, scope="session")
def _bridgezoo_cache_in_a_temporary_folder(tmp_path_factory):
    """Scan records (`bridgezoo.data.scans`) of the tests' throw-away folders go to a temporary folder, not the
    user's ~/.cache (set in the environment, so the CLI processes that tests start use it too)."""
    os.environ["BRIDGEZOO_CACHE_DIR"] = str(tmp_path_factory.mktemp("bridgezoo-cache"))


@pytest.fixture(autouse=True)
def _fresh_registry():
    from bridgezoo import registry

    registry.reset()
    yield
    registry.reset()

