"""Experiment tracking through accelerate's trackers: TensorBoard, Weights & Biases, MLflow (`--log-with`).

Optional (`pip install "bridgezoo[tracking]"`): nothing here is imported on the default path, and a tracker that is
asked for but not installed is an error raised before anything is written.

What a run logs (one entry per `--log-every` steps, the same numbers as `train.jsonl`): `train/loss`,
`train/probe_loss`, `train/lr`, `train/it_per_s`; at the end, the evaluation (`eval/psnr`, `eval/ssim`,
`eval/psnr_y`, `eval/ssim_y`, `eval/gain_psnr`, `eval/lpips` when available, `eval/seconds_per_image`,
`eval/input/<metric>` for the degraded input and `eval/<task>/<metric>` per task) at the last training step, and
the evaluation's sample images (LQ, output, GT). The resolved run configuration is stored as hyper-parameters
(nested options flattened to `bridge_options/lam`-style keys).

Where things go: TensorBoard event files in `RUN/tensorboard/`; W&B in its project `bridgezoo` (or
`$WANDB_PROJECT`), run named after the run directory, its files in `RUN/wandb/` (`WANDB_MODE=offline` works);
MLflow in experiment `bridgezoo` (or `$MLFLOW_EXPERIMENT_NAME`) at `$MLFLOW_TRACKING_URI`. The W&B run id and
the MLflow run id are kept in `RUN/trackers.json`, so a resumed run (`--resume`, or a requeued grid job) goes on
logging into the same tracker run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from pathlib import Path

from ..errors import BridgezooError, OptionError, suggest

# tracker name -> the module it needs
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
PROJECT = "bridgezoo"


class TrackingError(BridgezooError):
    """A tracker that is installed but cannot start (no W&B login, an unusable MLflow tracking URI)."""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def parse_log_with(value, option: str = "--log-with") -> list[str]:
    """The tracker names of a `--log-with` value ("tensorboard", "wandb,mlflow", "all", a list, or None).

    "all" is every one of tensorboard, wandb and mlflow that is installed. A name that is unknown, or whose package
    is missing, raises OptionError naming the option and the package to install.
    """
    if value in (None, "", [], "none"):
        return []
    names = [n.strip().lower() for n in (value.split(",") if isinstance(value, str) else value)]
    for name in names:
        if name != "all" and name not in TRACKERS:
            raise OptionError(f"{option} {name!r}: unknown tracker.{suggest(name, TRACKERS)} "
                              f"Choose from {', '.join(TRACKERS)}, all (comma-separated for several)")
    if "all" in names:
        found = [n for n in TRACKERS if _installed(TRACKERS[n])]
        if not found:
            raise OptionError(f"{option} all: none of {', '.join(TRACKERS)} is installed; "
                              "pip install 'bridgezoo[tracking]'")
        return found
    for name in names:
        if not _installed(TRACKERS[name]):
            raise OptionError(f"{option} {name}: the {TRACKERS[name]!r} package is not installed; "
                              f"pip install 'bridgezoo[tracking]' (or pip install {TRACKERS[name]})")
    return list(dict.fromkeys(names))


def flatten_config(config: dict, prefix: str = "") -> dict:
    """Hyper-parameters as scalars: nested dicts become `outer/inner` keys, lists JSON text, None the text "None"."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{name}/"))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)
        elif value is None:
            flat[name] = "None"
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def eval_scalars(summary: dict, prefix: str = "eval") -> dict:
    """The numbers of an evaluation summary (`summary.json`) as flat tracker scalars."""
    from ..metrics import REFERENCE_METRICS as metrics, REGISTRY

    values = {f"{prefix}/{m}": summary["overall"][m] for m in metrics}
    values |= {f"{prefix}/input/{m}": summary["input"][m] for m in metrics}
    for task, scores in summary.get("per_task", {}).items():
        values |= {f"{prefix}/{task}/{m}": scores[m] for m in metrics}
    for key in ("gain_psnr", "seconds_per_image", *(m.name for m in REGISTRY if m.kind == "learned")):
        if summary.get(key) is not None:
            values[f"{prefix}/{key}"] = summary[key]
    return values


