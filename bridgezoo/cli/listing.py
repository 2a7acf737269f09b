"""`bridgezoo list` and `bridgezoo plugins`: what is installed, as a table on a wide terminal, plain blocks of
`key  value` lines otherwise, or JSON."""

from __future__ import annotations

import json
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
