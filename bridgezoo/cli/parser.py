"""The `bridgezoo` argument parser: one subcommand per job; `run`'s options are generated from the declared table
(`bridgezoo.run.options.RunConfig`). No torch import: `--help` is instant."""

from __future__ import annotations

import argparse
import textwrap

from ..run.options import EVAL_PRECISIONS, NFE_DEPRECATED, DeprecatedAlias, add_arguments
from .compare import cmd_bench, cmd_report
from .data import cmd_data_check, cmd_data_list, cmd_data_preview
from .listing import cmd_list, cmd_plugins
from .running import cmd_restore, cmd_run


def _steps_option(p: argparse.ArgumentParser, what: str) -> None:
    """--steps K (and its deprecated spelling --nfe): the sampler's steps, i.e. the intervals of its time grid."""
    p.add_argument("--steps", "--nfe", dest="steps", type=int, metavar="K", default=None, action=DeprecatedAlias,
                   warnings={"--nfe": NFE_DEPRECATED},
                   help=f"{what}; the network evaluations they cost depend on the sampler (a Heun step is two, "
                        "`bridgezoo list`) and are counted into eval.csv's evaluations column. --nfe: the "
                        "deprecated name of --steps")


def _run_epilog() -> str:
    from ..presets import describe_presets

    return (textwrap.fill("presets (--preset; an option given on the command line wins; warmup: iterations of the "
                          "learning rate's linear warm-up; ema_decay: of the EMA model that is evaluated and saved):",
                          78) + "\n" + describe_presets(78)
            + "\n\nexamples:\n  bridgezoo run --bridge rdbm --backbone unet-T\n"
              "  bridgezoo run --bridge goub --pi residual --iters 200 --out runs/goub-res\n"
              "  bridgezoo run --bridge fm --bridge-opt sigma=0.05 --data my_pairs/ --steps 20")


