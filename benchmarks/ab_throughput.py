"""Same-run A/B of two source trees of fxgx on ``estimator_throughput.py``'s rows.

Each row is one compiled fxgx gradient (a Bernoulli card's estimator, or
``reinforce(higher_order=False)``; logits ``[batch, D]``; TensorFlow under XLA or JAX under
``jit``), built by ``estimator_throughput.fxgx_gradient_call`` -- the same row code for both
sides, this checkout's ``benchmarks/``; only the fxgx it imports differs. The baseline
(``--baseline REV``, default 157b1be, the code before the framework layer) is exported with
``git archive`` (``src/`` and ``estimators/``) into a temporary folder; the candidate is this
working tree (or ``--candidate REV``, exported the same way). Two long-lived worker
processes start, one per tree (``PYTHONPATH=<tree>/src``; each reports the ``fxgx.__file__``
it imported, and the run stops unless each is its own tree's), and both run both backends'
rows, as ``estimator_throughput.py`` does in one process. A controller talks to them over
pipes (one JSON line per request and per answer). For each (backend, estimator) row both
workers compile and warm up the call, then the controller asks A and B in turn
(A B, B A, A B, ...) to time one call each, ``--repeats`` times: only one worker computes at
a time, so they never compete for the cores, and a change of load hits both. The table
gives the medians of the wall and of the process CPU time (all threads of the worker) per
call, old and new, and ``new / old``; a row whose ratio is above 1.05 is flagged. Each worker
also fingerprints XLA's optimized HLO of its row (``benchmark_environment.program_fingerprint``:
the instructions, without names, metadata and stack frames): "same" means both trees compile
the row to the same program, so their times can differ only by noise.

Writes ``benchmarks/results/framework_layer_ab.json`` (the machine, the versions, the date,
the load average, the arguments, both revisions' commits and ``fxgx.__file__``, the rows
with every timed call).

    python benchmarks/ab_throughput.py [--baseline 157b1be] [--candidate REV]
        [--batch 4096] [--dimension 256] [--repeats 15] [--backends tensorflow,jax]
        [--estimators reinforce,arm] [--json FILE | --no-json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

import benchmark_environment  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
DEFAULT_JSON = HERE / "results" / "framework_layer_ab.json"
DEFAULT_BASELINE = "157b1be"
THRESHOLD = 1.05
BACKEND_LABELS = {"tensorflow": "tensorflow-xla", "jax": "jax-jit"}
PACKAGES = ("tensorflow", "tensorflow-probability", "jax", "jaxlib", "numpy")


# ------------------------------------------------------------------------- the worker


def worker() -> int:
    """Answer the controller's requests, one JSON line each, until ``quit``. The protocol
    has the process's real stdout to itself; anything else printed goes to stderr."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import estimator_throughput

    calls = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = handle(request, calls, estimator_throughput)
        except Exception as error:
            answer = {"error": f"{type(error).__name__}: {error}",
                      "traceback": traceback.format_exc()}
        protocol.write(json.dumps(answer) + "\n")
        if request["op"] == "quit":
            break
    return 0


def handle(request, calls, estimator_throughput) -> dict:
    """One request: ``hello``, ``prepare`` (build, compile and warm up a row's call),
    ``time`` (one call: wall and CPU seconds), ``release`` or ``quit``."""
    operation = request["op"]
    if operation == "hello":
        import fxgx

        return {
            "fxgx_file": str(Path(fxgx.__file__).resolve()),
            "fxgx_version": getattr(fxgx, "__version__", None),
            "pid": os.getpid(),
            "estimators": [[label, samples] for label, _, samples, _
                           in estimator_throughput.estimator_entries(None)],
        }
    if operation == "prepare":
        call, num_samples = estimator_throughput.fxgx_gradient_call(
            request["backend"], request["estimator"], request["batch"], request["dimension"])
        compile_seconds, _ = benchmark_environment.timed_with_cpu(call)
        for _ in range(request["warmup"]):
            call()
        calls.clear()
        calls["row"] = call
        program = getattr(call, "program", None)
        return {"num_samples": num_samples, "compile_seconds": compile_seconds,
                "program": None if program is None
                else benchmark_environment.program_fingerprint(program())}
    if operation == "time":
        wall, cpu = benchmark_environment.timed_with_cpu(calls["row"])
        return {"wall": wall, "cpu": cpu}
    if operation == "release":
        calls.clear()
        gc.collect()
        return {}
    if operation == "quit":
        return {}
    raise ValueError(f"unknown request {operation!r}")


