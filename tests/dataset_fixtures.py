"""Tiny copies of the published datasets in their real layouts and names (12×12 images: the Gaussian SSIM window
of the metrics needs 11 pixels), for the adapter tests."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

SIDE = 12


def img(seed: int, h: int = SIDE, w: int = SIDE) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def put(path: Path, seed: int, h: int = SIDE, w: int = SIDE) -> Path:
    """An image file whose pixels are a function of `seed` (PNG is lossless, so tests can compare pixels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, img(seed, h, w))
    return path


def make_pair(lq: Path, gt: Path, seed: int, **size):
    put(lq, 1000 + seed, **size)
    put(gt, seed, **size)


def rain13k(root: Path, layout: str = "restormer", n: int = 2) -> Path:
    """Restormer `Datasets/{train/Rain13K,test/SET}/{input,target}` or DiffUIR `syn_rain/{train,test/SET}/...`;
    Rain100L keeps its original `rain-NNN` / `norain-NNN` names."""
    train = root / ("train/Rain13K" if layout == "restormer" else "train")
    for i in range(1, n + 2):
        make_pair(train / "input" / f"{i}.jpg", train / "target" / f"{i}.jpg", i)
    for k, name in enumerate(("Rain100H", "Rain100L", "Test100", "Test1200", "Test2800")):
        for i in range(1, n + 1):
            lq, gt = (f"rain-{i:03d}.png", f"norain-{i:03d}.png") if name == "Rain100L" else (f"{i}.png", f"{i}.png")
            make_pair(root / "test" / name / "input" / lq, root / "test" / name / "target" / gt, 100 * k + i)
    return root


def lol(root: Path, layout: str = "official") -> Path:
    """The authors' `LOLdataset/{our485,eval15}/{low,high}` or DiffUIR's `LOL/{train,test}/{low,high}`."""
    train, test = ("LOLdataset/our485", "LOLdataset/eval15") if layout == "official" else ("train", "test")
    for i in (2, 5, 7):
        make_pair(root / train / "low" / f"{i}.png", root / train / "high" / f"{i}.png", i)
    for i in (1, 22):
        make_pair(root / test / "low" / f"{i}.png", root / test / "high" / f"{i}.png", 50 + i)
    return root


def snow100k(root: Path) -> Path:
    """The authors' archives: `all/{synthetic,gt,mask}` and the test archive's long prefix `.../test/Snow100K-X/`."""
    for i, name in enumerate(("beautiful_smile_00001", "winter_00007")):
        make_pair(root / "all/synthetic" / f"{name}.jpg", root / "all/gt" / f"{name}.jpg", i)
        put(root / "all/mask" / f"{name}.jpg", 7)
    test = root / "media/jdway/GameSSD/overlapping/test"
    for k, sub in enumerate(("Snow100K-S", "Snow100K-L", "Snow100K-M")):
        for i in range(2):
            make_pair(test / sub / "synthetic" / f"city_{i:05d}.jpg", test / sub / "gt" / f"city_{i:05d}.jpg", 10 * k + i)
            put(test / sub / "mask" / f"city_{i:05d}.jpg", 3)
    return root


OTS_A = (0.8, 0.85, 0.9, 0.95, 1)
OTS_BETA = (0.04, 0.06, 0.08, 0.1, 0.12, 0.16, 0.2)


def reside_outdoor(root: Path, clears=("0025", "0026")) -> Path:
    """RESIDE-β `OTS_BETA/haze/part1/ID_A_β.jpg` (35 per clear) ↔ `OTS_BETA/clear/ID.jpg`; RESIDE
    `SOTS/outdoor/hazy/0001_0.8_0.2.jpg` ↔ `SOTS/outdoor/gt/0001.png`."""
    for c, cid in enumerate(clears):
        put(root / "OTS_BETA/clear" / f"{cid}.jpg", c)
        for a in OTS_A:
            for b in OTS_BETA:
                put(root / "OTS_BETA/haze/part1" / f"{cid}_{a}_{b}.jpg", 500 + c)
    for i, (cid, a, b) in enumerate((("0001", 0.8, 0.2), ("0002", 1, 0.08), ("0003", 0.9, 0.12))):
        make_pair(root / "SOTS/outdoor/hazy" / f"{cid}_{a}_{b}.jpg", root / "SOTS/outdoor/gt" / f"{cid}.png", i)
    return root


def reside_indoor(root: Path) -> Path:
    """ITS_v2 with its nested `hazy/hazy/ID_K_T.png` and `clear/clear/ID.png` (10 hazy per clear); SOTS indoor
    `hazy/1400_K.png` ↔ `gt/1400.png`, the clear images 4 px larger than the hazy ones (center-cropped)."""
    put(root / "ITS_v2/clear/clear/1.png", 1)
    for k in range(1, 11):
        put(root / "ITS_v2/hazy/hazy" / f"1_{k}_0.9{k:03d}.png", 100 + k)
    put(root / "SOTS/indoor/gt/1400.png", 3, h=SIDE + 4, w=SIDE + 4)
    for k in range(1, 11):
        put(root / "SOTS/indoor/hazy" / f"1400_{k}.png", 200 + k)
    return root


