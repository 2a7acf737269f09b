"""Throughput of training and sampling per backbone size, with every speed-up measured against an fp32 eager
baseline in the same process, the zoo's own overhead, and MFU against a peak measured in the same run. On a GPU,
`benchmarks/gpu_check.py` measures the trainer's own path (data workers included) and checks the arithmetic.

    python benchmarks/throughput.py --out reports/performance            # CPU: 64² images, small batches
    python benchmarks/throughput.py --size 256 --batch 8 --compile --out reports/performance-gpu   # on a GPU
    python benchmarks/throughput.py --tiny --out /tmp/perf                 # seconds; what the test suite runs

Writes OUT.json (every number), OUT.md (tables, command, torch version, device) and OUT.png / OUT.svg (speed-ups).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

import bridgezoo as bz
from bridgezoo.backbone import count_macs


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, device, warmup=1, min_reps=3, min_seconds=1.0):
    """Median-free simple timer: warm up, then repeat until min_reps and min_seconds; seconds per call."""
    for _ in range(warmup):
        fn()
    sync(device)
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_seconds:
        fn()
        reps += 1
    sync(device)
    return (time.perf_counter() - start) / reps


def peak_flops(device, dtype, n):
    """FLOP/s of a large square matmul: the device's practical peak for `dtype`. For fp32 the matmul runs with the
    TF32 setting of cuDNN's convolutions (on by default), the arithmetic the fp32 variants' convolutions use; a
    TF32-off matmul peak would overstate their MFU about eightfold on a Hopper GPU."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
    try:
        sec = timeit(lambda: a @ b, device, min_seconds=0.5)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return 2 * n**3 / sec


def variants(device, with_compile):
    """(name, channels_last, autocast dtype or None, compile mode or False, fused AdamW) — the baseline first."""
    out = [("fp32 eager", False, None, False, False), ("channels_last", True, None, False, False),
           ("bf16 autocast", False, torch.bfloat16, False, False), ("bf16 + channels_last", True, torch.bfloat16, False, False),
           ("fused AdamW", False, None, False, True)]
    if with_compile:
        out.append(("torch.compile", False, None, "default", False))
        if device.type == "cuda":  # CUDA graphs: compile's reduce-overhead mode captures the forward/backward
            out.append(("compile + CUDA graphs", False, None, "reduce-overhead", False))
            out.append(("bf16 + channels_last + CUDA graphs", True, torch.bfloat16, "reduce-overhead", False))
    return out


def bench_backbone(name, args, device, peak):
    bridge = bz.get_bridge(args.bridge)
    torch.manual_seed(0)
    net = bz.get_backbone(name, **bridge.backbone_options(3)).to(device)
    shape = (args.batch, 3, args.size, args.size)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(shape, generator=g) * 2 - 1).to(device)
    mu = (x0 + 0.2 * torch.randn(shape, generator=g).to(device)).clamp(-1, 1)
    t = torch.full((args.batch,), 0.5, device=device)
    with torch.device("meta"):
        meta_net = bz.get_backbone(name, **bridge.backbone_options(3))
        macs = count_macs(meta_net, torch.empty(shape), torch.empty(shape), torch.empty(args.batch))
    row = {"backbone": name, "params": sum(p.numel() for p in net.parameters()), "gmacs_per_forward": macs / 1e9,
           "train": {}, "sample": {}, "agreement": {}}
    base_state = {k: v.clone() for k, v in net.state_dict().items()}
    ref_out = None
    for label, cl, amp, comp, fused in variants(device, args.compile):
        net.load_state_dict(base_state)
        model = net.to(memory_format=torch.channels_last) if cl else net.to(memory_format=torch.contiguous_format)
        fwd = torch.compile(model, mode=comp) if comp else model
        xin, muin = (x0.contiguous(memory_format=torch.channels_last), mu.contiguous(memory_format=torch.channels_last)) if cl else (x0, mu)
        ctx = (lambda: torch.autocast(device.type, dtype=amp)) if amp else nullcontext
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True if fused else None)
        gen = torch.Generator(device=device)

        def train_step():
            gen.manual_seed(0)
            with ctx():
                loss = bridge.training_loss(fwd, xin, muin, generator=gen)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        sec = timeit(train_step, device, warmup=2 if comp else 1, min_seconds=args.seconds)
        row["train"][label] = {"steps_per_s": 1 / sec, "images_per_s": args.batch / sec,
                               "mfu": 3 * 2 * macs / sec / peak[("bf16" if amp else "fp32")]}
        net.load_state_dict(base_state)

        def sample(mode):
            with mode(), ctx():
                return bridge.sample(fwd, muin, nfe=args.nfe, sampler="ddim")

        for mode_label, mode in (("no_grad", torch.no_grad), ("inference_mode", torch.inference_mode)):
            if mode_label == "inference_mode" and label != "fp32 eager":
                continue
            key = label if mode_label == "no_grad" else "inference_mode"
            sec = timeit(lambda: sample(mode), device, min_seconds=args.seconds)
            row["sample"][key] = {"images_per_s": args.batch / sec, "seconds_per_batch": sec}
        out = sample(torch.no_grad).float()
        if ref_out is None:
            ref_out = out
        row["agreement"][label] = float((out - ref_out).abs().max())
    # the zoo's own overhead: sampler + bridge math beyond NFE × one forward of the same batch
    net.load_state_dict(base_state)
    net.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        fwd_sec = timeit(lambda: net(x0, mu, t), device, min_seconds=args.seconds)
        samp_sec = timeit(lambda: bridge.sample(net, mu, nfe=args.nfe, sampler="ddim"), device, min_seconds=args.seconds)
        free = lambda x, m, tt: x  # noqa: E731 - a model that costs nothing: what remains is the zoo's own work
        math_sec = timeit(lambda: bridge.sample(free, mu, nfe=args.nfe, sampler="ddim"), device, min_seconds=args.seconds)
    row["overhead"] = {"forward_s": fwd_sec, "sample_s": samp_sec, "bridge_math_s": math_sec,
                       "fraction": math_sec / (args.nfe * fwd_sec),
                       "difference_fraction": samp_sec / (args.nfe * fwd_sec) - 1}
    return row


