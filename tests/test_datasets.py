"""Dataset adapters on tiny copies of the published datasets, written in their real layouts and names
(tests/dataset_fixtures.py): pairing rules, official splits, the errors a user meets, training crops, evaluation per
test set, and `bridgezoo run --data NAME:PATH` / `data check` / `data list` as real subprocesses."""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch

from bridgezoo.seeding import derive_seed, numpy_rng
import bridgezoo as bz
from bridgezoo.data import DataError, DataWarning
from bridgezoo.data import open_data
from bridgezoo.data.adapters import DatasetAdapter, SplitSpec, TrainingPairs, scan_pair_dirs
from bridgezoo.data.paired import random_crop
from bridgezoo.metrics import per_test_set_summary

sys.path.insert(0, str(Path(__file__).parent))
import dataset_fixtures as F  # noqa: E402
from helpers import cli  # noqa: E402


def with_counts(adapter, **counts):
    """The adapter with the official counts replaced by the fixture's (so a complete fixture checks clean)."""
    adapter.splits = tuple(dataclasses.replace(s, expected=counts.get(s.name.replace("-", "_"), s.expected))
                           for s in adapter.splits)
    return adapter


def as01(t):
    """3×H×W in [-1, 1] → H×W×3 uint8, exactly the file's pixels."""
    return np.round((t.permute(1, 2, 0).numpy() + 1) / 2 * 255).astype(np.uint8)


def quiet(fn, *a, **kw):
    with pytest.warns(DataWarning):
        return fn(*a, **kw)


# ----------------------------------------------------------------------------------------------- deraining
def test_rain13k_restormer_layout_pairs_by_name_and_reports_each_test_set_on_y(tmp_path):
    root = F.rain13k(tmp_path)
    ad = with_counts(bz.get_dataset("rain13k"), Rain13K=3, Rain100H=2, Rain100L=2, Test100=2, Test1200=2, Test2800=2)
    report = ad.check(root, deep=True)
    assert report.ok, report.lines()
    assert "  Rain100L test: 2 of 2 pairs  [test/Rain100L/input + test/Rain100L/target" in "\n".join(report.lines())
    rain100l = next(sc for sc in report.scans if sc.spec.name == "Rain100L")
    assert sorted((p.lq.name, p.gt.name) for p in rain100l.pairs) == [("rain-001.png", "norain-001.png"),
                                                                      ("rain-002.png", "norain-002.png")]
    ev = ad.evaluation_set(root)
    sets = [ev[i]["test_set"] for i in range(len(ev))]
    assert sets == ["Rain100H"] * 2 + ["Rain100L"] * 2 + ["Test100"] * 2 + ["Test1200"] * 2 + ["Test2800"] * 2
    item = ev[2]
    assert item["metric"] == "y" and item["task"] == "derain" and item["name"] == "Rain100L/rain-001"
    assert np.array_equal(as01(item["gt"]), F.img(100 * 1 + 1)) and np.array_equal(as01(item["lq"]), F.img(1101))


def test_rain13k_diffuir_and_mmagic_layouts(tmp_path):
    root = F.rain13k(tmp_path / "syn_rain", layout="diffuir")
    scans = {sc.spec.name: sc for sc in bz.get_dataset("rain13k").scan(root)}
    assert scans["Rain13K"].where.startswith("train/input + train/target") and len(scans["Rain13K"].pairs) == 3
    mm = tmp_path / "mmagic_data"  # mmagic keeps the test sets at the top: data/Rain100H/{input,target}
    shutil.copytree(root / "test", mm)
    scans = {sc.spec.name: sc for sc in bz.get_dataset("rain13k").scan(mm)}
    assert len(scans["Test2800"].pairs) == 2 and "(mmagic)" in scans["Test2800"].where
    assert scans["Rain13K"].missing and "not found" in scans["Rain13K"].errors[0]


# ----------------------------------------------------------------------------------------------- LOL
@pytest.mark.parametrize("layout", ["official", "diffuir"])
def test_lol_our485_eval15_and_diffuir_layout(tmp_path, layout):
    root = F.lol(tmp_path, layout)
    ad = with_counts(bz.get_dataset("lol"), LOL_our485=3, LOL_eval15=2)
    report = ad.check(root)
    assert report.ok, report.lines()
    ev = ad.evaluation_set(root)
    assert [ev[i]["name"] for i in range(len(ev))] == ["LOL-eval15/1", "LOL-eval15/22"]
    assert ev[1]["metric"] == "rgb" and np.array_equal(as01(ev[1]["gt"]), F.img(72))


