"""Reading images for restoration: any of PNG / JPEG / BMP / TIFF, 8- or 16-bit or float, gray / RGB / RGBA,
to float32 H×W×3 in [0, 1]. Every problem raises `DataError` naming the file and what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BridgezooError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class DataError(BridgezooError, ValueError):
    """Bad input data: the message names the file(s) and the problem."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _read_png16(path: Path) -> np.ndarray | None:
    """16-bit PNGs through pypng (Pillow reduces 16-bit RGB to 8 bits); None for 8-bit files."""
    import png

    reader = png.Reader(filename=str(path))
    w, h, rows, info = reader.asDirect()
    if info["bitdepth"] != 16:
        return None
    return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, info["planes"])


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """The array as stored (H×W or H×W×C), fully decoded; DataError if unreadable or truncated."""
    import imageio.v3 as iio

    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            arr = _read_png16(path)
            if arr is not None:
                return arr
        return np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder error is a bad file for the user
        raise DataError(f"{path}: cannot read this image ({type(exc).__name__}: {exc}); is it truncated or not an image?") from None


def to_rgb01(arr: np.ndarray, path: str | os.PathLike = "<array>") -> tuple[np.ndarray, list[str]]:
    """float32 H×W×3 in [0, 1] and notes on what was converted (gray → RGB, alpha dropped, 16-bit, float)."""
    notes = []
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise DataError(f"{path}: expected a 2-D image, got an array of shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise DataError(f"{path}: {bad} pixel value(s) are NaN or Inf")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise DataError(f"{path}: float image values must lie in [0, 1], found [{lo:.4g}, {hi:.4g}]")
        img = np.clip(arr, 0, 1).astype(np.float32)
        notes.append("float")
    elif arr.dtype == np.uint16:
        img = arr.astype(np.float32) / 65535.0
        notes.append("16-bit")
    elif arr.dtype == np.uint8:
        img = arr.astype(np.float32) / 255.0
    else:
        raise DataError(f"{path}: unsupported pixel type {arr.dtype}")
    channels = img.shape[2]
    if channels == 1:
        img = np.repeat(img, 3, axis=2)
        notes.append("grayscale converted to RGB")
    elif channels == 2:
        img = np.repeat(img[..., :1], 3, axis=2)
        notes.append("grayscale+alpha: alpha dropped, converted to RGB")
    elif channels == 4:
        img = img[..., :3]
        notes.append("RGBA: alpha dropped")
    elif channels != 3:
        raise DataError(f"{path}: {channels} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    return np.ascontiguousarray(img), notes


def read_image(path: str | os.PathLike) -> np.ndarray:
    """float32 H×W×3 in [0, 1] (see `to_rgb01`)."""
    return to_rgb01(read_raw(path), path)[0]


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a float image in [0, 1] (H×W×3) as an 8-bit PNG, atomically (temporary file + rename)."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    iio.imwrite(tmp, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    os.replace(tmp, path)
