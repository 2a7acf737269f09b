"""Data: the zoo5 generators and splits, and paired folders of real files written to temporary folders."""

import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import png
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from bridgezoo.data import SPLITS, TASKS, DataError, DataWarning, PairedFolders, Zoo5Eval, Zoo5Train
from bridgezoo.data.zoo5 import source

# Mean PSNR(LQ, GT) over the test split at max_side 256, three variants (documented in the README).
PSNR_RANGES = {"derain": (17, 24), "lowlight": (6, 11), "desnow": (14, 21), "dehaze": (8, 15), "deblur": (21, 29)}


def psnr(item):
    return peak_signal_noise_ratio(((item["gt"] + 1) / 2).numpy(), ((item["lq"] + 1) / 2).numpy(), data_range=1)


def test_generators_degrade_within_documented_ranges_and_are_deterministic():
    a = Zoo5Eval("test", variants=3, max_side=256)
    b = Zoo5Eval("test", variants=3, max_side=256)
    per_task = {}
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"])
        per_task.setdefault(x["task"], []).append(psnr(x))
    assert set(per_task) == set(TASKS)
    for task, values in per_task.items():
        lo, hi = PSNR_RANGES[task]
        assert lo <= np.mean(values) <= hi, (task, np.mean(values))
    other_seed = Zoo5Eval("test", variants=1, max_side=256, seed=1)
    assert not torch.equal(other_seed[0]["lq"], a[0]["lq"])


def test_degradations_cover_the_same_part_of_the_scene_at_every_resolution():
    """A photo fitted to 128 px and degraded with scale 0.25 is degraded like the 512-px photo, shrunk: the mean
    PSNR(LQ, GT) per task stays within 2.5 dB across resolutions, while ignoring the scale (lengths in pixels of
    the 512-px photo applied to the 128-px one) moves streaks, flakes and blur further."""
    from bridgezoo.data.zoo5 import _rng, degrade, scale_of

    def mean_psnr(task, side, scaled=True):
        values = []
        for name in SPLITS["test"]:
            for v in range(2):
                img, depth = source(name, side)
                lq = degrade(task, img, _rng("scale-test", task, name, v), depth,
                             scale_of(name, side) if scaled else 1.0)
                values.append(peak_signal_noise_ratio(img, lq, data_range=1))
        return np.mean(values)

    for task in TASKS:
        full, small = mean_psnr(task, 512), mean_psnr(task, 128)
        assert abs(full - small) < 2.5, (task, full, small)
        if task in ("derain", "deblur"):  # lengths in pixels that move PSNR (snow covers the same fraction either way)
            assert abs(mean_psnr(task, 128, scaled=False) - full) > abs(small - full) + 0.5, task


def test_training_crops_come_from_the_resolution_of_the_test_images():
    side = 96
    test_sides = {max(Zoo5Eval("test", max_side=side)[i]["gt"].shape[1:]) for i in range(5)}
    assert test_sides == {side}
    crops = Zoo5Train(patch=side, length=12, side=side)  # the patch of the whole photo: mirror-padded to square
    padded = 0
    for i in range(12):
        gt = crops[i]["gt"]
        assert gt.shape[1:] == (side, side)
        h, w = source(crops[i]["name"].split("#")[0], side)[0].shape[:2]
        p = min(h, w)
        if p < side:  # a photo narrower than the side: padded by its own mirror image, bottom and right
            padded += 1
            k = side - p
            assert torch.equal(gt[:, p : p + k], gt[:, p - k : p].flip(1))
            assert torch.equal(gt[:, :, p : p + k], gt[:, :, p - k : p].flip(2))
    assert padded > 0
    torch.utils.data.default_collate([crops[i]["gt"] for i in range(12)])  # every item stacks into one batch
    assert Zoo5Train(patch=200, length=3)[0]["gt"].shape[1:] == (200, 200)  # default side 512: a true 200² crop


