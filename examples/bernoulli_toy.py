"""The Bernoulli toy of REBAR and RELAX, optimised with every Bernoulli estimator.

Minimise ``E_{b ~ Bernoulli(sigmoid(theta))}[(b - t)^2]`` over ``theta`` with ``t = 0.499``.
The loss is ``p (1 - t)^2 + (1 - p) t^2`` with ``p = sigmoid(theta)``, so the optimum is
``p = 0``, but the exact gradient ``p (1 - p) (1 - 2 t)`` is only ``5e-4`` at ``p = 1/2``:
an estimator must be nearly noise-free to see it (Tucker et al., 2017; Grathwohl et al.,
2018). Every estimator in the catalogue that supports Bernoulli latents trains ``theta``
from ``theta = 0`` with Adam; every ``--variance-every`` steps the script draws
``--variance-draws`` independent gradient estimates at the current ``theta`` and records
their variance. The figure shows ``p`` and ``log10 Var`` over training.

Estimators with trainable parts are trained alongside ``theta``: REBAR's temperature and
scale and RELAX's temperature, scale and a small residual network minimise the squared
norm of the gradient estimate (its variance, up to a constant); the learned baseline
regresses on ``f``; the moving-average baseline carries its state between steps.

    python examples/bernoulli_toy.py                   # TensorFlow, full run
    python examples/bernoulli_toy.py --backend jax --steps 500 --estimators disarm,relax
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from example_support import HelpFormatter, estimator_style, quiet_tensorflow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = 0.499


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Optimise the Bernoulli toy E[(b - 0.499)^2] with every Bernoulli "
        "estimator of the fxgx catalogue; plot p = sigmoid(theta) and the log-variance of "
        "the gradient estimate over training.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow",
                        help="framework that runs the training.")
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps per estimator.")
    parser.add_argument("--learning-rate", type=float, default=0.01, help="Adam's step size.")
    parser.add_argument("--target", type=float, default=TARGET, help="t in (b - t)^2.")
    parser.add_argument("--variance-every", type=int, default=25,
                        help="measure the gradient variance every this many steps.")
    parser.add_argument("--variance-draws", type=int, default=1000,
                        help="independent gradient estimates per variance measurement.")
    parser.add_argument("--estimators", default=None,
                        help="comma-separated catalogue names (default: every Bernoulli one).")
    parser.add_argument("--seed", type=int, default=0, help="random seed.")
    parser.add_argument("--output-dir", default="out/bernoulli_toy",
                        help="folder for the figure and the JSON results.")
    parser.add_argument("--quick", action="store_true",
                        help="a few steps and draws only (smoke test).")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.steps = min(arguments.steps, 4)
        arguments.variance_every = 2
        arguments.variance_draws = 8
    if arguments.steps < 1 or arguments.variance_every < 1 or arguments.variance_draws < 2:
        parser.error("--steps and --variance-every must be >= 1 and --variance-draws >= 2.")
    return arguments


# ------------------------------------------------------------------------------- recipes


class Recipe:
    """How to train ``theta`` with one estimator.

    ``extra`` are the estimator's own trainable values (numpy, trained by the same Adam),
    ``state`` its carried state. ``__call__`` returns ``(surrogate, auxiliary_loss,
    new_state)``: the surrogate's gradient w.r.t. the logits is the estimate, and the
    auxiliary loss trains ``extra`` only (it sees the logits through ``stop_gradient``).
    """

    def __init__(self, card, estimator, num_samples):
        self.card = card
        self.name = card.name
        self.estimator = estimator
        self.num_samples = num_samples
        self.extra = []
        self.state = []

    @property
    def evaluations(self) -> int:
        # Each toy is one Bernoulli variable with its own f (D = 1).
        return self.num_samples * self.card.evaluations(num_variables=1, num_classes=2)

    def __call__(self, backend, function, logits, extra, state, seed):
        from fxgx.distributions import Bernoulli

        surrogate = self.estimator(function, Bernoulli(logits), seed=seed,
                                   num_samples=self.num_samples)
        return surrogate, zero_like_scalar(backend, logits), state


def zero_like_scalar(backend, value):
    return backend.xp.sum(backend.xp.zeros_like(value)) * 0.0


class MovingAverageRecipe(Recipe):
    def __init__(self, card, estimator, num_samples):
        super().__init__(card, estimator, num_samples)
        self.state = [np.zeros((), np.float32), np.zeros((), np.float32)]

    def __call__(self, backend, function, logits, extra, state, seed):
        from fxgx.distributions import Bernoulli

        surrogate, new_state, _ = self.estimator.apply(
            tuple(state), function, Bernoulli(logits), seed=seed, num_samples=self.num_samples)
        return surrogate, zero_like_scalar(backend, logits), list(new_state)


class LearnedBaselineRecipe(Recipe):
    """The baseline is one trainable number (the toy has no input to condition on)."""

    def __init__(self, card, estimator, num_samples):
        super().__init__(card, estimator, num_samples)
        self.extra = [np.zeros((), np.float32)]

    def __call__(self, backend, function, logits, extra, state, seed):
        from fxgx.distributions import Bernoulli
        from fxgx.estimators import learned_baseline

        (baseline,) = extra
        estimator = learned_baseline(lambda distribution: baseline)
        surrogate, _, info = estimator.apply(
            (), function, Bernoulli(logits), seed=seed, num_samples=self.num_samples)
        return surrogate, backend.xp.mean(info["baseline_loss"]), state


class ControlVariateRecipe(Recipe):
    """REBAR/RELAX: temperature, scale (and RELAX's residual network) minimise ``|g|^2``."""

    hidden = 8

    def __init__(self, card, estimator, num_samples, residual: bool):
        super().__init__(card, estimator, num_samples)
        self.residual = residual
        self.extra = [np.asarray(math.log(0.5), np.float32), np.ones((), np.float32)]
        if residual:
            generator = np.random.default_rng(1)
            self.extra += [
                (0.5 * generator.standard_normal(self.hidden)).astype(np.float32),
                np.zeros(self.hidden, np.float32),
                (0.1 * generator.standard_normal(self.hidden)).astype(np.float32),
            ]

    def _overrides(self, backend, extra, stop):
        def hold(value):
            return backend.stop_gradient(value) if stop else value

        overrides = {"temperature": backend.xp.exp(hold(extra[0])), "scale": hold(extra[1])}
        if self.residual:
            overrides["control_variate_parameters"] = [hold(value) for value in extra[2:]]
        return overrides

    def __call__(self, backend, function, logits, extra, state, seed):
        from fxgx.distributions import Bernoulli

        surrogate = self.estimator(function, Bernoulli(logits), seed=seed,
                                   num_samples=self.num_samples,
                                   **self._overrides(backend, extra, stop=True))
        auxiliary = self.estimator.variance_loss(
            function, Bernoulli(backend.stop_gradient(logits)), seed=seed,
            num_samples=self.num_samples, **self._overrides(backend, extra, stop=False))
        return surrogate, auxiliary, state


def residual_network(perturbed, parameters):
    """``r(z) = sum_h w_h tanh(a_h z + c_h)``, elementwise in the perturbed logits ``z``."""
    from fxgx.backends import get_framework

    backend = get_framework(perturbed)
    slopes, offsets, weights = parameters
    hidden = backend.xp.tanh(backend.xp.expand_dims(perturbed, axis=-1) * slopes + offsets)
    return backend.xp.sum(hidden * weights, axis=-1)


def make_recipe(card):
    num_samples = max(card.num_samples, getattr(card.make(), "minimum_samples", 1))
    if card.name == "moving_average_baseline":
        return MovingAverageRecipe(card, card.make(), num_samples)
    if card.name == "learned_baseline":
        return LearnedBaselineRecipe(card, card.make(), num_samples)
    if card.name == "rebar":
        return ControlVariateRecipe(card, card.make(), num_samples, residual=False)
    if card.name == "relax":
        return ControlVariateRecipe(card, card.make(control_variate=residual_network),
                                    num_samples, residual=True)
    return Recipe(card, card.make(), num_samples)


def select_cards(names):
    from fxgx.catalogue import load_cards

    cards = {card.name: card for card in load_cards()}
    if names:
        wanted = [name.strip() for name in names.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in cards]
        if unknown:
            raise SystemExit(f"unknown estimator(s) {unknown}; the catalogue has {sorted(cards)}")
    else:
        wanted = [name for name, card in cards.items() if card.supports("bernoulli")]
    from fxgx.vi import estimator_target

    selected = []
    for name in wanted:
        if estimator_target(cards[name].make()) != "expectation":
            # VIMCO: it estimates the gradient of the multi-sample bound instead.
            print(f"skipping {name}: it estimates the gradient of the multi-sample bound "
                  "log mean exp f, not of E[f]")
        elif not cards[name].supports("bernoulli"):
            print(f"skipping {name}: it does not support Bernoulli latents")
        else:
            selected.append(cards[name])
    return selected


# ------------------------------------------------------------------------------ training


def adam(backend, values, gradients, first, second, count, learning_rate):
    """One Adam step (Kingma & Ba, 2015) on lists of arrays; ``count`` is the new step."""
    beta1, beta2, epsilon = 0.9, 0.999, 1e-8
    new_values, new_first, new_second = [], [], []
    for value, gradient, moment, squared in zip(values, gradients, first, second, strict=True):
        moment = beta1 * moment + (1 - beta1) * gradient
        squared = beta2 * squared + (1 - beta2) * backend.xp.square(gradient)
        corrected = moment / (1 - beta1**count)
        corrected_squared = squared / (1 - beta2**count)
        new_values.append(value - learning_rate * corrected / (backend.xp.sqrt(corrected_squared)
                                                              + epsilon))
        new_first.append(moment)
        new_second.append(squared)
    return new_values, new_first, new_second


def train(recipe, backend, arguments):
    """Train ``theta`` with ``recipe``; returns the trajectory of ``p`` and the variances."""
    target = arguments.target
    dtype = "float32"

    def function(samples):
        return backend.xp.square(samples - target)

    def objective(values, state, seed):
        theta, extra = values[0], values[1:]
        surrogate, auxiliary, new_state = recipe(backend, function, theta, extra, state, seed)
        return surrogate + auxiliary, new_state

    def step(values, first, second, count, state, seed):
        def loss(*values):
            return objective(list(values), state, seed)[0]

        value, gradients = backend.value_and_gradient(loss, values)
        # The carried state (moving average) from the same samples, outside the gradient.
        new_state = objective([backend.stop_gradient(v) for v in values], state, seed)[1]
        values, first, second = adam(backend, values, gradients, first, second, count,
                                     arguments.learning_rate)
        return values, first, second, value, new_state

    draws = arguments.variance_draws

    def variance(values, state, seed):
        theta, extra = values[0], [backend.stop_gradient(value) for value in values[1:]]

        def surrogate(logits):
            return backend.xp.sum(recipe(backend, function, logits, extra, state, seed)[0])

        batch = backend.xp.ones((draws,), dtype=dtype) * backend.stop_gradient(theta)
        _, (gradients,) = backend.value_and_gradient(surrogate, [batch])
        mean = backend.xp.mean(gradients)
        return backend.xp.sum(backend.xp.square(gradients - mean)) / (draws - 1), mean

    step = backend.compile(step)
    variance = backend.compile(variance)
    convert = backend.xp.asarray
    values = [convert(np.zeros((), np.float32))] + [convert(value) for value in recipe.extra]
    first = [backend.xp.zeros_like(value) for value in values]
    second = [backend.xp.zeros_like(value) for value in values]
    state = [convert(value) for value in recipe.state]

    def seed_pair(index):
        return convert(np.array([arguments.seed, index], np.int32))

    probabilities, variance_steps, variances, mean_gradients = [], [], [], []
    start = time.perf_counter()
    for index in range(arguments.steps):
        if index % arguments.variance_every == 0 or index == arguments.steps - 1:
            measured, mean = variance(values, state, seed_pair(2 * index + 1))
            variance_steps.append(index)
            variances.append(float(measured))
            mean_gradients.append(float(mean))
        values, first, second, _, state = step(
            values, first, second, convert(np.float32(index + 1)), state, seed_pair(2 * index))
        probabilities.append(float(1.0 / (1.0 + np.exp(-float(values[0])))))
    seconds = time.perf_counter() - start
    return {
        "name": recipe.name,
        "unbiased": recipe.card.unbiased,
        "evaluations_per_step": recipe.evaluations,
        "probabilities": probabilities,
        "variance_steps": variance_steps,
        "variances": variances,
        "mean_gradients": mean_gradients,
        "seconds": seconds,
    }


# ------------------------------------------------------------------------------- figures


def plot(results, arguments, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8))
    logs = []
    for result in results:
        style = estimator_style(result["name"])
        label = f"{result['name']} ({result['evaluations_per_step']} f/step)"
        left.plot(np.arange(1, len(result["probabilities"]) + 1), result["probabilities"],
                  label=label, linewidth=1.2, **style)
        log_variance = np.log10(np.maximum(result["variances"], 1e-30))
        logs.append(log_variance[np.asarray(result["variances"]) > 0])
        right.plot(result["variance_steps"], log_variance, marker=".", linewidth=1.2, **style)
    values = np.concatenate(logs) if logs else np.zeros(1)
    if values.size:
        right.set_ylim(np.percentile(values, 1) - 0.5, values.max() + 0.5)
    left.set_xlabel("step")
    left.set_ylabel("p = sigmoid(theta)")
    left.set_title(f"E[(b - {arguments.target:g})^2]: optimum p = 0")
    left.set_ylim(-0.02, 1.02)
    right.set_xlabel("step")
    right.set_ylabel("log10 Var(gradient estimate)")
    right.set_title(f"variance of {arguments.variance_draws} independent estimates")
    figure.legend(loc="center right", fontsize=8, frameon=False)
    figure.suptitle(f"Bernoulli toy, {arguments.backend} backend (dashed: biased estimators)")
    figure.tight_layout(rect=(0, 0, 0.83, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    arguments = parse_arguments(argv)
    from fxgx.backends import framework_by_name

    backend = framework_by_name(arguments.backend)
    if arguments.backend == "tensorflow":
        quiet_tensorflow()
    output = Path(arguments.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    results = []
    for card in select_cards(arguments.estimators):
        recipe = make_recipe(card)
        result = train(recipe, backend, arguments)
        results.append(result)
        print(f"{result['name']:<26} p = {result['probabilities'][-1]:.4f}  "
              f"log10 Var = {np.log10(max(result['variances'][-1], 1e-30)):6.2f}  "
              f"({result['seconds']:.1f} s)", flush=True)
    if not results:
        raise SystemExit("no estimator to run")
    print()
    print(f"{'estimator':<26} {'f/step':>6} {'final p':>9} {'median log10 Var':>17} "
          f"{'seconds':>8}")
    for result in results:
        result["median_log10_variance"] = float(
            np.median(np.log10(np.maximum(result["variances"], 1e-30))))
        print(f"{result['name']:<26} {result['evaluations_per_step']:>6} "
              f"{result['probabilities'][-1]:>9.4f} {result['median_log10_variance']:>17.2f} "
              f"{result['seconds']:>8.1f}")
    figure_path = output / "bernoulli_toy.png"
    plot(results, arguments, figure_path)
    with open(output / "bernoulli_toy.json", "w") as handle:
        json.dump({"arguments": vars(arguments), "results": results}, handle, indent=1)
    print(f"\nfigure: {figure_path}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
