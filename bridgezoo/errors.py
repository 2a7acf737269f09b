"""Errors that name what is wrong and what would be right."""

from __future__ import annotations

import difflib


class BridgezooError(Exception):
    """Base class of every error bridgezoo raises on purpose."""


class BridgezooWarning(UserWarning):
    """Base class of bridgezoo's warnings about the user's data or plugins; the command line prints them as one
    `bridgezoo: warning: ...` line, without Python's source line."""


def suggest(word: str, choices, aliases: dict | None = None) -> str:
    """' Did you mean …?' for close matches of `word` among `choices`, or ''. A close match among `aliases`
    ({alias: name}) is suggested as the name it stands for, so only the listed names are ever shown."""
    aliases = {str(a): str(n) for a, n in (aliases or {}).items()}
    choices = [str(c) for c in choices]
    same_case = [c for c in [*choices, *aliases] if c.lower() == str(word).lower()]
    close = same_case or difflib.get_close_matches(str(word), [*choices, *aliases], n=3, cutoff=0.5)
    close = list(dict.fromkeys(aliases.get(c, c) for c in close))
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class UnknownNameError(BridgezooError, KeyError):
    """An unknown bridge, backbone or dataset name; `choices` are the names `bridgezoo list` shows, `aliases`
    ({alias: name}) are accepted but only suggested as the name they stand for."""

    def __init__(self, kind: str, name: str, choices, failed=(), aliases: dict | None = None):
        msg = (f"unknown {kind} {name!r}.{suggest(name, choices, aliases)} Valid {kind}s: "
               f"{', '.join(sorted(choices)) or '(none)'}.")
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
