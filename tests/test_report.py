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
from bridgezoo.errors import OptionError
from bridgezoo.report import build_report, mean_ci, render_report

TASKS = ("derain", "dehaze")
# PSNR of (bridge, π, seed): chosen so every interval and paired difference can be checked by hand
PSNR = {("rdbm", "residual"): [20.0, 21.0, 23.0], ("rdbm", "one"): [19.0, 20.5, 21.0],
        ("goub", "residual"): [18.0, 18.5, 19.5], ("goub", "one"): [18.2, 18.3, 18.4]}


def make_run(root: Path, bridge: str, pi: str, seed: int, psnr: float, nfe: int = 10, name: str | None = None,
             **settings) -> Path:
    """A finished run directory (config.json, summary.json, train.jsonl, sample PNGs) whose numbers are known;
    `settings` are extra config.json entries (training settings such as patch or data)."""
    run = root / (name or f"{bridge}-{pi}-s{seed}")
    (run / "samples").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"bridge": bridge, "backbone": "unet-test", "seed": seed, "pi": pi,
                                                 "bridge_options": {"pi": pi}, "iters": 10, "batch": 2, "patch": 32}
                                                | settings))
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
    out.mkdir()
    (out / "READING.md").write_text("# Reading\n\n**Scale first.** a <script>alert(1)</script> reading\n")
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
    assert list(df["psnr"]) == sorted(df["psnr"], reverse=True)  # best first
    assert [(Path(r["run"]).name, r["reason"]) for r in info["left_out"]] == [("half-finished", "unfinished")]


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
    row = diffs[(diffs["method"] == "rdbm") & (diffs["contrast"] == "residual − one")].iloc[0]
    d = np.subtract(PSNR[("rdbm", "residual")], PSNR[("rdbm", "one")])  # 1.0, 0.5, 2.0
    mean, half, n = mean_ci(d)
    assert row["mean_db"] == pytest.approx(mean) and row["mean_db_ci"] == pytest.approx(half)  # t: no eval.csv
    assert row["mean_db_lo"] == pytest.approx(mean - half) and row["mean_db_hi"] == pytest.approx(mean + half)
    assert row["pairs"] == 3 and row["wins"] == 3
    heat = pd.read_csv(out / "pi_ablation.csv").set_index("method")
    assert heat.loc["goub", "one"] == pytest.approx(18.3)


RDBM_PAPER = {"lam": 10 / 255, "objective": "noise"}  # RDBM's paper configuration (BRIDGES.md §10)
RDBM_RELEASED = {"lam": 1e-4, "objective": "x0"}  # its released code's (MiliLab/RDBM code/rdbm.py), with π = one


def test_pi_ablation_pairs_only_runs_that_differ_in_pi_alone(tmp_path):
    """RDBM's paper configuration (π = residual) and its released one (π = one, λ = 1e-4, x0 objective) differ in
    more than π: never one row, never paired; a run of the paper configuration with π = one is its pair."""
    root = tmp_path / "runs"
    make_run(root, "rdbm", "residual", 0, 20.0, name="paper", bridge_options={"pi": "residual", **RDBM_PAPER})
    make_run(root, "rdbm", "one", 0, 23.0, name="released", bridge_options={"pi": "one", **RDBM_RELEASED})
    make_run(root, "rdbm", "one", 0, 19.0, name="paper-one", bridge_options={"pi": "one", **RDBM_PAPER})
    out = tmp_path / "rep"
    build_report([root], out)
    diffs = pd.read_csv(out / "pi_differences.csv")
    assert len(diffs) == 1 and diffs["contrast"].iloc[0] == "residual − one"
    assert diffs["mean_db"].iloc[0] == pytest.approx(1.0) and '"objective":"noise"' in diffs["method"].iloc[0]
    heat = pd.read_csv(out / "pi_ablation.csv").set_index("method")  # rows named by what differs: the options
    paper, released = (next(m for m in heat.index if f'"objective":"{o}"' in m) for o in ("noise", "x0"))
    assert paper.startswith("rdbm [bridge_opts {") and '"lam":0.0001' in released
    assert heat.loc[paper, ["one", "residual"]].tolist() == [19.0, 20.0] and heat.loc[released, "one"] == 23.0
    assert math.isnan(heat.loc[released, "residual"])
    methods = pd.read_csv(out / "summary.csv")["method"]  # the summary names them by their options too, not by π alone
    assert sorted(m.split(" [")[0] for m in methods) == ["rdbm π=one", "rdbm π=one", "rdbm π=residual"]
    assert all('[bridge_opts {"lam":' in m for m in methods)

    # the paper and released runs alone: no row has two π modes, so no π table, and none of before stays
    (root / "paper-one" / "summary.json").unlink()
    build_report([root], out)
    assert not (out / "pi_differences.csv").exists() and not (out / "pi_ablation.md").exists()
    assert "π ablation" not in (out / "index.html").read_text()