# ----------------------------------------------------------------------------------------------- Snow100K
def test_snow100k_archive_layout_finds_the_test_subsets_under_the_archive_prefix(tmp_path):
    root = F.snow100k(tmp_path)
    ad = with_counts(bz.get_dataset("snow100k"), Snow100K_train=2, Snow100K_S=2, Snow100K_L=2, Snow100K_M=2)
    report = ad.check(root)
    assert report.ok, report.lines()
    s = next(sc for sc in report.scans if sc.spec.name == "Snow100K-S")
    assert s.where.startswith("media/jdway/GameSSD/overlapping/test/Snow100K-S/synthetic")
    ev = ad.evaluation_set(root)  # -S and -L by default; -M only on request
    assert {ev[i]["test_set"] for i in range(len(ev))} == {"Snow100K-S", "Snow100K-L"}
    only_m = ad.evaluation_set(root, sets=["Snow100K-M"])
    assert len(only_m) == 2 and only_m[0]["name"] == "Snow100K-M/city_00000"
    with pytest.raises(DataError, match=r"unknown test set\(s\) 'Snow100K-XL'.*Did you mean"):
        ad.evaluation_set(root, sets=["Snow100K-XL"])
    # a broken optional set that is not used by default does not stop a run; asked for, it does
    shutil.rmtree(next(root.rglob("Snow100K-M")) / "gt")
    assert len(ad.evaluation_set(root)) == 4
    with pytest.raises(DataError, match=r"Snow100K-M: .*Snow100K-M/ has no gt/"):
        ad.evaluation_set(root, sets=["Snow100K-M"])


# ----------------------------------------------------------------------------------------------- RESIDE
def test_reside_outdoor_pairs_many_hazy_images_with_their_one_clear_image(tmp_path):
    root = F.reside_outdoor(tmp_path)
    ad = with_counts(bz.get_dataset("reside-outdoor"), SOTS_outdoor=3)
    report = ad.check(root, deep=True)
    assert report.ok, report.lines()
    ots = next(sc for sc in report.scans if sc.spec.name == "OTS")
    assert len(ots.pairs) == 70 and not ots.warnings  # 2 clear images × (5 A × 7 β)
    for p in ots.pairs:
        assert p.gt.name == p.lq.name.split("_")[0] + ".jpg"
    per_clear = pd.Series([p.gt.name for p in ots.pairs]).value_counts()
    assert per_clear.to_dict() == {"0025.jpg": 35, "0026.jpg": 35}
    ev = ad.evaluation_set(root)
    assert [ev[i]["name"] for i in range(len(ev))] == ["SOTS-outdoor/0001_0.8_0.2", "SOTS-outdoor/0002_1_0.08",
                                                       "SOTS-outdoor/0003_0.9_0.12"]
    assert np.array_equal(as01(ev[1]["gt"]), F.img(1))  # 0002_1_0.08.jpg ↔ 0002.png
    # a partial OTS download: the clear image with missing versions is named
    for f in sorted((root / "OTS_BETA/haze/part1").glob("0026_*.jpg"))[:5]:
        f.unlink()
    ots = next(sc for sc in ad.check(root).scans if sc.spec.name == "OTS")
    assert len(ots.pairs) == 65 and "without exactly 35 degraded versions: OTS_BETA/clear/0026.jpg" in ots.warnings[0]


def test_reside_indoor_reads_nested_its_v2_and_center_crops_larger_clear_images(tmp_path):
    root = F.reside_indoor(tmp_path)
    ad = with_counts(bz.get_dataset("reside-indoor"), ITS=10, SOTS_indoor=10)
    report = ad.check(root, deep=True)
    assert report.ok, report.lines()
    its = next(sc for sc in report.scans if sc.spec.name == "ITS")
    assert {p.gt.relative_to(root).as_posix() for p in its.pairs} == {"ITS_v2/clear/clear/1.png"}
    item = ad.evaluation_set(root)[0]  # hazy 1400_1.png is 12×12, clear 1400.png 16×16: center 12×12 of it
    assert item["name"] == "SOTS-indoor/1400_1" and item["gt"].shape == (3, 12, 12)
    assert np.array_equal(as01(item["gt"]), F.img(3, 16, 16)[2:14, 2:14])
    F.put(root / "SOTS/indoor/gt/1400.png", 3, h=10, w=10)  # smaller than its hazy image: cannot be aligned
    with pytest.raises(DataError, match=r"hazy/1400_1.png is 12×12 but .*gt/1400.png is 10×10"):
        ad.evaluation_set(root)[0]


