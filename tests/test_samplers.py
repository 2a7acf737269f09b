"""Samplers as plugins: the shared samplers on every bridge (oracle, order of convergence, Monte Carlo marginals,
evaluation counts), their selection by name and options, a third-party sampler installed through a real entry
point, `bridgezoo list`, the core's independence from the methods, and three official-code behaviours (DDBM's
final clamp, BBDM's float32 step list, IR-SDE's unclipped posterior) against independent transcriptions."""

import dataclasses
import importlib
import inspect
import io
import json
import math
import re
import tokenize
from pathlib import Path

import pytest
import torch

import bridgezoo as bz
from bridgezoo.errors import OptionError
from bridgezoo.testing import oracle

from helpers import BRIDGES, README, make_dist, pair, run_cli

F64 = torch.float64
SHARED = ("ddim", "dbim", "posterior", "euler_maruyama", "heun", "dpmpp_2m")
CORE = Path(bz.__file__).parent


def network_for(bridge):
    """A fixed smooth 'network' in the bridge's objective space (any one will do for identities)."""
    channels = bridge.out_channels(3) // 3

    def net(x, mu, t):  # t of shape [B], or [B, 2] for a two-time bridge (MeanFlow): its columns summed
        y = torch.tanh(1.3 * x - 0.4 * mu + 0.3 * t.reshape(x.shape[0], -1).sum(1).view(-1, 1, 1, 1) + 0.1)
        return torch.cat([y, 0.5 * y], 1) if channels == 2 else y

    return net


def defined(name, **options):
    """The part of `options` that bridge `name` defines (`Bridge.undefined`): ddpm has only π = one, meanflow only
    the velocity objective; the others keep their defaults."""
    cls = type(bz.get_bridge(name))
    return {k: v for k, v in options.items() if cls.defines(**{k: v})}


# ----------------------------------------------------------------------------------------------- what applies
def test_every_bridge_offers_the_shared_samplers_after_its_own():
    for name in BRIDGES:
        b = bz.get_bridge(name)
        assert b.samplers[: len(type(b).official_samplers)] == type(b).official_samplers
        missing = set(SHARED) - set(b.samplers)
        if missing:  # udbm: a shared sampler is left out only where the bridge says why, or it is not Markov
            markov_only = {"posterior", "dbim", "euler_maruyama"}
            assert missing <= set(type(b).unsupported_samplers) | (markov_only if not b.markov else set()), \
                (name, b.samplers)
            continue
        heun = b.get_sampler("heun")
        if name.startswith("ddbm"):  # DDBM's own heun takes the name for its bridges
            assert type(heun).__module__ == "bridgezoo_plugins.bridges.ddbm" and not b.sampler_info("heun").oracle_exact
        else:
            assert type(heun).__module__ == "bridgezoo.samplers" and b.sampler_info("heun").oracle_exact
        for sampler, order, evals in (("heun", 2, 2), ("dpmpp_2m", 2, 1), ("ddim", 1, 1), ("euler_maruyama", 1, 1)):
            info = b.sampler_info(sampler)
            assert (info.order, info.evals_per_step) == (order, evals), (name, sampler, info)
        assert b.sampler_info("dpmpp_2m").deterministic and b.sampler_info("dpmpp_2m").oracle_exact
        assert not b.sampler_info("posterior").deterministic and not b.sampler_info("euler_maruyama").deterministic
        assert b.sampler_info("euler_maruyama:eta=0").deterministic  # Euler on the PF-ODE
    sde_only = {"reverse_sde", "mean_ode", "reverse_ode"}
    assert sde_only <= set(bz.get_bridge("goub").samplers) and not sde_only & set(bz.get_bridge("fm").samplers)


