"""Shared pieces of the VI tests (imported by test_elbo.py, test_importance_weighted.py and
test_fit.py): a model small enough to enumerate, with its exact ELBO and
ELBO gradient (NumPy float64), and a helper that draws many independent gradient estimates
of a loss in one compiled, batched call.

The model (D = 5 Bernoulli latents, one Gaussian observation with an interaction term):

    log p(x, z) = sum_d log Bern(z_d; sigmoid(alpha_d)) + log N(x; w . z + c z_0 z_1, s^2)

Exact ELBO by enumerating the 2^5 states:

    ELBO(theta)   = sum_z q(z) [log p(x, z) - log q(z)],
    dELBO/dtheta  = sum_z q(z) [log p(x, z) - log q(z)] (z - sigmoid(theta))

(the second term of the product rule, ``-E[grad log q] = 0``, vanishes), and the gradient
w.r.t. the decoder weights ``w``: ``sum_z q(z) (x - mu(z)) z / s^2``.
"""

from __future__ import annotations

import numpy as np

from fxgx.backends import get_framework
from fxgx.problems.base import Problem
from fxgx.problems.enumeration import bernoulli_states

PRIOR_LOGITS = np.array([-0.5, 0.3, 0.0, 0.8, -1.0])
WEIGHTS = np.array([1.0, -0.8, 0.6, 0.9, -0.5])
INTERACTION = 0.7
OBSERVATION = 1.5
NOISE = 0.7
SURROGATE_LOGITS = np.array([0.4, -0.6, 0.2, -0.1, 0.9])


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


class EnumerableModel:
    """The model above, for any backend (``log_joint``) and exactly (NumPy float64)."""

    prior_logits = PRIOR_LOGITS
    weights = WEIGHTS
    dimension = len(PRIOR_LOGITS)

    def log_joint(self, z, weights=None):
        """``log p(x, z)`` for ``z`` of shape ``[..., D]``; ``weights`` broadcasts against
        ``z``'s leading shape (a decoder parameter), default ``WEIGHTS``."""
        backend = get_framework(z, weights)
        dtype = z.dtype
        alpha = backend.xp.asarray(PRIOR_LOGITS, dtype=dtype)
        weights = backend.xp.asarray(WEIGHTS, dtype=dtype) if weights is None else weights
        prior = backend.xp.sum(z * backend.log_sigmoid(alpha)
                               + (1 - z) * backend.log_sigmoid(-alpha), axis=-1)
        mean = backend.xp.sum(z * weights, axis=-1) + INTERACTION * z[..., 0] * z[..., 1]
        likelihood = (-0.5 * backend.xp.square((OBSERVATION - mean) / NOISE)
                      - float(np.log(NOISE * np.sqrt(2 * np.pi))))
        return prior + likelihood

    def log_joint_numpy(self, states):
        prior = states @ log_sigmoid(PRIOR_LOGITS) + (1 - states) @ log_sigmoid(-PRIOR_LOGITS)
        mean = states @ WEIGHTS + INTERACTION * states[:, 0] * states[:, 1]
        return prior - 0.5 * ((OBSERVATION - mean) / NOISE) ** 2 - np.log(
            NOISE * np.sqrt(2 * np.pi))

    def exact(self, logits=SURROGATE_LOGITS):
        """``(ELBO, dELBO/dlogits, dELBO/dweights)`` in float64."""
        states = bernoulli_states(self.dimension)
        logits = np.asarray(logits, np.float64)
        log_q = states @ log_sigmoid(logits) + (1 - states) @ log_sigmoid(-logits)
        q = np.exp(log_q)
        integrand = self.log_joint_numpy(states) - log_q
        value = float(q @ integrand)
        gradient = (q * integrand) @ (states - 1 / (1 + np.exp(-logits)))
        mean = states @ WEIGHTS + INTERACTION * states[:, 0] * states[:, 1]
        weights_gradient = (q * (OBSERVATION - mean) / NOISE**2) @ states
        return value, gradient, weights_gradient


