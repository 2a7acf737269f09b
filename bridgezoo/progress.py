"""Progress bars only where a person watches a terminal: output to a pipe or a log file gets no bar (a bar there
is thousands of carriage-return frames), the commands' own lines still say what happens."""

from __future__ import annotations


def tqdm_disable(quiet: bool) -> bool | None:
    """tqdm's `disable=`: True when quiet, else None, tqdm's own test (no bar when its stream, stderr, is not a
    terminal)."""
    return True if quiet else None


def rich_bar(quiet: bool) -> bool:
    """Whether to show a rich progress bar: not quiet and standard output is a terminal (rich's `is_terminal`,
    which FORCE_TERMINAL / TTY_COMPATIBLE override)."""
    from rich.console import Console

    return not quiet and Console().is_terminal