def sample_triples(samples_dir: Path) -> dict[str, list]:
    """{image name: [LQ, output, GT] as uint8 H×W×3 arrays} from the `samples/` folder `evaluate` writes."""
    import numpy as np

    from ..data import read_image

    triples = {}
    for gt in sorted(Path(samples_dir).glob("*_gt.png")):
        stem = gt.name[: -len("_gt.png")]
        files = [gt.with_name(f"{stem}_{tag}.png") for tag in ("lq", "output", "gt")]
        if all(f.exists() for f in files):
            triples[stem] = [(read_image(f) * 255 + 0.5).astype(np.uint8) for f in files]
    return triples


class RunTracker:
    """The trackers of one run, driven from `bridgezoo.run.run`; every method is a no-op when no tracker was asked for.

    Build it before the Accelerator (it validates `log_with` and makes the tracker objects), pass `trackers` as the
    Accelerator's `log_with`, then `start`, `log_train`, `log_eval`, `finish`.
    """

    def __init__(self, log_with, run_dir: str | Path):
        self.names = parse_log_with(log_with)
        self.run_dir = Path(run_dir)
        self.accelerator = None
        self.ids = self._saved_ids()
        self.trackers = [self._make(name) for name in self.names]

    def _saved_ids(self) -> dict:
        path = self.run_dir / "trackers.json"
        try:
            return json.loads(path.read_text()) if path.exists() else {}
        except json.JSONDecodeError:
            return {}

    def _make(self, name: str):
        from accelerate import tracking

        if name == "tensorboard":
            return tracking.TensorBoardTracker("tensorboard", self.run_dir)
        if name == "wandb":
            self.ids.setdefault("wandb_id", uuid.uuid4().hex[:16])
            return tracking.WandBTracker(os.environ.get("WANDB_PROJECT", PROJECT), name=self.run_dir.name,
                                         id=self.ids["wandb_id"], resume="allow", dir=str(self.run_dir))
        return tracking.MLflowTracker(experiment_name=PROJECT, run_id=self.ids.get("mlflow_run_id"),
                                      run_name=self.run_dir.name)

    def start(self, accelerator, config: dict) -> None:
        """Open the tracker runs and store the resolved configuration as hyper-parameters (main process only)."""
        if not self.trackers:
            return
        self.accelerator = accelerator
        try:
            accelerator.init_trackers(PROJECT, config=flatten_config(config))
        except Exception as exc:  # noqa: BLE001 - a tracker's own setup error (login, backend URI), named
            self.accelerator = None
            raise TrackingError(f"--log-with {','.join(self.names)}: a tracker could not start "
                                f"({type(exc).__name__}: {exc})") from exc
        if accelerator.is_main_process:
            from .evaluate import atomic_write_text

            for tracker in accelerator.trackers:
                if tracker.name == "tensorboard":
                    self.ids["tensorboard_dir"] = str(tracker.logging_dir)
                elif tracker.name == "mlflow":
                    self.ids["mlflow_run_id"] = tracker.active_run.info.run_id
            atomic_write_text(self.run_dir / "trackers.json", json.dumps(self.ids | {"trackers": self.names}, indent=2))

    def log_train(self, record: dict) -> None:
        """One `train.jsonl` record ({"step", "loss", "probe_loss", "lr", "it_per_s"}) as `train/...` scalars."""
        if self.accelerator is not None:
            self.accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=record["step"])

    def log_eval(self, summary: dict, step: int) -> None:
        """The evaluation's metrics (overall, input, per task) and its sample images, at training step `step`."""
        if self.accelerator is None or not summary or not self.accelerator.is_main_process:
            return
        self.accelerator.log(eval_scalars(summary), step=step)
        triples = sample_triples(self.run_dir / "samples")
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                import numpy as np

                tracker.log_images({f"samples/{k}": np.stack(v) for k, v in triples.items()}, step=step,
                                   dataformats="NHWC")
            elif tracker.name == "wandb":
                tracker.log_images({f"samples/{k}": v for k, v in triples.items()}, step=step)
            elif tracker.name == "mlflow" and (self.run_dir / "samples").is_dir():
                tracker.log_artifacts(str(self.run_dir / "samples"), "samples")

    def finish(self) -> None:
        """Close the tracker runs (flushes TensorBoard, ends the W&B and MLflow runs)."""
        if self.accelerator is not None:
            for tracker in self.accelerator.trackers:
                tracker.finish()
            self.accelerator = None
