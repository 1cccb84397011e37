"""Gradient variance of the sampling-without-replacement estimators against REINFORCE-LOO.

At equal evaluations of ``f`` (``k`` per estimate), the total variance over the logits'
gradient coordinates of ``unordered_set``, ``sum_and_sample`` and ``reinforce_leave_one_out``
(measured from ``--estimates`` estimates, float32, TensorFlow graph mode, with a 95 %
interval from the fourth moments), on two problems:

- ``small_categorical`` (D = 3, K = 4, the built-in problem: high entropy, its four most
  likely joint states hold 0.071, 0.058, 0.048 and 0.043);
- the same ``f`` with the logits multiplied by 3 (lower entropy: its four most likely joint
  states hold 0.33, 0.18, 0.10 and 0.07), the regime where Kool, van Hoof & Welling (2020)
  report that sampling without replacement pays off.

Writes ``benchmarks/results/without_replacement_variance.json`` (``--json``), rendered into
docs/estimators/without_replacement.md by ``scripts/render_tables.py``.

    python benchmarks/without_replacement_variance.py [--estimates 65536] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ESTIMATORS = ("reinforce_leave_one_out", "unordered_set", "sum_and_sample")
SET_SIZES = (2, 3, 4)
LOW_ENTROPY_SCALE = 3.0


def problems():
    """``{name: (problem, description)}``: the built-in problem and its low-entropy twin."""
    from fxgx.problems import get_problem
    from fxgx.problems.builtin import CATEGORICAL_LOGITS, categorical_function
    from fxgx.problems.enumeration import EnumeratedCategorical

    return {
        "small_categorical": (get_problem("small_categorical"),
                              "small_categorical (D = 3, K = 4)"),
        "small_categorical_low_entropy": (
            EnumeratedCategorical(categorical_function, LOW_ENTROPY_SCALE * CATEGORICAL_LOGITS,
                                  name="small_categorical, logits x 3"),
            f"small_categorical, logits x {LOW_ENTROPY_SCALE:g}"),
    }


def measure(num_estimates: int) -> list[dict]:
    """One row per problem, set size and estimator."""
    from fxgx import catalogue
    from fxgx.testing import gradient_moments

    rows = []
    for name, (problem, description) in problems().items():
        size = problem.parameter_values()[0].size
        for set_size in SET_SIZES:
            for estimator_name in ESTIMATORS:
                moments = gradient_moments(
                    catalogue.get_card(estimator_name).make(), problem,
                    num_estimates=num_estimates, seed=20261203, backend="tensorflow",
                    dtype="float32", num_samples=set_size, chunk_size=65536,
                    jit_compile=False)
                total = float(moments.variance[:size].sum())
                standard_error = float(moments.variance_standard_error[:size].sum())
                rows.append({"problem": name, "description": description,
                             "estimator": estimator_name, "num_samples": set_size,
                             "total_variance": total,
                             "interval_95": 1.96 * standard_error,
                             "num_estimates": int(moments.count)})
                print(f"{name:32s} k={set_size} {estimator_name:24s} {total:.4g} "
                      f"± {1.96 * standard_error:.2g}", flush=True)
    return rows


def main(argv=None) -> None:
    """Measure and write the JSON.

    Args:
        argv: command-line arguments (default: ``sys.argv``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimates", type=int, default=65536)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results"
                        / "without_replacement_variance.json")
    arguments = parser.parse_args(argv)
    import numpy as np
    import tensorflow as tf

    rows = measure(arguments.estimates)
    result = {
        "benchmark": "without_replacement_variance",
        "command": f"python benchmarks/without_replacement_variance.py --estimates "
                   f"{arguments.estimates}",
        "date": datetime.now(UTC).isoformat(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "versions": {"tensorflow": tf.__version__, "numpy": np.__version__},
        "rows": rows,
    }
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {arguments.json}")


if __name__ == "__main__":
    main()
