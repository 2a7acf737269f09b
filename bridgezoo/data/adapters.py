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
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np
import torch

from .io import DataError, as_hwc, is_image, read_cached, read_image, to_rgb01
from ..seeding import derive_seed, numpy_rng
from .composition import pattern_counts
from .paired import DataWarning, random_crop
from .zoo5 import to_tensor

METRICS = {"y": "PSNR/SSIM on Y (ITU-R BT.601)", "rgb": "PSNR/SSIM on RGB",
           "nr": "no ground truth: the restored images and a no-reference metric (NIQE), never a PSNR"}
MAX_LISTED = 5


# ------------------------------------------------------------------------------------------- descriptions
@dataclass(frozen=True)
class SplitSpec:
    """One split of a dataset as its authors define it.

    name: unique within a benchmark ("Rain100H", "SOTS-outdoor"); role: "train" or "test"; task: the restoration
    task ("derain", "lowlight", "desnow", "dehaze", "deblur"); expected: number of (LQ, GT) pairs of the official
    split, or None where no count is fixed; metric: the convention the literature reports it in, "y" or "rgb"
    (bridgezoo computes both; this one is the split's headline number), or "nr" for an unpaired test set (degraded
    images without ground truth: its pairs have `gt=None`; scored by a no-reference metric); required: a missing optional split is a
    note, not an error; evaluate: an optional test set is evaluated when found only if True (else on request);
    source: where the count and convention come from.
    """

    name: str
    role: str
    task: str
    expected: int | None
    metric: str = "rgb"
    required: bool = True
    evaluate: bool = True
    source: str = ""

    def __post_init__(self):
        if self.role not in ("train", "test"):
            raise ValueError(f"split {self.name!r}: role must be 'train' or 'test', got {self.role!r}")
        if self.metric not in METRICS:
            raise ValueError(f"split {self.name!r}: metric must be 'y', 'rgb' or 'nr', got {self.metric!r}")
        if self.metric == "nr" and self.role != "test":
            raise ValueError(f"split {self.name!r}: only a test split can be unpaired (metric 'nr')")

    @property
    def paired(self) -> bool:
        return self.metric != "nr"


class ImagePair(NamedTuple):
    lq: Path
    gt: Path | None  # None: an unpaired test image (a split with metric "nr")
    name: str  # unique within its split, e.g. "GOPR0384_11_00/000001" or "0001_0.8_0.2"


@dataclass
class SplitScan:
    """What `scan_split` found for one split: the pairs, where, and every problem, each naming its files."""

    spec: SplitSpec
    pairs: list[ImagePair] = field(default_factory=list)
    where: str | None = None  # the folders used, relative to the root, e.g. "test/Rain100H/{input,target}"
    errors: list[str] = field(default_factory=list)  # structure problems: fail a run and a check
    warnings: list[str] = field(default_factory=list)  # worth knowing; fail nothing
    missing: bool = False  # no folder of this split was found

    @property
    def count_error(self) -> str | None:
        """A wrong number of pairs against the official count (an error for `check`, a warning for a run)."""
        exp = self.spec.expected
        if self.missing or exp is None or len(self.pairs) == exp or (self.errors and not self.pairs):
            return None
        if len(self.pairs) < exp:
            return f"{exp - len(self.pairs)} pair(s) fewer than the official {exp} (a partial download?)"
        return f"{len(self.pairs) - exp} pair(s) more than the official {exp}"

    def line(self) -> str:
        s = self.spec
        head = f"{s.name} {s.role}" + ("" if s.required else " (optional)")
        if self.missing:
            return f"{head}: not found"
        exp = f" of {s.expected}" if s.expected is not None else ""
        what = "pairs" if s.paired else "images (no ground truth)"
        return f"{head}: {len(self.pairs)}{exp} {what}" + (f"  [{self.where}]" if self.where else "")


