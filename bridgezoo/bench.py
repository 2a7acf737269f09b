"""`bridgezoo bench GRID.toml`: expand a grid of runs, skip finished ones, resume unfinished ones, record failures.

A grid file (TOML)::

    name = "zoo-cpu"                 # used for the status file
    out = "runs/cpu"                 # run directories go here (relative to the current directory)
    [shared]                         # any `bridgezoo run` option (RunConfig field) shared by every run
    backbone = "unet-T"
    iters = 200
    [axes]                           # lists; the grid is their Cartesian product
    bridge = ["rdbm", "goub"]
    pi = ["default", "one"]          # "default" = the bridge's own π
    seed = [0, 1, 2]
    nfe = [10, 20]                   # evaluation-only axes: one training run, one evaluation per (nfe, sampler)
    sampler = ["ddim", "official"]   # "official": each bridge's own first sampler
    [bridge_opts.rdbm]               # options for one bridge only (optional)
    lam = 0.0001

Training axes are bridge, pi, backbone and seed (plus anything in `shared`); nfe and sampler only change the
evaluation, so a trained model is evaluated once per (nfe, sampler) and never retrained. A run directory's name
carries a hash of its resolved training configuration, so two grids that contain the same run share it.

Every run is a subprocess (`python -m bridgezoo.bench --worker SPEC`): a crash, an out-of-memory kill or a bad
option fails that run only; its error goes to `RUN/error.txt` and to the grid's status file, and the grid goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import OptionError, suggest

TRAIN_AXES = ("bridge", "pi", "backbone", "seed")
EVAL_AXES = ("nfe", "sampler")
AXES = TRAIN_AXES + EVAL_AXES
TOP_KEYS = ("name", "out", "description", "shared", "axes", "bridge_opts")


def _run_fields() -> list[str]:
    from .train import RunConfig

    return [f.name for f in dataclasses.fields(RunConfig)]


@dataclass
class GridRun:
    """One training run of a grid and the evaluations it owes."""

    name: str
    directory: Path
    config: dict  # RunConfig keyword arguments
    evals: list[tuple[int | None, str | None]]

    def eval_dir(self, nfe, sampler) -> Path:
        """Where the evaluation at (nfe, sampler) is written: the run directory for the first, `evals/...` else."""
        if (nfe, sampler) == self.evals[0]:
            return self.directory
        return self.directory / "evals" / f"nfe{nfe if nfe is not None else 'default'}-{sampler or 'official'}"

    def missing_evals(self) -> list[tuple[int | None, str | None]]:
        return [e for e in self.evals if not (self.eval_dir(*e) / "summary.json").exists()]

    @property
    def finished(self) -> bool:
        return not self.missing_evals()


@dataclass
class Grid:
    name: str
    path: Path | None
    out: Path
    runs: list[GridRun]
    description: str = ""

    @property
    def status_file(self) -> Path:
        return self.out / f"bench-{self.name}.json"


def _as_list(value, key: str, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise OptionError(f"{where}: [axes] {key} must be a non-empty list, got {value!r}")
    return value


def _default_pi(bridge: str) -> str:
    """The bridge's own π; "default" for a bridge that cannot be built here (its run will fail with the reason)."""
    from .registry import get_bridge

    try:
        return get_bridge(bridge).pi
    except Exception:  # noqa: BLE001 - recorded as that run's failure, not the grid's
        return "default"


def training_key(config: dict) -> str:
    """A short hash of everything that decides the trained weights (evaluation settings excluded)."""
    ignore = {"nfe", "sampler", "out", "quiet", "num_workers", "log_every", "save_every", "samples", "tile",
              "tile_overlap", "crop_border", "eval_split", "eval_max_side", "eval_data", "eval_seed"}
    stable = {k: v for k, v in sorted(config.items()) if k not in ignore}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _official_sampler(bridge: str) -> str | None:
    from .registry import get_bridge

    try:
        return get_bridge(bridge).samplers[0]
    except Exception:  # noqa: BLE001 - the run will fail with the reason
        return None


def _check_samplers(bridge: str, options: dict, samplers, where: str) -> None:
    """A sampler (or sampler option) that a bridge does not have fails when the grid is read, not after training."""
    from .registry import get_bridge

    try:
        built = get_bridge(bridge, **options)
    except Exception:  # noqa: BLE001 - a bridge that cannot be built: its run fails with the reason
        return
    for sampler in samplers:
        if sampler is not None:
            try:
                built.get_sampler(sampler)
            except OptionError as exc:
                raise OptionError(f"{where}: {exc}") from None