def test_splits_are_disjoint_by_source_image():
    train, val, test = (set(SPLITS[s]) for s in ("train", "val", "test"))
    assert not (train & test) and not (val & test) and not (train & val)
    assert len(train | val | test) >= 15 and len(test) >= 5
    test_pixels = [source(n)[0] for n in test]
    for name in train | val:
        img = source(name)[0]
        assert img.shape[2] == 3
        assert not any(img.shape == t.shape and np.allclose(img, t) for t in test_pixels)
    ds = Zoo5Train(patch=32, length=60)
    assert {ds[i]["name"].split("#")[0] for i in range(60)} <= train


def test_training_patches_balance_tasks_and_single_tasks():
    mixed = Zoo5Train(tasks=["derain", "dehaze"], patch=48, length=20, seed=3)
    items = [mixed[i] for i in range(20)]
    assert [it["task"] for it in items] == ["derain", "dehaze"] * 10
    assert items[0]["lq"].shape == (3, 48, 48) and items[0]["lq"].min() >= -1 and items[0]["lq"].max() <= 1
    alone = Zoo5Train(tasks="deblur", patch=32, length=5)
    assert {alone[i]["task"] for i in range(5)} == {"deblur"}
    with pytest.raises(DataError, match="Did you mean 'derain'"):
        Zoo5Train(tasks=["drain"])


def test_dataloader_with_two_workers_is_repeatable():
    ds = Zoo5Train(patch=32, length=16, seed=5)

    def batches():
        loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=2,
                                             generator=torch.Generator().manual_seed(7))
        return [b["lq"] for b in loader]

    first, second = batches(), batches()
    assert len(first) == 4 and all(torch.equal(x, y) for x, y in zip(first, second))


# ----------------------------------------------------------------------------- paired folders
def write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.dtype == np.uint16 and path.suffix == ".png":
        h, w = arr.shape[:2]
        mode = "RGB;16" if arr.ndim == 3 else "L;16"
        png.from_array(arr.reshape(h, -1), mode).save(str(path))
    else:
        iio.imwrite(path, arr)
    return path


