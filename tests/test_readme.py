"""The README's commands and examples stay true."""

import re

import torch

from helpers import README, make_dist, readme_plugin


def test_readme_api_example_runs_and_recovers_the_oracle(capsys):
    text = README.read_text()
    block = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["loss"].item() < 1e-6
    assert (namespace["x0_hat"] - namespace["x0"]).abs().max().item() < 1e-5


def test_readme_starts_with_the_two_commands():
    from bridgezoo.run import FIRST_COMMAND

    lines = README.read_text().splitlines()
    start = lines.index("```bash")
    commands = lines[start + 1 : lines.index("```", start)]
    assert len(commands) == 2
    assert commands[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/bridgezoo run")
    assert commands[0].endswith(".venv/bin/" + FIRST_COMMAND)  # what a run worse than its inputs points to
    assert commands[1].endswith(".venv/bin/python -m pytest -q -n 2")
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]"' in ci and "python -m pytest -q -n 2" in ci


def test_readme_lists_every_registered_bridge_in_the_api_example():
    import ast

    import bridgezoo as bz

    line = next(l for l in README.read_text().splitlines() if l.startswith("print(bz.list_bridges())"))
    assert ast.literal_eval(line.split("#", 1)[1].strip()) == bz.list_bridges()


def test_every_file_the_readme_points_to_exists():
    text = README.read_text()
    root = README.parent
    linked = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)  # markdown links to local files
    named = re.findall(r"`([\w./-]+\.(?:md|py|toml))`", text)  # file names in code spans
    local = [p for p in linked + named if "://" not in p and not p.startswith("file:")]
    assert {"docs/bridges.md", "docs/design.md"} <= set(local)
    # files a user writes (the plugin example, a report's READING.md) and the released RDBM code's file
    not_ours = {"bridgezoo_sine.py", "test_sine.py", "READING.md", "rdbm.py"}
    missing = [p for p in local if p not in not_ours and not (root / p).exists()]
    assert not missing, missing
    for doc in ("docs/bridges.md", "docs/design.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (root / doc).read_text()):
            if "://" not in target:
                assert (root / doc).parent.joinpath(target).exists(), (doc, target)


def test_docs_bridges_covers_every_builtin_bridge_and_its_official_code():
    import bridgezoo as bz

    text = (README.parent / "docs" / "bridges.md").read_text()
    for name in bz.list_bridges():
        assert re.search(rf"^## .*\b{re.escape(name)}\b", text, re.M), f"docs/bridges.md has no section for {name}"
    for repo in ("MiliLab/RDBM", "Hammour-steak/GOUB", "Algolzw/image-restoration-sde", "nachifur/RDDM",
                 "alexzhou907/DDBM", "xuekt98/BBDM", "atong01/conditional-flow-matching"):
        assert repo in text, repo


def test_readme_plugin_section_documents_every_class_attribute_of_a_bridge():
    import bridgezoo as bz

    section = README.read_text().split("### What a bridge class may set", 1)[1].split("\n## ", 1)[0]
    public = [k for k, v in vars(bz.Bridge).items()
              if not k.startswith("_") and not callable(v) and not isinstance(v, (property, staticmethod, classmethod))]
    assert "pinned" in public and "option_spec" in public
    undocumented = [k for k in public if f"| `{k}` |" not in section]
    assert not undocumented, f"README's plugin section does not document {undocumented}"
    for option in bz.Bridge.option_spec:  # the options every bridge inherits
        assert f"`{option}`" in section, option


def test_readme_contract_check_runs_on_the_readme_plugin(tmp_path, monkeypatch):
    """The plugin section's one-line contract check passes on the plugin example it sits under."""
    source, ep_name, module, dist = readme_plugin()
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, dist, module, source, ep_name)))
    section = README.read_text().split("### Checking a plugin against the contract", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)[:2]
    assert "check_bridge(\"sine\")" in blocks[0] and "contract_tests(\"sine\")" in blocks[1]
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # raises if the example plugin breaks the contract
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    from bridgezoo.testing import CHECKS

    assert {f"test_{c}" for c in CHECKS} <= set(vars(namespace["TestSine"]))
