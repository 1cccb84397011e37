"""The leave-one-out optimal baseline (``fxgx.estimators.optimal_baseline``): its exact
variance on the Bernoulli toy against REINFORCE-LOO's, degenerate probabilities, other
distributions, and peak memory linear in the number of samples.

The tests it shares with the other baselines (every execution mode, ``jax.vmap``, ``f`` never
differentiated, bad input) are in ``test_baselines.py``; ``test_catalogue.py`` tests it
against the exact gradient of every problem its card names.

Statistical tests, their false-failure rates and power:

- Exact variance (``assert_variance``): two-sided z-test of the sample variance of 2^18
  estimates against the exact variance by enumerating the ``2^S`` sample tuples (numpy
  float64, ``exact_score_function_moments``), standard error from the fourth moment,
  false-failure rate 1e-5. The test first checks that it would detect a 5 % error in the
  variance with probability 0.99 (``_assert_variance_with_power``). The same draws check the
  mean against the exact gradient (``assert_unbiased``, 1e-5, power 0.99 for a bias of
  0.005).

Peak memory (slow set): the leave-one-out sums were once taken with an ``S x S`` mask: 5e5
samples asked for 1.8 TiB. Each measurement runs in a fresh subprocess, as in
``tests/testing/test_memory.py``: warm up (imports, one compiled call at a small ``S``), reset
the kernel's peak-RSS mark (``/proc/self/clear_refs``), run one compiled gradient at ``S``,
read ``VmHWM``. From ``S = 2^18`` to ``2^20`` (4x) the growth of the peak must stay below 6x
(linear: 4x; the mask's quadratic growth would be 16x, and its ``2^18`` mask alone is
256 GiB) and the peak at ``2^20`` below 1.5 GiB above the starting RSS. Deterministic up to
allocator noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from support import RULES, TARGET, exact_score_function_moments
from support import assert_variance_with_power as _assert_variance_with_power

from fxgx.distributions import Bernoulli, Normal, OneHotCategorical
from fxgx.estimators import optimal_baseline
from fxgx.problems import BernoulliToy
from fxgx.testing import assert_unbiased, gradient_moments

FALSE_FAILURE_RATE = 1e-5
NUM_ESTIMATES = 2**18


# Compares the optimal baseline's exact variance with REINFORCE-LOO's.
@pytest.mark.jax_in_slow_set
@pytest.mark.parametrize("logit, num_samples", [(-2.0, 3), (1.0, 8)])
def test_optimal_baseline_exact_variance(backend, logit, num_samples):
    """The leave-one-out optimal baseline matches its own exact variance, which differs
    from REINFORCE-LOO's by more than the test resolves (so the formula is pinned down).
    At S = 3 the plug-in coefficient's noise makes it worse than LOO; at S = 8 it wins."""
    mean, variance = exact_score_function_moments(logit, num_samples, RULES["optimal"])
    _, leave_one_out_variance = exact_score_function_moments(
        logit, num_samples, RULES["leave_one_out"]
    )
    assert mean == pytest.approx(BernoulliToy(TARGET, logit).exact_gradient()[0], rel=1e-12)
    assert abs(variance - leave_one_out_variance) > 0.1 * variance
    if num_samples >= 8:
        assert variance < leave_one_out_variance
    moments = gradient_moments(
        optimal_baseline(), BernoulliToy(TARGET, logit), num_estimates=NUM_ESTIMATES,
        seed=42, backend=backend.name, dtype="float32", num_samples=num_samples,
    )
    _assert_variance_with_power(moments, variance)
    assert_unbiased(moments, [mean], false_failure_rate=FALSE_FAILURE_RATE,
                    detectable_bias=0.005)


@pytest.mark.jax_in_slow_set
def test_optimal_baseline_survives_degenerate_probabilities(framework):
    """With logits +-100 every score is 0 in float32: the fallback keeps the gradient
    finite (and 0, the exact value)."""
    logits = framework.constant([[100.0, -100.0]])

    def surrogate(value):
        return optimal_baseline()(lambda samples: samples[..., 0] * 3.0 + samples[..., 1],
                                  Bernoulli(value, event_ndims=1), seed=0, num_samples=3)

    _, (gradient,) = framework.value_and_vjp(surrogate, logits)
    np.testing.assert_array_equal(gradient, 0.0)


@pytest.mark.jax_in_slow_set
def test_optimal_baseline_supports_categorical_and_normal(framework):
    categorical = OneHotCategorical(framework.constant([[0.1, 0.5, -0.2], [0.0, 1.0, 0.3]]))
    normal = Normal(framework.constant([0.3, -0.1]), framework.constant([0.8, 1.5]))
    for distribution, function in (
        (categorical, lambda z: z[..., 1] * 2.0 + z[..., 2]),
        (normal, lambda z: z * z),
    ):
        value = optimal_baseline()(function, distribution, seed=1, num_samples=4)
        assert framework.numpy(value).shape == (2,)


def test_optimal_baseline_rejects_distributions_without_a_closed_form_score():
    tfp = pytest.importorskip("tensorflow_probability")
    poisson = tfp.distributions.Poisson(rate=[1.0, 2.0])
    with pytest.raises(TypeError, match="Poisson"):
        optimal_baseline()(lambda z: z, poisson, seed=0, num_samples=2)


# ------------------------------------------------------------------------- peak memory

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
