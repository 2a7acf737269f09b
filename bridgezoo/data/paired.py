"""Paired folders of the user's own data, validated before anything runs.

Layouts (folder names case-insensitive): `LQ/` + `GT/`, `input/` + `target/`, `low/` + `high/` (LOL), two explicit
folders, or a multi-task root with one such pair per task folder (e.g. `Deraining/`, `Dehazing/`, … as the
universal-restoration repositories arrange them), the task recorded per item. A plain pair is one task, named after
its data root (`plain_task_name`): `mydata/train/` and `mydata/test/` are both the task `mydata`, never `train`
and `test`; each task folder of a multi-task root is a task of that folder's name. Pairs are matched by file stem;
PNG, JPEG, BMP and TIFF; 8- and 16-bit and float TIFF; any size.

The constructor validates every file (a full decode, once per file version across processes: `scans.ScanRecord`)
and keeps only paths and sizes, so a dataset pickles small into DataLoader workers. A draw takes its images from the
process's decoded-image cache (`io.read_cached`), crops the stored pixels and converts only the patch to float.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import BridgezooWarning
from ..seeding import derive_seed, numpy_rng
from .io import DataError, as_hwc, is_image, read_cached, to_rgb01
from .scans import ScanRecord
from .zoo5 import to_tensor

PAIR_NAMES = (("lq", "gt"), ("input", "target"), ("low", "high"))
SPLIT_NAMES = ("train", "training", "test", "testing", "val", "valid", "validation", "eval")  # any case


class DataWarning(BridgezooWarning):
    """Something in the data was skipped or converted; the message lists the files."""


@dataclass
class Pair:
    lq: Path
    gt: Path
    task: str
    size: tuple[int, int]


def _find_pair_dirs(root: Path) -> tuple[Path, Path] | None:
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    for lq_name, gt_name in PAIR_NAMES:
        if lq_name in subdirs and gt_name in subdirs:
            return subdirs[lq_name], subdirs[gt_name]
    return None


def plain_task_name(root) -> str:
    """The one task of a plain LQ/GT pair under `root`: the data root's folder name. A split folder (`train/`,
    `test/`, `val/`, … in any case: `SPLIT_NAMES`) is not a task, so it takes its parent's name; `mydata/train` and
    `mydata/test` are both `mydata`. "custom" where no name is left (the file-system root)."""
    path = Path(root).resolve()
    if path.name.lower() in SPLIT_NAMES:
        path = path.parent
    return path.name or "custom"


def discover(root=None, lq_dir=None, gt_dir=None, task: str | None = None) -> list[tuple[str, Path, Path]]:
    """[(task, lq_dir, gt_dir)] for a root (single or multi-task layout) or two explicit folders. `task` names a
    plain pair (default: `plain_task_name(root)`, or "custom" for two explicit folders); the task folders of a
    multi-task root keep their own names."""
    if lq_dir is not None or gt_dir is not None:
        if lq_dir is None or gt_dir is None:
            raise DataError("give both the LQ folder and the GT folder")
        for d in (lq_dir, gt_dir):
            if not Path(d).is_dir():
                raise DataError(f"{d}: not a folder")
        return [(task or "custom", Path(lq_dir), Path(gt_dir))]
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    direct = _find_pair_dirs(root)
    if direct:
        return [(task or plain_task_name(root), *direct)]
    tasks = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        found = _find_pair_dirs(sub)
        if found:
            tasks.append((plain_task_name(sub), *found))  # a task folder's name; split folders are the root's
    if not tasks:
        names = ", ".join(f"{a.upper()}/ + {b.upper()}/" for a, b in PAIR_NAMES)
        raise DataError(f"{root}: no paired folders found; expected {names} (case-insensitive), or one such pair "
                        "per task folder")
    return tasks


class PairedFolders(torch.utils.data.Dataset):
    """LQ/GT pairs from folders. Validation happens in the constructor and raises `DataError` (or warns) naming
    the files: empty folder, LQ/GT size mismatch, unreadable or truncated file, NaN/Inf in float TIFFs; files
    without a partner and non-image files are skipped with a warning (`strict=True`: an error).

    patch: random square training crops of this size (None: full images); images smaller than the patch are
    reflect-padded (`small="pad"`) or rejected (`small="reject"`). Items: {"lq", "gt"} 3×H×W in [-1, 1], "task", "name".
    task: the task name of a plain pair (default: its data root's name, `plain_task_name`); a multi-task root's
    tasks are its task folders' names.
    """

    def __init__(self, root=None, lq_dir=None, gt_dir=None, patch: int | None = None, strict: bool = False,
                 small: str = "pad", seed: int = 0, length: int | None = None, task: str | None = None):
        if small not in ("pad", "reject"):
            raise DataError(f"small={small!r}: choose 'pad' or 'reject'")
        self.patch, self.seed, self.small = patch, seed, small
        self.root = root if root is not None else f"{lq_dir} + {gt_dir}"
        self.pairs: list[Pair] = []
        self.notes: dict[str, list[str]] = {}
        self.conversions: dict[str, list[str]] = {}  # note ("grayscale converted to RGB", …) → files
        self.unpaired: list[str] = []  # image files without a partner (skipped; an error when strict)
        self.non_images: list[str] = []  # files that are not images (skipped)
        folders = discover(root, lq_dir, gt_dir, task)
        with ScanRecord.for_folders([d for _, lq, gt in folders for d in (lq, gt)]) as record:
            for task, lq, gt in folders:
                self.pairs.extend(self._validate(task, lq, gt, strict, record))
        self.scan_decoded = record.decoded  # files this process decoded to validate them (0: all from the record)
        self.length = length or len(self.pairs)

    def _validate(self, task, lq_dir: Path, gt_dir: Path, strict: bool, record: ScanRecord) -> list[Pair]:
        files = {}
        for d in (lq_dir, gt_dir):
            entries = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
            if not entries:
                raise DataError(f"{d}: the folder is empty")
            others = [p.name for p in entries if not is_image(p)]
            if others:
                self.non_images += [str(d / n) for n in others]
                warnings.warn(f"{d}: skipping {len(others)} non-image file(s): {', '.join(others[:10])}", DataWarning,
                              stacklevel=3)
            images = [p for p in entries if is_image(p)]
            if not images:
                raise DataError(f"{d}: no image files (PNG, JPEG, BMP, TIFF)")
            stems = {}
            for p in images:
                if p.stem in stems:
                    raise DataError(f"{d}: two files share the stem {p.stem!r}: {stems[p.stem].name}, {p.name}")
                stems[p.stem] = p
            files[d] = stems
        lq, gt = files[lq_dir], files[gt_dir]
        lonely = sorted(set(lq) ^ set(gt))
        if lonely:
            listing = ", ".join(str((lq_dir if s in lq else gt_dir) / (lq.get(s) or gt.get(s)).name) for s in lonely[:10])
            msg = f"{len(lonely)} file(s) without a partner (pairs are matched by file stem): {listing}"
            if strict:
                raise DataError(msg + " (strict: --strict-pairs)")
            self.unpaired += [str((lq_dir if s in lq else gt_dir) / (lq.get(s) or gt.get(s)).name) for s in lonely]
            warnings.warn(msg + "; they are skipped (--strict-pairs makes this an error)", DataWarning, stacklevel=3)
        pairs = []
        for stem in sorted(set(lq) & set(gt)):
            (s_lq, n_lq), (s_gt, n_gt) = record.info(lq[stem]), record.info(gt[stem])
            for path, notes in ((lq[stem], n_lq), (gt[stem], n_gt)):
                for note in notes:
                    self.conversions.setdefault(note, []).append(str(path))
            if s_lq != s_gt:
                raise DataError(f"size mismatch: {lq[stem]} is {s_lq[1]}×{s_lq[0]} but {gt[stem]} is {s_gt[1]}×{s_gt[0]}")
            if self.patch and min(s_lq) < self.patch and self.small == "reject":
                raise DataError(f"{lq[stem]}: {s_lq[1]}×{s_lq[0]} is smaller than the training patch {self.patch} "
                                "(use small='pad' to reflect-pad it)")
            pairs.append(Pair(lq[stem], gt[stem], task, s_lq))
        if not pairs:
            raise DataError(f"{lq_dir} and {gt_dir}: no LQ/GT pairs with matching file stems")
        return pairs

    def __len__(self):
        return self.length

    def describe(self, split: str) -> dict:
        """What was found, for the run's log and config.json: pairs per task, conversions made, the pairs smaller
        than the training patch (reflect-padded), and the files skipped (without a partner, not images), each with
        up to 5 file names."""
        per_task: dict[str, int] = {}
        for p in self.pairs:
            per_task[p.task] = per_task.get(p.task, 0) + 1
        small = [str(p.lq) for p in self.pairs if self.patch and min(p.size) < self.patch]
        notes = [f"{split}: {len(self.pairs)} pair(s)" + (f" ({', '.join(f'{t}: {n}' for t, n in per_task.items())})"
                                                          if len(per_task) > 1 else "") + f" in {self.root}"]
        for note, files in self.conversions.items():
            notes.append(f"{split}: {note}: {len(files)} file(s), e.g. {', '.join(files[:5])}")
        for what, files in (("image(s) without a partner", self.unpaired), ("non-image file(s)", self.non_images)):
            if files:
                notes.append(f"{split}: {len(files)} {what} skipped, e.g. {', '.join(files[:5])}")
        if small:
            notes.append(f"{split}: {len(small)} pair(s) smaller than the {self.patch}px training patch are "
                         f"reflect-padded, e.g. {', '.join(small[:5])}")
        return {"pairs": len(self.pairs), "per_task": per_task, "conversions": {k: len(v) for k, v in self.conversions.items()},
                "smaller_than_patch": len(small), "unpaired": len(self.unpaired), "non_images": len(self.non_images),
                "notes": notes}

    def _convert(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """A decoded image or a crop of one (as stored) → float32 H×W×3 in [0, 1]; its notes kept in `notes`."""
        img, notes = to_rgb01(raw, path)
        if notes:
            self.notes[str(path)] = notes
        return img

    def __getitem__(self, i):
        """Item i with the crop and flip of draw 0 (repeatable; training draws come through `draw`)."""
        return self.draw(i, derive_seed(self.seed, "paired", i))

    def draw(self, i, seed: int):
        """Pair i % len(pairs) with a random crop and flip drawn from `seed`: the training loop passes a new seed
        for every draw (its seed, step and position in the batch), so every epoch sees new patches."""
        pair = self.pairs[i % len(self.pairs)]
        lq, gt = as_hwc(read_cached(pair.lq)), as_hwc(read_cached(pair.gt))
        if self.patch:
            lq, gt = random_crop(lq, gt, self.patch, numpy_rng(seed))
        return {"lq": to_tensor(self._convert(lq, pair.lq)), "gt": to_tensor(self._convert(gt, pair.gt)),
                "task": pair.task, "name": f"{pair.task}/{pair.lq.stem}"}


def random_crop(lq: np.ndarray, gt: np.ndarray, patch: int, rng: np.random.Generator):
    """The same random patch×patch crop of an H×W×C (LQ, GT) pair, flipped horizontally with probability ½; images
    smaller than the patch are reflect-padded first (symmetric where the image is less than half the patch, as
    MPRNet's training loader pads). All randomness from `rng`: the one crop of every paired training set.

    Any pixel type and channel count (LQ and GT may differ): datasets crop the decoded pixels as stored and then
    convert only the patch (`io.to_rgb01`, per pixel, so the result equals cropping the converted image)."""
    h, w = lq.shape[:2]
    if h < patch or w < patch:
        pad = ((0, max(patch - h, 0)), (0, max(patch - w, 0)), (0, 0))
        mode = "reflect" if h > patch - h and w > patch - w else "symmetric"
        lq, gt = np.pad(lq, pad, mode=mode), np.pad(gt, pad, mode=mode)
        h, w = lq.shape[:2]
    y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
    lq, gt = lq[y : y + patch, x : x + patch], gt[y : y + patch, x : x + patch]
    if rng.random() < 0.5:
        lq, gt = lq[:, ::-1], gt[:, ::-1]
    return np.ascontiguousarray(lq), np.ascontiguousarray(gt)