def _distinct_evals(evals, bridge: str, resolve_official) -> list:
    """Drop an "official" evaluation that is the same as another one (a bridge whose own sampler is ddim)."""
    official = resolve_official(bridge) if any(s is None for _, s in evals) else None
    out, keys = [], set()
    for nfe, sampler in evals:
        key = (nfe, sampler or official or "official")
        if key not in keys:
            keys.add(key)
            out.append((nfe, sampler))
    return out


def expand(spec: dict, out: Path | None = None, where: str = "grid", resolve_pi=_default_pi,
           resolve_official=_official_sampler) -> list[GridRun]:
    """The runs of a grid description (the parsed TOML): one per combination of the training axes."""
    for key in spec:
        if key not in TOP_KEYS:
            raise OptionError(f"{where}: unknown top-level key {key!r}.{suggest(key, TOP_KEYS)} "
                              f"Allowed: {', '.join(TOP_KEYS)}")
    fields = _run_fields()
    shared = dict(spec.get("shared", {}))
    axes = dict(spec.get("axes", {}))
    for key in shared:
        if key not in fields or key in ("out", "resume"):
            raise OptionError(f"{where}: [shared] {key!r} is not a run option.{suggest(key, fields)}")
        if key in axes:
            raise OptionError(f"{where}: {key!r} is both in [shared] and in [axes]; keep one")
    for key in axes:
        if key not in AXES:
            raise OptionError(f"{where}: unknown axis {key!r}.{suggest(key, AXES)} Axes: {', '.join(AXES)}")
    from .train import RunConfig

    defaults = RunConfig()
    values = {k: _as_list(axes[k], k, where) if k in axes else [shared.get(k, getattr(defaults, k))] for k in AXES}
    per_bridge = spec.get("bridge_opts", {})
    out = Path(out if out is not None else spec.get("out", "runs/bench"))
    samplers = [None if v in (None, "official") else v for v in values["sampler"]]  # None: the bridge's own
    evals = list(itertools.product(values["nfe"], samplers))
    runs: dict[str, GridRun] = {}
    for bridge, pi, backbone, seed in itertools.product(*(values[k] for k in TRAIN_AXES)):
        if pi in (None, "default"):
            pi = resolve_pi(bridge)  # still "default" for a bridge that cannot be built here
        config = dict(shared) | {"bridge": bridge, "backbone": backbone, "seed": seed if seed is not None else 0,
                                 "pi": None if pi == "default" else pi, "nfe": evals[0][0], "sampler": evals[0][1]}
        config["bridge_opts"] = dict(shared.get("bridge_opts", {})) | dict(per_bridge.get(bridge, {}))
        _check_samplers(bridge, config["bridge_opts"] | ({"pi": pi} if pi != "default" else {}), samplers, where)
        config["quiet"] = True
        name = "-".join([bridge, f"pi_{pi}", str(backbone or "auto").replace("/", "_"),
                         f"s{config['seed']}", training_key(config)])
        if name in runs:  # "default" and the bridge's own π written out are the same run
            continue
        config["out"] = str(out / name)
        runs[name] = GridRun(name, out / name, config, _distinct_evals(evals, bridge, resolve_official))
    return list(runs.values())


