"""Variance of every estimator at equal evaluations of ``f``, and the papers' orderings.

For each toy problem and budget ``B`` (evaluations of ``f`` per estimate), every catalogued
estimator that fits the budget runs with ``num_samples = B / c``, where ``c`` is its card's
evaluations per sample on that problem (``Card.evaluations_on``), and draws ``--estimates``
independent gradient estimates on the problem's exact setting. The table reports the total
variance ``V = sum_j Var(g_j)`` over the distribution's parameters (the logits; the Normal's
mean and scale), with a 95 % confidence interval from the per-coordinate standard errors of the
variance (fourth moments; their sum bounds the standard error of the total, so the interval is
conservative), and ``V / V_ref``, the ratio to REINFORCE-LOO at the same budget. Biased
estimators are listed with their variance too, marked biased: a low variance does not make up
for a bias.

``CLAIMS`` lists the headline orderings of the papers that introduced the estimators ("A has
lower variance than B at equal evaluations"). Each is checked on the intervals:
``reproduced`` if A's upper end is below B's lower end, ``reversed`` if A's lower end is above
B's upper end, ``inconclusive`` otherwise. The problems are the catalogue's (stated in
``src/fxgx/problems/builtin.py``), not the papers' own experiments; a claim that does not
reproduce here is reported as such, the problems are not tuned until it does.

    python benchmarks/estimator_variance.py [--estimates 262144] [--backend tensorflow]
    python scripts/render_tables.py          # renders docs/estimators/variance.md

Writes ``benchmarks/results/estimator_variance.json`` (machine, versions, date, command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results" / "estimator_variance.json"
REFERENCE = "reinforce_leave_one_out"
#: (problem, budget of evaluations of f per estimate): every problem at the budget of one
#: antithetic pair (the papers' comparison: one pair against two independent samples) and at
#: 4, and the large categorical problem also at the budget IndeCateR needs (one evaluation
#: per class and variable).
SETTINGS = (
    ("bernoulli_toy", 2),
    ("nonadditive_bernoulli", 2),
    ("nonadditive_bernoulli", 4),
    ("small_categorical", 2),
    ("small_categorical", 4),
    ("categorical", 2),
    ("categorical", 4),
    ("categorical", 40),
)
#: Biased estimators are measured up to this budget only (their variance says little without
#: their bias, and Gumbel-Rao's conditional draws make large budgets slow).
MAXIMUM_BIASED_BUDGET = 4
#: Cards left out, with the reason printed in the table's notes.
EXCLUDED = {
    "vimco": "estimates the gradient of a multi-sample bound, not of E[f]",
    "disarm_vimco": "estimates the gradient of a multi-sample bound, not of E[f]",
    "learned_baseline": "its baseline is trained alongside the model; see the VI examples",
    "moving_average_baseline": "its baseline averages over earlier calls; see the VI examples",
}
#: The papers' headline orderings: (lower, higher, paper). The categorical estimators' claims
#: are checked on the categorical problems only (on Bernoulli latents they are DisARM).
CATEGORICAL_ONLY = ("categorical_disarm", "stick_breaking_disarm")
CLAIMS = (
    ("disarm", "reinforce_leave_one_out", "Dong, Mnih & Tucker (2020): DisARM"),
    ("disarm", "arm", "Dong, Mnih & Tucker (2020): DisARM"),
    ("categorical_disarm", "reinforce_leave_one_out",
     "Dong, Mnih & Tucker (2021): categorical DisARM"),
    ("stick_breaking_disarm", "reinforce_leave_one_out",
     "Dong, Mnih & Tucker (2021): stick-breaking"),
    ("double_control_variate", "reinforce_leave_one_out", "Titsias & Shi (2022)"),
    ("rodeo", "reinforce_leave_one_out", "Shi et al. (2022): RODEO"),
    ("indecater", "reinforce_leave_one_out", "De Smet et al. (2023): IndeCateR"),
    ("unordered_set", "reinforce_leave_one_out", "Kool, van Hoof & Welling (2020)"),
    ("gumbel_rao", "gumbel_softmax_hard", "Paulus, Maddison & Krause (2021): Gumbel-Rao"),
)


def configured_estimator(card, problem, backend):
    """The estimator the table measures for ``card``: its default (a card that needs a user
    callable is configured in ``CONFIGURATIONS``), or None with a reason."""
    if card.name in EXCLUDED:
        return None, EXCLUDED[card.name]
    if card.name in CONFIGURATIONS:
        return CONFIGURATIONS[card.name](card, problem, backend), None
    return card.make(), None


#: Draws of the least-squares fit of RODEO's surrogate (separate from the measured ones).
SURROGATE_FIT_DRAWS = 4096


def fitted_linear_surrogate(problem, backend_name, seed=0):
    """RODEO's ``h(z) = c + sum_i w_i z_i``, fitted once by least squares to ``f`` on
    ``SURROGATE_FIT_DRAWS`` draws of ``q`` with their own seed: the offline stand-in for
    training ``h`` on ``variance_loss`` over many steps. Its evaluations of ``f`` are not
    counted in the budget, as a trained surrogate's training is not."""
    from fxgx.backends import framework_by_name, get_framework

    backend = framework_by_name(backend_name)
    logits = np.asarray(problem.parameter_values()[0], np.float64)
    generator = np.random.default_rng(seed)
    if problem.kind == "categorical":
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        flat = probabilities.reshape(-1, logits.shape[-1])
        classes = np.stack([generator.choice(len(row), SURROGATE_FIT_DRAWS, p=row)
                            for row in flat], axis=1)
        states = np.eye(logits.shape[-1])[classes].reshape((SURROGATE_FIT_DRAWS,) + logits.shape)
    else:
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        states = (generator.random((SURROGATE_FIT_DRAWS,) + logits.shape)
                  < probabilities).astype(np.float64)
    values = np.asarray(np.asarray(problem.function(
        backend.xp.asarray(states, dtype=backend.widest_float()))), np.float64)
    design = np.concatenate([np.ones((SURROGATE_FIT_DRAWS, 1)),
                             states.reshape(SURROGATE_FIT_DRAWS, -1)], axis=1)
    coefficients = np.linalg.lstsq(design, values, rcond=None)[0]
    intercept, weights = coefficients[0], coefficients[1:].reshape(logits.shape)

    def surrogate(samples, parameters):
        del parameters
        backend = get_framework(samples)
        rank = len(tuple(samples.shape))
        axes = tuple(range(rank - logits.ndim, rank))  # the problem's own axes
        weight = backend.xp.asarray(weights, dtype=samples.dtype)
        return intercept + backend.xp.sum(samples * weight, axis=axes)

    return surrogate


