"""``fxgx.vi.fit`` with the parameters of users' own models, and its non-finite rule.

- Keras 3 (``model.trainable_variables`` of a ``keras`` model, with a Keras 3 optimizer),
  Flax (linen ``params`` with optax) and Equinox (a module as the pytree) decoders are trained
  together with the surrogate's logits: the decoder's weights move and the loss falls.
- The first step whose loss is not finite stops ``fit`` with ``NonFiniteLossError``, and the
  parameters are those of the last finite step.

Deterministic (fixed seeds); "the loss falls" compares the mean of the first and last 25
losses of 300 steps on a problem where the decrease is several nats.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fxgx.estimators as estimators
import fxgx.vi as vi
from fxgx.distributions import Bernoulli

OBSERVATION = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], np.float32)
LATENTS = 4


def _assert_trained(losses, before, after):
    assert np.mean(losses[-25:]) < np.mean(losses[:25]) - 1.0, (losses[:5], losses[-5:])
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        assert np.max(np.abs(np.asarray(new) - old)) > 1e-2, f"parameter {index} did not move"


def test_a_keras_3_decoder_is_trained():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    decoder = keras.Sequential([keras.Input((LATENTS,)), keras.layers.Dense(6)])
    logits = keras.Variable(np.zeros(LATENTS, np.float32))
    observation = tf.constant(OBSERVATION)

    def loss(parameters, seed):
        def log_joint(z):
            decoded = decoder(z)
            labels = tf.broadcast_to(observation, tf.shape(decoded))
            return -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels, decoded), -1)

        return -vi.elbo(log_joint, Bernoulli(parameters[0], event_ndims=1), seed=seed,
                        num_samples=4, estimator=estimators.disarm())

    parameters = [logits, *decoder.trainable_variables]
    before = [np.asarray(parameter).copy() for parameter in parameters]
    result = vi.fit(loss, parameters, num_steps=300, seed=0, learning_rate=0.05,
                    progress=False)
    assert isinstance(result.parameters[1], keras.Variable)
    _assert_trained(result.losses, before, [np.asarray(p) for p in parameters])


def test_keras_3_variables_need_a_keras_3_optimizer():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    tf_keras = pytest.importorskip("tf_keras")
    logits = keras.Variable(np.zeros(LATENTS, np.float32))

    def loss(parameters, seed):
        return tf.reduce_sum(parameters[0])

    with pytest.raises(TypeError, match="keras.optimizers.Adam"):
        vi.fit(loss, [logits], num_steps=1, seed=0, optimizer=tf_keras.optimizers.Adam(0.1))
    with pytest.raises(TypeError, match="mixes Keras 3 variables"):
        vi.fit(loss, [logits, tf.Variable(0.0)], num_steps=1, seed=0)


def _jax_log_joint(decode):
    import jax.numpy as jnp
    import optax

    def log_joint(z):
        decoded = decode(z)
        labels = jnp.broadcast_to(jnp.asarray(OBSERVATION), decoded.shape)
        return -jnp.sum(optax.sigmoid_binary_cross_entropy(decoded, labels), -1)

    return log_joint


def test_a_flax_decoder_is_trained():
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    pytest.importorskip("optax")
    import jax.numpy as jnp

    decoder = nn.Dense(6)
    parameters = {"logits": jnp.zeros(LATENTS),
                  "decoder": decoder.init(jax.random.key(0), jnp.zeros(LATENTS))}

    def loss(parameters, seed):
        log_joint = _jax_log_joint(lambda z: decoder.apply(parameters["decoder"], z))
        return -vi.elbo(log_joint, Bernoulli(parameters["logits"], event_ndims=1), seed=seed,
                        num_samples=4, estimator=estimators.disarm())

    result = vi.fit(loss, parameters, num_steps=300, seed=0, learning_rate=0.05,
                    progress=False)
    before = jax.tree_util.tree_leaves(parameters)
    _assert_trained(result.losses, before, jax.tree_util.tree_leaves(result.parameters))


def test_an_equinox_module_is_trained_and_keeps_its_static_leaves():
    jax = pytest.importorskip("jax")
    eqx = pytest.importorskip("equinox")
    pytest.importorskip("optax")
    import jax.numpy as jnp

    class Model(eqx.Module):
        logits: jax.Array
        decoder: eqx.nn.Linear
        activation: object = jax.nn.sigmoid  # a static leaf: a function

    model = Model(jnp.zeros(LATENTS), eqx.nn.Linear(LATENTS, 6, key=jax.random.key(1)))

    def loss(model, seed):
        log_joint = _jax_log_joint(jax.vmap(model.decoder))
        return -vi.elbo(log_joint, Bernoulli(model.logits, event_ndims=1), seed=seed,
                        num_samples=4, estimator=estimators.disarm())

    result = vi.fit(loss, model, num_steps=300, seed=0, learning_rate=0.05, progress=False)
    assert isinstance(result.parameters, Model)
    assert result.parameters.activation is jax.nn.sigmoid
    before = [model.logits, model.decoder.weight, model.decoder.bias]
    after = [result.parameters.logits, result.parameters.decoder.weight,
             result.parameters.decoder.bias]
    _assert_trained(result.losses, before, after)


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_fit_stops_at_the_first_non_finite_loss_and_keeps_the_last_finite_parameters(
        backend_name):
    """``loss = sqrt(p)`` from ``p = 1`` with Adam at learning rate 0.6: Adam's first step
    moves ``p`` by the learning rate, to 0.4, the second to about -0.19, where the loss is NaN
    (step 2). The update computed there (NaN) is not applied: ``p`` stays finite."""
    from fxgx.backends import framework_by_name

    backend = framework_by_name(backend_name)
    if backend_name == "tensorflow":
        import tensorflow as tf

        parameters = [tf.Variable(1.0)]

        def loss(parameters, seed):
            return tf.sqrt(parameters[0])
    else:
        parameters = {"p": backend.xp.asarray(1.0, dtype=backend.xp.float32)}

        def loss(parameters, seed):
            return backend.xp.sqrt(parameters["p"])

    with pytest.raises(vi.NonFiniteLossError, match="stopped at step 2: the loss is nan") as info:
        vi.fit(loss, parameters, num_steps=10, seed=0, learning_rate=0.6, progress=False)
    result = info.value.result
    assert len(result.losses) == 3 and math.isnan(result.losses[-1])
    np.testing.assert_allclose(result.losses[:2], [1.0, math.sqrt(0.4)], rtol=1e-5)
    final = result.parameters[0] if backend_name == "tensorflow" else result.parameters["p"]
    final = float(np.asarray(final))
    assert math.isfinite(final) and -0.25 < final < -0.15, final
