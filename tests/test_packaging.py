"""Packaging: the version is defined in one place and every reader agrees with it."""

import re
from pathlib import Path

import tomllib

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
