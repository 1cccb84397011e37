"""Render the result tables of README.md and docs/ from the committed JSON results.

A table lives between two marker comments in a markdown file::

    <!-- table:NAME start -->
    | ... the rendered table ... |
    <!-- table:NAME end -->

and is rewritten from ``docs/results/*.json`` by the renderer ``TABLES[NAME]``. The JSON files
are summaries of an example's own JSON output (``--output-dir``), made by the ``import``
command, so a table is never typed by hand:

    python examples/sigmoid_belief_network.py            # writes out/sigmoid_belief_network/
    python scripts/render_tables.py import out/sigmoid_belief_network/sigmoid_belief_network.json
    python scripts/render_tables.py import out/.../variable_selection.json --as NAME  # another run
    python scripts/render_tables.py                      # rewrites every table
    python scripts/render_tables.py --check              # exit 1 if a table differs (CI test)

``tests/test_documentation_tables.py`` runs the check.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "docs" / "results"
BENCHMARK_RESULTS = REPOSITORY / "benchmarks" / "results"
MARKER = re.compile(
    r"^(?P<indent>[ \t]*)<!-- table:(?P<name>[a-z0-9_-]+) start -->\n"
    r"(?P<body>.*?)"
    r"^(?P=indent)<!-- table:(?P=name) end -->$",
    re.DOTALL | re.MULTILINE,
)


def markdown_files() -> list[Path]:
    return [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").rglob("*.md"))]


# ------------------------------------------------------------------ summaries of example runs


def summarise_sigmoid_belief_network(run: dict) -> dict:
    """The scalars the tables show, from ``examples/sigmoid_belief_network.py``'s JSON."""
    rows = []
    for record in run["results"]:
        traced = record["log10_gradient_variance"]
        rows.append({
            "name": record["name"],
            "num_samples": record["num_samples"],
            "evaluations_per_step": record["evaluations_per_step"],
            "objective": record["objective"],
            "final_train_elbo": record["final_train_elbo"],
            "test_elbo": record["test_elbo"],
            "test_importance_weighted_bound": record["test_importance_weighted_bound"],
            "median_log10_gradient_variance": float(np.median(traced)) if traced else None,
            "log10_final_encoder_gradient_variance":
                record["log10_final_encoder_gradient_variance"],
            "seconds": record["seconds"],
        })
    return {"example": "sigmoid_belief_network", "arguments": run["arguments"], "results": rows}


def summarise_categorical_vae(run: dict) -> dict:
    """The scalars the tables show, from ``examples/categorical_vae.py``'s JSON: those of the
    SBN, plus whether each estimator is unbiased, the skipped cards and the wall time."""
    summary = summarise_sigmoid_belief_network(run)
    for row, record in zip(summary["results"], run["results"], strict=True):
        row["unbiased"] = record["unbiased"]
    summary.update(example="categorical_vae", skipped=run["skipped"],
                   wall_seconds=run["wall_seconds"])
    return summary


def summarise_bernoulli_toy(run: dict) -> dict:
    """The scalars the tables show, from ``examples/bernoulli_toy.py``'s JSON."""
    rows = []
    for record in run["results"]:
        log_variances = np.log10(np.maximum(np.asarray(record["variances"], float), 1e-30))
        rows.append({
            "name": record["name"],
            "unbiased": record["unbiased"],
            "evaluations_per_step": record["evaluations_per_step"],
            "final_probability": record["probabilities"][-1],
            "final_log10_variance": float(log_variances[-1]),
            "median_log10_variance": float(np.median(log_variances)),
            "seconds": record["seconds"],
        })
    return {"example": "bernoulli_toy", "arguments": run["arguments"], "results": rows}


def summarise_gaussian_mixture(run: dict) -> dict:
    """The scalars the tables show, from ``examples/gaussian_mixture.py``'s JSON."""
    best = np.asarray(run["best_mean_field_probabilities"], float)
    posterior = np.asarray(run["posterior"], float)
    rows = [{key: record[key] for key in (
        "name", "num_samples", "final_estimate", "exact_elbo", "max_probability_error",
        "max_difference_from_cavi", "seconds")} for record in run["results"]]
    return {"example": "gaussian_mixture", "arguments": run["arguments"],
            "log_evidence": run["log_evidence"],
            "best_mean_field_elbo": run["best_mean_field_elbo"],
            "best_mean_field_probability_error": float(np.max(np.abs(best - posterior))),
            "results": rows}


