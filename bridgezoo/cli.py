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
    if args.json:
        print(json.dumps({"bridges": bridges, "backbones": backbones}, indent=2, default=str))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridgezoo",
        description="Train, compare and use diffusion-bridge image-restoration methods under identical settings.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("list", help="bridges (paper, defaults, samplers, relation) and backbones")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
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
    except BridgezooError as exc:
        print(f"bridgezoo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
