"""Plugin loading (entry-point group `bridgezoo`) with isolation, and the bridge / backbone / dataset / sampler
registries.

Each entry point is loaded and called on its own: one that fails to import, raises in its hook, or registers a
name already taken gives one `PluginWarning` naming its distribution and the exception, and is listed with its
error by `bridgezoo plugins`; `BRIDGEZOO_STRICT_PLUGINS=1` raises `PluginError` instead. The built-in plugins
(`DEFAULT_PLUGINS`, distribution `bridgezoo`) load first and the same way, so a third-party plugin cannot silently
replace a built-in method. `BRIDGEZOO_LOAD_PLUGINS=a,b` loads only the named entry points (empty: only the
built-ins).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import BridgezooWarning, OptionError, PluginError, UnknownNameError, suggest
from .lookup import install_sampler_source

GROUP = "bridgezoo"  # the entry-point group third-party plugins register in (the built-ins are DEFAULT_PLUGINS)
DISTRIBUTION = "bridgezoo"
# The built-in plugins: (plugin name, module). The name is what a run's config.json and weights record as its
# provider's "plugin" (with distribution "bridgezoo"); they load in this order (sorted by name, as when they were
# entry points), which is the order `bridgezoo list` shows their samplers in.
DEFAULT_PLUGINS = (
    ("bbdm", "bridgezoo_plugins.bridges.bbdm"),
    ("cdd11", "bridgezoo_plugins.datasets.cdd11"),
    ("ddbm", "bridgezoo_plugins.bridges.ddbm"),
    ("ddpm", "bridgezoo_plugins.bridges.ddpm"),
    ("fm", "bridgezoo_plugins.bridges.fm"),
    ("gopro", "bridgezoo_plugins.datasets.gopro"),
    ("goub", "bridgezoo_plugins.bridges.goub"),
    ("i2sb", "bridgezoo_plugins.bridges.i2sb"),
    ("indi", "bridgezoo_plugins.bridges.indi"),
    ("irsde", "bridgezoo_plugins.bridges.irsde"),
    ("lol", "bridgezoo_plugins.datasets.lol"),
    ("meanflow", "bridgezoo_plugins.bridges.meanflow"),
    ("nafnet", "bridgezoo_plugins.backbones.nafnet"),
    ("rain13k", "bridgezoo_plugins.datasets.rain13k"),
    ("rdbm", "bridgezoo_plugins.bridges.rdbm"),
    ("rddm", "bridgezoo_plugins.bridges.rddm"),
    ("realworld", "bridgezoo_plugins.datasets.realworld"),
    ("reside", "bridgezoo_plugins.datasets.reside"),
    ("resshift", "bridgezoo_plugins.bridges.resshift"),
    ("samplers", "bridgezoo_plugins.samplers.shared"),
    ("sde", "bridgezoo_plugins.bridges.sde"),
    ("snow100k", "bridgezoo_plugins.datasets.snow100k"),
    ("timm-unet", "bridgezoo_plugins.backbones.timm_unet"),
    ("udbm", "bridgezoo_plugins.bridges.udbm"),
    ("unet", "bridgezoo_plugins.backbones.unet"),
    ("unidb", "bridgezoo_plugins.bridges.unidb"),
    ("universal5", "bridgezoo_plugins.datasets.universal5"),
)
HOOKS = {"register_bridges": "bridge", "register_backbones": "backbone", "register_datasets": "dataset",
         "register_samplers": "sampler"}


class PluginWarning(BridgezooWarning):
    """A plugin failed to load or registered a clashing name; the others still work."""


@dataclass
class Entry:
    """One registered bridge, backbone, dataset or sampler."""

    name: str
    obj: Any  # Bridge subclass, backbone factory, DatasetAdapter subclass, or Sampler subclass
    aliases: tuple[str, ...]
    summary: str
    plugin: str
    distribution: str
    version: str = ""
    bridges: tuple | None = None  # samplers only: the bridge classes it is for, None = shared

    def provider(self) -> dict:
        """Who provides it: {"plugin", "distribution", "version"} (recorded in a run's config and weights)."""
        return {"plugin": self.plugin, "distribution": self.distribution, "version": self.version}


@dataclass
class PluginRecord:
    """What `bridgezoo plugins` shows for one entry point."""

    name: str
    distribution: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=lambda: {"bridges": [], "backbones": [], "datasets": [],
                                                                            "samplers": []})
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "module": self.module, "hooks": self.hooks, "provides": self.provides,
                "error": "; ".join(self.errors) or None}


