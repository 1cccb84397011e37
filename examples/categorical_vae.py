"""A categorical VAE on binarised 8x8 digits, trained with every categorical estimator of the
catalogue at the same budget of decoder evaluations.

The model has ``D`` categorical latents of ``K`` categories each (default 10 x 10), one-hot:

    p(z)     = prod_d Categorical(z_d; uniform over K)
    p(x | z) = prod_i Bernoulli(x_i; sigmoid(W vec(z) + c)_i)       (decoder: linear + sigmoid)
    q(z | x) = prod_d Categorical(z_d; softmax((V x + e)_d))         (encoder: linear + softmax)

and is fitted by maximising the evidence lower bound ``E_q[log p(x, z) - log q(z | x)]``
(``fxgx.vi.elbo``, the entropy of ``q`` exact) or, for estimators of the multi-sample bound
(VIMCO), the importance-weighted bound (``fxgx.vi.importance_weighted_bound``). The data are
scikit-learn's 1797 handwritten digits, thresholded at 8 of 16 grey levels, as in
``sigmoid_belief_network.py``.

Every estimator gets the same budget of decoder evaluations per data point and step
(``--evaluations``): ``num_samples = max(1, budget // evaluations per sample)`` from its
catalogue card. By default the estimators are every catalogue card that supports categorical
latents (``--estimators all``, read from ``fxgx.catalogue`` when the script runs); a card is
skipped, with the reason printed, when even its smallest sample count exceeds the budget or
when a plain call is not the whole estimator (a user function or state between steps) and
this script does not configure it. RELAX is configured as in the SBN example: its control
variate (temperature, scale and a residual network of ``z`` and ``x``) is trained by
minimising the squared norm of its encoder gradient.

The script prints the wall time, a table of final training and test ELBOs, the test
importance-weighted bound (``K = 100``) and the gradient variance; the figure shows the
training bound and the log-variance of the gradient over training.

    python examples/categorical_vae.py                          # TensorFlow, every estimator
    python examples/categorical_vae.py --backend jax --estimators reinforce_leave_one_out,rebar
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from example_support import (
    IMPORTANCE_SAMPLES,
    HelpFormatter,
    binarised_digits,
    estimator_style,
    loss_cards,
    quiet_tensorflow,
    run_failing_softly,
    smooth,
    train_discrete_vae,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Estimators this script configures beyond a plain call.
CONFIGURED = ("relax",)


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Train a categorical VAE (D categorical latents of K categories) on "
        "binarised 8x8 digits with every categorical gradient estimator at the same budget "
        "of decoder evaluations; plot ELBO curves and gradient variance, print a table.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow",
                        help="framework that runs the training.")
    parser.add_argument("--variables", type=int, default=10, help="categorical latents D.")
    parser.add_argument("--categories", type=int, default=10,
                        help="categories K of each latent.")
    parser.add_argument("--steps", type=int, default=4000, help="Adam steps per estimator.")
    parser.add_argument("--batch-size", type=int, default=50, help="images per step.")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="Adam's step size.")
    parser.add_argument("--evaluations", type=int, default=4,
                        help="decoder evaluations per data point and step (the shared budget).")
    parser.add_argument("--checkpoints", type=int, default=20,
                        help="how many times fit traces the gradient variance (0: never).")
    parser.add_argument("--estimators", default="all",
                        help="comma-separated catalogue names, or 'all': every card that "
                        "supports categorical latents.")
    parser.add_argument("--seed", type=int, default=0, help="random seed.")
    parser.add_argument("--output-dir", default="out/categorical_vae",
                        help="folder for the figure and the JSON results.")
    parser.add_argument("--quick", action="store_true",
                        help="tiny model and a few steps (smoke test).")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.steps = min(arguments.steps, 4)
        arguments.variables = min(arguments.variables, 3)
        arguments.categories = min(arguments.categories, 4)
        arguments.batch_size = min(arguments.batch_size, 8)
        arguments.checkpoints = min(arguments.checkpoints, 2)
    if min(arguments.steps, arguments.variables, arguments.batch_size,
           arguments.evaluations) < 1:
        parser.error("--steps, --variables, --batch-size and --evaluations must be positive.")
    if arguments.categories < 2:
        parser.error("--categories must be at least 2.")
    if arguments.checkpoints < 0:
        parser.error("--checkpoints must be >= 0.")
    arguments.checkpoints = min(arguments.checkpoints, arguments.steps)
    return arguments


# --------------------------------------------------------------------------------- model


@dataclasses.dataclass(frozen=True)
class CategoricalVae:
    """Parameter layout and densities; parameters are a list of arrays (or ``tf.Variable``).

    Order: encoder weights ``V`` [P, D K], encoder bias ``e`` [D K], decoder weights ``W``
    [D K, P], decoder bias ``c`` [P]; RELAX appends its control variate (``log
    temperature``, ``scale``, residual-network weights).
    """

    backend: object
    data_size: int
    variables: int
    categories: int
    hidden: int = 32
    #: V, e, W, c: the parameters before RELAX's.
    num_model_parameters = 4

    @property
    def width(self) -> int:
        return self.variables * self.categories

    def initial_parameters(self, seed, data_mean, control_variate: bool):
        generator = np.random.default_rng(seed)
        size, width = self.data_size, self.width
        mean = np.clip(data_mean, 1e-3, 1 - 1e-3)
        parameters = [
            0.01 * generator.standard_normal((size, width)),
            np.zeros(width),
            0.01 * generator.standard_normal((width, size)),
            np.log(mean) - np.log1p(-mean),  # decoder bias: the pixel marginals
        ]
        if control_variate:
            parameters += [
                np.asarray(math.log(0.5)), np.asarray(1.0),
                0.01 * generator.standard_normal((width + size, self.hidden)),
                np.zeros(self.hidden), np.zeros(self.hidden), np.zeros(()),
            ]
        return [np.asarray(value, np.float32) for value in parameters]

    def posterior(self, parameters, data):
        """``q(z | x)``: a one-hot categorical with batch shape [B] and event shape [D]."""
        from fxgx.distributions import OneHotCategorical

        backend = self.backend
        logits = backend.xp.matmul(data, parameters[0]) + parameters[1]
        shape = (tuple(data.shape)[0], self.variables, self.categories)
        return OneHotCategorical(backend.xp.reshape(logits, shape), event_ndims=1)

    def _affine(self, values, weights, bias):
        """``values @ weights + bias`` for values of any leading shape."""
        backend = self.backend
        shape = tuple(values.shape)
        flat = backend.xp.reshape(values, (-1, shape[-1]))
        result = backend.xp.matmul(flat, weights) + bias
        return backend.xp.reshape(result, tuple(shape[:-1]) + (tuple(weights.shape)[-1],))

    def _flat(self, latents):
        """``[..., D, K]`` -> ``[..., D K]``."""
        shape = tuple(latents.shape)
        return self.backend.xp.reshape(latents, tuple(shape[:-2]) + (self.width,))

    def log_joint(self, parameters, data, latents):
        """``log p(x, z)`` for one-hot latents of shape ``[S, B, D, K]`` (or relaxations)."""
        from fxgx.distributions import Bernoulli

        decoder_logits = self._affine(self._flat(latents), parameters[2], parameters[3])
        likelihood = Bernoulli(decoder_logits, event_ndims=1).log_prob(data)
        return likelihood - self.variables * math.log(self.categories)  # uniform prior

    def residual(self, data):
        """RELAX's residual ``r(z, x)``: one tanh layer of ``[softmax(z), x]``."""
        backend = self.backend

        def control_variate(perturbed, parameters):
            weights, bias, output_weights, output_bias = parameters
            features = self._flat(backend.softmax(perturbed, axis=-1))
            shape = tuple(features.shape)
            tiled = backend.xp.broadcast_to(data, tuple(shape[:-1]) + (self.data_size,))
            features = backend.xp.concat([features, tiled], axis=-1)
            hidden = backend.xp.tanh(self._affine(features, weights, bias))
            return backend.xp.sum(hidden * output_weights, axis=-1) + output_bias

        return control_variate