def support_summary(probabilities, support) -> dict:
    """The median-probability model (PIP > 0.5) and its true and false positives."""
    selected = set(np.flatnonzero(np.asarray(probabilities) > 0.5).tolist())
    truth = set(support)
    return {"selected": sorted(selected), "true_positives": len(selected & truth),
            "false_positives": len(selected - truth)}


def summarise_variable_selection(run: dict) -> dict:
    """The scalars the tables show, from ``examples/variable_selection.py``'s JSON."""
    inclusion = np.asarray(run["inclusion_probabilities"], float)
    best = np.asarray(run["best_mean_field_probabilities"], float)
    rows = [{key: record[key] for key in (
        "name", "num_samples", "exact_elbo", "max_pip_error", "max_difference_from_cavi",
        "selected", "true_positives", "false_positives", "seconds")}
        for record in run["results"]]
    return {"example": "variable_selection", "arguments": run["arguments"],
            "support": run["support"], "log_evidence": run["log_evidence"],
            "inclusion_probabilities": run["inclusion_probabilities"],
            "exact_selection": support_summary(inclusion, run["support"]),
            "best_mean_field_elbo": run["best_mean_field_elbo"],
            "best_mean_field_pip_error": float(np.max(np.abs(best - inclusion))),
            "best_mean_field_selection": support_summary(best, run["support"]),
            "results": rows}


SUMMARIES = {
    "sigmoid_belief_network": summarise_sigmoid_belief_network,
    "bernoulli_toy": summarise_bernoulli_toy,
    "categorical_vae": summarise_categorical_vae,
    "gaussian_mixture": summarise_gaussian_mixture,
    "variable_selection": summarise_variable_selection,
}


def source_commit() -> str | None:
    """The repository's HEAD commit (the code the example ran), when git can tell."""
    import subprocess  # noqa: PLC0415 - only the import command needs it

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPOSITORY, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def load(example: str) -> dict:
    with open(RESULTS / f"{example}.json", encoding="utf-8") as handle:
        return json.load(handle)


# ------------------------------------------------------------------------------- tables


def number(value, digits: int = 2, minus: str = "-") -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return text.replace("-", minus, 1) if text.startswith("-") else text


def sbn_summary_table() -> list[str]:
    """README: objective and bounds of every estimator, at the same budget."""
    run = load("sigmoid_belief_network")
    importance = "K=100"
    lines = [f"| estimator | objective | train ELBO | test ELBO | test log p(x) ≥ ({importance}) |",
             "| --- | --- | --- | --- | --- |"]
    for row in run["results"]:
        # Two evaluations of f per sample: an antithetic pair.
        pairs = row["evaluations_per_step"] == 2 * row["num_samples"]
        unit = "pairs" if pairs else "samples"
        count = row["num_samples"]
        if count == 1:
            unit = unit[:-1]
        lines.append(
            f"| {row['name']} ({count} {unit}) | {row['objective']} | "
            f"{number(row['final_train_elbo'], minus='−')} | "
            f"{number(row['test_elbo'], minus='−')} | "
            f"{number(row['test_importance_weighted_bound'], minus='−')} |")
    return lines


