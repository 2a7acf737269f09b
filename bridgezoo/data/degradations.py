"""The five procedural degradations of the `zoo5` benchmark. Each takes a clean float32 image in [0, 1]
(H×W×3), a `numpy.random.Generator` (all randomness comes from it, so a seed fixes the result), for
dehazing an optional depth map in [0, 1] (H×W, larger = farther), and `scale`: the image's resolution relative to
the 512-px working side the ranges below are stated at (a photo fitted to 128 px has scale 0.25). Every length
in pixels (streaks, flakes, blur kernels) is multiplied by `scale` and flake densities divided by scale², so a
degradation covers the same part of the scene at any resolution; noise levels stay per pixel. Returns the
degraded image in [0, 1].

Parameter ranges at scale 1 (drawn uniformly per image) and the dataset each imitates:

| task | imitates | parameters |
|---|---|---|
| derain | Rain100H / Rain13K | 150–600 streaks per 100×100 px area ÷ 10, length 8–35 px, angle −25…25° from vertical (one per image ± 3°), width 1–2 px, opacity 0.35–0.8, screen-blended |
| lowlight | LOL | exposure 0.04–0.25, gamma 1.3–2.2, Poisson noise at 15–80 photons for full scale, Gaussian read noise σ 0.003–0.015 |
| desnow | Snow100K | 0.4–1.2 small flakes (radius 0.6–1.6 px) and 0.02–0.08 large flakes (radius 2–5 px) per 100 px², soft masks, brightness 0.8–1, veil 0.04–0.18 |
| dehaze | RESIDE | I = J·t + A·(1 − t), t = exp(−β·d), β 0.8–2.6, A 0.7–1.0 per channel ±0.04; d from a real depth map where one exists (the motorcycle's disparity), else a smooth synthetic depth (a vertical ramp plus low-frequency noise) |
| deblur | GoPro | camera-shake kernel: a random walk of 12–40 steps with momentum, 13–31 px support, Gaussian σ 0.5 px, then noise σ 0.002–0.01 |
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import line_aa


def _blend_screen(img, layer, opacity):
    return 1 - (1 - img) * (1 - opacity * layer[..., None])


def streak_layer(h: int, w: int, n: int, length: float, base: float, rng: np.random.Generator) -> np.ndarray:
    """The rain layer before widening and blur: `n` anti-aliased streaks of mean length `length` px at angle `base`
    (radians from vertical) ± 3°, each of intensity 0.6–1, drawn with the maximum where streaks cross, on a
    (h + 80)×(w + 80) float32 canvas (40 px margin each side, so streaks enter from outside the image).

    One call of `skimage.draw.line_aa` per streak (its lines have no repeated pixel, so the maxima can be taken
    over all streaks at once); the random draws are made in the order of the original per-streak loop (a vector
    draw of k values equals k scalar draws), so the layer is the same, pixel for pixel."""
    ys, xs = rng.uniform(0, h + 80, n), rng.uniform(0, w + 80, n)
    lens = length * rng.uniform(0.6, 1.4, n)
    angles = base + np.deg2rad(rng.uniform(-3, 3, n))
    y1 = np.clip(ys + lens * np.cos(angles), 0, h + 79).astype(np.intp)
    x1 = np.clip(xs + lens * np.sin(angles), 0, w + 79).astype(np.intp)
    lines = [line_aa(r0, c0, r1, c1) for r0, c0, r1, c1 in
             zip(ys.astype(np.intp).tolist(), xs.astype(np.intp).tolist(), y1.tolist(), x1.tolist())]
    strength = rng.uniform(0.6, 1.0, n)
    layer = np.zeros((h + 80, w + 80), np.float32)
    if n:
        rr = np.concatenate([ln[0] for ln in lines])
        cc = np.concatenate([ln[1] for ln in lines])
        val = np.concatenate([ln[2] * s for ln, s in zip(lines, strength)]).astype(np.float32)
        np.maximum.at(layer, (rr, cc), val)
    return layer


def derain(img: np.ndarray, rng: np.random.Generator, depth=None, scale: float = 1.0) -> np.ndarray:
    h, w = img.shape[:2]
    n = int(rng.uniform(40, 120) * h * w / 1e4 / scale)  # streaks per area of scene (shorter streaks, more of them)
    base = np.deg2rad(rng.uniform(-25, 25))
    length, width, opacity = rng.uniform(8, 35) * scale, int(rng.integers(1, 3)), rng.uniform(0.6, 0.95)
    layer = streak_layer(h, w, n, length, base, rng)
    if width > 1:
        layer = ndimage.grey_dilation(layer, size=(1, width))
    layer = ndimage.gaussian_filter(layer, 0.6 * max(scale, 0.5))[40 : 40 + h, 40 : 40 + w]
    return np.clip(_blend_screen(img, layer / max(layer.max(), 1e-6), opacity), 0, 1).astype(np.float32)


def lowlight(img: np.ndarray, rng: np.random.Generator, depth=None, scale: float = 1.0) -> np.ndarray:
    exposure, gamma = rng.uniform(0.04, 0.25), rng.uniform(1.3, 2.2)
    photons, read = rng.uniform(15, 80), rng.uniform(0.003, 0.015)
    dark = exposure * img**gamma
    noisy = rng.poisson(dark * photons).astype(np.float32) / photons + rng.normal(0, read, img.shape)
    return np.clip(noisy, 0, 1).astype(np.float32)


def _flakes(h, w, rng, density, radius):
    n = max(1, int(density * h * w / 100))
    layer = np.zeros((h, w), np.float32)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    layer[ys, xs] = rng.uniform(0.6, 1.0, n)
    return np.clip(ndimage.gaussian_filter(layer, radius) * (2 * np.pi * radius**2), 0, 1)


def desnow(img: np.ndarray, rng: np.random.Generator, depth=None, scale: float = 1.0) -> np.ndarray:
    h, w = img.shape[:2]
    # flake radii shrink with the image (not below half a pixel) and densities grow as the flake area falls,
    # so the covered fraction of the scene is the same at every scale
    def flakes(density, radius):
        scaled = max(radius * scale, 0.5)
        return _flakes(h, w, rng, density * (radius / scaled) ** 2, scaled)

    small = flakes(rng.uniform(0.4, 1.2), rng.uniform(0.6, 1.6))
    large = flakes(rng.uniform(0.02, 0.08), rng.uniform(2, 5))
    mask = np.clip(small + large, 0, 1)[..., None]
    veil, bright = rng.uniform(0.04, 0.18), rng.uniform(0.8, 1.0)
    out = img * (1 - veil) + veil * bright
    return np.clip(out * (1 - mask) + bright * mask, 0, 1).astype(np.float32)


def synthetic_depth(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible depth map in [0, 1]: farther towards the top, with smooth low-frequency variation."""
    ramp = np.linspace(1, 0, h, dtype=np.float32)[:, None] * np.ones((1, w), np.float32)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)).astype(np.float32), max(h, w) / 8)
    noise = (noise - noise.mean()) / (noise.std() + 1e-6)
    d = 0.7 * ramp + 0.3 * (0.5 + 0.25 * noise)
    return np.clip((d - d.min()) / (d.max() - d.min() + 1e-6), 0, 1)