# ------------------------------------------------------------------------------ running


def run_estimator(card, model, train, test, arguments):
    """One card's run and its record (``example_support.train_discrete_vae``)."""
    return train_discrete_vae(card, model, train, test, arguments,
                              cost=card.evaluations(arguments.variables, arguments.categories))


def plot(records, arguments, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(records) // 4)  # the legend below the panels: 4 columns
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6 + 0.22 * rows))
    window = max(1, arguments.steps // 30)
    lows, highs = [], []
    for record in records:
        style = estimator_style(record["name"])
        label = f"{record['name']} ({record['evaluations_per_step']} f/step)"
        if record["objective"] != "ELBO":
            label += f", {record['objective']}"
        curve = smooth(record["training_bound"], window)
        left.plot(np.arange(1, len(curve) + 1), curve, label=label, **style)
        lows.append(np.percentile(curve, 5))
        highs.append(curve.max())
        right.plot(record["variance_steps"], record["log10_gradient_variance"], marker=".",
                   label=label, **style)
    spread = max(highs) - min(lows) + 1e-9
    left.set_ylim(min(lows) - 0.05 * spread, max(highs) + 0.05 * spread)
    left.set_xlabel("step")
    left.set_ylabel(f"training bound, nats per image ({window}-step average)")
    left.set_title(f"categorical VAE, D = {arguments.variables} latents of "
                   f"K = {arguments.categories} categories")
    right.set_xlabel("step")
    right.set_ylabel("log10 total variance of the gradient")
    right.set_title("traced by fxgx.vi.fit (8 extra estimates)" if arguments.checkpoints
                    else "not traced (--checkpoints 0)")
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.suptitle(f"binarised 8x8 digits, {arguments.backend} backend, "
                    f"budget {arguments.evaluations} decoder evaluations per image and step")
    figure.tight_layout(rect=(0, 0.22 * rows / (4.6 + 0.22 * rows) + 0.01, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    arguments = parse_arguments(argv)
    from fxgx.backends import framework_by_name

    start = time.perf_counter()
    backend = framework_by_name(arguments.backend)
    if backend.name == "tensorflow":
        quiet_tensorflow()
    output = Path(arguments.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    train, test = binarised_digits(arguments.seed)
    model = CategoricalVae(backend, train.shape[1], arguments.variables, arguments.categories)
    cards, skipped = loss_cards(arguments.estimators, "categorical", arguments.evaluations,
                                configured=CONFIGURED, num_variables=arguments.variables,
                                num_classes=arguments.categories)
    records = []
    for card in cards:
        record = run_failing_softly(run_estimator, card, skipped, model, train, test, arguments)
        if record is None:
            continue
        records.append(record)
        print(f"{record['name']:<24} train ELBO {record['final_train_elbo']:8.2f}  "
              f"test ELBO {record['test_elbo']:8.2f}  ({record['seconds']:.0f} s)", flush=True)
    if not records:
        raise SystemExit("no estimator to run")
    header = (f"| estimator | samples | f/step | objective | train ELBO | test ELBO | "
              f"test log p(x) >= (K={IMPORTANCE_SAMPLES}) | log10 Var (all, median) | "
              f"log10 Var (encoder, final) | seconds |")
    print()
    print(header)
    print("|" + "---|" * 10)
    for record in records:
        traced = record["log10_gradient_variance"]
        print(f"| {record['name']} | {record['num_samples']} | "
              f"{record['evaluations_per_step']} | {record['objective']} | "
              f"{record['final_train_elbo']:.2f} | {record['test_elbo']:.2f} | "
              f"{record['test_importance_weighted_bound']:.2f} | "
              f"{f'{np.median(traced):.2f}' if traced else 'not traced'} | "
              f"{record['log10_final_encoder_gradient_variance']:.2f} | "
              f"{record['seconds']:.0f} |")
    figure_path = output / "categorical_vae.png"
    plot(records, arguments, figure_path)
    wall = time.perf_counter() - start
    with open(output / "categorical_vae.json", "w") as handle:
        json.dump({"arguments": vars(arguments), "skipped": skipped, "wall_seconds": wall,
                   "results": records}, handle, indent=1)
    print(f"\nfigure: {figure_path}")
    print(f"wall time: {wall:.0f} s for {len(records)} estimators")
    return records


if __name__ == "__main__":
    main(sys.argv[1:])