def test_sampler_names_options_and_their_errors():
    b = bz.get_bridge("rdbm")
    assert b.get_sampler("dbim:eta=0.5, boot=false").options == {"eta": 0.5, "boot": False}
    assert b.get_sampler("dbim").options == {"eta": 0.0, "boot": True}
    cases = [("dbim:etta=0.5", r"sampler 'dbim' has no option 'etta'\. Did you mean 'eta'\?.*boot \(default True\)"),
             ("dbim:eta=abc", r"option eta='abc' is not a valid float"),
             ("dbim:eta=2", r"eta must be in \[0, 1\]"),
             ("dbim:eta", r"expected NAME or NAME:KEY=VALUE"),
             ("dbmi", r"no sampler 'dbmi'\. Did you mean 'dbim'.*Valid samplers: ddim, reverse_sde, dbim"),
             ("skip", r"bridge 'rdbm' has no sampler 'skip'")]  # BBDM's own sampler is not RDBM's
    for spec, message in cases:
        with pytest.raises(OptionError, match=message):
            b.get_sampler(spec)
    assert bz.get_bridge("bbdm").get_sampler("skip").name == "skip"


# ----------------------------------------------------------------------------------------------- identities
def test_dbim_is_ddim_at_eta_zero_and_posterior_at_eta_one():
    """η = 0 without the boot is `ddim` exactly; the boot changes only bridges with a pinned start; η = 1 is the
    ancestral `posterior` (same noise stream); any network, every bridge (objective x0: a noise prediction has
    no x̂0 at a pinned start, where a = 0, so its boot would be noise-free)."""
    for name in BRIDGES:
        b = bz.get_bridge(name, **defined(name, objective="x0"))
        if "dbim" not in b.samplers:  # not Markov (udbm): no DBIM to compare
            continue
        net, mu = b.wrap(network_for(b)), pair(seed=1)[1]
        run = lambda s: b.sample(net, mu, nfe=6, sampler=s, generator=torch.Generator().manual_seed(3))  # noqa: E731
        assert torch.equal(run("dbim:eta=0,boot=false"), run("ddim")), name
        booted_differs = not torch.equal(run("dbim"), run("ddim"))
        noise_free_start = bool((b.coefficients(torch.ones(1, dtype=F64))[2] == 0).all())  # pinned, or UniDB's end
        assert booted_differs == (noise_free_start and b.pi != "zero"), name  # booting noise c_s·π̂·z: c(1) = 0 only
        torch.testing.assert_close(run("dbim:eta=1"), run("posterior"), atol=1e-12, rtol=0, msg=name)


def test_stochastic_shared_samplers_return_x0_under_the_oracle():
    """Every DBIM / posterior step samples a law with the exact marginal, and the last one lands on c = 0."""
    x0, mu = pair()
    for name in BRIDGES:
        for pi in bz.PI_MODES:
            if not defined(name, pi=pi):
                continue
            b = bz.get_bridge(name, pi=pi, **defined(name, objective="x0"))
            for sampler in ("dbim:eta=0.5", "posterior", "euler_maruyama"):
                if sampler.partition(":")[0] not in b.samplers:
                    continue
                out = b.sample(oracle(b, x0), mu, nfe=5, sampler=sampler, generator=torch.Generator().manual_seed(0))
                assert (out - x0).abs().max() < 1e-9, (name, pi, sampler)


def test_network_evaluations_are_counted_honestly():
    mu = torch.zeros(1, 3, 4, 4, dtype=F64)
    for name in BRIDGES:
        b = bz.get_bridge(name)
        net = b.wrap(network_for(b))
        for sampler, expected in (("ddim", 7), ("dbim", 7), ("posterior", 7), ("euler_maruyama", 7),
                                  ("dpmpp_2m", 7), ("heun", 13)):  # a Heun step is two, its last one
            if sampler not in b.samplers:
                continue
            _, traj = b.sample(net, mu, nfe=7, sampler=sampler, return_trajectory=True,
                               generator=torch.Generator().manual_seed(0))
            assert traj.nfe == expected and len(traj.t) == 8, (name, sampler, traj.nfe)


