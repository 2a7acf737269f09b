"""The throughput benchmark runs in its tiny CPU mode and writes a parseable result; fast paths agree."""

import json
import subprocess
import sys
from pathlib import Path

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
    assert all(v["steps_per_s"] > 0 and 0 < v["mfu"] < 1 for v in row["train"].values())
    assert row["sample"]["inference_mode"]["images_per_s"] > 0
    # every fast path gives the baseline's outputs: exactly (layout, fused optimizer) or within bf16 precision
    assert row["agreement"]["channels_last"] < 1e-4 and row["agreement"]["fused AdamW"] < 1e-4
    assert row["agreement"]["bf16 autocast"] < 0.25
    assert row["overhead"]["fraction"] > 0 and "Zoo overhead" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 1000 and out.with_suffix(".svg").exists()
