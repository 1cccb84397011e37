"""Variational inference for the assignments of a Gaussian mixture, checked by enumeration.

The model, for ``N`` one-dimensional points and ``K`` components:

    c_n ~ Categorical(1/K, ..., 1/K)              (assignments, one-hot)
    mu_k ~ Normal(m_k, s0^2)                      (component means; m = evenly spaced)
    x_n | c_n = k, mu ~ Normal(mu_k, sigma^2)

With ``--means collapsed`` (default) the means are integrated out analytically: the points
of one component are jointly Gaussian, ``x_S ~ N(m_k 1, sigma^2 I + s0^2 1 1^T)``, so the
target ``log p(x, c)`` is a function of the discrete assignments only, and the surrogate is
a mean-field ``q(c) = prod_n Categorical(c_n; softmax(phi_n))`` trained with a categorical
gradient estimator. With ``--means normal`` the means stay in the model and the surrogate
is ``q(c) q(mu)`` with a reparameterised ``q(mu) = prod_k Normal(loc_k, scale_k)``: one
``fxgx.vi.elbo`` call handles both kinds of latent.

Everything is checked exactly: ``log p(x)`` by enumerating all ``K^N`` assignments (729
for the default ``N = 6``, ``K = 3``), the ELBO of the fitted ``q`` in closed form (an
expectation over ``q(c)`` by enumeration), the best mean-field ELBO by coordinate-ascent VI
on exact expectations, and ``q``'s assignment probabilities against the exact posterior
marginals ``p(c_n = k | x)``.

    python examples/gaussian_mixture.py                 # TensorFlow
    python examples/gaussian_mixture.py --backend jax --means normal
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from example_support import (
    HelpFormatter,
    estimator_style,
    fit_with_annealing,
    make_parameters,
    select_cards,
    smooth,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_ESTIMATORS = ("reinforce_leave_one_out", "rebar", "gumbel_softmax", "straight_through")


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Mean-field VI over the assignments of a small Gaussian mixture with "
        "categorical gradient estimators; the ELBO is compared with the exact log evidence "
        "from enumerating all K^N assignments.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow",
                        help="framework that runs the training.")
    parser.add_argument("--points", type=int, default=6, help="N data points.")
    parser.add_argument("--components", type=int, default=3, help="K mixture components.")
    parser.add_argument("--means", choices=("collapsed", "normal"), default="collapsed",
                        help="integrate the means out exactly, or fit a Normal q(mu).")
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps per estimator.")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="Adam's step size.")
    parser.add_argument("--anneal-fraction", type=float, default=0.25,
                        help="run this last fraction of the steps at a tenth of the rate.")
    parser.add_argument("--num-samples", type=int, default=4,
                        help="Monte Carlo samples per step (the estimator's num_samples).")
    parser.add_argument("--noise-scale", type=float, default=1.0, help="sigma.")
    parser.add_argument("--prior-scale", type=float, default=2.0, help="s0.")
    parser.add_argument("--estimators", default=",".join(DEFAULT_ESTIMATORS),
                        help="comma-separated catalogue names (categorical estimators).")
    parser.add_argument("--seed", type=int, default=0, help="random seed.")
    parser.add_argument("--output-dir", default="out/gaussian_mixture",
                        help="folder for the figure and the JSON results.")
    parser.add_argument("--quick", action="store_true", help="a few steps (smoke test).")
    arguments = parser.parse_args(argv)
    if not 0 <= arguments.anneal_fraction < 1:
        parser.error("--anneal-fraction must lie in [0, 1).")
    if arguments.quick:
        arguments.steps = min(arguments.steps, 4)
        arguments.anneal_fraction = 0.0
    if arguments.points < 1 or arguments.components < 2 or arguments.steps < 1:
        parser.error("need --points >= 1, --components >= 2 and --steps >= 1.")
    if arguments.components ** arguments.points > 2**20:
        parser.error("K^N must stay below 2^20 for the exact enumeration.")
    if arguments.noise_scale <= 0 or arguments.prior_scale <= 0:
        parser.error("--noise-scale and --prior-scale must be positive.")
    return arguments


# ---------------------------------------------------------------------------------- model


class Mixture:
    """The model's constants, and its densities in numpy (exact) and in a framework's array
    API namespace (the same code: NumPy implements the standard)."""

    def __init__(self, points, components, noise_scale, prior_scale, seed):
        self.components = components
        self.noise = noise_scale
        self.prior = prior_scale
        spread = 3.0 * noise_scale
        self.prior_means = spread * (np.arange(components) - (components - 1) / 2)
        # Synthetic data: true means near the prior means, points assigned in turn.
        generator = np.random.default_rng(seed)
        true_means = self.prior_means + prior_scale * 0.5 * generator.standard_normal(components)
        labels = np.arange(points) % components
        self.labels = labels
        self.data = true_means[labels] + noise_scale * generator.standard_normal(points)

    def collapsed_log_joint(self, ops, assignments):
        """``log p(x, c)`` with the means integrated out, for one-hot (or relaxed) assignments
        ``[..., N, K]``. ``ops`` is an array API namespace: numpy (float64, exact) or the
        framework's ``xp``."""
        data = self.data.astype(np.float32) if ops is not np else self.data
        prior_means = self.prior_means.astype(data.dtype)
        residual = data[:, None] - prior_means[None, :]  # [N, K]
        counts = ops.sum(assignments, axis=-2)
        total = ops.sum(assignments * residual, axis=-2)
        squares = ops.sum(assignments * residual**2, axis=-2)
        variance, prior_variance = self.noise**2, self.prior**2
        log_likelihood = (
            -0.5 * counts * math.log(2 * math.pi * variance)
            - 0.5 * ops.log(1.0 + counts * prior_variance / variance)
            - (squares - prior_variance * total**2 / (variance + counts * prior_variance))
            / (2 * variance)
        )
        points = self.data.shape[0]
        return ops.sum(log_likelihood, axis=-1) - points * math.log(self.components)

    def full_log_joint(self, ops, assignments, means):
        """``log p(x, c, mu)`` for assignments ``[S, N, K]`` and means ``[S, K]``."""
        data = self.data.astype(np.float32)
        variance = self.noise**2
        squared = (data[:, None] - ops.expand_dims(means, axis=-2)) ** 2  # [S, N, K]
        log_normal = -0.5 * math.log(2 * math.pi * variance) - squared / (2 * variance)
        likelihood = ops.sum(assignments * log_normal, axis=(-2, -1))
        prior_means = self.prior_means.astype(np.float32)
        log_prior = ops.sum(
            -0.5 * math.log(2 * math.pi * self.prior**2)
            - (means - prior_means) ** 2 / (2 * self.prior**2), axis=-1)
        return likelihood + log_prior - self.data.shape[0] * math.log(self.components)

    # ----------------------------------------------------------------- exact (numpy)

    def all_assignments(self):
        """Every assignment, one-hot: ``[K^N, N, K]``."""
        points, components = self.data.shape[0], self.components
        indices = np.array(list(itertools.product(range(components), repeat=points)))
        return np.eye(components)[indices]

    def exact(self):
        """``log p(x)`` and the posterior marginals ``p(c_n = k | x)`` by enumeration."""
        states = self.all_assignments()
        log_joint = self.collapsed_log_joint(np, states)
        log_evidence = float(_logsumexp(log_joint))
        posterior = np.exp(log_joint - log_evidence)
        return log_evidence, np.einsum("s,snk->nk", posterior, states)

    def collapsed_elbo(self, probabilities):
        """The exact ELBO of a mean-field ``q(c)`` (enumeration over all assignments)."""
        states = self.all_assignments()
        log_q = np.log(np.maximum(np.einsum("snk,nk->sn", states, probabilities), 1e-300))
        log_q = log_q.sum(-1)
        weights = np.exp(log_q)
        return float(np.sum(weights * (self.collapsed_log_joint(np, states) - log_q)))

    def full_elbo(self, probabilities, loc, scale):
        """The exact ELBO of ``q(c) q(mu)`` (closed form: Gaussian expectations)."""
        variance, prior_variance = self.noise**2, self.prior**2
        expected_log_normal = (-0.5 * math.log(2 * math.pi * variance)
                               - ((self.data[:, None] - loc) ** 2 + scale**2) / (2 * variance))
        likelihood = np.sum(probabilities * expected_log_normal)
        log_prior = np.sum(-0.5 * math.log(2 * math.pi * prior_variance)
                           - ((loc - self.prior_means) ** 2 + scale**2) / (2 * prior_variance))
        entropy_c = -np.sum(probabilities * np.log(np.maximum(probabilities, 1e-300)))
        entropy_mu = np.sum(0.5 * np.log(2 * math.pi * math.e * scale**2))
        points = self.data.shape[0]
        return float(likelihood + log_prior - points * math.log(self.components)
                     + entropy_c + entropy_mu)

    def best_mean_field(self, means: str, restarts: int = 10, iterations: int = 300):
        """``(elbo, assignment probabilities)`` of the best ``q`` coordinate-ascent VI finds
        (exact updates, several random restarts)."""
        points, components = self.data.shape[0], self.components
        generator = np.random.default_rng(12345)
        states = self.all_assignments() if means == "collapsed" else None
        best, best_probabilities = -np.inf, None
        for _ in range(restarts):
            probabilities = generator.dirichlet(np.ones(components), size=points)
            for _ in range(iterations):
                previous = probabilities.copy()
                if means == "collapsed":
                    log_joint = self.collapsed_log_joint(np, states)
                    for n in range(points):
                        others = np.einsum("snk,nk->sn", states, probabilities)
                        others[:, n] = 1.0
                        weight = others.prod(-1)
                        # E_{q_-n}[log p(x, c)] for each value of c_n.
                        expected = np.einsum("s,sk->k", weight * log_joint, states[:, n])
                        normalizer = np.einsum("s,sk->k", weight, states[:, n])
                        update = expected / normalizer
                        probabilities[n] = np.exp(update - _logsumexp(update))
                else:
                    loc, scale = self._mean_updates(probabilities)
                    expected = -((self.data[:, None] - loc) ** 2 + scale**2) / (
                        2 * self.noise**2)
                    probabilities = np.exp(expected - _logsumexp(expected, axis=1)[:, None])
                if np.max(np.abs(probabilities - previous)) < 1e-10:
                    break
            if means == "collapsed":
                value = self.collapsed_elbo(probabilities)
            else:
                value = self.full_elbo(probabilities, *self._mean_updates(probabilities))
            if value > best:
                best, best_probabilities = value, probabilities
        return float(best), best_probabilities

    def _mean_updates(self, probabilities):
        precision = 1 / self.prior**2 + probabilities.sum(0) / self.noise**2
        loc = (self.prior_means / self.prior**2
               + probabilities.T @ self.data / self.noise**2) / precision
        return loc, 1 / np.sqrt(precision)


