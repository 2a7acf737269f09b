"""The throughput benchmark runs in its tiny CPU mode and writes a parseable result; fast paths agree."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_throughput_tiny_mode_writes_parseable_results(tmp_path):
    out = tmp_path / "perf"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--tiny", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    row = data["rows"][0]
    assert row["backbone"] == "unet-test" and data["peak_tflops"]["fp32"] > 0
    assert {"fp32 eager", "channels_last", "bf16 autocast", "fused AdamW"} <= set(row["train"])
    # MFU is achieved FLOP/s over a peak measured in the same run; on a loaded machine the peak's matmul can be
    # slowed more than the tiny model's steps (MFU 1.3 seen with other processes running), so the bound only
    # catches unit errors (a FLOP count off by 10³ would give MFU in the hundreds or 10⁻⁴ of a sane value)
    assert all(v["steps_per_s"] > 0 and 0 < v["mfu"] < 10 for v in row["train"].values())
    assert row["sample"]["inference_mode"]["images_per_s"] > 0
    # every fast path gives the baseline's outputs: exactly (layout, fused optimizer) or within bf16 precision
    assert row["agreement"]["channels_last"] < 1e-4 and row["agreement"]["fused AdamW"] < 1e-4
    assert row["agreement"]["bf16 autocast"] < 0.25
    assert row["overhead"]["fraction"] > 0 and "Zoo overhead" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 1000 and out.with_suffix(".svg").exists()


def test_data_throughput_smoke_run_writes_its_tables(tmp_path):
    out = tmp_path / "dt"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data_throughput.py"), "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((out / "data_throughput.json").read_text())
    from bridgezoo.data import TASKS

    assert [r["task"] for r in data["zoo5"]["tasks"]] == list(TASKS)
    assert all(r["items_per_s"] > 0 and r["ms_per_item"] > 0 for r in data["zoo5"]["tasks"])
    paired = data["paired"]
    assert paired["uncached"]["cache"]["misses"] == 2 * paired["pairs"]  # the first pass decodes every image once
    assert paired["cached"]["cache"]["misses"] == 2 * paired["pairs"]  # the later passes decode nothing
    assert paired["cached"]["cache"]["hits"] == 2 * paired["cached"]["items"] and paired["scan_again_decoded"] == 0
    assert set(data["targets"]) == {"paired cached", "derain", "desnow"} and data["machine"]["threads"] == 1
    text = (out / "README.md").read_text()
    assert "Command: `python " in text and "--smoke" in text and "| derain |" in text and "| cached |" in text


def test_x0_ddim_at_nfe_1_is_direct_regression_so_the_ceiling_script_measures_what_it_says():
    import torch

    import bridgezoo as bz

    mu = torch.rand(2, 3, 8, 8) * 2 - 1
    seen = []

    def net(x, m, t):
        seen.append((x.clone(), t.clone()))
        return torch.tanh(3 * m)  # any function of μ

    for name in ("rdbm", "goub", "bbdm", "ddbm-ve"):  # pinned bridges: x_1 = μ exactly
        seen.clear()
        out = bz.get_bridge(name, objective="x0").sample(net, mu, nfe=1, sampler="ddim")
        assert len(seen) == 1 and torch.equal(seen[0][0], mu) and torch.all(seen[0][1] == 1)
        torch.testing.assert_close(out, torch.tanh(3 * mu), atol=1e-6, rtol=0)


@pytest.mark.parametrize("conditioned", [[], ["--task-conditioned"]])
def test_regression_ceiling_script_writes_a_run_like_result(tmp_path, conditioned):
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "regression_ceiling.py"), "--backbone", "unet-test",
                          "--iters", "3", "--batch", "2", "--patch", "32", "--eval-max-side", "32", "--out",
                          str(tmp_path / "c"), *conditioned], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    from bridgezoo.data import SPLITS
    from bridgezoo.run import ZOO5_EVAL_VARIANTS

    images = 5 * len(SPLITS["test"]) * ZOO5_EVAL_VARIANTS  # the run's own test images
    assert summary["steps"] == 1 and summary["images"] == images and len(summary["per_task"]) == 5
    assert json.loads(res.stdout.strip().splitlines()[-1])["input_psnr"] == summary["input"]["psnr"]
    assert "gain" in (tmp_path / "c" / "README.md").read_text()


def test_heldout_script_scores_the_val_photograph_as_a_run_scores_its_test_split(tmp_path):
    from skimage.metrics import peak_signal_noise_ratio

    from bridgezoo.data import Zoo5Eval
    from bridgezoo.run.evaluate import to01

    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "bridgezoo.cli", "run", "--backbone", "unet-test", "--iters", "2",
                          "--batch", "2", "--patch", "32", "--eval-max-side", "40", "--nfe", "2", "--tasks", "lowlight",
                          "dehaze", "--task-conditioned", "--quiet", "--out", str(run)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "heldout.py"), str(run), "--variants", "2",
                          "--out", str(tmp_path / "h")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout)
    rows = pd.read_csv(tmp_path / "h" / "eval.csv")
    assert result["images"] == len(rows) == 4 and set(rows["task"]) == {"lowlight", "dehaze"}
    assert all("motorcycle_right" in n for n in rows["name"])  # the val photograph, never trained on
    item = Zoo5Eval("val", tasks=["lowlight", "dehaze"], variants=2, seed=0, max_side=40)[0]
    expected = peak_signal_noise_ratio(np.round(to01(item["gt"]) * 255), np.round(to01(item["lq"]) * 255),
                                       data_range=255)
    assert rows.loc[rows["name"] == item["name"], "input_psnr"].item() == pytest.approx(expected, abs=1e-6)
    assert result["gain"] == pytest.approx(rows["psnr"].mean() - rows["input_psnr"].mean())


def test_x0_vs_t_final_output_is_the_runs_own_evaluation(tmp_path):
    """The study samples with the run's model as `bridgezoo run` evaluates it: with the deterministic DDIM its
    final PSNR per image equals eval.csv's (a preconditioned bridge, so wrapping twice would show)."""
    run = tmp_path / "ddbm-ve"
    res = subprocess.run([sys.executable, "-m", "bridgezoo.cli", "run", "--bridge", "ddbm-ve", "--backbone", "unet-test",
                          "--iters", "3", "--batch", "2", "--patch", "32", "--eval-max-side", "32", "--nfe", "3",
                          "--tasks", "dehaze", "--task-conditioned", "--quiet", "--out", str(run)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "x0_vs_t.py"), str(run), "--out", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    study = pd.read_csv(tmp_path / "s" / "x0_vs_t.csv")
    final = study[study["kind"] == "final"].set_index("image")["psnr"]
    evaluated = pd.read_csv(run / "eval.csv").set_index("name")["psnr"]
    assert len(final) == len(evaluated) == 10
    np.testing.assert_allclose(final.loc[evaluated.index].to_numpy(), evaluated.to_numpy(), atol=1e-9)


def _gaussian_oracle_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import sampler_gaussian_oracle
    finally:
        sys.path.pop(0)
    return sampler_gaussian_oracle


@pytest.mark.parametrize("bridge", ["irsde", "rddm", "goub"])
def test_stochastic_samplers_reproduce_the_gaussian_data_distribution_at_fine_steps(bridge):
    """With the Bayes-optimal network for x0 ~ N(0, 0.3²), a consistent sampler's outputs have that distribution
    as its steps shrink (the script's table is only meaningful if this holds); a coarse Euler–Maruyama step may
    inflate the spread, a fine one may not."""
    oracle = _gaussian_oracle_module()
    for sampler in ("posterior", "euler_maruyama", "dbim"):
        mean, std = oracle.sample_moments(bridge, sampler, nfe=400, shape=(2, 1, 48, 48))
        assert abs(mean - oracle.MEAN) < 0.03 and abs(std / oracle.STD - 1) < 0.05, (sampler, mean, std)


def test_gaussian_oracle_script_writes_its_table(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sampler_gaussian_oracle.py"), "--out",
                          str(tmp_path), "--bridges", "rddm,goub", "--nfe", "3,50"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    df = pd.read_csv(tmp_path / "gaussian-oracle.csv")
    assert set(df["bridge"]) == {"rddm", "goub"} and set(df["nfe"]) == {3, 50}
    # a deterministic sampler from GOUB's pinned start x_1 = μ returns one value per pixel: the posterior mean
    assert df.query("bridge == 'goub' and sampler == 'ddim'")["std"].max() < 1e-9
    assert "Command: `python benchmarks/sampler_gaussian_oracle.py" in (tmp_path / "gaussian-oracle.md").read_text()


def test_gpu_check_smoke_runs_every_section_on_cpu_and_writes_its_report(tmp_path):
    """`benchmarks/gpu_check.py --smoke`: the GPU check's code paths at tiny sizes on CPU (parity is CPU against
    CPU here, so exactly 0; on a GPU the same code compares the two devices)."""
    out = tmp_path / "gpu"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=900, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    data = json.loads((out / "gpu_check.json").read_text())
    assert data["errors"] == {}
    assert [r["bridge"] for r in data["parity"]["rows"]] == ["ddpm", "meanflow", "rdbm"]  # smoke: three of them
    assert data["parity"]["worst_loss_rel_diff"] == 0 and data["parity"]["worst_deterministic_max_abs_diff"] == 0
    assert all(s.get("finite", False) for r in data["parity"]["rows"] for s in r["samplers"].values())
    assert {"fp32 eager", "bf16", "bf16, no cuDNN autotuning"} <= set(data["training"]["rows"])
    assert all(r["it_per_s"] > 0 and r["mfu_bf16_peak"] > 0 for r in data["training"]["rows"].values())
    assert {"zoo5", "folder"} == set(data["real_path"]) and all(r["it_per_s"] > 0 for r in data["real_path"].values())
    assert set(data["evaluation"]["psnr"]) == {"fp32", "tf32", "bf16"}
    assert data["evaluation"]["evaluate"]["fp32"]["images_per_s"] > 0
    assert "Parity" in (out / "README.md").read_text()
