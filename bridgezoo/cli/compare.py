"""`bridgezoo bench` (a grid of runs, locally or on SLURM) and `bridgezoo report`."""

from __future__ import annotations

import shlex
import sys

from ..run.options import json_values


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
    options = json_values(args.launcher_opt, "--launcher-opt")
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