def test_every_figure_is_written_and_every_file_the_html_references_exists(report):
    out, info = report
    for name in ("gain", "per_task_psnr", "pi_heatmap", "pi_differences", "training_loss", "qualitative",
                 "noise_std_maps"):
        for ext in ("png", "svg"):
            f = out / "figures" / f"{name}.{ext}"
            assert f.exists() and f.stat().st_size > 1000, f
            assert f"figures/{name}.{ext}" in info["figures"] or name in ("qualitative", "noise_std_maps")

    class Refs(HTMLParser):
        refs = []

        def handle_starttag(self, tag, attrs):
            self.refs += [v for k, v in attrs if k in ("src", "href") and not v.startswith("#")]

    page = (out / "index.html").read_text()
    parser = Refs()
    parser.feed(page)
    assert len(parser.refs) >= 16
    assert all((out / r).exists() for r in parser.refs), [r for r in parser.refs if not (out / r).exists()]
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)  # opens offline
    assert "bridgezoo report RUNS --out rep" in page and "8-bit, float64" in page
    assert "Unification" in page and (out / "unification.md").exists()


def test_figures_adapt_a_single_nfe_or_equal_compute_is_not_drawn_and_the_page_says_why(report):
    out, info = report
    page = (out / "index.html").read_text()
    for name in ("psnr_vs_nfe", "quality_vs_compute"):  # one NFE (10), the same GMACs for every method
        assert f"figures/{name}.png" not in info["figures"] and name not in page
    assert "PSNR against sampler steps: not drawn, every method was evaluated at one step count (10)" in page
    assert "Quality against compute: not drawn, every method costs the same" in page
    assert page.count("<figcaption>") == page.count("<img ") == len(info["figures"]) // 2  # each with a caption


def test_page_leads_with_the_answer_then_reading_tables_and_details(report):
    out, _ = report
    page = (out / "index.html").read_text()
    positions = [page.index(marker) for marker in ('id="gain-figure"', 'id="reading"', 'id="tables"',
                                                   'id="figures"', 'id="details"')]
    assert positions == sorted(positions)
    assert page.index("figures/gain.png") < page.index("figures/pi_heatmap.png") < page.index('id="reading"')
    # the summary paragraph, from the numbers: best rdbm π=residual (64/3 dB) over rdbm π=one (60.5/3 dB)
    answer = page[page.index('class="summary"'):page.index('id="reading"')]
    best, second = mean_ci(PSNR[("rdbm", "residual")]), mean_ci(PSNR[("rdbm", "one")])
    assert f"<strong>Best: rdbm π=residual</strong>, {best[0]:.2f} ± {best[1]:.2f} dB" in answer
    assert f"a margin of {best[0] - second[0]:.2f} dB" in answer and "intervals overlap" in answer
    # paired residual − one: rdbm +1.17 (1, 0.5, 2), goub +0.37 (−0.2, 0.2, 1.1); neither interval excludes zero
    assert ("<strong>residual − one</strong>: positive for 2 of 2 methods; the paired interval excludes zero for "
            "none") in answer
    # the reading is rendered markdown, its raw HTML escaped
    reading = page[page.index('id="reading"'):page.index('id="tables"')]
    assert "<strong>Scale first.</strong>" in reading and "**" not in reading
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in reading


