"""The help pages document every option, `run --help` shows the presets, and `bridgezoo list` shows each bridge's
options and fits the terminal."""

import argparse
import json
import os
import subprocess
import sys

import pytest
from rich.cells import cell_len

from bridgezoo.cli import build_parser
from bridgezoo.presets import PRESETS


def subcommands(parser: argparse.ArgumentParser, prefix=()):
    """(command path, parser) for every (nested) subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from subcommands(sub, (*prefix, name))


def cli(*args, columns=None, code=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("COLUMNS", None)
    if columns:
        env["COLUMNS"] = str(columns)
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "bridgezoo.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_every_option_of_every_command_has_help():
    commands = dict(subcommands(build_parser()))
    assert {("run",), ("restore",), ("list",), ("bench",), ("report",), ("data", "preview")} <= set(commands)
    missing = []
    for path, parser in commands.items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"bridgezoo {' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "options without help: " + ", ".join(missing)


def test_run_help_shows_every_preset_value_without_importing_torch():
    code = ("import sys\nfrom bridgezoo.cli import main\ntry:\n    main(['run', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('torch imported:', 'torch' in sys.modules)")
    res = cli(code=code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("torch imported: False"), res.stdout[-300:]
    epilog = " ".join(res.stdout.split("presets (--preset", 1)[1].split())  # the epilog, unwrapped
    for name, values in PRESETS.items():
        block = " ".join(epilog.split(f" {name} ", 1)[1].split(" examples:")[0].split())
        for key, value in values.items():
            shown = "full size" if value is None else str(value)
            assert f"{key} {shown}" in block, (name, key, block)
    help_text = " ".join(res.stdout.split())
    assert "residual_output=BOOL" in help_text and "time_scale=FLOAT" in help_text  # the declared backbone options
    assert "(default: the bridge's own, the π column of `bridgezoo list`)" in help_text  # --pi
    assert "--strict-pairs" in help_text
    for option in ("--batch", "--lr", "--iters", "--save-every"):  # each preset-filled option names its values
        key = option[2:].replace("-", "_")
        assert f"cpu-small {PRESETS['cpu-small'][key]}, paper {PRESETS['paper'][key]}" in help_text, option


def test_restore_help_explains_each_flag():
    res = cli("restore", "--help")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    parser = dict(subcommands(build_parser()))[("restore",)]
    for action in parser._actions:
        if action.help and action.help != argparse.SUPPRESS:
            assert " ".join(action.help.split()) in text, action.option_strings
    assert "example: bridgezoo restore --run" in text


def test_list_json_includes_every_resolved_option():
    import bridgezoo as bz

    res = cli("list", "--json")
    assert res.returncode == 0, res.stderr
    listed = {b["name"]: b for b in json.loads(res.stdout)["bridges"]}
    assert sorted(listed) == bz.list_bridges()
    for name, entry in listed.items():
        expected = json.loads(json.dumps(bz.get_bridge(name).options, default=str))
        assert entry["options"] == expected, name


@pytest.mark.parametrize("columns", [80, 200])
def test_list_fits_the_terminal_and_shows_the_options(columns):
    """Piped (not a terminal) as the test runs it: 80 columns unless COLUMNS says otherwise."""
    res = cli("list", columns=columns)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    widest = max(lines, key=cell_len)
    assert cell_len(widest) <= columns, widest
    if columns > 150:
        assert cell_len(widest) > 150  # a wide terminal gets the one-row-per-bridge table, not 80 columns
    assert "other options" in res.stdout
    for option in ("sigma_max=80", "official_eta=False", "lam=0.03922", "sum_scale=1", "networks=1",
                   # each backbone's declared options (--backbone-opt) with its defaults, and what they mean
                   "residual_output=False", "dim_mults=[1,1,2,2]", "enc_blocks=[1,1,1,28]", "pretrained=False",
                   "residual_output: return prediction + mu"):
        assert option in res.stdout, option
    if columns < 150:  # narrow, or piped (80): plain `key  value` lines, no table columns squeezed to a word
        assert not set("│┃┏┡") & set(res.stdout), res.stdout[:500]
        assert "summary             DDBM's Heun (Karras grid" in res.stdout  # a sampler's summary in one piece
        assert len(lines) < 600, len(lines)
