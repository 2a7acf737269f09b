"""Finding a dataset's splits on disk in its authors' layout: what a split is (`SplitSpec`), what a scan found
(`SplitScan`, `CheckReport`), and the helpers a dataset plugin's `scan_split` is written with (folders found
case-insensitively, images listed and paired by a naming rule, near misses named). No image is decoded here."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from .io import is_image

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


def strip_prefix_key(*prefixes: str) -> Callable[[Path], str]:
    """A pairing key: the lower-case stem without any of the leading `prefixes` (e.g. 'rain-', 'norain-')."""
    pattern = re.compile("^(" + "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True)) + ")")

    def key(p: Path) -> str:
        return pattern.sub("", p.stem.lower())

    return key
