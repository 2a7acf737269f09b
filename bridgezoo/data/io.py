"""Reading images for restoration: any of PNG / JPEG / BMP / TIFF, 8- or 16-bit or float, gray / RGB / RGBA,
to float32 H×W×3 in [0, 1]. Every problem raises `DataError` naming the file and what is wrong.

Training reads go through `read_cached`: the decoded array as stored (uint8 for most files, 4× smaller than
float32) from a per-process LRU cache bounded in bytes (`ImageCache`, `image_cache`), so the crop is cut from the
stored pixels and only the patch is converted to float (`to_rgb01` is per pixel, so converting the crop gives the
pixels of cropping the converted image).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
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


def as_hwc(arr: np.ndarray) -> np.ndarray:
    """An H×W (grey) array as an H×W×1 view; H×W×C arrays unchanged."""
    return arr[..., None] if arr.ndim == 2 else arr


DEFAULT_CACHE_MB = 1024
CACHE_ENV = "BRIDGEZOO_IMAGE_CACHE_MB"


class ImageCache:
    """Decoded images (as `read_raw` returns them, read-only) keyed by file, least recently used evicted first
    so the stored arrays never exceed `max_bytes` (an image larger than the whole budget is returned, not stored).

    Pickling keeps the budget and drops the images, so a copy sent to a DataLoader worker starts empty. `hits` and
    `misses` count lookups."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # a thread-pool reader may share the process's cache
        self.nbytes = self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, path: str | os.PathLike) -> np.ndarray:
        """The decoded image at `path` (read-only array), decoded and stored on a miss. Entries are keyed by the
        path with the file's size and modification time, so a file rewritten meanwhile is decoded again."""
        try:
            st = os.stat(path)
            key = (str(path), st.st_size, st.st_mtime_ns)
        except OSError:  # let the decoder name the problem
            return read_raw(path)
        with self._lock:
            arr = self._items.get(key)
            if arr is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return arr
            self.misses += 1
        arr = read_raw(path)
        arr.flags.writeable = False
        self._store(key, arr)
        return arr

    def _store(self, key: tuple, arr: np.ndarray) -> None:
        if arr.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = arr
            self.nbytes += arr.nbytes
            while self.nbytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.nbytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = self.hits = self.misses = 0

    def __getstate__(self):
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state):
        self.__init__(state["max_bytes"])


def cache_budget_bytes() -> int:
    """The per-process budget of the decoded-image cache: `BRIDGEZOO_IMAGE_CACHE_MB` (MiB; 0 turns it off), default
    1024 MiB: about 180 pairs of 1280×720 8-bit images, all of a LOL- or Rain100H-sized training set, and 1 GiB
    per DataLoader worker is little beside a GPU machine's host memory (8 workers: 8 GiB)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    try:
        mb = float(value) if value else DEFAULT_CACHE_MB
    except ValueError:
        raise DataError(f"{CACHE_ENV}={value!r}: give the cache size in MiB (0 turns the cache off)") from None
    return max(int(mb * 2**20), 0)


_CACHE: tuple[int, ImageCache] | None = None  # (the process that made it, the cache)


def image_cache() -> ImageCache:
    """This process's decoded-image cache, created empty on first use with `cache_budget_bytes()`; a forked
    DataLoader worker starts its own, empty (the budget is per process and counts only what it decoded)."""
    global _CACHE
    if _CACHE is None or _CACHE[0] != os.getpid():
        _CACHE = (os.getpid(), ImageCache(cache_budget_bytes()))
    return _CACHE[1]


def read_cached(path: str | os.PathLike) -> np.ndarray:
    """`read_raw(path)` through this process's cache: the stored array, read-only (crop it, then `to_rgb01`)."""
    return image_cache().get(path)


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


def write_png(path: str | os.PathLike, img: np.ndarray, text: dict[str, str] | None = None) -> None:
    """Write a float image in [0, 1] (H×W×3) as an 8-bit PNG, atomically (temporary file + rename); `text`: PNG
    tEXt chunks ({key: value}, read back by `png_text`)."""
    from PIL import Image, PngImagePlugin

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)


def png_text(path: str | os.PathLike) -> dict[str, str]:
    """The tEXt chunks of a PNG ({} for another format or an unreadable file); reads the header, not the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return {k: v for k, v in im.info.items() if isinstance(v, str)} if im.format == "PNG" else {}
    except (OSError, ValueError):
        return {}