def _command(sub, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand whose description is wrapped to 78 columns and whose epilog keeps its own lines."""
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 78), epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridgezoo",
        description="Train, compare and use diffusion-bridge image-restoration methods under identical settings.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("list", help="bridges (paper, defaults, samplers, relation), samplers and backbones")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
    p = _command(sub, "run", "train a bridge on a backbone, evaluate it, write a run directory",
                 "Train a bridge on a backbone, evaluate its EMA model and write a run directory (config.json, "
                 "train.jsonl, eval.csv, summary.json, model.safetensors, samples/, state/). Bad options and bad "
                 "data fail before anything is written.", _run_epilog())
    add_arguments(p)  # every RunConfig field, declared once in bridgezoo.run.options
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved state")
    p.set_defaults(func=cmd_run)
    p = _command(sub, "restore", "restore your own images with a trained model",
                 "Restore your own degraded images (any size) with a model trained by `bridgezoo run`. The weights "
                 "file holds the full config, so nothing else from the run is needed.",
                 "example:\n  bridgezoo restore --run runs/rdbm-unet-T-s0 photos/ extra.jpg --out restored/")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run directory written by `bridgezoo run` (uses its model.safetensors)")
    src.add_argument("--weights", help="a model.safetensors written by `bridgezoo run` (the config is inside it)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files or folders of images (PNG, JPEG, BMP, TIFF; any size)")
    p.add_argument("--out", required=True, help="folder for the restored images, written as PNG")
    _steps_option(p, "sampler steps (default: the steps the run was evaluated at, else the bridge's default)")
    p.add_argument("--sampler", default=None,
                   help="NAME or NAME:KEY=VALUE,... (default: the run's evaluation sampler); `bridgezoo list` "
                        "shows each bridge's")
    p.add_argument("--tile", type=int, metavar="SIZE", default=None,
                   help="restore in overlapping tiles of SIZE×SIZE pixels; 0: always whole images (default: whole "
                        "images where they fit in the device's free memory, else the largest tiles that do, said "
                        "in one line)")
    p.add_argument("--tile-overlap", type=int, metavar="PIXELS", default=32,
                   help="pixels shared by neighbouring tiles, blended linearly; smaller than --tile (default 32)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampler's noise (stochastic samplers), so a restore is repeatable (default 0)")
    p.add_argument("--precision", default="fp32", choices=EVAL_PRECISIONS,
                   help="the sampling arithmetic: fp32 (default, exact: TF32 off on a GPU), tf32, or bf16 autocast")
    p.add_argument("--device", default="auto",
                   help="where to run: auto (the GPU if there is one, default), cpu, cuda, cuda:1, ...")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--overwrite", action="store_true",
                      help="replace output files that exist already (default: refuse before restoring anything)")
    keep.add_argument("--skip-existing", action="store_true",
                      help="resume an interrupted restore: skip the outputs this same restore (same inputs, weights "
                           "and settings, recorded in each PNG) wrote already; any other existing output is still "
                           "refused")
    p.add_argument("--task", default=None,
                   help="the task of the inputs, for a model trained with --task-conditioned (e.g. derain)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=cmd_restore)
    p = sub.add_parser("data", help="look at data: `bridgezoo data list | check NAME:PATH | preview`")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = dsub.add_parser("preview", help="a grid of LQ/GT pairs per task, written as PNG")
    p.add_argument("--data", default="zoo5", help="zoo5 (default), a folder of paired images, or NAME:PATH")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks to show (default: all)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="zoo5 split (default test)")
    p.add_argument("--per-task", type=int, default=3, help="pairs per task (default 3)")
    p.add_argument("--max-side", type=int, default=256, help="resize zoo5 images to this long side (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the zoo5 degradations (default 0)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(func=cmd_data_preview)
    p = dsub.add_parser("list", help="registered datasets: tasks, splits, official pair counts, metric convention")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_data_list)
    p = dsub.add_parser("check", help="a dataset on disk against its official splits: found vs expected per split, "
                        "missing folders, unpaired files, wrong counts (exit 1 on any error)")
    p.add_argument("spec", metavar="NAME:PATH", help="e.g. lol:/data/LOL or universal5:/data/Restoration")
    p.add_argument("--deep", action="store_true", help="also decode every image and compare the pair sizes (slow)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_data_check)
    p = sub.add_parser("bench", help="run a grid of runs (GRID.toml); skips finished, resumes unfinished")
    p.add_argument("grid", help="grid file (TOML; see benchmarks/grids/)")
    p.add_argument("--out", default=None, help="run directories go here (default: the grid's `out`)")
    p.add_argument("--jobs", type=int, default=None, help="runs at a time on CPU (default 1)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: cores / jobs)")
    p.add_argument("--gpus", default=None, help="comma-separated GPU ids, one run at a time on each "
                   "(default: every visible GPU)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether they are done")
    p.add_argument("--launcher", default="local", choices=("local", "submitit"),
                   help="local (default): a pool of processes on this machine; submitit: one SLURM job per run "
                        "(a job array; the grid's [launcher] table), requeued and resumed at time limits")
    p.add_argument("--launcher-opt", action="append", metavar="KEY=VALUE",
                   help="override a [launcher] key for --launcher submitit, e.g. partition=gpu (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress lines (failures are still printed)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("report", help="tables, figures and index.html from run directories or grid files")
    p.add_argument("runs", nargs="*", metavar="RUNS", help="run directories, folders of runs, or grid files")
    p.add_argument("--out", required=True, help="report folder, e.g. reports/NAME")
    p.add_argument("--title", default=None, help="the page's title (default: the folder's name)")
    p.add_argument("--rebuild", action="store_true", help="render --out's tables, figures and index.html again "
                   "from the data it holds (results_per_run.csv, ...), without the run directories")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("plugins", help="every plugin found, with its hooks, what it provides and its error (JSON)")
    p.set_defaults(func=cmd_plugins)
    return parser
