"""Plugin discovery through real entry points: tiny distributions (a module + a .dist-info with entry_points.txt)
are put on sys.path, where importlib.metadata finds them exactly as it finds installed packages."""

import json
import re
import subprocess
import sys
import warnings

import pytest
import torch

import bridgezoo as bz
from bridgezoo.registry import PluginWarning
from bridgezoo.testing import oracle

from helpers import ROOT, make_dist, readme_plugin, run_cli

BROKEN = "raise ImportError('needs the missing package frobnicate')\n"
CLASH = """
import bridgezoo as bz
from bridgezoo_plugins.bridges.rdbm import RDBM

class Impostor(RDBM):
    summary = "not the real RDBM"

@bz.hookimpl
def register_bridges(register):
    register(Impostor, name="rdbm")
"""
RAISES = """
import bridgezoo as bz

@bz.hookimpl
def register_bridges(register):
    raise RuntimeError("hook exploded")
"""


def test_readme_plugin_example_works_through_an_entry_point(tmp_path, monkeypatch, images64):
    source, ep_name, module, dist = readme_plugin()
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, dist, module, source, ep_name)))
    assert "sine" in bz.list_bridges() and {"rdbm", "goub", "fm"} <= set(bz.list_bridges())
    b = bz.get_bridge("sine", pi="residual")
    x0, mu = images64
    # the core gives the new bridge everything: objectives, loss, the shared DDIM sampler (oracle-exact)
    out = b.sample(oracle(b, x0), mu, nfe=8)
    assert (out - x0).abs().max() < 1e-5
    for objective in bz.OBJECTIVES:
        bo = bz.get_bridge("sine", objective=objective)
        t = torch.full((2,), 0.4, dtype=torch.float64)
        x_t = bo.q_sample(x0, mu, t, torch.randn_like(x0))
        torch.testing.assert_close(bo.predict_x0(bo.target(x0, mu, x_t, t), x_t, mu, t), x0)
    rec = [p for p in bz.plugin_records() if p["name"] == ep_name][0]
    assert rec["distribution"] == dist and rec["provides"]["bridges"] == ["sine"] and rec["error"] is None


def test_builtins_come_from_the_default_plugins():
    """The built-ins load from `registry.DEFAULT_PLUGINS` (not entry points) and keep the provider records of runs
    written when they were entry points: plugin = the old entry-point name, distribution = bridgezoo."""
    from bridgezoo.registry import provider

    recs = {p["name"]: p for p in bz.plugin_records()}
    for name in ("rdbm", "goub", "fm"):
        assert recs[name]["distribution"] == "bridgezoo"
        assert recs[name]["module"] == f"bridgezoo_plugins.bridges.{name}"
        assert name in recs[name]["provides"]["bridges"]
        assert provider("bridge", name)["plugin"] == name and provider("bridge", name)["distribution"] == "bridgezoo"
    assert provider("backbone", "timm-unet/resnet18")["plugin"] == "timm-unet"
    assert recs["samplers"]["module"] == "bridgezoo_plugins.samplers.shared" and recs["samplers"]["error"] is None


def test_every_plugin_file_is_a_default_plugin_and_every_package_is_shipped():
    """A module added under plugins/ loads only if DEFAULT_PLUGINS names it, and a wheel holds only the packages
    pyproject's [tool.setuptools] packages lists: neither may miss one."""
    import tomllib

    from bridgezoo.registry import DEFAULT_PLUGINS

    root = ROOT
    modules = {"bridgezoo_plugins." + ".".join(p.relative_to(root / "plugins").with_suffix("").parts)
               for p in (root / "plugins").rglob("*.py") if p.name != "__init__.py"}
    assert {m for _, m in DEFAULT_PLUGINS} == modules
    assert len({n for n, _ in DEFAULT_PLUGINS}) == len(DEFAULT_PLUGINS)
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {name: root / folder for name, folder in setuptools["package-dir"].items()}
    packages = set()
    for name, folder in dirs.items():
        packages |= {".".join((name, *p.parent.relative_to(folder).parts)) for p in folder.rglob("__init__.py")}
    assert packages == set(setuptools["packages"])
    assert "bridgezoo" not in tomllib.loads((root / "pyproject.toml").read_text())["project"].get("entry-points", {})


