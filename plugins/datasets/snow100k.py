"""Snow100K desnowing (`snow100k`): `synthetic/` (snowy), `gt/` (clean) and `mask/` (snow masks, unused here).

Layouts read (case-insensitive):

- the authors' archives (download links in iSEE-Laboratory/DiffUIR README.md and CDWJ/desnow README.md):
  `Snow100K-training.tar.gz` unpacks to `all/{synthetic,gt,mask}`; `Snow100K-testset.tar.gz` unpacks to a long
  prefix ending in `test/Snow100K-{S,M,L}/{synthetic,gt,mask}` (CDWJ/desnow: `mv ./media/jdway/GameSSD/overlapping/test
  ./`), so a test subset is found by its folder name anywhere up to five levels below the root;
- DiffUIR's `Snow100K/train/{synthetic,gt}` and `Snow100K/test/Snow100K-S/{synthetic,gt}`
  (iSEE-Laboratory/DiffUIR data/universal_dataset.py; its test uses Snow100K-S, with -L named as the alternative).

Pairing: a synthetic and a gt image with the same file name.

Counts (DesnowNet, Liu et al., arXiv 1708.04512, Sec. on Snow100K; recalled, not re-verified from a stored copy
here): 50,000 training images; test Snow100K-S 16,611, Snow100K-M 16,588, Snow100K-L 16,801. -S and -L are the
test sets of the universal setting (the issue's protocol); -M is optional and evaluated only on request
(`--eval-sets Snow100K-M`). `realistic/` (snowy photographs without ground truth; UDBM-ICML26 README
`Snow100K/realistic`) is the optional unpaired test set `Snow100K-realistic`, scored by a no-reference metric and
evaluated on request.

Metric convention: PSNR/SSIM on RGB (not re-verified from a stored source here; DiffUIR's own test reports Y).
"""

import bridgezoo
from bridgezoo.data.adapters import (DatasetAdapter, SplitSpec, fill_pairs, find_dir, find_named_dir, missing_scan,
                                     near_miss, rel, scan_image_dirs, scan_pair_dirs, SplitScan)

SOURCE = "DesnowNet (arXiv 1708.04512), counts recalled, not re-verified here"


class Snow100K(DatasetAdapter):
    summary = "desnowing: Snow100K training set; Snow100K-S and -L test (-M optional) (RGB)"
    layouts = "all/{synthetic,gt} + .../test/Snow100K-{S,M,L}/{synthetic,gt}; DiffUIR {train,test/Snow100K-S}/{synthetic,gt}"
    splits = (SplitSpec("Snow100K-train", "train", "desnow", 50000, "rgb", source=SOURCE),
              SplitSpec("Snow100K-S", "test", "desnow", 16611, "rgb", source=SOURCE),
              SplitSpec("Snow100K-L", "test", "desnow", 16801, "rgb", source=SOURCE),
              SplitSpec("Snow100K-M", "test", "desnow", 16588, "rgb", required=False, evaluate=False, source=SOURCE),
              SplitSpec("Snow100K-realistic", "test", "desnow", None, "nr", required=False, evaluate=False,
                        source="UDBM-ICML26 README (real snow, no ground truth)"))

    def scan_split(self, root, spec):
        if spec.name == "Snow100K-realistic":
            return scan_image_dirs(spec, root, [("realistic", "Snow100K/realistic (UDBM)"),
                                                ("test/realistic", "test/realistic")])
        if spec.role == "train":
            candidates = [("all/synthetic", "all/gt", "Snow100K-training archive"),
                          ("Snow100K-training/all/synthetic", "Snow100K-training/all/gt", "Snow100K-training archive"),
                          ("train/synthetic", "train/gt", "DiffUIR Snow100K/train"),
                          ("training/synthetic", "training/gt", "training folder")]
            scan = scan_pair_dirs(spec, root, candidates)
        else:
            base = find_dir(root, f"test/{spec.name}") or find_named_dir(root, spec.name, max_depth=5)
            if base is None:
                return missing_scan(spec, root, [f".../{spec.name}/{{synthetic,gt}} (up to 5 levels deep)"])
            scan = SplitScan(spec)
            lq, gt = find_dir(base, "synthetic"), find_dir(base, "gt")
            if lq is None or gt is None:
                lack = "synthetic" if lq is None else "gt"
                scan.errors.append(f"{rel(base, root)}/ has no {lack}/ ({near_miss(base, lack)})")
                return scan
            scan.where = f"{rel(lq, root)} + {rel(gt, root)}"
            fill_pairs(scan, root, lq, gt)
        return scan


@bridgezoo.hookimpl
def register_datasets(register):
    register(Snow100K, name="snow100k", summary=Snow100K.summary)
