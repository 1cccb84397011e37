"""``fxgx`` command line: ``fxgx compare`` (the main job) and ``fxgx list``.

``fxgx compare`` runs every catalogued estimator that supports the chosen problem, draws
independent gradient estimates in compiled chunks, tests each against the exact gradient,
and prints one row per estimator: the verdict, the variance, the variance relative to
REINFORCE, the time per 10^6 estimates and the work-normalised variance (variance x time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

from fxgx import catalogue
from fxgx.backends import backend_by_name
from fxgx.problems import DEFAULT_PROBLEM, PROBLEM_NAMES, get_problem
from fxgx.testing import check_unbiased, gradient_moments

FALSE_FAILURE_RATE = 1e-3


class CommandError(Exception):
    """An error reported as one line and exit status 2."""


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the C++ start-up log lines a framework prints while it is imported."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _progress_bar(label: str, stream):
    width = 24

    def update(done: int, total: int):
        if not stream.isatty() and done != total:
            return
        filled = int(width * done / total)
        stream.write(f"\r  {label:<32} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            stream.write("\n")
        stream.flush()

    return update


def _select_cards(names: str | None, problem) -> tuple[list, list]:
    cards = catalogue.load_cards()
    if names:
        wanted = [name.strip() for name in names.split(",") if name.strip()]
        known = {card.name: card for card in cards}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise CommandError(
                f"unknown estimator(s) {', '.join(unknown)}; run 'fxgx list' to see the catalogue"
            )
        cards = [known[name] for name in wanted]
    supported = [card for card in cards if card.supports(problem.kind) and _runs_on(card, problem)]
    skipped = [card for card in cards if card not in supported]
    return supported, skipped


def _runs_on(card, problem) -> bool:
    """Estimators whose target is not E[f] (VIMCO) say so with test.target."""
    return card.test.get("target", "expectation") == "expectation"


def _verdict(card, report) -> str:
    if card.unbiased:
        if report.underpowered:
            return f"underpowered (p={report.min_p_value:.2g}; raise --samples)"
        status = "unbiased" if report.passed else "BIASED?"
        return f"{status} (p={report.min_p_value:.2g})"
    detected = bool(np.any(report.rejected))
    return f"biased ({'detected' if detected else 'not detected'}, max|z|={report.max_abs_z:.1f})"


def _backend_name(name: str) -> str:
    return {"tf": "tensorflow"}.get(name.lower(), name.lower())


def run_compare(arguments) -> dict:

    try:
        problem = get_problem(arguments.problem, backend=_backend_name(arguments.backend))
    except ValueError as error:
        raise CommandError(str(error)) from error
    cards, skipped = _select_cards(arguments.estimators, problem)
    if not cards:
        raise CommandError(f"no selected estimator supports problem {arguments.problem!r}")
    if arguments.samples < 4:
        raise CommandError(f"--samples {arguments.samples} is too small; use at least 4")
    try:
        with _quiet_native_stderr():
            backend_module = backend_by_name(arguments.backend)
    except (ImportError, ValueError) as error:
        raise CommandError(str(error).splitlines()[0]) from error
    with _quiet_native_stderr():
        exact = problem.exact_gradient()
    stream = sys.stderr
    stream.write(
        f"fxgx compare: {problem.describe()} on {backend_module.name} "
        f"({backend_module.device_description()}), {arguments.samples} estimates each\n"
    )
    rows = []
    for index, card in enumerate(cards):
        estimator = card.make()
        label = f"[{index + 1}/{len(cards)}] {card.name}"
        chunk = min(arguments.chunk_size, max(2, arguments.samples // 4))
        moments = gradient_moments(
            estimator,
            problem,
            num_estimates=arguments.samples,
            seed=arguments.seed,
            backend=backend_module.name,
            dtype=arguments.dtype,
            num_samples=card.num_samples,
            chunk_size=chunk,
            progress=_progress_bar(label, stream),
        )
        report = check_unbiased(
            moments, exact, false_failure_rate=FALSE_FAILURE_RATE,
            detectable_bias=problem.detectable_bias,
        )
        variance = float(np.mean(moments.variance))
        microseconds = moments.seconds_per_estimate * 1e6
        rows.append(
            {
                "estimator": card.name,
                "family": card.family,
                "unbiased_by_design": card.unbiased,
                "verdict": _verdict(card, report),
                "passed": bool(report.passed),
            "underpowered": bool(report.underpowered),
            "detectable_bias": float(problem.detectable_bias),
                "p_value": report.min_p_value,
                "max_abs_z": report.max_abs_z,
                "num_samples": card.num_samples,
                "evaluations_per_estimate": card.evaluations_per_sample * card.num_samples,
                "variance": variance,
                "variance_per_coordinate": moments.variance.tolist(),
                "mean": moments.mean.tolist(),
                "seconds_per_million": microseconds,
                "work_normalised_variance": variance * microseconds,
                "compile_seconds": moments.compile_seconds,
                "count": moments.count,
            }
        )
    reference = next((row for row in rows if row["estimator"] == "reinforce"), None)
    for row in rows:
        row["variance_relative_to_reinforce"] = (
            row["variance"] / reference["variance"] if reference and reference["variance"] else None
        )
    return {
        "problem": problem.describe(),
        "backend": backend_module.name,
        "device": backend_module.device_description(),
        "dtype": arguments.dtype,
        "seed": arguments.seed,
        "estimates_per_estimator": arguments.samples,
        "false_failure_rate": FALSE_FAILURE_RATE,
        "detectable_bias": float(problem.detectable_bias),
        "exact_gradient": exact.tolist(),
        "rows": rows,
        "skipped": [card.name for card in skipped],
    }


def format_table(result: dict) -> str:
    header = (
        f"{'estimator':<26} {'verdict':<40} {'evals':>5} {'variance':>10} {'vs REINF.':>9} "
        f"{'s/1e6 est.':>10} {'var x time':>10}"
    )
    lines = [header, "-" * len(header)]
    for row in result["rows"]:
        relative = row["variance_relative_to_reinforce"]
        lines.append(
            f"{row['estimator']:<26} {row['verdict']:<40} {row['evaluations_per_estimate']:>5} "
            f"{row['variance']:>10.3e} {'' if relative is None else f'{relative:.3g}':>9} "
            f"{row['seconds_per_million']:>10.3g} {row['work_normalised_variance']:>10.3e}"
        )
    if result["skipped"]:
        lines.append(f"(not applicable to this problem: {', '.join(result['skipped'])})")
    lines.append(
        f"verdict: Holm-adjusted z-test of the mean against the exact gradient, family-wise "
        f"false-failure rate {result['false_failure_rate']:g}, power 0.99 against a bias of "
        f"{result['detectable_bias']:.3g} (or 'underpowered'); variance: mean over coordinates "
        "of the variance of one estimate; var x time: work-normalised variance."
    )
    return "\n".join(lines)


def write_plot(result: dict, path: str) -> None:
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency, only for --plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as error:
        raise CommandError("--plot needs matplotlib: pip install 'fxgx[cli]'") from error
    names = [row["estimator"] for row in result["rows"]]
    variance = [max(row["variance"], 1e-30) for row in result["rows"]]
    cost = [row["seconds_per_million"] for row in result["rows"]]
    figure, axes = plt.subplots(1, 2, figsize=(11, 0.4 * len(names) + 1.8), sharey=True)
    positions = np.arange(len(names))
    colors = ["tab:blue" if row["unbiased_by_design"] else "tab:orange" for row in result["rows"]]
    axes[0].barh(positions, variance, color=colors)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("variance of one estimate (mean over coordinates)")
    axes[0].set_yticks(positions, names)
    axes[0].invert_yaxis()
    axes[1].barh(positions, cost, color=colors)
    axes[1].set_xlabel("seconds per 10^6 estimates")
    figure.suptitle(f"{result['problem']} on {result['backend']} (blue: unbiased, orange: biased)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_list(_arguments) -> None:
    cards = catalogue.load_cards()
    print(f"{'name':<26} {'family':<22} {'unbiased':<8} {'evals':>5}  distributions")
    for card in cards:
        print(
            f"{card.name:<26} {card.family:<22} {str(card.unbiased):<8} "
            f"{card.evaluations_per_sample:>5}  {', '.join(card.distributions)}"
        )
        print(f"{'':<26} {card.summary}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxgx", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare", help="test and compare every catalogued estimator on one problem"
    )
    compare.add_argument("--backend", default="tensorflow", help="tensorflow (default) or jax")
    compare.add_argument(
        "--problem", default=DEFAULT_PROBLEM, help=f"built-in problem: {', '.join(PROBLEM_NAMES)}"
    )
    compare.add_argument(
        "--estimators",
        default=None,
        help="comma-separated catalogue names (default: all that apply)",
    )
    compare.add_argument(
        "--samples", type=int, default=262144, help="independent gradient estimates per estimator"
    )
    compare.add_argument(
        "--chunk-size", type=int, default=65536, help="estimates per compiled call (bounds memory)"
    )
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    compare.add_argument("--json", default=None, metavar="FILE", help="write the raw numbers")
    compare.add_argument("--plot", default=None, metavar="FILE.png", help="write a figure")
    commands.add_parser("list", help="print the estimator catalogue")
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # same numbers on every CPU
    arguments = build_parser().parse_args(argv)
    try:
        if arguments.command == "list":
            run_list(arguments)
            return 0
        start = time.perf_counter()
        result = run_compare(arguments)
        result["wall_seconds"] = time.perf_counter() - start
        print(format_table(result))
        if arguments.json:
            with open(arguments.json, "w") as handle:
                json.dump(result, handle, indent=2, allow_nan=True)
        if arguments.plot:
            write_plot(result, arguments.plot)
        print(f"done in {result['wall_seconds']:.1f} s", file=sys.stderr)
        return 0
    except CommandError as error:
        print(f"fxgx: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
