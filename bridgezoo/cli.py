"""The `bridgezoo` command line. Heavy imports (torch, plugins) happen inside the commands, not at --help."""

from __future__ import annotations

import argparse
import json
import sys


def _fmt_relation(rel: dict) -> str:
    kind = rel.get("kind", "none")
    if kind == "none":
        return "none" + (f" ({rel['note']})" if rel.get("note") else "")
    parts = [f"θ={rel.get('theta')}"]
    if rel.get("lam") is not None:
        parts.append(f"λ={rel['lam']:.4g}" if isinstance(rel["lam"], float) else f"λ={rel['lam']}")
    parts.append(f"π={rel.get('pi')}")
    return f"{kind}: " + ", ".join(parts)


def cmd_list(args) -> int:
    import bridgezoo as bz

    from bridgezoo.backbone import backbone_card
    from bridgezoo.registry import registry

    bridges = [bz.get_bridge(name).describe() for name in bz.list_bridges()]
    backbones = []
    for name in bz.list_backbones():
        entry = registry().entry("backbone", name)
        row = {"name": name, "summary": entry.summary, "plugin": entry.plugin}
        example = name + "resnet18" if name.endswith("/") else name
        try:  # counted on the meta device: no weights are allocated, no compute is spent
            row.update(backbone_card(lambda **o: bz.get_backbone(example, **o)), counted_as=example)
        except Exception as exc:  # noqa: BLE001 - a third-party backbone that cannot be counted is still listed
            row.update(params=None, params_thop=None, gmacs=None, input="?", count_error=f"{type(exc).__name__}: {exc}")
        backbones.append(row)
    samplers = bz.sampler_records()
    if args.json:
        print(json.dumps({"bridges": bridges, "samplers": samplers, "backbones": backbones}, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bridges", show_lines=True)
    for col in ("name", "paper", "T", "NFE", "objective", "π", "samplers (first = official)", "relation to (θ, λ, π)"):
        table.add_column(col, overflow="fold")
    for b in bridges:
        table.add_row(b["name"], b["paper"], str(b["T"] or "cont."), str(b["default_nfe"]), b["objective"], b["pi"],
                      ", ".join(b["samplers"]), _fmt_relation(b["relation"]))
    console = Console(width=max(Console().width, 160))
    console.print(table)
    st = Table(title="samplers (--sampler NAME or NAME:KEY=VALUE,...; evaluations per step as counted)", show_lines=True)
    for col in ("name", "for", "order", "deterministic", "evaluations / step", "options", "summary"):
        st.add_column(col, overflow="fold")
    for s in samplers:
        st.add_row(s["name"], s["for"], str(s["order"]), "yes" if s["deterministic"] else "no",
                   str(s["evals_per_step"]), ", ".join(f"{k}={v}" for k, v in s["options"].items()) or "-", s["summary"])
    console.print(st)
    if backbones:
        bt = Table(title="backbones (per network evaluation at 1×C×256×256; thop = what the RDBM paper counts)")
        for col in ("name", "params", "params (thop)", "GMACs @256²", "input", "summary"):
            bt.add_column(col, overflow="fold")
        m = lambda v: "?" if v is None else f"{v / 1e6:.3f}M"  # noqa: E731
        for b in backbones:
            name = b["name"] + (f" (as {b['counted_as']})" if b.get("counted_as", b["name"]) != b["name"] else "")
            gm = "?" if b["gmacs"] is None else f"{b['gmacs']:.1f}"
            bt.add_row(name, m(b["params"]), m(b["params_thop"]), gm, b["input"], b["summary"])
        console.print(bt)
    return 0


def cmd_plugins(args) -> int:
    import bridgezoo as bz

    print(json.dumps(bz.plugin_records(), indent=2))
    return 0


def cmd_data_preview(args) -> int:
    from bridgezoo.data import PairedFolders, Zoo5Eval
    from bridgezoo.data.preview import preview

    if args.data in (None, "zoo5"):
        ds = Zoo5Eval(args.split, tasks=args.tasks, max_side=args.max_side, seed=args.seed)
    else:
        ds = PairedFolders(args.data)
    by_task: dict = {}
    for i in range(len(ds)):
        item = ds[i]
        if args.tasks and args.data not in (None, "zoo5") and item["task"] not in args.tasks:
            continue
        if len(by_task.setdefault(item["task"], [])) < args.per_task:
            by_task[item["task"]].append(item)
    out = preview(by_task, args.out, per_task=args.per_task)
    print(f"wrote {out} ({len(by_task)} task(s): {', '.join(by_task)})")
    return 0


def _key_values(pairs, option):
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"bridgezoo: error: {option} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def cmd_run(args) -> int:
    from bridgezoo.train import RunConfig, run

    backbone_opts = {}
    for key, value in _key_values(args.backbone_opt, "--backbone-opt").items():
        try:
            backbone_opts[key] = json.loads(value)
        except json.JSONDecodeError:
            backbone_opts[key] = value
    cfg = RunConfig(
        bridge=args.bridge, backbone=args.backbone, data=args.data, eval_data=args.eval_data, tasks=args.tasks,
        iters=args.iters, batch=args.batch, patch=args.patch, lr=args.lr, nfe=args.nfe, sampler=args.sampler,
        pi=args.pi, bridge_opts=_key_values(args.bridge_opt, "--bridge-opt"), backbone_opts=backbone_opts,
        mixed_precision=args.mixed_precision, channels_last=args.channels_last, seed=args.seed, preset=args.preset, out=args.out,
        eval_max_side=args.eval_max_side, tile=args.tile, tile_overlap=args.tile_overlap,
        crop_border=args.crop_border, num_workers=args.workers, quiet=args.quiet, save_every=args.save_every,
        log_every=args.log_every, grad_accum=args.grad_accum)
    run(cfg, resume=args.resume)
    return 0


def cmd_restore(args) -> int:
    from pathlib import Path

    import torch
    from tqdm.auto import tqdm

    from bridgezoo.data import DataError, read_image, write_png
    from bridgezoo.data.io import is_image
    from bridgezoo.evaluate import restore, to01
    from bridgezoo.train import load_model

    weights = Path(args.weights) if args.weights else Path(args.run) / "model.safetensors"
    bridge, model, cfg = load_model(weights)
    bridge.get_sampler(args.sampler or cfg.sampler)  # an unknown sampler fails before anything is read or written
    files = []
    for name in args.inputs:
        p = Path(name)
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.is_file() and is_image(q)))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    if not files:
        raise DataError(f"no images found in {', '.join(args.inputs)}")
    images = [(f, read_image(f)) for f in files]  # read (and validate) every input before writing anything
    out = Path(args.out)
    for f, img in tqdm(images, desc="restore", disable=args.quiet):
        lq = torch.from_numpy(img.transpose(2, 0, 1)).float() * 2 - 1
        with torch.no_grad():
            res = restore(bridge, model, lq, nfe=args.nfe or cfg.nfe, sampler=args.sampler or cfg.sampler,
                          tile=args.tile, overlap=args.tile_overlap, seed=args.seed)
        write_png(out / f"{f.stem}.png", to01(res))
    if not args.quiet:
        print(f"restored {len(images)} image(s) with {cfg.bridge}/{cfg.backbone} into {out}")
    return 0