# ----------------------------------------------------------------------------------------------- GoPro
def test_gopro_pairs_frames_within_their_sequence_and_reads_hide_and_realblur(tmp_path):
    root = F.gopro(tmp_path)
    ad = with_counts(bz.get_dataset("gopro"), GoPro_train=4, GoPro=2, HIDE=2, RealBlur_J=2, RealBlur_R=2)
    report = ad.check(root, deep=True)
    assert report.ok, report.lines()
    train = ad.training_set(root, patch=8, length=4)
    assert sorted(p.name for p in train.pairs["deblur"]) == ["GOPR0372_07_00/000047", "GOPR0372_07_00/000048",
                                                             "GOPR0374_11_01/000047", "GOPR0374_11_01/000048"]
    for p in train.pairs["deblur"]:  # the same frame name in two sequences: each blur pairs in its own sequence
        assert p.lq.parent.name == "blur" and p.lq.parent.parent == p.gt.parent.parent
        seq = 1 if "0374" in p.name else 0
        assert np.array_equal(iio.imread(p.gt), F.img(10 * seq + int(p.name[-1])))
    ev = ad.evaluation_set(root)
    names = [ev[i]["name"] for i in range(len(ev))]
    assert names == ["GoPro/GOPR0384_11_00/000001", "GoPro/GOPR0384_11_00/000002",
                     "HIDE/test-close-ups/1fromGOPR0950", "HIDE/test-long-shot/5fromGOPR1092",
                     "RealBlur-J/scene230/blur_1", "RealBlur-J/scene231/blur_7",
                     "RealBlur-R/scene230/blur_1", "RealBlur-R/scene231/blur_7"]
    assert np.array_equal(as01(ev[5]["gt"]), F.img(77)) and ev[5]["metric"] == "rgb"
    # a RealBlur list that names a file that is not there
    (root / "RealBlur/RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/scene231/gt/gt_7.png").unlink()
    real_r = next(sc for sc in ad.check(root).scans if sc.spec.name == "RealBlur-R")
    assert "1 file(s) named in RealBlur_R_test_list.txt are missing" in real_r.errors[0]
    assert "scene231/gt/gt_7.png" in real_r.errors[0]


def test_gopro_without_the_extra_test_sets_is_complete(tmp_path):
    root = F.gopro(tmp_path, extras=False)
    report = with_counts(bz.get_dataset("gopro"), GoPro_train=4, GoPro=2).check(root)
    assert report.ok, report.lines()
    hide = next(sc for sc in report.scans if sc.spec.name == "HIDE")
    assert hide.missing and hide.line() == "HIDE test (optional): not found" and hide.warnings


# ----------------------------------------------------------------------------------------------- universal5
def test_universal5_mixes_the_five_tasks_balanced_and_evaluates_every_test_set(tmp_path):
    root = F.universal5(tmp_path)
    ad = bz.get_dataset("universal5")
    train = quiet(ad.training_set, root, patch=8, length=25, seed=1)
    items = [train[i] for i in range(10)]
    assert [it["task"] for it in items] == ["derain", "lowlight", "desnow", "dehaze", "deblur"] * 2
    assert all(it["lq"].shape == (3, 8, 8) for it in items)
    ev = quiet(ad.evaluation_set, root)
    sets = list(dict.fromkeys(ev[i]["test_set"] for i in range(len(ev))))
    assert sets == ["Rain100H", "Rain100L", "Test100", "Test1200", "Test2800", "LOL-eval15", "Snow100K-S",
                    "Snow100K-L", "SOTS-outdoor", "GoPro"]
    two = quiet(ad.training_set, root, patch=8, length=10, tasks=["dehaze", "deblur"])
    assert {two[i]["task"] for i in range(10)} == {"dehaze", "deblur"}
    with pytest.raises(DataError, match=r"unknown task\(s\) 'dehazing'.*Did you mean .*'dehaze'"):
        ad.training_set(root, patch=8, length=10, tasks=["dehazing"])
    shutil.rmtree(root / "Snow100K")
    report = ad.check(root)
    snow = next(sc for sc in report.scans if sc.spec.name == "Snow100K-S")
    assert snow.missing and "Snow100K/" in snow.errors[0] and "snow100k dataset" in snow.errors[0]


