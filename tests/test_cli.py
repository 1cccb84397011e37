"""``fxgx compare`` and ``fxgx list`` end to end, with a tiny sample budget."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fxgx import catalogue
from fxgx.cli import main


# The JAX run (11 s) is in the slow set, which CI runs too.
@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=pytest.mark.slow)])
def test_compare_writes_parseable_json_with_one_row_per_applicable_estimator(
    backend, tmp_path, capsys
):
    output = tmp_path / "compare.json"
    status = main(
        [
            "compare",
            "--backend",
            backend,
            "--samples",
            "4096",
            "--chunk-size",
            "1024",
            "--json",
            str(output),
        ]
    )
    assert status == 0
    result = json.loads(output.read_text())
    names = [row["estimator"] for row in result["rows"]]
    applicable = [
        card.name for card in catalogue.load_cards() if card.name not in result["skipped"]
    ]
    assert sorted(names) == sorted(applicable)
    assert "reinforce" in names
    for row in result["rows"]:
        assert row["count"] >= 4096
        assert row["variance"] >= 0.0
        assert row["seconds_per_million"] > 0.0
        assert len(row["mean"]) == len(result["exact_gradient"])
    reinforce_row = next(row for row in result["rows"] if row["estimator"] == "reinforce")
    assert reinforce_row["variance_relative_to_reinforce"] == pytest.approx(1.0)
    table = capsys.readouterr().out
    assert "reinforce" in table and "verdict" in table


def test_compare_on_a_chosen_problem_and_estimators_writes_a_plot(tmp_path):
    plot = tmp_path / "figure.png"
    status = main(
        [
            "compare",
            "--problem",
            "bernoulli_toy",
            "--estimators",
            "reinforce",
            "--samples",
            "2048",
            "--plot",
            str(plot),
        ]
    )
    assert status == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["compare", "--estimators", "no_such_estimator"], "unknown estimator"),
        (["compare", "--problem", "no_such_problem"], "not built in"),
        (["compare", "--backend", "pytorch"], "not known"),
        (["compare", "--samples", "1"], "too small"),
    ],
)
def test_compare_errors_are_one_line_and_exit_two(arguments, message, capsys):
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("fxgx: error:") and message in error[0]


def test_list_prints_every_card(capsys):
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    for card in catalogue.load_cards():
        assert card.name in printed


def test_console_script_entry_point_runs():
    completed = subprocess.run(
        [sys.executable, "-m", "fxgx.cli", "list"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert "reinforce" in completed.stdout
