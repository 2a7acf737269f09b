"""A grid of runs: its file (see the package docstring), its expansion into runs with their evaluations, and the
hash of a run's training settings that names its directory."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError, suggest

TRAIN_AXES = ("bridge", "pi", "backbone", "seed")
EVAL_AXES = ("nfe", "sampler")
AXES = TRAIN_AXES + EVAL_AXES
TOP_KEYS = ("name", "out", "description", "shared", "axes", "bridge_opts", "launcher")


def _run_fields() -> list[str]:
    from ..run import RunConfig

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
    launcher: dict = dataclasses.field(default_factory=dict)  # the [launcher] table (used by --launcher submitit)

    @property
    def status_file(self) -> Path:
        return self.out / f"bench-{self.name}.json"


def _as_list(value, key: str, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise OptionError(f"{where}: [axes] {key} must be a non-empty list, got {value!r}")
    return value


def _default_pi(bridge: str) -> str:
    """The bridge's own π; "default" for a bridge that cannot be built here (its run will fail with the reason)."""
    from ..registry import get_bridge

    try:
        return get_bridge(bridge).pi
    except Exception:  # noqa: BLE001 - recorded as that run's failure, not the grid's
        return "default"


def training_settings(config: dict) -> dict:
    """The entries of a run configuration that decide the trained weights (the options declared with the training
    role in `bridgezoo.run.options`; evaluation and bookkeeping ones excluded), sorted."""
    from ..run.options import training_settings as declared

    return declared(config)


def training_key(config: dict) -> str:
    """A short hash of `training_settings(config)`: the last part of a grid run's directory name."""
    return hashlib.sha256(json.dumps(training_settings(config), sort_keys=True, default=str).encode()).hexdigest()[:8]


def _official_sampler(bridge: str) -> str | None:
    from ..registry import get_bridge

    try:
        return get_bridge(bridge).samplers[0]
    except Exception:  # noqa: BLE001 - the run will fail with the reason
        return None


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
    if shared.get("log_with"):
        from ..run.tracking import parse_log_with

        parse_log_with(shared["log_with"], option=f"{where}: [shared] log_with")
    for key in axes:
        if key not in AXES:
            raise OptionError(f"{where}: unknown axis {key!r}.{suggest(key, AXES)} Axes: {', '.join(AXES)}")
    from ..run import RunConfig

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
    launcher = spec.get("launcher", {})
    if not isinstance(launcher, dict):
        raise OptionError(f"{path}: [launcher] must be a table of executor parameters, got {launcher!r}")
    return Grid(spec.get("name", path.stem), path, Path(out or spec.get("out", "runs/bench")), runs,
                spec.get("description", ""), launcher)


def check_grid(grid: Grid) -> dict[str, str]:
    """{run name: what is wrong} for every run whose options fail `run.check_config` (unknown bridge, bad
    bridge_opts, a sampler or NFE the bridge does not have, ...), including every evaluation's (nfe, sampler)."""
    import dataclasses as dc

    from ..errors import BridgezooError
    from ..run import check_config
    from ..run import RunConfig

    problems = {}
    for r in grid.runs:
        try:
            cfg, bridge = check_config(RunConfig(**r.config))
            for nfe, sampler in r.evals[1:]:
                check_config(dc.replace(cfg, nfe=nfe, sampler=sampler))
        except (BridgezooError, TypeError) as exc:
            problems[r.name] = str(exc)
    return problems
