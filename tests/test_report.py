"""`bridgezoo report` on synthetic run directories whose numbers are known."""

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridgezoo.data import write_png
from bridgezoo.report import build_report, mean_ci

TASKS = ("derain", "dehaze")
# PSNR of (bridge, π, seed): chosen so every interval and paired difference can be checked by hand
PSNR = {("rdbm", "residual"): [20.0, 21.0, 23.0], ("rdbm", "one"): [19.0, 20.5, 21.0],
        ("goub", "residual"): [18.0, 18.5, 19.5], ("goub", "one"): [18.2, 18.3, 18.4]}


def make_run(root: Path, bridge: str, pi: str, seed: int, psnr: float, nfe: int = 10) -> Path:
    run = root / f"{bridge}-{pi}-s{seed}"
    (run / "samples").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"bridge": bridge, "backbone": "unet-test", "seed": seed, "pi": pi,
                                                 "bridge_options": {"pi": pi}, "iters": 10, "batch": 2, "patch": 32}))
    per_task = {t: {"psnr": psnr + (1 if t == "derain" else -1), "ssim": 0.5, "psnr_y": psnr + 0.5,
                    "ssim_y": 0.6, "images": 1} for t in TASKS}
    summary = {"images": 2, "sampler": "ddim", "nfe": nfe, "crop_border": 0, "conventions": "8-bit, float64",
               "overall": {"psnr": psnr, "ssim": 0.5, "psnr_y": psnr + 0.5, "ssim_y": 0.6},
               "input": {"psnr": 15.0, "ssim": 0.3, "psnr_y": 15.5, "ssim_y": 0.4}, "per_task": per_task,
               "seconds_per_image": 0.25, "lpips": None, "lpips_status": "unavailable: test"}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "train.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1 / s, "probe_loss": 1 / s}) + "\n"
                                             for s in (1, 2, 3)))
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.2, 0.8, (40, 48, 3))
    for task in TASKS:
        write_png(run / "samples" / f"{task}_img-0_gt.png", gt)
        write_png(run / "samples" / f"{task}_img-0_lq.png", np.clip(gt * 0.5, 0, 1))
        write_png(run / "samples" / f"{task}_img-0_output.png", np.clip(gt + 0.01 * seed, 0, 1))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for (bridge, pi), values in PSNR.items():
        for seed, v in enumerate(values):
            make_run(root, bridge, pi, seed, v)
    (root / "half-finished").mkdir()
    (root / "half-finished" / "config.json").write_text(json.dumps({"bridge": "rdbm"}))  # no summary: left out
    out = tmp_path_factory.mktemp("report") / "rep"
    info = build_report([root], out, command="bridgezoo report RUNS --out rep")
    return out, info


def test_mean_ci_is_the_student_t_interval():
    mean, half, n = mean_ci([20.0, 21.0, 23.0])
    sd = math.sqrt(((20 - 64 / 3) ** 2 + (21 - 64 / 3) ** 2 + (23 - 64 / 3) ** 2) / 2)
    assert n == 3 and mean == pytest.approx(64 / 3)
    assert half == pytest.approx(4.302652729749464 * sd / math.sqrt(3))  # t_{0.975, 2}
    assert math.isnan(mean_ci([5.0])[1])


def test_summary_table_has_one_row_per_method_with_hand_computed_intervals(report):
    out, info = report
    df = pd.read_csv(out / "summary.csv")
    assert set(df["method"]) == {"rdbm π=residual", "rdbm π=one", "goub π=residual", "goub π=one"}
    for col in ("seeds", "psnr", "psnr_ci", "ssim", "psnr_y", "ssim_y", "input_psnr", "gain_psnr", "params_m",
                "evaluations", "gmacs_per_image", "seconds_per_image"):
        assert col in df.columns, col
    row = df.set_index("method").loc["rdbm π=residual"]
    mean, half, _ = mean_ci(PSNR[("rdbm", "residual")])
    assert row["psnr"] == pytest.approx(mean) and row["psnr_ci"] == pytest.approx(half)
    assert row["seeds"] == 3 and row["evaluations"] == 10  # DDIM at NFE 10: ten network calls
    assert row["params_m"] == pytest.approx(0.0, abs=1.0) and row["gmacs_per_image"] > 0
    assert info["unfinished"] and "half-finished" in info["unfinished"][0]


