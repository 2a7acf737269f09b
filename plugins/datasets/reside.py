"""RESIDE dehazing: `reside-outdoor` (OTS train, SOTS-outdoor test) and `reside-indoor` (ITS train, SOTS-indoor
test). Many hazy images per clear image, paired by the ID before the first underscore.

Naming: a hazy image `ID_<parameters>` pairs with the clear image `ID`: SOTS-outdoor `0001_0.8_0.2.jpg` ↔
`0001.png`, OTS `0025_0.85_0.04.jpg` ↔ `0025.jpg` (atmospheric light A, then β), ITS `1_1_0.90179.png` ↔ `1.png`,
SOTS-indoor `1400_1.png` … `1400_10.png` ↔ `1400.png` (zhilin007/FFA-Net net/data_utils.py: `id = name.split('_')[0]`;
MiliLab/DGSolver code/datasets_setting.py does the same for ITS_v2 / SOTS).

Layouts read (case-insensitive; images are found in nested folders too, e.g. ITS_v2 `hazy/hazy/`, RESIDE-β OTS
`haze/part1..part4/`, DiffUIR `haze/OTS/` and `clear/clear_images/`):

- FFA-Net's RESIDEV0 (zhilin007/FFA-Net README.md): `ITS/{hazy,clear}`, `OTS/{hazy,clear}`,
  `SOTS/{indoor,outdoor}/{hazy,clear}`;
- the RESIDE downloads: `ITS_v2/{hazy,clear}`, `OTS_BETA/{haze,clear}`, `SOTS/{indoor,outdoor}/{hazy,gt}`;
- DiffUIR's `RESIDE/OTS_ALPHA/{haze,clear}` and `RESIDE/SOTS/outdoor/{hazy,gt}` (iSEE-Laboratory/DiffUIR
  data/universal_dataset.py).

Per clear image: OTS has 35 hazy versions (5 values of A × 7 of β; DiffUIR data/image_folder.py repeats each clear
image 35 times to line the two folders up), ITS 10 (the RESIDE-ITS mirror card on Hugging Face, dronefreak/RESIDE-ITS:
"one clean photograph, ten hazed variants"), SOTS-indoor 10 (1400_1 … 1400_10), SOTS-outdoor 1. Clear images with
another number of versions are named by `data check`.

Counts: SOTS-outdoor 500 and SOTS-indoor 500 hazy images, ITS 13,990 (1,399 × 10) — the RESIDE paper (arXiv
1712.04143), recalled, not re-verified from a stored copy here. OTS has no fixed count here: RESIDE-β's OTS and the
subsets the universal-restoration repositories train on differ, so only the 35-per-clear rule is checked.

A clear image larger than its hazy image is center-cropped to the hazy size (FFA-Net net/data_utils.py:
`tfs.CenterCrop(haze.size[::-1])(clear)`).

Metric convention: PSNR/SSIM on RGB (FFA-Net net/metrics.py `psnr` on all three channels). DiffUIR's eval/SOTS.m
reports Y instead.
"""

import bridgezoo
from bridgezoo.data.adapters import DatasetAdapter, SplitSpec, scan_pair_dirs

SOURCE = "RESIDE (arXiv 1712.04143), recalled; RGB: FFA-Net net/metrics.py"


def hazy_id(path):
    return path.stem.split("_", 1)[0]


def clear_id(path):
    return path.stem


def candidates(prefixes, hazy_names=("hazy", "haze"), clear_names=("clear", "gt")):
    return [(f"{p}/{h}", f"{p}/{c}", label) for p, label in prefixes for h in hazy_names for c in clear_names]


def scan_reside(root, spec, prefixes, per_gt):
    return scan_pair_dirs(spec, root, candidates(prefixes), recursive=True, lq_key=hazy_id, gt_key=clear_id,
                          many_to_one=True, per_gt=per_gt, rule="the ID before the first underscore")


class ResideOutdoor(DatasetAdapter):
    summary = "dehazing: RESIDE OTS train, SOTS-outdoor test (RGB); hazy 0001_0.8_0.2.jpg ↔ clear 0001.png"
    layouts = "OTS|OTS_BETA|OTS_ALPHA/{hazy|haze,clear}; SOTS/outdoor/{hazy,gt|clear}"
    gt_alignment = "center-crop"
    splits = (SplitSpec("OTS", "train", "dehaze", None, "rgb", source="35 hazy per clear: DiffUIR data/image_folder.py"),
              SplitSpec("SOTS-outdoor", "test", "dehaze", 500, "rgb", source=SOURCE))

    def scan_split(self, root, spec):
        if spec.role == "train":
            prefixes = [("OTS", "FFA-Net RESIDEV0"), ("OTS_BETA", "RESIDE-β download"), ("OTS_ALPHA", "DiffUIR"),
                        ("train", "train folder")]
            return scan_reside(root, spec, prefixes, per_gt=35)
        prefixes = [("SOTS/outdoor", "RESIDE SOTS"), ("outdoor", "SOTS folder"), ("test", "test folder")]
        return scan_reside(root, spec, prefixes, per_gt=1)


class ResideIndoor(DatasetAdapter):
    summary = "dehazing: RESIDE ITS train, SOTS-indoor test (RGB); hazy 1_1_0.90179.png ↔ clear 1.png"
    layouts = "ITS|ITS_v2/{hazy,clear}; SOTS/indoor/{hazy,gt|clear}"
    gt_alignment = "center-crop"
    splits = (SplitSpec("ITS", "train", "dehaze", 13990, "rgb", source=SOURCE),
              SplitSpec("SOTS-indoor", "test", "dehaze", 500, "rgb", source=SOURCE))

    def scan_split(self, root, spec):
        if spec.role == "train":
            prefixes = [("ITS", "FFA-Net RESIDEV0"), ("ITS_v2", "RESIDE ITS_v2 download"), ("train", "train folder")]
            return scan_reside(root, spec, prefixes, per_gt=10)
        prefixes = [("SOTS/indoor", "RESIDE SOTS"), ("indoor", "SOTS folder"), ("test", "test folder")]
        return scan_reside(root, spec, prefixes, per_gt=10)


@bridgezoo.hookimpl
def register_datasets(register):
    register(ResideOutdoor, name="reside-outdoor", summary=ResideOutdoor.summary)
    register(ResideIndoor, name="reside-indoor", summary=ResideIndoor.summary)
