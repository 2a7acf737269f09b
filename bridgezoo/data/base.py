"""`DatasetAdapter`, the base class of every dataset in its authors' layout (see `bridgezoo.data.adapters`, the
module plugins import it from). The registry checks registered datasets against it, so this module imports
neither the registry nor anything that does."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

from .io import DataError
from .layouts import CheckReport, ImagePair, SplitScan, SplitSpec
from .loading import EvaluationPairs, TrainingPairs, load_pair
from .paired import DataWarning


class DatasetAdapter:
    """A published dataset in its authors' layout. Subclasses set `splits` and implement `scan_split`.

    gt_alignment: "same" (LQ and GT must have the same size) or "center-crop" (a GT larger than its LQ is
    center-cropped to the LQ's size, as the RESIDE training code of FFA-Net does).
    """

    name: str = ""
    summary: str = ""
    layouts: str = ""  # the layouts it reads, for `data list`
    splits: tuple[SplitSpec, ...] = ()
    gt_alignment: str = "same"

    def scan_split(self, root: Path, spec: SplitSpec) -> SplitScan:
        raise NotImplementedError

    # -- shared
    def split_specs(self) -> tuple[SplitSpec, ...]:
        return tuple(self.splits)

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(s.task for s in self.split_specs()))

    def scan(self, root, splits: Iterable[str] | None = None) -> list[SplitScan]:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: not a folder (the root of the {self.name} dataset)")
        wanted = None if splits is None else set(splits)
        return [self.scan_split(root, s) for s in self.split_specs() if wanted is None or s.name in wanted]

    def alignment_of(self, split: str) -> str:
        """The GT alignment rule of a split (one per dataset; a mix keeps each member's)."""
        return self.gt_alignment

    def check(self, root, deep: bool = False) -> CheckReport:
        """Found vs expected per split; with `deep`, every image is also decoded and the pair sizes compared."""
        scans = self.scan(root)
        if deep:
            for sc in scans:
                for p in sc.pairs:
                    try:
                        load_pair(p, self.alignment_of(sc.spec.name), cached=False)
                    except DataError as exc:
                        sc.errors.append(str(exc))
        return CheckReport(self.name, Path(root), scans)

    def _usable(self, root, role: str, tasks=None, names=None) -> list[SplitScan]:
        """The scans of one role that a run uses; structure errors raise, wrong counts warn."""
        if tasks is not None:
            unknown = [t for t in tasks if t not in self.tasks()]
            if unknown:
                from ..errors import suggest

                raise DataError(f"{self.name}: unknown task(s) {', '.join(map(repr, unknown))}."
                                f"{suggest(unknown[0], self.tasks())} Its tasks: {', '.join(self.tasks())}")
        specs = [s for s in self.split_specs() if s.role == role and (tasks is None or s.task in tasks)]
        if names is not None:
            known = {s.name for s in specs}
            unknown = [n for n in names if n not in known]
            if unknown:
                from ..errors import suggest

                raise DataError(f"{self.name}: unknown {role} set(s) {', '.join(map(repr, unknown))}."
                                f"{suggest(unknown[0], known)} Its {role} sets: {', '.join(sorted(known))}")
            specs = [s for s in specs if s.name in names]
        else:  # by default: the required sets, and the optional ones marked for use when found
            specs = [s for s in specs if s.required or s.evaluate]
        scans = self.scan(root, [s.name for s in specs])
        errors = [f"{sc.spec.name}: {e}" for sc in scans for e in sc.errors]
        if errors:
            raise DataError(f"{self.name} at {root}: " + "; ".join(errors)
                            + f". Run `bridgezoo data check {self.name}:{root}` for the whole picture")
        absent = [sc.spec.name for sc in scans if sc.missing and names is not None]
        if absent:
            raise DataError(f"{self.name} at {root}: {role} set(s) {', '.join(absent)} not found. Run "
                            f"`bridgezoo data check {self.name}:{root}` to see where they were looked for")
        found = [sc for sc in scans if not sc.missing]
        if not found:
            raise DataError(f"{self.name} at {root}: no {role} split found")
        off = [f"{sc.spec.name} {len(sc.pairs)} of {sc.spec.expected}" for sc in found if sc.count_error]
        if off:
            warnings.warn(f"{self.name} at {root}: {role} pairs differ from the official counts ({', '.join(off)}); "
                          "using the pairs found", DataWarning, stacklevel=3)
        return found

    def training_set(self, root, patch: int, length: int, seed: int = 0, tasks=None,
                     batch_pattern=None) -> "TrainingPairs":
        """Random patch×patch crops of every training pair, `length` draws, task-balanced or in a fixed per-batch
        composition (`TrainingPairs`)."""
        scans = self._usable(root, "train", tasks)
        by_task: dict[str, list[ImagePair]] = {}
        align = {}
        for sc in scans:
            by_task.setdefault(sc.spec.task, []).extend(sc.pairs)
            align[sc.spec.task] = self.alignment_of(sc.spec.name)
        return TrainingPairs(by_task, patch=patch, length=length, seed=seed, gt_alignment=align,
                             batch_pattern=batch_pattern)

    def evaluation_set(self, root, sets=None, limit: int | None = None, tasks=None) -> "EvaluationPairs":
        """The full test images of `sets` (default: the dataset's own test sets), at most `limit` per set."""
        scans = self._usable(root, "test", tasks, names=sets)
        return EvaluationPairs([(sc.spec, sc.pairs) for sc in scans], limit=limit,
                               gt_alignment={sc.spec.name: self.alignment_of(sc.spec.name) for sc in scans})

    def describe(self) -> list[dict]:
        """One row per split, for `bridgezoo data list`."""
        return [{"dataset": self.name, "split": s.name, "role": s.role, "task": s.task, "expected": s.expected,
                 "metric": s.metric, "required": s.required, "evaluated": s.role == "test" and (s.required or s.evaluate),
                 "source": s.source} for s in self.split_specs()]
