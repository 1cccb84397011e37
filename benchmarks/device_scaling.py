"""Throughput of ``fxgx.testing.gradient_moments`` on one device and on N simulated devices.

Each configuration runs in its own child Python, because the number of simulated devices is
fixed when the framework starts: one device is a plain process (``devices=None``); N devices
is a process started with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (JAX) or
with N logical CPU devices (TensorFlow), drawing with ``devices=N``. The workload is
REINFORCE (``reinforce(higher_order=False)``) on the Bernoulli toy with ``D`` coordinates,
the same seed and chunk size in every run, so every run draws the same estimates (the
children report their means, and the script checks they agree). Runs alternate between the
configurations (``--repeats`` rounds) so that a change of load on a shared machine hits
both; the medians are reported with the load average.

On a CPU the simulated devices share the real cores: the question is only whether splitting
the chunks over them costs throughput (issue 11 asks for "not worse than one device"). On a
machine with several accelerators the same script shows the scaling.

    python benchmarks/device_scaling.py                      # JAX, 1 vs 8 devices
    python benchmarks/device_scaling.py --backend tensorflow

Writes ``benchmarks/results/device_scaling.json`` (machine, versions, date, command), one
entry per backend (a run replaces its backend's entry and keeps the other).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

CHILD = r"""
import json, sys, time
backend = sys.argv[1]
devices, dimension, chunk, estimates = (int(value) for value in sys.argv[2:6])
if backend == "tensorflow" and devices > 1:
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
import numpy as np
from fxgx.estimators import reinforce
from fxgx.problems import BernoulliToy
from fxgx.testing import gradient_moments
problem = BernoulliToy(0.45, np.linspace(-2.0, 2.0, dimension))
start = time.perf_counter()
moments = gradient_moments(
    reinforce(higher_order=False), problem, num_estimates=estimates, seed=0, backend=backend,
    chunk_size=chunk, devices=None if devices == 1 else devices)
wall = time.perf_counter() - start
print("RESULT " + json.dumps({
    "devices": moments.num_devices, "estimates": moments.count,
    "draws_per_second": moments.count * dimension / moments.seconds,
    "draws_per_second_per_device":
        moments.count * dimension / moments.seconds / moments.num_devices,
    "seconds": moments.seconds, "compile_seconds": moments.compile_seconds,
    "wall_seconds": wall, "mean_first_coordinates": moments.mean[:4].tolist()}))
"""


def run_child(backend: str, devices: int, arguments) -> dict:
    """One configuration in a fresh process; its ``RESULT`` line as a dict."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environment.pop("XLA_FLAGS", None)
    if backend == "jax" and devices > 1:
        environment["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    source = str(Path(__file__).resolve().parents[1] / "src")
    environment["PYTHONPATH"] = os.pathsep.join(
        [source] + [part for part in [os.environ.get("PYTHONPATH")] if part])
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, backend, str(devices), str(arguments.dimension),
         str(arguments.chunk_size), str(arguments.estimates)],
        capture_output=True, text=True, env=environment, check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"the child with {devices} device(s) failed:\n{completed.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def versions(backend: str) -> dict:
    """Python and the packages the measurement depends on."""
    found = {"python": platform.python_version()}
    for package in ["fxgx", "numpy", "jax", "jaxlib"] if backend == "jax" else [
            "fxgx", "numpy", "tensorflow"]:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="jax", choices=["jax", "tensorflow"])
    parser.add_argument("--devices", type=int, default=8, help="simulated devices to compare")
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--estimates", type=int, default=2048 * 64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--json", default=str(Path(__file__).resolve().parent / "results" /
                              "device_scaling.json"))
    arguments = parser.parse_args(argv)

    configurations = [1, arguments.devices]
    runs = {devices: [] for devices in configurations}
    load_before = os.getloadavg()
    for repeat in range(arguments.repeats):
        for devices in configurations:
            result = run_child(arguments.backend, devices, arguments)
            runs[devices].append(result)
            print(f"repeat {repeat + 1}: {devices} device(s): "
                  f"{result['draws_per_second']:.3g} draws/s in total, "
                  f"{result['draws_per_second_per_device']:.3g} per device "
                  f"(compile {result['compile_seconds']:.2f} s)", flush=True)
    load_after = os.getloadavg()
    means = {tuple(run["mean_first_coordinates"]) for group in runs.values() for run in group}
    summary = {
        str(devices): {
            "median_draws_per_second": statistics.median(
                run["draws_per_second"] for run in group),
            "median_draws_per_second_per_device": statistics.median(
                run["draws_per_second_per_device"] for run in group),
            "median_compile_seconds": statistics.median(run["compile_seconds"] for run in group),
            "runs": group,
        }
        for devices, group in runs.items()
    }
    ratio = (summary[str(arguments.devices)]["median_draws_per_second"]
             / summary["1"]["median_draws_per_second"])
    print(f"{arguments.devices} devices / 1 device, total draws per second (medians): "
          f"{ratio:.2f}; the same estimates in every run: {len(means) == 1}; load average "
          f"{load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} cores")
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/device_scaling.py", *(argv or sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "load_average_before": load_before,
                    "load_average_after": load_after},
        "versions": versions(arguments.backend),
        "backend": arguments.backend,
        "workload": {"estimator": "reinforce(higher_order=False)", "problem": "bernoulli_toy",
                     "dimension": arguments.dimension, "chunk_size": arguments.chunk_size,
                     "estimates": arguments.estimates, "repeats": arguments.repeats},
        "same_estimates_in_every_run": len(means) == 1,
        "ratio_total_draws_per_second": ratio,
        "results": summary,
    }
    path = Path(arguments.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous[arguments.backend] = record
    path.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