def _strict() -> bool:
    return os.environ.get("BRIDGEZOO_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")


class Registry:
    """Bridges, backbones, datasets and samplers from every plugin; loads entry points on first use.

    Samplers may share a name when they are for different bridges (a bridge's own sampler may carry a shared
    sampler's name), so they are a list in registration order rather than a table."""

    def __init__(self):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.kinds: dict[str, dict[str, Entry]] = {kind: {} for kind in HOOKS.values() if kind != "sampler"}
        self.aliases: dict[str, dict[str, str]] = {kind: {} for kind in HOOKS.values() if kind != "sampler"}
        self.sampler_entries: list[Entry] = []
        self.plugins: list[PluginRecord] = []
        self.loaded = False

    # --------------------------------------------------------------- loading
    def _entry_points(self):
        eps = []
        for dist in md.distributions():
            for ep in dist.entry_points:
                if ep.group == GROUP:
                    eps.append((dist, ep))
        seen, unique = set(), []
        for dist, ep in eps:  # the same distribution may be visible twice on sys.path
            key = (dist.metadata["Name"], ep.name, ep.value)
            if key not in seen:
                seen.add(key)
                unique.append((dist, ep))
        only = os.environ.get("BRIDGEZOO_LOAD_PLUGINS")
        wanted = None if only is None else {n.strip() for n in only.split(",") if n.strip()}
        # the built-ins are DEFAULT_PLUGINS; an old install's metadata may still list them as entry points
        others = [(d, e) for d, e in unique if d.metadata["Name"] != DISTRIBUTION]
        if wanted is not None:
            others = [(d, e) for d, e in others if e.name in wanted or d.metadata["Name"] in wanted]
        return sorted(others, key=lambda p: (p[0].metadata["Name"], p[1].name))

    def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        try:
            version = md.version(DISTRIBUTION)
        except md.PackageNotFoundError:  # run from a source tree that is not installed
            version = ""
        for name, module in DEFAULT_PLUGINS:
            self.add_default_plugin(name, module, version)
        for dist, ep in self._entry_points():
            self.add_plugin_from_entry_point(dist, ep)

    def add_default_plugin(self, name: str, module: str, version: str) -> PluginRecord:
        """Import built-in plugin `module` and register it as plugin `name` of distribution bridgezoo, isolated
        like an entry point."""
        record = PluginRecord(name, DISTRIBUTION, version, module)
        self.plugins.append(record)
        try:
            loaded = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            self._fail(record, f"import failed: {type(exc).__name__}: {exc}", exc)
            return record
        self.add_plugin(loaded, record)
        return record

    def add_plugin_from_entry_point(self, dist, ep) -> PluginRecord:
        record = PluginRecord(ep.name, dist.metadata["Name"], dist.version, ep.value)
        self.plugins.append(record)
        try:
            module = ep.load()
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            self._fail(record, f"import failed: {type(exc).__name__}: {exc}", exc)
            return record
        self.add_plugin(module, record)
        return record

    def add_plugin(self, plugin: Any, record: PluginRecord | None = None) -> PluginRecord:
        """Register an in-process plugin object or module (tests, notebooks) exactly like an entry point."""
        if record is None:
            name = getattr(plugin, "__name__", type(plugin).__name__)
            record = PluginRecord(name, "(in-process)", "", name)
            self.plugins.append(record)
        try:
            self.pm.register(plugin, name=f"{record.distribution}:{record.name}")
        except Exception as exc:  # noqa: BLE001
            self._fail(record, f"invalid plugin: {type(exc).__name__}: {exc}", exc)
            return record
        for hook, kind in HOOKS.items():
            impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin is plugin]
            for impl in impls:
                record.hooks.append(hook)
                try:
                    impl.function(register=self._register_callback(kind, record))
                except Exception as exc:  # noqa: BLE001
                    self._fail(record, f"{hook} raised {type(exc).__name__}: {exc}", exc)
        return record

    def _register_callback(self, kind: str, record: PluginRecord) -> Callable:
        def register(obj, name: str | None = None, aliases=(), summary: str = "", bridges=None):
            name = name or getattr(obj, "name", "") or getattr(obj, "__name__", "")
            if not name:
                raise ValueError(f"register() needs a name for {obj!r}")
            if kind == "sampler":
                self._register_sampler(record, obj, name, tuple(aliases), summary, bridges)
                return
            if bridges is not None:
                raise TypeError(f"register_{kind}s: `bridges=` is an argument of register_samplers only")
            table, alias_table = self.kinds[kind], self.aliases[kind]
            for n in (name, *aliases):
                if n in table or n in alias_table:
                    owner = table[n] if n in table else table[alias_table[n]]
                    raise PluginError(
                        f"{kind} name {n!r} is already registered by plugin {owner.plugin!r} "
                        f"(distribution {owner.distribution!r})"
                    )
            if kind == "bridge":
                from .bridge import Bridge

                if not (isinstance(obj, type) and issubclass(obj, Bridge)):
                    raise TypeError(f"register_bridges: {obj!r} is not a subclass of bridgezoo.Bridge")
                summary = summary or obj.summary
                if "name" not in obj.__dict__:
                    obj.name = name
            if kind == "dataset":
                from .data.base import DatasetAdapter

                if not (isinstance(obj, type) and issubclass(obj, DatasetAdapter)):
                    raise TypeError(f"register_datasets: {obj!r} is not a subclass of "
                                    "bridgezoo.data.adapters.DatasetAdapter")
                summary = summary or obj.summary
            table[name] = Entry(name, obj, tuple(aliases), summary, record.name, record.distribution, record.version)
            for a in aliases:
                alias_table[a] = name
            record.provides[kind + "s"].append(name)

        return register

    def _register_sampler(self, record, obj, name, aliases, summary, bridges) -> None:
        from .bridge import Bridge
        from .samplers import Sampler

        if not (isinstance(obj, type) and issubclass(obj, Sampler)):
            raise TypeError(f"register_samplers: {obj!r} is not a subclass of bridgezoo.Sampler")
        if bridges is not None:
            bridges = tuple(bridges) if isinstance(bridges, (tuple, list)) else (bridges,)
            bad = [b for b in bridges if not (isinstance(b, type) and issubclass(b, Bridge))]
            if bad or not bridges:
                raise TypeError(f"register_samplers: bridges= must be Bridge subclasses, got {bad or bridges!r}")
        for other in self.sampler_entries:
            same_name = {name, *aliases} & {other.name, *other.aliases}
            both_shared = bridges is None and other.bridges is None
            same_bridge = bridges is not None and other.bridges is not None and set(bridges) & set(other.bridges)
            if same_name and (both_shared or same_bridge):
                where = "shared" if both_shared else "for " + ", ".join(c.__name__ for c in set(bridges) & set(other.bridges))
                raise PluginError(f"sampler name {sorted(same_name)[0]!r} ({where}) is already registered by plugin "
                                  f"{other.plugin!r} (distribution {other.distribution!r})")
        if "name" not in obj.__dict__:
            obj.name = name
        self.sampler_entries.append(Entry(name, obj, aliases, summary or obj.summary, record.name,
                                          record.distribution, record.version, bridges))
        record.provides["samplers"].append(name)

    def samplers_for(self, bridge) -> list[Entry]:
        """The sampler entries that apply to `bridge`: those registered for its class first, then shared ones."""
        self.load()
        own = [e for e in self.sampler_entries if e.bridges is not None and isinstance(bridge, e.bridges)]
        shared = [e for e in self.sampler_entries if e.bridges is None and e.obj.applies_to(bridge)]
        return own + shared

    def _fail(self, record: PluginRecord, message: str, exc: BaseException) -> None:
        record.errors.append(message)
        text = f"bridgezoo plugin {record.name!r} from distribution {record.distribution!r}: {message}"
        if _strict():
            raise PluginError(text + " (BRIDGEZOO_STRICT_PLUGINS=1)") from exc
        warnings.warn(text + "; the other plugins are unaffected", PluginWarning, stacklevel=3)

    # --------------------------------------------------------------- lookup
    def names(self, kind: str) -> list[str]:
        self.load()
        return sorted(self.kinds[kind])

    def entry(self, kind: str, name: str) -> Entry:
        self.load()
        name = self.aliases[kind].get(name, name)
        if name not in self.kinds[kind]:
            failed = [p.name for p in self.plugins if p.errors]
            raise UnknownNameError(kind, name, list(self.kinds[kind]), failed, aliases=self.aliases[kind])
        return self.kinds[kind][name]


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry (created on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY


def reset() -> None:
    """Forget every loaded plugin (tests; after installing a plugin in a running process)."""
    global _REGISTRY
    _REGISTRY = None


def list_bridges() -> list[str]:
    """Names of every registered bridge, sorted."""
    return registry().names("bridge")


def get_bridge(name: str, **options):
    """A bridge instance by name or alias; unknown names and options raise errors that list the valid ones."""
    entry = registry().entry("bridge", name)
    cls = entry.obj
    bridge = cls.__new__(cls)
    bridge.name = entry.name
    bridge.__init__(**options)
    return bridge


def list_backbones(pattern: str | None = None) -> list[str]:
    """Names of every registered backbone, sorted; `pattern` is an fnmatch pattern such as 'unet-*'."""
    import fnmatch

    names = registry().names("backbone")
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def _backbone_entry(name: str) -> tuple[Entry, tuple]:
    """(entry, leading arguments) of backbone `name`: a registered name or alias, or `prefix/REST` resolved by the
    registered prefix `prefix/` (its factory takes REST first, e.g. timm-unet's encoder)."""
    reg = registry()
    reg.load()
    if name not in reg.kinds["backbone"] and name not in reg.aliases["backbone"] and "/" in name:
        prefix, rest = name.split("/", 1)
        if prefix + "/" in reg.kinds["backbone"]:
            return reg.kinds["backbone"][prefix + "/"], (rest,)
    return reg.entry("backbone", name), ()


def backbone_option_spec(name: str) -> dict | None:
    """The options backbone `name` declares (its factory's `option_spec`: {key: Option}), None if it declares none.
    The protocol's options (`options.BACKBONE_PROTOCOL`: channels, out_channels, ...) are set by the runner."""
    return getattr(_backbone_entry(name)[0].obj, "option_spec", None)


def check_backbone_options(name: str, options: dict) -> dict:
    """`options` validated against backbone `name`'s declared options (parsed from strings); an unknown key is an
    OptionError naming close matches and the valid ones. Undeclared backbones' options pass unchecked."""
    from .options import BACKBONE_PROTOCOL, check_options

    spec = backbone_option_spec(name)
    if spec is None:
        return dict(options)
    return check_options(options, spec, f"backbone {name!r}", free=BACKBONE_PROTOCOL)


def get_backbone(name: str, **options):
    """A backbone (torch.nn.Module with forward(x_t, mu, t)) by name; `timm-unet/<encoder>` style names
    are resolved by the longest registered prefix ending in '/'. Options are checked against the backbone's
    declared `option_spec` (`check_backbone_options`)."""
    import re

    entry, args = _backbone_entry(name)
    options = check_backbone_options(name, options)
    try:
        return entry.obj(*args, **options)
    except TypeError as exc:  # a backbone that declares no options, given one its factory does not take
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if bad is None or getattr(entry.obj, "option_spec", None) is not None:
            raise
        raise OptionError(f"backbone {name!r} has no option {bad.group(1)!r} (it declares no option_spec)") from None


def provider(kind: str, name: str) -> dict:
    """{"plugin", "distribution", "version"} of the plugin that registered bridge or backbone `name`
    (`timm-unet/<encoder>` style names: the prefix's plugin); samplers: `sampler_provider`."""
    if kind == "backbone":
        return _backbone_entry(name)[0].provider()
    return registry().entry(kind, name).provider()


def list_datasets() -> list[str]:
    """Names of every registered dataset adapter, sorted (use them as `--data NAME:PATH`)."""
    return registry().names("dataset")


def get_dataset(name: str):
    """A dataset adapter instance by name or alias (`bridgezoo.data.adapters.DatasetAdapter`)."""
    entry = registry().entry("dataset", name)
    adapter = entry.obj()
    adapter.name = entry.name
    return adapter


def sampler_names(bridge) -> tuple[str, ...]:
    """The samplers of a bridge: its `official_samplers` in order, then every other one that applies to it."""
    names = list(type(bridge).official_samplers)
    for entry in registry().samplers_for(bridge):
        if entry.name not in names and entry.name not in type(bridge).unsupported_samplers:
            names.append(entry.name)
    return tuple(names)


def _sampler_entry(bridge, name: str) -> Entry:
    """The entry of sampler `name` for `bridge` (its own sampler of that name before a shared one)."""
    label = bridge.name or type(bridge).__name__
    if name in type(bridge).unsupported_samplers:
        raise OptionError(f"bridge {label!r}: sampler {name!r} does not apply to it: "
                          f"{type(bridge).unsupported_samplers[name]}. Valid samplers: {', '.join(sampler_names(bridge))}.")
    entries = registry().samplers_for(bridge)
    entry = next((e for e in entries if name == e.name or name in e.aliases), None)
    if entry is None:
        valid = sampler_names(bridge)
        if name in type(bridge).official_samplers:
            raise OptionError(f"bridge {label!r} lists its sampler {name!r}, but no loaded plugin registers a sampler "
                              f"of that name for it (see `bridgezoo plugins`).")
        raise OptionError(f"bridge {label!r} has no sampler {name!r}.{suggest(name, valid)} "
                          f"Valid samplers: {', '.join(valid)}.")
    return entry


def sampler_provider(bridge, spec: str) -> dict:
    """{"plugin", "distribution", "version"} of the plugin that registered the sampler `spec` (NAME or
    NAME:KEY=VALUE,...) used for `bridge`: recorded in a run's config beside its bridge's and backbone's."""
    from .samplers import parse_sampler_spec

    return _sampler_entry(bridge, parse_sampler_spec(spec)[0]).provider()


def make_sampler(bridge, spec: str):
    """The sampler `spec` (NAME or NAME:KEY=VALUE,...) for `bridge`, with its options; the bridge's own sampler of
    that name wins over a shared one. Unknown or inapplicable names raise an error that lists the valid ones."""
    from .samplers import parse_sampler_spec

    name, options = parse_sampler_spec(spec)
    entry = _sampler_entry(bridge, name)
    sampler = entry.obj(**options)
    sampler.name = entry.name
    return sampler


def sampler_records() -> list[dict]:
    """Every registered sampler with its properties (the class defaults) and the bridges it serves under its name
    (a bridge's own sampler of the same name takes precedence): what `bridgezoo list` shows."""
    reg = registry()
    reg.load()
    built = {}
    for name, entry in reg.kinds["bridge"].items():
        try:
            built[name] = get_bridge(name)
        except Exception:  # noqa: BLE001 - a bridge that cannot be built with its defaults serves no sampler here
            pass
    rows = []
    for e in reg.sampler_entries:
        cls = e.obj
        serves = [n for n, b in sorted(built.items())
                  if next((x for x in reg.samplers_for(b) if x.name == e.name), None) is e]
        scope = "all bridges" if e.bridges is None and len(serves) == len(built) else ", ".join(serves) or "(none)"
        rows.append({"name": e.name, "for": scope, "shared": e.bridges is None, "order": cls.order,
                     "deterministic": cls.deterministic, "evals_per_step": cls.evals_per_step,
                     "oracle_exact": cls.oracle_exact and cls.deterministic,
                     "options": {k: o.default for k, o in cls._options.items()}, "summary": e.summary,
                     "paper": cls.paper, "plugin": e.plugin})
    return rows


def plugin_records() -> list[dict]:
    """JSON-ready list of every plugin that was found, with hooks, what it provides and its error."""
    reg = registry()
    reg.load()
    return [p.as_dict() for p in reg.plugins]


install_sampler_source(sys.modules[__name__])  # bridges ask this module for samplers (see lookup.py)
