"""A run directory on disk: the check that a new run writes only into a folder it may use, the resumable training
state, the EMA weights (`model.safetensors`, the full config in its metadata) and `load_model`.

The state is written without pickles: tensors in safetensors files, everything else in JSON (`save_tree`), so
resuming a run directory someone else wrote cannot execute code. (accelerate's `save_state` / `load_state`, used
before, unpickle `custom_checkpoint_*.pkl` and the RNG states with `weights_only=False`.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import OptionError
from .build import build_auxiliary, build_model, resolve_device
from .options import RunConfig

STATE_FORMAT = "bridgezoo-state-1"


def _encode(obj, tensors: dict):
    """A JSON skeleton of `obj` (dicts with any keys, lists, tuples, numbers, strings, None), its tensors and numpy
    arrays moved to `tensors` under generated keys."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"tensor": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj.copy())
        return {"ndarray": key, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot store a {type(obj).__name__} in a training state without pickling it")


def _decode(obj, tensors: dict):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "tensor" in obj:
        return tensors[obj["tensor"]]
    if "ndarray" in obj:
        return tensors[obj["ndarray"]].numpy().astype(obj["dtype"])
    if "tuple" in obj:
        return tuple(_decode(v, tensors) for v in obj["tuple"])
    return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["dict"]}


def save_tree(obj, stem: Path) -> None:
    """`obj` (a state dict, RNG states, ...) as STEM.safetensors (its tensors) and STEM.json (the rest)."""
    from safetensors.torch import save_file

    tensors = {}
    skeleton = _encode(obj, tensors)
    save_file(tensors, str(stem.with_suffix(".safetensors")))
    stem.with_suffix(".json").write_text(json.dumps({"format": STATE_FORMAT, "tree": skeleton}))


def load_tree(stem: Path, device: str = "cpu"):
    """What `save_tree` wrote, tensors on `device`; reads no pickle."""
    from safetensors.torch import load_file

    meta = json.loads(stem.with_suffix(".json").read_text())
    return _decode(meta["tree"], load_file(str(stem.with_suffix(".safetensors")), device=device))


def _rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():  # the devices both runs see (a resume may see fewer GPUs);
        for index, state in enumerate(states["cuda"][: torch.cuda.device_count()]):  # the training stream is
            torch.cuda.set_rng_state(state, index)  # seeded by (seed, step) anyway, not by this global state


def save_state(accelerator, run: Path, step: int, parts: dict, name: str = "state") -> None:
    """The resumable state (`parts`: name → object with `state_dict()`, e.g. model, optimizer, scheduler, ema) and
    every process's RNG states, replaced atomically as the directory `name` (a two-stage bridge's auxiliary
    network keeps its own, `auxiliary_state`)."""
    state, tmp, old = run / name, run / f"{name}.tmp", run / f"{name}.old"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        trees = {key: (accelerator.unwrap_model(obj) if key == "model" else obj).state_dict()
                 for key, obj in parts.items()}
        if accelerator.scaler is not None:
            trees["scaler"] = accelerator.scaler.state_dict()
        save_tree(trees, tmp / "training")
    save_tree(_rng_states(), tmp / f"rng_{accelerator.process_index}")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "step.json").write_text(json.dumps({"step": step}))
        if state.exists():
            os.replace(state, old)
        os.replace(tmp, state)
        if old.exists():
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def load_state(accelerator, state: Path, parts: dict) -> int:
    """Restore what `save_state` wrote into `parts` and this process's RNG; returns the saved step. A state written
    by accelerate (bridgezoo before its own format) is refused: loading it would unpickle its files."""
    if not (state / "training.json").exists():
        pickles = sorted(p.name for p in state.glob("*.pkl")) + sorted(p.name for p in state.glob("*.bin"))
        raise OptionError(f"--resume: {state} is not a state bridgezoo can load safely"
                          + (f" (it holds pickles: {', '.join(pickles[:4])}; loading them could execute code)"
                             if pickles else "") + "; start a new run with --out")
    trees = load_tree(state / "training")
    for key, obj in parts.items():
        (accelerator.unwrap_model(obj) if key == "model" else obj).load_state_dict(trees[key])
    if accelerator.scaler is not None and "scaler" in trees:
        accelerator.scaler.load_state_dict(trees["scaler"])
    rng = state / f"rng_{accelerator.process_index}"
    if rng.with_suffix(".json").exists():
        _set_rng_states(load_tree(rng))
    return json.loads((state / "step.json").read_text())["step"]


