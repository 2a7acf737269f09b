"""The training presets of `bridgezoo run --preset` (no heavy imports: `bridgezoo run --help` shows them).

A preset fills every run option left unset; an option given on the command line wins. `auto` is `paper` with a
GPU and `cpu-small` without.
"""

import textwrap

# Device-dependent defaults of options a preset does not set (`RunConfig.resolve`): data-loading workers per
# training process and images sampled at once at evaluation, with a GPU / on CPU (reports/gpu-h200,
# reports/data-throughput-cpu).
GPU_DEFAULTS = {"num_workers": 8, "eval_batch": 16}
# `--compile auto` compiles GPU runs of at least this many iterations: on an H200, unet-L at 256² / batch 16 trains
# at 13.46 it/s compiled against 6.21 in bf16 eager, and the first compiled step takes 121 s, so compiling pays
# after ~1400 iterations (reports/gpu-h200)
COMPILE_MIN_ITERS = 2000
CPU_DEFAULTS = {"num_workers": 0, "eval_batch": 1}

PRESETS = {
    # Under 10 minutes on 2 CPU cores (see the README's "The main job, measured"): zoo5 at 96 px, 48² patches.
    # Many small steps beat few large ones at this budget (reports/regression-ceiling-cpu: batch 2 × 5000 +3.85 dB,
    # batch 4 × 3000 +3.77, batch 8 × 1800 +3.59 for a direct regressor in about the same time).
    "cpu-small": {"backbone": "unet-T", "iters": 4000, "batch": 2, "patch": 48, "lr": 2e-3, "warmup": 50,
                  "ema_decay": 0.99, "eval_max_side": 96, "save_every": 500},
    # The RDBM lineage's scale (DiffUIR / DGSolver train.py: 256² crops, batch 10, lr 8e-5, 300k steps; RDDM EMA 0.995).
    "paper": {"backbone": "unet-L", "iters": 300000, "batch": 10, "patch": 256, "lr": 8e-5, "warmup": 1000,
              "ema_decay": 0.995, "eval_max_side": None, "save_every": 5000},
}


def describe_presets(width: int = 78) -> str:
    """`name  key value, ...` per preset, wrapped to `width` columns, for help texts (None shown as 'full size')."""
    name_width = max(map(len, PRESETS))
    return "\n".join(
        textwrap.fill(", ".join(f"{k} {'full size' if v is None else v}" for k, v in values.items()), width,
                      initial_indent=f"  {name:<{name_width}}  ", subsequent_indent=" " * (name_width + 4))
        for name, values in PRESETS.items())
