"""Options of bridges, samplers and backbones: a default, a one-line help and the allowed values, validated in one
place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import OptionError, suggest


@dataclass(frozen=True)
class Option:
    """One option: its default, a one-line help (with units), and the allowed values if a choice."""

    default: Any
    help: str
    choices: tuple | None = None


def merged_options(cls) -> dict[str, Option]:
    """The options of a class and its bases: `option_spec` adds options, `option_defaults` overrides defaults."""
    merged: dict[str, Option] = {}
    for base in reversed(cls.__mro__):
        merged.update(base.__dict__.get("option_spec", {}))
        for key, value in base.__dict__.get("option_defaults", {}).items():
            if key not in merged:
                raise TypeError(f"{cls.__name__}.option_defaults names unknown option {key!r}")
            merged[key] = Option(value, merged[key].help, merged[key].choices)
    return merged


def coerce(name: str, value: Any, spec: Option, owner: str):
    """Validate one option value (and parse strings from the command line); `owner` names it in errors."""
    default = spec.default
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                value = low in ("1", "true", "yes", "on")
            elif not isinstance(value, bool):
                raise ValueError(value)
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            value = int(value) if isinstance(value, str) else value
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(value)
        elif isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError(value)
            value = float(value)
    except (TypeError, ValueError):
        raise OptionError(
            f"{owner}: option {name}={value!r} is not a valid {type(default).__name__} ({spec.help})"
        ) from None
    if spec.choices is not None and value not in spec.choices:
        raise OptionError(
            f"{owner}: option {name}={value!r} is not one of {', '.join(map(str, spec.choices))}."
            f"{suggest(value, spec.choices)}"
        )
    return value


def check_options(given: dict, spec: dict[str, Option], owner: str, free=()) -> dict[str, Any]:
    """The options of `given`, validated (and parsed from strings) against `spec`; keys in `free` pass unchecked.
    An unknown key raises an OptionError naming close matches and every valid option."""
    unknown = [k for k in given if k not in spec and k not in free]
    if unknown:
        k = unknown[0]
        raise OptionError(
            f"{owner} has no option {k!r}.{suggest(k, spec)} Valid options: "
            + (", ".join(f"{n} (default {o.default!r})" for n, o in spec.items()) or "(none)")
        )
    return {n: coerce(n, v, spec[n], owner) if n in spec else v for n, v in given.items()}


def resolve_options(given: dict, spec: dict[str, Option], owner: str) -> dict[str, Any]:
    """Every option of `spec`, from `given` where present (validated) else its default; unknown keys raise."""
    given = check_options(given, spec, owner)
    return {n: given[n] if n in given else o.default for n, o in spec.items()}


# π, the noise modulation of every bridge (`bridge.Bridge`): the core's fields, and those a bridge's auxiliary
# network computes (`bridge.Auxiliary`); here, without torch, so `bridgezoo run --help` lists them
PI_MODES = ("zero", "one", "residual")
AUXILIARY_PI_MODES = ("uncertainty",)
ALL_PI_MODES = PI_MODES + AUXILIARY_PI_MODES

# Backbones (`bridgezoo.backbone`): the options every built-in backbone declares with the same meaning (a plugin's
# `option_spec` starts from these and adds its own), and those the runner sets itself from the bridge and the data.
BACKBONE_OPTIONS = {
    "residual_output": Option(False, "return prediction + mu, for x0-predicting bridges as in RDBM's released network"),
    "time_scale": Option(1000.0, "t in [0, 1] is multiplied by it before the sinusoidal time embedding"),
}
BACKBONE_PROTOCOL = ("channels", "out_channels", "time_inputs", "num_tasks")