def test_tables_are_sortable_numbers_right_aligned_and_the_best_marked(report):
    out, _ = report
    page = (out / "index.html").read_text()
    table = page[page.index('<table class="sortable" id="summary">'):]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>"):], re.S)
    assert len(rows) == 4
    summary = pd.read_csv(out / "summary.csv")
    psnr_column = list(summary.columns).index("psnr") - sum(c.endswith("_ci") for c in summary.columns[:2])
    cells = [re.findall(r"<td([^>]*)>(.*?)</td>", r) for r in rows]
    best = [c[psnr_column] for c in cells if "best" in c[psnr_column][0]]
    assert len(best) == 1 and best[0][1].startswith(f"{summary['psnr'].max():.2f} ± ")
    assert all('class="num' in c[psnr_column][0] for c in cells)
    assert float(re.search(r'data-sort="([^"]+)"', cells[0][psnr_column][0]).group(1)) == pytest.approx(
        summary["psnr"].iloc[0])
    assert "th.addEventListener(\"click\"" in page


def test_psnr_against_nfe_uses_extra_evaluations(tmp_path):
    run = make_run(tmp_path / "runs", "rdbm", "residual", 0, 20.0, nfe=5)
    extra = run / "evals" / "nfe20-ddim"
    extra.mkdir(parents=True)
    s = json.loads((run / "summary.json").read_text()) | {"nfe": 20}
    s["overall"]["psnr"] = 22.0
    (extra / "summary.json").write_text(json.dumps(s))
    info = build_report([run], tmp_path / "rep")
    df = pd.read_csv(tmp_path / "rep" / "summary.csv")
    assert sorted(zip(df["evaluations"], df["psnr"])) == [(5, 20.0), (20, 22.0)]
    assert "figures/psnr_vs_nfe.png" in info["figures"]  # two NFE values: drawn


def test_psnr_against_steps_joins_only_runs_of_the_same_settings(tmp_path):
    """Two runs that differ in their patch size, one evaluated at 5 steps and one at 10, are two methods of one
    step count each, not one line: no figure."""
    root = tmp_path / "runs"
    make_run(root, "rdbm", "residual", 0, 20.0, nfe=5, name="patch32")
    make_run(root, "rdbm", "residual", 0, 22.0, nfe=10, name="patch7", patch=7)
    info = build_report([root], tmp_path / "rep")
    assert "figures/psnr_vs_nfe.png" not in info["figures"]
    assert set(pd.read_csv(tmp_path / "rep" / "summary.csv")["method"]) == {"rdbm 5 steps [patch 32]",
                                                                           "rdbm 10 steps [patch 7]"}
    assert "every method was evaluated at one step count" in (tmp_path / "rep" / "index.html").read_text()


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
    assert find_runs([grid]) == ({run.directory: {run.directory}}, [])
    assert find_runs([grid, run.directory]) == ({run.directory: None}, [])  # named directly: every evaluation
    build_report([grid], tmp_path / "rep")
    assert list(pd.read_csv(tmp_path / "rep" / "summary.csv")["evaluations"]) == [5]


# --------------------------------------------------------------------------------------------- a real browser
class Chromium:
    """Headless Chromium driven over the Chrome DevTools protocol (websocket-client): open a page, run script in
    it, click at a point with real mouse events, take a screenshot; console errors and failed loads are collected."""

    def __init__(self, exe: str, profile: Path, width: int = 1280, height: int = 800):
        import subprocess
        import time
        import urllib.request

        import websocket

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit code {self.proc.poll()})")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        self.ws = websocket.create_connection(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"],
                                              timeout=60)
        self.events, self.calls = [], 0
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _receive(self) -> dict:
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def send(self, method: str, **params) -> dict:
        self.calls += 1
        self.ws.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", url=url)
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            self._receive()

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(str(p["exceptionDetails"]))
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(str(p.get("args")))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def screenshot(self, path: Path) -> Path:
        import base64

        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def chromium(tmp_path):
    import shutil

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("headless Chromium is not installed (Debian package `chromium`; .ci/run installs it)")
    browser = Chromium(exe, tmp_path / "chromium-profile")
    yield browser
    browser.close()


