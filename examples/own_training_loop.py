"""A discrete VAE trained with an fxgx estimator in your own training loop: no ``fxgx.vi``.

The encoder and the decoder are Keras 3 models; the loop is a plain ``tf.GradientTape`` step
in a ``tf.function`` with a Keras optimizer. The estimator is called directly on the ELBO's
integrand,

    ELBO(x) = E_{z ~ q(z|x)}[log p(x | z) + log p(z)] + H(q(. | x)),

with the entropy of the Bernoulli posterior in closed form. The surrogate the estimator
returns has the gradient of the expectation w.r.t. the encoder (by the estimator's formula)
*and* w.r.t. the decoder and the prior, which ``f`` closes over (``E[grad f]``, unbiased):
one ``tape.gradient`` trains all three, as with ``tfp.monte_carlo.expectation``.

To show that the decoder's gradient matters, the script also trains the same model with the
decoder frozen (its gradient dropped, which is what an estimator that stops ``f`` would give):
that run's ELBO stalls far below. Data: scikit-learn's 8x8 digits, binarised (nothing is
downloaded). Prints a table, writes ``results.json`` and ``own_training_loop.png``.

    python examples/own_training_loop.py
    python examples/own_training_loop.py --estimator reinforce_leave_one_out --num-samples 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from example_support import binarised_digits

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Train a discrete VAE (Keras 3 encoder and decoder, Bernoulli latents) "
        "with an fxgx estimator inside a plain GradientTape loop, and compare with the same "
        "loop with the decoder frozen.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--estimator", default="disarm",
                        help="catalogue name of an unbiased estimator for Bernoulli latents.")
    parser.add_argument("--num-samples", type=int, default=2,
                        help="the estimator's num_samples (DisARM: antithetic pairs).")
    parser.add_argument("--latents", type=int, default=16, help="Bernoulli latents.")
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps per run.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="out/own_training_loop")
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred steps of a small model (smoke test).")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.steps = min(arguments.steps, 300)
        arguments.latents = min(arguments.latents, 8)
    if min(arguments.steps, arguments.latents, arguments.batch_size, arguments.num_samples) < 1:
        parser.error("--steps, --latents, --batch-size and --num-samples must be positive.")
    return arguments


class DiscreteAutoencoder:
    """Keras 3 encoder ``x -> logits of q(z | x)``, decoder ``z -> logits of p(x | z)`` and
    prior logits, with the ELBO written for an fxgx estimator."""

    def __init__(self, latents: int, pixels: int, data_mean, seed: int):
        import keras

        keras.utils.set_random_seed(seed)
        self.encoder = keras.Sequential([keras.Input((pixels,)), keras.layers.Dense(latents)])
        mean = np.clip(data_mean, 1e-3, 1 - 1e-3)
        self.decoder = keras.Sequential([
            keras.Input((latents,)),
            keras.layers.Dense(pixels, bias_initializer=keras.initializers.Constant(
                np.log(mean) - np.log1p(-mean))),
        ])
        self.prior_logits = keras.Variable(np.zeros(latents, np.float32), name="prior_logits")

    def variables(self, train_decoder: bool = True):
        decoder = self.decoder.trainable_variables if train_decoder else []
        return [*self.encoder.trainable_variables, *decoder, self.prior_logits]

    def elbo(self, estimator, images, seed, num_samples):
        """Per-image ELBO surrogates, shape [batch]: the estimator's surrogate of
        ``E_q[log p(x, z)]`` plus the exact entropy of ``q``."""
        import tensorflow as tf

        from fxgx.distributions import Bernoulli

        logits = self.encoder(images)
        posterior = Bernoulli(logits, event_ndims=1)

        def log_joint(latents):  # [S, B, L] -> [S, B]; closes over decoder and prior
            decoded = self.decoder(tf.reshape(latents, (-1, latents.shape[-1])))
            decoded = tf.reshape(decoded, (latents.shape[0], -1, images.shape[-1]))
            likelihood = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
                tf.broadcast_to(images, tf.shape(decoded)), decoded), -1)
            prior = Bernoulli(self.prior_logits, event_ndims=1).log_prob(latents)
            return likelihood + prior

        expected = estimator(log_joint, posterior, seed=seed, num_samples=num_samples)
        probabilities = tf.sigmoid(logits)
        entropy = tf.reduce_sum(probabilities * tf.nn.softplus(-logits)
                                + (1 - probabilities) * tf.nn.softplus(logits), -1)
        return expected + entropy


def train(model, estimator, train_images, test_images, arguments, train_decoder):
    """Adam on minus the mean ELBO of random minibatches; returns the training curve (ELBO
    of each step's minibatch) and the test ELBO (16 samples) before and after."""
    import keras
    import tensorflow as tf

    variables = model.variables(train_decoder)
    optimizer = keras.optimizers.Adam(arguments.learning_rate)
    optimizer.build(variables)
    data = tf.constant(train_images)

    @tf.function
    def step(seed):
        index = tf.random.stateless_uniform([arguments.batch_size], seed, 0, data.shape[0],
                                            dtype=tf.int32)
        batch = tf.gather(data, index)
        with tf.GradientTape() as tape:
            elbo = tf.reduce_mean(model.elbo(estimator, batch, seed, arguments.num_samples))
            loss = -elbo
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return elbo

    @tf.function
    def test_elbo(seed):
        return tf.reduce_mean(model.elbo(estimator, tf.constant(test_images), seed, 16))

    before = float(test_elbo(tf.constant([arguments.seed, -1])))
    curve = [float(step(tf.constant([arguments.seed, index])))
             for index in range(arguments.steps)]
    after = float(test_elbo(tf.constant([arguments.seed, -2])))
    return curve, before, after


def main(argv=None):
    arguments = parse_arguments(argv)
    from fxgx.catalogue import get_card

    card = get_card(arguments.estimator)
    if not card.supports("bernoulli") or not card.unbiased:
        raise SystemExit(f"--estimator {card.name}: pick an unbiased estimator for Bernoulli "
                         "latents (disarm, arm, reinforce_leave_one_out, ...).")
    train_images, test_images = binarised_digits(arguments.seed)
    rows = []
    for train_decoder in (True, False):
        model = DiscreteAutoencoder(arguments.latents, train_images.shape[1],
                                    train_images.mean(0), arguments.seed)
        decoder_before = [np.asarray(v.numpy()) for v in model.decoder.trainable_variables]
        start = time.perf_counter()
        curve, before, after = train(model, card.make(), train_images, test_images,
                                     arguments, train_decoder)
        moved = max(float(np.max(np.abs(np.asarray(new.numpy()) - old)))
                    for new, old in zip(model.decoder.trainable_variables, decoder_before,
                                        strict=True))
        rows.append({"decoder": "trained" if train_decoder else "frozen",
                     "test_elbo_before": before, "test_elbo_after": after,
                     "decoder_change": moved, "seconds": time.perf_counter() - start,
                     "curve": curve})
    output = Path(arguments.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    print(f"{card.name}, {arguments.num_samples} sample(s), {arguments.steps} steps")
    print(f"{'decoder':8} {'test ELBO before':>17} {'test ELBO after':>16} "
          f"{'max |decoder change|':>21}")
    for row in rows:
        print(f"{row['decoder']:8} {row['test_elbo_before']:17.2f} {row['test_elbo_after']:16.2f}"
              f" {row['decoder_change']:21.3f}")
    summary = {"estimator": card.name, "num_samples": arguments.num_samples,
               "steps": arguments.steps, "runs": rows}
    (output / "results.json").write_text(json.dumps(summary, indent=1))
    plot(rows, output / "own_training_loop.png", card.name)
    return summary


def plot(rows, path, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for row, color in zip(rows, ("tab:blue", "tab:orange"), strict=True):
        curve = np.asarray(row["curve"])
        window = max(1, len(curve) // 50)
        smoothed = np.convolve(curve, np.ones(window) / window, mode="valid")
        axis.plot(np.arange(len(smoothed)) + window - 1, smoothed, color=color,
                  label=f"decoder {row['decoder']}")
    axis.set_xlabel("step")
    axis.set_ylabel("training ELBO (nats, smoothed)")
    axis.set_title(f"{name} in a plain GradientTape loop")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
