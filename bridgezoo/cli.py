"""The `bridgezoo` command line. Heavy imports (torch, plugins) happen inside the commands, not at --help."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap


def _fmt_relation(rel: dict) -> str:
    kind = rel.get("kind", "none")
    if kind == "none":
        return "none" + (f" ({rel['note']})" if rel.get("note") else "")
    parts = [f"θ={rel.get('theta')}"]
    if rel.get("lam") is not None:
        parts.append(f"λ={rel['lam']:.4g}" if isinstance(rel["lam"], float) else f"λ={rel['lam']}")
    parts.append(f"π={rel.get('pi')}")
    return f"{kind}: " + ", ".join(parts)


def _fmt_options(options: dict) -> str:
    """The resolved options not shown in a column of their own, compact: `key=value` with floats to 4 digits."""
    shown = ("T", "objective", "pi")
    fmt = lambda v: (f"{v:.4g}" if isinstance(v, float)  # noqa: E731
                     else json.dumps(list(v), separators=(",", ":")) if isinstance(v, (tuple, list)) else str(v))
    return " ".join(f"{k}={fmt(v)}" for k, v in options.items() if k not in shown)


def _backbone_option_legend(backbones, width: int) -> str:
    """What each backbone option means (the backbones' declared help), once per option; an option whose meaning
    differs between families names them (`dim (timm-unet/)`), wrapped to `width` columns."""
    meanings: dict = {}  # key -> {help: families}
    for b in backbones:
        family = b["name"] if b["name"].endswith("/") else b["name"].split("-")[0]
        for key, text in b["option_help"].items():
            meanings.setdefault(key, {}).setdefault(text, set()).add(family)
    lines = ["backbone options:"]
    for key, texts in meanings.items():
        for text, families in texts.items():
            label = key + (f" ({', '.join(sorted(families))})" if len(texts) > 1 else "")
            lines.append(textwrap.fill(f"{label}: {text}", width, initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


def cmd_list(args) -> int:
    import bridgezoo as bz

    from bridgezoo.backbone import backbone_card
    from bridgezoo.registry import backbone_option_spec, registry

    bridges = [bz.get_bridge(name).describe() for name in bz.list_bridges()]
    backbones = []
    for name in bz.list_backbones():
        entry = registry().entry("backbone", name)
        spec = backbone_option_spec(name) or {}
        row = {"name": name, "summary": entry.summary, "plugin": entry.plugin,
               "options": {k: o.default for k, o in spec.items()}, "option_help": {k: o.help for k, o in spec.items()}}
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

    width = Console().width  # the terminal's; COLUMNS when set; 80 when the output is not a terminal
    m = lambda v: "?" if v is None else f"{v / 1e6:.3f}M"  # noqa: E731
    sections = [
        ("bridges (--bridge NAME; --bridge-opt KEY=VALUE sets an option)", [(b["name"], {
            "paper": b["paper"], "T": str(b["T"] or "cont."), "steps": str(b["default_nfe"]),
            "objective": b["objective"], "π": b["pi"], "samplers (first = official)": ", ".join(b["samplers"]),
            "relation to (θ, λ, π)": _fmt_relation(b["relation"]), "other options": _fmt_options(b["options"]),
        }) for b in bridges]),
        ("samplers (--sampler NAME or NAME:KEY=VALUE,...; evaluations per step as counted)", [(s["name"], {
            "for": s["for"], "order": str(s["order"]), "deterministic": "yes" if s["deterministic"] else "no",
            "evaluations / step": str(s["evals_per_step"]),
            "options": ", ".join(f"{k}={v}" for k, v in s["options"].items()) or "-", "summary": s["summary"],
        }) for s in samplers]),
        ("backbones (--backbone NAME; per network evaluation at 1×C×256×256; thop = what the RDBM paper counts)", [(
            b["name"] + (f" (as {b['counted_as']})" if b.get("counted_as", b["name"]) != b["name"] else ""), {
                "params": m(b["params"]), "params (thop)": m(b["params_thop"]),
                "GMACs @256²": "?" if b["gmacs"] is None else f"{b['gmacs']:.1f}", "input": b["input"],
                "options (--backbone-opt)": _fmt_options(b["options"]) or "-", "summary": b["summary"],
            }) for b in backbones]),
    ]
    if width >= 150:  # a wide terminal: one table per section, one row per item
        from rich.table import Table

        console = Console()
        for title, rows in sections:
            table = Table(title=title, show_lines=True)
            for col in ("name", *rows[0][1]) if rows else ():
                table.add_column(col, overflow="fold")
            for name, cells in rows:
                table.add_row(name, *cells.values())
            console.print(table)
    else:  # narrow, or not a terminal (a pipe, a log): plain text, one block of `key  value` lines per item
        print("\n\n".join(_plain_section(title, rows, width) for title, rows in sections))
    if backbones:
        print(_backbone_option_legend(backbones, min(width, 150)))
    return 0


def _plain_section(title: str, rows: list, width: int) -> str:
    """A section of `bridgezoo list` as plain text fitting `width` columns: the title, then per item its name and
    one `key  value` line per cell, values wrapped under themselves (no box drawing, no columns to squeeze)."""
    lines = [textwrap.fill(title, width), ""]
    for name, cells in rows:
        lines.append(name)
        pad = 2 + max(map(len, cells)) + 2
        for key, value in cells.items():
            wrapped = textwrap.wrap(value, max(20, width - pad), break_on_hyphens=False) or [""]
            lines.append(f"  {key:<{pad - 4}}  {wrapped[0]}")
            lines += [" " * pad + more for more in wrapped[1:]]
    return "\n".join(lines)


def cmd_plugins(args) -> int:
    import bridgezoo as bz

    print(json.dumps(bz.plugin_records(), indent=2))
    return 0


def cmd_data_preview(args) -> int:
    from bridgezoo.data import open_data
    from bridgezoo.data.preview import preview

    data = open_data(args.data or "zoo5")
    options = {"zoo5": {"split": args.split, "max_side": args.max_side, "seed": args.seed, "tasks": args.tasks},
               "dataset": {"limit": args.per_task, "tasks": args.tasks},
               "folder": {"eval_root": data.root}}[data.kind]  # a folder: every pair under it, test/ or not
    ds = data.evaluation_set(**options)
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


def cmd_data_list(args) -> int:
    import bridgezoo as bz

    rows = []
    for name in bz.list_datasets():
        adapter = bz.get_dataset(name)
        rows += [r | {"summary": adapter.summary, "layouts": adapter.layouts} for r in adapter.describe()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="datasets (--data NAME:PATH; bridgezoo data check NAME:PATH)", show_lines=False)
    for col in ("dataset", "task", "split", "role", "expected pairs", "metric", "evaluated", "source"):
        table.add_column(col, overflow="fold")
    last = None
    for r in rows:
        first = r["dataset"] != last
        last = r["dataset"]
        table.add_row(r["dataset"] if first else "", r["task"], r["split"],
                      r["role"] + ("" if r["required"] else " (optional)"),
                      "?" if r["expected"] is None else str(r["expected"]), {"y": "Y", "rgb": "RGB"}.get(r["metric"], "no GT: NIQE"),
                      ("yes" if r["evaluated"] else "on request") if r["role"] == "test" else "", r["source"])
    console = Console(width=max(Console().width, 160))
    console.print(table)
    for name in bz.list_datasets():
        adapter = bz.get_dataset(name)
        console.print(f"[bold]{name}[/bold]: {adapter.summary}. Layouts: {adapter.layouts}", highlight=False)
    return 0


def cmd_data_check(args) -> int:
    from bridgezoo.data import DataError, open_data

    data = open_data(args.spec)
    if data.kind != "dataset":
        raise DataError(f"{args.spec}: give a registered dataset as NAME:PATH (`bridgezoo data list` lists them)")
    report = data.adapter.check(data.root, deep=args.deep)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _key_values(pairs, option):
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"bridgezoo: error: {option} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _json_values(pairs, option):
    """`_key_values` with each value read as JSON where it is JSON (numbers, booleans, lists), else kept as text."""
    out = {}
    for key, value in _key_values(pairs, option).items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _run_settings(namespace) -> dict:
    """The RunConfig fields among the parsed `bridgezoo run` options: each field's option is `preflight.flag`."""
    import dataclasses

    from bridgezoo.preflight import flag
    from bridgezoo.train import RunConfig

    dests = {flag(f.name)[2:].replace("-", "_"): f.name for f in dataclasses.fields(RunConfig)}
    parse = {"bridge_opt": lambda v: _key_values(v, "--bridge-opt"),
             "backbone_opt": lambda v: _json_values(v, "--backbone-opt")}
    return {dests[d]: parse.get(d, lambda v: v)(v) for d, v in vars(namespace).items() if d in dests}


def cmd_run(args) -> int:
    """A new run from the given options and the defaults, or (--resume) the saved run with only the options
    given explicitly on the command line, which must agree with the saved ones."""
    from pathlib import Path

    from bridgezoo.preflight import saved_config
    from bridgezoo.train import RunConfig, run

    given = _run_settings(args)
    if not args.resume:
        run(RunConfig(**given), resume=False)
        return 0
    explicit = _run_settings(args.explicit)
    out = explicit.get("out") or RunConfig(**given).resolve(_has_gpu()).out
    saved = saved_config(Path(out))
    run(RunConfig.from_saved(saved, **(explicit | {"out": out})), resume=True)
    return 0


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def restore_targets(inputs, out) -> list[tuple]:
    """[(input file, output PNG)] for files and folders (searched recursively, hidden entries skipped).

    A folder's images keep their path relative to it under `out`; a file given alone goes to `out/STEM.png`.
    Where two inputs would share an output, the name of the folder they were found in (`x/flower.png`,
    `y/flower.png`) and then their extension (`a_png.png`, `a_jpg.png`) tell them apart; what still clashes is an
    error, raised before anything is written.
    """
    from pathlib import Path

    from bridgezoo.data import DataError
    from bridgezoo.data.io import is_image

    found = []  # (file, relative path without suffix, name of the folder it was given in or found in)
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.is_file() and is_image(q)
                           and not any(part.startswith(".") for part in q.relative_to(p).parts))
            found += [(q, q.relative_to(p).with_suffix(""), p.resolve().name) for q in files]
        elif p.is_file():
            found.append((p, Path(p.stem), p.resolve().parent.name))
        else:
            raise DataError(f"{p}: no such file or folder")
    if not found:
        raise DataError(f"no images found in {', '.join(map(str, inputs))}")

    def clashes(names):
        count: dict = {}
        for n in names:
            count[n] = count.get(n, 0) + 1
        return {n for n, c in count.items() if c > 1}

    names = [rel for _, rel, _ in found]
    same = clashes(names)
    folders_of = {n: {folder for (_, _, folder), m in zip(found, names) if m == n} for n in same}
    names = [Path(folder) / n if n in same and len(folders_of[n]) > 1 else n for (_, _, folder), n in zip(found, names)]
    same = clashes(names)
    names = [n.with_name(f"{n.name}_{f.suffix[1:].lower()}") if n in same else n for (f, _, _), n in zip(found, names)]
    same = clashes(names)
    if same:
        listing = "; ".join(", ".join(str(f) for (f, _, _), n in zip(found, names) if n == s) for s in sorted(same))
        raise DataError(f"these inputs would be written to the same output file: {listing}; restore them separately")
    return [(f, Path(out) / n.with_name(n.name + ".png")) for (f, _, _), n in zip(found, names)]


