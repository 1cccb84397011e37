"""Peak memory of ``gradient_moments`` does not grow with the number of estimates.

Each measurement runs in a fresh subprocess. The subprocess warms up (imports, one compiled
run), resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), runs
``gradient_moments``, and reads the peak resident set size ``VmHWM`` from
``/proc/self/status``. ``ru_maxrss`` is not used, for two reasons. First, after fork and exec
it starts at the parent's RSS, so when pytest has loaded TensorFlow (about 1 GiB) the child
reports about 1 GiB whatever it does. Second, it keeps peaks recorded by exited threads,
which no reset clears. Without the reset, the peak would be that of importing and compiling,
which would hide a leak of hundreds of MiB.

10^5 and 10^7 estimates of REINFORCE on the 3-coordinate Bernoulli toy, in chunks of 65536
(the same compiled shape), must peak within 64 MiB of each other. Keeping every estimate
instead (10^7 x 3 float64 = 229 MiB) would exceed that, and the last check shows that the
measurement sees such an allocation. Deterministic up to allocator noise; no statistics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MEBIBYTE = 2**20
TOLERANCE = 64 * MEBIBYTE

SCRIPT = """
import json, resource, sys
import numpy as np
from fxgx.estimators import reinforce
from fxgx.problems import get_problem
from fxgx.testing import gradient_moments

def status(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB

def peak():
    return status("VmHWM")  # the peak RSS that clear_refs resets (see the module docstring)

backend, count, control = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "control"
problem = get_problem("bernoulli_toy")
problem.exact_gradient()  # enumeration/closed form, outside the measured window

def run(num_estimates):
    return gradient_moments(reinforce(), problem, num_estimates=num_estimates, seed=1,
                            backend=backend, chunk_size=65536)

run(65536)  # warm-up: imports, first compilation, allocator pools
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak-RSS mark to the current RSS
start = peak()
moments = run(count)
result = {"count": moments.count, "start": start, "peak": peak(),
          "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
if control:
    # What a harness that kept every estimate (float64) would hold at the end.
    kept = np.ones((count, problem.num_coordinates))
    result["peak_with_every_estimate"] = peak()
    result["kept_bytes"] = kept.nbytes
print(json.dumps(result))
"""


def start_measurement(backend, count, control=False):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, backend, str(count), "control" if control else "plain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )


def finish_measurement(process):
    stdout, stderr = process.communicate(timeout=300)
    if "clear_refs" in stderr:
        pytest.skip("cannot reset the peak-RSS mark (/proc/self/clear_refs) on this system")
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def check_flat(backend):
    # The two subprocesses run side by side; each measures only its own memory.
    processes = [start_measurement(backend, 10**5), start_measurement(backend, 10**7, True)]
    try:
        small, large = (finish_measurement(process) for process in processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert small["count"] == 10**5 and large["count"] == 10**7
    growth = large["peak"] - small["peak"]
    report = (
        f"{backend}: peak RSS {small['peak'] / MEBIBYTE:.0f} MiB at 1e5 estimates, "
        f"{large['peak'] / MEBIBYTE:.0f} MiB at 1e7 (growth {growth / MEBIBYTE:.1f} MiB; "
        f"RSS before the runs {small['start'] / MEBIBYTE:.0f} and "
        f"{large['start'] / MEBIBYTE:.0f} MiB; ru_maxrss {small['ru_maxrss'] / MEBIBYTE:.0f} "
        f"and {large['ru_maxrss'] / MEBIBYTE:.0f} MiB)"
    )
    print(report)  # shown by pytest -rA
    assert growth < TOLERANCE, report
    # The instrument can see an O(n) store: holding every estimate pushes the peak far past
    # the tolerance.
    seen = large["peak_with_every_estimate"] - large["peak"]
    assert large["kept_bytes"] > 3 * TOLERANCE
    assert seen > TOLERANCE, (seen, report)


def test_peak_memory_is_flat_in_the_number_of_estimates_jax():
    check_flat("jax")


@pytest.mark.slow
def test_peak_memory_is_flat_in_the_number_of_estimates_tensorflow():
    check_flat("tensorflow")