@dataclass
class CheckReport:
    """Every split of a dataset under one root, checked."""

    dataset: str
    root: Path
    scans: list[SplitScan]

    def errors(self, counts_are_errors: bool = True) -> list[str]:
        out = []
        for sc in self.scans:
            out += [f"{sc.spec.name}: {e}" for e in sc.errors]
            if counts_are_errors and sc.count_error:
                out.append(f"{sc.spec.name}: {sc.count_error}")
        return out

    @property
    def ok(self) -> bool:
        return not self.errors()

    def lines(self) -> list[str]:
        out = [f"{self.dataset} at {self.root}"]
        for sc in self.scans:
            out.append("  " + sc.line())
            out += [f"    error: {e}" for e in sc.errors]
            if sc.count_error:
                out.append(f"    error: {sc.count_error}")
            out += [f"    note: {w}" for w in sc.warnings]
        n = len(self.errors())
        out.append(f"{n} error(s)" if n else "ok: every split found with its official count")
        return out

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "root": str(self.root), "ok": self.ok, "errors": self.errors(),
                "splits": [{"name": sc.spec.name, "role": sc.spec.role, "task": sc.spec.task,
                            "found": None if sc.missing else len(sc.pairs), "expected": sc.spec.expected,
                            "required": sc.spec.required, "where": sc.where, "errors": sc.errors,
                            "count_error": sc.count_error, "notes": sc.warnings} for sc in self.scans]}


# ------------------------------------------------------------------------------------------- file helpers
def find_dir(base: Path, rel: str) -> Path | None:
    """`base/rel` resolved one component at a time, case-insensitively; None if any component is missing."""
    cur = Path(base)
    for part in Path(rel).parts:
        if not cur.is_dir():
            return None
        exact = cur / part
        if exact.is_dir():
            cur = exact
            continue
        match = [p for p in cur.iterdir() if p.is_dir() and p.name.lower() == part.lower()]
        if not match:
            return None
        cur = match[0]
    return cur if cur.is_dir() else None


def find_named_dir(base: Path, name: str, max_depth: int = 5) -> Path | None:
    """The shallowest folder called `name` (case-insensitive) under `base`, at most `max_depth` levels down;
    for distinctive names only (archives extract to odd prefixes, e.g. Snow100K's test set)."""
    base = Path(base)
    level = [base]
    for _ in range(max_depth + 1):
        nxt = []
        for d in sorted(level):
            try:
                subs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
            for p in subs:
                if p.name.lower() == name.lower():
                    return p
            nxt += subs
        level = nxt
    return None


def list_images(d: Path, recursive: bool = False) -> list[Path]:
    """Image files in `d` (sorted; hidden files skipped); with `recursive`, in every subfolder too."""
    out = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            out += [Path(dirpath) / f for f in filenames if not f.startswith(".") and is_image(Path(f))]
    else:
        with os.scandir(d) as it:
            out = [Path(e.path) for e in it if e.is_file() and not e.name.startswith(".") and is_image(Path(e.name))]
    return sorted(out)


def listing(paths: Iterable, root: Path | None = None) -> str:
    """'a, b, c (and 7 more)' with paths shown relative to `root`."""
    paths = list(paths)

    def show(p):
        if root is not None:
            try:
                return str(Path(p).relative_to(root))
            except ValueError:
                pass
        return str(p)

    text = ", ".join(show(p) for p in paths[:MAX_LISTED])
    return text + (f" (and {len(paths) - MAX_LISTED} more)" if len(paths) > MAX_LISTED else "")


def rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root)) or "."
    except ValueError:
        return str(path)


