"""``fxgx`` command line: ``fxgx compare`` (the main job) and ``fxgx list``.

``fxgx compare`` runs every catalogued estimator that supports the chosen problem, draws
independent gradient estimates in compiled chunks, tests each against the exact gradient,
and prints one row per estimator: the verdict, the function evaluations per estimate, the
variance, the variance relative to REINFORCE, the time per 10^6 estimates and the
work-normalised variance (variance x time).

Every option is checked before any work starts (no framework is imported until then); a
user error is one line on stderr, ``fxgx: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from fxgx import catalogue
from fxgx.backends import framework_by_name
from fxgx.problems import DEFAULT_PROBLEM, PROBLEM_NAMES, Problem, get_problem
from fxgx.testing import check_unbiased, gradient_moments

FALSE_FAILURE_RATE = 1e-3
REFERENCE_ESTIMATOR = "reinforce"
BACKEND_CHOICES = ("auto", "tensorflow", "tf", "jax")
_EXTRAS = {"tensorflow": "tf", "jax": "jax"}
_LARGEST_SEED = 2**63 - 1
EVALUATIONS_NOTE = (
    "evals: evaluations of f per gradient estimate (samples per estimate x evaluations per "
    "sample)"
)


class CommandError(Exception):
    """An error reported as one line and exit status 2."""


def package_version() -> str:
    """The installed distribution's version (pyproject.toml is its single source)."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("fxgx")
    except PackageNotFoundError:
        return "unknown (not installed as a distribution)"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``fxgx: error: ...``) and exit status 2."""

    def error(self, message):
        raise CommandError(f"{message} (see '{self.prog} --help')")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` after every option that has a default other than None or a
    flag's False, and keeps a long default whole (the examples' parsers use it too)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)

    def _split_lines(self, text, width):
        # Keep a long default (a list of names) whole rather than cut mid-name.
        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False,
                             break_on_hyphens=False)


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


# ---------------------------------------------------------------------------------------------
# Checks that run before any work.


def _integer(minimum: int, maximum: int | None = None):
    """An argparse ``type``: an integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small; use at least {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is too large; use at most {maximum}")
        return value

    return parse


def _installed(module_name: str) -> bool:
    """Whether ``module_name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def resolve_backend(name: str) -> tuple[str, str]:
    """``(backend name, note)``: "auto" is TensorFlow when installed, else JAX."""
    name = {"tf": "tensorflow"}.get(name.lower(), name.lower())
    if name == "auto":
        if _installed("tensorflow"):
            return "tensorflow", ""
        if _installed("jax"):
            return "jax", "TensorFlow is not installed, so JAX runs (--backend jax)"
        raise CommandError(
            "neither TensorFlow nor JAX is installed: pip install 'fxgx[tf]' or 'fxgx[jax]'"
        )
    if not _installed(name):
        other = "jax" if name == "tensorflow" else "tensorflow"
        hint = f", or use --backend {other}" if _installed(other) else ""
        raise CommandError(
            f"--backend {name} needs {name} installed: pip install 'fxgx[{_EXTRAS[name]}]'{hint}"
        )
    return name, ""


def _check_writable(option: str, path: str) -> Path:
    """The file ``path`` can be written: its folder exists and a file can be created there."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise CommandError(f"{option} {path} is a folder; give a file name")
    folder = target.parent
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{option} {path}: {str(folder)!r} is not a folder")
    if not folder.is_dir():
        raise CommandError(f"{option} {path}: the folder {str(folder)!r} does not exist")
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except OSError as error:
        raise CommandError(f"{option} {path} cannot be written ({error.strerror})") from None
    if not existed:
        target.unlink()
    return target


def _check_plot(path: str) -> Path:
    if not _installed("matplotlib"):
        raise CommandError("--plot needs matplotlib: pip install 'fxgx[cli]'")
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix:
        from matplotlib.backend_bases import FigureCanvasBase  # noqa: PLC0415

        formats = FigureCanvasBase.get_supported_filetypes()
        if suffix not in formats:
            raise CommandError(
                f"--plot {path}: matplotlib cannot write .{suffix} files; use one of "
                f"{', '.join('.' + name for name in sorted(formats))}"
            )
    return _check_writable("--plot", path)


def _runs_on(card, problem) -> bool:
    """Estimators whose target is not E[f] (VIMCO) say so with test.target."""
    return card.target == "expectation"


def _select_cards(names: str | None, problem) -> tuple[list, list]:
    cards = catalogue.load_cards()
    if names is not None:
        wanted = [name.strip() for name in names.split(",") if name.strip()]
        if not wanted:
            raise CommandError("--estimators is empty; give comma-separated catalogue names")
        known = {card.name: card for card in cards}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise CommandError(
                f"unknown estimator(s) {', '.join(unknown)}; run 'fxgx list' to see the catalogue"
            )
        cards = [known[name] for name in dict.fromkeys(wanted)]
    supported = [card for card in cards if card.supports(problem.kind) and _runs_on(card, problem)]
    skipped = [card for card in cards if card not in supported]
    return supported, skipped


@dataclasses.dataclass
class ComparePlan:
    """Everything ``fxgx compare`` will do, decided before any work."""

    backend: str
    backend_note: str
    problem: Problem
    cards: list
    skipped: list
    json_path: Path | None
    plot_path: Path | None


def plan_compare(arguments) -> ComparePlan:
    """Check every option of ``fxgx compare``; raise ``CommandError`` on the first bad one."""
    backend, note = resolve_backend(arguments.backend)
    try:
        problem = get_problem(arguments.problem, backend=backend)
    except ValueError as error:
        raise CommandError(str(error)) from error
    cards, skipped = _select_cards(arguments.estimators, problem)
    if not cards:
        raise CommandError(
            f"no selected estimator supports problem {arguments.problem!r}; run 'fxgx list'"
        )
    if arguments.json and arguments.plot and (
        Path(arguments.json).expanduser().resolve() == Path(arguments.plot).expanduser().resolve()
    ):
        raise CommandError("--json and --plot name the same file")
    json_path = _check_writable("--json", arguments.json) if arguments.json else None
    plot_path = None
    if arguments.plot:
        if REFERENCE_ESTIMATOR not in [card.name for card in cards]:
            raise CommandError(
                f"--plot shows variances relative to REINFORCE; add {REFERENCE_ESTIMATOR} "
                "to --estimators"
            )
        plot_path = _check_plot(arguments.plot)
    return ComparePlan(backend, note, problem, cards, skipped, json_path, plot_path)


# ---------------------------------------------------------------------------------------------
# The work.


def _verdict(card, report) -> str:
    if card.unbiased:
        if report.underpowered:
            return f"underpowered (p={report.min_p_value:.2g}; raise --samples)"
        status = "unbiased" if report.passed else "BIASED?"
        return f"{status} (p={report.min_p_value:.2g})"
    detected = bool(np.any(report.rejected))
    return f"biased ({'detected' if detected else 'not detected'}, max|z|={report.max_abs_z:.1f})"


def run_compare(plan: ComparePlan, arguments) -> dict:
    """Draw the estimates of every planned estimator and test them; the JSON-ready result."""
    problem = plan.problem
    if plan.backend == "jax" and arguments.dtype == "float64":
        os.environ.setdefault("JAX_ENABLE_X64", "1")  # read when JAX is imported
    try:
        with _quiet_native_stderr():
            framework = framework_by_name(plan.backend)
    except (ImportError, ValueError) as error:
        raise CommandError(str(error).splitlines()[0]) from error
    if arguments.dtype == "float64" and framework.widest_float() != "float64":
        raise CommandError(
            "--dtype float64 on JAX needs 64-bit mode, which was off when JAX was imported: "
            "set JAX_ENABLE_X64=1"
        )
    with _quiet_native_stderr():
        exact = problem.exact_gradient()
    devices = getattr(arguments, "devices", None)
    num_devices = 1
    if devices is not None:
        try:
            with _quiet_native_stderr():  # TensorFlow logs its device search
                num_devices = framework.device_count(framework.resolve_devices(devices))
        except (TypeError, ValueError) as error:
            hint = (
                "; from the command line, simulate CPU devices with --backend jax and "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={devices}"
                if framework.name == "tensorflow" else ""
            )
            raise CommandError(f"--devices {devices}: {str(error).rstrip('.')}{hint}") from None
    stream = sys.stderr
    if plan.backend_note:
        stream.write(f"fxgx compare: {plan.backend_note}\n")
    stream.write(
        f"fxgx compare: {problem.describe()} on {framework.name} "
        f"({framework.device_description()}"
        + (f", {num_devices} devices" if devices is not None else "")
        + f"), {arguments.samples} estimates each\n"
    )
    rows = []
    for index, card in enumerate(plan.cards):
        estimator = card.make()
        label = f"[{index + 1}/{len(plan.cards)}] {card.name}"
        # At least 4 chunks (rounds of chunks with --devices): the first one compiles.
        chunk = min(arguments.chunk_size, max(2, arguments.samples // (4 * num_devices)))
        moments = gradient_moments(
            estimator,
            problem,
            num_estimates=arguments.samples,
            seed=arguments.seed,
            backend=framework.name,
            dtype=arguments.dtype,
            num_samples=card.num_samples,
            chunk_size=chunk,
            progress=_progress_bar(label, stream),
            devices=devices,
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
                "bias_detected": bool(np.any(report.rejected)),
                "underpowered": bool(report.underpowered),
                "detectable_bias": float(problem.detectable_bias),
                "p_value": report.min_p_value,
                "max_abs_z": report.max_abs_z,
                "samples_per_estimate": card.num_samples,
                "evaluations_per_sample": card.evaluations_on(problem),
                "evaluations_per_estimate": card.evaluations_on(problem) * card.num_samples,
                "variance": variance,
                "variance_per_coordinate": moments.variance.tolist(),
                "mean": moments.mean.tolist(),
                "seconds_per_million": microseconds,
                "work_normalised_variance": variance * microseconds,
                "compile_seconds": moments.compile_seconds,
                "count": moments.count,
            }
        )
        if devices is not None:
            rows[-1]["devices"] = moments.num_devices
            rows[-1]["draws_per_second_per_device"] = (
                moments.estimates_per_second_per_device * card.num_samples
            )
    reference = next((row for row in rows if row["estimator"] == REFERENCE_ESTIMATOR), None)
    for row in rows:
        relative_variance = None
        relative_work_normalised_variance = None
        if reference is not None and reference["variance"] > 0:
            relative_variance = row["variance"] / reference["variance"]
            if reference["work_normalised_variance"] > 0:
                relative_work_normalised_variance = (
                    row["work_normalised_variance"] / reference["work_normalised_variance"]
                )
        row["variance_relative_to_reinforce"] = relative_variance
        row["work_normalised_variance_relative_to_reinforce"] = relative_work_normalised_variance
    return {
        "fxgx_version": package_version(),
        "problem": problem.describe(),
        "backend": framework.name,
        "device": framework.device_description(),
        "dtype": arguments.dtype,
        "seed": arguments.seed,
        "estimates_per_estimator": arguments.samples,
        "false_failure_rate": FALSE_FAILURE_RATE,
        "detectable_bias": float(problem.detectable_bias),
        "exact_gradient": exact.tolist(),
        "reference_estimator": REFERENCE_ESTIMATOR if reference is not None else None,
        "reference_variance": reference["variance"] if reference is not None else None,
        "rows": rows,
        "skipped": [card.name for card in plan.skipped],
    } | ({"devices": num_devices} if devices is not None else {})


def _aligned(table: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_table(result: dict) -> str:
    per_device = "devices" in result
    table = [["estimator", "verdict", "evals", "variance", "vs REINFORCE", "s/1e6 est.",
              "var x time"] + (["draws/s/device"] if per_device else [])]
    for row in result["rows"]:
        relative = row["variance_relative_to_reinforce"]
        table.append([
            row["estimator"],
            row["verdict"],
            str(row["evaluations_per_estimate"]),
            f"{row['variance']:.3e}",
            "" if relative is None else f"{relative:.3g}",
            f"{row['seconds_per_million']:.3g}",
            f"{row['work_normalised_variance']:.3e}",
        ] + ([f"{row['draws_per_second_per_device']:.3g}"] if per_device else []))
    lines = _aligned(table, right={2, 3, 4, 5, 6, 7})
    lines.insert(1, "-" * max(len(line) for line in lines))
    if result["skipped"]:
        lines.append(f"(not applicable to this problem: {', '.join(result['skipped'])})")
    lines.append(
        f"verdict: Holm-adjusted z-test of the mean against the exact gradient, family-wise "
        f"false-failure rate {result['false_failure_rate']:g}, power 0.99 against a bias of "
        f"{result['detectable_bias']:.3g} (or 'underpowered')."
    )
    lines.append(f"{EVALUATIONS_NOTE}; variance: mean over coordinates of the variance of one "
                 "estimate; var x time: work-normalised variance (lower is better).")
    if per_device:
        lines.append(
            f"draws/s/device: samples of the distribution drawn per second on each of the "
            f"{result['devices']} devices (estimates x samples per estimate / time / devices)."
        )
    if any(row["variance_relative_to_reinforce"] is None for row in result["rows"]):
        reason = (
            "REINFORCE was not run (add reinforce to --estimators)"
            if result.get("reference_estimator") is None
            else "REINFORCE's variance is 0"
        )
        lines.append(f"vs REINFORCE is blank because {reason}.")
    return "\n".join(lines)


def write_plot(result: dict, path) -> None:
    """Draw ``plot_figure(result)`` into ``path`` (the format follows its suffix)."""
    figure = plot_figure(result)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_figure(result: dict):
    """Bars of the variance and the work-normalised variance as ratios to REINFORCE's, on a
    log axis centred on 1 (bars start at 1: left of it is better than REINFORCE), and the
    time per 10^6 estimates on a linear axis from 0."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency, only for --plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        from matplotlib import ticker  # noqa: PLC0415
    except ImportError as error:
        raise CommandError("--plot needs matplotlib: pip install 'fxgx[cli]'") from error
    rows = result["rows"]
    if any(row["variance_relative_to_reinforce"] is None for row in rows):
        raise CommandError("--plot needs a REINFORCE run with a variance above 0")
    names = [row["estimator"] for row in rows]
    positions = np.arange(len(names))
    colors = ["tab:blue" if row["unbiased_by_design"] else "tab:orange" for row in rows]
    panels = [
        ("variance_relative_to_reinforce", "variance / REINFORCE's"),
        ("work_normalised_variance_relative_to_reinforce", "(variance x time) / REINFORCE's"),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(15, 0.4 * len(names) + 2.0), sharey=True)
    for axis, (key, label) in zip(axes[:2], panels, strict=True):
        ratios = np.array([max(row[key] or 0.0, 1e-12) for row in rows])
        axis.barh(positions, ratios - 1.0, left=1.0, color=colors)
        axis.set_xscale("log")
        low = min(ratios.min(), 1.0) / 2.0
        high = max(ratios.max(), 1.0) * 2.0
        axis.set_xlim(low, high)
        axis.axvline(1.0, color="black", linewidth=1)
        for position, ratio in zip(positions, ratios, strict=True):
            axis.annotate(f"{ratio:.3g}", (ratio, position), xytext=(3 if ratio >= 1 else -3, 0),
                          textcoords="offset points", va="center",
                          ha="left" if ratio >= 1 else "right", fontsize=8)
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_xlabel(f"{label} (log scale)")
    axes[0].set_yticks(positions, names)
    axes[0].invert_yaxis()
    axes[2].barh(positions, [row["seconds_per_million"] for row in rows], color=colors)
    axes[2].set_xlim(left=0.0)
    axes[2].set_xlabel("seconds per 10^6 estimates")
    figure.suptitle(
        f"{result['problem']} on {result['backend']}, {result['estimates_per_estimator']} "
        "estimates each\nratios to REINFORCE: left of the line at 1 is better than REINFORCE "
        "(blue: unbiased by design, orange: biased)"
    )
    figure.tight_layout()
    return figure


def evaluations_text(card) -> str:
    """Evaluations of ``f`` per estimate: a number, or a formula in the latents' number ``D``
    and classes ``K`` where the cost grows with them (``"1 + 3 D"``, ``"2 x (D K)"``)."""
    if not card.cost_depends_on_latents:
        return str(card.evaluations_per_sample * card.num_samples)
    formula = card.cost_formula()
    return formula if card.num_samples == 1 else f"{card.num_samples} x ({formula})"


def format_list(cards) -> str:
    table = [["name", "family", "unbiased", "samples", "evals", "distributions"]]
    for card in cards:
        table.append([
            card.name,
            card.family,
            "yes" if card.unbiased else "no",
            str(card.num_samples),
            evaluations_text(card),
            ", ".join(card.distributions),
        ])
    lines = _aligned(table, right={3, 4})
    indent = " " * (max(len(row[0]) for row in table) + 2)
    output = [lines[0], "-" * max(len(line) for line in lines)]
    for card, line in zip(cards, lines[1:], strict=True):
        output.append(line)
        output.extend(textwrap.wrap(card.summary, width=max(len(line) for line in lines),
                                    initial_indent=indent, subsequent_indent=indent))
    output.append(
        "samples: samples per estimate as fxgx compare runs it (the card's test num_samples); "
        f"{EVALUATIONS_NOTE}."
    )
    return "\n".join(output)


def run_list(_arguments) -> None:
    print(format_list(catalogue.load_cards()))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fxgx", description="fxgx command line: test and compare gradient "
                     "estimators (fxgx compare) and list the catalogue (fxgx list).",
                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {package_version()}",
                        help="print the installed fxgx version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compare = commands.add_parser(
        "compare",
        help="test and compare every catalogued estimator on one problem",
        description="Test every catalogued estimator that applies to a problem against the "
        "exact gradient and compare variances and speed.",
        formatter_class=HelpFormatter,
    )
    compare.add_argument(
        "--backend", default="auto", choices=BACKEND_CHOICES,
        help="framework that runs the estimates; auto: tensorflow if installed, else jax",
    )
    compare.add_argument(
        "--problem", default=DEFAULT_PROBLEM, choices=PROBLEM_NAMES, metavar="NAME",
        help=f"built-in problem with an exact gradient: {', '.join(PROBLEM_NAMES)}",
    )
    compare.add_argument(
        "--estimators", default=None, metavar="A,B,...",
        help="comma-separated catalogue names (default: every one that applies; see fxgx list)",
    )
    compare.add_argument(
        "--samples", type=_integer(4), default=262144, metavar="N",
        help="independent gradient estimates per estimator (at least 4)",
    )
    compare.add_argument(
        "--chunk-size", type=_integer(2), default=65536, metavar="N",
        help="estimates per compiled call, bounds peak memory (at least 2)",
    )
    compare.add_argument(
        "--devices", type=_integer(1), default=None, metavar="N",
        help="run N chunks at once, one on each of the first N devices the framework sees, "
        "and report draws per second per device; chunk i still uses the i-th split of the "
        "seed, so the numbers equal one device's for the same seed and chunk size (default: "
        "one device). Simulate CPU devices with XLA_FLAGS=--xla_force_host_platform_device_"
        "count=N (JAX)",
    )
    compare.add_argument(
        "--seed", type=_integer(0, _LARGEST_SEED), default=0, metavar="N",
        help="random seed, an integer in [0, 2^63)",
    )
    compare.add_argument(
        "--dtype", default="float32", choices=["float32", "float64"],
        help="float type of the parameters and the estimators' arithmetic",
    )
    compare.add_argument(
        "--json", default=None, metavar="FILE",
        help="also write every number as JSON to FILE (default: no file)",
    )
    compare.add_argument(
        "--plot", default=None, metavar="FILE.png",
        help="also draw variance ratios to REINFORCE into FILE.png; needs matplotlib and "
        "reinforce among the estimators (default: no figure)",
    )
    commands.add_parser(
        "list",
        help="print the estimator catalogue",
        description="Print every catalogued estimator: family, unbiasedness, samples and "
        "function evaluations per estimate, supported distributions and a summary.",
        formatter_class=HelpFormatter,
    )
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # same numbers on every CPU
    try:
        arguments = build_parser().parse_args(argv)
        if arguments.command == "list":
            run_list(arguments)
            return 0
        plan = plan_compare(arguments)
        start = time.perf_counter()
        result = run_compare(plan, arguments)
        result["wall_seconds"] = time.perf_counter() - start
        print(format_table(result))
        try:
            if plan.json_path is not None:
                with open(plan.json_path, "w") as handle:
                    json.dump(result, handle, indent=2, allow_nan=True)
            if plan.plot_path is not None:
                write_plot(result, plan.plot_path)
        except OSError as error:
            raise CommandError(f"writing {error.filename}: {error.strerror}") from None
        print(f"done in {result['wall_seconds']:.1f} s", file=sys.stderr)
        return 0
    except CommandError as error:
        print(f"fxgx: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fxgx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout stopped (fxgx list | head)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