# ----------------------------------------------------------------------------------------------- user errors
def test_a_missing_split_is_named_with_where_it_was_looked_for(tmp_path):
    root = F.rain13k(tmp_path)
    shutil.rmtree(root / "test/Test1200")
    report = bz.get_dataset("rain13k").check(root)
    text = "\n".join(report.lines())
    assert "Test1200 test: not found" in text and not report.ok
    assert "test/Test1200/input/ + test/Test1200/target/" in text
    assert "no 'Test1200' in test/ (it has: Rain100H, Rain100L, Test100, Test2800)" in text
    with pytest.raises(DataError, match=r"Test1200: not found.*bridgezoo data check rain13k:"):
        bz.get_dataset("rain13k").evaluation_set(root)


def test_a_renamed_folder_is_named_with_what_the_parent_holds(tmp_path):
    root = F.rain13k(tmp_path)
    (root / "test/Rain100H/target").rename(root / "test/Rain100H/gt")
    sc = next(s for s in bz.get_dataset("rain13k").check(root).scans if s.spec.name == "Rain100H")
    assert sc.errors == ["found test/Rain100H/input/ but not test/Rain100H/target/ (no 'target' in test/Rain100H/ "
                         "(it has: gt, input)); layout Restormer / MPRNet / DiffUIR"]


def test_a_partial_download_names_the_unpaired_files_and_the_count(tmp_path):
    root = F.rain13k(tmp_path)
    (root / "test/Test100/target/2.png").unlink()  # a GT missing
    F.put(root / "test/Rain100H/target/9.png", 9)  # a GT without its rainy image
    ad = with_counts(bz.get_dataset("rain13k"), Rain13K=3, Rain100H=2, Rain100L=2, Test100=2, Test1200=2, Test2800=2)
    report = ad.check(root)
    errors = report.errors()
    assert "Test100: 1 degraded image(s) without a ground truth (pairs by file name, ignoring a leading " \
           "rain-/norain-): test/Test100/input/2.png" in errors
    assert "Test100: 1 pair(s) fewer than the official 2 (a partial download?)" in errors
    assert "Rain100H: 1 ground-truth image(s) without a degraded image: test/Rain100H/target/9.png" in errors
    line = next(ln for ln in report.lines() if ln.startswith("  Test100"))
    assert line.startswith("  Test100 test: 1 of 2 pairs")
    # a run refuses the broken structure before anything is written; a short count alone only warns
    with pytest.raises(DataError, match="Rain100H: 1 ground-truth image"):
        ad.evaluation_set(root)
    (root / "test/Rain100H/target/9.png").unlink()
    (root / "test/Test100/input/2.png").unlink()
    with pytest.warns(DataWarning, match=r"Test100 1 of 2"):
        assert len(ad.evaluation_set(root)) == 9


