"""A bridge's public extension hooks: `schedule(t)` (required), `grid(nfe)` and `train_times()`, read through
`coefficients(t, like=None)`; a plugin still written against the old private names works, with a warning."""

from __future__ import annotations

import pytest
import torch

import bridgezoo as bz


class Straight(bz.Bridge):
    paper = "test"

    def schedule(self, t):
        return 1 - t, t, 0.5 * t * (1 - t)


def test_coefficients_are_shaped_per_image_on_likes_device_and_dtype():
    b = Straight()
    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    like = torch.zeros(2, 3, 4, 4, dtype=torch.float16)
    a, m, c = b.coefficients(t, like)
    assert a.shape == (2, 1, 1, 1) and a.dtype == torch.float16 and a.device == like.device
    assert torch.equal(a, (1 - t).reshape(2, 1, 1, 1).half()) and torch.equal(c, (0.5 * t * (1 - t)).reshape(2, 1, 1, 1).half())
    a32, _, _ = b.coefficients(t.float())  # no `like`: t's dtype
    assert a32.dtype == torch.float32 and a32.shape == (2, 1, 1, 1)
    assert b.coefficients(torch.tensor(0.5))[0].shape == ()  # a 0-d t stays 0-d


def test_grid_and_train_times_are_the_hooks_samplers_and_training_read():
    class Coarse(Straight):
        def grid(self, nfe):
            return torch.linspace(1, 0, nfe + 1, dtype=torch.float64) ** 2

        def train_times(self):
            return torch.tensor([0.5, 1.0], dtype=torch.float64)

    b = Coarse()
    assert torch.equal(b.timesteps(4, "ddim"), torch.linspace(1, 0, 5, dtype=torch.float64) ** 2)
    assert set(b.sample_t(64, torch.Generator().manual_seed(0)).tolist()) == {0.5, 1.0}


def test_a_plugin_overriding_the_old_private_names_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="the hook _coefficients is now named schedule"):
        class Old(bz.Bridge):
            paper = "test"

            def _coefficients(self, t):
                return 1 - t, t, 0 * t

            def _grid(self, nfe):
                return torch.tensor([1.0, 0.3, 0.0], dtype=torch.float64)

            def _train_times(self):
                return torch.tensor([0.7], dtype=torch.float64)

    b = Old()
    assert float(b.coefficients(torch.tensor([0.25]))[1]) == 0.25
    assert b.timesteps(2, "ddim").tolist() == [1.0, 0.3, 0.0]
    assert b.sample_t(3).tolist() == pytest.approx([0.7] * 3)
