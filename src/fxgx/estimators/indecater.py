"""IndeCateR: each variable's categories summed out exactly, the other variables sampled.

For ``D`` independent categorical variables ``z_1..z_D`` with probabilities ``p_d =
softmax(theta_d)`` over ``K`` classes, the CatLog-derivative trick writes the gradient as a
sum over variables, and for each one an exact sum over its own classes:

    grad E[f(z)] = sum_d E_{z ~ q} [ sum_k grad p_d(k) f(z_{-d}, z_d = k) ].

IndeCateR estimates the outer expectation with ``S`` joint samples ``z^(s)``, shared by
every ``d``; with the softmax Jacobian ``dp_d(k)/dtheta_{d,j} = p_d(k) (1[j = k] - p_d(j))``
the estimate w.r.t. the logits is

    g_{d,j} = 1/S sum_s p_d(j) (F_{d,j}(s) - sum_k p_d(k) F_{d,k}(s)),
    F_{d,k}(s) = f(z^(s) with z_d replaced by class k),

unbiased, and a Rao-Blackwellisation of REINFORCE (its variance is never larger than
REINFORCE's with the same samples). A Bernoulli variable is the case ``K = 2``:
``g_d = 1/S sum_s sigmoid'(theta_d) (f(z_{-d}, 1) - f(z_{-d}, 0))``.

``f`` is evaluated ``D K`` times per sample (all in one call) and never differentiated
w.r.t. the samples. The surrogate's value is ``1/(S D) sum_{s,d} sum_k p_d(k) F_{d,k}(s)``
(probabilities stopped): each term is an unbiased estimate of ``E[f]``, so its gradient
w.r.t. what ``f`` closes over is unbiased for ``E[grad f]``.

Reference: De Smet, Sansone & Zuidberg Dos Martires (2023), "Differentiable sampling of
categorical distributions using the CatLog-derivative trick", NeurIPS.
"""

from __future__ import annotations

import dataclasses
import math

from fxgx.core.arrays import one_hot, shape_of
from fxgx.core.custom_gradient import with_gradient
from fxgx.estimators.base import Estimator
from fxgx.estimators.sampling import evaluate, event_rank, sub_seeds


def _variable_shape(distribution):
    """The shape of the variable positions of one event: the event shape for a Bernoulli,
    the event shape without the class axis for a one-hot categorical."""
    shape = shape_of(distribution.logits)
    if distribution.kind == "bernoulli":
        return shape[len(shape) - distribution.event_ndims:]
    return shape[len(shape) - 1 - distribution.event_ndims: -1]


def substituted_samples(xp, samples, distribution):
    """Every sample with one variable set to each of its classes, and the class count.

    Args:
        xp: the namespace of ``samples``.
        samples: ``[S] + batch_shape + event_shape`` draws of ``distribution`` (0/1 for a
            Bernoulli, one-hot for a categorical).
        distribution: the fxgx Bernoulli or OneHotCategorical they came from.

    Returns:
        ``(variants, num_classes)``: ``variants`` has shape ``[D, K, S] + batch_shape +
        event_shape``, where ``variants[d, k, s]`` is ``samples[s]`` with variable ``d``
        (row-major over the event's variable positions) set to class ``k`` (a Bernoulli
        variable's classes are 0 and 1).
    """
    dtype = samples.dtype
    positions = _variable_shape(distribution)
    num_variables = math.prod(positions)
    batch_rank = len(distribution.batch_shape)
    categorical = distribution.kind == "categorical"
    num_classes = distribution.num_classes if categorical else 2
    # mask[d] is 1 at variable d's position: [D, 1 (K), 1 (S)] + batch ones + positions.
    mask = one_hot(xp, xp.arange(num_variables, dtype=xp.int32), num_variables, dtype)
    mask = xp.reshape(mask, (num_variables, 1, 1) + (1,) * batch_rank + positions)
    if categorical:
        mask = xp.expand_dims(mask, axis=-1)
        # classes[k] is the one-hot vector of class k: [1, K, 1] + ones + [K].
        classes = one_hot(xp, xp.arange(num_classes, dtype=xp.int32), num_classes, dtype)
        classes = xp.reshape(
            classes, (1, num_classes, 1) + (1,) * (batch_rank + len(positions)) + (num_classes,))
    else:
        classes = xp.reshape(xp.arange(num_classes, dtype=dtype),
                             (1, num_classes, 1) + (1,) * (batch_rank + len(positions)))
    variants = xp.expand_dims(xp.expand_dims(samples, axis=0), axis=0) * (1.0 - mask)
    return variants + mask * classes, num_classes


