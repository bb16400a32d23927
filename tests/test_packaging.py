"""What the wheel installs: the library with its data (shipped models, C++ kernel source, the hand-written
stories), the application's top-level modules, nothing else; and the stories found from any folder."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from babi_dnc.chat import find_story_file

ROOT = Path(__file__).resolve().parents[1]
STORY = "02-two-supporting-facts.txt"
SOURCES = ["pyproject.toml", "README.md", "app.py", "babi_dnc", "cli", "copytasks", "eval", "stories"]


def test_a_story_of_stories_is_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = find_story_file(f"stories/{STORY}")
    assert found.is_file() and found.read_text() == (ROOT / "stories" / STORY).read_text()
    assert find_story_file(STORY) == found
    (tmp_path / "stories").mkdir()
    (tmp_path / "stories" / STORY).write_text("1 Mary went to the hallway.\n")
    assert find_story_file(f"stories/{STORY}") == Path(f"stories/{STORY}")  # a file that exists comes first
    assert find_story_file("stories/nothing.txt") == Path("stories/nothing.txt")  # its error names it


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="no setuptools to build a wheel offline")
def test_the_wheel_holds_the_package_its_data_and_the_stories(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():  # babi_dnc/stories stays a link to ../stories, as in the repository
            shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."]
    subprocess.run(build, cwd=source, check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("babi_dnc-*.whl"))).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"app.py", "babi_dnc", "cli", "copytasks", "eval"}  # the README says why these names
    stories = sorted(Path(n).name for n in names if n.startswith("babi_dnc/stories/"))
    assert stories == sorted(p.name for p in (ROOT / "stories").glob("*.txt")) and len(stories) == 20
    for model in ("dnc", "lstm"):
        assert f"babi_dnc/pretrained/{model}/checkpoints/best/model.safetensors" in names
    assert "babi_dnc/csrc/link_cpu.cpp" in names and any(n.startswith("eval/reference/") for n in names)
