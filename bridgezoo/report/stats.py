"""Statistics of a report: the Student-t interval over seeds, the two-level bootstrap over seeds and test
images (`bootstrap_ci`), the `Interval` a table cell holds, and paired differences between methods."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the 95% t interval, n) of a sequence; half-width is NaN for fewer than 2 values."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v[0]), math.nan, 1
    return float(v.mean()), float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)), n


BOOTSTRAP_DRAWS = 2000  # draws of the two-level bootstrap
BOOTSTRAP_SEED = 0  # its fixed numpy seed: a report renders to the same numbers every time


def _resample_counts(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """(draws, n) counts: how often each of n items is picked when n are drawn with replacement, per draw."""
    picks = rng.integers(0, n, size=(draws, n)) + n * np.arange(draws)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * n).reshape(draws, n).astype(np.float64)


def _as_matrix(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    return x.reshape(1, -1) if x.ndim == 1 else x


def bootstrap_means(values, strata=None, *, minus=None, draws: int = BOOTSTRAP_DRAWS,
                    seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """The two-level (hierarchical) bootstrap distribution of the mean of a seeds × images array: `draws` values.

    One draw resamples the seeds (rows) with replacement, then the test images (columns) with replacement — the
    same image indices for every seed of that draw, since every seed evaluates the same images — and takes the mean
    of the drawn cells (NaN cells, e.g. an infinite PSNR, are left out). `strata` (one label per image, e.g. its
    task) resamples the images within each stratum, so every draw keeps the test set's task mix. A 1-D `values` is
    one seed. `minus`, a second seeds' × images array over the same images (columns, same order), gives the
    distribution of mean(values) − mean(minus): one image draw for both (paired by image), each its own seed draw
    (for methods whose seeds do not pair; where they do, pass the per-seed, per-image difference as `values`).
    scipy.stats.bootstrap resamples one level only (or whole paired observations), hence this function.
    """
    parts = [(1.0, _as_matrix(values))] + ([(-1.0, _as_matrix(minus))] if minus is not None else [])
    images = parts[0][1].shape[1]
    if any(x.shape[1] != images for _, x in parts):
        raise ValueError(f"values has {images} images, minus {parts[-1][1].shape[1]}: not the same images")
    labels = np.zeros(images, dtype=int) if strata is None else pd.factorize(np.asarray(strata))[0]
    if len(labels) != images:
        raise ValueError(f"strata has {len(labels)} labels for {images} images")
    groups = [np.flatnonzero(labels == k) for k in range(labels.max() + 1)] if images else []
    rng = np.random.default_rng(seed)
    out = np.zeros(draws)
    step = max(1, min(draws, 1_000_000 // max(images, 1)))  # draws per block: bounded memory for the weights
    for start in range(0, draws, step):
        n = min(step, draws - start)
        image_w = np.zeros((n, images))
        for idx in groups:
            image_w[:, idx] = _resample_counts(rng, len(idx), n)
        for sign, x in parts:
            finite = np.isfinite(x)
            seed_w = _resample_counts(rng, x.shape[0], n)
            total = np.einsum("bs,si,bi->b", seed_w, np.where(finite, x, 0.0), image_w)
            count = np.einsum("bs,si,bi->b", seed_w, finite.astype(np.float64), image_w)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start:start + n] += sign * total / count
    return out


def bootstrap_ci(values, strata=None, *, minus=None, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of a seeds × images array (minus the mean of `minus`, where given) and its
    `level` percentile interval from `bootstrap_means` (seeds and images resampled; see there)."""
    def mean_of(v):
        x = _as_matrix(v)
        return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan

    mean = mean_of(values) - (mean_of(minus) if minus is not None else 0.0)
    dist = bootstrap_means(values, strata, minus=minus, draws=draws, seed=seed)
    if not np.isfinite(dist).any():
        return mean, math.nan, math.nan
    low, high = np.nanpercentile(dist, [50 * (1 - level), 50 * (1 + level)])
    return mean, float(low), float(high)


def fmt(mean: float, half: float, digits: int = 2, low: float = math.nan, high: float = math.nan) -> str:
    """'mean ± half' for a t interval, 'mean [low, high]' for a percentile one (no half), 'mean' for none."""
    if not _finite(mean):
        return "–"
    if _finite(half):
        return f"{mean:.{digits}f} ± {half:.{digits}f}"
    if _finite(low) and _finite(high):
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{mean:.{digits}f}"


def fmt_cell(row, name: str, digits: int = 2) -> str:
    """`fmt` of the columns NAME, NAME_ci, NAME_lo, NAME_hi of a table row (a dict or a pandas row)."""
    get = (lambda k: row.get(k, math.nan)) if hasattr(row, "get") else (lambda k: getattr(row, k, math.nan))
    return fmt(get(name), get(f"{name}_ci"), digits, get(f"{name}_lo"), get(f"{name}_hi"))


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and bool(np.isfinite(x))



def _per_seed(g: pd.DataFrame, column) -> pd.Series:
    """One value per seed (the mean where two runs of one method share a seed): the interval's repetitions."""
    return g.groupby("seed")[column].mean()


INTERVAL_NOTE = ("95% intervals: 'mean [low, high]' is the percentile interval of a two-level bootstrap over seeds "
                 f"and test images ({BOOTSTRAP_DRAWS} draws resampling the seeds, then the images, the same images "
                 "for every seed; with one seed it covers the images only); 'mean ± h' is the Student-t interval "
                 "over seeds, for runs without per-image results (eval.csv); none for one such seed")