def cmd_bench(args) -> int:
    from bridgezoo.bench import bench, load_grid

    grid = load_grid(args.grid, out=args.out)
    gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
    if gpus is None and args.jobs is None:
        import torch

        n = torch.cuda.device_count()
        gpus = list(range(n)) if n else None
    todo = [r for r in grid.runs if not r.finished]
    if args.dry_run:
        for r in grid.runs:
            print(("done  " if r.finished else "todo  ") + str(r.directory))
        print(f"{len(grid.runs)} runs, {len(todo)} to do")
        return 0
    if not args.quiet:
        where = f"GPUs {gpus}" if gpus else f"{args.jobs or 1} job(s) on CPU"
        print(f"grid {grid.name}: {len(grid.runs)} runs ({len(grid.runs) - len(todo)} finished) in {grid.out}, {where}")
    records = bench(grid, jobs=args.jobs or 1, gpus=gpus, threads=args.threads, quiet=args.quiet,
                    command="bridgezoo bench " + " ".join(sys.argv[2:]))
    failed = [r for r in records.values() if r["status"] == "failed"]
    if not args.quiet:
        print(f"{len(records) - len(failed)} of {len(grid.runs)} runs done; status in {grid.status_file}")
    for r in failed:
        print(f"failed: {r['name']}: {r['error']} (see {r['directory']}/error.txt)", file=sys.stderr)
    return 1 if failed else 0