def load_grid(path: str | Path, out: str | Path | None = None) -> Grid:
    """Read and expand a grid file; errors name the file and the key."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise OptionError(f"{path}: no such grid file")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"{path}: not valid TOML ({exc})") from None
    runs = expand(spec, out, where=str(path))
    return Grid(spec.get("name", path.stem), path, Path(out or spec.get("out", "runs/bench")), runs,
                spec.get("description", ""))


# ---------------------------------------------------------------------------------------------- execution
def run_one(spec: dict) -> dict:
    """Train (or resume) one grid run and write its missing evaluations. Runs inside the worker process."""
    from .train import RunConfig, load_model, make_datasets, run

    grid_run = GridRun(spec["name"], Path(spec["config"]["out"]), spec["config"], [tuple(e) for e in spec["evals"]])
    missing = grid_run.missing_evals()
    summaries = {}
    if grid_run.evals[0] in missing:  # the run's own evaluation: train (or resume) first
        directory = grid_run.directory
        summaries[grid_run.evals[0]] = run(RunConfig(**grid_run.config), resume=(directory / "config.json").exists())
    extra = [e for e in missing if e != grid_run.evals[0]]
    if extra:
        from .evaluate import evaluate

        bridge, model, saved = load_model(grid_run.directory / "model.safetensors")  # its config is resolved
        _, eval_set = make_datasets(saved)
        for nfe, sampler in extra:
            target = grid_run.eval_dir(nfe, sampler)
            summaries[(nfe, sampler)] = evaluate(bridge, model, eval_set, target, nfe=nfe, sampler=sampler,
                                                 tile=saved.tile, overlap=saved.tile_overlap,
                                                 crop_border=saved.crop_border, samples=saved.samples,
                                                 seed=saved.seed, quiet=True)
    return {f"nfe{k[0]}-{k[1]}": v.get("overall", {}).get("psnr") for k, v in summaries.items() if v}


def _worker_command(run: GridRun) -> list[str]:
    spec = json.dumps({"name": run.name, "config": run.config, "evals": run.evals})
    return [sys.executable, "-m", "bridgezoo.bench", "--worker", spec]


def slot_env(slot: dict, base: dict | None = None) -> dict:
    """The environment of a run on `slot`: only its GPU visible, or its share of the CPU threads."""
    env = dict(os.environ if base is None else base)
    if slot.get("gpu") is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(slot["gpu"])
    if slot.get("threads"):
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(slot["threads"])
    return env


def _launch(run: GridRun, slot: dict) -> tuple[int, str, float]:
    """Run one grid run in a subprocess on `slot` (its GPU or its CPU threads); (exit code, stderr tail, seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(_worker_command(run), env=slot_env(slot), capture_output=True, text=True)
    return proc.returncode, (proc.stderr or "")[-4000:], time.perf_counter() - start


def _write_status(grid: Grid, records: dict, command: str) -> None:
    from .evaluate import atomic_write_text

    payload = {"grid": grid.name, "file": str(grid.path) if grid.path else None, "command": command,
               "runs": [records[r.name] for r in grid.runs if r.name in records]}
    atomic_write_text(grid.status_file, json.dumps(payload, indent=2))


def bench(grid: Grid, jobs: int = 1, gpus: list[int] | None = None, threads: int | None = None,
          quiet: bool = False, launch=_launch, command: str = "") -> dict:
    """Run every unfinished run of `grid`; returns {run name: record}. A failed run does not stop the grid.

    `gpus`: one run at a time per listed GPU. Otherwise `jobs` runs at a time, each limited to `threads` CPU
    threads (default: the cores divided by `jobs`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    grid.out.mkdir(parents=True, exist_ok=True)
    if gpus:
        slots = [{"gpu": g} for g in gpus]
    else:
        jobs = max(1, jobs)
        per = threads or max(1, (os.cpu_count() or 1) // jobs)
        slots = [{"threads": per} for _ in range(jobs)]
    records: dict[str, dict] = {}
    todo = []
    for r in grid.runs:
        if r.finished:
            records[r.name] = {"name": r.name, "status": "done", "directory": str(r.directory), "skipped": True}
        else:
            todo.append(r)
    _write_status(grid, records, command)
    free = queue.SimpleQueue()  # the slots not in use
    for slot in slots:
        free.put(slot)
    lock = threading.Lock()  # guards records, the status file and the progress bar

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=quiet) as progress:
        task = progress.add_task(f"grid {grid.name}", total=len(grid.runs), completed=len(grid.runs) - len(todo),
                                 info=f"{len(grid.runs) - len(todo)} already done")

        def work(r: GridRun):
            slot = free.get()
            try:
                resumed = (r.directory / "config.json").exists()
                code, err, seconds = launch(r, slot)
            finally:
                free.put(slot)
            rec = {"name": r.name, "directory": str(r.directory), "seconds": round(seconds, 1), "resumed": resumed}
            if code == 0 and r.finished:
                rec["status"] = "done"
                summary = json.loads((r.directory / "summary.json").read_text())
                rec["psnr"], rec["input_psnr"] = summary["overall"]["psnr"], summary["input"]["psnr"]
                info = f"{r.name}: {rec['psnr']:.2f} dB"
            else:
                rec["status"] = "failed"
                rec["exit_code"] = code
                lines = [ln for ln in err.strip().splitlines() if ln.strip()]
                rec["error"] = lines[-1] if lines else f"exit code {code}, no message"
                r.directory.mkdir(parents=True, exist_ok=True)
                (r.directory / "error.txt").write_text(err)
                info = f"[red]{r.name} failed: {rec['error'][:80]}"
            with lock:
                records[r.name] = rec
                _write_status(grid, records, command)
                progress.update(task, advance=1, info=info)
            return rec

        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            list(pool.map(work, todo))
    return records


def _worker_main(spec_json: str) -> int:
    import torch

    from .errors import BridgezooError

    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    try:
        result = run_one(json.loads(spec_json))
    except BridgezooError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[2]))
    print("usage: python -m bridgezoo.bench --worker SPEC_JSON (internal; use `bridgezoo bench GRID.toml`)",
          file=sys.stderr)
    sys.exit(2)