# ---------------------------------------------------------------------- the controller


def git(*arguments: str) -> str:
    return subprocess.run(["git", "-C", str(REPOSITORY), *arguments], capture_output=True,
                          text=True, check=True).stdout.strip()


def export_tree(revision: str, folder: Path) -> dict:
    """``src/`` and ``estimators/`` (the catalogue's cards) of ``revision``, by
    ``git archive``, under ``folder``; its description."""
    try:
        commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"unknown revision {revision!r}: {error.stderr.strip()}") from error
    folder.mkdir(parents=True)
    archive = folder.with_suffix(".tar")
    git("archive", "--format=tar", "-o", str(archive), commit, "src", "estimators")
    with tarfile.open(archive) as handle:
        handle.extractall(folder, filter="data")
    archive.unlink()
    return {"revision": revision, "commit": commit, "tree": str(folder), "exported": True}


def working_tree() -> dict:
    """This checkout, as it is: its ``HEAD`` and whether ``src/`` or ``estimators/`` differ."""
    changes = git("status", "--porcelain", "--", "src", "estimators")
    return {"revision": "working tree", "commit": git("rev-parse", "HEAD"),
            "dirty": bool(changes), "tree": str(REPOSITORY), "exported": False}


class Worker:
    """One long-lived worker process importing fxgx from ``tree/src``."""

    def __init__(self, name: str, tree: Path, log: Path):
        self.name, self.tree, self.log = name, tree, log
        environment = dict(os.environ, PYTHONPATH=str(tree / "src"))
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.log_handle = open(log, "w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log_handle,
            text=True, encoding="utf-8", env=environment, cwd=str(log.parent),
        )

    def ask(self, operation: str, **fields) -> dict:
        self.process.stdin.write(json.dumps({"op": operation, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(f"worker {self.name} exited ({self.process.returncode}):\n{tail}")
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(answer, self.name)
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask("quit")
            except (SystemExit, WorkerError, OSError):
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_handle.close()


class WorkerError(Exception):
    """A request that raised in a worker (``side``: which); the worker goes on."""

    def __init__(self, answer, side):
        super().__init__(answer["error"])
        self.answer, self.side = answer, side


def measure_row(workers, backend, label, arguments) -> dict:
    """Both workers build, compile and warm up the row's call; then ``repeats`` rounds, the
    order alternating (A B, B A, ...); the medians and every timed call."""
    prepared = {}
    for name, worker_ in workers.items():
        prepared[name] = worker_.ask("prepare", backend=backend, estimator=label,
                                     batch=arguments.batch, dimension=arguments.dimension,
                                     warmup=arguments.warmup)
    order = list(workers)
    walls = {name: [] for name in workers}
    cpus = {name: [] for name in workers}
    for repeat in range(arguments.repeats):
        for name in (order if repeat % 2 == 0 else order[::-1]):
            answer = workers[name].ask("time")
            walls[name].append(answer["wall"])
            cpus[name].append(answer["cpu"])
    for worker_ in workers.values():
        worker_.ask("release")
    median = statistics.median
    row = {"backend": BACKEND_LABELS[backend], "estimator": label,
           "num_samples": prepared["candidate"]["num_samples"]}
    for name, side in (("baseline", "old"), ("candidate", "new")):
        row[f"{side}_ms"] = 1e3 * median(walls[name])
        row[f"{side}_cpu_ms"] = 1e3 * median(cpus[name])
        row[f"{side}_compile_s"] = prepared[name]["compile_seconds"]
    row["same_program"] = (prepared["baseline"]["program"] is not None
                           and prepared["baseline"]["program"] == prepared["candidate"]["program"])
    row["ratio"] = row["new_ms"] / row["old_ms"]
    row["cpu_ratio"] = row["new_cpu_ms"] / row["old_cpu_ms"]
    row["slower"] = row["ratio"] > THRESHOLD
    row["cpu_slower"] = row["cpu_ratio"] > THRESHOLD
    row["old_walls"], row["new_walls"] = walls["baseline"], walls["candidate"]
    row["old_cpus"], row["new_cpus"] = cpus["baseline"], cpus["candidate"]
    return row


HEADER = (f"{'backend':<15} {'estimator':<30} {'S':>2} {'old ms':>9} {'new ms':>9} "
          f"{'new/old':>7} {'old cpu':>9} {'new cpu':>9} {'new/old':>7} {'program':>8}  flag")


def print_row(row) -> None:
    if "error" in row:
        print(f"{row['backend']:<15} {row['estimator']:<30} error in the {row['side']}: "
              f"{row['error']}", flush=True)
        return
    flags = [name for name, key in (("wall", "slower"), ("cpu", "cpu_slower")) if row[key]]
    print(
        f"{row['backend']:<15} {row['estimator']:<30} {row['num_samples']:>2} "
        f"{row['old_ms']:>9.2f} {row['new_ms']:>9.2f} {row['ratio']:>7.3f} "
        f"{row['old_cpu_ms']:>9.2f} {row['new_cpu_ms']:>9.2f} {row['cpu_ratio']:>7.3f} "
        f"{'same' if row['same_program'] else 'changed':>8}  "
        f"{'> 1.05 (' + ', '.join(flags) + ')' if flags else ''}",
        flush=True,
    )


def select_estimators(arguments, answers) -> list[str]:
    """The candidate's labels (in its order), restricted to ``--estimators``; a label that
    one tree lacks is an error."""
    labels = [label for label, _ in answers["candidate"]["estimators"]]
    baseline = {label for label, _ in answers["baseline"]["estimators"]}
    if arguments.estimators is None:
        selected = labels
    else:
        selected = [name.strip() for name in arguments.estimators.split(",") if name.strip()]
        unknown = sorted(set(selected) - set(labels))
        if unknown:
            raise SystemExit(f"--estimators: unknown {', '.join(unknown)}; choose from "
                             f"{', '.join(labels)}")
    missing = [label for label in selected if label not in baseline]
    if missing:
        print(f"not in the baseline (skipped): {', '.join(missing)}")
    return [label for label in selected if label in baseline]


def controller(arguments) -> int:
    backends = [name.strip() for name in arguments.backends.split(",") if name.strip()]
    unknown = sorted(set(backends) - set(BACKEND_LABELS))
    if unknown:
        raise SystemExit(f"--backends: unknown {', '.join(unknown)}; choose from tensorflow, jax")
    started = datetime.now(UTC)
    machine = benchmark_environment.machine()
    with tempfile.TemporaryDirectory(prefix="fxgx-ab-") as temporary:
        temporary = Path(temporary)
        trees = {"baseline": export_tree(arguments.baseline, temporary / "baseline")}
        trees["candidate"] = (working_tree() if arguments.candidate is None
                              else export_tree(arguments.candidate, temporary / "candidate"))
        workers = {}
        try:
            for name in ("baseline", "candidate"):
                workers[name] = Worker(name, Path(trees[name]["tree"]),
                                       temporary / f"{name}.log")
            answers = {name: worker_.ask("hello") for name, worker_ in workers.items()}
            for name, answer in answers.items():
                trees[name].update(fxgx_file=answer["fxgx_file"],
                                   fxgx_version=answer["fxgx_version"], pid=answer["pid"])
                expected = (Path(trees[name]["tree"]) / "src").resolve()
                if not Path(answer["fxgx_file"]).is_relative_to(expected):
                    raise SystemExit(f"the {name} worker imported {answer['fxgx_file']}, "
                                     f"not fxgx from {expected}")
            labels = select_estimators(arguments, answers)
            print_header(arguments, trees, machine)
            rows = []
            for backend in backends:
                for label in labels:
                    try:
                        row = measure_row(workers, backend, label, arguments)
                    except WorkerError as error:
                        row = {"backend": BACKEND_LABELS[backend], "estimator": label,
                               "error": str(error), "side": error.side,
                               "traceback": error.answer.get("traceback")}
                        for worker_ in workers.values():
                            try:
                                worker_.ask("release")
                            except WorkerError:
                                pass
                    rows.append(row)
                    print_row(row)
        finally:
            for worker_ in workers.values():
                worker_.close()
    load_end = list(os.getloadavg())
    summarize(rows, load_end)
    if not arguments.no_json:
        write_json(arguments, backends, started, machine, load_end, trees, rows)
    return 0


def print_header(arguments, trees, machine) -> None:
    for name, side in (("baseline", "old"), ("candidate", "new")):
        tree = trees[name]
        state = " (uncommitted changes in src/ or estimators/)" if tree.get("dirty") else ""
        print(f"{side} = {name} {tree['revision']} = {tree['commit'][:12]}{state}: "
              f"fxgx {tree['fxgx_version']} from {tree['fxgx_file']} (pid {tree['pid']})")
    print(
        f"batch {arguments.batch} x D {arguments.dimension}; ms per call, median of "
        f"{arguments.repeats} calls of each side, alternating (A B, B A, ...) after "
        f"{arguments.warmup} warm-up calls; load average "
        f"{', '.join(f'{value:.2f}' for value in machine['load_average'])}"
    )
    print(HEADER, flush=True)


def summarize(rows, load_end) -> None:
    measured = [row for row in rows if "error" not in row]
    slower = [row for row in measured if row["slower"]]
    cpu_slower = [row for row in measured if row["cpu_slower"]]
    print(f"new/old: the candidate's median time over the baseline's (above {THRESHOLD}: "
          f"flagged); cpu: the same with process CPU times; load average at the end "
          f"{', '.join(f'{value:.2f}' for value in load_end)}")
    if measured:
        worst = max(measured, key=lambda row: row["ratio"])
        print(f"{len(slower)} of {len(measured)} rows above {THRESHOLD} by the wall clock, "
              f"{len(cpu_slower)} by CPU time; the largest wall ratio "
              f"{worst['ratio']:.3f} ({worst['backend']} {worst['estimator']})")
        same = [row for row in measured if row["same_program"]]
        print(f"program: 'same' where XLA's optimized HLO of the two trees has the same "
              f"instructions ({len(same)} of {len(measured)} rows): there the two times "
              "differ by noise alone")
    errors = len(rows) - len(measured)
    if errors:
        print(f"{errors} rows failed (see the error lines)")


def write_json(arguments, backends, started, machine, load_end, trees, rows) -> None:
    command = "python benchmarks/ab_throughput.py " + " ".join(
        f"--{name} {getattr(arguments, name)}"
        for name in ("baseline", "batch", "dimension", "repeats", "backends")
    ) + "".join(f" --{name} {getattr(arguments, name)}" for name in ("candidate", "estimators")
                if getattr(arguments, name) is not None)
    machine = dict(machine)
    machine["load_average_start"] = machine.pop("load_average")
    machine["load_average_end"] = load_end
    revisions = {name: {key: value for key, value in tree.items() if key not in ("tree", "pid")}
                 for name, tree in trees.items()}
    document = {
        "benchmark": "framework_layer_ab",
        "command": command,
        "date": started.isoformat(timespec="seconds"),
        "arguments": {"baseline": arguments.baseline, "candidate": arguments.candidate,
                      "batch": arguments.batch, "dimension": arguments.dimension,
                      "repeats": arguments.repeats, "warmup": arguments.warmup,
                      "backends": backends, "estimators": arguments.estimators},
        "machine": machine,
        "versions": benchmark_environment.versions(PACKAGES),
        "revisions": revisions,
        "threshold": THRESHOLD,
        "rows": rows,
    }
    benchmark_environment.write_json(document, arguments.json)
    print(f"wrote {arguments.json}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help="the old revision (default: %(default)s)")
    parser.add_argument("--candidate", default=None,
                        help="the new revision (default: this working tree, as it is)")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15,
                        help="timed calls of each side per row (alternating); the median is kept")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed calls of each side after compiling (default: %(default)s)")
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--estimators", default=None,
                        help="comma-separated labels (default: every Bernoulli card)")
    parser.add_argument("--json", default=str(DEFAULT_JSON),
                        help="where to write the results (default: %(default)s)")
    parser.add_argument("--no-json", action="store_true", help="write no JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.worker:
        return worker()
    return controller(arguments)


if __name__ == "__main__":
    raise SystemExit(main())
