"""The README's code runs as pasted: every ```python block is executed, each in a fresh namespace."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), flags=re.S | re.M)


def test_the_readme_has_python_examples():
    assert python_blocks(), "no ```python block found in README.md"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_a_readme_python_block_runs_as_pasted(index):
    code = python_blocks()[index]
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