def gopro(root: Path, extras: bool = True) -> Path:
    """`GOPRO_Large/{train,test}/GOPR*/{blur,blur_gamma,sharp}/NNNNNN.png` — two training sequences that reuse the
    same frame names; with `extras`, `HIDE_dataset/{test/test-close-ups,test/test-long-shot,GT}` (GT also holds
    training frames) and `RealBlur/` with its `RealBlur_J_test_list.txt` / `RealBlur_R_test_list.txt`."""
    g = root / "GOPRO_Large"
    for s, seq in enumerate(("GOPR0372_07_00", "GOPR0374_11_01")):
        for f in ("000047", "000048"):
            seed = 10 * s + int(f[-1])
            make_pair(g / "train" / seq / "blur" / f"{f}.png", g / "train" / seq / "sharp" / f"{f}.png", seed)
            put(g / "train" / seq / "blur_gamma" / f"{f}.png", 999)
    for f in ("000001", "000002"):
        make_pair(g / "test/GOPR0384_11_00/blur" / f"{f}.png", g / "test/GOPR0384_11_00/sharp" / f"{f}.png", int(f))
        put(g / "test/GOPR0384_11_00/blur_gamma" / f"{f}.png", 998)
    if extras:
        h = root / "HIDE_dataset"
        make_pair(h / "test/test-close-ups/1fromGOPR0950.png", h / "GT/1fromGOPR0950.png", 61)
        make_pair(h / "test/test-long-shot/5fromGOPR1092.png", h / "GT/5fromGOPR1092.png", 62)
        make_pair(h / "train/9fromGOPR1000.png", h / "GT/9fromGOPR1000.png", 63)
        rb = root / "RealBlur"
        for letter, prefix in (("J", "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"),
                               ("R", "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref")):
            lines = []
            for scene, k in (("scene230", 1), ("scene231", 7)):
                make_pair(rb / prefix / scene / "blur" / f"blur_{k}.png", rb / prefix / scene / "gt" / f"gt_{k}.png",
                          70 + k)
                lines.append(f"{prefix}/{scene}/gt/gt_{k}.png {prefix}/{scene}/blur/blur_{k}.png")
            (rb / f"RealBlur_{letter}_test_list.txt").write_text("\n".join(lines) + "\n")
    return root


def universal5(root: Path) -> Path:
    """DiffUIR's `Datasets/Restoration`: syn_rain/, LOL/, Snow100K/, RESIDE/, Deblur/ (each in a layout its adapter
    reads; Deblur in the Restormer/DiffUIR flat layout)."""
    rain13k(root / "syn_rain", layout="diffuir", n=1)
    lol(root / "LOL", layout="diffuir")
    snow100k(root / "Snow100K")
    reside_outdoor(root / "RESIDE", clears=("0025",))
    d = root / "Deblur"
    for i in (1, 2):
        make_pair(d / "train/input" / f"GOPR0372_07_00-00004{i}.png", d / "train/target" / f"GOPR0372_07_00-00004{i}.png", i)
        make_pair(d / "test/GoPro/input" / f"GOPR0384_11_00-00000{i}.png",
                  d / "test/GoPro/target" / f"GOPR0384_11_00-00000{i}.png", 20 + i)
    return root


CDD11 = ("low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow", "low_haze_rain",
         "low_haze_snow")


def cdd11(root: Path, layout: str = "onerestore", names=("000001", "000002")) -> Path:
    """CDD-11: `{train,test}/{clear,<11 degradations>}/NAME.png` (gy65896/OneRestore README), or UDBM's test-only
    `cd11/{clear,<11>}` ("udbm"); every degraded folder holds the clear folder's file names."""
    splits = [("train", "train"), ("test", "test")] if layout == "onerestore" else [("test", "cd11")]
    for s, (_, folder) in enumerate(splits):
        for k, name in enumerate(names):
            put(root / folder / "clear" / f"{name}.png", 100 * s + k)
            for j, d in enumerate(CDD11):
                put(root / folder / d / f"{name}.png", 1000 + 100 * s + 20 * j + k)
    return root


def realworld(root: Path, side: int = SIDE) -> Path:
    """UDBM's real-world sets without ground truth beside a universal5 root: `real_dark/real_dark/{MEF,DICE,NPE}`,
    `real_rain/real_rain/Practical`, `Snow100K/realistic` (UDBM-ICML26 README), two images each."""
    for s, folder in enumerate(("real_dark/real_dark/MEF", "real_dark/real_dark/DICE", "real_dark/real_dark/NPE",
                                "real_rain/real_rain/Practical", "Snow100K/realistic")):
        for k in range(2):
            put(root / folder / f"img{k}.png", 5000 + 10 * s + k, side, side)
    return root
