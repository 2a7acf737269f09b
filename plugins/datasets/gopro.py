"""GoPro deblurring (`gopro`), with HIDE and RealBlur-J/-R as extra test sets when they are found.

GoPro (Nah et al., CVPR 2017). The authors' `GOPRO_Large` keeps one folder per video sequence with `blur/`,
`blur_gamma/` and `sharp/` (the DeepDeblur release README, as mirrored in benjamesbabala/deepdeblur_release:
`GOPRO_Large/train/GOPRxxxx_xx_xx/blur/xxxxxx.png`; 22 training and 11 test sequences, 2,103 and 1,111 image pairs;
the blurred images come "gamma corrected and not corrected (linear CRF)"). A blurred frame pairs with the sharp
frame of the same name in the same sequence; frame names repeat across sequences. `blur/` is read by default;
`blur_gamma/` (what SeungjunNah/DeepDeblur-PyTorch src/data/gopro_large.py trains on) with `GoPro(blur="blur_gamma")`. The rearranged layouts are read too: Restormer / DiffUIR
`train/{input,target}` and `test/GoPro/{input,target}` (swz30/Restormer Motion_Deblurring/Datasets/README.md,
iSEE-Laboratory/DiffUIR data/universal_dataset.py `Deblur/{train,test/GoPro}/{input,target}`) and mmagic's
`GoPro/{train,test}/{input,target}` or `{blur,sharp}` (open-mmlab/mmagic tools/dataset_converters/gopro/README.md).

HIDE (Shen et al., ICCV 2019; joanshen0508/HA_deblur README: 8,422 pairs, 6,397 train / 2,025 test), optional: the
`HIDE_dataset` archive as it unpacks, `test/{test-close-ups,test-long-shot}/*.png` with the sharp image of the same
name in `GT/` (which also holds the training frames' partners), or Restormer's `test/HIDE/{input,target}`.

RealBlur (Rim et al., ECCV 2020; 980 test pairs in each of RealBlur-J and RealBlur-R, 3,758 training, per the
ChengxuLiu/MISCFilter README), optional: the authors' `RealBlur/` with `RealBlur_J_test_list.txt` /
`RealBlur_R_test_list.txt`, one pair per line as `<gt path> <blur path>` relative to `RealBlur/` (rimchang/RealBlur
README; SRN-Deblur datalist), or Restormer's `test/RealBlur_J/{input,target}`. The official RealBlur scores align
each output to its ground truth first (an ECC homography; swz30/Restormer Motion_Deblurring/evaluate_realblur.py
`image_align`); bridgezoo does not, so its RealBlur numbers are not comparable with published ones.

Metric convention: PSNR/SSIM on RGB (Restormer Motion_Deblurring/evaluate_gopro_hide.m calls MATLAB psnr/ssim on the
RGB images). Where these extra test sets live for `gopro:ROOT`: `ROOT/HIDE_dataset` or `ROOT/HIDE` or
`ROOT/test/HIDE`; `ROOT/RealBlur` or `ROOT` itself (list files) or `ROOT/test/RealBlur_J`.
"""

import re
from pathlib import Path

import bridgezoo
from bridgezoo.data.adapters import (DatasetAdapter, ImagePair, SplitScan, SplitSpec, fill_pairs, find_dir,
                                     listing, rel, scan_pair_dirs)

SEQUENCE = re.compile(r"^GOPR\d{4}_\d{2}_\d{2}$", re.IGNORECASE)  # GOPR0372_07_00
GOPRO = "SeungjunNah/DeepDeblur_release README (2,103 / 1,111 pairs); RGB: Restormer evaluate_gopro_hide.m"


