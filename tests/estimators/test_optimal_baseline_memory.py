"""Peak memory of ``optimal_baseline`` grows linearly in the number of samples ``S``.

Its leave-one-out sums were once taken with an ``S x S`` mask: 5e5 samples asked for 1.8 TiB.
Each measurement runs in a fresh subprocess, as in ``tests/testing/test_memory.py``: warm up
(imports, one compiled call at a small ``S``), reset the kernel's peak-RSS mark
(``/proc/self/clear_refs``), run one compiled gradient at ``S``, read ``VmHWM``. From
``S = 2^18`` to ``2^20`` (4x) the growth of the peak must stay below 6x (linear: 4x; the
mask's quadratic growth would be 16x, and its ``2^18`` mask alone is 256 GiB) and the peak at
``2^20`` below 1.5 GiB above the starting RSS. Deterministic up to allocator noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MEBIBYTE = 2**20

SCRIPT = """
import json, sys
import jax, jax.numpy as jnp
from fxgx.distributions import Bernoulli
from fxgx.estimators import optimal_baseline

def peak():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

estimator = optimal_baseline()
weights = jnp.linspace(-1.0, 1.0, 8)

def gradient(logits, num_samples):
    return jax.grad(lambda value: estimator(
        lambda z: (z @ weights - 0.3) ** 2, Bernoulli(value, event_ndims=1), seed=0,
        num_samples=num_samples))(logits)

count = int(sys.argv[1])
logits = jnp.zeros(8)
jax.block_until_ready(jax.jit(gradient, static_argnums=1)(logits, 1024))  # warm-up
compiled = jax.jit(gradient, static_argnums=1).lower(logits, count).compile()
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
start = peak()
jax.block_until_ready(compiled(logits))
print(json.dumps({"start": start, "peak": peak()}))
"""


def _measure(count):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run([sys.executable, "-c", SCRIPT, str(count)], capture_output=True,
                               text=True, timeout=300, env=environment, check=False)
    if "clear_refs" in completed.stderr:
        pytest.skip("cannot reset the peak-RSS mark (/proc/self/clear_refs) on this system")
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return result["peak"] - result["start"]


@pytest.mark.slow  # a subprocess memory measurement; CI runs the slow set
def test_optimal_baseline_memory_is_linear_in_the_number_of_samples():
    pytest.importorskip("jax")
    small, large = _measure(2**18), _measure(2**20)
    report = (f"peak growth {small / MEBIBYTE:.0f} MiB at S = 2^18, "
              f"{large / MEBIBYTE:.0f} MiB at S = 2^20")
    print(report)
    assert large < 6 * max(small, 8 * MEBIBYTE), report
    assert large < 1536 * MEBIBYTE, report
