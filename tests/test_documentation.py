"""Every ```python block in README.md and docs/**/*.md runs as written.

One test per markdown file. Its blocks run in order in one shared namespace, so a block may
use names that an earlier block of the same file defined. A block with doctest prompts
(``>>> ``) is checked by :mod:`doctest`, output included; any other block is executed and
passes when it raises nothing. A failure names the file and the line where the block starts.

The blocks seed every random draw and read no data from disk or network, so the test is
deterministic.
"""

import doctest
import re
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
MARKDOWN_FILES = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").rglob("*.md"))]
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """The ```python blocks of a markdown text, as (line of the fence, source) pairs."""
    return [
        (markdown.count("\n", 0, match.start()) + 1, match.group(1))
        for match in PYTHON_BLOCK.finditer(markdown)
    ]


def run_blocks(markdown: str, path: str) -> None:
    """Run the python blocks of ``markdown`` in order in one namespace; raise on failure."""
    namespace = {"__name__": f"documentation:{path}"}
    for line, source in python_blocks(markdown):
        location = f"{path}:{line}"
        if ">>> " in source:
            run_doctest(source, path, line, namespace)
            continue
        try:
            exec(compile(source, location, "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"the python block at {location} failed: {error!r}") from error


def run_doctest(source: str, path: str, line: int, namespace: dict) -> None:
    """Check a block of doctest examples against their expected output."""
    location = f"{path}:{line}"
    # ``line`` is the fence's 1-based line, i.e. the 0-based line of the block's first line.
    test = doctest.DocTestParser().get_doctest(source, namespace, location, path, line)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    result = runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # DocTest copies the globals; share its names onwards
    if result.failed:
        raise AssertionError(f"the doctest block at {location} failed:\n{''.join(report)}")


def relative_path(path: Path) -> str:
    return path.relative_to(REPOSITORY).as_posix()


#: Pages whose blocks compile several estimators or fits on both frameworks (3 to 7 s each):
#: in the slow set, which CI runs too; what they show is tested in the default set.
SLOW_PAGES = ("docs/estimators/straight_through.md", "docs/estimators/rebar_relax.md",
              "docs/estimators/stein_control_variates.md", "docs/estimators/gumbel_rao.md",
              "docs/vi.md", "docs/distributions.md")


@pytest.mark.parametrize(
    "path",
    [pytest.param(path, marks=[pytest.mark.slow] if relative_path(path) in SLOW_PAGES else [])
     for path in MARKDOWN_FILES if python_blocks(path.read_text(encoding="utf-8"))],
    ids=relative_path,
)
def test_python_blocks_run(path):
    run_blocks(path.read_text(encoding="utf-8"), relative_path(path))


def test_failing_blocks_fail_with_their_location():
    passing = "```python\nvalue = 1\n```\n"
    raising = "text\n\n```python\nassert value == 2\n```\n"
    wrong_output = "```python\n>>> value + 1\n3\n\n```\n"
    with pytest.raises(AssertionError, match=r"fake\.md:6"):
        run_blocks(passing + raising, "fake.md")
    with pytest.raises(AssertionError, match=r"(?s)fake\.md:4.*line 5.*Expected:\s+3\s+Got:\s+2"):
        run_blocks(passing + wrong_output, "fake.md")
    run_blocks(passing + "```python\n>>> value + 1\n2\n\n```\n", "fake.md")