def _rodeo(card, problem, backend):
    from fxgx.estimators import rodeo

    return rodeo(fitted_linear_surrogate(problem, backend))


def _relax(card, problem, backend):
    """RELAX with the catalogue's residual ``0.1 sum tanh(0.5 z)``: a fixed, untrained
    control variate (RELAX trains it in practice; see the SBN example)."""
    from fxgx.estimators import relax

    event_rank = np.ndim(problem.parameter_values()[0])

    def residual(perturbed, parameters):
        from fxgx.backends import get_framework

        backend = get_framework(perturbed)
        rank = len(tuple(perturbed.shape))
        axes = tuple(range(rank - event_rank, rank))  # the problem's own axes
        return 0.1 * backend.xp.sum(backend.xp.tanh(0.5 * perturbed), axis=axes)

    return relax(residual)


CONFIGURATIONS = {"relax": _relax, "rodeo": _rodeo}


def fits(card, estimator, budget, problem):
    """``num_samples`` for ``budget`` evaluations, or None with the reason it does not fit."""
    cost = card.evaluations_on(problem)
    if budget % cost:
        return None, f"costs {cost} evaluations per sample; {budget} is not a multiple"
    num_samples = budget // cost
    if num_samples < estimator.minimum_samples:
        return None, f"needs {estimator.minimum_samples * cost} evaluations"
    maximum = getattr(estimator, "maximum_samples", None)
    if maximum is not None and num_samples > maximum:
        return None, f"takes at most {maximum} samples"
    return num_samples, None