def test_the_page_in_a_real_browser(report, chromium, tmp_path):
    """Opened in headless Chromium: no console error, every image loads, the first screen shows the gain figure
    and the summary, and clicking a header sorts the table. The first screen is kept as first-screen.png."""
    out, _ = report
    chromium.open((out / "index.html").resolve().as_uri())
    assert chromium.errors() == []
    images = chromium.js("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(images) >= 7 and images[0][0] == "figures/gain.png"
    assert [src for src, complete, width in images if not (complete and width > 0)] == []
    shot = chromium.screenshot(tmp_path / "first-screen.png")
    assert shot.stat().st_size > 10_000
    first_screen = chromium.js("""(() => {
        const box = e => { const r = document.querySelector(e).getBoundingClientRect(); return [r.top, r.bottom]; };
        return {height: innerHeight, gain: box('#gain-figure img'), summary: box('.summary')}; })()""")
    top, bottom = first_screen["gain"]
    assert 0 <= top < first_screen["height"] / 3 and bottom - top > 150
    assert bottom <= first_screen["height"]  # four methods: the whole figure is on the first screen
    assert first_screen["summary"][0] < first_screen["height"] / 2

    def order():
        return chromium.js("Array.from(document.querySelectorAll('#summary tbody tr')).map(r => r.cells[0].textContent)")

    def click_header(text):
        x, y = chromium.js(f"""(() => {{
            const th = Array.from(document.querySelectorAll('#summary th')).find(h => h.textContent === {json.dumps(text)});
            th.scrollIntoView({{block: 'center'}}); const r = th.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")
        chromium.click(x, y)

    summary = pd.read_csv(out / "summary.csv")
    assert order() == list(summary["method"])  # best PSNR first
    click_header("method")  # first click: descending
    assert order() == sorted(summary["method"], reverse=True)
    click_header("PSNR (dB)")
    click_header("PSNR (dB)")  # second click: ascending
    assert order() == list(summary.sort_values("psnr")["method"]) != list(summary["method"])
    assert chromium.errors() == []


# --------------------------------------------------------------------------------------------- grouping, left-out runs
def test_runs_with_different_training_settings_are_never_pooled(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "rdbm", "residual", 0, 20.0)
    make_run(root, "rdbm", "residual", 1, 22.0)
    make_run(root, "rdbm", "residual", 0, 21.0, name="copy-of-s0")  # the same settings and seed again
    make_run(root, "rdbm", "residual", 0, 10.0, name="small-patch", patch=7)
    make_run(root, "rdbm", "residual", 1, 15.0, name="own-data", data="/my/pairs")
    out = tmp_path / "rep"
    build_report([root], out)
    df = pd.read_csv(out / "summary.csv").set_index("method")
    assert set(df.index) == {"rdbm [data zoo5, patch 32]", "rdbm [data zoo5, patch 7]",
                             "rdbm [data /my/pairs, patch 32]"}
    main = df.loc["rdbm [data zoo5, patch 32]"]
    mean, half, _ = mean_ci([(20.0 + 21.0) / 2, 22.0])  # one value per seed: the two seed-0 runs averaged
    assert main["seeds"] == 2 and main["psnr"] == pytest.approx(mean) and main["psnr_ci"] == pytest.approx(half)
    assert df.loc["rdbm [data zoo5, patch 7]", "psnr"] == 10.0 and df.loc["rdbm [data zoo5, patch 7]", "seeds"] == 1
    notes = (out / "summary.md").read_text()
    assert "Note: runs with different training settings are separate rows" in notes
    assert "Note: several runs share a seed" in notes and "% Note: runs with different" in (out / "summary.tex").read_text()
    page = (out / "index.html").read_text()
    assert "Training settings that differ between runs" in page and "/my/pairs" in page
    settings = json.loads((out / "settings.json").read_text())
    assert sorted((s["data"], s["patch"]) for s in settings.values()) == [("/my/pairs", 32), ("zoo5", 7), ("zoo5", 32)]


def test_every_run_left_out_is_listed_with_its_reason(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "rdbm", "residual", 0, 20.0)
    make_run(root, "gone-bridge", "one", 0, 18.0)  # finished, plugin since uninstalled: kept, with a note
    (root / "failed").mkdir()  # what `bridgezoo bench` leaves for a run that failed before writing config.json
    (root / "failed" / "error.txt").write_text("Traceback ...\nOptionError: --tile (8) must exceed --tile-overlap\n")
    stopped = make_run(root, "rdbm", "residual", 1, 0.0, name="stopped")
    (stopped / "summary.json").unlink()
    gone = make_run(root, "gone-bridge", "one", 1, 0.0, name="gone-unfinished")
    (gone / "summary.json").unlink()
    out = tmp_path / "rep"
    info = build_report([root], out)
    reasons = {Path(r["run"]).name: (r["reason"], r["detail"]) for r in info["left_out"]}
    assert reasons == {"failed": ("failed", "OptionError: --tile (8) must exceed --tile-overlap"),
                       "stopped": ("unfinished", "no summary.json: training stopped at step 3 of 10"),
                       "gone-unfinished": ("missing plugin", "no installed plugin provides bridge 'gone-bridge'")}
    assert info["runs"] == 2
    assert pd.read_csv(out / "runs_left_out.csv")["reason"].value_counts().to_dict() == {
        "failed": 1, "unfinished": 1, "missing plugin": 1}
    for table in ("summary", "per_task_psnr", "unification"):
        text = (out / f"{table}.md").read_text()
        assert ("Note: left out: 3 run(s) or evaluation(s) without a finished result (" in text) == (
            table != "unification")
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert "gone-bridge π=one" in summary.index and math.isnan(summary.loc["gone-bridge π=one", "evaluations"])
    page = (out / "index.html").read_text()
    assert "3 run(s) or evaluation(s) left out" in page and "not installed here" in page
    for name, (reason, detail) in reasons.items():
        assert re.search(rf"<code>[^<]*{name}</code></td><td>{reason}</td><td class=\"wrap\">{re.escape(detail.replace(chr(39), '&#39;'))}",
                         page), name


def test_cli_report_of_a_grid_counts_and_names_the_runs_it_left_out(tmp_path):
    import subprocess
    import sys

    from bridgezoo.bench import load_grid

    grid = tmp_path / "g.toml"
    grid.write_text(f'name = "g"\nout = "{tmp_path / "runs"}"\n[shared]\nbackbone = "unet-test"\n'
                    '[axes]\nbridge = ["rdbm", "goub", "no-such-bridge"]\nnfe = [5]\n')
    done, failed, missing = load_grid(grid).runs
    make_run(tmp_path / "runs", "rdbm", "residual", 0, 20.0, nfe=5, name=done.name)
    failed.directory.mkdir(parents=True)
    (failed.directory / "error.txt").write_text("RuntimeError: out of memory\n")
    proc = subprocess.run([sys.executable, "-m", "bridgezoo.cli", "report", str(grid), "--out", str(tmp_path / "rep")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("report of 1 run(s), 2 left out (1 failed, 1 missing plugin; reasons in index.html")
    left = pd.read_csv(tmp_path / "rep" / "runs_left_out.csv")
    assert list(zip(left["run"], left["reason"])) == [(str(failed.directory), "failed"),
                                                      (str(missing.directory), "missing plugin")]
    assert "RuntimeError: out of memory" in (tmp_path / "rep" / "index.html").read_text()


def test_rebuild_renders_a_report_folder_again_without_its_runs(tmp_path):
    import shutil

    from bridgezoo.cli import main

    root = tmp_path / "runs"
    for seed, (a, b) in enumerate([(20.0, 18.0), (21.0, 18.5)]):
        make_run(root, "rdbm", "residual", seed, a)
        make_run(root, "goub", "residual", seed, b)
    out = tmp_path / "rep"
    build_report([root], out, command="bridgezoo report runs --out rep")
    before = {f: (out / f).read_text() for f in ("summary.csv", "per_task_psnr.csv", "per_task_ssim_y.md",
                                                 "figures/gain.svg", "figures/per_task_psnr.svg")}
    shutil.rmtree(root)
    (out / "index.html").unlink()
    assert main(["report", "--rebuild", "--out", str(out)]) == 0
    assert {f: (out / f).read_text() for f in before} == before
    page = (out / "index.html").read_text()
    assert "Page rendered again by" in page and "figures/qualitative.png" in page and "figures/gain.png" in page
    assert "figures/training_loss.png" in page

    # a folder written before the sampler's steps and its evaluations were named apart, as the committed reports/:
    # its "nfe" column
    for f in ("results_per_run.csv", "per_task_per_run.csv", "per_image_per_run.csv"):
        pd.read_csv(out / f).rename(columns={"steps": "nfe"}).to_csv(out / f, index=False)
    assert main(["report", "--rebuild", "--out", str(out)]) == 0
    assert {f: (out / f).read_text() for f in before} == before

    # a folder without one of its data files is refused, naming it (no report folder without them exists)
    (out / "settings.json").unlink()
    with pytest.raises(OptionError, match="settings.json missing"):
        render_report(out)


def test_report_options_are_checked(tmp_path, capsys):
    from bridgezoo.cli import main

    assert main(["report", "--out", str(tmp_path / "rep")]) == 2
    assert "give RUNS" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--rebuild", "--out", str(tmp_path / "rep")]) == 2
    assert "give no RUNS with it" in capsys.readouterr().err
    assert main(["report", "--rebuild", "--out", str(tmp_path)]) == 2
    assert "no results_per_run.csv" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()


# --------------------------------------------------------------------------------------------- intervals over images
def test_intervals_over_seeds_and_images_resolve_half_a_db_when_paired(tmp_path):
    """Runs with per-image results (eval.csv): 120 test images whose PSNR varies by σ 4 dB between images, three
    seeds; rdbm π=residual is rdbm π=one + 0.5 dB on every image. Each method's own interval (seeds × images
    bootstrap) is wider than 0.5 dB, the paired one of residual − one excludes 0; the gain's interval decides
    'beats input'; a method without eval.csv keeps the t interval over seeds, written 'mean ± h'."""
    from bridgezoo.report import bootstrap_ci

    rng = np.random.default_rng(0)
    names = [f"img-{i:03d}" for i in range(60)]
    images = pd.DataFrame([(t, n) for t in TASKS for n in names], columns=["task", "name"])
    base = rng.normal(25.0, 4.0, len(images))
    inputs = base - 0.3 + rng.normal(0.0, 1.0, len(images))
    offsets = {("rdbm", "residual"): 0.5, ("rdbm", "one"): 0.0, ("goub", "residual"): -1.0}
    psnr = {}
    root = tmp_path / "runs"
    for (bridge, pi), offset in offsets.items():
        for seed in range(3):
            values = base + offset + rng.normal(0.0, 0.05) + rng.normal(0.0, 0.1, len(images))
            psnr[(bridge, pi, seed)] = values
            run = make_run(root, bridge, pi, seed, float(values.mean()))
            table = images.assign(index=range(len(images)), height=40, width=48, psnr=values, ssim=0.5,
                                  psnr_y=values + 0.5, ssim_y=0.6, lpips=math.nan, input_psnr=inputs,
                                  input_ssim=0.3, input_psnr_y=inputs + 0.5, input_ssim_y=0.4, nfe=10, seconds=0.25)
            table.to_csv(run / "eval.csv", index=False)
            summary = json.loads((run / "summary.json").read_text())
            summary["images"] = len(table)
            summary["input"]["psnr"] = float(inputs.mean())
            summary["per_task"] = {t: {"psnr": float(g["psnr"].mean()), "ssim": 0.5, "ssim_y": 0.6, "images": len(g),
                                       "psnr_y": float(g["psnr_y"].mean())} for t, g in table.groupby("task")}
            summary["overall"]["psnr_y"] = float(table["psnr_y"].mean())
            (run / "summary.json").write_text(json.dumps(summary))
    for seed, v in enumerate((18.0, 18.4, 18.2)):  # an older run: no eval.csv
        make_run(root, "goub", "one", seed, v)
    out = tmp_path / "rep"
    build_report([root], out)

    # the per-image results are kept in the report folder, one row per evaluation and image
    kept = pd.read_csv(out / "per_image_per_run.csv")
    assert len(kept) == 9 * len(images)
    assert set(kept["method"]) == {"rdbm π=residual", "rdbm π=one", "goub π=residual"}

    def matrix(bridge, pi):  # seeds × images, columns sorted by (task, name) as the report orders them
        order = images.sort_values(["task", "name"]).index
        return np.stack([psnr[(bridge, pi, s)][order] for s in range(3)]), images.loc[order, "task"].to_numpy()

    summary = pd.read_csv(out / "summary.csv").set_index("method")
    best = summary.loc["rdbm π=residual"]
    residual, tasks = matrix("rdbm", "residual")
    one, _ = matrix("rdbm", "one")
    _, low, high = bootstrap_ci(residual, tasks)
    assert (best["psnr_lo"], best["psnr_hi"]) == pytest.approx((low, high)) and math.isnan(best["psnr_ci"])
    assert best["psnr"] == pytest.approx(residual.mean()) and best["interval"] == "bootstrap, 3 seeds × 120 images"
    assert best["psnr_hi"] - best["psnr_lo"] > 1.0  # alone, far wider than the 0.5 dB to the next method
    # the gain over the input, and whether its interval is above 0
    _, glow, ghigh = bootstrap_ci(residual - inputs[images.sort_values(["task", "name"]).index], tasks)
    assert (best["gain_psnr_lo"], best["gain_psnr_hi"]) == pytest.approx((glow, ghigh))
    assert summary["beats_input"].to_dict() == {"rdbm π=residual": "yes", "rdbm π=one": "yes",
                                                "goub π=residual": "no", "goub π=one": "yes"}  # 18.2 vs 15 dB
    assert summary.loc["goub π=residual", "gain_psnr_hi"] < 0
    # the paired difference to the best method: seeds and images paired, narrow, excluding 0
    second = summary.loc["rdbm π=one"]
    _, dlow, dhigh = bootstrap_ci(one - residual, tasks)
    assert (second["vs_best_psnr_lo"], second["vs_best_psnr_hi"]) == pytest.approx((dlow, dhigh))
    assert -0.7 < dlow < dhigh < -0.3 and second["psnr_hi"] > best["psnr_lo"]  # own intervals overlap
    # the older method: t over its seeds, as before
    old = summary.loc["goub π=one"]
    mean, half, _ = mean_ci([18.0, 18.4, 18.2])
    assert old["interval"] == "t, 3 seeds" and old["psnr_ci"] == pytest.approx(half)
    assert old["psnr_lo"] == pytest.approx(mean - half)
    md = (out / "summary.md").read_text()
    assert f"{best['psnr']:.2f} [{low:.2f}, {high:.2f}]" in md and f"{mean:.2f} ± {half:.2f}" in md
    assert "percentile interval of a two-level bootstrap over seeds and test images" in md

    # per task: the task's images only
    per_task = pd.read_csv(out / "per_task_psnr.csv").set_index("method")
    derain = tasks == "derain"
    _, tlow, thigh = bootstrap_ci(residual[:, derain], tasks[derain])
    assert (per_task.loc["rdbm π=residual", "derain_lo"], per_task.loc["rdbm π=residual", "derain_hi"]) == \
        pytest.approx((tlow, thigh))

    # the π ablation: paired by seed and image, the interval excludes 0; the heatmap's own intervals overlap
    diffs = pd.read_csv(out / "pi_differences.csv")
    row = diffs[(diffs["method"] == "rdbm") & (diffs["contrast"] == "residual − one")].iloc[0]
    _, plow, phigh = bootstrap_ci(residual - one, tasks)
    assert row["mean_db"] == pytest.approx((residual - one).mean()) and math.isnan(row["mean_db_ci"])
    assert (row["mean_db_lo"], row["mean_db_hi"]) == pytest.approx((plow, phigh))
    assert 0.3 < plow < phigh < 0.7 and row["images"] == 120 and row["pairs"] == 3
    heat = pd.read_csv(out / "pi_ablation.csv").set_index("method")
    assert heat.loc["rdbm", "residual_lo"] < heat.loc["rdbm", "one_hi"]

    page = (out / "index.html").read_text()
    answer = page[page.index('class="summary"'):page.index('id="tables"')]
    assert "paired 95% interval over seeds and test images" in answer and "the lead holds across seeds" in answer
    assert "3 of 4 methods beat the degraded input with their interval above it" in answer
    assert ("<strong>residual − one</strong>: positive for 2 of 2 methods; the paired interval excludes zero for "
            f"rdbm ({(residual - one).mean():+.2f} dB)") in answer
    assert "| rdbm     | residual − one | " in (out / "pi_differences.md").read_text()
    assert re.search(r"\| rdbm +\| residual − one \| [0-9.]+ \[[0-9.]+, [0-9.]+\] +\| 3 +\| 120 ",
                     (out / "pi_differences.md").read_text())


def test_the_page_has_no_horizontal_scrollbar_at_1280_and_1400_px(chromium, tmp_path):
    """Wide content (many columns, runs whose settings differ, a long reason a run was left out, a wide markdown
    table in READING.md, long paths) scrolls inside its own box: the page itself never scrolls sideways."""
    root = tmp_path / "runs"
    long_opts = {f"option_{k}": "x" * 30 for k in range(8)}
    for seed, (bridge, pi) in enumerate([("rdbm", "residual"), ("goub", "one"), ("fm", "zero"), ("ddbm-ve", "one")]):
        make_run(root, bridge, pi, seed, 18.0 + seed, bridge_opts=long_opts | {"k": seed},
                 data="/a/very/long/path/to/the/user/data/" + "deep/" * 30)
    (root / "failed").mkdir()
    (root / "failed" / "config.json").write_text(json.dumps({"bridge": "rdbm"}))
    (root / "failed" / "error.txt").write_text("RuntimeError: " + "a long reason why the run failed " * 40)
    out = tmp_path / "rep"
    out.mkdir()
    wide = "| " + " | ".join(f"column {k}" for k in range(40)) + " |\n" + "|---" * 40 + "|\n"
    (out / "READING.md").write_text("# Reading\n\n" + wide + "| " + " | ".join("1234567" for _ in range(40)) + " |\n"
                                    + "\nA path: /" + "averylongfoldername" * 12 + "\n")
    build_report([root], out, command="bridgezoo report RUNS --out rep")
    for width in (1280, 1400):
        chromium.send("Emulation.setDeviceMetricsOverride", width=width, height=800, deviceScaleFactor=1, mobile=False)
        chromium.open((out / "index.html").resolve().as_uri())
        page = chromium.js("({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,"
                           " inner: innerWidth, wide: document.querySelector('#summary').scrollWidth})")
        assert page["inner"] == width and page["wide"] > width  # the summary table is wider than the window ...
        assert page["scroll"] <= page["client"], (width, page)  # ... yet the page does not scroll sideways
    assert chromium.errors() == []


def test_the_report_names_steps_and_takes_the_evaluations_each_run_counted(tmp_path):
    """Newer summaries name the sampler's steps and count its network evaluations: the report labels methods by
    steps and takes the counted evaluations (here 9 at 4 DDIM steps, as a bridge whose wrapper called the network
    more than once per step would count) over the free-model count (4) it falls back on for older runs."""
    root = tmp_path / "runs"
    for steps, counted in ((4, 9), (8, 17)):
        run = make_run(root, "rdbm", "residual", 0, 20.0 + steps / 10, name=f"rdbm-{steps}")
        s = json.loads((run / "summary.json").read_text())
        del s["nfe"]
        (run / "summary.json").write_text(json.dumps(s | {"steps": steps, "evaluations": counted}))
    make_run(root, "goub", "one", 0, 19.0, nfe=4, name="older")  # an older summary: "nfe" held the steps
    info = build_report([root], tmp_path / "rep", command="bridgezoo report RUNS --out rep")
    results = pd.read_csv(tmp_path / "rep" / "results_per_run.csv").set_index("run")
    assert "nfe" not in results and sorted(results["steps"]) == [4, 4, 8]
    assert results.loc[str(root / "rdbm-4"), "evaluations"] == 9 and results.loc[str(root / "rdbm-8"), "evaluations"] == 17
    assert results.loc[str(root / "older"), "evaluations"] == 4  # counted with a free model
    assert {"rdbm π=residual 4 steps", "rdbm π=residual 8 steps", "goub π=one 4 steps"} == set(results["method"])
    assert "figures/psnr_vs_nfe.png" in info["figures"]
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "PSNR against sampler steps" in page and "NFE" not in page
