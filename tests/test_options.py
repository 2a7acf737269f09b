"""The declared option table (`bridgezoo.run.options.RunConfig`): one field is one option everywhere."""

from __future__ import annotations

import dataclasses

import pytest

from bridgezoo.run import options as run_options
from bridgezoo.run.options import BOOKKEEPING, EVALUATION, TRAINING, RunConfig, option

# what bench.py (NOT_TRAINING) and preflight.py (RESUME_FREE) spelled out by hand before the table: the roles must
# reproduce them, or every grid run's directory hash and every resume check would silently change
OLD_NOT_TRAINING = {"nfe", "sampler", "out", "quiet", "num_workers", "log_every", "save_every", "samples", "tile",
                    "tile_overlap", "crop_border", "eval_split", "eval_data", "eval_seed", "eval_sets", "eval_limit",
                    "log_with", "eval_precision", "eval_batch", "strict_pairs"}
OLD_RESUME_FREE = {"out", "quiet", "num_workers", "log_every", "save_every", "log_with", "compile", "eval_batch",
                   "strict_pairs"}


def test_roles_reproduce_the_hand_written_sets_and_the_grid_hash_is_unchanged():
    from bridgezoo.bench import training_key

    assert run_options.names(EVALUATION) | run_options.names(BOOKKEEPING) == OLD_NOT_TRAINING
    assert {f.name for f in run_options.fields() if f.metadata["resume_free"]} == OLD_RESUME_FREE
    config = dataclasses.asdict(RunConfig(bridge="goub", pi="one", backbone="unet-T", iters=600, batch=8,
                                          bridge_opts={"lam": 1e-4}))
    assert training_key(config) == "ffebe416"  # computed with the hand-written NOT_TRAINING


def test_every_field_is_declared_with_help_role_and_a_flag_of_bridgezoo_run():
    from bridgezoo.cli import build_parser

    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {s for a in run_parser._actions for s in a.option_strings}
    for f in dataclasses.fields(RunConfig):
        assert f.metadata["role"] in (TRAINING, EVALUATION, BOOKKEEPING), f.name
        assert run_options.help_text(f).strip(), f.name
        assert run_options.flag(f.name) in flags, f.name


def _with_new_option(monkeypatch):
    """RunConfig with one more field, declared once, as a contributor would add it."""
    extended = dataclasses.make_dataclass(
        "RunConfig", [("dropout", float, option(0.0, "dropout probability of the backbone's blocks (default 0)",
                                                 TRAINING, type=float, minimum=0)),
                      ("eval_flips", bool, option(False, "average the outputs over flips at evaluation", EVALUATION))],
        bases=(RunConfig,))
    monkeypatch.setattr(run_options, "RunConfig", extended)
    return extended


def test_a_new_option_declared_once_reaches_help_parsing_resume_check_grid_hash_and_report(monkeypatch):
    from bridgezoo.bench import training_key
    from bridgezoo.cli import build_parser
    from bridgezoo.report.collect import settings_of

    extended = _with_new_option(monkeypatch)
    parser = build_parser()
    run_parser = parser._subparsers._group_actions[0].choices["run"]
    assert "--dropout" in run_parser.format_help() and "dropout probability" in run_parser.format_help()
    args = parser.parse_args(["run", "--dropout", "0.1", "--eval-flips"])
    given = run_options.from_namespace(args)
    assert given == {"dropout": 0.1, "eval_flips": True}
    cfg = extended(**given).resolve(has_gpu=False)
    assert cfg.dropout == 0.1
    with pytest.raises(Exception, match="--dropout must not be negative"):
        extended(dropout=-1.0).resolve(has_gpu=False)
    saved = dataclasses.asdict(extended(**given)) | {"dropout": 0.0, "eval_flips": False}
    conflicts = run_options.resume_conflicts(dataclasses.asdict(extended(**given)), saved)
    assert conflicts == ["--dropout 0.1 (saved: 0.0)", "--eval-flips True (saved: False)"]
    base = dataclasses.asdict(extended())
    assert training_key(base | {"dropout": 0.1}) != training_key(base)  # a training option: its own run directory
    assert training_key(base | {"eval_flips": True}) == training_key(base)  # an evaluation option: the same run
    assert settings_of(base | {"dropout": 0.1})["dropout"] == 0.1  # a report row is named by it where it differs


def test_bad_key_value_options_name_the_flag():
    from bridgezoo.errors import OptionError

    with pytest.raises(OptionError, match="--bridge-opt expects KEY=VALUE, got 'lam'"):
        run_options.key_values(["lam"], "--bridge-opt")
    assert run_options.json_values(["dim=8", "name=x", "mults=[1,2]"], "--backbone-opt") == {
        "dim": 8, "name": "x", "mults": [1, 2]}