def test_deep_check_decodes_every_image_and_compares_sizes(tmp_path):
    root = F.lol(tmp_path)
    ad = with_counts(bz.get_dataset("lol"), LOL_our485=3, LOL_eval15=2)
    F.put(root / "LOLdataset/eval15/high/22.png", 1, h=12, w=13)
    raw = (root / "LOLdataset/our485/low/5.png").read_bytes()
    (root / "LOLdataset/our485/low/5.png").write_bytes(raw[: len(raw) // 2])
    assert ad.check(root).ok  # names and counts are right
    errors = ad.check(root, deep=True).errors()
    assert any("our485/low/5.png: cannot read this image" in e for e in errors)
    assert any(e.startswith("LOL-eval15: size mismatch:") and "eval15/high/22.png is 13×12" in e for e in errors)


def test_a_wrong_root_and_wrong_specs_say_what_to_give(tmp_path):
    with pytest.raises(DataError, match="nope: not a folder"):
        bz.get_dataset("lol").check(tmp_path / "nope")
    F.rain13k(tmp_path / "rain")
    report = bz.get_dataset("lol").check(tmp_path / "rain")  # the wrong dataset's folder
    assert [sc.missing for sc in report.scans] == [True, True] and len(report.errors()) == 2
    with pytest.raises(DataError, match=r"give the dataset's root folder as lol:PATH"):
        open_data("lol")
    with pytest.raises(DataError, match=r"unknown dataset 'lool'. Did you mean 'lol'"):
        open_data("lool:/data/LOL")
    assert open_data("zoo5").kind == "zoo5" and open_data(str(tmp_path)).kind == "folder"
    (tmp_path / "lol").mkdir()  # an existing folder is paired folders, even one named like a dataset
    assert open_data(str(tmp_path / "lol")).kind == "folder"
    data = open_data(f"reside-outdoor:{tmp_path}")
    assert data.kind == "dataset" and data.adapter.name == "reside-outdoor" and data.root == tmp_path


# ----------------------------------------------------------------------------------------------- training draws
def test_training_draws_crop_the_cached_pixels_as_stored_and_equal_cropping_the_decoded_pair(tmp_path, monkeypatch):
    """A grey LQ with a larger RGB GT (center-cropped, as RESIDE's): the draw crops the stored pixels from the
    process's decoded-image cache and converts only the patch, and gives the pixels of the full-image path."""
    from bridgezoo.data import loading  # where TrainingPairs converts
    from bridgezoo.data.adapters import ImagePair, align_gt
    from bridgezoo.data.io import image_cache, read_image
    from bridgezoo.data.zoo5 import to_tensor

    lq, gt = F.put(tmp_path / "lq.png", 1, h=20, w=30), F.put(tmp_path / "gt.png", 2, h=24, w=34)
    iio.imwrite(lq, F.img(1, 20, 30)[..., 0])
    pair = ImagePair(lq, gt, "a")
    converted = []
    convert = loading.to_rgb01
    monkeypatch.setattr(loading, "to_rgb01", lambda arr, path: converted.append(arr.shape) or convert(arr, path))
    image_cache().clear()
    ds = TrainingPairs({"dehaze": [pair]}, patch=8, length=4, seed=0, gt_alignment="center-crop")
    for seed in range(3):
        item = ds.draw(0, seed)
        full_lq = read_image(lq)
        ref_lq, ref_gt = random_crop(full_lq, align_gt(full_lq, read_image(gt), pair, "center-crop"), 8,
                                     numpy_rng(seed))
        assert torch.equal(item["lq"], to_tensor(ref_lq)) and torch.equal(item["gt"], to_tensor(ref_gt))
    assert set(converted) == {(8, 8, 1), (8, 8, 3)}  # only patches were converted, the LQ still grey
    assert (image_cache().misses, image_cache().hits) == (2, 4)


def test_training_crops_change_with_every_draw_and_are_repeatable(tmp_path):
    lq, gt = tmp_path / "lq.png", tmp_path / "gt.png"
    base = F.img(0, 16, 16)
    iio.imwrite(gt, base)
    iio.imwrite(lq, 255 - base)  # LQ = 1 − GT: a crop at the same place shows as lq == −gt in [-1, 1]
    from bridgezoo.data.adapters import ImagePair

    ds = TrainingPairs({"x": [ImagePair(lq, gt, "a")]}, patch=8, length=40, seed=3)
    crops = [ds[i] for i in range(40)]
    assert all(torch.allclose(c["lq"], -c["gt"], atol=1e-6) for c in crops)
    distinct = {as01(c["gt"]).tobytes() for c in crops}
    assert len(distinct) > 20  # one pair, yet (almost) every draw its own crop: not a function of the pair alone
    assert torch.equal(TrainingPairs({"x": [ImagePair(lq, gt, "a")]}, 8, 40, seed=3)[7]["gt"], crops[7]["gt"])
    assert not torch.equal(TrainingPairs({"x": [ImagePair(lq, gt, "a")]}, 8, 40, seed=4)[7]["gt"], crops[7]["gt"])
    # the crop comes from the seed the caller passes (the training loop: one per draw)
    mine = ds.draw(5, 11)
    ref_lq, ref_gt = random_crop((255 - base).astype(np.float32) / 255, base.astype(np.float32) / 255, 8,
                                 numpy_rng(11))
    assert np.array_equal(as01(mine["gt"]), np.round(ref_gt * 255).astype(np.uint8))
    assert torch.equal(ds[5]["gt"], ds.draw(5, derive_seed(3, "draw", 5))["gt"])


def test_every_pair_is_drawn_once_per_pass_and_small_images_are_padded(tmp_path):
    from bridgezoo.data.adapters import ImagePair

    pairs = {t: [ImagePair(F.put(tmp_path / f"{t}{k}l.png", k, 6, 5), F.put(tmp_path / f"{t}{k}g.png", k, 6, 5),
                           f"{t}{k}") for k in range(3)] for t in ("a", "b")}
    ds = TrainingPairs(pairs, patch=8, length=12, seed=0)
    names = [ds.pair_of(i)[1].name for i in range(12)]
    assert sorted(names[0:6:2]) == ["a0", "a1", "a2"] and sorted(names[1:6:2]) == ["b0", "b1", "b2"]
    assert sorted(names[6:12:2]) == ["a0", "a1", "a2"]  # the next pass: a new order, every pair again
    assert ds[0]["lq"].shape == (3, 8, 8)  # 6×5 reflect-padded to the patch


# ----------------------------------------------------------------------------------------------- evaluation
def test_per_test_set_summary_uses_each_sets_convention_and_weighs_sets_equally():
    rows = []
    for k in range(3):
        rows.append({"test_set": "Rain100H", "metric": "y", "task": "derain", "psnr": 20.0 + k, "ssim": 0.5,
                     "psnr_y": 30.0 + k, "ssim_y": 0.9, "input_psnr": 10.0, "input_ssim": 0.1,
                     "input_psnr_y": 12.0, "input_ssim_y": 0.2})
    rows.append({"test_set": "GoPro", "metric": "rgb", "task": "deblur", "psnr": 25.0, "ssim": 0.8, "psnr_y": 27.0,
                 "ssim_y": 0.85, "input_psnr": 22.0, "input_ssim": 0.7, "input_psnr_y": 23.0, "input_ssim_y": 0.75})
    out = per_test_set_summary(pd.DataFrame(rows))
    rain, gopro = out["per_test_set"]["Rain100H"], out["per_test_set"]["GoPro"]
    assert (rain["psnr"], rain["ssim"], rain["input_psnr"], rain["images"]) == (31.0, 0.9, 12.0, 3)
    assert rain["convention"] == "Y (BT.601)" and rain["all"]["psnr"] == 21.0
    assert (gopro["psnr"], gopro["ssim"], gopro["convention"]) == (25.0, 0.8, "RGB")
    assert out["overall_test_sets"]["psnr"] == pytest.approx((31.0 + 25.0) / 2)  # sets, not images, weigh the same


# ----------------------------------------------------------------------------------------------- plugins
class TinySet(DatasetAdapter):
    summary = "a third-party dataset in one file"
    splits = (SplitSpec("tiny-train", "train", "denoise", 1), SplitSpec("tiny-test", "test", "denoise", 1))

    def scan_split(self, root, spec):
        part = "tr" if spec.role == "train" else "te"
        return scan_pair_dirs(spec, root, [(f"{part}/noisy", f"{part}/clean", "tiny")])


class TinyPlugin:
    @bz.hookimpl
    def register_datasets(self, register):
        register(TinySet, name="tiny")
        register(dict, name="not-an-adapter")


def test_a_third_party_dataset_registers_through_the_hook(tmp_path):
    from bridgezoo.registry import PluginWarning, registry

    with pytest.warns(PluginWarning, match="is not a subclass of bridgezoo.data.adapters.DatasetAdapter"):
        rec = registry().add_plugin(TinyPlugin())
    assert rec.provides["datasets"] == ["tiny"] and "tiny" in bz.list_datasets()
    for part in ("tr", "te"):
        F.make_pair(tmp_path / part / "noisy/a.png", tmp_path / part / "clean/a.png", 4)
    opened = open_data(f"tiny:{tmp_path}")
    adapter, root = opened.adapter, opened.root
    assert adapter.check(root).ok and adapter.evaluation_set(root)[0]["name"] == "tiny-test/a"


# ----------------------------------------------------------------------------------------------- command line
def test_data_check_and_list_on_the_command_line(tmp_path):
    root = F.lol(tmp_path / "LOL")
    lines = bz.get_dataset("lol").check(root).lines()  # what `data check` prints
    assert "  LOL-our485 train: 3 of 485 pairs  [LOLdataset/our485/low + LOLdataset/our485/high (LOLdataset)]" in lines
    assert "    error: 482 pair(s) fewer than the official 485 (a partial download?)" in lines
    res = cli("data", "check", f"lol:{root}", "--json")
    assert res.returncode == 1, res.stderr  # errors: exit 1
    report = json.loads(res.stdout)
    assert report["splits"][1] | {"where": None} == {
        "name": "LOL-eval15", "role": "test", "task": "lowlight", "found": 2, "expected": 15, "required": True,
        "where": None, "errors": [], "count_error": "13 pair(s) fewer than the official 15 (a partial download?)",
        "notes": []}
    rows = json.loads(cli("data", "list", "--json").stdout)
    u5 = {r["split"]: r for r in rows if r["dataset"] == "universal5"}
    assert u5["SOTS-outdoor"]["expected"] == 500 and u5["SOTS-outdoor"]["metric"] == "rgb"
    assert u5["Rain100H"]["metric"] == "y" and u5["Test2800"]["expected"] == 2800
    assert {r["task"] for r in u5.values()} == {"derain", "lowlight", "desnow", "dehaze", "deblur"}
    assert not u5["Snow100K-M"]["evaluated"] and u5["HIDE"]["evaluated"] and not u5["HIDE"]["required"]


TINY = ["--iters", "2", "--batch", "2", "--patch", "8", "--backbone", "unet-test", "--nfe", "2", "--preset",
        "cpu-small", "--log-every", "1", "--quiet"]


def test_run_trains_and_evaluates_on_a_lol_fixture(tmp_path):
    root = F.lol(tmp_path / "LOL")
    out = tmp_path / "run"
    res = cli("run", "--data", f"lol:{root}", "--out", out, *TINY)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "LOL-our485 3 of 485" in res.stderr  # the short counts are said, not fatal
    log = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    summary = json.loads((out / "summary.json").read_text())
    lol = summary["per_test_set"]["LOL-eval15"]
    assert lol["images"] == 2 and lol["convention"] == "RGB" and lol["task"] == "lowlight"
    df = pd.read_csv(out / "eval.csv")
    assert list(df["test_set"]) == ["LOL-eval15"] * 2 and list(df["name"]) == ["LOL-eval15/1", "LOL-eval15/22"]
    assert lol["psnr"] == pytest.approx(df["psnr"].mean()) and lol["input_psnr"] == pytest.approx(df["input_psnr"].mean())
    assert json.loads((out / "config.json").read_text())["data"] == f"lol:{root}"
    assert (out / "samples" / "LOL-eval15_1_output.png").exists() and (out / "model.safetensors").exists()


def test_run_on_universal5_reports_every_test_set_with_its_convention(tmp_path):
    root = F.universal5(tmp_path / "Restoration")
    out = tmp_path / "u5"
    res = cli("run", "--data", f"universal5:{root}", "--out", out, "--eval-limit", "1", *TINY)
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    per = s["per_test_set"]
    assert list(per) == ["Rain100H", "Rain100L", "Test100", "Test1200", "Test2800", "LOL-eval15", "Snow100K-S",
                         "Snow100K-L", "SOTS-outdoor", "GoPro"]
    assert all(r["images"] == 1 for r in per.values()) and s["images"] == 10
    assert per["Rain100H"]["convention"] == "Y (BT.601)" and per["Rain100H"]["psnr"] == per["Rain100H"]["all"]["psnr_y"]
    assert per["SOTS-outdoor"]["psnr"] == per["SOTS-outdoor"]["all"]["psnr"]
    assert set(s["per_task"]) == {"derain", "lowlight", "desnow", "dehaze", "deblur"}
    assert s["overall_test_sets"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in per.values()]))


def test_run_rejects_bad_data_options_before_writing_anything(tmp_path):
    root = F.lol(tmp_path / "LOL")
    out = tmp_path / "never"
    res = cli("run", "--data", f"lol:{root}", "--eval-sets", "Rain100H", "--out", out, *TINY)
    assert res.returncode == 2 and "unknown test set(s) 'Rain100H'" in res.stderr and not out.exists()
    from bridgezoo.errors import OptionError
    from bridgezoo.run import RunConfig, make_datasets

    with pytest.raises(OptionError, match="--eval-sets and --eval-limit apply to --data NAME:PATH"):
        make_datasets(RunConfig(data="zoo5", eval_limit=3).resolve(False))
    with pytest.raises(OptionError, match="--eval-data does not apply to --data lol:"):
        make_datasets(RunConfig(data=f"lol:{root}", eval_data=str(root)).resolve(False))