def cmd_report(args) -> int:
    from bridgezoo.report import build_report

    command = "bridgezoo report " + " ".join(args.runs) + f" --out {args.out}" + (
        f" --title {args.title!r}" if args.title else "")
    info = build_report(args.runs, args.out, command=command, title=args.title)
    print(f"report of {info['runs']} run(s): {len(info['tables'])} tables, {len(info['figures'])} figure files, "
          f"{info['html']}" + (f"; unfinished runs left out: {len(info['unfinished'])}" if info["unfinished"] else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridgezoo",
        description="Train, compare and use diffusion-bridge image-restoration methods under identical settings.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("list", help="bridges (paper, defaults, samplers, relation), samplers and backbones")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="train a bridge on a backbone, evaluate it, write a run directory")
    p.add_argument("--bridge", default="rdbm", help="bridge name (default rdbm; see `bridgezoo list`)")
    p.add_argument("--backbone", default=None, help="backbone (default: unet-L with a GPU, unet-T without)")
    p.add_argument("--data", default="zoo5", help="zoo5 (embedded, default) or a folder of paired images")
    p.add_argument("--eval-data", default=None, help="paired folder to evaluate on (default: DATA/test if present)")
    p.add_argument("--tasks", nargs="+", default=None, help="zoo5 tasks (default: all five, balanced)")
    p.add_argument("--iters", type=int, default=None, help="training iterations (default: from the preset)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--patch", type=int, default=None, help="training patch size")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--nfe", type=int, default=None, help="sampler steps at evaluation (default: the bridge's)")
    p.add_argument("--sampler", default="ddim", help="sampler at evaluation: NAME or NAME:KEY=VALUE,... "
                   "(default ddim, shared by all bridges; see `bridgezoo list`)")
    p.add_argument("--pi", default=None, choices=("zero", "one", "residual"), help="noise modulation π")
    p.add_argument("--bridge-opt", action="append", metavar="KEY=VALUE", help="any bridge option (repeatable)")
    p.add_argument("--backbone-opt", action="append", metavar="KEY=VALUE", help="any backbone option (repeatable)")
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "bf16", "fp16"),
                   help="training autocast (default auto: bf16 on a GPU that supports it, fp32 on CPU); "
                        "sampling and evaluation always run in fp32")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"),
                   help="channels_last memory format (default auto: on with a GPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="auto", choices=("auto", "cpu-small", "paper"))
    p.add_argument("--out", default=None, help="run directory (default runs/BRIDGE-BACKBONE-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved state")
    p.add_argument("--save-every", type=int, default=None)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--eval-max-side", type=int, default=None, help="resize zoo5 evaluation images (default: preset)")
    p.add_argument("--tile", type=int, default=None, help="restore in tiles of this size (large images)")
    p.add_argument("--tile-overlap", type=int, default=32)
    p.add_argument("--crop-border", type=int, default=0, help="pixels removed at each border before metrics")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("restore", help="restore your own images with a trained model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run directory (uses its model.safetensors)")
    src.add_argument("--weights", help="a model.safetensors written by `bridgezoo run`")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--out", required=True, help="folder for the restored PNGs")
    p.add_argument("--nfe", type=int, default=None)
    p.add_argument("--sampler", default=None, help="NAME or NAME:KEY=VALUE,... (default: the run's)")
    p.add_argument("--tile", type=int, default=None)
    p.add_argument("--tile-overlap", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_restore)
    p = sub.add_parser("data", help="look at data: `bridgezoo data preview`")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = dsub.add_parser("preview", help="a grid of LQ/GT pairs per task, written as PNG")
    p.add_argument("--data", default="zoo5", help="zoo5 (default) or a folder of paired images")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks to show (default: all)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="zoo5 split (default test)")
    p.add_argument("--per-task", type=int, default=3, help="pairs per task (default 3)")
    p.add_argument("--max-side", type=int, default=256, help="resize zoo5 images to this long side (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(func=cmd_data_preview)
    p = sub.add_parser("bench", help="run a grid of runs (GRID.toml); skips finished, resumes unfinished")
    p.add_argument("grid", help="grid file (TOML; see benchmarks/grids/)")
    p.add_argument("--out", default=None, help="run directories go here (default: the grid's `out`)")
    p.add_argument("--jobs", type=int, default=None, help="runs at a time on CPU (default 1)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: cores / jobs)")
    p.add_argument("--gpus", default=None, help="comma-separated GPU ids, one run at a time on each "
                   "(default: every visible GPU)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and whether they are done")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("report", help="tables, figures and index.html from run directories or grid files")
    p.add_argument("runs", nargs="+", metavar="RUNS", help="run directories, folders of runs, or grid files")
    p.add_argument("--out", required=True, help="report folder, e.g. reports/NAME")
    p.add_argument("--title", default=None)
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("plugins", help="every plugin found, with its hooks, what it provides and its error (JSON)")
    p.set_defaults(func=cmd_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .errors import BridgezooError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("bridgezoo: interrupted", file=sys.stderr)
        return 130
    except BridgezooError as exc:
        print(f"bridgezoo: error: {exc}", file=sys.stderr)
        return 1 if type(exc).__name__ == "TrainingError" else 2


if __name__ == "__main__":
    sys.exit(main())
