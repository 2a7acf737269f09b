"""The `bridgezoo` command line: `parser` declares the commands, one module per group of them (`listing`, `running`,
`data`, `compare`). Heavy imports (torch, plugins) happen inside the commands, not at --help."""

from __future__ import annotations

import sys

from .parser import build_parser

__all__ = ["build_parser", "main"]


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=None):
    """bridgezoo's own warnings (`errors.BridgezooWarning`: data, plugins) as one `bridgezoo: warning:` line on
    stderr, without Python's source line; every other warning as Python prints it."""
    from ..errors import BridgezooWarning

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
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..errors import BridgezooError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("bridgezoo: interrupted", file=sys.stderr)
        return 130
    except BridgezooError as exc:
        print(f"bridgezoo: error: {exc}", file=sys.stderr)
        return 1 if type(exc).__name__ == "TrainingError" else 2
