"""Per-task batch composition (`bridgezoo run --task-batch`): how many items of each task every training batch holds.

The universal-restoration papers train the five tasks from one data loader per task and concatenate their batches,
in the order fog, light, rain, snow, blur:

- DiffUIR (iSEE-Laboratory/DiffUIR src/model.py:1209-1213, concatenated at :1290; train.py `gradient_accumulate_every=2`):
  4 : 1 : 2 : 2 : 1 (10 per batch, two batches per optimizer step) — preset `diffuir`;
- UDBM (UDBM-ICML26 README "Batch Composition" and its trainer's `task_batch_sizes`): 8 : 2 : 4 : 4 : 2 (20 per batch
  with `gradient_accumulate_every` 2; 16,4,8,8,4 with 1) — preset `udbm`.

Their task names map to bridgezoo's: fog → dehaze, light (DiffUIR's dataset `light_only`) → lowlight, rain → derain,
snow → desnow, blur → deblur; either spelling is accepted. It applies to any training set whose tasks have these
names: zoo5 and universal5 (both have exactly these five tasks), or a registered dataset with some of them.

Without `--task-batch` (the default), draw i of the training stream has task i mod n_tasks and every batch is a
random slice of a shuffled stream: every task is drawn equally often over the run, but one batch's mix varies.
With it, batch position j always holds the same task (`batch_pattern`), so every batch has exactly the given counts.
"""

from __future__ import annotations

from ..errors import OptionError, suggest

OPTION = "--task-batch"
# the training-code names of DiffUIR / UDBM (data/universal_dataset.py `task=`) → bridgezoo's task names
ALIASES = {"fog": "dehaze", "light": "lowlight", "light_only": "lowlight", "rain": "derain", "snow": "desnow",
           "blur": "deblur"}
PRESETS = {
    "diffuir": (("dehaze", 4), ("lowlight", 1), ("derain", 2), ("desnow", 2), ("deblur", 1)),
    "udbm": (("dehaze", 8), ("lowlight", 2), ("derain", 4), ("desnow", 4), ("deblur", 2)),
}
DEFAULT_TEXT = ("default: none, each draw's task cycles through the tasks, so every task is drawn equally often "
                "over the run and a batch mixes them at random")

Composition = tuple[tuple[str, int], ...]


def parse_task_batch(spec: str) -> Composition:
    """`fog=8,light=2,...` or a preset name → ((task, count), ...) in the given order, bridgezoo task names.

    Errors (`OptionError`) name the option: an entry that is not TASK=COUNT, a count that is not a positive integer,
    a task given twice. Whether the tasks exist is the data's question (`check_composition`)."""
    text = str(spec).strip()
    if text.lower() in PRESETS:
        return PRESETS[text.lower()]
    if not text:
        raise OptionError(f"{OPTION} is empty: give TASK=COUNT,... (e.g. fog=8,light=2,rain=4,snow=4,blur=2) or a "
                          f"preset: {', '.join(PRESETS)}")
    out: dict[str, int] = {}
    for entry in text.split(","):
        entry = entry.strip()
        if "=" not in entry:
            hint = suggest(entry.lower(), PRESETS) if entry and not any(c.isdigit() for c in entry) else ""
            raise OptionError(f"{OPTION} {spec!r}: {entry!r} is not TASK=COUNT.{hint} Give TASK=COUNT,... (e.g. "
                              f"fog=8,light=2,rain=4,snow=4,blur=2) or a preset: {', '.join(PRESETS)}")
        name, count = (s.strip() for s in entry.split("=", 1))
        task = ALIASES.get(name.lower(), name)
        try:
            n = int(count)
        except ValueError:
            n = None
        if n is None or n < 1 or str(n) != count.lstrip("+"):
            raise OptionError(f"{OPTION} {spec!r}: the count of {name!r} must be a positive integer, got {count!r} "
                              "(leave a task out with --tasks rather than giving it 0)")
        if task in out:
            raise OptionError(f"{OPTION} {spec!r}: task {task!r} is given twice")
        out[task] = n
    return tuple(out.items())


def format_composition(comp: Composition) -> str:
    """The canonical spelling recorded in config.json: `dehaze=8,lowlight=2,...`."""
    return ",".join(f"{t}={n}" for t, n in comp)


def total(comp: Composition) -> int:
    return sum(n for _, n in comp)


def check_composition(comp: Composition, dataset_tasks, selected=None, data: str = "the data") -> None:
    """The composition's tasks must be tasks of the data (`dataset_tasks`) and exactly the tasks trained: those of
    `--tasks` when given (`selected`), else all of the data's. `OptionError` naming the option otherwise."""
    known = list(dataset_tasks)
    names = [t for t, _ in comp]
    unknown = [t for t in names if t not in known]
    if unknown:
        spelled = ", ".join(f"{a} ({t})" for a, t in ALIASES.items() if t in known and a != "light_only")
        raise OptionError(f"{OPTION}: {data} has no task {unknown[0]!r}.{suggest(unknown[0], known)} Its tasks: "
                          f"{', '.join(known)}" + (f"; DiffUIR/UDBM names: {spelled}" if spelled else ""))
    wanted = list(selected) if selected else known
    missing, extra = [t for t in wanted if t not in names], [t for t in names if t not in wanted]
    if extra:
        raise OptionError(f"{OPTION} names {', '.join(extra)}, which --tasks leaves out (--tasks {' '.join(wanted)})")
    if missing:
        raise OptionError(f"{OPTION} gives no count for {', '.join(missing)}, which the run trains on; add "
                          f"{', '.join(f'{t}=N' for t in missing)} or train fewer tasks with --tasks "
                          f"{' '.join(names)}")


def batch_pattern(comp: Composition, batch: int) -> tuple[str, ...]:
    """The task of each position of a batch of `batch` items: each task's count times batch // total, in the
    composition's order (the papers concatenate their per-task batches in that order). `batch` must be a multiple
    of the total."""
    k, rest = divmod(batch, total(comp))
    if rest or k < 1:
        raise OptionError(f"--batch {batch} must be a multiple of the {OPTION} total {total(comp)} "
                          f"({format_composition(comp)})")
    return tuple(t for t, n in comp for _ in range(n * k))


def pattern_counts(pattern) -> tuple[list[int], dict[str, int]]:
    """(for each position j: how many earlier positions have its task, {task: positions per batch})."""
    rank, counts = [], {}
    for t in pattern:
        rank.append(counts.get(t, 0))
        counts[t] = counts.get(t, 0) + 1
    return rank, counts