def markdown(result) -> str:
    lines = [f"# Throughput ({result['device']})", "", f"Command: `{result['command']}`  ",
             f"torch {result['torch']}, Python {result['python']}, {result['machine']}; images {result['size']}², "
             f"batch {result['batch']}, bridge {result['bridge']}, sampler ddim at NFE {result['nfe']}.  ",
             f"Measured peak: fp32 {result['peak_tflops']['fp32']:.3f} TFLOP/s, bf16 {result['peak_tflops']['bf16']:.3f}"
             " TFLOP/s (large matmul, same run). MFU = 3 × 2 × MACs per step / time / peak.", ""]
    for row in result["rows"]:
        lines += [f"## {row['backbone']} ({row['params'] / 1e6:.3f}M params, {row['gmacs_per_forward']:.2f} GMACs per forward)", "",
                  "| variant | train steps/s | × fp32 eager | MFU | sample images/s | × fp32 eager | max |Δ| vs fp32 |",
                  "|---|---|---|---|---|---|---|"]
        base_t = row["train"]["fp32 eager"]["steps_per_s"]
        base_s = row["sample"]["fp32 eager"]["images_per_s"]
        for label, tr in row["train"].items():
            sp = row["sample"].get(label, {}).get("images_per_s")
            lines.append(f"| {label} | {tr['steps_per_s']:.3f} | {tr['steps_per_s'] / base_t:.2f} | {tr['mfu'] * 100:.1f}% | "
                         f"{sp:.3f} | {sp / base_s:.2f} | {row['agreement'][label]:.2e} |" if sp else "")
        inf = row["sample"]["inference_mode"]["images_per_s"]
        lines.append(f"| inference_mode (sampling) | | | | {inf:.3f} | {inf / base_s:.2f} | |")
        o = row["overhead"]
        lines += ["", f"Zoo overhead: the sampler and bridge math alone (a free model) take {o['bridge_math_s'] * 1e3:.2f} ms"
                      f" per batch = {o['fraction'] * 100:.2f}% of {result['nfe']} × forward ({o['forward_s'] * 1e3:.1f} ms);"
                      f" directly, sampling {o['sample_s'] * 1e3:.1f} ms vs NFE × forward → "
                      f"{o['difference_fraction'] * 100:+.2f}% (timing noise included).", ""]
    return "\n".join(lines) + "\n"


def plot(result, out: Path) -> list[Path]:
    """OUT.png / OUT.svg: speed-up of every variant over fp32 eager, training and sampling, per backbone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    labels = list(result["rows"][0]["train"])
    for ax, kind, key in ((axes[0], "train", "steps_per_s"), (axes[1], "sample", "images_per_s")):
        names = labels + (["inference_mode"] if kind == "sample" else [])
        width = 0.8 / len(result["rows"])
        for j, row in enumerate(result["rows"]):
            base = row[kind]["fp32 eager"][key]
            vals = [row[kind][n][key] / base if n in row[kind] else float("nan") for n in names]
            ax.bar([i + (j - (len(result["rows"]) - 1) / 2) * width for i in range(len(names))], vals, width,
                   label=row["backbone"])
        ax.axhline(1, color="grey", lw=1)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{kind}: × fp32 eager ({result['device']}, {result['size']}², batch {result['batch']})", fontsize=9)
    axes[0].set_ylabel("speed-up (same process)")
    axes[0].legend(fontsize=8, frameon=False)
    files = []
    for ext in ("png", "svg"):
        fig.savefig(out.with_suffix(f".{ext}"), dpi=130, bbox_inches="tight")
        files.append(out.with_suffix(f".{ext}"))
    plt.close(fig)
    return files


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["unet-T", "unet-S", "unet-B", "unet-L"])
    p.add_argument("--bridge", default="rdbm")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--nfe", type=int, default=10)
    p.add_argument("--seconds", type=float, default=2.0, help="minimum time per measurement")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile on CPU)")
    p.add_argument("--tiny", action="store_true", help="unet-test at 32², short timings (for the test suite)")
    p.add_argument("--out", required=True, help="output path without suffix: writes OUT.json, OUT.md, OUT.png/.svg")
    p.add_argument("--plot-only", action="store_true", help="only redraw OUT.png/.svg from an existing OUT.json")
    args = p.parse_args(argv)
    if args.plot_only:
        plot(json.loads(Path(args.out).with_suffix(".json").read_text()), Path(args.out))
        return
    if args.tiny:
        args.backbones, args.size, args.batch, args.seconds, args.nfe = ["unet-test"], 32, 2, 0.05, 4
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n = 256 if args.tiny else (8192 if device.type == "cuda" else 2048)
    peak = {"fp32": peak_flops(device, torch.float32, n), "bf16": peak_flops(device, torch.bfloat16, n)}
    result = {"command": " ".join(["python", *sys.argv]), "torch": torch.__version__, "python": platform.python_version(),
              "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
              "machine": platform.machine(), "size": args.size, "batch": args.batch, "nfe": args.nfe,
              "bridge": args.bridge, "peak_tflops": {k: v / 1e12 for k, v in peak.items()},
              "rows": [bench_backbone(b, args, device, peak) for b in args.backbones]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    plot(result, out)
    print(markdown(result))


if __name__ == "__main__":
    main()
