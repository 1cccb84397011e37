"""The unbiasedness suite on every accelerator JAX sees, with draws per second.

Every catalogued estimator that applies is run through ``fxgx.testing.gradient_moments`` on
JAX (``jit``, chunked streaming moments) on the Bernoulli toy with ``D`` independent
coordinates (closed-form exact gradient; categorical estimators get the enumerated
categorical problem), until ``--total-draws`` Bernoulli draws are spent across the suite.
The chunks run on all visible devices at once (``devices=len(jax.devices())``; ``--devices``
takes fewer). Each row gives the Holm z-test verdict against the exact gradient, the
harness's draws per second in total and per device, and for REINFORCE and DisARM the draws
per second of a hand-fused JAX gradient of the same formula on the same devices
(``shard_map``, one chunk per device per call), timed in the same run (ratio = harness /
hand-fused; target >= 0.9).

    python benchmarks/gpu_check.py                      # 10^10 draws (accelerators)
    python benchmarks/gpu_check.py --total-draws 2e8    # a CPU smoke run
    XLA_FLAGS=--xla_force_host_platform_device_count=8 \
        python benchmarks/gpu_check.py --total-draws 2e8  # 8 simulated CPU devices
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime

import numpy as np


def hand_fused(jax, jnp, name):
    target = 0.45

    def objective(b):
        return jnp.sum(jnp.square(b - target), axis=-1)

    def reinforce(logits, key):
        p = jax.nn.sigmoid(logits)
        b = (jax.random.uniform(key, logits.shape, logits.dtype) < p).astype(logits.dtype)
        return jnp.sum(objective(b)[:, None] * (b - p), axis=0)

    def disarm(logits, key):
        u = jax.random.uniform(key, logits.shape, logits.dtype)
        p = jax.nn.sigmoid(logits)
        b = (u < p).astype(logits.dtype)
        antithetic = (1.0 - u < p).astype(logits.dtype)
        difference = 0.5 * (objective(b) - objective(antithetic))[:, None]
        gradient = (
            difference
            * (1.0 - 2.0 * antithetic)
            * (b != antithetic)
            * jax.nn.sigmoid(jnp.abs(logits))
        )
        return jnp.sum(gradient, axis=0)

    return {"reinforce": reinforce, "disarm": disarm}.get(name)


def on_all_devices(jax, reference, devices):
    """``reference(logits, key)`` run once per device at the same time: ``logits`` (one
    chunk) replicated, one key per device; returns ``(run, place)`` where ``place`` puts
    the inputs on the devices once and ``run`` takes the placed inputs."""
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.sharding.Mesh(np.asarray(devices, dtype=object), ("devices",))

    def per_device(logits, keys):
        return reference(logits, keys[0])[None]

    run = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(PartitionSpec(),
                  PartitionSpec("devices")), out_specs=PartitionSpec("devices")))

    def place(logits, keys):
        return (jax.device_put(logits, NamedSharding(mesh, PartitionSpec())),
                jax.device_put(keys, NamedSharding(mesh, PartitionSpec("devices"))))

    return run, place


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-draws", type=float, default=1e10)
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--draws-per-call", type=float, default=4e6,
                        help="draws per compiled call per accelerator (on CPU: in total)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--devices", type=int, default=None,
                        help="devices to use (default: every device JAX sees)")
    arguments = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from fxgx import catalogue
    from fxgx.estimators import reinforce
    from fxgx.problems import BernoulliToy, get_problem
    from fxgx.testing import check_unbiased, gradient_moments

    devices = jax.devices()[: arguments.devices or len(jax.devices())]
    num_devices = len(devices)
    device = devices[0]
    # Draws per compiled call per device: simulated CPU devices share the host's memory, so
    # there the budget of one call is split over them (the same peak memory as one device).
    draws_per_call = arguments.draws_per_call / (num_devices if device.platform == "cpu" else 1)
    dimension = arguments.dimension
    bernoulli = BernoulliToy(0.45, np.linspace(-2.0, 2.0, dimension))
    categorical = get_problem("categorical", backend="jax")
    # (label, estimator, num_samples, unbiased, supports Bernoulli, hand-fused reference name)
    entries = [
        (
            card.name,
            card.make(),
            card.num_samples,
            card.unbiased,
            card.supports("bernoulli"),
            card.name,
        )
        for card in catalogue.load_cards()
        if card.target == "expectation"
        and (card.supports("bernoulli") or card.supports("categorical"))
    ]
    position = 1 + [entry[0] for entry in entries].index("reinforce")
    entries.insert(
        position,
        (
            "reinforce(higher_order=False)",
            reinforce(higher_order=False),
            1,
            True,
            True,
            "reinforce",
        ),
    )
    per_estimator = arguments.total_draws / len(entries)
    print(
        f"devices: {num_devices} x {device.platform} {device.device_kind}; JAX "
        f"{jax.__version__}; {arguments.total_draws:.3g} draws over {len(entries)} estimators"
    )
    rows = []
    total_draws = 0
    start_all = time.perf_counter()
    for label, estimator, num_samples, unbiased, on_bernoulli, reference_name in entries:
        problem = bernoulli if on_bernoulli else categorical
        draws_per_estimate = num_samples * (
            dimension if problem is bernoulli else categorical.num_coordinates
        )
        chunk = max(2, int(draws_per_call // draws_per_estimate))
        estimates = max(2 * chunk * num_devices, int(per_estimator // draws_per_estimate))
        moments = gradient_moments(
            estimator,
            problem,
            num_estimates=estimates,
            seed=arguments.seed,
            backend="jax",
            num_samples=num_samples,
            chunk_size=chunk,
            devices=num_devices,
        )
        report = check_unbiased(moments, problem.exact_gradient(), false_failure_rate=1e-6)
        draws = moments.count * draws_per_estimate
        total_draws += draws
        row = {
            "estimator": label,
            "unbiased_by_design": unbiased,
            "verdict": ("pass" if report.passed else "FAIL")
            if unbiased
            else ("bias detected" if np.any(report.rejected) else "bias not detected"),
            "max_abs_z": report.max_abs_z,
            "draws": draws,
            "draws_per_second": draws / moments.seconds,
            "draws_per_second_per_device": draws / moments.seconds / num_devices,
            "compile_seconds": moments.compile_seconds,
        }
        reference = hand_fused(jax, jnp, reference_name)
        if reference is not None and problem is bernoulli and num_samples == 1:
            logits = jnp.broadcast_to(
                jnp.asarray(bernoulli.logits, jnp.float32), (chunk, dimension)
            )
            compiled, place = on_all_devices(jax, reference, devices)
            calls = [
                place(logits, jax.random.split(jax.random.fold_in(jax.random.key(1), index),
                                               num_devices))
                for index in range(10)
            ]
            compiled(*calls[0]).block_until_ready()  # compile outside the timing
            timings = []
            for placed in calls[1:]:
                begin = time.perf_counter()
                compiled(*placed).block_until_ready()
                timings.append(time.perf_counter() - begin)
            seconds = sorted(timings)[len(timings) // 2]  # median call
            row["hand_fused_draws_per_second"] = num_devices * chunk * dimension / seconds
            row["ratio"] = row["draws_per_second"] / row["hand_fused_draws_per_second"]
        rows.append(row)
        print(
            f"  {label:<30} {row['verdict']:<18} max|z|={row['max_abs_z']:6.2f} "
            f"{row['draws_per_second']:.3g} draws/s "
            f"({row['draws_per_second_per_device']:.3g}/device)"
            + (
                f"  hand-fused {row['hand_fused_draws_per_second']:.3g}  ratio {row['ratio']:.2f}"
                if "ratio" in row
                else ""
            ),
            flush=True,
        )
    wall = time.perf_counter() - start_all
    failures = [
        row["estimator"] for row in rows if row["unbiased_by_design"] and row["verdict"] != "pass"
    ]
    print(
        f"total {total_draws:.3g} draws in {wall:.1f} s on {num_devices} device(s) "
        f"({total_draws / wall / num_devices:.3g} draws/s per device, wall clock with "
        f"compilation); unbiased failures: {failures or 'none'}"
    )
    if arguments.json:
        with open(arguments.json, "w") as handle:
            json.dump(
                {
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": " ".join(["python", "benchmarks/gpu_check.py", *(
                        argv if argv is not None else sys.argv[1:])]),
                    "xla_flags": os.environ.get("XLA_FLAGS", ""),
                    "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                "load_average_at_end": os.getloadavg()},
                    "versions": {"python": platform.python_version(), "jax": jax.__version__},
                    "device": str(device),
                    "devices": num_devices,
                    "rows": rows,
                    "total_draws": total_draws,
                    "wall_seconds": wall,
                },
                handle,
                indent=2,
            )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
