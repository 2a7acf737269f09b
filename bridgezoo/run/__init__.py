"""One run of `bridgezoo run`, in the order it happens:

- `options`  the declared option table (`RunConfig`): flags, help, choices, roles; the CLI, the resume check, the
             grid hash and the report's grouping derive from it (no torch import); `RunConfig.resolve` fills
             the presets and `auto` values and checks every declared choice and bound
- `build`    check once and build once: the bridge (exercised), sampler, backbone, data source; the network
- `stream`   the datasets and the (seed, step)-determined stream of training batches
- `loop`     the one training loop (also stage 1 of a two-stage bridge, and benchmarks/regression_ceiling.py)
- `auxiliary` stage 1: a two-stage bridge's auxiliary network
- `rundir`   the run directory: its checks, the pickle-free resumable state, the weights, `load_model`
- `runner`   `run()`: all of the above, then the evaluation (`evaluate_run`)
- `evaluate` restoring (whole or tiled) and scoring a test set; `tracking` the experiment trackers;
             `conditioning` a network told each image's task

Names are imported lazily, so `from bridgezoo.run import RunConfig` (and `bridgezoo run --help`) does not import
torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "RunConfig": "options", "flag": "options", "training_settings": "options", "resume_conflicts": "options",
    "TRAINING": "options", "EVALUATION": "options", "BOOKKEEPING": "options",
    "default_workers": "options",
    "PluginCheckError": "build", "exercise_bridge": "build", "check_config": "build", "saved_config": "build",
    "build_bridge": "build", "build_model": "build", "build_auxiliary": "build", "dataset_tasks": "build",
    "check_eval_tasks": "build", "providers": "build", "resolve_device": "build", "package_versions": "build",
    "make_datasets": "stream", "describe_data": "stream", "Batches": "stream", "batch_indices": "stream",
    "batch_to_device": "stream", "collate": "stream", "draw_item": "stream", "ZOO5_EVAL_VARIANTS": "stream",
    "TrainingError": "loop", "lr_lambda": "loop", "train_loop": "loop", "optimizer_and_schedule": "loop",
    "backbone_of": "loop", "compile_backbone": "loop", "set_training_precision": "loop",
    "train_auxiliary": "auxiliary",
    "save_weights": "rundir", "load_model": "rundir", "AUXILIARY_PREFIX": "rundir", "save_state": "rundir",
    "load_state": "rundir", "state_dir": "rundir", "check_run_dir": "rundir",
    "run": "runner", "evaluate_run": "runner", "FIRST_COMMAND": "runner", "low_gain_hint": "runner",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'bridgezoo.run' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
