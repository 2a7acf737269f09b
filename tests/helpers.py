"""Shared test helpers (one module; no test file imports another): image pairs, the oracle-sampler and
Monte Carlo checks of the bridge tests, the CLI as a real subprocess and the fast `run` options, and the throw-away
plugin distributions of the plugin tests."""

import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import torch

import bridgezoo as bz
from bridgezoo.testing import image_pair, oracle

F64 = torch.float64
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BRIDGES = bz.list_bridges()  # every registered bridge (parametrizes the contract tests)


# ----------------------------------------------------------------------------- the CLI, as a real subprocess
def cli(*args, timeout=600, **kw):
    """`python -m bridgezoo.cli ARGS` (arguments str()-ed), output captured as text; `kw` goes to subprocess.run."""
    return subprocess.run([sys.executable, "-m", "bridgezoo.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


RUN_FAST = {"backbone": "unet-test", "batch": 4, "patch": 32, "eval_max_side": 40, "nfe": 4, "tasks": "lowlight",
            "quiet": True}


def fast(**changes) -> list[str]:
    """The options of a tiny `bridgezoo run` (RUN_FAST) with `changes`: a key is a flag without "--" and with "_"
    for "-"; True is a bare flag, None drops one; a changed key keeps its place, a new one goes last."""
    out = []
    for key, value in {**RUN_FAST, **changes}.items():
        if value is None or value is False:
            continue
        out += ["--" + key.replace("_", "-")] + ([] if value is True else [str(value)])
    return out


def run_cli(*args, env_extra=None, pythonpath=None):
    """`cli` with extra environment variables and a folder put first on PYTHONPATH (the plugin tests)."""
    env = dict(os.environ, **(env_extra or {}))
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return cli(*args, env=env, timeout=300)


def make_dist(root: Path, dist: str, module: str, source: str, entry: str | None = None) -> Path:
    """A throw-away distribution in `root`: `module`.py plus a .dist-info whose entry_points.txt registers it in the
    `bridgezoo` group (importlib.metadata finds it on sys.path exactly as it finds installed packages)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(source)
    sys.modules.pop(module, None)  # another test may have imported a module of that name
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[bridgezoo]\n{entry or module} = {module}\n")
    return root


def readme_plugin():
    """The README's third-party plugin example: (module source, entry-point name, module name)."""
    text = README.read_text()
    py = re.search(r"```python\n# file: (\w+)\.py\n(.*?)```", text, re.S)
    toml = re.search(r"```toml\n# file: pyproject.toml\n(.*?)```", text, re.S)
    assert py and toml, "README lost its plugin example"
    meta = tomllib.loads(toml.group(1))
    (ep_name, target), = meta["project"]["entry-points"]["bridgezoo"].items()
    assert target == py.group(1)
    return py.group(2), ep_name, py.group(1), meta["project"]["name"]


# ----------------------------------------------------------------------------- bridges: images and oracle checks


def pair(seed=0, shape=(2, 3, 6, 6)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g, dtype=F64) * 1.8 - 0.9
    mu = (x0 + 0.4 * torch.randn(shape, generator=g, dtype=F64)).clamp(-0.9, 0.9)
    return x0, mu


def coefficients(b, t):
    return [v.flatten() for v in b.coefficients(t)]


def oracle_samplers_hold(b, x0, mu, nfes=(5,)):
    """Every deterministic, oracle-exact sampler of `b` returns x0; returns the names it checked."""
    checked = []
    for sampler in b.samplers:
        info = b.sampler_info(sampler)
        if not (info.deterministic and info.oracle_exact):
            continue
        for nfe in nfes:
            out = b.sample(oracle(b, x0), mu, nfe=nfe, sampler=sampler)
            assert (out - x0).abs().max().item() < 1e-9, (b.name, sampler, nfe)
        checked.append(sampler)
    return checked


def marginal_mismatch(b, sampler, nfe, states=(0.25, 0.5, 0.75)):
    """Under the oracle, the worst |mean| and |std − 1| of z = (x_t − a·x0 − b·μ)/(c·π) over 3072 pixels at the
    given fractions of the grid (a stochastic sampler must follow the forward marginals)."""
    x0, mu = image_pair(11, (4, 3, 16, 16))
    _, traj = b.sample(oracle(b, x0), mu, nfe=nfe, sampler=sampler, generator=torch.Generator().manual_seed(0),
                       return_trajectory=True)
    worst = 0.0
    for frac in states:
        k = round(frac * (len(traj.t) - 1))
        a, bb, c = b.coefficients(traj.t[k : k + 1])
        z = (traj.x[k] - a * x0 - bb * mu) / (c * b.pi_field(x0, mu))
        worst = max(worst, abs(z.mean().item()), abs(z.std().item() - 1))
    return worst


def not_a_generalized_bridge(a, c, scales=(0.05, 0.5, 2.0, 5.0, 20.0)):
    """For every total S, the generalized bridge with Θ = a has Σ²/(2λ) = a·sinh(S − asinh(a·sinh S)), so
    c²/(a·sinh(S − asinh(a·sinh S))) would be the constant 2λ. Returns the smallest max/min spread of that ratio
    over the S tried (≫ 1: no S, and no λ, gives these coefficients)."""
    spreads = []
    for S in scales:
        u = torch.asinh(a * math.sinh(S))
        ratio = c**2 / (a * torch.sinh(S - u))
        spreads.append((ratio.max() / ratio.min()).item())
    return min(spreads)


def smooth_net(x, mu, t):
    """A fixed smooth 'network' (t of shape [B] or [B, K])."""
    tt = t.reshape(x.shape[0], -1)
    return 0.4 * torch.tanh(x - 0.5 * mu + 0.3 * tt[:, :1].view(-1, 1, 1, 1)) + 0.1 * tt[:, -1:].view(-1, 1, 1, 1) * mu


def straight_path_relation_holds(name: str) -> None:
    """π = zero: (a, b) = (1 − t, t) equals the generalized bridge's (Θ_τ, 1 − Θ_τ) at 1 − t = Θ_τ (λ = 0), for a
    θ schedule with total S = 2; with noise the relation is none: c(1) > 0 while Σ_1 = 0 (indi, meanflow)."""
    from bridgezoo.generalized import sinh_coefficients

    b = bz.get_bridge(name)
    assert b.relation["kind"] == "exact" and b.relation["lam"] == 0.0
    tau = torch.linspace(0, 1, 21, dtype=F64)
    theta, one_minus, sigma = sinh_coefficients(2.0 * tau, 2.0, 0.0)
    a, bb, _ = b.coefficients(1 - theta)
    torch.testing.assert_close(a.flatten(), theta, atol=1e-14, rtol=0)
    torch.testing.assert_close(bb.flatten(), one_minus, atol=1e-14, rtol=0)
    noisy = bz.get_bridge(name, pi="one")
    assert noisy.relation["kind"] == "none" and noisy.coefficients(torch.tensor(1.0, dtype=F64))[2].item() > 0
    assert sinh_coefficients(torch.tensor(2.0, dtype=F64), 2.0, 0.3)[2].item() == 0