def state_dir(run: Path, name: str = "state") -> Path | None:
    for folder in (name, f"{name}.old"):  # NAME.old survives a kill between the two renames
        if (run / folder / "step.json").exists():
            return run / folder
    return None


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run never writes into a folder it did not make; a resumed one needs its config.json."""
    if resume:
        return
    if (run_dir / "config.json").exists():
        raise OptionError(f"{run_dir}: a run already exists there; use --resume to continue it or --out for a new one")
    if run_dir.exists():
        if not run_dir.is_dir():
            raise OptionError(f"--out {run_dir}: exists and is not a folder")
        # what `bridgezoo bench` writes before a run starts: its failure record and the job that owns the run
        foreign = [p.name for p in run_dir.iterdir() if p.name not in ("error.txt", "job.json")]
        if foreign:
            raise OptionError(f"--out {run_dir}: the folder exists and holds files bridgezoo did not write "
                              f"({', '.join(sorted(foreign)[:5])}); choose a new or empty folder")


AUXILIARY_PREFIX = "__auxiliary__."  # the auxiliary network's tensors inside model.safetensors


def write_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    """Tensors (moved to the CPU, contiguous) as the safetensors file `path`, atomically (a temporary file, then
    renamed)."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_weights(path: Path, model: torch.nn.Module, cfg: dict, auxiliary: torch.nn.Module | None = None) -> None:
    """EMA weights as safetensors with the full resolved config in the metadata; atomic. A bridge's trained
    auxiliary network is stored beside them (keys prefixed `AUXILIARY_PREFIX`), so the file alone restores."""
    tensors = dict(model.state_dict())
    if auxiliary is not None:
        tensors |= {AUXILIARY_PREFIX + k: v for k, v in auxiliary.state_dict().items()}
    write_tensors(path, tensors, metadata={"format": "bridgezoo-1", "config": json.dumps(cfg)})


def load_model(weights: str | Path, device: str | torch.device | None = "auto"):
    """(bridge, model, config) from a `model.safetensors` written by `bridgezoo run`: nothing else is needed.

    The bridge is rebuilt from the options the run resolved and saved (not today's plugin defaults); `device`:
    "auto" (the GPU if there is one), "cpu", "cuda:1", ... A model whose bridge or backbone plugin is not installed
    names the distribution (and version) that provided it.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ..errors import UnknownNameError

    path = Path(weights)
    if not path.is_file():
        raise OptionError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001
        raise OptionError(f"{path}: not a safetensors file ({exc})") from None
    if meta.get("format") != "bridgezoo-1" or "config" not in meta:
        raise OptionError(f"{path}: no bridgezoo config in its metadata; was it written by `bridgezoo run`?")
    saved = json.loads(meta["config"])
    cfg = RunConfig.from_saved(saved)
    try:
        bridge, model = build_model(cfg, saved.get("bridge_options"), saved.get("task_names"))
    except UnknownNameError as exc:
        kind = "bridge" if f"bridge {cfg.bridge!r}" in str(exc) else "backbone"
        prov = saved.get("providers", {}).get(kind)
        hint = (f" This model was trained with {kind} {getattr(cfg, kind)!r} from distribution "
                f"{prov['distribution']} {prov['version']} (plugin {prov['plugin']!r}); install it "
                f"(pip install '{prov['distribution']}=={prov['version']}') to use this model."
                if prov else " The model does not record which distribution provided it.")
        raise OptionError(f"{path}: {exc}{hint}") from None
    tensors = load_file(str(path))
    aux = {k[len(AUXILIARY_PREFIX):]: tensors.pop(k) for k in [k for k in tensors if k.startswith(AUXILIARY_PREFIX)]}
    spec = bridge.auxiliary()
    if spec is not None:
        if not aux:
            raise OptionError(f"{path}: bridge {cfg.bridge!r} needs its trained auxiliary network, which this file "
                              "lacks")
        network = build_auxiliary(cfg, spec)
        network.load_state_dict(aux)
        bridge.attach_auxiliary(network.to(resolve_device(device)))
    model.load_state_dict(tensors)
    return bridge, model.to(resolve_device(device)).eval(), cfg
