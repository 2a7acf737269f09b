"""Reading a dataset's pairs: the GT aligned to its LQ, and the torch datasets a run trains on (`TrainingPairs`,
random crops, one per draw of the training stream) and evaluates on (`EvaluationPairs`, full test images)."""

from __future__ import annotations

import numpy as np
import torch

from ..seeding import derive_seed, numpy_rng
from .composition import pattern_counts
from .io import DataError, as_hwc, read_cached, read_image, to_rgb01
from .layouts import ImagePair, SplitSpec
from .paired import random_crop
from .zoo5 import to_tensor


def align_gt(lq: np.ndarray, gt: np.ndarray, pair: ImagePair, alignment: str) -> np.ndarray:
    """The GT made to match the LQ's height and width per the dataset's rule, or DataError naming both files.
    H×W×C arrays of any pixel type (the decoded pixels as stored, or converted)."""
    if lq.shape[:2] == gt.shape[:2]:
        return gt
    (h, w), (gh, gw) = lq.shape[:2], gt.shape[:2]
    if alignment == "center-crop" and gh >= h and gw >= w:
        y, x = (gh - h) // 2, (gw - w) // 2
        return gt[y : y + h, x : x + w]
    raise DataError(f"size mismatch: {pair.lq} is {w}×{h} but {pair.gt} is {gw}×{gh}"
                    + (" (a ground truth smaller than its degraded image cannot be center-cropped)"
                       if alignment == "center-crop" else ""))


def load_pair(pair: ImagePair, alignment: str = "same", cached: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(LQ, GT) float32 H×W×3 in [0, 1], the GT aligned to the LQ; through the process's decoded-image cache unless
    `cached=False` (a one-off pass such as `check(deep=True)`)."""
    if pair.gt is None:  # an unpaired test image
        return (read_image(pair.lq) if not cached else to_rgb01(as_hwc(read_cached(pair.lq)), pair.lq)[0]), None
    if not cached:
        lq, gt = read_image(pair.lq), read_image(pair.gt)
        return lq, align_gt(lq, gt, pair, alignment)
    lq, gt = load_raw_pair(pair, alignment)
    return to_rgb01(lq, pair.lq)[0], to_rgb01(gt, pair.gt)[0]


def load_raw_pair(pair: ImagePair, alignment: str = "same") -> tuple[np.ndarray, np.ndarray]:
    """(LQ, GT) decoded as stored (H×W×C, read-only, from the process's cache), the GT aligned to the LQ."""
    lq, gt = as_hwc(read_cached(pair.lq)), as_hwc(read_cached(pair.gt))
    return lq, align_gt(lq, gt, pair, alignment)


class TrainingPairs(torch.utils.data.Dataset):
    """Training patches from (LQ, GT) pairs grouped by task; item i is draw i of the training stream.

    Draw i has task i mod n_tasks (task-balanced, as `zoo5`), or with `batch_pattern` (one task per position of a
    batch, `bridgezoo.data.composition`) task batch_pattern[i mod len(batch_pattern)]; within its task it takes the
    next pair of a permutation of that task's pairs drawn anew every pass (seeded by (seed, task, pass)), so every
    pair is seen once per pass; its crop and flip come from the seed of its draw (`draw`). Items: {"lq", "gt"}
    3×P×P in [-1, 1], "task", "name".
    """

    def __init__(self, pairs_by_task: dict[str, list[ImagePair]], patch: int, length: int, seed: int = 0,
                 gt_alignment: str | dict[str, str] = "same", batch_pattern=None):
        self.tasks = [t for t in pairs_by_task if pairs_by_task[t]]
        if not self.tasks:
            raise DataError("no training pairs")
        self.pairs = {t: list(pairs_by_task[t]) for t in self.tasks}
        self.patch, self.length, self.seed = patch, length, seed
        self.alignment = gt_alignment if isinstance(gt_alignment, dict) else {t: gt_alignment for t in self.tasks}
        self.batch_pattern = tuple(batch_pattern) if batch_pattern else None
        if self.batch_pattern:
            lacking = sorted(set(self.batch_pattern) - set(self.tasks))
            if lacking:
                raise DataError(f"--task-batch: no training pairs for {', '.join(lacking)}")
            self._rank, self._per_batch = pattern_counts(self.batch_pattern)

    def __len__(self):
        return self.length

    def pair_of(self, i: int) -> tuple[str, ImagePair]:
        if self.batch_pattern:  # the k-th draw of its task: whole batches before i, then earlier positions in i's
            n, j = divmod(i, len(self.batch_pattern))
            task = self.batch_pattern[j]
            k = n * self._per_batch[task] + self._rank[j]
        else:
            task = self.tasks[i % len(self.tasks)]
            k = i // len(self.tasks)
        pairs = self.pairs[task]
        epoch, j = divmod(k, len(pairs))
        order = numpy_rng(self.seed, "pass", task, epoch).permutation(len(pairs))
        return task, pairs[int(order[j])]

    def draw(self, i: int, seed: int) -> dict:
        """Draw i with the crop and flip drawn from `seed` (the training loop passes one per draw)."""
        task, pair = self.pair_of(i)
        lq, gt = load_raw_pair(pair, self.alignment[task])
        lq, gt = random_crop(lq, gt, self.patch, numpy_rng(seed))
        return {"lq": to_tensor(to_rgb01(lq, pair.lq)[0]), "gt": to_tensor(to_rgb01(gt, pair.gt)[0]), "task": task,
                "name": f"{task}/{pair.name}#{i}"}

    def __getitem__(self, i):
        return self.draw(i, derive_seed(self.seed, "draw", i))


class EvaluationPairs(torch.utils.data.Dataset):
    """Full-size test images of one or more test sets, in order. Items: {"lq", "gt"} 3×H×W in [-1, 1], "task",
    "name" ("TESTSET/stem"), "test_set", "metric" ("y" or "rgb", the set's convention; "nr" for an unpaired set,
    whose items have "gt" None).

    limit: at most this many images per test set, evenly spaced over its sorted pairs (a quick look; the paper's
    numbers need every image).
    """

    def __init__(self, sets: list[tuple[SplitSpec, list[ImagePair]]], limit: int | None = None,
                 gt_alignment: str | dict[str, str] = "same"):
        if limit is not None and limit < 1:
            raise DataError(f"--eval-limit must be at least 1, got {limit}")
        self.items: list[tuple[SplitSpec, ImagePair]] = []
        for spec, pairs in sets:
            pairs = sorted(pairs, key=lambda p: p.name)
            if limit is not None and len(pairs) > limit:
                idx = np.unique(np.linspace(0, len(pairs) - 1, limit).round().astype(int))
                pairs = [pairs[k] for k in idx]
            self.items += [(spec, p) for p in pairs]
        self.tasks = list(dict.fromkeys(spec.task for spec, _ in self.items))  # the tasks present, in order
        self.unpaired_sets = list(dict.fromkeys(spec.name for spec, _ in self.items if not spec.paired))
        self.alignment = gt_alignment

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        spec, pair = self.items[i]
        align = self.alignment[spec.name] if isinstance(self.alignment, dict) else self.alignment
        lq, gt = load_pair(pair, align)
        return {"lq": to_tensor(lq), "gt": None if gt is None else to_tensor(gt), "task": spec.task,
                "name": f"{spec.name}/{pair.name}",
                "test_set": spec.name, "metric": spec.metric}