# ----------------------------------------------------------------------------------------------- order
@pytest.mark.parametrize("name", BRIDGES)
def test_each_image_of_a_batch_draws_its_noise_from_its_own_generator(name):
    """`sample(..., generator=[g_1, ..., g_B])` restores image i exactly as sampling it alone with g_i, for every
    sampler of every bridge (π = one where defined, so the start is noisy too): a batched evaluation gives each
    image the result it would get unbatched."""
    b = bz.get_bridge(name, **defined(name, pi="one"))
    _, mu = pair(shape=(3, 3, 6, 6))
    seeds = (11, 12, 13)
    gens = lambda: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    for sampler in (*b.samplers, "dbim:eta=0.5", "euler_maruyama:eta=0.7"):
        if sampler.partition(":")[0] not in b.samplers:
            continue
        batched = b.sample(network_for(b), mu, nfe=4, sampler=sampler, generator=gens())
        for i, g in enumerate(gens()):
            alone = b.sample(network_for(b), mu[i : i + 1], nfe=4, sampler=sampler, generator=g)
            torch.testing.assert_close(batched[i : i + 1], alone, rtol=0, atol=1e-12, msg=f"{name} {sampler} image {i}")


def run_on_grid(bridge, sampler, grid, x, mu, model):
    for x, _ in bridge.get_sampler(sampler).steps(bridge, model, x, mu, grid):
        pass
    return x


@pytest.mark.parametrize("name", ["rdbm", "bbdm", "ddbm-vp"])
def test_heun_and_dpmpp_2m_converge_at_second_order_ddim_at_first(name):
    """On t ∈ [0.2, 0.8] from a fixed state, with a smooth non-oracle model: the error against a fine solution
    halves with the step for ddim and quarters for heun and dpmpp_2m."""
    b = bz.get_bridge(name, objective="x0", pi="one", clip_x0=False)
    g = torch.Generator().manual_seed(0)
    mu = torch.rand(1, 1, 4, 4, generator=g, dtype=F64) * 1.6 - 0.8
    a, bb, c = b.coefficients(torch.tensor([0.8], dtype=F64))
    x_start = a * 0.3 + bb * mu + c * torch.randn(mu.shape, generator=g, dtype=F64)
    model = lambda x, m, t: 0.6 * torch.tanh(1.5 * x - 0.5 * m) + 0.2 * torch.sin(3 * t.view(-1, 1, 1, 1)) * m  # noqa: E731
    grid = lambda n: torch.linspace(0.8, 0.2, n + 1, dtype=F64)  # noqa: E731
    fine = run_on_grid(b, "dpmpp_2m", grid(1600), x_start, mu, model)
    for sampler, lo, hi in (("ddim", 0.8, 1.2), ("heun", 1.6, 2.4), ("dpmpp_2m", 1.6, 2.6)):
        errs = [(run_on_grid(b, sampler, grid(n), x_start, mu, model) - fine).abs().max().item() for n in (10, 20, 40)]
        slopes = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
        assert all(lo <= s <= hi for s in slopes), (name, sampler, errs, slopes)


# ----------------------------------------------------------------------------------------------- marginals
def worst_z(bridge, sampler, grid, at=None, patch_noise=1.0):
    """Largest |z| of the mean and variance of x_s against q(x_s | x0, μ) over the states visited (or those at
    the times `at`), from an exact sample at grid[0]; 20000 samples of one (x0, μ) = (0.5, −0.3), π = x0 − μ = 0.8
    (or the bridge's π where it defines only another: ddpm's π = 1)."""
    x0 = torch.full((1, 1, 100, 200), 0.5, dtype=F64)
    mu = torch.full_like(x0, -0.3)
    n = x0.numel()
    pi = bridge.pi_field(x0[..., :1, :1], mu[..., :1, :1]).item()
    if patch_noise != 1.0:  # a broken sampler: its noise 1.5× too large
        bridge.pi_field = lambda a, m: patch_noise * (a - m)
    g = torch.Generator().manual_seed(0)
    a, b, c = bridge.coefficients(grid[:1])
    x = a * x0 + b * mu + c * pi * torch.randn(x0.shape, generator=g, dtype=F64)
    worst = 0.0
    for k, (x, _) in enumerate(bridge.get_sampler(sampler).steps(bridge, oracle(bridge, x0), x, mu, grid, g), start=1):
        if at is not None and not any(abs(float(grid[k]) - u) < 1e-9 for u in at):
            continue
        a, b, c = (v.item() for v in bridge.coefficients(grid[k : k + 1]))
        mean, var = 0.5 * a - 0.3 * b, (pi * c) ** 2
        if var == 0:
            continue
        worst = max(worst, abs(x.mean().item() - mean) / math.sqrt(var / n),
                    abs(x.var().item() - var) / (var * math.sqrt(2 / (n - 1))))
    return worst


