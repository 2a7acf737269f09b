"""Data: the zoo5 generators and splits, and paired folders of real files written to temporary folders."""

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


# ----------------------------------------------------------------------------- zoo5's synthesis
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
