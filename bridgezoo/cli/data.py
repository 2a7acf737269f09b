"""`bridgezoo data preview | list | check`: look at data before training on it."""

from __future__ import annotations

import json


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
