"""The result tables in README.md and docs/ are what ``scripts/render_tables.py`` renders from
the committed JSON in ``docs/results/``: a number typed by hand, or a table left behind when
the JSON changed, fails here. Fix: ``python scripts/render_tables.py``."""

import importlib.util
import json
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def load_renderer():
    spec = importlib.util.spec_from_file_location(
        "render_tables", REPOSITORY / "scripts" / "render_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


renderer = load_renderer()
FILES_WITH_TABLES = [
    path for path in renderer.markdown_files()
    if renderer.MARKER.search(path.read_text(encoding="utf-8"))
]


def test_the_documented_tables_exist():
    names = {
        match.group("name")
        for path in FILES_WITH_TABLES
        for match in renderer.MARKER.finditer(path.read_text(encoding="utf-8"))
    }
    assert {"sbn", "sbn-full", "sbn-seeds", "bernoulli-toy", "gaussian-mixture",
            "variable-selection", "categorical_vae", "categorical_vae_full"} <= names


@pytest.mark.parametrize("path", FILES_WITH_TABLES,
                         ids=lambda path: path.relative_to(REPOSITORY).as_posix())
def test_tables_equal_what_the_json_renders(path):
    text = path.read_text(encoding="utf-8")
    assert text == renderer.render(text, str(path)), (
        f"{path.relative_to(REPOSITORY)} has a table that differs from docs/results/*.json; "
        "run python scripts/render_tables.py")


def test_an_edited_number_is_caught():
    text = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    match = renderer.MARKER.search(text)
    body = match.group("body")
    row = next(line for line in body.splitlines() if "ELBO" in line and "---" not in line)
    cells = row.split("|")
    cells[3] = " −1.00 " if cells[3].strip() != "−1.00" else " −2.00 "
    edited = text.replace(row, "|".join(cells), 1)
    assert edited != text
    assert renderer.render(edited) == text


def test_the_summary_is_made_from_the_example_output():
    run = {
        "arguments": {"seed": 0, "output_dir": "out"},
        "results": [{
            "name": "disarm", "num_samples": 2, "evaluations_per_step": 4, "objective": "ELBO",
            "final_train_elbo": -18.5, "test_elbo": -19.5,
            "test_importance_weighted_bound": -18.9, "seconds": 10.0,
            "log10_gradient_variance": [0.1, 0.9, 0.5],
            "log10_final_encoder_gradient_variance": 0.2,
        }],
    }
    summary = renderer.summarise_sigmoid_belief_network(run)
    assert summary["results"][0]["median_log10_gradient_variance"] == pytest.approx(0.5)
    toy = renderer.summarise_bernoulli_toy({"arguments": {}, "results": [{
        "name": "arm", "unbiased": True, "evaluations_per_step": 2,
        "probabilities": [0.5, 0.25], "variances": [1e-2, 1e-4, 1e-3], "seconds": 1.0}]})
    row = toy["results"][0]
    assert (row["final_probability"], row["final_log10_variance"],
            row["median_log10_variance"]) == pytest.approx((0.25, -3.0, -3.0))
    json.dumps(summary)  # what the import command writes