STAMP_KEY = "bridgezoo-restore"  # the PNG text chunk that marks an output of `bridgezoo restore`


def restore_stamp(source, weights_sha256: str, **settings) -> str:
    """What an output of `restore` records about how it was made (JSON, in its PNG text chunk STAMP_KEY): the input
    file (resolved path and size), the weights (SHA-256 of the file) and every setting that changes the pixels.
    `--skip-existing` skips an existing output only when its stamp equals the one it would write."""
    from pathlib import Path

    source = Path(source).resolve()
    return json.dumps({"input": str(source), "input_bytes": source.stat().st_size, "weights_sha256": weights_sha256,
                       **settings}, sort_keys=True)


def cmd_restore(args) -> int:
    import hashlib
    from pathlib import Path

    import torch
    from tqdm.auto import tqdm

    from bridgezoo.conditioning import set_tasks, task_names
    from bridgezoo.data import DataError, read_image, write_png
    from bridgezoo.data.io import png_text
    from bridgezoo.evaluate import restore, to01
    from bridgezoo.memory import NotEnoughMemory, out_of_memory
    from bridgezoo.progress import tqdm_disable
    from bridgezoo.train import load_model, resolve_device

    if args.steps is not None and args.steps < 1:
        raise DataError(f"--steps must be at least 1, got {args.steps}")
    if args.tile is not None and args.tile < 0:
        raise DataError(f"--tile must be a size in pixels, or 0 for whole images; got {args.tile}")
    if args.tile and not 0 <= args.tile_overlap < args.tile:
        raise DataError(f"--tile-overlap ({args.tile_overlap}) must lie in [0, --tile ({args.tile}))")
    device = resolve_device(args.device)
    targets = restore_targets(args.inputs, args.out)
    existing = [str(o) for _, o in targets if o.exists()]
    if existing and not (args.overwrite or args.skip_existing):
        raise DataError(f"{len(existing)} output file(s) exist already, e.g. {', '.join(existing[:3])}; "
                        "choose another --out, pass --skip-existing to resume an interrupted restore, or "
                        "--overwrite")
    weights = Path(args.weights) if args.weights else Path(args.run) / "model.safetensors"
    bridge, model, cfg = load_model(weights, device=device)
    sampler = args.sampler or cfg.sampler
    steps = args.steps or cfg.nfe
    digest = hashlib.sha256()
    with open(weights, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    stamps = {o: restore_stamp(f, digest.hexdigest(), sampler=sampler, steps=steps, seed=args.seed, task=args.task,
                               precision=args.precision, tile=args.tile, tile_overlap=args.tile_overlap)
              for f, o in targets}
    skipped = 0
    if existing and args.skip_existing:  # resume: skip what this same restore wrote, refuse anything else
        theirs = {o: png_text(o).get(STAMP_KEY) for _, o in targets if o.exists()}
        foreign = [str(o) for o, s in theirs.items() if s is None]
        other = [str(o) for o, s in theirs.items() if s is not None and s != stamps[o]]
        if foreign or other:
            raise DataError("--skip-existing skips only outputs this same restore wrote; "
                            + "; ".join(f"{len(files)} {why}, e.g. {', '.join(files[:3])}" for files, why in (
                                (foreign, "output file(s) were not written by `bridgezoo restore`"),
                                (other, "were written by a restore of other inputs, weights or settings"))
                                if files)
                            + ". Choose another --out, or pass --overwrite to replace them")
        skipped = len(theirs)
        targets = [(f, o) for f, o in targets if o not in theirs]
    known = task_names(model)
    if known and args.task is None:
        raise DataError(f"{weights}: the model is task-conditioned; say the inputs' task with --task "
                        f"({', '.join(known)})")
    if args.task is not None:
        if not known:
            raise DataError(f"--task {args.task}: {weights} is a blind model (trained without --task-conditioned)")
        set_tasks(model, args.task)  # an unknown task is an error naming the model's tasks
    bridge.get_sampler(sampler)  # an unknown sampler or option fails before anything is read or written
    images = [(f, o, read_image(f)) for f, o in targets]  # read (and validate) every input before writing anything
    for f, o, img in tqdm(images, desc="restore", disable=tqdm_disable(args.quiet)):
        lq = torch.from_numpy(img.transpose(2, 0, 1)).float().to(device) * 2 - 1
        say = None if args.quiet else (lambda line, f=f: tqdm.write(f"{f}: {line}"))
        try:  # --tile absent: whole images where they fit in the free memory, else tiles (said in one line)
            res = restore(bridge, model, lq, nfe=steps, sampler=sampler, tile=args.tile,
                          overlap=args.tile_overlap, seed=args.seed, precision=args.precision, say=say)
        except (MemoryError, RuntimeError) as exc:
            if isinstance(exc, NotEnoughMemory) or not out_of_memory(exc):
                raise
            raise NotEnoughMemory(f"{f}: {device} ran out of memory restoring a {img.shape[1]}×{img.shape[0]} "
                                  f"image{f' in {args.tile}-pixel tiles' if args.tile else ''}; give a smaller "
                                  "--tile SIZE (or restore on another --device)") from exc
        write_png(o, to01(res), text={STAMP_KEY: stamps[o]})
    if not args.quiet:
        print(f"restored {len(images)} image(s) with {cfg.bridge}/{cfg.backbone} on {device} into {args.out}"
              + (f"; skipped {skipped} this restore had written already (--skip-existing)" if skipped else ""))
    return 0


def cmd_bench(args) -> int:
    from bridgezoo.bench import bench, check_grid, load_grid

    grid = load_grid(args.grid, out=args.out)
    gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
    if gpus is None and args.jobs is None:
        import torch

        n = torch.cuda.device_count()
        gpus = list(range(n)) if n else None
    todo = [r for r in grid.runs if not r.finished]
    problems = check_grid(grid)  # every run's options, against its bridge and sampler, before anything runs
    if args.dry_run:
        from bridgezoo.bench import plan

        records, todo = plan(grid)
        for r in grid.runs:
            state = records.get(r.name, {}).get("status", "todo")
            state = "BAD" if r.name in problems and state == "todo" else state
            print(f"{state:8}{r.directory}" + (f": {problems[r.name]}" if r.name in problems else ""))
        print(f"{len(grid.runs)} runs, {len(todo)} to do" + (f", {len(problems)} with bad options" if problems else ""))
        return 2 if problems else 0
    if problems:
        from bridgezoo.errors import OptionError

        raise OptionError(f"{args.grid}: {len(problems)} run(s) have bad options, nothing was run: "
                          + "; ".join(f"{name}: {msg}" for name, msg in problems.items()))
    if args.launcher == "submitit":
        return _bench_submitit(args, grid)
    if not args.quiet:
        where = f"GPUs {gpus}" if gpus else f"{args.jobs or 1} job(s) on CPU"
        print(f"grid {grid.name}: {len(grid.runs)} runs ({len(grid.runs) - len(todo)} finished) in {grid.out}, {where}")
    records = bench(grid, jobs=args.jobs or 1, gpus=gpus, threads=args.threads, quiet=args.quiet,
                    command="bridgezoo bench " + " ".join(sys.argv[2:]))
    failed = [r for r in records.values() if r["status"] == "failed"]
    if not args.quiet:
        print(f"{sum(r['status'] == 'done' for r in records.values())} of {len(grid.runs)} runs done; "
              f"status in {grid.status_file}")
    for r in records.values():
        if r["status"] == "running":
            print(f"still running: {r['name']} (job {r['job_id']}); not started again", file=sys.stderr)
    for r in failed:
        print(f"failed: {r['name']}: {r['error']} (see {r['directory']}/error.txt)", file=sys.stderr)
    return 1 if failed else 0


def _bench_submitit(args, grid) -> int:
    from bridgezoo.errors import OptionError

    if args.jobs or args.gpus or args.threads:
        raise OptionError("--jobs, --gpus and --threads are for --launcher local; with submitit set "
                          "array_parallelism, gpus_per_node and cpus_per_task in the grid's [launcher] table "
                          "(or --launcher-opt KEY=VALUE)")
    try:
        from bridgezoo.bench.slurm import bench_submitit
    except ModuleNotFoundError as exc:
        if exc.name != "submitit":
            raise
        raise OptionError("--launcher submitit needs the submitit package: pip install 'bridgezoo[cluster]'") from None
    options = _json_values(args.launcher_opt, "--launcher-opt")
    if not args.quiet:
        print(f"grid {grid.name}: {len(grid.runs)} runs ({sum(r.finished for r in grid.runs)} finished) in {grid.out}, "
              "one submitit job each")
    records = bench_submitit(grid, options, quiet=args.quiet, command="bridgezoo bench " + " ".join(sys.argv[2:]))
    failed = [r for r in records.values() if r["status"] == "failed"]
    elsewhere = [r for r in records.values() if r["status"] == "running"]
    if not args.quiet:
        print(f"{sum(r['status'] == 'done' for r in records.values())} of {len(grid.runs)} runs done; "
              f"status in {grid.status_file}")
    for r in elsewhere:
        print(f"still running: {r['name']} (job {r['job_id']}, log {r['stdout']}); not started again",
              file=sys.stderr)
    for r in failed:
        print(f"failed: {r['name']}: {r['error']} (job {r.get('job_id')}, log {r.get('stderr')}, "
              f"see {r['directory']}/error.txt)", file=sys.stderr)
    return 1 if failed else 0


def cmd_report(args) -> int:
    from bridgezoo.errors import OptionError
    from bridgezoo.report import build_report, render_report

    title = f" --title {shlex.quote(args.title)}" if args.title else ""
    if args.rebuild:
        if args.runs:
            raise OptionError("--rebuild renders --out again from the data it holds; give no RUNS with it")
        info = render_report(args.out, title=args.title, rerender_command=f"bridgezoo report --rebuild --out "
                                                                          f"{shlex.quote(args.out)}{title}")
    elif not args.runs:
        raise OptionError("give RUNS (run directories, folders of runs or grid files), or --rebuild")
    else:
        command = "bridgezoo report " + " ".join(map(shlex.quote, args.runs)) + f" --out {shlex.quote(args.out)}" + title
        info = build_report(args.runs, args.out, command=command, title=args.title)
    left_out = info["left_out"]
    counts = {}
    for r in left_out:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    print(f"report of {info['runs']} run(s)"
          + (f", {len(left_out)} left out ({', '.join(f'{n} {k}' for k, n in counts.items())}; reasons in "
             f"index.html and runs_left_out.csv)" if left_out else ", none left out")
          + f": {len(info['tables'])} tables, {len(info['figures'])} figure files, {info['html']}")
    return 0


def _preset_values(key: str) -> str:
    """`cpu-small 800, paper 300000`: a run option's value in each preset, for help texts."""
    from .presets import PRESETS

    return ", ".join(f"{name} {'full size' if v.get(key) is None else v.get(key)}" for name, v in PRESETS.items())


def _backbone_opt_help() -> str:
    """--backbone-opt's help: the options every built-in backbone declares (`options.BACKBONE_OPTIONS`, no torch
    import), and where each backbone's own are listed."""
    from .options import BACKBONE_OPTIONS

    shared = "; ".join(f"{k}={type(o.default).__name__.upper()} ({o.help}; default {o.default})"
                       for k, o in BACKBONE_OPTIONS.items())
    return ("a backbone option, repeatable; the value is read as JSON where it is JSON. Every built-in backbone "
            f"takes {shared}; each backbone's own options (dim, dim_mults, width, ...) and their defaults: "
            "`bridgezoo list`. An option the backbone does not declare is an error before anything runs")


class _DeprecatedNfe(argparse.Action):
    """--steps, also spelled --nfe (deprecated: "NFE" means network evaluations elsewhere, steps here)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string == "--nfe":
            print("bridgezoo: warning: --nfe is deprecated: it sets the sampler's steps, not its network "
                  "evaluations (a Heun step is two); use --steps", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _steps_option(p: argparse.ArgumentParser, what: str) -> None:
    """--steps K (and its deprecated spelling --nfe): the sampler's steps, i.e. the intervals of its time grid."""
    p.add_argument("--steps", "--nfe", dest="steps", type=int, metavar="K", default=None, action=_DeprecatedNfe,
                   help=f"{what}; the network evaluations they cost depend on the sampler (a Heun step is two, "
                        "`bridgezoo list`) and are counted into eval.csv's evaluations column. --nfe: the "
                        "deprecated name of --steps")


def _run_epilog() -> str:
    from .presets import describe_presets

    return (textwrap.fill("presets (--preset; an option given on the command line wins; warmup: iterations of the "
                          "learning rate's linear warm-up; ema_decay: of the EMA model that is evaluated and saved):",
                          78) + "\n" + describe_presets(78)
            + "\n\nexamples:\n  bridgezoo run --bridge rdbm --backbone unet-T\n"
              "  bridgezoo run --bridge goub --pi residual --iters 200 --out runs/goub-res\n"
              "  bridgezoo run --bridge fm --bridge-opt sigma=0.05 --data my_pairs/ --steps 20")


def build_parser() -> argparse.ArgumentParser:
    from .presets import COMPILE_MIN_ITERS, CPU_DEFAULTS, GPU_DEFAULTS

    parser = argparse.ArgumentParser(
        prog="bridgezoo",
        description="Train, compare and use diffusion-bridge image-restoration methods under identical settings.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("list", help="bridges (paper, defaults, samplers, relation), samplers and backbones")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser(
        "run", help="train a bridge on a backbone, evaluate it, write a run directory",
        description=textwrap.fill(
            "Train a bridge on a backbone, evaluate its EMA model and write a run directory (config.json, "
            "train.jsonl, eval.csv, summary.json, model.safetensors, samples/, state/). Bad options and bad data "
            "fail before anything is written.", 78),
        epilog=_run_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bridge", default="rdbm", help="bridge name (default rdbm; see `bridgezoo list`)")
    p.add_argument("--backbone", default=None, help="backbone (default: unet-L with a GPU, unet-T without)")
    p.add_argument("--data", default="zoo5", help="zoo5 (embedded, default), a folder of paired images, or "
                   "NAME:PATH of a published dataset in its authors' layout, e.g. lol:/data/LOL or "
                   "universal5:/data/Restoration (`bridgezoo data list`)")
    p.add_argument("--eval-data", default=None, help="paired folder to evaluate on (default: DATA/test if present)")
    p.add_argument("--eval-sets", nargs="+", default=None, metavar="SET",
                   help="with --data NAME:PATH: the test sets to evaluate (default: the dataset's own)")
    p.add_argument("--eval-limit", type=int, default=None, metavar="N",
                   help="with --data NAME:PATH: at most N images per test set, evenly spaced (default: all)")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks to train and evaluate (zoo5 or a multi-task "
                   "dataset such as universal5; default: all, balanced)")
    p.add_argument("--task-batch", default=None, metavar="TASK=N,...|PRESET",
                   help="items of each task in every training batch, e.g. fog=8,light=2,rain=4,snow=4,blur=2 "
                        "(DiffUIR's task names fog, light, rain, snow, blur or bridgezoo's dehaze, lowlight, derain, "
                        "desnow, deblur), or a preset: diffuir (4:1:2:2:1, used with --grad-accum 2) or udbm "
                        "(8:2:4:4:2); for zoo5 and registered datasets with those tasks (universal5). --batch defaults "
                        "to the total and must be a multiple of it (default: none, each draw's task cycles through "
                        "the tasks, so every task is drawn equally often over the run and a batch mixes them at random)")
    p.add_argument("--iters", type=int, metavar="N", default=None,
                   help="training iterations, i.e. optimizer steps (default from the preset: "
                        f"{_preset_values('iters')})")
    p.add_argument("--batch", type=int, default=None,
                   help="training pairs per step, split over the processes; with --grad-accum N an optimizer step "
                        f"sees N×BATCH pairs (default from the preset: {_preset_values('batch')})")
    p.add_argument("--patch", type=int, metavar="PIXELS", default=None,
                   help=f"side of the random square training crops, pixels (default from the preset: "
                        f"{_preset_values('patch')})")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate of AdamW, reached after the preset's linear warm-up, then cosine decay "
                        f"to 0 at the last iteration (default from the preset: {_preset_values('lr')})")
    p.add_argument("--warmup", type=int, metavar="N", default=None,
                   help="linear learning-rate warm-up steps (default: the preset's "
                        f"({_preset_values('warmup')}), at most 5%% of --iters)")
    p.add_argument("--ema-decay", type=float, default=None,
                   help=f"EMA decay of the evaluated weights (default from the preset: {_preset_values('ema_decay')})")
    _steps_option(p, "sampler steps at evaluation (default: the bridge's, the steps column of `bridgezoo list`)")
    p.add_argument("--sampler", default="ddim", help="sampler at evaluation: NAME or NAME:KEY=VALUE,... "
                   "(default ddim, shared by all bridges; see `bridgezoo list`)")
    p.add_argument("--pi", default=None, choices=("zero", "one", "residual", "uncertainty"),
                   help="noise modulation π: zero (flow matching), one (classic bridges), residual (RDBM: x0 − mu) "
                        "or uncertainty (the field of a bridge's auxiliary network, udbm) "
                        "(default: the bridge's own, the π column of `bridgezoo list`)")
    p.add_argument("--bridge-opt", action="append", metavar="KEY=VALUE", help="any bridge option (repeatable)")
    p.add_argument("--backbone-opt", action="append", metavar="KEY=VALUE", help=_backbone_opt_help())
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "bf16", "fp16"),
                   help="training autocast (default auto: bf16 on a GPU that supports it, fp32 on CPU); "
                        "the evaluation's is --eval-precision")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"),
                   help="channels_last memory format for training (default auto: off; the U-Nets' GroupNorm "
                        "made it 0.74× as fast on an H200, reports/gpu-h200)")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                   help="torch.compile the network for training (default auto: on for GPU runs of "
                        f"{COMPILE_MIN_ITERS} iterations or more, where its ~2 minutes of compiling pay off: 2.2× bf16 eager for unet-L on an H200, "
                        "reports/gpu-h200); the evaluation runs uncompiled")
    p.add_argument("--tf32", default="on", choices=("on", "off"),
                   help="TF32 for training's fp32 matmuls and convolutions on a GPU (default on; bf16 autocast "
                        "covers most of them); evaluation has its own --eval-precision")
    p.add_argument("--eval-precision", default="fp32", choices=("fp32", "tf32", "bf16"),
                   help="the evaluation's sampling arithmetic: fp32 (default, exact: TF32 off), tf32, or bf16 "
                        "autocast; stated in config.json and summary.json")
    p.add_argument("--eval-batch", type=int, metavar="N", default=None,
                   help="same-size images sampled at once at evaluation, each with its own noise, so the results "
                        f"do not depend on it (default: {GPU_DEFAULTS['eval_batch']} with a GPU, "
                        f"{CPU_DEFAULTS['eval_batch']} on CPU)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the training batches, times and noise, and of the evaluation samplers' noise; part "
                        "of the default run directory's name (default 0)")
    p.add_argument("--preset", default="auto", choices=("auto", "cpu-small", "paper"),
                   help="fills every option left unset (values below); auto (default): paper with a GPU, cpu-small "
                        "without")
    p.add_argument("--out", default=None, help="run directory (default runs/BRIDGE-BACKBONE-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved state")
    p.add_argument("--save-every", type=int, metavar="N", default=None,
                   help="save the resumable state (state/) every N iterations, and at the end or on Ctrl-C "
                        f"(default from the preset: {_preset_values('save_every')})")
    p.add_argument("--log-every", type=int, metavar="N", default=10,
                   help="append a train.jsonl line (loss, probe loss, learning rate, it/s) every N iterations "
                        "(default 10)")
    p.add_argument("--grad-accum", type=int, metavar="N", default=1,
                   help="accumulate the gradients of N batches per optimizer step (an effective batch of N×BATCH "
                        "with the memory of one; default 1)")
    p.add_argument("--eval-max-side", type=int, metavar="PIXELS", default=None,
                   help="zoo5's resolution: its photographs are fitted to this long side, pixels, for the test "
                        "images and the training crops alike, and the degradations scale with it (default from the "
                        f"preset: {_preset_values('eval_max_side')})")
    p.add_argument("--tile", type=int, metavar="SIZE", default=None,
                   help="evaluate in overlapping tiles of SIZE×SIZE pixels, for images too large for memory "
                        "(default: whole images)")
    p.add_argument("--tile-overlap", type=int, metavar="PIXELS", default=32,
                   help="pixels shared by neighbouring tiles, blended linearly; smaller than --tile (default 32)")
    p.add_argument("--crop-border", type=int, metavar="PIXELS", default=0,
                   help="pixels removed at each border before metrics")
    p.add_argument("--workers", type=int, metavar="N", default=None,
                   help=f"data-loading worker processes (default: {GPU_DEFAULTS['num_workers']} per process with a "
                        f"GPU, capped by the cores; {CPU_DEFAULTS['num_workers']} on CPU, where workers take cores "
                        "from training)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.add_argument("--strict-pairs", action="store_true",
                   help="own folders (--data PATH, --eval-data): a file without a partner is an error before "
                        "anything runs (default: skipped with a warning and counted in config.json's data_info)")
    p.add_argument("--log-with", default=None, metavar="TRACKER",
                   help="also log to tensorboard, wandb, mlflow or all (comma-separated for several; needs "
                        "pip install 'bridgezoo[tracking]'): losses, lr, throughput, evaluation, samples, config")
    p.add_argument("--task-conditioned", action="store_true", default=False,
                   help="tell the network each image's task (a learned task embedding added to its time embedding) "
                        "instead of the blind universal model of RDBM / DiffUIR; restoring then needs --task")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser(
        "restore", help="restore your own images with a trained model",
        description=textwrap.fill(
            "Restore your own degraded images (any size) with a model trained by `bridgezoo run`. The weights file "
            "holds the full config, so nothing else from the run is needed.", 78),
        epilog="example:\n  bridgezoo restore --run runs/rdbm-unet-T-s0 photos/ extra.jpg --out restored/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"),
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


def _explicit(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """The options given on the command line, without defaults (a copy of the parser whose defaults are
    SUPPRESS parses the same arguments)."""
    import copy

    quiet = copy.deepcopy(parser)
    stack = [quiet]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.dest not in ("help", "command", "func", "data_command"):
                action.default = argparse.SUPPRESS
    return quiet.parse_args(argv)


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=None):
    """bridgezoo's own warnings (`errors.BridgezooWarning`: data, plugins) as one `bridgezoo: warning:` line on
    stderr, without Python's source line; every other warning as Python prints it."""
    from .errors import BridgezooWarning

    if issubclass(category, BridgezooWarning):
        print(f"bridgezoo: warning: {message}", file=file or sys.stderr, flush=True)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    import functools
    import warnings

    if not getattr(warnings.showwarning, "bridgezoo", False):
        warnings.showwarning = functools.partial(_show_warning, _default=warnings.showwarning)
        warnings.showwarning.bridgezoo = True
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "resume", False):
        args.explicit = _explicit(parser, argv)
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