def near_miss(root: Path, rel_path: str) -> str:
    """For a folder that is not there: which part is missing and what its parent holds (a renamed folder shows)."""
    cur = Path(root)
    for part in Path(rel_path).parts:
        nxt = find_dir(cur, part)
        if nxt is None:
            try:
                subs = sorted(p.name for p in cur.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                subs = []
            where = rel(cur, root)
            return f"no '{part}' in {where}/ (it has: {', '.join(subs) if subs else 'no folders'})"
        cur = nxt
    return ""


def stem_key(path: Path) -> str:
    return path.stem


def pair_files(lq_files: list[Path], gt_files: list[Path], lq_key: Callable[[Path], str] = stem_key,
               gt_key: Callable[[Path], str] = stem_key, many_to_one: bool = False,
               name: Callable[[Path], str] | None = None):
    """Pair LQ with GT files by key. Returns (pairs, LQ without GT, GT without LQ, duplicate problems).

    One-to-one: each key once on each side. Many-to-one (`many_to_one=True`, RESIDE: many hazy images of one
    clear image): several LQ files may share a GT key.
    """
    problems = []
    gts: dict[str, Path] = {}
    for p in gt_files:
        k = gt_key(p)
        if k in gts:
            problems.append(f"two ground-truth files share the key {k!r}: {gts[k].name}, {p.name}")
            continue
        gts[k] = p
    seen: dict[str, Path] = {}
    pairs, lonely_lq, used = [], [], set()
    for p in lq_files:
        k = lq_key(p)
        if not many_to_one:
            if k in seen:
                problems.append(f"two degraded files share the key {k!r}: {seen[k].name}, {p.name}")
                continue
            seen[k] = p
        if k in gts:
            pairs.append(ImagePair(p, gts[k], name(p) if name else p.stem))
            used.add(k)
        else:
            lonely_lq.append(p)
    lonely_gt = [p for k, p in gts.items() if k not in used]
    return pairs, lonely_lq, lonely_gt, problems


def scan_pair_dirs(spec: SplitSpec, root: Path, candidates: list[tuple[str, str, str]], *, recursive=False,
                   lq_key=stem_key, gt_key=stem_key, many_to_one=False, per_gt: int | None = None,
                   rule: str = "same file name") -> SplitScan:
    """The usual split: the first candidate (LQ folder, GT folder, layout label) found under `root` is paired.

    `rule` says how files pair, for messages. `per_gt`: the number of LQ images each GT image has in the full
    download (RESIDE); GT images with fewer are named.
    """
    scan = SplitScan(spec)
    found = [(lq_rel, gt_rel, label, find_dir(root, lq_rel), find_dir(root, gt_rel))
             for lq_rel, gt_rel, label in candidates]
    for lq_rel, gt_rel, label, lq_dir, gt_dir in found:
        if lq_dir is not None and gt_dir is not None:
            scan.where = f"{rel(lq_dir, root)} + {rel(gt_dir, root)} ({label})"
            fill_pairs(scan, root, lq_dir, gt_dir, recursive=recursive, lq_key=lq_key, gt_key=gt_key,
                       many_to_one=many_to_one, per_gt=per_gt, rule=rule)
            return scan
    for lq_rel, gt_rel, label, lq_dir, gt_dir in found:  # half a layout: name the missing half
        if lq_dir is not None or gt_dir is not None:
            have, lack = (lq_rel, gt_rel) if lq_dir else (gt_rel, lq_rel)
            scan.errors.append(f"found {have}/ but not {lack}/ ({near_miss(root, lack)}); layout {label}")
            scan.where = f"{have} ({label})"
            return scan
    return missing_scan(spec, root, [f"{lq}/ + {gt}/" for lq, gt, _ in candidates],
                        hint=near_miss(root, candidates[0][0]) if candidates else "")


def scan_image_dirs(spec: SplitSpec, root: Path, candidates: list[tuple[str, str]]) -> SplitScan:
    """An unpaired test split: the images of the first candidate (folder, layout label) found under `root`, each an
    `ImagePair` with `gt=None`."""
    scan = SplitScan(spec)
    for folder, label in candidates:
        d = find_dir(root, folder)
        if d is None:
            continue
        scan.where = f"{rel(d, root)} ({label})"
        files = list_images(d)
        if not files:
            scan.errors.append(f"{rel(d, root)}/ holds no images")
        scan.pairs = [ImagePair(f, None, f.stem) for f in files]
        return scan
    return missing_scan(spec, root, [f"{f}/" for f, _ in candidates],
                        hint=near_miss(root, candidates[0][0]) if candidates else "")


def fill_pairs(scan: SplitScan, root: Path, lq_dir: Path, gt_dir: Path, *, recursive=False, lq_key=stem_key,
               gt_key=stem_key, many_to_one=False, per_gt=None, rule="same file name", name=None) -> None:
    """Pair the images of two folders into `scan`, recording every problem with its files."""
    lq_files, gt_files = list_images(lq_dir, recursive), list_images(gt_dir, recursive)
    if not lq_files:
        scan.errors.append(f"{rel(lq_dir, root)}/ holds no images")
    if not gt_files:
        scan.errors.append(f"{rel(gt_dir, root)}/ holds no images")
    if not lq_files or not gt_files:
        return
    pairs, lonely_lq, lonely_gt, problems = pair_files(lq_files, gt_files, lq_key, gt_key, many_to_one, name)
    scan.pairs += pairs
    scan.errors += problems
    if lonely_lq:
        scan.errors.append(f"{len(lonely_lq)} degraded image(s) without a ground truth (pairs by {rule}): "
                           + listing(lonely_lq, root))
    if lonely_gt:
        msg = f"{len(lonely_gt)} ground-truth image(s) without a degraded image: {listing(lonely_gt, root)}"
        (scan.warnings if many_to_one else scan.errors).append(msg)
    if per_gt and pairs:
        counts: dict[Path, int] = {}
        for p in pairs:
            counts[p.gt] = counts.get(p.gt, 0) + 1
        short = sorted(g for g, n in counts.items() if n != per_gt)
        if short:
            scan.warnings.append(f"{len(short)} ground-truth image(s) without exactly {per_gt} degraded versions: "
                                 + listing(short, root))


def missing_scan(spec: SplitSpec, root: Path, looked_for: list[str], hint: str = "") -> SplitScan:
    scan = SplitScan(spec, missing=True)
    text = f"not found; looked for {', '.join(looked_for)} under {root}" + (f"; {hint}" if hint else "")
    (scan.errors if spec.required else scan.warnings).append(text)
    return scan


# ------------------------------------------------------------------------------------------- adapters
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


def parse_data_spec(spec: str):
    """`NAME:PATH` for a registered dataset → (adapter, Path); anything else (zoo5, a folder) → None.

    An existing folder always means paired folders (even one named like a dataset); a bare registered name without
    a path is an error that says how to give one.
    """
    from ..registry import get_dataset, list_datasets

    if spec == "zoo5" or Path(spec).expanduser().exists():
        return None
    names = list_datasets()
    if spec in names:
        raise DataError(f"--data {spec}: give the dataset's root folder as {spec}:PATH (e.g. {spec}:/data/{spec})")
    if ":" not in spec:
        return None
    name, path = spec.split(":", 1)
    if name not in names:
        if len(name) == 1:  # a Windows drive letter
            return None
        from ..errors import suggest

        raise DataError(f"--data {spec}: unknown dataset {name!r}.{suggest(name, names)} Datasets: "
                        f"{', '.join(names)} (or zoo5, or a folder of paired images)")
    if not path:
        raise DataError(f"--data {spec}: the path after '{name}:' is empty")
    return get_dataset(name), Path(path).expanduser()


# ------------------------------------------------------------------------------------------- loading
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


def strip_prefix_key(*prefixes: str) -> Callable[[Path], str]:
    """A pairing key: the lower-case stem without any of the leading `prefixes` (e.g. 'rain-', 'norain-')."""
    pattern = re.compile("^(" + "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True)) + ")")

    def key(p: Path) -> str:
        return pattern.sub("", p.stem.lower())

    return key
