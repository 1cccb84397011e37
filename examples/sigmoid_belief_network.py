"""A sigmoid belief network (discrete VAE) on binarised 8x8 digits, trained with every Bernoulli
estimator of the catalogue at the same budget.

The model has one layer of ``L`` Bernoulli latents:

    p(z)     = prod_l Bernoulli(z_l; sigmoid(a_l))
    p(x | z) = prod_d Bernoulli(x_d; sigmoid(W z + c)_d)          (decoder: linear + sigmoid)
    q(z | x) = prod_l Bernoulli(z_l; sigmoid(V x + e)_l)          (encoder: linear + sigmoid)

and is fitted by maximising the evidence lower bound ``E_q[log p(x, z) - log q(z | x)]``
(``fxgx.vi.elbo``) or, for VIMCO, the importance-weighted bound ``E[log 1/K sum_k w_k]``
(``fxgx.vi.importance_weighted_bound``). The data are scikit-learn's 1797 handwritten digits
(``sklearn.datasets.load_digits``, shipped with the package: nothing is downloaded),
thresholded at 8 of 16 grey levels.

Every estimator gets the same budget of decoder evaluations per data point and step
(``--evaluations``): ``num_samples = max(1, budget // evaluations per sample)`` from its
catalogue card. By default the estimators are every catalogue card that supports Bernoulli
latents (``--estimators all``, read from ``fxgx.catalogue`` when the script runs); a card is
skipped, with the reason printed, when even its smallest sample count exceeds the budget or
when a plain call is not the whole estimator (a user function or state between steps) and
this script does not configure it. RELAX also trains its control variate (temperature, scale
and a residual network of ``z`` and ``x``) by minimising the squared norm of its encoder
gradient.

The script prints a table of final training and test ELBOs, the test importance-weighted
bound (``K = 100``, a tighter estimate of ``log p(x)``), and the gradient variance; the figure
shows the training ELBO and the log-variance of the encoder gradient over training.

    python examples/sigmoid_belief_network.py                      # TensorFlow
    python examples/sigmoid_belief_network.py --backend jax --steps 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
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
#: Cards that "all" leaves out here (they run when named with --estimators).
LEFT_OUT = {
    name: "a beam search over the 2^L joint states at every step (over 100 times the time "
          "per step of the others here at L = 32); it is built for categorical latents, see "
          "categorical_vae.py"
    for name in ("unordered_set", "sum_and_sample")
}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Train a one-layer sigmoid belief network (discrete VAE) on binarised "
        "8x8 digits with several gradient estimators at the same budget; plot ELBO curves "
        "and gradient variance, print a table of final ELBOs.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow",
                        help="framework that runs the training.")
    parser.add_argument("--latents", type=int, default=32, help="Bernoulli latents L.")
    parser.add_argument("--steps", type=int, default=5000, help="Adam steps per estimator.")
    parser.add_argument("--batch-size", type=int, default=100, help="images per step.")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="Adam's step size.")
    parser.add_argument("--evaluations", type=int, default=4,
                        help="decoder evaluations per data point and step (the shared budget).")
    parser.add_argument("--checkpoints", type=int, default=30,
                        help="how many times fit traces the gradient variance (0: never).")
    parser.add_argument("--estimators", default="all",
                        help="comma-separated catalogue names, or 'all': every card that "
                        "supports Bernoulli latents.")
    parser.add_argument("--seed", type=int, default=0, help="random seed.")
    parser.add_argument("--output-dir", default="out/sigmoid_belief_network",
                        help="folder for the figure and the JSON results.")
    parser.add_argument("--quick", action="store_true",
                        help="tiny model and a few steps (smoke test).")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.steps = min(arguments.steps, 4)
        arguments.latents = min(arguments.latents, 4)
        arguments.batch_size = min(arguments.batch_size, 8)
        # Trace the variance at steps 0 and 2, so the quick figure and table show it too.
        arguments.checkpoints = min(arguments.checkpoints, 2)
    if min(arguments.steps, arguments.latents, arguments.batch_size, arguments.evaluations) < 1:
        parser.error("--steps, --latents, --batch-size and --evaluations must be positive.")
    if arguments.checkpoints < 0:
        parser.error("--checkpoints must be >= 0.")
    arguments.checkpoints = min(arguments.checkpoints, arguments.steps)
    return arguments


# ---------------------------------------------------------------------------------- data


# --------------------------------------------------------------------------------- model


@dataclasses.dataclass(frozen=True)
class SigmoidBeliefNetwork:
    """Parameter layout and densities; parameters are a list of arrays (or ``tf.Variable``).

    Order: encoder weights ``V`` [D, L], encoder bias ``e`` [L], decoder weights ``W``
    [L, D], decoder bias ``c`` [D], prior logits ``a`` [L]; RELAX appends its control
    variate (``log temperature``, ``scale``, residual-network weights).
    """

    backend: object
    data_size: int
    latents: int
    hidden: int = 32
    #: V, e, W, c, a: the parameters before RELAX's.
    num_model_parameters = 5

    def initial_parameters(self, seed, data_mean, control_variate: bool):
        generator = np.random.default_rng(seed)
        size, latents = self.data_size, self.latents
        mean = np.clip(data_mean, 1e-3, 1 - 1e-3)
        parameters = [
            0.01 * generator.standard_normal((size, latents)),
            np.zeros(latents),
            0.01 * generator.standard_normal((latents, size)),
            np.log(mean) - np.log1p(-mean),  # decoder bias: the pixel marginals
            np.zeros(latents),
        ]
        if control_variate:
            parameters += [
                np.asarray(math.log(0.5)), np.asarray(1.0),
                0.01 * generator.standard_normal((latents + size, self.hidden)),
                np.zeros(self.hidden), np.zeros(self.hidden), np.zeros(()),
            ]
        return [np.asarray(value, np.float32) for value in parameters]

    def posterior(self, parameters, data):
        """``q(z | x)``: a Bernoulli with batch shape [B] and event shape [L]."""
        from fxgx.distributions import Bernoulli

        weights, bias = parameters[0], parameters[1]
        return Bernoulli(self.backend.xp.matmul(data, weights) + bias, event_ndims=1)

    def _affine(self, values, weights, bias):
        """``values @ weights + bias`` for values of any leading shape."""
        backend = self.backend
        shape = tuple(values.shape)
        flat = backend.xp.reshape(values, (-1, shape[-1]))
        result = backend.xp.matmul(flat, weights) + bias
        return backend.xp.reshape(result, tuple(shape[:-1]) + (tuple(weights.shape)[-1],))

    def log_joint(self, parameters, data, latents):
        """``log p(x, z)`` for latents of shape ``[S, B, L]`` (or continuous relaxations)."""
        from fxgx.distributions import Bernoulli

        weights, bias, prior_logits = parameters[2], parameters[3], parameters[4]
        decoder_logits = self._affine(latents, weights, bias)
        likelihood = Bernoulli(decoder_logits, event_ndims=1).log_prob(data)
        return likelihood + Bernoulli(prior_logits, event_ndims=1).log_prob(latents)

    def residual(self, data):
        """RELAX's residual control variate ``r(z, x)``: one tanh layer of ``[sigmoid(z), x]``."""
        backend = self.backend

        def control_variate(perturbed, parameters):
            weights, bias, output_weights, output_bias = parameters
            shape = tuple(perturbed.shape)
            tiled = backend.xp.broadcast_to(data, tuple(shape[:-1]) + (self.data_size,))
            features = backend.xp.concat([backend.sigmoid(perturbed), tiled], axis=-1)
            hidden = backend.xp.tanh(self._affine(features, weights, bias))
            return backend.xp.sum(hidden * output_weights, axis=-1) + output_bias

        return control_variate


