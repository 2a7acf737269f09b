"""`universal5`: the five-task universal-restoration benchmark of DiffUIR and RDBM — deraining (Rain13K),
low-light (LOL), desnowing (Snow100K), dehazing (RESIDE OTS / SOTS-outdoor) and deblurring (GoPro) — trained as one
task-balanced mix (draw i has task i mod 5, as `zoo5`), or with a fixed count of each task in every batch as
DiffUIR and UDBM train (`--task-batch`, `bridgezoo.data.composition`), and evaluated on every test set of every task.

The five datasets sit in one root, each in its own folder (names case-insensitive, the first found is used):
deraining `syn_rain/` (DiffUIR's name), `Rain13K/` or `Deraining/`; low-light `LOL/` or `LOLdataset/`; desnowing
`Snow100K/`; dehazing `RESIDE/`; deblurring `Deblur/` (DiffUIR's name), `GoPro/` or `GOPRO_Large/`. This is the
arrangement of DiffUIR's `Datasets/Restoration` (iSEE-Laboratory/DiffUIR README.md, "Dataset Preparation":
`syn_rain`, `Snow100K`, `Deblur`, `LOL`, `RESIDE/{OTS_ALPHA,SOTS/outdoor}`), and each folder may hold its
dataset in any layout its own adapter reads (`bridgezoo data list`). DiffUIR's train.py builds one dataset per
task (`fog`, `light_only`, `rain`, `snow`, `blur`) at 256² crops; its test uses RESIDE SOTS-outdoor, Snow100K-S,
Test2800 by default and names the other test sets in comments.

UDBM's real-world sets without ground truth sit beside them (`real_dark/`, `real_rain/`, `Snow100K/realistic`;
`bridgezoo_plugins.datasets.realworld`): optional, evaluated on request (`--eval-sets MEF DICE NPE Practical
Snow100K-realistic`), as restored images and a no-reference metric.

Metric conventions differ between the papers: DiffUIR's test (src/model.py `test()`, `test_y_channel: True`) and
its eval/SOTS.m report Y for every task; the RDBM authors' released DGSolver code (MiliLab/DGSolver code/test.py
`cal_psnr`, `cal_ssim`) computes PSNR on RGB and SSIM as the mean of per-channel scikit-image SSIM for every task.
bridgezoo's summary has RGB and Y for every test set and marks each set's own literature convention.
"""

import bridgezoo
from bridgezoo.data.adapters import MixAdapter


class Universal5(MixAdapter):
    summary = "the five-task mix of DiffUIR / RDBM: rain13k + lol + snow100k + reside-outdoor + gopro, task-balanced"
    layouts = "ROOT/{syn_rain|Rain13K, LOL, Snow100K, RESIDE, Deblur|GoPro}/ (each in its own adapter's layouts)"
    members = (("rain13k", ("syn_rain", "Rain13K", "Deraining", "derain")),
               ("lol", ("LOL", "LOLdataset", "lowlight")),
               ("snow100k", ("Snow100K", "desnow")),
               ("reside-outdoor", ("RESIDE", "dehaze")),
               ("gopro", ("Deblur", "GoPro", "GOPRO_Large", "deblur")),
               ("real-dark", ("real_dark",)),
               ("real-rain", ("real_rain",)))


@bridgezoo.hookimpl
def register_datasets(register):
    register(Universal5, name="universal5", summary=Universal5.summary)