def sbn_full_table() -> list[str]:
    """The tutorial: bounds, gradient variances and training time."""
    run = load("sigmoid_belief_network")
    lines = ["| estimator | samples | f/step | objective | train ELBO | test ELBO | "
             "test log p(x) >= (K=100) | log10 Var (all, median) | "
             "log10 Var (encoder, final) | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in run["results"]:
        lines.append(
            f"| {row['name']} | {row['num_samples']} | {row['evaluations_per_step']} | "
            f"{row['objective']} | {number(row['final_train_elbo'])} | "
            f"{number(row['test_elbo'])} | {number(row['test_importance_weighted_bound'])} | "
            f"{number(row['median_log10_gradient_variance'])} | "
            f"{number(row['log10_final_encoder_gradient_variance'])} | "
            f"{row['seconds']:.0f} |")
    return lines


def sbn_configuration() -> list[str]:
    """One line: the configuration the SBN results were produced with."""
    arguments = load("sigmoid_belief_network")["arguments"]
    return [f"Configuration: `--backend {arguments['backend']} --latents {arguments['latents']} "
            f"--steps {arguments['steps']} --batch-size {arguments['batch_size']} "
            f"--learning-rate {arguments['learning_rate']:g} --evaluations "
            f"{arguments['evaluations']} --estimators {arguments['estimators']} --seed "
            f"{arguments['seed']}`" + (" (`--quick`)." if arguments.get("quick") else ".")]


def categorical_vae_table() -> list[str]:
    """README: the categorical VAE's bounds and final encoder-gradient variance at the same
    budget, best test ELBO first."""
    run = load("categorical_vae")
    rows = sorted(run["results"], key=lambda row: -row["test_elbo"])
    lines = ["| estimator | unbiased | samples × f | objective | train ELBO | test ELBO | "
             "test log p(x) ≥ (K=100) | log10 Var (encoder, final) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        per_sample = row["evaluations_per_step"] // row["num_samples"]
        lines.append(
            f"| {row['name']} | {'yes' if row['unbiased'] else 'no'} | "
            f"{row['num_samples']} × {per_sample} | {row['objective']} | "
            f"{number(row['final_train_elbo'], minus='−')} | "
            f"{number(row['test_elbo'], minus='−')} | "
            f"{number(row['test_importance_weighted_bound'], minus='−')} | "
            f"{number(row['log10_final_encoder_gradient_variance'], minus='−')} |")
    return lines


def categorical_vae_full_table() -> list[str]:
    """The tutorial: bounds, gradient variances and training time, in catalogue order."""
    run = load("categorical_vae")
    lines = ["| estimator | unbiased | samples | f/step | objective | train ELBO | test ELBO | "
             "test log p(x) >= (K=100) | log10 Var (all, median) | "
             "log10 Var (encoder, final) | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in run["results"]:
        lines.append(
            f"| {row['name']} | {'yes' if row['unbiased'] else 'no'} | {row['num_samples']} | "
            f"{row['evaluations_per_step']} | {row['objective']} | "
            f"{number(row['final_train_elbo'])} | {number(row['test_elbo'])} | "
            f"{number(row['test_importance_weighted_bound'])} | "
            f"{number(row['median_log10_gradient_variance'])} | "
            f"{number(row['log10_final_encoder_gradient_variance'])} | "
            f"{row['seconds']:.0f} |")
    return lines


def categorical_vae_configuration() -> list[str]:
    """The configuration, the wall time and the skipped cards of the categorical VAE run."""
    run = load("categorical_vae")
    arguments = run["arguments"]
    lines = [f"Configuration: `--backend {arguments['backend']} --variables "
             f"{arguments['variables']} --categories {arguments['categories']} --steps "
             f"{arguments['steps']} --batch-size {arguments['batch_size']} --learning-rate "
             f"{arguments['learning_rate']:g} --evaluations {arguments['evaluations']} "
             f"--estimators {arguments['estimators']} --seed {arguments['seed']}`"
             + (" (`--quick`)" if arguments.get("quick") else "")
             + f"; wall time {run['wall_seconds']:.0f} s for {len(run['results'])} estimators."]
    if run["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"`{name}`: {reason}"
                                              for name, reason in run["skipped"].items()) + "."]
    return lines


def bernoulli_toy_table() -> list[str]:
    """The tutorial: unbiased estimators first, each group by final p."""
    run = load("bernoulli_toy")
    rows = sorted(run["results"], key=lambda row: (not row["unbiased"],
                                                   row["final_probability"]))
    lines = ["| estimator | unbiased | f/step | final p | log10 Var (final) | "
             "log10 Var (median over run) | seconds |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['name']} | {'yes' if row['unbiased'] else 'no'} | "
            f"{row['evaluations_per_step']} | {row['final_probability']:.4f} | "
            f"{number(row['final_log10_variance'])} | {number(row['median_log10_variance'])} | "
            f"{row['seconds']:.1f} |")
    return lines


def bernoulli_toy_configuration() -> list[str]:
    arguments = load("bernoulli_toy")["arguments"]
    return [f"Configuration: `--backend {arguments['backend']} --steps {arguments['steps']} "
            f"--learning-rate {arguments['learning_rate']:g} --target {arguments['target']:g} "
            f"--variance-every {arguments['variance_every']} --variance-draws "
            f"{arguments['variance_draws']} --seed {arguments['seed']}`"
            + (" (`--quick`)." if arguments.get("quick") else ".")]


def sbn_seeds_table() -> list[str]:
    """The tutorial: the same run with other seeds, for the estimators imported as
    ``sigmoid_belief_network_seed*``."""
    runs = [load("sigmoid_belief_network")]
    runs += [load(path.stem) for path in sorted(RESULTS.glob("sigmoid_belief_network_seed*.json"))]
    names = [row["name"] for row in runs[-1]["results"]]
    seeds = [run["arguments"]["seed"] for run in runs]
    lines = ["| estimator | " + " | ".join(f"train ELBO, seed {seed}" for seed in seeds) + " | "
             + " | ".join(f"log10 Var (encoder), seed {seed}" for seed in seeds) + " |",
             "|---|" + "---|" * (2 * len(seeds))]
    for name in names:
        rows = [next(row for row in run["results"] if row["name"] == name) for run in runs]
        lines.append(f"| {name} | "
                     + " | ".join(number(row["final_train_elbo"]) for row in rows) + " | "
                     + " | ".join(number(row["log10_final_encoder_gradient_variance"])
                                  for row in rows) + " |")
    return lines


def gaussian_mixture_table(name: str) -> list[str]:
    """The tutorial: each estimator's fitted ``q`` against the exact and CAVI answers."""
    run = load(name)
    evidence = run["log_evidence"]
    lines = ["| estimator | samples | ELBO estimate (last 10%) | exact ELBO of q | "
             "log p(x) - ELBO | max abs(q - p) | max abs(q - CAVI q) |",
             "|---|---|---|---|---|---|---|"]
    for row in run["results"]:
        lines.append(
            f"| {row['name']} | {row['num_samples']} | {row['final_estimate']:.3f} | "
            f"{row['exact_elbo']:.4f} | {evidence - row['exact_elbo']:.4f} | "
            f"{row['max_probability_error']:.3f} | {row['max_difference_from_cavi']:.3f} |")
    best = run["best_mean_field_elbo"]
    lines.append(f"| exact (enumeration) | | | log p(x) = {evidence:.4f} | | | |")
    lines.append(f"| best mean-field (CAVI) | | | {best:.4f} | {evidence - best:.4f} | "
                 f"{run['best_mean_field_probability_error']:.3f} | 0 |")
    return lines


def variable_selection_table() -> list[str]:
    """The tutorial: each estimator's ``q`` against the exact posterior and CAVI."""
    run = load("variable_selection")
    evidence = run["log_evidence"]
    lines = ["| estimator | samples | exact ELBO of q | log p(y) - ELBO | "
             "max abs(q - exact PIP) | max abs(q - CAVI q) | selected (q > 0.5) | "
             "true / false positives |",
             "|---|---|---|---|---|---|---|---|"]
    for row in run["results"]:
        lines.append(
            f"| {row['name']} | {row['num_samples']} | {row['exact_elbo']:.3f} | "
            f"{evidence - row['exact_elbo']:.3f} | {row['max_pip_error']:.3f} | "
            f"{row['max_difference_from_cavi']:.3f} | {row['selected']} | "
            f"{row['true_positives']} / {row['false_positives']} |")
    exact, cavi = run["exact_selection"], run["best_mean_field_selection"]
    best = run["best_mean_field_elbo"]
    lines.append(f"| exact posterior | | log p(y) = {evidence:.3f} | | | | {exact['selected']} | "
                 f"{exact['true_positives']} / {exact['false_positives']} |")
    lines.append(f"| best mean-field (CAVI) | | {best:.3f} | {evidence - best:.3f} | "
                 f"{run['best_mean_field_pip_error']:.3f} | 0 | {cavi['selected']} | "
                 f"{cavi['true_positives']} / {cavi['false_positives']} |")
    return lines


def variable_selection_budget_table() -> list[str]:
    """The tutorial: the gap to the best mean-field ELBO at the default budget and at the
    larger one imported as ``variable_selection_larger_budget``."""
    default, larger = load("variable_selection"), load("variable_selection_larger_budget")
    arguments = larger["arguments"]
    lines = ["| estimator | CAVI ELBO - ELBO of q, default | CAVI ELBO - ELBO of q, "
             f"`--evaluations {arguments['evaluations']} --learning-rate "
             f"{arguments['learning_rate']:g}` |",
             "|---|---|---|"]
    for row in larger["results"]:
        before = next(other for other in default["results"] if other["name"] == row["name"])
        lines.append(f"| {row['name']} | "
                     f"{default['best_mean_field_elbo'] - before['exact_elbo']:.3f} | "
                     f"{larger['best_mean_field_elbo'] - row['exact_elbo']:.3f} |")
    return lines


def variable_selection_pips() -> list[str]:
    pips = " ".join(f"{value:.3f}" for value in load("variable_selection")
                    ["inclusion_probabilities"])
    return [f"Exact PIPs: `{pips}`."]


def fit_overhead_table() -> list[str]:
    """docs/vi.md: fit's per-step time against a hand-written compiled loop (benchmark JSON)."""
    with open(BENCHMARK_RESULTS / "fit_overhead.json", encoding="utf-8") as handle:
        run = json.load(handle)
    lines = ["| backend | latents | samples | fit (µs/step) | hand-written (µs/step) | "
             "ratio | one-time: fit / hand-written (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in run["rows"]:
        lines.append(
            f"| {row['backend']} | {row['dimension']} | {row['num_samples']} | "
            f"{row['fit_microseconds_per_step']:.1f} | "
            f"{row['hand_written_microseconds_per_step']:.1f} | "
            f"{row['ratio_fit_to_hand_written']:.2f} | "
            f"{row['fit_one_time_seconds']:.2f} / {row['hand_written_one_time_seconds']:.2f} |")
    versions = run["versions"]
    lines += ["", f"`{run['command']}`, {run['date'][:10]}, {run['machine']['cpu_count']} cores, "
              + ", ".join(f"{name} {version}" for name, version in sorted(versions.items())) + "."]
    return lines


def _estimator_variance_run() -> dict:
    with open(BENCHMARK_RESULTS / "estimator_variance.json", encoding="utf-8") as handle:
        return json.load(handle)


def estimator_variance_table() -> list[str]:
    """docs/estimators/variance.md: total variance at equal evaluations, per problem."""
    run = _estimator_variance_run()
    lines = []
    for setting in run["settings"]:
        lines += [f"**{setting['description']}**, {setting['budget']} evaluations of f per "
                  "estimate", "",
                  "| estimator | samples | total variance (95 % CI) | ratio to REINFORCE-LOO |",
                  "| --- | --- | --- | --- |"]
        for row in setting["rows"]:
            name = row["name"] if row["unbiased"] else f"{row['name']} (biased)"
            ratio = row["ratio_to_reference"]
            lines.append(
                f"| {name} | {row['num_samples']} | {row['total_variance']:.4g} "
                f"({row['lower']:.4g}, {row['upper']:.4g}) | "
                f"{'n/a' if ratio is None else f'{ratio:.3f}'} |")
        if setting["skipped"]:
            lines += ["", "Not at this budget: " + "; ".join(
                f"{item['name']} ({item['reason']})" for item in setting["skipped"]) + "."]
        lines.append("")
    versions = run["versions"]
    lines.append(f"`{run['command']}`: {run['estimates']} estimates each on {run['backend']}, "
                 f"{run['date'][:10]}, {run['machine']['cpu_count']} cores, "
                 + ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
                 + ".")
    return lines


def estimator_variance_claims() -> list[str]:
    """docs/estimators/variance.md: each paper's ordering, checked on the intervals."""
    run = _estimator_variance_run()
    lines = ["| paper | claim | problem | evaluations | variance ratio | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    for claim in run["claims"]:
        lines.append(f"| {claim['paper']} | {claim['lower']} below {claim['higher']} | "
                     f"{claim['problem']} | {claim['budget']} | {claim['ratio']:.3f} | "
                     f"{claim['verdict']} |")
    return lines


def without_replacement_variance_table() -> list[str]:
    """docs/estimators/without_replacement.md: total gradient variance at equal evaluations."""
    with open(BENCHMARK_RESULTS / "without_replacement_variance.json", encoding="utf-8") as handle:
        run = json.load(handle)
    names = list(dict.fromkeys(row["estimator"] for row in run["rows"]))
    lines = ["| problem | k | " + " | ".join(f"`{name}`" for name in names) + " |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    groups = dict.fromkeys((row["description"], row["num_samples"]) for row in run["rows"])
    for description, num_samples in groups:
        cells = []
        for name in names:
            row = next(row for row in run["rows"] if row["description"] == description
                       and row["num_samples"] == num_samples and row["estimator"] == name)
            cells.append(f"{row['total_variance']:.3g} ± {row['interval_95']:.2g}")
        lines.append(f"| {description} | {num_samples} | " + " | ".join(cells) + " |")
    count = run["rows"][0]["num_estimates"]
    lines += ["", f"`{run['command']}`, {run['date'][:10]}: {count:,} estimates per cell, "
              "sum over the logits of the gradient's variance, 95 % interval."]
    return lines


def gumbel_rao_speed_table() -> list[str]:
    """docs/estimators/gumbel_rao.md: Gumbel-Rao against straight-through Gumbel at the same
    number of noise draws per latent (benchmark JSON)."""
    with open(BENCHMARK_RESULTS / "gumbel_rao_speed.json", encoding="utf-8") as handle:
        run = json.load(handle)
    lines = ["| backend | latents | logits | gumbel_rao, S = 1, M (ms) | "
             "gumbel_softmax_hard, S = M (ms) | gumbel_softmax_hard, S = 1 (ms) | "
             "ratio to S = M | ratio to S = 1 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for ratio in run["ratios"]:
        rows = [row for row in run["rows"]
                if (row["backend"], row["kind"]) == (ratio["backend"], ratio["kind"])]
        rao = next(row for row in rows if row["estimator"] == "gumbel_rao")
        many, one = (next(row for row in rows if row["estimator"] == "gumbel_softmax_hard"
                          and row["num_samples"] == count)
                     for count in (ratio["num_conditional_samples"], 1))
        lines.append(
            f"| {ratio['backend']} | {ratio['kind']} | "
            f"{' × '.join(str(size) for size in rao['logits_shape'])} | "
            f"{rao['milliseconds']:.1f} | {many['milliseconds']:.1f} | "
            f"{one['milliseconds']:.1f} | {ratio['ratio_to_hard_same_draws']:.2f} | "
            f"{ratio['ratio_to_hard_one_sample']:.2f} |")
    lines += ["", benchmark_provenance(run) + "."]
    return lines


def benchmark_provenance(run: dict) -> str:
    """The command, date, machine load and versions of a timing benchmark's JSON."""
    load = ", ".join(f"{value:.1f}" for value in run["machine"]["load_average"])
    return (f"`{run['command']}`, {run['date'][:10]}, {run['machine']['cpu_count']} cores "
            f"(load average {load}: a shared machine, timings are noisy), "
            + ", ".join(f"{name} {version}" for name, version in sorted(run["versions"].items())))


def streaming_throughput_table() -> list[str]:
    """docs/scaling.md: streamed against one-shot estimates, a call that does not fit at
    once, and 1 against 8 simulated devices (benchmark JSON)."""
    with open(BENCHMARK_RESULTS / "streaming_throughput.json", encoding="utf-8") as handle:
        run = json.load(handle)
    lines = ["| measurement | regime | samples × D | chunk | time | draws / s | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in run["streamed_against_one_shot"]:
        lines.append(
            f"| streamed / one-shot | {row['regime']} | {row['num_samples']:,} × "
            f"{row['dimension']} | {row['chunk_size']:,} | {row['streamed_seconds'] * 1e3:.0f} ms"
            f" (one-shot {row['one_shot_seconds'] * 1e3:.0f} ms) | "
            f"{row['num_samples'] * row['dimension'] / row['streamed_seconds']:.3g} | "
            f"{row['ratio']:.2f} |")
    for row in run["large"]:
        lines.append(
            f"| does not fit at once | {row['regime']} | {row['num_samples']:,} × "
            f"{row['dimension']} | {row['chunk_size']:,} | {row['seconds']:.1f} s | "
            f"{row['draws_per_second']:.3g} | |")
    for devices in run.get("devices") or []:
        lines.append(
            f"| 8 simulated devices / 1 | jax-jit | {devices['num_samples']:,} × "
            f"{devices['dimension']} | {devices['chunk_size']:,} | "
            f"{devices['eight_devices_seconds'] * 1e3:.0f} ms (one device "
            f"{devices['one_device_seconds'] * 1e3:.0f} ms) | "
            f"{devices['eight_devices_draws_per_second']:.3g} "
            f"({devices['eight_devices_draws_per_second_per_device']:.3g} per device) | "
            f"{devices['ratio']:.2f} |")
    lines += ["", benchmark_provenance(run)
              + ". Ratio: the peer's time over the measured one (above 1: faster)."]
    return lines


def streaming_kinds_table() -> list[str]:
    """docs/scaling.md: how each catalogued estimator streams (read from the estimators)."""
    from fxgx import catalogue  # noqa: PLC0415 - the other tables need only JSON

    kinds = {"mean": "the mean of the chunks' estimates",
             "exact": "running sums: its one-shot formula over all samples",
             "two_pass": "two passes (sums over all samples, then each chunk): its one-shot "
                         "formula over all samples"}
    lines = ["| estimator | with `chunk_size` |", "| --- | --- |"]
    for card in catalogue.load_cards():
        estimator = card.make()
        how = kinds.get(estimator.streaming.kind,
                        f"does not stream: {estimator.streaming.reason}")
        lines.append(f"| `{card.name}` | {how} |")
    return lines
def estimator_throughput_table() -> list[str]:
    """README.md and docs/estimators/variance.md: each estimator's compiled gradient against
    a hand-written one of the same formula (``benchmarks/estimator_throughput.py``'s JSON)."""
    with open(BENCHMARK_RESULTS / "estimator_throughput.json", encoding="utf-8") as handle:
        run = json.load(handle)
    backends = [("tensorflow-xla", "TF-XLA"), ("jax-jit", "JAX-jit")]
    rows = {(row["backend"], row["estimator"]): row for row in run["rows"]}
    labels = list(dict.fromkeys(row["estimator"] for row in run["rows"]
                                if row["backend"] in dict(backends)))
    header = "| estimator | S |"
    rule = "| --- | --- |"
    for _, title in backends:
        header += (f" {title}: fxgx / hand-written (ms per 10⁶ draws) | {title} ratio "
                   "(wall, CPU) |")
        rule += " --- | --- |"
    lines = [header, rule]
    for label in labels:
        cells = []
        for backend, _ in backends:
            row = rows.get((backend, label))
            if row is None:
                cells += ["", ""]
            elif "ratio" in row:
                cells += [f"{row['fxgx_ms_per_million']:.2f} / "
                          f"{row['reference_ms_per_million']:.2f}",
                          f"{row['ratio']:.2f}, {row['cpu_ratio']:.2f}"]
            else:
                cells += [f"{row['fxgx_ms_per_million']:.2f} / —", "—"]
        samples = next(row["num_samples"] for row in run["rows"] if row["estimator"] == label)
        lines.append(f"| {label} | {samples} | " + " | ".join(cells) + " |")
    tfp = [row for row in run["rows"] if row["backend"].startswith("tfp-")]
    machine = run["machine"]
    load = ", ".join(f"{value:.1f}" for value in machine["load_average_start"])
    notes = ["", "ratio = hand-written time / fxgx time, of the medians of interleaved calls "
             "(1.0: the abstraction is free), by the wall clock and by the process's CPU time "
             "(less sensitive to the other processes of a shared machine). "]
    if tfp:
        notes[-1] += "REINFORCE by `tfp.monte_carlo.expectation` takes " + " and ".join(
            f"{row['ratio']:.1f}× fxgx's time ({row['backend'][4:]})" for row in tfp) + ". "
    notes[-1] += (f"`{run['command']}`, {run['date'][:10]}, {machine['cpu_count']} cores "
                  f"(load average {load} at the start: a shared machine, timings are noisy), "
                  + ", ".join(f"{name} {version}"
                              for name, version in sorted(run["versions"].items())) + ".")
    return lines + notes


TABLES = {
    "estimator-throughput": estimator_throughput_table,
    "estimator-variance": estimator_variance_table,
    "estimator-variance-claims": estimator_variance_claims,
    "fit-overhead": fit_overhead_table,
    "gumbel-rao-speed": gumbel_rao_speed_table,
    "streaming-throughput": streaming_throughput_table,
    "streaming-kinds": streaming_kinds_table,
    "gaussian-mixture": lambda: gaussian_mixture_table("gaussian_mixture"),
    "gaussian-mixture-means-normal":
        lambda: gaussian_mixture_table("gaussian_mixture_means_normal"),
    "variable-selection": variable_selection_table,
    "variable-selection-pips": variable_selection_pips,
    "variable-selection-budget": variable_selection_budget_table,
    "sbn-seeds": sbn_seeds_table,
    "sbn": sbn_summary_table,
    "sbn-full": sbn_full_table,
    "sbn-configuration": sbn_configuration,
    "bernoulli-toy": bernoulli_toy_table,
    "categorical_vae": categorical_vae_table,
    "categorical_vae_full": categorical_vae_full_table,
    "categorical_vae_configuration": categorical_vae_configuration,
    "bernoulli-toy-configuration": bernoulli_toy_configuration,
    "without-replacement-variance": without_replacement_variance_table,
}


def render(markdown: str, where: str = "markdown") -> str:
    """``markdown`` with every marked table rendered from the committed JSON."""

    def replace(match: re.Match) -> str:
        name, indent = match.group("name"), match.group("indent")
        if name not in TABLES:
            raise KeyError(f"{where}: unknown table {name!r}; known: {sorted(TABLES)}.")
        body = "".join(f"{indent}{line}\n" for line in TABLES[name]())
        return (f"{indent}<!-- table:{name} start -->\n{body}"
                f"{indent}<!-- table:{name} end -->")

    return MARKER.sub(replace, markdown)


def stale_files() -> list[Path]:
    """The markdown files whose tables differ from what the JSON renders."""
    return [path for path in markdown_files()
            if (text := path.read_text(encoding="utf-8")) != render(text, str(path))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("command", nargs="?", default="render", choices=("render", "import"),
                        help="render the tables, or import an example's JSON output")
    parser.add_argument("path", nargs="?", help="import: the example's JSON output")
    parser.add_argument("--as", dest="name", default=None,
                        help="import: the results' name in docs/results (default: the example)")
    parser.add_argument("--check", action="store_true",
                        help="render: change nothing; exit 1 if a table is stale")
    arguments = parser.parse_args(argv)
    if arguments.command == "import":
        if arguments.path is None:
            parser.error("import needs the path of an example's JSON output")
        example = Path(arguments.path).stem
        if example not in SUMMARIES:
            parser.error(f"no summary for {example!r}; known: {sorted(SUMMARIES)}")
        with open(arguments.path, encoding="utf-8") as handle:
            summary = SUMMARIES[example](json.load(handle))
        summary["arguments"].pop("output_dir", None)  # where it ran, not how
        summary["source_commit"] = source_commit()
        RESULTS.mkdir(parents=True, exist_ok=True)
        target = RESULTS / f"{arguments.name or example}.json"
        target.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {target.relative_to(REPOSITORY)}")
        return 0
    stale = stale_files()
    if arguments.check:
        for path in stale:
            print(f"stale table in {path.relative_to(REPOSITORY)}: run "
                  "python scripts/render_tables.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        text = path.read_text(encoding="utf-8")
        path.write_text(render(text, str(path)), encoding="utf-8")
        print(f"rendered {path.relative_to(REPOSITORY)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