def dehaze(img: np.ndarray, rng: np.random.Generator, depth=None, scale: float = 1.0) -> np.ndarray:
    h, w = img.shape[:2]
    d = synthetic_depth(h, w, rng) if depth is None else depth
    beta = rng.uniform(0.8, 2.6)
    airlight = np.clip(rng.uniform(0.7, 1.0) + rng.uniform(-0.04, 0.04, 3), 0, 1).astype(np.float32)
    t = np.exp(-beta * (0.1 + 0.9 * d))[..., None]
    return np.clip(img * t + airlight * (1 - t), 0, 1).astype(np.float32)


def shake_kernel(rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """A camera-shake blur kernel: a random walk with momentum, rasterized and smoothed, summing to 1; its
    support (13–31 px at scale 1) shrinks with `scale`, down to 5 px."""
    size = max(int(round(int(rng.integers(6, 16)) * max(scale, 0.5))), 2) * 2 + 1
    steps = int(rng.integers(12, 41))
    pos, vel = np.zeros(2), rng.normal(0, 1, 2)
    pts = [pos.copy()]
    for _ in range(steps):
        vel = 0.8 * vel + rng.normal(0, 0.6, 2)
        pos = pos + vel * 0.5
        pts.append(pos.copy())
    pts = np.array(pts)
    pts -= pts.mean(0)
    span = np.abs(pts).max()
    if span > size // 2 - 1:
        pts *= (size // 2 - 1) / span
    k = np.zeros((size, size), np.float32)
    for y, x in pts + size // 2:
        k[int(round(y)), int(round(x))] += 1
    k = ndimage.gaussian_filter(k, 0.5)
    return (k / k.sum()).astype(np.float32)


def deblur(img: np.ndarray, rng: np.random.Generator, depth=None, scale: float = 1.0) -> np.ndarray:
    k = shake_kernel(rng, scale)
    out = np.stack([ndimage.convolve(img[..., c], k, mode="reflect") for c in range(3)], -1)
    out = out + rng.normal(0, rng.uniform(0.002, 0.01), out.shape)
    return np.clip(out, 0, 1).astype(np.float32)


TASKS = {"derain": derain, "lowlight": lowlight, "desnow": desnow, "dehaze": dehaze, "deblur": deblur}
IMITATES = {"derain": "Rain100H / Rain13K", "lowlight": "LOL", "desnow": "Snow100K", "dehaze": "RESIDE",
            "deblur": "GoPro"}
