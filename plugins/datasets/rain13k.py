"""Rain13K deraining: train on Rain13K, test on Rain100H, Rain100L, Test100, Test1200 and Test2800 (`rain13k`).

Layouts read (folder names case-insensitive), the first found per split:

- Restormer `Deraining/Datasets` (swz30/Restormer Deraining/Datasets/README.md, filled by its download_data.py):
  `train/Rain13K/{input,target}` and `test/<SET>/{input,target}`;
- MPRNet `Synthetic_Rain_Datasets` (swz30/MPRNet Deraining/Datasets/README.md) and DiffUIR `syn_rain`
  (iSEE-Laboratory/DiffUIR data/universal_dataset.py: `syn_rain/train/{input,target}`,
  `syn_rain/test/<SET>/{input,target}`): `train/{input,target}` and `test/<SET>/{input,target}`;
- mmagic's `data/<SET>/{input,target}` (open-mmlab/mmagic tools/dataset_converters/deraining/README.md).

Pairing: an input and a target with the same file name (the rearranged archives name both sides alike, e.g.
`test/Rain100L/input/1.png` ↔ `test/Rain100L/target/1.png` as the universal-restoration repositories read them); a
leading `rain-` / `norain-` is ignored, so the original Rain100L/H names (`rain-001.png` ↔ `norain-001.png`) pair
too. Restormer's and MPRNet's own scripts pair by sorted position instead (MPRNet Deraining/dataset_RGB.py,
Restormer evaluate_PSNR_SSIM.m); bridgezoo pairs by name, so one missing file cannot shift every later pair.

Official counts: 13,712 training pairs; Test100 100, Rain100H 100, Rain100L 100, Test1200 1200, Test2800 2800 (the
MPRNet paper, arXiv 2102.02808, Sec. 4.1 and its dataset table, after MSPFN; recalled, not re-read from a stored
copy here — the test sets' own names state 100, 1200 and 2800).

Metric convention: PSNR/SSIM on Y (BT.601) — Restormer Deraining/evaluate_PSNR_SSIM.m and MPRNet
Deraining/evaluate_PSNR_SSIM.m convert with `rgb2ycbcr` and keep channel 1.
"""

import bridgezoo
from bridgezoo.data.adapters import DatasetAdapter, SplitSpec, scan_pair_dirs, strip_prefix_key

TEST_SETS = (("Rain100H", 100), ("Rain100L", 100), ("Test100", 100), ("Test1200", 1200), ("Test2800", 2800))
SOURCE = "MPRNet (arXiv 2102.02808) Sec. 4.1, recalled; Y: Restormer Deraining/evaluate_PSNR_SSIM.m"
KEY = strip_prefix_key("norain-", "norain_", "rain-", "rain_")


class Rain13K(DatasetAdapter):
    summary = "deraining: Rain13K train; Rain100H, Rain100L, Test100, Test1200, Test2800 test (Y channel)"
    layouts = "Restormer Datasets/{train/Rain13K,test/SET}/{input,target}; MPRNet/DiffUIR {train,test/SET}/{input,target}"
    splits = (SplitSpec("Rain13K", "train", "derain", 13712, "y", source=SOURCE),
              *(SplitSpec(name, "test", "derain", n, "y", source=SOURCE) for name, n in TEST_SETS))

    def scan_split(self, root, spec):
        if spec.role == "train":
            candidates = [("train/Rain13K/input", "train/Rain13K/target", "Restormer"),
                          ("train/input", "train/target", "MPRNet / DiffUIR syn_rain"),
                          ("Rain13K/input", "Rain13K/target", "Rain13K folder")]
        else:
            candidates = [(f"test/{spec.name}/input", f"test/{spec.name}/target", "Restormer / MPRNet / DiffUIR"),
                          (f"{spec.name}/input", f"{spec.name}/target", "mmagic")]
        return scan_pair_dirs(spec, root, candidates, lq_key=KEY, gt_key=KEY,
                              rule="file name, ignoring a leading rain-/norain-")


@bridgezoo.hookimpl
def register_datasets(register):
    register(Rain13K, name="rain13k", summary=Rain13K.summary)
