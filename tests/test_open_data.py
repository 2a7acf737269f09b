"""`bridgezoo.data.open_data`: one dispatch of a --data spec (zoo5, a folder, NAME:PATH) to one adapter interface,
giving the sets a run trains and evaluates on, and a check that reads nothing but the folder's existence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import bridgezoo as bz
from bridgezoo.data import DataError, open_data
from bridgezoo.errors import OptionError
from bridgezoo.run import RunConfig, make_datasets

sys.path.insert(0, str(Path(__file__).parent))
import dataset_fixtures as F  # noqa: E402


def plain_folder(root):
    for split, seeds in (("train", (1, 2, 3)), ("test", (7,))):
        for s in seeds:
            F.make_pair(root / split / "lq" / f"{s}.png", root / split / "gt" / f"{s}.png", s)
    return root


def same_items(a, b, n):
    assert len(a) == len(b)
    for i in range(min(n, len(a))):
        x, y = a[i], b[i]
        assert x["task"] == y["task"] and x["name"] == y["name"]
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"])


def test_each_spec_opens_to_its_adapter(tmp_path):
    assert (open_data("zoo5").kind, open_data("zoo5").root) == ("zoo5", None)
    assert open_data(str(tmp_path)).kind == "folder" and open_data(str(tmp_path)).root == tmp_path
    (tmp_path / "lol").mkdir()  # an existing folder is paired folders, even one named like a dataset
    assert open_data(str(tmp_path / "lol")).kind == "folder"
    data = open_data(f"reside-outdoor:{tmp_path}")
    assert (data.kind, data.adapter.name, data.root) == ("dataset", "reside-outdoor", tmp_path)
    assert open_data(str(tmp_path / "missing")).kind == "folder"  # reported by check, not here
    with pytest.raises(DataError, match=r"give the dataset's root folder as lol:PATH"):
        open_data("lol")
    with pytest.raises(DataError, match=r"unknown dataset 'lool'. Did you mean 'lol'"):
        open_data("lool:/data/LOL")
    with pytest.raises(DataError, match=r"the path after 'lol:' is empty"):
        open_data("lol:")
    assert "zoo5" not in bz.list_datasets() and "folder" not in bz.list_datasets()  # `data list` is unchanged


@pytest.mark.filterwarnings("ignore::bridgezoo.data.DataWarning")  # the tiny copy has fewer pairs than LOL
@pytest.mark.parametrize("kind", ["zoo5", "folder", "dataset"])
def test_the_sets_are_the_ones_a_run_builds(tmp_path, kind):
    spec = {"zoo5": "zoo5", "folder": str(plain_folder(tmp_path / "mine")),
            "dataset": f"lol:{F.lol(tmp_path / 'lol')}"}[kind]
    cfg = RunConfig(data=spec, iters=3, batch=2, patch=8, eval_max_side=32).resolve(False)
    train, evalset = make_datasets(cfg)
    data = open_data(spec)
    extra_train, extra_eval = {
        "zoo5": ({"side": cfg.eval_max_side},
                 {"split": cfg.eval_split, "max_side": cfg.eval_max_side, "seed": cfg.eval_seed, "variants": 2}),
        "folder": ({"strict": cfg.strict_pairs}, {"seed": cfg.seed, "strict": cfg.strict_pairs}),
        "dataset": ({}, {}),
    }[kind]
    mine = data.training_set(patch=cfg.patch, length=cfg.iters * cfg.batch, seed=cfg.seed, tasks=cfg.tasks,
                             **extra_train)
    same_items(mine, train, 3)
    same_items(data.evaluation_set(tasks=cfg.tasks, **extra_eval), evalset, 2)


def test_check_reads_nothing_but_the_folder(tmp_path, monkeypatch):
    data = open_data(f"lol:{tmp_path}")
    monkeypatch.setattr(type(data.adapter), "scan", lambda *a, **k: pytest.fail("check scanned the dataset"))
    data.check()
    with pytest.raises(DataError, match=r"--data lol:.*missing is not a folder"):
        open_data(f"lol:{tmp_path / 'missing'}").check()
    with pytest.raises(DataError, match=r"missing: not a folder \(--data takes zoo5"):
        open_data(str(tmp_path / "missing")).check()
    with pytest.raises(OptionError, match=r"--tasks selects tasks of zoo5"):
        open_data(str(tmp_path)).check(tasks=["derain"])
    open_data("zoo5").check(tasks=["derain"], split="val")
    with pytest.raises(OptionError, match=r"--eval-split 'nope': zoo5 splits are"):
        open_data("zoo5").check(split="nope")
    with pytest.raises(Exception, match=r"derian"):
        open_data("zoo5").check(tasks=["derian"])


def test_options_of_another_source_are_errors_naming_them(tmp_path):
    with pytest.raises(OptionError, match=r"--eval-sets and --eval-limit apply to --data NAME:PATH"):
        open_data("zoo5").evaluation_set(limit=2)
    with pytest.raises(OptionError, match=r"--task-batch applies to zoo5 and to registered datasets"):
        open_data(str(plain_folder(tmp_path))).training_set(patch=8, batch_pattern=["derain"])
