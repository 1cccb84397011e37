"""``fxgx.vi.fit``'s compiled loop: resuming, ``trace_fn``, the convergence criterion, AutoGraph,
blocks that do not change results, and ``fit_surrogate_posterior``.

Every check here is deterministic (fixed seeds, bit-for-bit or float-tolerance comparisons):
no false-failure rate to state.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import fxgx.vi as vi
from fxgx.distributions import Bernoulli

# `fxgx.vi.fit` is the function; the module is reached through importlib.
fit_module = importlib.import_module("fxgx.vi.fit")

TARGET = np.linspace(-1.0, 1.0, 5).astype(np.float32)


def _setup(backend_name):
    """(fresh parameters factory, logits getter, loss) for a Bernoulli ELBO with 4 samples."""
    if backend_name == "tensorflow":
        tf = pytest.importorskip("tensorflow")

        def log_joint(z):
            return -tf.reduce_sum((z - TARGET) ** 2, -1)

        def fresh():
            return [tf.Variable(tf.zeros(5))]

        def logits(parameters):
            return parameters[0]
    else:
        jnp = pytest.importorskip("jax.numpy")

        def log_joint(z):
            return -jnp.sum((z - TARGET) ** 2, -1)

        def fresh():
            return {"logits": jnp.zeros(5)}

        def logits(parameters):
            return parameters["logits"]

    def loss(parameters, seed):
        return -vi.elbo(log_joint, Bernoulli(logits(parameters), event_ndims=1), seed=seed,
                        num_samples=4)

    return fresh, logits, loss


@pytest.mark.parametrize("backend_name,steps", [
    pytest.param("jax", 1000, marks=pytest.mark.slow), ("tensorflow", 200)])
def test_resumed_runs_equal_one_run_bit_for_bit(backend_name, steps):
    fresh, logits, loss = _setup(backend_name)
    whole = vi.fit(loss, fresh(), num_steps=2 * steps, seed=3, progress=False)
    first = vi.fit(loss, fresh(), num_steps=steps, seed=3, progress=False)
    second = vi.fit(loss, first.parameters, num_steps=steps, seed=3, progress=False,
                    resume=first)
    np.testing.assert_array_equal(np.concatenate([first.losses, second.losses]), whole.losses)
    np.testing.assert_array_equal(np.asarray(logits(second.parameters)),
                                  np.asarray(logits(whole.parameters)))
    assert second.step == whole.step == 2 * steps
    # Without resume the optimizer restarts (fresh Adam moments, step 0 seeds): different.
    restarted = vi.fit(loss, first.parameters if backend_name == "jax" else
                       [type(first.parameters[0])(first.parameters[0])],
                       num_steps=5, seed=3, progress=False)
    assert not np.array_equal(restarted.losses, second.losses[:5])


@pytest.mark.slow
def test_tensorflow_resume_over_2000_steps():
    test_resumed_runs_equal_one_run_bit_for_bit("tensorflow", 1000)


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_blocks_do_not_change_results(backend_name, monkeypatch):
    """Blocks of at most 3 steps give the numbers of the default (larger) blocks, including
    the step at which the convergence criterion stops."""
    fresh, _, loss = _setup(backend_name)
    criterion = vi.LossNotDecreasing(rtol=0.05, window_size=20, min_num_steps=30)
    default = vi.fit(loss, fresh(), num_steps=400, seed=1, progress=False,
                     convergence_criterion=criterion)
    monkeypatch.setattr(fit_module, "MAX_BLOCK_STEPS", 3)
    small = vi.fit(loss, fresh(), num_steps=400, seed=1, progress=False,
                   convergence_criterion=criterion)
    np.testing.assert_array_equal(small.losses, default.losses)
    assert small.converged == default.converged


def _criterion_stop_step(losses, atol, rtol, window_size, min_num_steps):
    """The documented LossNotDecreasing rule, in float64 NumPy on recorded losses."""
    average = initial = 0.0
    for seen in range(len(losses)):
        if seen >= 1:
            decrease = losses[seen - 1] - losses[seen]
            average = decrease if seen == 1 else average + (decrease - average) / window_size
        if seen == window_size:
            initial = average
        stop = (atol is not None and average < atol) or (rtol is not None and
                                                         average < rtol * initial)
        if seen + 1 >= min_num_steps and seen >= window_size and stop:
            return seen
    return None


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_convergence_criterion_follows_its_rule(backend_name):
    fresh, _, loss = _setup(backend_name)
    criterion = vi.LossNotDecreasing(rtol=0.1, window_size=25, min_num_steps=40)
    result = vi.fit(loss, fresh(), num_steps=2000, seed=0, progress=False,
                    learning_rate=0.05, convergence_criterion=criterion)
    assert result.converged
    expected = _criterion_stop_step(result.losses, None, 0.1, 25, 40)
    assert expected == len(result.losses) - 1 == result.step - 1
    assert len(result.losses) < 2000


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_trace_fn_records_every_step(backend_name):
    fresh, logits, loss = _setup(backend_name)

    def trace_fn(quantities):
        return {"loss": quantities.loss, "step": quantities.step,
                "logits": logits(quantities.parameters),
                "gradient": logits(quantities.gradients)}

    result = vi.fit(loss, fresh(), num_steps=50, seed=0, progress=False, trace_fn=trace_fn,
                    learning_rate=0.1)
    np.testing.assert_allclose(result.trace["loss"], result.losses, rtol=1e-6)
    np.testing.assert_array_equal(result.trace["step"], np.arange(50))
    assert result.trace["logits"].shape == (50, 5)
    np.testing.assert_array_equal(result.trace["logits"][0], np.zeros(5))
    # The parameters traced at step t are those after step t - 1's update: Adam moved them.
    assert np.all(np.abs(result.trace["logits"][1] - result.trace["logits"][0]) > 0.05)
    assert np.all(np.isfinite(result.trace["gradient"]))


def test_autograph_converts_python_control_flow_on_tensorflow():
    tf = pytest.importorskip("tensorflow")
    variable = tf.Variable(3.0)

    def loss(parameters, seed):
        del seed
        value = parameters[0]
        if value > 1.0:  # a Python `if` on a tensor: AutoGraph makes it a tf.cond
            return value**2
        return 2.0 * value

    result = vi.fit(loss, [variable], num_steps=300, seed=0, progress=False,
                    learning_rate=0.05)
    assert float(variable.numpy()) < 1.0
    assert result.losses[0] == pytest.approx(9.0)


def test_progress_bar_shows_rate_and_time_left(capsys):
    fresh, _, loss = _setup("jax")
    vi.fit(loss, fresh(), num_steps=30, seed=0)
    error = capsys.readouterr().err
    assert "30/30" in error and "it/s" in error and "ETA" in error


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_fit_surrogate_posterior_with_a_builder(backend_name):
    fresh, logits, loss = _setup(backend_name)
    if backend_name == "tensorflow":
        import tensorflow as tf

        def target(z):
            return -tf.reduce_sum((z - TARGET) ** 2, -1)
    else:
        import jax.numpy as jnp

        def target(z):
            return -jnp.sum((z - TARGET) ** 2, -1)

    result = vi.fit_surrogate_posterior(
        target, lambda parameters: Bernoulli(logits(parameters), event_ndims=1),
        initial_parameters=fresh(), num_steps=60, seed=5, sample_size=4, progress=False)
    same = vi.fit(loss, fresh(), num_steps=60, seed=5, progress=False)
    np.testing.assert_array_equal(result.losses, same.losses)


def test_fit_surrogate_posterior_trains_a_tfp_distribution():
    tf = pytest.importorskip("tensorflow")
    tfp = pytest.importorskip("tensorflow_probability")
    tfd = tfp.distributions
    logits = tf.Variable(tf.zeros(5))
    surrogate = tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32), 1)

    def target(z):
        return -tf.reduce_sum((z - TARGET) ** 2, -1)

    result = vi.fit_surrogate_posterior(target, surrogate, num_steps=300, seed=0,
                                        sample_size=4, learning_rate=0.05, progress=False)
    # log p favours z_j = 1 where TARGET_j > 0.5 and z_j = 0 where TARGET_j < 0.5.
    fitted = logits.numpy()
    assert fitted[0] < -1.0 and fitted[-1] > 1.0, fitted
    assert result.parameters[0] is logits


def test_bad_loop_arguments():
    fresh, _, loss = _setup("jax")
    with pytest.raises(TypeError, match="LossNotDecreasing"):
        vi.fit(loss, fresh(), num_steps=2, seed=0, convergence_criterion=lambda x: True)
    with pytest.raises(ValueError, match="atol=, rtol="):
        vi.fit(loss, fresh(), num_steps=2, seed=0, convergence_criterion=vi.LossNotDecreasing())
    with pytest.raises(ValueError, match="window_size"):
        vi.LossNotDecreasing(rtol=0.1, window_size=0).check()
    with pytest.raises(TypeError, match="trace_fn"):
        vi.fit(loss, fresh(), num_steps=2, seed=0, trace_fn=3)
    with pytest.raises(TypeError, match="resume"):
        vi.fit(loss, fresh(), num_steps=2, seed=0, resume={"step": 3})
    with pytest.raises(TypeError, match="initial_parameters"):
        vi.fit_surrogate_posterior(lambda z: z, lambda p: p, num_steps=2, seed=0)
    with pytest.raises(ValueError, match="sample_size"):
        vi.fit_surrogate_posterior(lambda z: z, lambda p: p, num_steps=2, seed=0,
                                   sample_size=0, initial_parameters=fresh())
