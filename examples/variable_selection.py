"""Bayesian variable selection: spike-and-slab regression with Bernoulli inclusion indicators.

The model, for ``n`` observations and ``p`` standardised predictors ``X``:

    gamma_j ~ Bernoulli(h)                                 (predictor j in the model?)
    sigma^2 ~ InverseGamma(a, b)
    beta_j | gamma_j = 1 ~ Normal(0, tau^2 sigma^2),   beta_j = 0 when gamma_j = 0
    y | beta, sigma^2 ~ Normal(X beta, sigma^2 I)

The coefficients and the noise variance are integrated out exactly. With ``D = diag(gamma)``,
``A = I_p + tau^2 D X^T X D`` and ``R = y^T y - tau^2 y^T X D A^{-1} D X^T y``,

    log p(y | gamma) = log Gamma(a + n/2) - log Gamma(a) + a log b - (n/2) log(2 pi)
                       - 1/2 log det A - (a + n/2) log(b + R/2),

so the target ``log p(y, gamma)`` is a function of the indicators only. (For 0/1 ``gamma``
this equals the usual formula with the columns of ``X_gamma``; it is also defined, and
differentiable, for relaxed ``gamma`` in [0, 1], which Gumbel-softmax and REBAR need.)

The surrogate is a mean-field ``q(gamma) = prod_j Bernoulli(sigmoid(phi_j))``, trained by
``fxgx.vi.elbo`` with Bernoulli estimators. With ``p <= 12`` every one of the ``2^p``
models can be enumerated: the script compares ``q``'s inclusion probabilities with the exact
posterior inclusion probabilities, the ELBO with ``log p(y)``, and both with the true support
of the synthetic data.

    python examples/variable_selection.py                 # TensorFlow
    python examples/variable_selection.py --backend jax --predictors 10
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

DEFAULT_ESTIMATORS = ("disarm", "reinforce_leave_one_out", "rebar", "gumbel_softmax")
MAXIMUM_PREDICTORS = 16


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Spike-and-slab linear regression: posterior inclusion probabilities from "
        "mean-field VI over Bernoulli indicators, compared with exact enumeration of all "
        "2^p models and with the true support of synthetic data.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow",
                        help="framework that runs the training.")
    parser.add_argument("--observations", type=int, default=60, help="n.")
    parser.add_argument("--predictors", type=int, default=12, help="p (at most 16).")
    parser.add_argument("--support", type=int, default=4, help="true non-zero coefficients.")
    parser.add_argument("--correlation", type=float, default=0.7,
                        help="rho: predictors have correlation rho^|i - j|.")
    parser.add_argument("--prior-inclusion", type=float, default=0.25, help="h.")
    parser.add_argument("--slab-scale", type=float, default=1.0, help="tau.")
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps per estimator.")
    parser.add_argument("--learning-rate", type=float, default=0.03, help="Adam's step size.")
    parser.add_argument("--anneal-fraction", type=float, default=0.25,
                        help="run this last fraction of the steps at a tenth of the rate.")
    parser.add_argument("--evaluations", type=int, default=4,
                        help="target evaluations per step (the shared budget).")
    parser.add_argument("--estimators", default=",".join(DEFAULT_ESTIMATORS),
                        help="comma-separated catalogue names (Bernoulli estimators).")
    parser.add_argument("--seed", type=int, default=0, help="random seed.")
    parser.add_argument("--output-dir", default="out/variable_selection",
                        help="folder for the figure and the JSON results.")
    parser.add_argument("--quick", action="store_true",
                        help="a small problem and a few steps (smoke test).")
    arguments = parser.parse_args(argv)
    if not 0 <= arguments.anneal_fraction < 1:
        parser.error("--anneal-fraction must lie in [0, 1).")
    if arguments.quick:
        arguments.steps = min(arguments.steps, 4)
        arguments.anneal_fraction = 0.0
        arguments.predictors = min(arguments.predictors, 5)
        arguments.support = min(arguments.support, 2)
    if not 1 <= arguments.predictors <= MAXIMUM_PREDICTORS:
        parser.error(f"--predictors must lie in 1..{MAXIMUM_PREDICTORS} (exact enumeration).")
    if not 0 <= arguments.support <= arguments.predictors:
        parser.error("--support must lie in 0..--predictors.")
    if not 0 < arguments.prior_inclusion < 1 or arguments.slab_scale <= 0:
        parser.error("--prior-inclusion must lie in (0, 1) and --slab-scale be positive.")
    if not -1 < arguments.correlation < 1 or arguments.steps < 1 or arguments.evaluations < 1:
        parser.error("--correlation must lie in (-1, 1); --steps, --evaluations >= 1.")
    return arguments


# ---------------------------------------------------------------------------------- model


class SpikeAndSlab:
    """Synthetic data and the collapsed log joint ``log p(y, gamma)``."""

    shape, rate = 1.0, 1.0  # InverseGamma(a, b) on sigma^2

    def __init__(self, arguments):
        generator = np.random.default_rng(arguments.seed)
        n, p = arguments.observations, arguments.predictors
        covariance = arguments.correlation ** np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
        design = generator.standard_normal((n, p)) @ np.linalg.cholesky(covariance).T
        design = (design - design.mean(0)) / design.std(0)
        support = np.sort(generator.choice(p, arguments.support, replace=False))
        coefficients = np.zeros(p)
        signs = generator.choice([-1.0, 1.0], arguments.support)
        coefficients[support] = signs * generator.uniform(0.5, 1.5, arguments.support)
        response = design @ coefficients + generator.standard_normal(n)
        self.design, self.response = design, response - response.mean()
        self.support, self.coefficients = support, coefficients
        self.prior_inclusion, self.slab_scale = arguments.prior_inclusion, arguments.slab_scale
        self.gram = self.design.T @ self.design
        self.correlation = self.design.T @ self.response
        n = len(response)
        self.constant = (math.lgamma(self.shape + n / 2) - math.lgamma(self.shape)
                         + self.shape * math.log(self.rate) - n / 2 * math.log(2 * math.pi))

    @property
    def predictors(self) -> int:
        return self.design.shape[1]

    def log_joint(self, linear_algebra, indicators):
        """``log p(y, gamma)`` for indicators ``[..., p]`` (0/1, or relaxed in [0, 1])."""
        ops = linear_algebra
        tau2 = self.slab_scale**2
        n = self.design.shape[0]
        gram = ops.constant(self.gram)
        correlation = ops.constant(self.correlation)
        masked = ops.expand_dims(indicators, -1) * gram * ops.expand_dims(indicators, -2)
        matrix = ops.identity(self.predictors) + tau2 * masked
        projected = indicators * correlation
        log_determinant, quadratic = ops.log_determinant_and_quadratic(matrix, projected)
        residual = float(self.response @ self.response) - tau2 * quadratic
        log_likelihood = (self.constant - 0.5 * log_determinant
                          - (self.shape + n / 2) * ops.log(self.rate + residual / 2))
        h = self.prior_inclusion
        log_prior = ops.sum(indicators * math.log(h) + (1 - indicators) * math.log1p(-h))
        return log_likelihood + log_prior

    # ---------------------------------------------------------------- exact (numpy)

    def all_models(self):
        return np.array(list(itertools.product((0.0, 1.0), repeat=self.predictors)))

    def exact(self):
        """``log p(y)``, posterior inclusion probabilities, the log joint of every model."""
        models = self.all_models()
        log_joint = self.log_joint(NumpyAlgebra(), models)
        log_evidence = float(logsumexp(log_joint))
        posterior = np.exp(log_joint - log_evidence)
        return log_evidence, posterior @ models, models, log_joint

    @staticmethod
    def elbo(probabilities, models, log_joint):
        """The exact ELBO of ``q(gamma) = prod_j Bernoulli(probabilities_j)``."""
        probabilities = np.clip(probabilities, 1e-300, 1 - 1e-16)
        log_q = models @ np.log(probabilities) + (1 - models) @ np.log1p(-probabilities)
        return float(np.sum(np.exp(log_q) * (log_joint - log_q)))

    def best_mean_field(self, models, log_joint, restarts=10, iterations=100):
        """``(elbo, probabilities)`` of the best ``q`` coordinate-ascent VI reaches with exact
        expectations (several random restarts)."""
        generator = np.random.default_rng(54321)
        best, best_probabilities = -np.inf, None
        for _ in range(restarts):
            probabilities = generator.uniform(0.05, 0.95, self.predictors)
            for _ in range(iterations):
                previous = probabilities.copy()
                for j in range(self.predictors):
                    others = np.where(models == 1, probabilities, 1 - probabilities)
                    others[:, j] = 1.0
                    weight = others.prod(-1)
                    on, off = models[:, j] == 1, models[:, j] == 0
                    difference = (np.sum(weight[on] * log_joint[on]) / np.sum(weight[on])
                                  - np.sum(weight[off] * log_joint[off]) / np.sum(weight[off]))
                    probabilities[j] = 1 / (1 + np.exp(-difference))
                if np.max(np.abs(probabilities - previous)) < 1e-10:
                    break
            value = self.elbo(probabilities, models, log_joint)
            if value > best:
                best, best_probabilities = value, probabilities
        return float(best), best_probabilities


def logsumexp(values):
    peak = np.max(values)
    return np.log(np.sum(np.exp(values - peak))) + peak


class NumpyAlgebra:
    """The few array operations ``log_joint`` needs, in numpy (float64, for the exact part)."""

    constant = staticmethod(np.asarray)
    expand_dims = staticmethod(np.expand_dims)
    identity = staticmethod(np.eye)
    log = staticmethod(np.log)

    @staticmethod
    def sum(values):
        return np.sum(values, axis=-1)

    @staticmethod
    def log_determinant_and_quadratic(matrix, vector):
        factor = np.linalg.cholesky(matrix)
        log_determinant = 2 * np.sum(np.log(np.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
        solved = np.linalg.solve(factor, vector[..., None])[..., 0]
        return log_determinant, np.sum(solved**2, axis=-1)


class FrameworkAlgebra:
    """The same operations on the framework's arrays (float32), with the framework's Cholesky."""

    def __init__(self, backend):
        self.backend = backend
        if backend.name == "tensorflow":
            import tensorflow as tf

            self._cholesky = tf.linalg.cholesky
            self._solve = lambda factor, rhs: tf.linalg.triangular_solve(factor, rhs, lower=True)
            self._diagonal = tf.linalg.diag_part
        else:
            import jax.numpy as jnp
            from jax.scipy.linalg import solve_triangular

            self._cholesky = jnp.linalg.cholesky
            self._solve = lambda factor, rhs: solve_triangular(factor, rhs, lower=True)
            self._diagonal = lambda matrix: jnp.diagonal(matrix, axis1=-2, axis2=-1)

    def constant(self, value):
        return self.backend.xp.asarray(np.asarray(value, np.float32))

    def expand_dims(self, value, axis):
        return self.backend.xp.expand_dims(value, axis=axis)

    def identity(self, size):
        return self.constant(np.eye(size))

    def log(self, value):
        return self.backend.xp.log(value)

    def sum(self, value):
        return self.backend.xp.sum(value, axis=-1)

    def log_determinant_and_quadratic(self, matrix, vector):
        backend = self.backend
        factor = self._cholesky(matrix)
        log_determinant = 2 * backend.xp.sum(backend.xp.log(self._diagonal(factor)), axis=-1)
        solved = self._solve(factor, backend.xp.expand_dims(vector, axis=-1))
        return log_determinant, backend.xp.sum(backend.xp.square(solved), axis=(-2, -1))


# ------------------------------------------------------------------------------ training


def fit_one(card, model, backend, arguments, exact):
    from fxgx import vi
    from fxgx.distributions import Bernoulli

    estimator = card.make()
    cost = card.evaluations(num_variables=model.predictors, num_classes=2)
    num_samples = max(getattr(estimator, "minimum_samples", 1), arguments.evaluations // cost)
    algebra = FrameworkAlgebra(backend)
    prior_logit = math.log(model.prior_inclusion / (1 - model.prior_inclusion))
    parameters = make_parameters(backend, [np.full(model.predictors, prior_logit, np.float32)])

    def target(indicators):
        return model.log_joint(algebra, indicators)

    def loss(parameters, seed):
        surrogate = Bernoulli(parameters[0], event_ndims=1)
        return -vi.elbo(target, surrogate, seed=seed, num_samples=num_samples,
                        estimator=estimator)

    final_parameters, losses, variance_steps, variances, seconds = fit_with_annealing(
        loss, parameters, arguments)
    logits = np.asarray(final_parameters[0], np.float64)
    probabilities = 1 / (1 + np.exp(-logits))
    _, _, models, log_joint = exact
    return {
        "name": card.name, "unbiased": card.unbiased, "num_samples": num_samples,
        "evaluations_per_step": num_samples * cost,
        "elbo_estimates": (-np.asarray(losses)).tolist(),
        "variance_steps": variance_steps,
        "gradient_variance": variances,
        "inclusion_probabilities": probabilities.tolist(),
        "exact_elbo": model.elbo(probabilities, models, log_joint),
        "seconds": seconds,
    }


# ------------------------------------------------------------------------------- figures


def plot(records, model, exact, best, arguments, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_evidence, inclusion = exact[0], exact[1]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5),
                                         gridspec_kw={"width_ratios": [1.4, 1]})
    columns = [("exact", inclusion, {"color": "black"}),
               ("best mean-field (CAVI)", best[1], {"color": "gray"})] + [
        (r["name"], np.asarray(r["inclusion_probabilities"]),
         {"color": estimator_style(r["name"])["color"], "hatch": None if r["unbiased"] else "//"})
        for r in records]
    width = 0.85 / len(columns)
    predictors = np.arange(model.predictors)
    for support in model.support:
        left.axvspan(support - 0.45, support + 0.45, color="gold", alpha=0.25, linewidth=0)
    for column, (name, probabilities, style) in enumerate(columns):
        positions = predictors + (column - (len(columns) - 1) / 2) * width
        left.bar(positions, probabilities, width * 0.95, label=name, **style)
    left.axhline(0.5, color="gray", linestyle=":", linewidth=1)
    left.set_xticks(predictors)
    left.set_xlabel("predictor j (shaded: true support)")
    left.set_ylabel("P(gamma_j = 1)")
    left.set_title(f"posterior inclusion probabilities, n = {model.design.shape[0]}, "
                   f"p = {model.predictors}, rho = {arguments.correlation:g}")
    left.legend(fontsize=7)

    window = max(1, arguments.steps // 20)
    for record in records:
        curve = smooth(record["elbo_estimates"], window)
        right.plot(np.arange(1, len(curve) + 1), curve, **estimator_style(record["name"]),
                   label=f"{record['name']} (exact ELBO of q {record['exact_elbo']:.2f})")
    right.axhline(log_evidence, color="black", linewidth=1,
                  label=f"log p(y) = {log_evidence:.2f} (2^{model.predictors} models)")
    right.axhline(best[0], color="gray", linestyle=":", linewidth=1,
                  label=f"best mean-field ELBO {best[0]:.2f} (CAVI)")
    smoothed = [smooth(r["elbo_estimates"], window) for r in records]
    curves = np.concatenate(smoothed)
    # Hide the start of training (up to 8 nats below log p(y)), but never the end of a curve:
    # a short run (--quick) ends far below and must still show.
    ends = np.concatenate([curve[len(curve) // 2:] for curve in smoothed])
    low = min(max(np.percentile(curves, 2), log_evidence - 8.0), ends.min())
    high = max(log_evidence, curves.max())
    margin = max(0.5, 0.05 * (high - low))
    right.set_ylim(low - margin, high + margin)
    right.set_xlabel("step")
    right.set_ylabel(f"ELBO estimate ({window}-step average)")
    right.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def support_summary(probabilities, support):
    selected = set(np.flatnonzero(np.asarray(probabilities) > 0.5).tolist())
    truth = set(np.asarray(support).tolist())
    return sorted(selected), len(selected & truth), len(selected - truth)


def main(argv=None):
    arguments = parse_arguments(argv)
    from fxgx.backends import framework_by_name

    backend = framework_by_name(arguments.backend)
    if backend.name == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    output = Path(arguments.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model = SpikeAndSlab(arguments)
    exact = model.exact()
    log_evidence, inclusion, models, log_joint = exact
    best, best_probabilities = model.best_mean_field(models, log_joint)
    chosen, hits, false = support_summary(inclusion, model.support)
    print(f"true support {model.support.tolist()}, coefficients "
          f"{np.array2string(model.coefficients[model.support], precision=2)}")
    print(f"exact: log p(y) = {log_evidence:.4f} over {len(models)} models; PIP > 0.5: "
          f"{chosen}; best mean-field ELBO (CAVI) = {best:.4f}")
    print(f"exact PIPs {np.array2string(inclusion, precision=3)}")
    print(f"CAVI  PIPs {np.array2string(best_probabilities, precision=3)} (best mean-field q)")
    records = []
    for card in select_cards(arguments.estimators, "bernoulli"):
        record = fit_one(card, model, backend, arguments, exact)
        probabilities = np.asarray(record["inclusion_probabilities"])
        record["selected"], record["true_positives"], record["false_positives"] = (
            support_summary(probabilities, model.support))
        record["max_pip_error"] = float(np.max(np.abs(probabilities - inclusion)))
        record["max_difference_from_cavi"] = float(
            np.max(np.abs(probabilities - best_probabilities)))
        records.append(record)
        print(f"{record['name']:<24} q PIPs {np.array2string(probabilities, precision=3)}  "
              f"({record['seconds']:.1f} s)", flush=True)
    if not records:
        raise SystemExit("no estimator to run")
    print()
    print("| estimator | samples | exact ELBO of q | log p(y) - ELBO | max abs(q - exact PIP) | "
          "max abs(q - CAVI q) | selected (q > 0.5) | true / false positives |")
    print("|---|---|---|---|---|---|---|---|")
    for record in records:
        print(f"| {record['name']} | {record['num_samples']} | {record['exact_elbo']:.3f} | "
              f"{log_evidence - record['exact_elbo']:.3f} | {record['max_pip_error']:.3f} | "
              f"{record['max_difference_from_cavi']:.3f} | "
              f"{record['selected']} | {record['true_positives']} / "
              f"{record['false_positives']} |")
    print(f"| exact posterior | | log p(y) = {log_evidence:.3f} | | | | {chosen} | "
          f"{hits} / {false} |")
    cavi_chosen, cavi_hits, cavi_false = support_summary(best_probabilities, model.support)
    print(f"| best mean-field (CAVI) | | {best:.3f} | {log_evidence - best:.3f} | "
          f"{np.max(np.abs(best_probabilities - inclusion)):.3f} | 0 | {cavi_chosen} | "
          f"{cavi_hits} / {cavi_false} |")
    print(f"true support: {model.support.tolist()}")
    figure_path = output / "variable_selection.png"
    plot(records, model, exact, (best, best_probabilities), arguments, figure_path)
    with open(output / "variable_selection.json", "w") as handle:
        json.dump({"arguments": vars(arguments), "support": model.support.tolist(),
                   "coefficients": model.coefficients.tolist(), "log_evidence": log_evidence,
                   "inclusion_probabilities": inclusion.tolist(),
                   "best_mean_field_elbo": best,
                   "best_mean_field_probabilities": best_probabilities.tolist(),
                   "results": records}, handle, indent=1)
    print(f"\nfigure: {figure_path}")
    return {"log_evidence": log_evidence, "inclusion_probabilities": inclusion,
            "best_mean_field_elbo": best, "results": records}


if __name__ == "__main__":
    main(sys.argv[1:])