@pytest.mark.parametrize(
    "source,expected",
    [(BROKEN, "ImportError: needs the missing package frobnicate"),
     (CLASH, "'rdbm' is already registered by plugin 'rdbm' (distribution 'bridgezoo')"),
     (RAISES, "RuntimeError: hook exploded")],
    ids=["import-error", "name-clash", "hook-raises"],
)
def test_a_bad_plugin_only_warns(tmp_path, monkeypatch, source, expected):
    monkeypatch.delenv("BRIDGEZOO_STRICT_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, "bridgezoo-bad", "bridgezoo_bad", source)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = bz.list_bridges()
    ours = [w for w in caught if issubclass(w.category, PluginWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "bridgezoo-bad" in str(ours[0].message) and expected in str(ours[0].message)
    assert {"rdbm", "goub", "fm"} <= set(names)
    assert type(bz.get_bridge("rdbm")).__name__ == "RDBM"  # the built-in was not replaced
    rec = [p for p in bz.plugin_records() if p["distribution"] == "bridgezoo-bad"][0]
    assert expected in rec["error"]


def test_strict_mode_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIDGEZOO_STRICT_PLUGINS", "1")
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, "bridgezoo-bad", "bridgezoo_bad", BROKEN)))
    with pytest.raises(bz.PluginError, match="bridgezoo-bad.*frobnicate"):
        bz.list_bridges()


def test_load_plugins_filter(tmp_path, monkeypatch):
    source, ep_name, module, dist = readme_plugin()
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, dist, module, source, ep_name)))
    monkeypatch.setenv("BRIDGEZOO_LOAD_PLUGINS", "")
    assert "sine" not in bz.list_bridges() and "rdbm" in bz.list_bridges()


def test_unknown_bridge_lists_close_matches_and_failed_plugins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, "bridgezoo-bad", "bridgezoo_bad", BROKEN)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(bz.UnknownNameError) as err:
            bz.get_bridge("rdmb")
    msg = str(err.value)
    valid = msg.split("Valid bridges: ", 1)[1]
    assert re.search(r"Did you mean [^?]*'rdbm'", msg) and "bridgezoo_bad" in msg
    assert all(f"{name}," in valid or f"{name}." in valid for name in ("goub", "irsde", "rdbm")), valid
    assert "ir-sde" not in valid  # an alias is accepted, never listed: `bridgezoo list` does not show it
    assert isinstance(err.value, KeyError)


def test_alias_resolves():
    assert bz.get_bridge("flow-matching").name == "fm"


def test_unknown_names_suggest_and_list_only_the_names_list_shows():
    """Aliases (sr3, flow-matching, ...) are accepted but never listed: an error suggests the name they stand for."""
    import pytest

    for typo, meant in (("sr", "ddpm"), ("flow-matchin", "fm"), ("ir-sd", "irsde")):
        with pytest.raises(bz.UnknownNameError) as info:
            bz.get_bridge(typo)
        message = str(info.value)
        assert f"Did you mean '{meant}'?" in message, message
        for alias in ("sr3", "flow-matching", "conditional-diffusion", "ir-sde", "mean-flow"):
            assert alias not in message, (alias, message)


# ----------------------------------------------------------------------------- the CLI, as a real subprocess
def test_cli_list_json():
    res = run_cli("list", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    names = [b["name"] for b in data["bridges"]]
    assert names == sorted(names) and {"rdbm", "goub", "fm"} <= set(names)
    rdbm = [b for b in data["bridges"] if b["name"] == "rdbm"][0]
    assert rdbm["T"] == 100 and rdbm["default_nfe"] == 10 and rdbm["objective"] == "noise"
    assert rdbm["relation"]["kind"] == "exact" and rdbm["paper"].startswith("Residual Diffusion Bridge")


def test_cli_list_table_mentions_every_bridge():
    res = run_cli("list")
    assert res.returncode == 0, res.stderr
    for name in ("rdbm", "goub", "fm", "reverse_sde", "euler"):
        assert name in res.stdout


def test_cli_plugins_shows_a_broken_plugin_and_strict_fails(tmp_path):
    root = make_dist(tmp_path, "bridgezoo-bad", "bridgezoo_bad", BROKEN)
    res = run_cli("plugins", pythonpath=root, env_extra={"BRIDGEZOO_STRICT_PLUGINS": "0"})
    assert res.returncode == 0, res.stderr
    recs = {p["name"]: p for p in json.loads(res.stdout)}
    assert "frobnicate" in recs["bridgezoo_bad"]["error"] and recs["rdbm"]["error"] is None
    assert "bridgezoo-bad" in res.stderr  # the one warning
    res = run_cli("plugins", pythonpath=root, env_extra={"BRIDGEZOO_STRICT_PLUGINS": "1"})
    assert res.returncode == 2 and "frobnicate" in res.stderr and "Traceback" not in res.stderr


def test_cli_help_does_not_import_torch():
    code = ("import sys\nfrom bridgezoo.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("False"), res.stdout + res.stderr
