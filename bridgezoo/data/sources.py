"""`open_data(spec)`: the one place a data spec is dispatched. A spec is `zoo5` (the built-in synthetic benchmark),
a folder of paired images, or `NAME:PATH` of a registered dataset (`bridgezoo data list`); each of the three is a
`DatasetAdapter`, so a caller asks the opened data for its training and evaluation sets the same way:

    data = open_data(cfg.data)
    data.check(tasks=cfg.tasks, split=cfg.eval_split)      # cheap: the folder exists, the tasks and split are known
    train = data.training_set(patch=64, length=draws, seed=0, tasks=None, batch_pattern=None, **options)
    evalset = data.evaluation_set(sets=None, limit=None, tasks=None, **options)

The options only some sources take are keywords of their adapter: zoo5's `side` (training) and `split`,
`max_side`, `seed`, `variants` (evaluation); a folder's `strict` (both) and `eval_root`, `seed` (evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError
from .base import DatasetAdapter
from .io import DataError

FOLDER_HELP = "--data takes zoo5, a folder of paired images, or NAME:PATH of a dataset from `bridgezoo data list`"


class Zoo5Data(DatasetAdapter):
    """The built-in zoo5 benchmark (`data.zoo5`): five synthetic degradations of bundled photographs; no root."""

    name = "zoo5"
    summary = "built-in synthetic benchmark: five degradations of bundled photographs"
    layouts = "none (generated)"

    def tasks(self) -> list[str]:
        from .degradations import TASKS

        return list(TASKS)

    def verify(self, root, tasks=None, split: str | None = None) -> None:
        from .zoo5 import SPLITS, check_tasks

        check_tasks(tasks)
        if split is not None and split not in SPLITS:
            raise OptionError(f"--eval-split {split!r}: zoo5 splits are {', '.join(SPLITS)}")

    def training_set(self, root, patch: int, length: int, seed: int = 0, tasks=None, batch_pattern=None,
                     side: int | None = None):
        """`Zoo5Train`: `length` random patch×patch draws, from images of `side` px on the long side."""
        from .zoo5 import Zoo5Train

        return Zoo5Train(tasks=tasks, patch=patch, length=length, seed=seed, side=side, batch_pattern=batch_pattern)

    def evaluation_set(self, root, sets=None, limit: int | None = None, tasks=None, split: str = "test",
                       max_side: int | None = None, seed: int = 0, variants: int = 1):
        """`Zoo5Eval` of `split`: `variants` degradations of each photograph per task, at most `max_side` px."""
        from .zoo5 import Zoo5Eval

        _registered_only(sets, limit, "zoo5")
        return Zoo5Eval(split, tasks=tasks, max_side=max_side, seed=seed, variants=variants)


class FolderData(DatasetAdapter):
    """A folder of LQ/GT pairs (`data.paired.PairedFolders`): ROOT/train and ROOT/test where they exist, else ROOT
    itself for training and no evaluation set."""

    name = "folder"
    summary = "a folder of paired images (lq/ and gt/, or one folder per task)"
    layouts = "ROOT/{lq,gt}, ROOT/TASK/{lq,gt}, ROOT/{train,test}/..."

    @staticmethod
    def train_root(root: Path) -> Path:
        return root / "train" if (root / "train").is_dir() else root

    def verify(self, root, tasks=None, split: str | None = None) -> None:
        if not Path(root).is_dir():
            raise DataError(f"{root}: not a folder ({FOLDER_HELP})")
        if tasks:
            raise OptionError("--tasks selects tasks of zoo5 or of a multi-task dataset; with --data FOLDER, point "
                              "--data at the task's folder")

    def training_set(self, root, patch: int, length: int | None = None, seed: int = 0, tasks=None,
                     batch_pattern=None, strict: bool = False):
        """Every pair under the training root, cropped to patch×patch (`length` unused: the pairs are cycled)."""
        from .paired import PairedFolders

        if batch_pattern is not None:
            raise OptionError(f"--task-batch applies to zoo5 and to registered datasets (--data NAME:PATH, e.g. "
                              f"universal5:/data/Restoration), not to the folder --data {root}")
        return PairedFolders(self.train_root(Path(root)), patch=patch, seed=seed, strict=strict)

    def evaluation_set(self, root, sets=None, limit: int | None = None, tasks=None, eval_root=None, seed: int = 0,
                       strict: bool = False):
        """The pairs of `eval_root` (default ROOT/test, None where it does not exist), all of the training data's one
        task (`paired.plain_task_name`), whatever their own folder is called."""
        from .paired import PairedFolders, plain_task_name

        _registered_only(sets, limit, str(root))
        root = Path(root)
        eval_root = Path(eval_root) if eval_root else (root / "test" if (root / "test").is_dir() else None)
        if eval_root is None:
            return None
        return PairedFolders(eval_root, seed=seed, task=plain_task_name(self.train_root(root)), strict=strict)


def _registered_only(sets, limit, data: str) -> None:
    if sets or limit:
        raise OptionError("--eval-sets and --eval-limit apply to --data NAME:PATH (a registered dataset), not to "
                          f"--data {data}")


@dataclass(frozen=True)
class OpenedData:
    """A data spec resolved: the spec as given, its adapter and its root folder (None for zoo5)."""

    spec: str
    adapter: DatasetAdapter
    root: Path | None

    @property
    def kind(self) -> str:
        """"zoo5", "folder" or "dataset" (a registered one)."""
        return self.adapter.name if isinstance(self.adapter, (Zoo5Data, FolderData)) else "dataset"

    def tasks(self) -> list[str]:
        return self.adapter.tasks()

    def check(self, tasks=None, split: str | None = None) -> None:
        """What can be checked without scanning or reading images: the root is a folder, the tasks (and zoo5's
        evaluation split) are known. Full validation happens when the sets are built."""
        if self.kind == "dataset":
            if not self.root.is_dir():
                raise DataError(f"--data {self.spec}: {self.root} is not a folder")
            return
        self.adapter.verify(self.root, tasks=tasks, split=split)

    def training_set(self, **options):
        return self.adapter.training_set(self.root, **options)

    def evaluation_set(self, **options):
        return self.adapter.evaluation_set(self.root, **options)


def open_data(spec: str) -> OpenedData:
    """The data named by `spec`: "zoo5"; an existing folder (always paired folders, even one named like a
    dataset); NAME:PATH of a registered dataset (an unknown NAME is an error listing the registered ones, a bare
    NAME an error saying how to give its path); anything else a folder, which `check` reports missing. Reads
    nothing but the folder's existence."""
    from ..registry import get_dataset, list_datasets

    if spec == "zoo5":
        return OpenedData(spec, Zoo5Data(), None)
    folder = OpenedData(spec, FolderData(), Path(spec).expanduser())
    if Path(spec).expanduser().exists():
        return folder
    names = list_datasets()
    if spec in names:
        raise DataError(f"--data {spec}: give the dataset's root folder as {spec}:PATH (e.g. {spec}:/data/{spec})")
    if ":" not in spec:
        return folder
    name, path = spec.split(":", 1)
    if name not in names:
        if len(name) == 1:  # a Windows drive letter
            return folder
        from ..errors import suggest

        raise DataError(f"--data {spec}: unknown dataset {name!r}.{suggest(name, names)} Datasets: "
                        f"{', '.join(names)} (or zoo5, or a folder of paired images)")
    if not path:
        raise DataError(f"--data {spec}: the path after '{name}:' is empty")
    return OpenedData(spec, get_dataset(name), Path(path).expanduser())