def _logsumexp(values, axis=None):
    peak = np.max(values, axis=axis, keepdims=True)
    total = np.log(np.sum(np.exp(values - peak), axis=axis, keepdims=True)) + peak
    return total.squeeze() if axis is None else np.squeeze(total, axis=axis)


# ------------------------------------------------------------------------------ training


def fit_one(card, mixture, backend, arguments):
    from fxgx import vi
    from fxgx.distributions import Normal, OneHotCategorical

    estimator = card.make()
    num_samples = max(arguments.num_samples, getattr(estimator, "minimum_samples", 1))
    points, components = mixture.data.shape[0], mixture.components
    arrays = [np.zeros((points, components), np.float32)]
    if arguments.means == "normal":
        arrays += [mixture.prior_means.astype(np.float32),
                   np.full(components, math.log(math.expm1(1.0)), np.float32)]
    parameters = make_parameters(backend, arrays)

    def surrogate(parameters):
        assignments = OneHotCategorical(parameters[0], event_ndims=1)
        if arguments.means == "collapsed":
            return assignments
        return [assignments, Normal(parameters[1], backend.softplus(parameters[2]),
                                    event_ndims=1)]

    def target(*parts):
        if arguments.means == "collapsed":
            return mixture.collapsed_log_joint(backend.xp, parts[0])
        return mixture.full_log_joint(backend.xp, *parts)

    def loss(parameters, seed):
        return -vi.elbo(target, surrogate(parameters), seed=seed, num_samples=num_samples,
                        estimator=estimator)

    final_parameters, losses, variance_steps, variances, seconds = fit_with_annealing(
        loss, parameters, arguments)
    final = [np.asarray(value, np.float64) for value in final_parameters]
    logits = final[0]
    probabilities = np.exp(logits - _logsumexp(logits, axis=1)[:, None])
    if arguments.means == "collapsed":
        exact_elbo = mixture.collapsed_elbo(probabilities)
    else:
        exact_elbo = mixture.full_elbo(probabilities, final[1], np.logaddexp(0.0, final[2]))
    return {
        "name": card.name, "unbiased": card.unbiased, "num_samples": num_samples,
        "elbo_estimates": (-np.asarray(losses)).tolist(),
        "variance_steps": variance_steps,
        "gradient_variance": variances,
        "exact_elbo": exact_elbo, "probabilities": probabilities.tolist(),
        "seconds": seconds,
    }


