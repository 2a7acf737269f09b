"""The two-level (seeds × test images) bootstrap behind the report's intervals, against closed forms."""

import numpy as np
import pytest

from bridgezoo.report import bootstrap_ci, bootstrap_means


def test_one_seed_of_iid_normal_images_gives_the_normal_interval_of_a_mean():
    sigma, n = 2.0, 400
    values = np.random.default_rng(1).normal(25.0, sigma, n)
    mean, low, high = bootstrap_ci(values)
    assert mean == pytest.approx(values.mean())
    # the bootstrap resamples the empirical distribution: width ≈ 2 · 1.96 · σ̂ / √n (σ̂ with ddof 0)
    expected = 2 * 1.959964 * values.std() / np.sqrt(n)
    assert high - low == pytest.approx(expected, rel=0.08)
    assert low < values.mean() < high


def test_identical_values_and_one_seed_give_a_zero_width_interval():
    assert bootstrap_ci(np.full(50, 21.5)) == (21.5, 21.5, 21.5)
    assert bootstrap_ci(np.full((3, 50), 21.5)) == (21.5, 21.5, 21.5)  # seeds that agree: still zero


def test_both_levels_count_seed_effect_plus_image_effect():
    """values[s, i] = a_s + b_i: the mean's variance is var(a)/S + var(b)/N (both empirical, ddof 0)."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.0, 1.0, 40), rng.normal(0.0, 3.0, 400)
    values = a[:, None] + b[None, :]
    _, low, high = bootstrap_ci(values)
    expected = 2 * 1.959964 * np.sqrt(a.var() / len(a) + b.var() / len(b))
    assert high - low == pytest.approx(expected, rel=0.08)
    # one level alone is too narrow: the seeds' spread, or the images' spread, misses the other source
    images_only = bootstrap_ci(values.mean(0))
    seeds_only = bootstrap_ci(values.mean(1)[None, :])
    assert images_only[2] - images_only[1] < 0.85 * expected and seeds_only[2] - seeds_only[1] < 0.85 * expected


def test_the_same_images_are_drawn_for_every_seed():
    """Two seed rows that are one row and that row + 1: one image draw serves both rows, so every draw's mean is
    the mean of the drawn images plus 0, 0.5 or 1 (independent image draws per seed would add other values)."""
    base = np.random.default_rng(3).normal(0.0, 5.0, 300)
    values = np.stack([base, base + 1.0])
    draws = bootstrap_means(values, draws=400)
    # a draw's mean = (its images' mean) + (its seeds' mean shift: 0, 0.5 or 1); the same image draw for
    # two equal rows (same seed, same shapes) isolates the images' part
    image_means = bootstrap_means(np.stack([base, base]), draws=400)
    shift = np.round(draws - image_means, 9)
    assert np.isin(shift, [0.0, 0.5, 1.0]).all() and len(set(shift)) == 3


def test_strata_keep_the_task_mix():
    """Two tasks of very different level: stratified draws keep half of each, so the only spread is within tasks."""
    values = np.concatenate([np.full(100, 10.0), np.full(100, 30.0)])
    tasks = ["derain"] * 100 + ["dehaze"] * 100
    assert bootstrap_ci(values, tasks) == (20.0, 20.0, 20.0)
    _, low, high = bootstrap_ci(values)  # unstratified: the mix varies from draw to draw
    assert high - low > 2.0


def test_pairing_by_image_resolves_half_a_db_that_separate_intervals_cannot():
    """Method A = method B + 0.5 dB on every image, plus per-image variation (σ 4 dB) shared by both and small
    noise: the paired interval is narrow and excludes 0; the two methods' own intervals overlap."""
    rng = np.random.default_rng(4)
    seeds, n = 3, 200
    base = rng.normal(25.0, 4.0, n)
    b = base + rng.normal(0.0, 0.05, (seeds, 1)) + rng.normal(0.0, 0.1, (seeds, n))
    a = base + 0.5 + rng.normal(0.0, 0.05, (seeds, 1)) + rng.normal(0.0, 0.1, (seeds, n))
    mean, low, high = bootstrap_ci(a - b)  # paired by seed and image
    assert mean == pytest.approx(0.5, abs=0.05) and 0 < low < high < 1.0 and high - low < 0.3
    ma, la, ha = bootstrap_ci(a)
    mb, lb, hb = bootstrap_ci(b)
    assert la < hb and lb < ha  # unpaired: the intervals overlap, 0.5 dB is not resolved
    unpaired = bootstrap_means(a, seed=1) - bootstrap_means(b, seed=2)  # independent image draws
    assert np.percentile(unpaired, 2.5) < 0 < np.percentile(unpaired, 97.5)
    # seeds that do not pair (minus=): one image draw for both, so still narrow
    mean2, low2, high2 = bootstrap_ci(a, minus=b[:2])
    assert 0 < low2 < high2 < 1.0


def test_nan_cells_are_left_out_and_mismatched_images_are_an_error():
    values = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]])
    mean, low, high = bootstrap_ci(values)
    assert mean == pytest.approx(2.0) and 1.0 <= low <= high <= 3.0
    with pytest.raises(ValueError, match="not the same images"):
        bootstrap_means(np.zeros((2, 3)), minus=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="strata has 2 labels for 3 images"):
        bootstrap_means(np.zeros((2, 3)), ["a", "b"])


def test_the_bootstrap_is_reproducible():
    values = np.random.default_rng(5).normal(size=(3, 50))
    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert np.array_equal(bootstrap_means(values, seed=7), bootstrap_means(values, seed=7))
