"""Packaging: the version is defined in one place and every reader agrees with it."""

import re
import tomllib
from pathlib import Path

import fxgx

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_version_is_defined_once_in_the_package():
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    assert "version" not in project["project"], "pyproject.toml must not repeat the version"
    assert "version" in project["project"]["dynamic"]
    source = REPOSITORY / project["tool"]["hatch"]["version"]["path"]
    definitions = re.findall(r'^__version__ = "([^"]+)"$', source.read_text(), re.MULTILINE)
    assert definitions == [fxgx.__version__]
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", fxgx.__version__)


def test_the_changelog_has_an_unreleased_section_and_the_current_version():
    changelog = (REPOSITORY / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert f"## [{fxgx.__version__}]" in changelog


def test_the_python_floor_is_the_one_lint_targets():
    """``tomllib`` (used by the catalogue) is new in Python 3.11: the floor must say so, and
    ruff must check the code against that same version."""
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    floor = re.fullmatch(r">=(\d+)\.(\d+)", project["project"]["requires-python"])
    assert floor, project["project"]["requires-python"]
    major, minor = int(floor.group(1)), int(floor.group(2))
    assert (major, minor) >= (3, 11)
    assert project["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