@pytest.mark.parametrize("name", BRIDGES)
def test_stochastic_samplers_keep_the_marginals(name):
    """Mean and variance of every visited state within 4 standard errors of the bridge's marginal: DBIM at
    η = 0.5 and the ancestral posterior on the bridge's grid (exact at any step size), Euler–Maruyama on a fine
    uniform grid at t = 0.75 and 0.5 (its error is O(Δ))."""
    b = bz.get_bridge(name, **defined(name, pi="residual", objective="x0"))
    if not b.markov:  # no two-time transition (udbm): these samplers do not apply, and b.samplers says so
        assert not {"dbim", "posterior", "euler_maruyama"} & set(b.samplers)
        return
    for sampler in ("dbim:eta=0.5", "posterior"):
        z = worst_z(b, sampler, b.get_sampler(sampler).timesteps(b, 6))
        assert z < 4, (name, sampler, z)
    z = worst_z(b, "euler_maruyama", torch.linspace(1, 0, 801, dtype=F64), at=(0.75, 0.5))
    assert z < 4, (name, "euler_maruyama", z)


def test_the_marginal_test_catches_a_wrong_noise_level():
    for sampler, grid, at in (("dbim:eta=0.5", None, None), ("euler_maruyama", torch.linspace(1, 0, 201, dtype=F64),
                                                              (0.75, 0.5))):
        b = bz.get_bridge("rdbm", pi="residual", objective="x0")
        assert worst_z(b, sampler, grid if grid is not None else b.timesteps(6, sampler), at, patch_noise=1.5) > 10


# ----------------------------------------------------------------------------------------------- a third-party sampler
def readme_sampler_plugin():
    """The README's sampler plugin: (module source, module name, entry-point name)."""
    text = README.read_text()
    files = dict(re.findall(r"```python\n# file: (\w+)\.py\n(.*?)```", text, re.S))
    module = next(m for m, src in files.items() if "register_samplers" in src)
    entry = re.search(r"```toml\n\[project\.entry-points\.bridgezoo\]\n(\S+) = \"" + module + "\"\n```", text)
    assert entry, "README lost the sampler plugin's entry point"
    return files[module], module, entry.group(1)


def test_readme_sampler_plugin_works_with_every_bridge(tmp_path, monkeypatch, images64):
    source, module, ep_name = readme_sampler_plugin()
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, "bridgezoo-ddim-power", module, source, ep_name)))
    x0, mu = images64
    record = [p for p in bz.plugin_records() if p["name"] == ep_name][0]
    assert record["error"] is None and record["provides"]["samplers"] == ["ddim-power"]
    for name in bz.list_bridges():
        for pi in bz.PI_MODES:
            if not defined(name, pi=pi):
                continue
            b = bz.get_bridge(name, pi=pi)
            assert "ddim-power" in b.samplers and b.sampler_info("ddim-power").oracle_exact
            out, traj = b.sample(oracle(b, x0), mu, nfe=6, sampler="ddim-power:power=3", return_trajectory=True)
            assert (out - x0).abs().max() < 1e-5, (name, pi)
            torch.testing.assert_close(traj.t, torch.linspace(1, 0, 7, dtype=F64) ** 3)
            assert traj.nfe == 6


def test_cli_list_shows_samplers_with_their_properties(tmp_path):
    source, module, ep_name = readme_sampler_plugin()
    root = make_dist(tmp_path, "bridgezoo-ddim-power", module, source, ep_name)
    res = run_cli("list", "--json", pythonpath=root)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["samplers"]
    by = {(r["name"], r["shared"]): r for r in rows}
    assert by[("ddim-power", True)]["for"] == "all bridges" and by[("ddim-power", True)]["options"] == {"power": 2.0}
    heun = by[("heun", True)]
    assert (heun["order"], heun["deterministic"], heun["evals_per_step"]) == (2, True, 2)
    assert "ddbm" not in heun["for"] and by[("heun", False)]["for"] == "ddbm-ve, ddbm-vp"
    assert (by[("dbim", True)]["deterministic"], by[("dbim", True)]["options"]) == (False, {"eta": 0.0, "boot": True})
    assert by[("reverse_sde", True)]["for"] == "goub, irsde, rdbm, unidb" and by[("skip", False)]["for"] == "bbdm"