class GoPro(DatasetAdapter):
    summary = "deblurring: GoPro train/test (RGB); HIDE and RealBlur-J/-R as extra tests when found"
    layouts = ("GOPRO_Large/{train,test}/GOPR*/{blur,sharp}; Restormer/DiffUIR {train,test/GoPro}/{input,target}; "
               "HIDE_dataset/{test/*,GT}; RealBlur/RealBlur_{J,R}_test_list.txt")
    splits = (SplitSpec("GoPro-train", "train", "deblur", 2103, "rgb", source=GOPRO),
              SplitSpec("GoPro", "test", "deblur", 1111, "rgb", source=GOPRO),
              SplitSpec("HIDE", "test", "deblur", 2025, "rgb", required=False, source="joanshen0508/HA_deblur README"),
              SplitSpec("RealBlur-J", "test", "deblur", 980, "rgb", required=False,
                        source="ChengxuLiu/MISCFilter README; evaluated without RealBlur's alignment"),
              SplitSpec("RealBlur-R", "test", "deblur", 980, "rgb", required=False,
                        source="ChengxuLiu/MISCFilter README; evaluated without RealBlur's alignment"))

    def __init__(self, blur: str = "blur"):
        self.blur = blur

    def scan_split(self, root, spec):
        if spec.name in ("GoPro-train", "GoPro"):
            return self._gopro(root, spec, "train" if spec.role == "train" else "test")
        if spec.name == "HIDE":
            return self._hide(root, spec)
        return self._realblur(root, spec, spec.name[-1])

    def _gopro(self, root, spec, part):
        for base in (root, find_dir(root, "GOPRO_Large")):
            seq_root = find_dir(base, part) if base is not None else None
            seqs = sorted(p for p in seq_root.iterdir() if p.is_dir() and SEQUENCE.match(p.name)) \
                if seq_root is not None else []
            if seqs:
                return self._sequences(root, spec, seqs)
        flat = [(f"{part}/input", f"{part}/target", "Restormer / DiffUIR / mmagic"),
                (f"{part}/blur", f"{part}/sharp", "mmagic"),
                (f"GoPro/{part}/input", f"GoPro/{part}/target", "mmagic")]
        if part == "test":
            flat.insert(0, ("test/GoPro/input", "test/GoPro/target", "Restormer / DiffUIR"))
        scan = scan_pair_dirs(spec, root, flat)
        if scan.missing:
            scan.errors[-1] = scan.errors[-1].replace("not found;", f"not found; looked for {part}/GOPR*/{{{self.blur},sharp}}"
                                                      " (GOPRO_Large) and", 1)
        return scan

    def _sequences(self, root, spec, seqs):
        scan = SplitScan(spec, where=f"{rel(seqs[0].parent, root)}/GOPR*/{{{self.blur},sharp}} (GOPRO_Large, "
                                      f"{len(seqs)} sequence(s))")
        for seq in seqs:
            blur, sharp = find_dir(seq, self.blur), find_dir(seq, "sharp")
            if blur is None or sharp is None:
                scan.errors.append(f"sequence {rel(seq, root)}/ has no {self.blur if blur is None else 'sharp'}/")
                continue
            fill_pairs(scan, root, blur, sharp, name=lambda p, s=seq.name: f"{s}/{p.stem}")
        return scan

    def _hide(self, root, spec):
        for cand in ("HIDE_dataset", "HIDE", "test/HIDE", "."):
            base = find_dir(root, cand)
            gt = find_dir(base, "GT") if base is not None else None
            test = find_dir(base, "test") if base is not None else None
            if gt is not None and test is not None:
                scan = SplitScan(spec, where=f"{rel(test, root)}/{{test-close-ups,test-long-shot}} + {rel(gt, root)}"
                                             " (HIDE_dataset)")
                subs = [find_dir(test, s) for s in ("test-close-ups", "test-long-shot")]
                if None in subs:
                    scan.errors.append(f"{rel(test, root)}/ lacks test-close-ups/ or test-long-shot/")
                    return scan
                for sub in subs:  # the GT folder holds the training frames' partners too: only used ones are read
                    part = SplitScan(spec)
                    fill_pairs(part, root, sub, gt, many_to_one=True, name=lambda p, s=sub.name: f"{s}/{p.stem}")
                    scan.pairs += part.pairs
                    scan.errors += part.errors
                return scan
        return scan_pair_dirs(spec, root, [("test/HIDE/input", "test/HIDE/target", "Restormer"),
                                           ("HIDE/input", "HIDE/target", "mmagic")])

    def _realblur(self, root, spec, letter):
        for cand in ("RealBlur", "."):
            base = find_dir(root, cand)
            lst = base / f"RealBlur_{letter}_test_list.txt" if base is not None else None
            if lst is not None and lst.is_file():
                return self._from_list(root, spec, base, lst)
        return scan_pair_dirs(spec, root, [(f"test/RealBlur_{letter}/input", f"test/RealBlur_{letter}/target",
                                            "Restormer"),
                                           (f"RealBlur_{letter}/input", f"RealBlur_{letter}/target", "mmagic")])

    @staticmethod
    def _from_list(root, spec, base: Path, lst: Path):
        scan = SplitScan(spec, where=f"{rel(lst, root)} (RealBlur list: <gt> <blur> per line)")
        absent = []
        for n, line in enumerate(lst.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) < 2:
                scan.errors.append(f"{rel(lst, root)} line {n}: expected '<gt path> <blur path>', got {line!r}")
                continue
            gt, blur = base / parts[0], base / parts[1]
            missing = [p for p in (gt, blur) if not p.is_file()]
            if missing:
                absent += missing
                continue
            scene = blur.parent.parent.name
            scan.pairs.append(ImagePair(blur, gt, f"{scene}/{blur.stem}"))
        if absent:
            scan.errors.append(f"{len(absent)} file(s) named in {lst.name} are missing: {listing(absent, root)}")
        return scan


@bridgezoo.hookimpl
def register_datasets(register):
    register(GoPro, name="gopro", summary=GoPro.summary)
