"""Metric conventions checked against independent computations and scikit-image."""

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