@dataclasses.dataclass
class Interval:
    """A mean and its 95% interval [low, high]; `half` is the t interval's half-width (NaN for a bootstrap one),
    `kind` says which interval it is ("bootstrap", "t" or "" for none), `seeds` and `images` what it covers."""

    mean: float
    low: float = math.nan
    high: float = math.nan
    half: float = math.nan
    kind: str = ""
    seeds: int = 0
    images: int = 0

    def cells(self, name: str) -> dict:
        """The table columns NAME, NAME_ci (t half-width), NAME_lo and NAME_hi (the interval's bounds)."""
        return {name: self.mean, f"{name}_ci": self.half, f"{name}_lo": self.low, f"{name}_hi": self.high}

    def describe(self) -> str:
        if self.kind == "bootstrap":
            return (f"bootstrap, {self.seeds} seed{'s' * (self.seeds != 1)} × {self.images} images"
                    + (" (images only)" if self.seeds == 1 else ""))
        return f"t, {self.seeds} seeds" if self.kind == "t" else f"none ({self.seeds} seed, no per-image results)"


def _t_interval(seed_values) -> Interval:
    mean, half, n = mean_ci(seed_values)
    if _finite(half):
        return Interval(mean, mean - half, mean + half, half, "t", n)
    return Interval(mean, seeds=n)


class PerImage:
    """Per-image results (`per_image_per_run.csv`) by evaluation (run, NFE, sampler)."""

    def __init__(self, frame: pd.DataFrame | None):
        frame = frame if frame is not None else pd.DataFrame()
        groups = frame.groupby(["run", "steps", "sampler"]) if not frame.empty else []
        self.by_evaluation = {(str(r), int(n), str(sp)): g for (r, n, sp), g in groups}

    def of(self, evaluations: pd.DataFrame, task: str | None = None) -> pd.DataFrame | None:
        """The per-image rows of `evaluations` (rows with run, nfe, sampler; of one task where given), or None
        unless every one of them has per-image rows."""
        keys = {(str(r), int(n), str(sp))
                for r, n, sp in zip(evaluations["run"], evaluations["steps"], evaluations["sampler"])}
        if not keys or not keys <= self.by_evaluation.keys():
            return None
        rows = pd.concat([self.by_evaluation[k] for k in sorted(keys)], ignore_index=True)
        rows = rows[rows["task"] == task] if task is not None else rows
        return rows if len(rows) else None


def seed_image_matrix(images: pd.DataFrame, value) -> tuple[pd.DataFrame, np.ndarray] | None:
    """(seeds × images table of `value`, each image's task): `value` is a column of the per-image rows or a function
    of them; runs that share a seed are averaged, ±inf (a perfect PSNR) is NaN as in summary.json. None where the
    seeds did not evaluate the same images or no value is finite."""
    v = value(images) if callable(value) else images[value]
    keys = ["seed", "task", "image"]
    table = images[keys].assign(value=pd.to_numeric(v, errors="coerce").replace([np.inf, -np.inf], np.nan))
    table = table.groupby(keys)["value"].mean().unstack(["task", "image"])
    present = images.groupby(keys).size().unstack(["task", "image"])
    if present.isna().to_numpy().any() or not np.isfinite(table.to_numpy()).any():
        return None
    return table, table.columns.get_level_values("task").to_numpy()


def interval(seed_values: pd.Series, images: pd.DataFrame | None = None, value=None) -> Interval:
    """The mean of `seed_values` (one per seed) with the two-level bootstrap interval over seeds and the per-image
    `value` of `images` where they have it (see `bootstrap_ci`), else the t interval over seeds."""
    found = seed_image_matrix(images, value) if images is not None else None
    if found is not None:
        table, tasks = found
        _, low, high = bootstrap_ci(table.to_numpy(), tasks)
        if _finite(low):
            return Interval(float(seed_values.mean()), low, high, math.nan, "bootstrap", len(table), table.shape[1])
    return _t_interval(seed_values)


def paired_difference(a: pd.Series, b: pd.Series, a_images=None, b_images=None, value=None,
                      common_seeds: bool = True) -> Interval:
    """A − B from their per-seed values `a`, `b` (and per-image rows `a_images`, `b_images` with `value`), paired
    by test image and, on the seeds both have, by seed (`common_seeds`; else, where the seed sets differ, each
    method's seeds are resampled on their own). With per-image rows for both on the same images: the two-level
    bootstrap interval of the difference; else the t interval of the per-seed differences (none for unpaired
    seeds). `seeds` counts the seed pairs (0 for unpaired seeds)."""
    common = a.index.intersection(b.index)
    paired = common_seeds or (set(a.index) == set(b.index))
    if paired and len(common) == 0:
        return Interval(math.nan)
    seed_diff = a.loc[common] - b.loc[common] if paired else None
    mean = float(seed_diff.mean()) if paired else float(a.mean() - b.mean())
    found = [seed_image_matrix(x, value) if x is not None else None for x in (a_images, b_images)]
    if all(f is not None for f in found) and set(found[0][0].columns) == set(found[1][0].columns):
        (ta, tasks), (tb, _) = found
        tb = tb[ta.columns]
        if paired:
            _, low, high = bootstrap_ci((ta.loc[common] - tb.loc[common]).to_numpy(), tasks)
        else:
            _, low, high = bootstrap_ci(ta.to_numpy(), tasks, minus=tb.to_numpy())
        if _finite(low):
            return Interval(mean, low, high, math.nan, "bootstrap", len(common) if paired else 0, ta.shape[1])
    if paired:
        return _t_interval(seed_diff)
    return Interval(mean)
