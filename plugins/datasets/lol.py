"""LOL low-light enhancement (`lol`): train on `our485`, test on `eval15`, each with `low/` and `high/`.

Layouts read (case-insensitive), the first found per split:

- the authors' `LOLdataset` (Wei et al., BMVC 2018; linked from nachifur/RDDM README.md): `our485/{low,high}` and
  `eval15/{low,high}`, under the root or under `root/LOLdataset`;
- DiffUIR's `LOL/{train,test}/{low,high}` (iSEE-Laboratory/DiffUIR data/universal_dataset.py, `dir_Alol`).

Pairing: a low and a high image with the same file name. Official counts: 485 training and 15 test pairs (the
folders' own names; LOL has 500 pairs).

Metric convention: PSNR/SSIM on RGB, as the low-light literature reports LOL (not re-verified from a stored
source here). The diffusion lineage differs: DiffUIR's test (src/model.py, `test_y_channel: True`) and RDDM's
eval/lowlight_eval/evaluate_PSNR_SSIM.m report Y; bridgezoo's summary has both.
"""

import bridgezoo
from bridgezoo.data.adapters import DatasetAdapter, SplitSpec, scan_pair_dirs

SOURCE = "folder names of the authors' LOLdataset (our485, eval15)"


class LOL(DatasetAdapter):
    summary = "low-light enhancement: LOL our485 train, eval15 test (RGB)"
    layouts = "LOLdataset/{our485,eval15}/{low,high}; DiffUIR LOL/{train,test}/{low,high}"
    splits = (SplitSpec("LOL-our485", "train", "lowlight", 485, "rgb", source=SOURCE),
              SplitSpec("LOL-eval15", "test", "lowlight", 15, "rgb", source=SOURCE))

    def scan_split(self, root, spec):
        official, diffuir = ("our485", "train") if spec.role == "train" else ("eval15", "test")
        candidates = [(f"{official}/low", f"{official}/high", "LOLdataset"),
                      (f"LOLdataset/{official}/low", f"LOLdataset/{official}/high", "LOLdataset"),
                      (f"{diffuir}/low", f"{diffuir}/high", "DiffUIR LOL")]
        return scan_pair_dirs(spec, root, candidates)


@bridgezoo.hookimpl
def register_datasets(register):
    register(LOL, name="lol", summary=LOL.summary)