def test_per_task_table_and_markdown_show_mean_and_interval(report):
    out, _ = report
    df = pd.read_csv(out / "per_task_psnr.csv").set_index("method")
    assert set(TASKS) <= set(df.columns)
    mean, half, _ = mean_ci([v + 1 for v in PSNR[("goub", "one")]])
    assert df.loc["goub π=one", "derain"] == pytest.approx(mean)
    assert df.loc["goub π=one", "derain_ci"] == pytest.approx(half)
    assert f"{mean:.2f} ± {half:.2f}" in (out / "per_task_psnr.md").read_text()
    assert "\\begin{tabular}" in (out / "per_task_psnr.tex").read_text()


def test_pi_ablation_differences_are_paired_by_seed(report):
    out, _ = report
    diffs = pd.read_csv(out / "pi_differences.csv")
    row = diffs[(diffs["bridge"] == "rdbm") & (diffs["contrast"] == "residual − one")].iloc[0]
    d = np.subtract(PSNR[("rdbm", "residual")], PSNR[("rdbm", "one")])  # 1.0, 0.5, 2.0
    mean, half, n = mean_ci(d)
    assert row["mean_db"] == pytest.approx(mean) and row["ci_db"] == pytest.approx(half)
    assert row["pairs"] == 3 and row["wins"] == 3
    heat = pd.read_csv(out / "pi_ablation.csv").set_index("bridge")
    assert heat.loc["goub", "one"] == pytest.approx(18.3)


def test_every_figure_is_written_and_every_file_the_html_references_exists(report):
    out, info = report
    for name in ("per_task_psnr", "psnr_vs_nfe", "pi_heatmap", "pi_differences", "quality_vs_compute",
                 "training_loss", "qualitative", "noise_std_maps"):
        for ext in ("png", "svg"):
            f = out / "figures" / f"{name}.{ext}"
            assert f.exists() and f.stat().st_size > 1000, f

    class Refs(HTMLParser):
        refs = []

        def handle_starttag(self, tag, attrs):
            self.refs += [v for k, v in attrs if k in ("src", "href")]

    page = (out / "index.html").read_text()
    parser = Refs()
    parser.feed(page)
    assert len(parser.refs) >= 16
    assert all((out / r).exists() for r in parser.refs), [r for r in parser.refs if not (out / r).exists()]
    assert not re.search(r"(src|href)='(https?:)?//", page)  # opens offline
    assert "bridgezoo report RUNS --out rep" in page and "8-bit, float64" in page
    assert "Unification" in page and (out / "unification.md").exists()


def test_psnr_against_nfe_uses_extra_evaluations(tmp_path):
    run = make_run(tmp_path / "runs", "rdbm", "residual", 0, 20.0, nfe=5)
    extra = run / "evals" / "nfe20-ddim"
    extra.mkdir(parents=True)
    s = json.loads((run / "summary.json").read_text()) | {"nfe": 20}
    s["overall"]["psnr"] = 22.0
    (extra / "summary.json").write_text(json.dumps(s))
    build_report([run], tmp_path / "rep")
    df = pd.read_csv(tmp_path / "rep" / "summary.csv")
    assert sorted(zip(df["evaluations"], df["psnr"])) == [(5, 20.0), (20, 22.0)]


def test_a_grid_file_reads_only_the_evaluations_the_grid_asks_for(tmp_path):
    from bridgezoo.bench import load_grid
    from bridgezoo.report import find_runs

    grid = tmp_path / "g.toml"
    grid.write_text(f'name = "g"\nout = "{tmp_path / "runs"}"\n[shared]\nbackbone = "unet-test"\n'
                    '[axes]\nbridge = ["rdbm"]\nnfe = [5]\n')
    run = load_grid(grid).runs[0]
    made = make_run(run.directory.parent, "rdbm", "residual", 0, 20.0, nfe=5)
    made.rename(run.directory)
    extra = run.directory / "evals" / "nfe20-ddim"  # written by another grid that shares the run
    extra.mkdir(parents=True)
    (extra / "summary.json").write_text((run.directory / "summary.json").read_text().replace('"nfe": 5', '"nfe": 20'))
    assert find_runs([grid]) == {run.directory: {run.directory}}
    assert find_runs([grid, run.directory]) == {run.directory: None}  # named directly: every evaluation
    build_report([grid], tmp_path / "rep")
    assert list(pd.read_csv(tmp_path / "rep" / "summary.csv")["evaluations"]) == [5]
