"""Real-world test sets without ground truth, as UDBM evaluates them (UDBM-ICML26 README "Real-World Test Data" and its
data loader's `dir_A_real_*`): restored images plus a no-reference metric, never a PSNR (`bridgezoo.metrics.NIQE`).

- `real-dark` (task lowlight): the low-light collections MEF, DICE (DICM in other releases) and NPE, under
  `real_dark/real_dark/{MEF,DICE,NPE}` in UDBM's root;
- `real-rain` (task derain): `Practical`, real rainy photographs, under `real_rain/real_rain/Practical`;
- Snow100K's `realistic/` folder (snowy photographs without ground truth) is the optional test set
  `Snow100K-realistic` of the `snow100k` adapter.

HIDE and RealBlur-J/-R, which UDBM evaluates in the same script, have ground truth: they are paired test sets of the
`gopro` adapter (PSNR/SSIM). In `universal5` these folders sit beside the five datasets (`ROOT/real_dark`,
`ROOT/real_rain`, `ROOT/Snow100K/realistic`); every one is optional and evaluated on request:
`--eval-sets MEF DICE NPE Practical Snow100K-realistic`. Counts are not fixed (not re-verified from a stored source).
UDBM's README: "real_dark, real_rain, and real_snow are unpaired in this loader, so PSNR/SSIM are not meaningful for
them. Use the restored images and no-reference metrics for those subsets."
"""

import bridgezoo
from bridgezoo.data.adapters import DatasetAdapter, SplitSpec, scan_image_dirs

SOURCE = "UDBM-ICML26 README (unpaired real-world sets)"


class RealDark(DatasetAdapter):
    summary = "real low-light photographs without ground truth: MEF, DICE, NPE (no-reference metric)"
    layouts = "real_dark/{MEF,DICE|DICM,NPE}/ (UDBM) or {MEF,DICE,NPE}/"
    splits = tuple(SplitSpec(name, "test", "lowlight", None, "nr", required=False, evaluate=False, source=SOURCE)
                   for name in ("MEF", "DICE", "NPE"))

    def scan_split(self, root, spec):
        names = ("DICE", "DICM") if spec.name == "DICE" else (spec.name,)
        return scan_image_dirs(spec, root, [(f"real_dark/{n}", "UDBM real_dark") for n in names]
                               + [(n, "folder of the set") for n in names])


class RealRain(DatasetAdapter):
    summary = "real rainy photographs without ground truth: Practical (no-reference metric)"
    layouts = "real_rain/Practical/ (UDBM) or Practical/"
    splits = (SplitSpec("Practical", "test", "derain", None, "nr", required=False, evaluate=False, source=SOURCE),)

    def scan_split(self, root, spec):
        return scan_image_dirs(spec, root, [("real_rain/Practical", "UDBM real_rain"), ("Practical", "folder of the set")])


@bridgezoo.hookimpl
def register_datasets(register):
    register(RealDark, name="real-dark", summary=RealDark.summary)
    register(RealRain, name="real-rain", summary=RealRain.summary)
