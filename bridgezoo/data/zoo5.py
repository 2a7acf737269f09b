"""`zoo5`: the embedded five-task benchmark, built from the real photographs that installed packages ship
(scikit-image, scikit-learn, matplotlib; no download).

Source images, split by scene (no test scene is ever seen in training):

| split | images |
|---|---|
| train | colour photographs astronaut, rocket, china (scikit-learn); grey photographs camera, brick, grass, gravel, coins, moon (given a random colour cast per draw); colour non-scenes immunohistochemistry, hubble_deep_field, retina |
| val | motorcycle_right (the right view of a test scene: for monitoring only) |
| test | coffee, chelsea, motorcycle_left (with its real disparity-derived depth for dehazing), grace_hopper (matplotlib), flower (scikit-learn) |

Every image is resized once to at most `WORK_SIDE` = 512 px on its long side, and then to the benchmark's
`side` (default 512): training crops and test images come from the same resolution, and the degradations'
lengths in pixels scale with it (`bridgezoo.data.degradations`), so a model is tested at the scale it trained at.
Each item is a deterministic function of (seed, split, index): training items are random patches, task-balanced
in the mixed setting (item i has task i mod n_tasks, as RDBM's universal training balances tasks); evaluation
items are full images, one per (task, image, variant).
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
    "train": ["astronaut", "rocket", "china", "camera", "brick", "grass", "gravel", "coins", "moon",
              "immunohistochemistry", "hubble_deep_field", "retina"],
    "val": ["motorcycle_right"],
    "test": ["coffee", "chelsea", "motorcycle_left", "grace_hopper", "flower"],
}
GREY = {"camera", "brick", "grass", "gravel", "coins", "moon"}  # grey photographs, colour-cast per training draw


def _fit(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return img
    shape = (round(h * scale), round(w * scale)) + img.shape[2:]
    return resize(img, shape, anti_aliasing=True, preserve_range=True).astype(np.float32)


@functools.lru_cache(maxsize=None)
def source(name: str, side: int = WORK_SIDE) -> tuple[np.ndarray, np.ndarray | None]:
    """(image float32 H×W×3 in [0, 1], depth in [0, 1] or None), fitted to the working resolution and then to
    `side` px on the long side."""
    if side != WORK_SIDE:
        img, depth = source(name)
        return _fit(img, side), None if depth is None else np.clip(_fit(depth, side), 0, 1)
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
    elif name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    elif name == "grace_hopper":
        from matplotlib import cbook
        from skimage.io import imread

        img = imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        img = getattr(skd, name)()
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
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


def degrade(task: str, img: np.ndarray, rng: np.random.Generator, depth=None, scale: float = 1.0) -> np.ndarray:
    return TASKS[task](img, rng, depth, scale=scale)


def scale_of(name: str, side: int) -> float:
    """How much `source(name, side)` is shrunk from the working resolution (the degradations' `scale`)."""
    return max(source(name, side)[0].shape[:2]) / max(source(name)[0].shape[:2])


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
    degradation), all drawn from a generator seeded by (seed, i). Items: {"lq", "gt"} 3×P×P in [-1, 1], "task", "name".
    batch_pattern: one task per position of a batch (`bridgezoo.data.composition`); item i then has task
    batch_pattern[i mod len(batch_pattern)]."""

    def __init__(self, tasks=None, patch: int = 64, length: int = 10000, seed: int = 0, split: str = "train",
                 side: int | None = None, batch_pattern=None):
        self.tasks, self.patch, self.length, self.seed, self.split = check_tasks(tasks), patch, length, seed, split
        self.sources, self.side = SPLITS[split], side or WORK_SIDE
        self.batch_pattern = tuple(check_tasks(list(batch_pattern))) if batch_pattern else None

    def __len__(self):
        return self.length

    def warm(self) -> "Zoo5Train":
        """Load this split's photographs at this set's side into the process's `source` cache (about 0.5 s, plus
        the first imports): called in the main process before DataLoader workers fork, they inherit the photographs
        instead of each loading them on its first items. Returns self."""
        for name in self.sources:
            source(name, self.side)
        return self

    def __getitem__(self, i):
        rng = _rng("zoo5-train", self.seed, self.split, i)
        pattern = self.batch_pattern or self.tasks
        task = pattern[i % len(pattern)]
        name = self.sources[int(rng.integers(len(self.sources)))]
        img, depth = source(name, self.side)
        h, w = img.shape[:2]
        p = min(self.patch, h, w)
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        crop = img[y : y + p, x : x + p]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if name in GREY:  # a grey photograph under a random colour cast, so it teaches colour tasks too
            crop = crop * rng.uniform(0.75, 1.0, 3).astype(np.float32)
        dcrop = depth[y : y + p, x : x + p] if depth is not None else None
        if p < self.patch:  # a photo narrower than the patch: mirror-padded, so every item has the patch size
            pad = ((0, self.patch - p), (0, self.patch - p))
            crop = np.pad(crop, pad + ((0, 0),), mode="symmetric")
            dcrop = None if dcrop is None else np.pad(dcrop, pad, mode="symmetric")
        lq = degrade(task, np.ascontiguousarray(crop), rng, dcrop, scale_of(name, self.side))
        return {"lq": to_tensor(lq), "gt": to_tensor(np.ascontiguousarray(crop)), "task": task, "name": f"{name}#{i}"}


class Zoo5Eval(torch.utils.data.Dataset):
    """Full images of a split for evaluation: one item per (task, image, variant), at most `max_side` px on the
    long side (the benchmark's `side`; default the working 512). Deterministic in (seed, task, image, variant)."""

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
        side = self.max_side or WORK_SIDE
        img, depth = source(name, side)
        lq = degrade(task, img, _rng("zoo5-eval", self.seed, task, name, variant), depth, scale_of(name, side))
        lq = np.round(lq * 255) / 255  # degraded inputs are 8-bit images, as a user's files would be
        return {"lq": to_tensor(lq.astype(np.float32)), "gt": to_tensor(img), "task": task,
                "name": f"{task}/{name}-{variant}"}
