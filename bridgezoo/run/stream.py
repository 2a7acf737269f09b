"""The data side of a run: its datasets (`make_datasets`), what it found in them, and the stream of training
batches, a function of (seed, step) so a resumed or multi-process run sees the same global batches, crops and
noise (`Batches`)."""

from __future__ import annotations

import functools
import torch

from ..errors import OptionError
from ..seeding import derive_seed, generator
from .options import RunConfig


ZOO5_EVAL_VARIANTS = 2  # two degradations of every zoo5 test photograph per task: 50 test images


def make_datasets(cfg: RunConfig):
    """(training dataset, evaluation dataset or None) of `cfg.data`, through `data.open_data` (zoo5, a folder of
    pairs or NAME:PATH of a registered dataset); validates user folders before anything runs."""
    from ..data import open_data

    data = open_data(cfg.data)
    draws = cfg.iters * cfg.batch * cfg.grad_accum  # one item per draw of the training stream
    pattern = None
    if cfg.task_batch is not None:
        from ..data.composition import batch_pattern, check_composition, parse_task_batch

        if data.kind == "folder":  # the folder's adapter says why it takes no composition
            data.training_set(patch=cfg.patch, batch_pattern=cfg.task_batch)
        comp = parse_task_batch(cfg.task_batch)
        check_composition(comp, data.tasks(), cfg.tasks, data=data.adapter.name)
        pattern = batch_pattern(comp, cfg.batch)
    if data.kind == "dataset" and cfg.eval_data:
        raise OptionError(f"--eval-data does not apply to --data {cfg.data}; choose its test sets with "
                          "--eval-sets (see `bridgezoo data list`)")
    own = {  # the options only one kind of source takes: (training, evaluation)
        "zoo5": ({"side": cfg.eval_max_side},
                 {"split": cfg.eval_split, "max_side": cfg.eval_max_side, "seed": cfg.eval_seed,
                  "variants": ZOO5_EVAL_VARIANTS}),
        "folder": ({"strict": cfg.strict_pairs}, {"eval_root": cfg.eval_data, "seed": cfg.seed, "strict": cfg.strict_pairs}),
        "dataset": ({}, {}),
    }[data.kind]
    evalset = data.evaluation_set(sets=cfg.eval_sets, limit=cfg.eval_limit, tasks=cfg.tasks, **own[1])
    train = data.training_set(patch=cfg.patch, length=draws, seed=cfg.seed, tasks=cfg.tasks, batch_pattern=pattern,
                              **own[0])
    return train, evalset


def describe_data(train_set, eval_set, cfg: RunConfig) -> dict:
    """What the run found in its data, as notes for the log and a record for config.json."""
    info, notes = {}, []
    for split, ds in (("train", train_set), ("eval", eval_set)):
        if ds is None:
            continue
        if hasattr(ds, "describe"):
            d = ds.describe(split)
        else:
            d = {"items": len(ds), "notes": [f"{split}: {len(ds)} {cfg.data} item(s)"]}
        notes += d.pop("notes")
        info[split] = d
    info["notes"] = notes
    return info


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    return tuple(torch.randperm(n, generator=generator(seed, "epoch", epoch)).tolist())


def batch_indices(step: int, batch: int, n: int, seed: int) -> list[int]:
    """The dataset indices of global step `step`: consecutive slices of a per-epoch permutation seeded by (seed, epoch)."""
    per_epoch = max(1, n // batch)
    epoch, k = divmod(step, per_epoch)
    perm = _epoch_permutation(n, seed, epoch)
    return list(perm[k * batch : (k + 1) * batch])


def draw_item(dataset, index: int, seed: int):
    """Item `index` of a training dataset for one draw: datasets with random augmentation (crops, flips) take the
    draw's own seed through `draw(index, seed)`; the others are already a function of the index (zoo5)."""
    draw = getattr(dataset, "draw", None)
    return draw(index, seed) if draw is not None else dataset[index]


def collate(items):
    return {"lq": torch.stack([it["lq"] for it in items]), "gt": torch.stack([it["gt"] for it in items]),
            "task": [it["task"] for it in items]}


class Batches(torch.utils.data.IterableDataset):
    """The batches of steps [start, stop) for this process, in order: (step, batch, draws).

    Each global batch of `batch` items is split over the processes (rank r takes positions r, r + world, …);
    `draws` are the global draw numbers step·batch + position of this process's items. The augmentation of an item
    and the noise it is trained with are seeded by (seed, draw), so a run gives the same global batches, the
    same crops and the same noise on 1 or N processes, and a resumed run continues exactly.
    """

    def __init__(self, dataset, batch, start, stop, seed, rank=0, world=1):
        self.dataset, self.batch, self.start, self.stop, self.seed = dataset, batch, start, stop, seed
        self.rank, self.world = rank, world

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        for step in range(self.start + wid, self.stop, nw):
            if getattr(self.dataset, "batch_pattern", None):  # a fixed per-task composition: position j of every
                idx = list(range(step * self.batch, (step + 1) * self.batch))  # batch is the pattern's task j
            else:
                idx = batch_indices(step, self.batch, len(self.dataset), self.seed)
            positions = range(self.rank, len(idx), self.world)
            draws = [step * self.batch + j for j in positions]
            items = [draw_item(self.dataset, idx[j], derive_seed(self.seed, "draw", d)) for j, d in zip(positions, draws)]
            yield step, collate(items), draws


def batch_to_device(batch: dict, device: torch.device, channels_last: bool = False):
    """(x0, mu) of a collated batch on `device`: non-blocking copies from pinned memory, channels_last when the
    network is (so its first convolution does not convert the layout)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return tuple(batch[k].to(device, non_blocking=True).contiguous(memory_format=fmt) for k in ("gt", "lq"))