def measure(problem_name, budget, backend, num_estimates, seed):
    from fxgx.catalogue import load_cards
    from fxgx.problems import get_problem
    from fxgx.testing import gradient_moments

    problem = get_problem(problem_name, backend=backend)
    size = int(sum(np.size(value) for value in problem.parameter_values()))
    rows, skipped = [], []
    for card in load_cards():
        if not card.supports(problem.kind):
            continue
        estimator, reason = configured_estimator(card, problem, backend)
        if estimator is None:
            skipped.append({"name": card.name, "reason": reason})
            continue
        if not card.unbiased and budget > MAXIMUM_BIASED_BUDGET:
            skipped.append({"name": card.name,
                            "reason": f"biased; measured at {MAXIMUM_BIASED_BUDGET} and below"})
            continue
        num_samples, reason = fits(card, estimator, budget, problem)
        if num_samples is None:
            skipped.append({"name": card.name, "reason": reason})
            continue
        start = time.perf_counter()
        # Chunks of about 2^16 samples (RODEO also holds every sample's Gibbs neighbours).
        chunk_size = 2**16 // num_samples // (size if card.name == "rodeo" else 1)
        moments = gradient_moments(estimator, problem, num_estimates=num_estimates, seed=seed,
                                   backend=backend, dtype="float32", num_samples=num_samples,
                                   chunk_size=max(256, chunk_size),
                                   jit_compile=backend == "jax")
        variance = np.asarray(moments.variance[:size], np.float64)
        error = np.asarray(moments.variance_standard_error[:size], np.float64)
        total, total_error = float(variance.sum()), float(error.sum())
        rows.append({
            "name": card.name, "unbiased": card.unbiased, "num_samples": num_samples,
            "evaluations": num_samples * card.evaluations_on(problem),
            "total_variance": total, "lower": total - 1.96 * total_error,
            "upper": total + 1.96 * total_error,
            "seconds": time.perf_counter() - start,
        })
        print(f"{problem_name} B={budget} {card.name}: V = {total:.4g} "
              f"± {1.96 * total_error:.2g}", file=sys.stderr)
    reference = next((row for row in rows if row["name"] == REFERENCE), None)
    for row in rows:
        row["ratio_to_reference"] = (row["total_variance"] / reference["total_variance"]
                                     if reference else None)
    return {"problem": problem_name, "description": problem.describe(), "budget": budget,
            "rows": sorted(rows, key=lambda row: row["total_variance"]), "skipped": skipped}


def verdicts(settings):
    """Each claim on each setting where both estimators ran."""
    results = []
    for lower, higher, paper in CLAIMS:
        for setting in settings:
            rows = {row["name"]: row for row in setting["rows"]}
            if lower not in rows or higher not in rows:
                continue
            if lower in CATEGORICAL_ONLY and "categorical" not in setting["problem"]:
                continue
            a, b = rows[lower], rows[higher]
            if a["upper"] < b["lower"]:
                verdict = "reproduced"
            elif a["lower"] > b["upper"]:
                verdict = "reversed"
            else:
                verdict = "inconclusive"
            results.append({"paper": paper, "lower": lower, "higher": higher,
                            "problem": setting["problem"], "budget": setting["budget"],
                            "ratio": a["total_variance"] / b["total_variance"],
                            "verdict": verdict})
    return results


def versions(backend):
    import importlib.metadata as metadata

    names = ["numpy", "tensorflow" if backend == "tensorflow" else "jax"]
    return {name: metadata.version(name) for name in names}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimates", type=int, default=2**18,
                        help="independent estimates per estimator and setting (default 2^18)")
    parser.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax"))
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--recheck", action="store_true",
                        help="recompute the claims' verdicts from the JSON, measuring nothing")
    arguments = parser.parse_args(argv)
    if arguments.recheck:
        run = json.loads(arguments.json.read_text(encoding="utf-8"))
        run["claims"] = verdicts(run["settings"])
        arguments.json.write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
        print(f"rechecked {len(run['claims'])} claims in {arguments.json}")
        return
    start = time.perf_counter()
    settings = [measure(problem, budget, arguments.backend, arguments.estimates, arguments.seed)
                for problem, budget in SETTINGS]
    run = {
        "command": "python benchmarks/estimator_variance.py"
                   + "".join(f" {argument}" for argument in (argv or sys.argv[1:])),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "versions": versions(arguments.backend),
        "backend": arguments.backend, "estimates": arguments.estimates,
        "seed": arguments.seed, "reference": REFERENCE,
        "settings": settings, "claims": verdicts(settings),
        "seconds": time.perf_counter() - start,
    }
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
    for claim in run["claims"]:
        print(f"{claim['verdict']:>12}  {claim['lower']} < {claim['higher']} on "
              f"{claim['problem']} (B={claim['budget']}): ratio {claim['ratio']:.3f}")
    print(f"wrote {arguments.json} in {run['seconds']:.0f} s")


if __name__ == "__main__":
    main()
