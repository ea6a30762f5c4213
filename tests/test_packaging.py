"""What a user installs: one import name, a version, a licence."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support.processes import SLASHBOTS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # builds a wheel from a copy of the tree
def test_the_wheel_installs_one_top_level_name_slashbots(tmp_path: Path) -> None:
    # A clean copy, so a stale build/ or egg-info in the checkout cannot hide a leaked package.
    tree = shutil.copytree(REPO, tmp_path / "tree", ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "node_modules"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "-q", "-w", str(tmp_path / "dist"), str(tree)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = (tmp_path / "dist").glob("slashbots-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"slashbots"}
    assert {"slashbots/plugins/chatgpt/provider.py", "slashbots/plugins/echo.py", "slashbots/plugin_manager.py",
            "slashbots/sandbox/page/index.html", "slashbots/testing.py"} <= set(names)
    [licence] = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
    assert "Apache License" in zipfile.ZipFile(wheel).read(licence).decode()


def test_version_is_the_distributions() -> None:
    result = subprocess.run([SLASHBOTS, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"slashbots {version('slashbots')}"


def test_the_licence_file_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License\n                           Version 2.0" in (REPO / "LICENSE").read_text(encoding="utf-8")