# ----------------------------------------------------------------------------------------------- runner selection
def test_a_sampler_is_selected_and_checked_in_grids_run_and_restore(tmp_path):
    from bridgezoo.bench import check_grid, load_grid
    from bridgezoo.cli import main
    from bridgezoo.data import write_png
    from bridgezoo.run import RunConfig, build_model, run, save_weights

    grid = tmp_path / "g.toml"
    grid.write_text('[axes]\nbridge = ["rdbm", "bbdm"]\nsampler = ["dbim:eta=0.5", "heun", "skip"]\n')
    problems = check_grid(load_grid(grid))  # what `bench` and `bench --dry-run` refuse before anything runs
    assert sorted(problems) == [r.name for r in load_grid(grid).runs if r.config["bridge"] == "rdbm"]
    assert all("bridge 'rdbm' has no sampler 'skip'" in msg for msg in problems.values())
    grid.write_text('[axes]\nbridge = ["rdbm", "bbdm"]\nsampler = ["dbim:eta=0.5", "heun"]\n')
    assert [r.evals for r in load_grid(grid, out=tmp_path / "runs").runs] == [[(None, "dbim:eta=0.5"), (None, "heun")]] * 2

    out = tmp_path / "run"
    with pytest.raises(OptionError, match="no sampler 'nope'"):
        run(RunConfig(bridge="rdbm", backbone="unet-test", sampler="nope", out=str(out), quiet=True))
    assert not out.exists()  # nothing was written

    cfg = RunConfig(bridge="rdbm", backbone="unet-test", nfe=2)
    _, model = build_model(cfg)
    save_weights(tmp_path / "model.safetensors", model, dataclasses.asdict(cfg))
    write_png(tmp_path / "in.png", torch.rand(8, 8, 3).numpy())
    args = ["restore", "--weights", str(tmp_path / "model.safetensors"), str(tmp_path / "in.png"), "--quiet"]
    assert main(args + ["--out", str(tmp_path / "bad"), "--sampler", "dbim:eta=3"]) == 2
    assert not (tmp_path / "bad").exists()
    assert main(args + ["--out", str(tmp_path / "good"), "--sampler", "dbim:eta=0.5"]) == 0
    assert (tmp_path / "good" / "in.png").is_file()


# ----------------------------------------------------------------------------------------------- the core
def code_identifiers(path: Path) -> set[str]:
    """Names used in a file's code (not in its strings or comments)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return {tok.string for tok in tokens if tok.type == tokenize.NAME}


def test_the_core_holds_no_method_specific_code():
    """No class or function of a bridge or sampler plugin (or of the shared SDE module) is named in bridgezoo/,
    and the core never imports the plugins."""
    from bridgezoo.registry import HOOKS, registry

    registry().load()
    modules = {e.obj.__module__ for e in registry().kinds["bridge"].values()}
    modules |= {e.obj.__module__ for e in registry().sampler_entries if e.obj.__module__.startswith("bridgezoo_plugins")}
    assert "bridgezoo_plugins.bridges.sde" in modules and "bridgezoo_plugins.bridges.ddbm" in modules
    plugin_names = set()
    for module_name in modules:
        module = importlib.import_module(module_name)
        plugin_names |= {n for n, obj in vars(module).items()
                         if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module_name}
    plugin_names = (plugin_names - set(HOOKS)) | {"bridgezoo_plugins"}  # the hook names are the core's contract
    assert {"IRSDEClock", "DifferenceInput", "ThetaBridge", "SDEBridge", "irsde_clock", "KarrasHeun"} <= plugin_names
    found = {p.relative_to(CORE).as_posix(): code_identifiers(p) & plugin_names for p in CORE.rglob("*.py")}
    assert not {k: v for k, v in found.items() if v}