# ------------------------------------------------------------------------------- figures


def plot(records, mixture, exact, best, arguments, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_evidence, posterior = exact
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    window = max(1, arguments.steps // 20)
    for record in records:
        curve = smooth(record["elbo_estimates"], window)
        left.plot(np.arange(1, len(curve) + 1), curve, **estimator_style(record["name"]),
                  label=f"{record['name']} (exact ELBO of final q {record['exact_elbo']:.3f})")
    left.axhline(log_evidence, color="black", linewidth=1,
                 label=f"log p(x) = {log_evidence:.3f} (enumeration)")
    left.axhline(best[0], color="gray", linestyle=":", linewidth=1,
                 label=f"best mean-field ELBO {best[0]:.3f} (CAVI)")
    curves = np.concatenate([smooth(r["elbo_estimates"], window) for r in records])
    left.set_ylim(np.percentile(curves, 2) - 0.5, max(log_evidence, curves.max()) + 0.5)
    left.set_xlabel("step")
    left.set_ylabel(f"ELBO estimate ({window}-step average)")
    left.set_title(f"N = {len(mixture.data)}, K = {mixture.components}, means "
                   f"{arguments.means}")
    left.legend(fontsize=7, loc="lower right")

    points, components = posterior.shape
    colors = plt.get_cmap("tab10")(np.arange(components))
    columns = [("exact", posterior), ("CAVI", best[1])] + [
        (r["name"], np.asarray(r["probabilities"])) for r in records]
    width = 0.8 / len(columns)
    for column, (_, probabilities) in enumerate(columns):
        positions = np.arange(points) + (column - (len(columns) - 1) / 2) * width
        bottom = np.zeros(points)
        for k in range(components):
            right.bar(positions, probabilities[:, k], width * 0.85, bottom=bottom,
                      color=colors[k], edgecolor="black" if column == 0 else "none",
                      linewidth=0.8, label=f"k = {k + 1}" if column == 0 else None)
            bottom += probabilities[:, k]
    right.set_xticks(np.arange(points))
    right.set_xticklabels([f"x={value:.2f}" for value in mixture.data], fontsize=8)
    right.set_ylabel("P(c_n = k)")
    right.set_title("assignment probabilities of each point", fontsize=10)
    right.set_xlabel("bars per point, left to right: exact p(c_n | x) (outlined), then q from "
                     + ", ".join(name for name, _ in columns[1:]) + " (CAVI: best mean-field q)",
                     fontsize=7, wrap=True)
    right.set_ylim(0, 1.12)
    right.legend(fontsize=7, loc="upper center", ncol=components, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    arguments = parse_arguments(argv)
    from fxgx.backends import framework_by_name

    backend = framework_by_name(arguments.backend)
    if backend.name == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    output = Path(arguments.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    mixture = Mixture(arguments.points, arguments.components, arguments.noise_scale,
                      arguments.prior_scale, arguments.seed)
    log_evidence, posterior = mixture.exact()
    best, best_probabilities = mixture.best_mean_field(arguments.means)
    print(f"data: {np.array2string(mixture.data, precision=2)}")
    print(f"exact log p(x) = {log_evidence:.4f} by enumerating "
          f"{arguments.components ** arguments.points} assignments; best mean-field ELBO "
          f"(CAVI) = {best:.4f}")
    records = []
    for card in select_cards(arguments.estimators, "categorical"):
        record = fit_one(card, mixture, backend, arguments)
        records.append(record)
        error = np.max(np.abs(np.asarray(record["probabilities"]) - posterior))
        record["max_probability_error"] = float(error)
        record["max_difference_from_cavi"] = float(
            np.max(np.abs(np.asarray(record["probabilities"]) - best_probabilities)))
        record["final_estimate"] = float(np.mean(
            record["elbo_estimates"][-max(1, arguments.steps // 10):]))
        print(f"{record['name']:<24} exact ELBO {record['exact_elbo']:9.4f}  gap to log p(x) "
              f"{log_evidence - record['exact_elbo']:7.4f}  max |q - p| {error:.3f}  "
              f"({record['seconds']:.1f} s)", flush=True)
    if not records:
        raise SystemExit("no estimator to run")
    print()
    print("| estimator | samples | ELBO estimate (last 10%) | exact ELBO of q | "
          "log p(x) - ELBO | max abs(q - p) | max abs(q - CAVI q) |")
    print("|---|---|---|---|---|---|---|")
    for record in records:
        print(f"| {record['name']} | {record['num_samples']} | {record['final_estimate']:.3f} | "
              f"{record['exact_elbo']:.4f} | {log_evidence - record['exact_elbo']:.4f} | "
              f"{record['max_probability_error']:.3f} | {record['max_difference_from_cavi']:.3f} |")
    print(f"| exact (enumeration) | | | log p(x) = {log_evidence:.4f} | | | |")
    print(f"| best mean-field (CAVI) | | | {best:.4f} | {log_evidence - best:.4f} | "
          f"{np.max(np.abs(best_probabilities - posterior)):.3f} | 0 |")
    figure_path = output / "gaussian_mixture.png"
    plot(records, mixture, (log_evidence, posterior), (best, best_probabilities), arguments,
         figure_path)
    with open(output / "gaussian_mixture.json", "w") as handle:
        json.dump({"arguments": vars(arguments), "data": mixture.data.tolist(),
                   "log_evidence": log_evidence, "best_mean_field_elbo": best,
                   "best_mean_field_probabilities": best_probabilities.tolist(),
                   "posterior": posterior.tolist(), "results": records}, handle, indent=1)
    print(f"\nfigure: {figure_path}")
    return {"log_evidence": log_evidence, "best_mean_field_elbo": best, "results": records}


if __name__ == "__main__":
    main(sys.argv[1:])