def _class_values_per_variable(xp, values, distribution, num_variables, num_classes,
                               num_samples):
    """``f`` values ``[D K S] + batch_shape`` rearranged to ``[S] + batch_shape + positions
    + [K]`` (the logits' layout for a categorical; a trailing class axis for a Bernoulli)."""
    batch_shape = tuple(distribution.batch_shape)
    values = xp.reshape(values, (num_variables, num_classes, num_samples) + batch_shape)
    batch_rank = len(batch_shape)
    permutation = (2,) + tuple(range(3, 3 + batch_rank)) + (0, 1)
    values = xp.permute_dims(values, permutation)
    positions = _variable_shape(distribution)
    return xp.reshape(values, (num_samples,) + batch_shape + positions + (num_classes,))


@dataclasses.dataclass(frozen=True)
class IndeCateR(Estimator, card="indecater"):
    """IndeCateR for Bernoulli and one-hot categorical latents. See ``indecater``."""

    def _estimate(self, framework, function, distribution, seed, num_samples):
        xp = framework.xp
        stop = framework.stop_gradient
        seeds = sub_seeds(framework, seed, "samples")
        samples = stop(distribution.sample((num_samples,), seeds["samples"]))
        variants, num_classes = substituted_samples(xp, samples, distribution)
        num_variables = math.prod(_variable_shape(distribution))
        total = num_variables * num_classes * num_samples
        flat = xp.reshape(variants, (total,) + shape_of(samples)[1:])
        values = evaluate(framework, function, stop(flat), distribution, total)
        per_class = _class_values_per_variable(xp, values, distribution, num_variables,
                                               num_classes, num_samples)
        logits = stop(distribution.logits)
        if distribution.kind == "bernoulli":
            probabilities = framework.sigmoid(logits)
            complement = framework.sigmoid(-logits)
            probabilities_per_class = xp.stack([complement, probabilities], axis=-1)
            stopped = stop(per_class)
            difference = stopped[..., 1] - stopped[..., 0]
            per_sample = probabilities * complement * difference
        else:
            probabilities_per_class = framework.softmax(logits)
            stopped = stop(per_class)
            centred = stopped - xp.sum(probabilities_per_class * stopped, axis=-1,
                                       keepdims=True)
            per_sample = probabilities_per_class * centred
        gradient = stop(xp.mean(per_sample, axis=0))
        # Rao-Blackwellised values sum_k p_d(k) F_{d,k}: unbiased for E[f] for every d.
        expected = xp.sum(probabilities_per_class * per_class, axis=-1)
        rank = len(shape_of(expected))
        axes = (0,) + tuple(range(rank - len(_variable_shape(distribution)), rank))
        value = xp.mean(expected, axis=axes)
        logits_rank = len(shape_of(logits))
        axis = tuple(range(logits_rank - event_rank(distribution), logits_rank))
        return with_gradient(framework, value, gradient, distribution.logits, axis=axis,
                             fx_gx_manually_stopped=True)


def indecater() -> IndeCateR:
    """IndeCateR: ``g_{d,j} = 1/S sum_s p_d(j) (F_{d,j}(s) - sum_k p_d(k) F_{d,k}(s))``,
    with ``F_{d,k}(s) = f(z^(s) with variable d set to class k)``.

    Every variable's classes are summed out exactly given the other variables of each of
    the ``S`` joint samples (Bernoulli: ``g_d = sigmoid'(theta_d) (f(z_{-d}, 1) -
    f(z_{-d}, 0))``). Unbiased; ``D K`` evaluations of ``f`` per sample for ``D``
    variables of ``K`` classes (``K = 2`` for Bernoulli), made in one call of ``f``.
    Reference: De Smet, Sansone & Zuidberg Dos Martires (2023), "Differentiable sampling of
    categorical distributions using the CatLog-derivative trick", NeurIPS.

    Returns:
        An estimator, called as ``estimator(f, distribution, *, seed, num_samples=1)``;
        it returns a surrogate whose value estimates ``E_q[f]`` and whose gradient
        estimates ``grad E_q[f]`` w.r.t. the logits, and ``E_q[grad f]`` w.r.t. what
        ``f`` closes over.
    """
    return IndeCateR()
