"""`zoo5`: the embedded five-task benchmark, built from the real photographs scikit-image ships (no download).

Source images, split by image (no test image is ever seen in training; the stereo motorcycle pair is one scene
and both views are in test):

| split | images |
|---|---|
| train | astronaut, rocket, immunohistochemistry, hubble_deep_field, retina, colorwheel, logo (alpha dropped) |
| val | chelsea |
| test | coffee, motorcycle_left (with its real disparity-derived depth for dehazing), motorcycle_right |

Every image is resized once to at most `WORK_SIDE` = 512 px on its long side. Degradations: see
`bridgezoo.data.degradations` (derain, lowlight, desnow, dehaze, deblur). Each item is a deterministic function of
(seed, split, index): training items are random patches, task-balanced in the mixed setting (item i has task
i mod n_tasks, as RDBM's universal training balances tasks); evaluation items are full images, one per
(task, image, variant).
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch
from scipy import ndimage
from skimage.transform import resize

from .degradations import TASKS
from .io import DataError

WORK_SIDE = 512
SPLITS = {
    "train": ["astronaut", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel", "logo"],
    "val": ["chelsea"],
    "test": ["coffee", "motorcycle_left", "motorcycle_right"],
}


def _fit(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return img
    shape = (round(h * scale), round(w * scale)) + img.shape[2:]
    return resize(img, shape, anti_aliasing=True, preserve_range=True).astype(np.float32)


@functools.lru_cache(maxsize=None)
def source(name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(image float32 H×W×3 in [0, 1], depth in [0, 1] or None) at the working resolution."""
    import skimage.data as skd

    depth = None
    if name.startswith("motorcycle"):
        left, right, disparity = skd.stereo_motorcycle()
        img = left if name == "motorcycle_left" else right
        if name == "motorcycle_left":  # the disparity map belongs to the left view
            invalid = ~np.isfinite(disparity)
            idx = ndimage.distance_transform_edt(invalid, return_distances=False, return_indices=True)
            disparity = disparity[tuple(idx)]
            depth = 1.0 / disparity
            depth = ((depth - depth.min()) / (depth.max() - depth.min())).astype(np.float32)
    elif name == "logo":
        rgba = skd.logo().astype(np.float32) / 255
        img = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # composite on white
    else:
        img = getattr(skd, name)()
    img = img.astype(np.float32) / 255 if img.dtype == np.uint8 else img.astype(np.float32)
    img = _fit(img, WORK_SIDE)
    if depth is not None:
        depth = np.clip(_fit(depth, WORK_SIDE), 0, 1)
    return np.clip(img, 0, 1), depth


def _rng(*parts) -> np.random.Generator:
    """zoo5's own stream of (split, seed, task, image, ...): kept as first published, so the benchmark's degraded
    images (and every committed number's inputs) stay the same; new streams use `bridgezoo.seeding`."""
    key = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(key[:8], "little"))


def degrade(task: str, img: np.ndarray, rng: np.random.Generator, depth=None) -> np.ndarray:
    return TASKS[task](img, rng, depth)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """H×W×3 in [0, 1] → 3×H×W float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))) * 2 - 1


def check_tasks(tasks) -> list[str]:
    tasks = list(TASKS) if tasks in (None, "all", ["all"]) else ([tasks] if isinstance(tasks, str) else list(tasks))
    for t in tasks:
        if t not in TASKS:
            from ..errors import suggest

            raise DataError(f"unknown task {t!r}.{suggest(t, TASKS)} zoo5 tasks: {', '.join(TASKS)}")
    return tasks


class Zoo5Train(torch.utils.data.Dataset):
    """Random training patches: item i is (task i mod n_tasks, a random train image, a random crop, a random
    degradation), all drawn from a generator seeded by (seed, i). Items: {"lq", "gt"} 3×P×P in [-1, 1], "task", "name"."""

    def __init__(self, tasks=None, patch: int = 64, length: int = 10000, seed: int = 0, split: str = "train"):
        self.tasks, self.patch, self.length, self.seed, self.split = check_tasks(tasks), patch, length, seed, split
        self.sources = SPLITS[split]

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        rng = _rng("zoo5-train", self.seed, self.split, i)
        task = self.tasks[i % len(self.tasks)]
        name = self.sources[int(rng.integers(len(self.sources)))]
        img, depth = source(name)
        h, w = img.shape[:2]
        p = min(self.patch, h, w)
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        crop = img[y : y + p, x : x + p]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        dcrop = depth[y : y + p, x : x + p] if depth is not None else None
        lq = degrade(task, np.ascontiguousarray(crop), rng, dcrop)
        return {"lq": to_tensor(lq), "gt": to_tensor(np.ascontiguousarray(crop)), "task": task, "name": f"{name}#{i}"}


class Zoo5Eval(torch.utils.data.Dataset):
    """Full images of a split for evaluation: one item per (task, image, variant), optionally resized so the long
    side is at most `max_side`. Deterministic in (seed, task, image, variant)."""

    def __init__(self, split: str = "test", tasks=None, variants: int = 1, seed: int = 0, max_side: int | None = None):
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; zoo5 splits: {', '.join(SPLITS)}")
        self.tasks = check_tasks(tasks)
        self.items = [(t, n, v) for t in self.tasks for n in SPLITS[split] for v in range(variants)]
        self.seed, self.max_side, self.split = seed, max_side, split

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        task, name, variant = self.items[i]
        img, depth = source(name)
        if self.max_side:
            img = _fit(img, self.max_side)
            depth = None if depth is None else np.clip(_fit(depth, self.max_side), 0, 1)
        lq = degrade(task, img, _rng("zoo5-eval", self.seed, task, name, variant), depth)
        lq = np.round(lq * 255) / 255  # degraded inputs are 8-bit images, as a user's files would be
        return {"lq": to_tensor(lq.astype(np.float32)), "gt": to_tensor(img), "task": task,
                "name": f"{task}/{name}-{variant}"}
