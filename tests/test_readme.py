"""The README's commands and examples stay true."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_api_example_runs_and_recovers_the_oracle(capsys):
    text = README.read_text()
    block = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["loss"].item() < 1e-6
    assert (namespace["x0_hat"] - namespace["x0"]).abs().max().item() < 1e-5


def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    start = lines.index("```bash")
    commands = lines[start + 1 : lines.index("```", start)]
    assert len(commands) == 2
    assert commands[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/bridgezoo run")
    assert commands[1].endswith(".venv/bin/python -m pytest -q")
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]"' in ci and "python -m pytest -q" in ci
