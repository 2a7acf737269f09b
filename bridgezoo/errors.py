"""Errors that name what is wrong and what would be right."""

from __future__ import annotations

import difflib


class BridgezooError(Exception):
    """Base class of every error bridgezoo raises on purpose."""


def suggest(word: str, choices) -> str:
    """' Did you mean …?' for close matches of `word` among `choices`, or ''."""
    choices = [str(c) for c in choices]
    same_case = [c for c in choices if c.lower() == str(word).lower()]
    close = same_case or difflib.get_close_matches(str(word), choices, n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class UnknownNameError(BridgezooError, KeyError):
    """An unknown bridge or backbone name."""

    def __init__(self, kind: str, name: str, choices, failed=()):
        msg = f"unknown {kind} {name!r}.{suggest(name, choices)} Valid {kind}s: {', '.join(sorted(choices)) or '(none)'}."
        if failed:
            msg += f" Plugins that failed to load (see `bridgezoo plugins`): {', '.join(sorted(failed))}."
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class OptionError(BridgezooError, ValueError):
    """An unknown option, or a value outside its choices or of the wrong type."""


class PluginError(BridgezooError):
    """A plugin failed to load or registered a name that is taken (raised only in strict mode)."""