def rgb(h=20, w=24, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("names", [("LQ", "GT"), ("input", "target"), ("low", "high"), ("lq", "Gt")])
def test_layouts(tmp_path, names):
    for i, ext in enumerate([".png", ".jpg", ".bmp", ".tif"]):
        write(tmp_path / names[0] / f"img{i}{ext}", rgb(seed=i))
        write(tmp_path / names[1] / f"img{i}{ext}", rgb(seed=10 + i))
    ds = PairedFolders(tmp_path)
    assert len(ds) == 4
    item = ds[0]
    assert item["lq"].shape == (3, 20, 24) and item["name"].endswith("img0")
    expected = rgb(seed=0).astype(np.float32) / 255 * 2 - 1
    np.testing.assert_allclose(item["lq"].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_explicit_folders_and_multitask_layout(tmp_path):
    for task in ("Deraining", "Dehazing"):
        write(tmp_path / "all" / task / "input" / "a.png", rgb())
        write(tmp_path / "all" / task / "target" / "a.png", rgb(seed=1))
    ds = PairedFolders(tmp_path / "all")
    assert sorted(ds[i]["task"] for i in range(len(ds))) == ["Dehazing", "Deraining"]
    ds2 = PairedFolders(lq_dir=tmp_path / "all/Deraining/input", gt_dir=tmp_path / "all/Deraining/target")
    assert len(ds2) == 1


def test_a_plain_pair_is_one_task_named_after_its_data_folder_not_its_split(tmp_path):
    for split in ("train", "Test", "val"):
        write(tmp_path / "mydata" / split / "LQ" / "a.png", rgb())
        write(tmp_path / "mydata" / split / "GT" / "a.png", rgb(seed=1))
    for split in ("train", "Test", "val"):
        assert [p.task for p in PairedFolders(tmp_path / "mydata" / split).pairs] == ["mydata"]
    assert {p.task for p in PairedFolders(tmp_path / "mydata").pairs} == {"mydata"}  # its splits, not 3 tasks
    assert PairedFolders(tmp_path / "mydata" / "train", task="rain").describe("train")["per_task"] == {"rain": 1}
    write(tmp_path / "multi" / "train" / "Deraining" / "input" / "a.png", rgb())
    write(tmp_path / "multi" / "train" / "Deraining" / "target" / "a.png", rgb(seed=1))
    multi = PairedFolders(tmp_path / "multi" / "train", task="ignored")  # a multi-task root keeps its folders' names
    assert [p.task for p in multi.pairs] == ["Deraining"]


def test_16_bit_gray_and_rgba_are_converted(tmp_path):
    v16 = np.linspace(0, 65535, 20 * 24 * 3).round().astype(np.uint16).reshape(20, 24, 3)
    write(tmp_path / "LQ" / "a.png", v16)
    write(tmp_path / "GT" / "a.png", v16)
    gray = rgb()[..., 0]
    write(tmp_path / "LQ" / "b.png", gray)
    write(tmp_path / "GT" / "b.png", gray)
    rgba = np.dstack([rgb(), np.full((20, 24), 128, np.uint8)])
    write(tmp_path / "LQ" / "c.png", rgba)
    write(tmp_path / "GT" / "c.png", rgba)
    ds = PairedFolders(tmp_path)
    a, b, c = ds[0], ds[1], ds[2]
    np.testing.assert_allclose(a["lq"].permute(1, 2, 0).numpy(), v16 / 65535 * 2 - 1, atol=1e-6)  # scaled, not clipped
    assert a["lq"].max() == 1.0 and len(torch.unique(a["lq"])) > 1000  # 16-bit levels kept, none saturated
    assert torch.equal(b["lq"][0], b["lq"][1]) and b["lq"].shape[0] == 3
    np.testing.assert_allclose(c["lq"].permute(1, 2, 0).numpy(), rgb() / 255 * 2 - 1, atol=1e-6)
    notes = " ".join(n for v in ds.notes.values() for n in v)
    assert "16-bit" in notes and "grayscale" in notes and "alpha dropped" in notes


def test_size_mismatch_names_both_files(tmp_path):
    write(tmp_path / "LQ" / "a.png", rgb(20, 24))
    write(tmp_path / "GT" / "a.png", rgb(20, 25))
    with pytest.raises(DataError, match=r"LQ/a.png is 24×20 but .*GT/a.png is 25×20"):
        PairedFolders(tmp_path)


def test_missing_partner_warns_or_fails_in_strict_mode(tmp_path):
    for d in ("LQ", "GT"):
        write(tmp_path / d / "a.png", rgb())
    write(tmp_path / "LQ" / "lonely.png", rgb())
    with pytest.warns(DataWarning, match=r"1 file\(s\) without a partner.*LQ/lonely.png"):
        ds = PairedFolders(tmp_path)
    assert len(ds) == 1
    with pytest.raises(DataError, match="lonely.png"):
        PairedFolders(tmp_path, strict=True)


def test_truncated_unreadable_empty_and_non_images(tmp_path):
    for d in ("LQ", "GT"):
        write(tmp_path / d / "a.jpg", rgb(64, 64))
    raw = (tmp_path / "LQ" / "a.jpg").read_bytes()
    (tmp_path / "LQ" / "a.jpg").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"LQ/a.jpg: cannot read"):
        PairedFolders(tmp_path)
    (tmp_path / "LQ" / "a.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match=r"LQ/a.jpg: cannot read"):
        PairedFolders(tmp_path)
    empty = tmp_path / "e"
    (empty / "LQ").mkdir(parents=True)
    (empty / "GT").mkdir()
    with pytest.raises(DataError, match=r"e/LQ: the folder is empty"):
        PairedFolders(empty)
    ok = tmp_path / "ok"
    for d in ("LQ", "GT"):
        write(ok / d / "a.png", rgb())
    (ok / "LQ" / "notes.txt").write_text("hello")
    with pytest.warns(DataWarning, match="non-image file.*notes.txt"):
        assert len(PairedFolders(ok)) == 1


def test_float_tiff_nan_is_an_error_naming_the_file(tmp_path):
    f = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    write(tmp_path / "GT" / "a.tif", f)
    f[2, 3, 1] = np.nan
    write(tmp_path / "LQ" / "a.tif", f)
    with pytest.raises(DataError, match=r"LQ/a.tif: 1 pixel value\(s\) are NaN or Inf"):
        PairedFolders(tmp_path)


def test_small_images_are_padded_or_rejected(tmp_path):
    for d in ("LQ", "GT"):
        write(tmp_path / d / "a.png", rgb(20, 24))
    ds = PairedFolders(tmp_path, patch=32)
    assert ds[0]["lq"].shape == (3, 32, 32)
    with pytest.raises(DataError, match=r"a.png: 24×20 is smaller than the training patch 32"):
        PairedFolders(tmp_path, patch=32, small="reject")


def test_no_pairs_found_explains_the_layouts(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="LQ/ \\+ GT/"):
        PairedFolders(tmp_path)


def test_preview_cli_writes_a_picture(tmp_path):
    out = tmp_path / "preview.png"
    res = subprocess.run([sys.executable, "-m", "bridgezoo.cli", "data", "preview", "--tasks", "derain", "dehaze",
                          "--per-task", "2", "--max-side", "96", "--out", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    img = iio.imread(out)
    assert img.shape[0] > 100 and img.shape[1] > 200 and img[..., :3].std() > 10
    bad = subprocess.run([sys.executable, "-m", "bridgezoo.cli", "data", "preview", "--data", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "nope: not a folder" in bad.stderr and not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- the fast data path
def paired_pngs(root, n=3, h=72, w=96):
    """n PNG pairs under root/{LQ,GT}: 8-bit RGB, 8-bit grey and RGBA (decoded in different pixel layouts)."""
    for k in range(n):
        lq, gt = rgb(h, w, seed=k), rgb(h, w, seed=100 + k)
        if k % 3 == 1:
            lq, gt = lq[..., 0], gt[..., 0]
        elif k % 3 == 2:
            lq, gt = (np.dstack([a, np.full((h, w), 200, np.uint8)]) for a in (lq, gt))
        write(root / "LQ" / f"{k}.png", lq)
        write(root / "GT" / f"{k}.png", gt)
    return root


def test_a_paired_crop_converts_only_the_patch_and_equals_cropping_the_decoded_image(tmp_path, monkeypatch):
    from bridgezoo.data import paired
    from bridgezoo.data.io import read_image
    from bridgezoo.data.paired import random_crop
    from bridgezoo.data.zoo5 import to_tensor
    from bridgezoo.seeding import numpy_rng

    root = paired_pngs(tmp_path / "d", n=3)
    write(tmp_path / "d" / "LQ" / "small.png", rgb(20, 24, seed=7))  # smaller than the patch: padded
    write(tmp_path / "d" / "GT" / "small.png", rgb(20, 24, seed=8))
    converted = []
    convert = paired.to_rgb01
    monkeypatch.setattr(paired, "to_rgb01", lambda arr, path: converted.append(arr.shape[:2]) or convert(arr, path))
    ds = PairedFolders(root, patch=32)
    for i in range(len(ds.pairs)):
        for seed in range(4):
            item = ds.draw(i, seed)
            pair = ds.pairs[i]
            lq, gt = random_crop(read_image(pair.lq), read_image(pair.gt), 32, numpy_rng(seed))
            assert torch.equal(item["lq"], to_tensor(lq)) and torch.equal(item["gt"], to_tensor(gt))
    assert converted and set(converted) == {(32, 32)}  # the old path converted the whole 72×96 image


def test_decoded_images_are_cached_within_a_byte_budget_and_hit_on_the_second_access(tmp_path, monkeypatch):
    from bridgezoo.data import io
    from bridgezoo.data.io import ImageCache, image_cache

    files = [write(tmp_path / f"{k}.png", rgb(40, 50, seed=k)) for k in range(4)]
    one = 40 * 50 * 3  # bytes of one decoded 8-bit RGB image
    cache = ImageCache(int(2.5 * one))
    a = cache.get(files[0])
    assert (cache.hits, cache.misses) == (0, 1) and cache.get(files[0]) is a and cache.hits == 1
    assert not a.flags.writeable  # callers crop and convert; nobody can change the cached pixels
    for f in files[1:]:
        cache.get(f)
        assert cache.nbytes <= cache.max_bytes
    assert len(cache) == 2 and cache.nbytes == 2 * one  # the least recently used were evicted
    cache.get(files[0])
    assert cache.misses == 5
    write(files[3], rgb(40, 50, seed=99))  # a file rewritten meanwhile is decoded again
    os.utime(files[3], ns=(1, 1))
    assert np.array_equal(cache.get(files[3]), rgb(40, 50, seed=99)) and cache.misses == 6
    small = ImageCache(one - 1)
    assert small.get(files[0]).shape == (40, 50, 3) and len(small) == 0  # larger than the budget: returned, not kept

    monkeypatch.setenv("BRIDGEZOO_IMAGE_CACHE_MB", "3")
    monkeypatch.setattr(io, "_CACHE", None)
    assert image_cache().max_bytes == 3 * 2**20
    ds = PairedFolders(paired_pngs(tmp_path / "d", n=2), patch=16)
    ds.draw(0, seed=1)
    assert (image_cache().hits, image_cache().misses) == (0, 2)
    ds.draw(0, seed=2)  # another crop of the same pair: no decode
    assert (image_cache().hits, image_cache().misses) == (2, 2)
    monkeypatch.setenv("BRIDGEZOO_IMAGE_CACHE_MB", "lots")
    monkeypatch.setattr(io, "_CACHE", None)
    with pytest.raises(DataError, match="BRIDGEZOO_IMAGE_CACHE_MB='lots'"):
        image_cache()


def test_paired_folders_pickle_small_and_each_worker_starts_with_an_empty_cache(tmp_path):
    import multiprocessing
    import pickle

    from bridgezoo.data.io import ImageCache, image_cache

    ds = PairedFolders(paired_pngs(tmp_path / "d", n=3, h=128, w=128), patch=32)
    for i in range(3):
        ds.draw(i, seed=i)
    assert image_cache().nbytes >= 3 * 128 * 128  # decoded images are held by the process...
    assert len(pickle.dumps(ds)) < 2000  # ...not by the dataset a DataLoader pickles to its workers (paths, sizes)
    copy = pickle.loads(pickle.dumps(image_cache()))
    assert isinstance(copy, ImageCache) and len(copy) == 0 and copy.max_bytes == image_cache().max_bytes
    with multiprocessing.get_context("fork").Pool(1) as pool:  # a forked worker counts only what it decodes
        assert pool.apply(_worker_cache_size) == 0


def _worker_cache_size():
    from bridgezoo.data.io import image_cache

    return len(image_cache())


def test_the_dataset_scan_decodes_each_file_once_across_processes(tmp_path, monkeypatch):
    import json

    from bridgezoo.data import scans

    monkeypatch.setenv("BRIDGEZOO_CACHE_DIR", str(tmp_path / "cache"))
    root = paired_pngs(tmp_path / "d", n=3)
    first = PairedFolders(root)
    assert first.scan_decoded == 6
    again = PairedFolders(root, patch=16)  # another process, another run: sizes and notes from the record
    assert again.scan_decoded == 0 and [p.size for p in again.pairs] == [p.size for p in first.pairs]
    assert again.conversions == first.conversions and again.conversions  # grey and RGBA notes kept
    write(root / "LQ" / "1.png", rgb(72, 96, seed=50))  # a changed file is decoded again
    os.utime(root / "LQ" / "1.png", ns=(1, 1))
    assert PairedFolders(root).scan_decoded == 1
    (root / "GT" / "2.png").write_bytes((root / "GT" / "2.png").read_bytes()[:200])  # truncated: fails every time
    for _ in range(2):
        with pytest.raises(DataError, match=r"GT/2.png: cannot read"):
            PairedFolders(root)
    record = next((tmp_path / "cache" / "scans").glob("*.json"))
    assert str((root / "GT" / "2.png").resolve()) not in json.loads(record.read_text())["files"]
    # processes that scan at once take turns: the first decodes, the others read its record
    fresh = paired_pngs(tmp_path / "e", n=4)
    code = ("import sys; from bridgezoo.data import PairedFolders; "
            "print(PairedFolders(sys.argv[1]).scan_decoded)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(fresh)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "BRIDGEZOO_CACHE_DIR": str(tmp_path / "cache")}) for _ in range(2)]
    assert sorted(int(p.communicate(timeout=120)[0]) for p in procs) == [0, 8]
    monkeypatch.setenv("BRIDGEZOO_CACHE_DIR", str(write(tmp_path / "not-a-folder.png", rgb())))
    assert PairedFolders(root / "..", lq_dir=fresh / "LQ", gt_dir=fresh / "GT").scan_decoded == 8  # no record: decoded
    assert scans.cache_dir() == tmp_path / "not-a-folder.png"


def test_derain_draws_the_streaks_of_the_per_streak_loop_pixel_for_pixel():
    """The vectorised streak layer is the original loop's, so zoo5's derain items (and the test images every
    committed number was measured on) are unchanged."""
    from scipy import ndimage
    from skimage.draw import line_aa

    from bridgezoo.data.degradations import _blend_screen, derain

    def reference(img, rng, scale):  # the per-streak loop as first published
        h, w = img.shape[:2]
        n = int(rng.uniform(40, 120) * h * w / 1e4 / scale)
        base = np.deg2rad(rng.uniform(-25, 25))
        length, width, opacity = rng.uniform(8, 35) * scale, int(rng.integers(1, 3)), rng.uniform(0.6, 0.95)
        layer = np.zeros((h + 80, w + 80), np.float32)
        ys, xs = rng.uniform(0, h + 80, n), rng.uniform(0, w + 80, n)
        lens = length * rng.uniform(0.6, 1.4, n)
        angles = base + np.deg2rad(rng.uniform(-3, 3, n))
        for y, x, ln, a in zip(ys, xs, lens, angles):
            y1, x1 = y + ln * np.cos(a), x + ln * np.sin(a)
            rr, cc, val = line_aa(int(y), int(x), int(np.clip(y1, 0, h + 79)), int(np.clip(x1, 0, w + 79)))
            layer[rr, cc] = np.maximum(layer[rr, cc], val * rng.uniform(0.6, 1.0))
        if width > 1:
            layer = ndimage.grey_dilation(layer, size=(1, width))
        layer = ndimage.gaussian_filter(layer, 0.6 * max(scale, 0.5))[40 : 40 + h, 40 : 40 + w]
        return np.clip(_blend_screen(img, layer / max(layer.max(), 1e-6), opacity), 0, 1).astype(np.float32)

    shapes = np.random.default_rng(0)
    for k in range(12):
        h, w = (int(v) for v in shapes.integers(4, 160, 2))
        scale = [1.0, 0.5, 0.19][k % 3]
        img = shapes.random((h, w, 3)).astype(np.float32)
        assert np.array_equal(derain(img, np.random.default_rng(k), scale=scale),
                              reference(img, np.random.default_rng(k), scale)), (h, w, scale)


def test_zoo5_warm_loads_the_photographs_a_forked_worker_inherits():
    import multiprocessing

    source.cache_clear()
    ds = Zoo5Train(patch=16, length=4, side=48).warm()
    loaded = source.cache_info().misses
    assert source.cache_info().currsize >= len(SPLITS["train"])
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_loads_of_one_item, (ds,)) == 0  # the worker's items load no photograph
    ds[0]
    assert source.cache_info().misses == loaded


def _loads_of_one_item(ds):
    before = source.cache_info().misses
    ds[1]
    return source.cache_info().misses - before