class ElboProblem(Problem):
    """The ELBO as a harness problem: ``q`` = Bernoulli(logits), ``function`` = log p(x, z).

    ``exact_gradient`` is the gradient of the *ELBO* (not of ``E_q[function]``), so it is
    paired with an estimator adapter that returns ``fxgx.vi.elbo`` (see test_elbo.py)."""

    kind = "bernoulli"
    name = "enumerable_elbo"

    def __init__(self, model: EnumerableModel):
        self.model = model

    def parameter_values(self):
        return [SURROGATE_LOGITS]

    def distribution(self, logits):
        from fxgx.distributions import Bernoulli

        return Bernoulli(logits, event_ndims=1)

    def function(self, samples):
        return self.model.log_joint(samples)

    def exact_value(self):
        return self.model.exact()[0]

    def exact_gradient(self):
        return self.model.exact()[1]


def batched_estimates(backend, loss, parameters, num_estimates, *, seed, jit=True):
    """``num_estimates`` independent (value, gradient) estimates of ``loss`` in one call.

    ``loss(tiled_parameters, seed)`` must return a vector of ``num_estimates`` independent
    values (one per replicate: every parameter is tiled to ``[num_estimates] + shape`` and
    the surrogate has that batch shape). Returns ``(values [N], gradients [N, P])`` in
    float64 NumPy, gradient columns in the order of ``parameters``.
    """
    tiled = [backend.xp.broadcast_to(backend.xp.asarray(p, dtype=backend.xp.float32),
                                  (num_estimates,) + np.shape(p)) for p in parameters]

    def run(*arguments):
        return backend.value_and_gradient(lambda *p: loss(list(p), seed), list(arguments))

    if jit:
        run = backend.compile(run, jit_compile=True)
    values, gradients = run(*tiled)
    flat = [np.reshape(np.asarray(g), (num_estimates, -1)) for g in gradients]
    return (np.asarray(np.asarray(values), np.float64),
            np.concatenate(flat, axis=1).astype(np.float64))


def exact_importance_weighted(model: EnumerableModel, num_samples: int,
                              logits=SURROGATE_LOGITS):
    """``(L_K, dL_K/dlogits, dL_K/dweights)`` in float64 by enumerating all ``(2^D)^K``
    joint ``K``-tuples of states:

        L_K = sum_{s_1..s_K} prod_k q(s_k) L^,   L^ = log mean_k w_k,
        dL_K/dtheta = sum prod_k q(s_k) [L^ sum_k (s_k - p) - sum_k w~_k (s_k - p)],
        dL_K/dw     = sum prod_k q(s_k) sum_k w~_k (x - mu(s_k)) s_k / sigma^2,

    with ``log w_k = log p(x, s_k) - log q(s_k)`` and ``w~_k = w_k / sum_j w_j``.
    """
    states = bernoulli_states(model.dimension)
    logits = np.asarray(logits, np.float64)
    probabilities = 1 / (1 + np.exp(-logits))
    log_q = states @ log_sigmoid(logits) + (1 - states) @ log_sigmoid(-logits)
    log_weight = model.log_joint_numpy(states) - log_q
    tuples = np.indices((len(states),) * num_samples).reshape(num_samples, -1).T
    joint = np.exp(np.sum(log_q[tuples], axis=1))
    weights = log_weight[tuples]  # [M, K]
    largest = np.max(weights, axis=1, keepdims=True)
    objective = largest[:, 0] + np.log(np.mean(np.exp(weights - largest), axis=1))
    normalized = np.exp(weights - largest)
    normalized /= np.sum(normalized, axis=1, keepdims=True)
    score = states[tuples] - probabilities  # [M, K, D]
    gradient = np.einsum("m,mkd->d", joint * objective, score) - np.einsum(
        "m,mk,mkd->d", joint, normalized, score)
    mean = states @ WEIGHTS + INTERACTION * states[:, 0] * states[:, 1]
    decoder = ((OBSERVATION - mean) / NOISE**2)[:, None] * states  # [S, D]
    weights_gradient = np.einsum("m,mk,mkd->d", joint, normalized, decoder[tuples])
    return float(joint @ objective), gradient, weights_gradient
