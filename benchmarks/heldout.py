"""A trained run on photographs outside its test split: zoo5's `val` photograph (motorcycle_right, never trained on)
degraded with every task, restored and scored exactly as `bridgezoo run` scores its test split.

    python benchmarks/heldout.py runs/rdbm-unet-T-s0 --out /tmp/heldout     # seconds on 2 CPU cores

Prints the overall and per-task PSNR against the degraded inputs (dB, RGB, 8-bit) and writes OUT/summary.json,
OUT/eval.csv and OUT/samples/ as a run's evaluation does. `--variants` degradations per photograph and task.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from bridgezoo.data import Zoo5Eval
from bridgezoo.run.evaluate import evaluate
from bridgezoo.run import load_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a run directory of `bridgezoo run` on zoo5")
    p.add_argument("--split", default="val", help="zoo5 split to restore (default val: photographs never trained on)")
    p.add_argument("--variants", type=int, default=4, help="degradations per photograph and task (default 4)")
    p.add_argument("--out", required=True, help="folder for summary.json, eval.csv and samples/")
    args = p.parse_args(argv)
    bridge, model, cfg = load_model(Path(args.run) / "model.safetensors", device="cpu")
    data = Zoo5Eval(args.split, tasks=cfg.tasks, variants=args.variants, seed=cfg.eval_seed, max_side=cfg.eval_max_side)
    s = evaluate(bridge, model, data, Path(args.out), nfe=cfg.nfe, sampler=cfg.sampler, seed=cfg.seed, quiet=True)
    rows = pd.read_csv(Path(args.out) / "eval.csv").groupby("task")[["psnr", "input_psnr"]].mean()
    result = {"split": args.split, "images": s["images"], "psnr": s["overall"]["psnr"], "input_psnr": s["input"]["psnr"],
              "gain": s["gain_psnr"], "per_task": rows.round(2).to_dict("index")}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
