"""Dataset adapters: published restoration datasets read in the layout their authors distribute.

A dataset plugin subclasses `DatasetAdapter`, lists its splits (`SplitSpec`: name, train or test, task, expected
number of pairs, metric convention) and implements `scan_split(root, spec)`, which finds the split's folders under
the user's root and pairs the images by the dataset's own naming rule. Everything else is shared here:

- `check(root)`: found against expected for every split ("SOTS-outdoor test: 500 of 500 pairs"), with missing
  folders, files without a partner and wrong counts named; `bridgezoo data check NAME:PATH` prints it;
- `training_set(root, ...)`: random crops of the training pairs, task-balanced when a dataset has several tasks;
- `evaluation_set(root, ...)`: the full test images, each item tagged with its test set and metric convention.

Register an adapter from a plugin with the `register_datasets` hook:

    @bridgezoo.hookimpl
    def register_datasets(register):
        register(MyDataset, name="my-dataset", summary="...")

and use it as `bridgezoo run --data my-dataset:/path/to/it`. `MixAdapter` combines registered adapters into one
multi-task benchmark (`universal5`).

Randomness of training draws: item `i` of a training set is the i-th draw of the run's training stream (the set is
as long as the run draws, like `zoo5`); the training loop calls `TrainingPairs.draw(i, seed)` with the seed of
that draw (`bridgezoo.seeding`), the only source of its crop and flip, made by `paired.random_crop`, the one crop
of every paired dataset. Like `PairedFolders`, draws and test images come from the process's decoded-image cache
(`io.read_cached`), and a training draw crops the stored pixels before converting the patch to float.

The pieces live in `layouts` (splits and scanning), `loading` (the torch datasets), `base` (`DatasetAdapter`) and
`sources` (`open_data`, the one dispatch of a --data spec); this module is what plugins import them from.
"""

from __future__ import annotations

from pathlib import Path

from .base import DatasetAdapter
from .io import DataError
from .layouts import (METRICS, CheckReport, ImagePair, SplitScan, SplitSpec, fill_pairs, find_dir,  # noqa: F401
                      find_named_dir, list_images, listing, missing_scan, near_miss, pair_files, rel,
                      scan_image_dirs, scan_pair_dirs, stem_key, strip_prefix_key)
from .loading import EvaluationPairs, TrainingPairs, align_gt, load_pair, load_raw_pair  # noqa: F401
from .sources import open_data  # noqa: F401 - the dispatch of a --data spec


class MixAdapter(DatasetAdapter):
    """Several registered datasets under one root, one task each, trained task-balanced (`universal5`).

    members: (dataset name, folder names to look for under the root, case-insensitive). The tasks of the members
    must differ; their splits keep their names.
    """

    members: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def _member(self, name: str) -> DatasetAdapter:
        from ..registry import get_dataset

        return get_dataset(name)

    def split_specs(self) -> tuple[SplitSpec, ...]:
        return tuple(s for name, _ in self.members for s in self._member(name).split_specs())

    def scan(self, root, splits=None) -> list[SplitScan]:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: not a folder (the root of the {self.name} benchmark)")
        wanted = None if splits is None else set(splits)
        out = []
        for name, folders in self.members:
            member = self._member(name)
            specs = [s for s in member.split_specs() if wanted is None or s.name in wanted]
            if not specs:
                continue
            sub = next((d for d in (find_dir(root, f) for f in folders) if d is not None), None)
            if sub is None:
                looked = ", ".join(f"{f}/" for f in folders)
                out += [missing_scan(s, root, [looked], hint=f"the {name} dataset of this benchmark")
                        for s in specs]
                continue
            for sc in member.scan(sub, [s.name for s in specs]):
                if sc.where:
                    sc.where = f"{rel(sub, root)}/: {sc.where}"
                out.append(sc)
        return out

    def alignment_of(self, split: str) -> str:
        for name, _ in self.members:
            member = self._member(name)
            if any(s.name == split for s in member.split_specs()):
                return member.alignment_of(split)
        raise KeyError(split)
