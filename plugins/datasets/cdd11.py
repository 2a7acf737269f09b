"""CDD-11 composite-degradation restoration (`cdd11`): eleven degraded folders sharing one `clear/` folder.

The eleven degradations (OneRestore, Guo et al., ECCV 2024; gy65896/OneRestore README "Prepare Dataset" and
img_file/cal_psnr_ssim.py `degradation_types`): low, haze, rain, snow, low_haze, low_rain, low_snow, haze_rain,
haze_snow, low_haze_rain, low_haze_snow. Each is a task here, named as its folder (a model trained on CDD-11 is told,
or must infer, which combination it sees); each has a training and a test split.

Layouts read (case-insensitive), the first found per split:

- the authors' (gy65896/OneRestore README): `ROOT/{train,test}/{clear,low,haze,...}`, or `ROOT/CDD-11_{train,test}/...`
  as the README's commands name the two folders;
- UDBM's test layout (UDBM-ICML26 README "CD11 Test Data", data loader `cd11_prefix`): `ROOT/cd11/{clear,haze,...}`,
  or that `cd11/` folder given as the root; test splits only.

Pairing: a degraded image and the clear image with the same file name (OneRestore's utils/utils_data.py lists the
clear folder's names and reads each degradation's file of that name; UDBM asks for the same names in every folder).
The training splits are optional (UDBM's layout has none). Counts: not fixed here (the paper's counts are not re-verified from a stored source), so `data check` reports what it
finds per split without a count error.

Metric convention: PSNR/SSIM on RGB (OneRestore's img_file/cal_psnr_ssim.py: scikit-image on the colour images; its
SSIM uses a 7×7 uniform window where bridgezoo's is the Gaussian 11×11 of Wang et al., so SSIM is not comparable
digit for digit).
"""

import bridgezoo
from bridgezoo.data.adapters import DatasetAdapter, SplitSpec, scan_pair_dirs

DEGRADATIONS = ("low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
                "low_haze_rain", "low_haze_snow")
SOURCE = "gy65896/OneRestore README (layout); counts not fixed"


class CDD11(DatasetAdapter):
    summary = "composite degradations: CDD-11, eleven degraded folders (low, haze, rain, snow and combinations) sharing clear/ (RGB)"
    layouts = "{train,test}/{clear,low,haze,...,low_haze_snow} (OneRestore); cd11/{clear,low,...} (UDBM, test)"
    splits = tuple(SplitSpec(f"CDD-11-train-{d}", "train", d, None, "rgb", required=False, source=SOURCE)
                   for d in DEGRADATIONS) + \
        tuple(SplitSpec(f"CDD-11-{d}", "test", d, None, "rgb", source=SOURCE) for d in DEGRADATIONS)

    def scan_split(self, root, spec):
        d = spec.task
        if spec.role == "train":
            candidates = [(f"train/{d}", "train/clear", "OneRestore"),
                          (f"CDD-11_train/{d}", "CDD-11_train/clear", "OneRestore")]
        else:
            candidates = [(f"test/{d}", "test/clear", "OneRestore"),
                          (f"CDD-11_test/{d}", "CDD-11_test/clear", "OneRestore"),
                          (f"cd11/{d}", "cd11/clear", "UDBM cd11"),
                          (d, "clear", "UDBM cd11 as the root")]
        return scan_pair_dirs(spec, root, candidates, rule="the same file name in clear/")


@bridgezoo.hookimpl
def register_datasets(register):
    register(CDD11, name="cdd11", summary=CDD11.summary)