# ------------------------------------------------------------------------------ running


def run_estimator(card, model, train, test, arguments):
    """One card's run and its record (``example_support.train_discrete_vae``)."""
    return train_discrete_vae(card, model, train, test, arguments,
                              cost=card.evaluations(arguments.latents, 2))


def plot(records, arguments, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
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
    left.set_title(f"sigmoid belief network, L = {arguments.latents} Bernoulli latents")
    right.set_xlabel("step")
    right.set_ylabel("log10 total variance of the gradient")
    right.set_title("traced by fxgx.vi.fit (8 extra estimates)" if arguments.checkpoints
                    else "not traced (--checkpoints 0)")
    left.legend(fontsize=8)
    figure.suptitle(f"binarised 8x8 digits, {arguments.backend} backend, "
                    f"budget {arguments.evaluations} decoder evaluations per image and step")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    arguments = parse_arguments(argv)
    from fxgx.backends import framework_by_name

    backend = framework_by_name(arguments.backend)
    if backend.name == "tensorflow":
        quiet_tensorflow()
    output = Path(arguments.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    train, test = binarised_digits(arguments.seed)
    model = SigmoidBeliefNetwork(backend, train.shape[1], arguments.latents)
    cards, skipped = loss_cards(arguments.estimators, "bernoulli", arguments.evaluations,
                                configured=CONFIGURED, num_variables=arguments.latents,
                                left_out=LEFT_OUT)
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
    figure_path = output / "sigmoid_belief_network.png"
    plot(records, arguments, figure_path)
    with open(output / "sigmoid_belief_network.json", "w") as handle:
        json.dump({"arguments": vars(arguments), "skipped": skipped, "results": records},
                  handle, indent=1)
    print(f"\nfigure: {figure_path}")
    return records


if __name__ == "__main__":
    main(sys.argv[1:])
