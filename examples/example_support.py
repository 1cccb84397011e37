"""Helpers the example scripts share: parameters, annealed fitting, catalogue selection,
curve smoothing, the help formatter and one colour per estimator. Not part of the fxgx
package: the examples are user code."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import traceback

import numpy as np

from fxgx.cli import HelpFormatter  # noqa: F401 - re-exported for the example scripts

# The examples' --help shows every default the way `fxgx --help` does.
from fxgx.core.arrays import one_hot

#: One colour per catalogued estimator, in catalogue order (matplotlib's tab10 without its
#: gray, then darker colours): black and gray stay free for the reference lines (exact
#: answers, best mean-field fits). Biased estimators are also drawn dashed.
ESTIMATOR_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                    "#e377c2", "#bcbd22", "#17becf", "#000080", "#b8860b", "#008080",
                    "#c71585", "#556b2f", "#800000", "#7b68ee", "#ff6347", "#4682b4",
                    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
                    "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31",
                    "#843c39", "#7b4173")


@functools.cache
def _catalogue_styles():
    from fxgx.catalogue import load_cards

    styles = {}
    for index, card in enumerate(load_cards()):
        # Past the palette's length the colours repeat with another dash pattern.
        repeat = index >= len(ESTIMATOR_COLORS)
        solid, dashed = ("-.", ":") if repeat else ("-", "--")
        styles[card.name] = {"color": ESTIMATOR_COLORS[index % len(ESTIMATOR_COLORS)],
                             "linestyle": solid if card.unbiased else dashed}
    return styles


def estimator_style(name: str) -> dict:
    """``{"color", "linestyle"}`` of estimator ``name``: the same in every example figure,
    distinct between estimators, dashed for the biased ones."""
    return dict(_catalogue_styles().get(name, {"color": "#7f7f7f", "linestyle": "-."}))

#: Images of scikit-learn's 1797 digits held out as the test set.
DIGITS_TEST_SIZE = 297


def binarised_digits(seed: int):
    """``(train, test)``: scikit-learn's 8x8 digits (shipped with the package, nothing is
    downloaded) as 64 binary pixels (grey level > 8), shuffled by ``seed``."""
    from sklearn.datasets import load_digits

    pixels = (load_digits().data > 8).astype(np.float32)
    pixels = pixels[np.random.default_rng(seed).permutation(len(pixels))]
    return pixels[DIGITS_TEST_SIZE:], pixels[:DIGITS_TEST_SIZE]


def make_parameters(backend, arrays):
    """TensorFlow: a list of ``tf.Variable``; JAX: a list of arrays (a pytree)."""
    if backend.name == "tensorflow":
        import tensorflow as tf

        return [tf.Variable(array) for array in arrays]
    return [backend.xp.asarray(array) for array in arrays]


def quiet_tensorflow():
    """Each estimator compiles its own step: hide TensorFlow's retracing warnings."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def fit_with_annealing(loss, parameters, arguments):
    """``fxgx.vi.fit`` at ``--learning-rate``, then the last ``--anneal-fraction`` of the steps
    at a tenth of it (a second ``fit``: fresh Adam moments), so that the final ``q`` is not
    dominated by the step noise of a constant learning rate. Returns ``(parameters, losses,
    variance steps, variances, seconds)``."""
    from fxgx import vi

    fine = int(round(arguments.steps * arguments.anneal_fraction))
    phases = [(arguments.steps - fine, arguments.learning_rate),
              (fine, arguments.learning_rate / 10)]
    every = max(1, arguments.steps // 40)
    losses, steps, variances, seconds, offset = [], [], [], 0.0, 0
    for index, (count, rate) in enumerate(phases):
        if count == 0:
            continue
        result = vi.fit(loss, parameters, num_steps=count,
                        seed=np.array([arguments.seed, index], np.int64), learning_rate=rate,
                        trace_variance_every=every, progress=False)
        parameters = result.parameters
        losses.extend(np.asarray(result.losses, float).tolist())
        traced = np.flatnonzero(np.isfinite(result.gradient_variance))
        steps.extend((traced + offset).tolist())
        variances.extend(result.gradient_variance[traced].tolist())
        seconds += result.seconds
        offset += count
    return parameters, losses, steps, variances, seconds


def smooth(values, window):
    """Trailing moving average (the first points average what is there)."""
    values = np.asarray(values, float)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    counts = np.minimum(ends, window)
    return (cumulative[ends] - cumulative[ends - counts]) / counts


def select_cards(names, kind):
    """The catalogue cards named in the comma-separated ``names`` that support ``kind``
    latents ("bernoulli" or "categorical"); the others are reported and skipped."""
    from fxgx.catalogue import load_cards

    cards = {card.name: card for card in load_cards()}
    selected = []
    for name in [name.strip() for name in names.split(",") if name.strip()]:
        if name not in cards:
            print(f"skipping {name}: not in the estimator catalogue")
        elif not cards[name].supports(kind):
            print(f"skipping {name}: it does not support {kind} latents")
        else:
            selected.append(cards[name])
    return selected


def configuration_need(card) -> str | None:
    """Why a plain call of ``card``'s estimator inside a loss would leave out part of it, or
    ``None``: a factory argument without a default or that is a user function (a learned
    baseline, RELAX's residual), or state kept between steps (a moving average), which
    ``fxgx.vi.fit``'s ``loss(parameters, seed)`` has no place for without code written for
    that estimator."""
    import inspect

    from fxgx.catalogue import load_factory
    from fxgx.estimators.base import Estimator

    parameters = inspect.signature(load_factory(card.factory)).parameters
    required = [name for name, parameter in parameters.items()
                if parameter.default is inspect.Parameter.empty
                and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)]
    if required:
        return f"its factory needs the arguments {', '.join(required)}"
    callables = [name for name, parameter in parameters.items()
                 if "Callable" in str(parameter.annotation)]
    if callables:
        return f"it needs a user function ({', '.join(callables)})"
    if type(card.make()).init is not Estimator.init:
        return "it keeps state between steps (a plain call restarts from its initial state)"
    return None


def loss_cards(names, kind, evaluations, configured=(), *, num_variables, num_classes=2,
               left_out=None):
    """``(cards, skipped)``: the catalogue cards to train with, and ``{name: reason}`` for the
    others, each reason printed.

    ``names`` is ``"all"`` (every card, in catalogue order) or comma-separated names. A card
    runs when it supports ``kind`` latents, its smallest sample count fits the budget of
    ``evaluations`` evaluations of ``f`` per data point and step, and a plain call is the
    whole estimator (``configuration_need``) or the example configures it (``configured``).
    A card's cost per sample is ``card.evaluations(num_variables, num_classes)``: it grows
    with the latents for some estimators (IndeCateR evaluates every class of every variable).
    ``left_out`` maps card names to the reason ``"all"`` leaves them out (they still run when
    named).
    """
    from fxgx.catalogue import load_cards

    cards = {card.name: card for card in load_cards()}
    if names.strip() == "all":  # the cards for other latents are not worth a line each
        wanted = [name for name, card in cards.items() if card.supports(kind)]
        for name, reason in (left_out or {}).items():
            if name in wanted:
                wanted.remove(name)
                print(f"skipping {name}: {reason}")
    else:
        wanted = list(dict.fromkeys(name.strip() for name in names.split(",") if name.strip()))
    selected, skipped = [], {}
    for name in wanted:
        card = cards.get(name)
        if card is None:
            skipped[name] = "not in the estimator catalogue"
        elif not card.supports(kind):
            skipped[name] = f"it does not support {kind} latents"
        elif name not in configured and (need := configuration_need(card)) is not None:
            skipped[name] = f"{need}; this example does not configure it"
        elif (cost := card.evaluations(num_variables, num_classes)
              * getattr(card.make(), "minimum_samples", 1)) > evaluations:
            skipped[name] = (f"it needs {cost} evaluations of f per data point, over the "
                             f"budget of {evaluations}")
        else:
            selected.append(card)
            continue
        print(f"skipping {name}: {skipped[name]}")
    return selected, skipped


def minibatch(backend, data, size, seed):
    """``size`` rows of ``data`` drawn uniformly with replacement (a one-hot product, so it
    compiles on every framework)."""
    count = tuple(data.shape)[0]
    uniform = backend.uniform((size,), seed, "float32")
    index = backend.xp.minimum(backend.xp.astype(uniform * count, backend.xp.int32), count - 1)
    return backend.xp.matmul(one_hot(backend.xp, index, count, backend.xp.float32), data)


def encoder_gradient_variance(batch_loss, parameters, batch, backend, seed, draws=16):
    """``sum_j Var(g_j)`` over the encoder's weights and biases (``parameters[0]`` and
    ``parameters[1]``, the parameters of ``q``, the only ones whose gradient the discrete
    estimator forms), from ``draws`` independent estimates of the gradient of ``batch_loss``
    at ``parameters`` on one fixed ``batch`` (so that only the latent samples vary)."""
    batch = backend.xp.asarray(batch)

    def encoder_gradient(parameters, seed):
        _, gradients = backend.value_and_gradient(
            lambda *values: batch_loss(list(values), batch, seed), parameters)
        return gradients[0], gradients[1]

    compiled = backend.compile(encoder_gradient, jit_compile=backend.name == "jax")
    estimates = [compiled(parameters, np.array([seed, index], np.int32))
                 for index in range(draws)]
    total = 0.0
    for part in range(2):
        stacked = np.stack([np.asarray(estimate[part], np.float64) for estimate in estimates])
        total += float(np.sum(np.var(stacked, axis=0, ddof=1)))
    return total


def run_failing_softly(run, card, skipped, *arguments):
    """``run(card, *arguments)``, or ``None`` when it raises: the error is printed and
    recorded in ``skipped`` (a card that fails, or a run that diverges, is reported and the
    comparison goes on with the other cards)."""
    try:
        return run(card, *arguments)
    except Exception as error:  # noqa: BLE001 - reported, not hidden
        message = (str(error).strip().splitlines() or [""])[0]
        if os.environ.get("FXGX_EXAMPLE_TRACEBACK"):
            traceback.print_exc()
        skipped[card.name] = f"failed: {type(error).__name__}: {message}"
        print(f"{card.name} {skipped[card.name]}", flush=True)
        return None


# ------------------------------------ training a discrete VAE (the SBN, the categorical VAE)

#: Gradient scale of RELAX's control-variate objective. Adam is invariant to it (up to its
#: epsilon); at 1e-3 the control variate's gradient still dominated the total variance that
#: fit traces, at 1e-6 the trace measures the model's gradient and training is unchanged.
RELAX_WEIGHT = 1e-6
#: Samples per data point of the final ELBO and of the importance-weighted bound.
EVALUATION_SAMPLES = 16
IMPORTANCE_SAMPLES = 100


def multi_sample(estimator) -> bool:
    """Whether the estimator's gradient is that of the importance-weighted bound (VIMCO)."""
    return getattr(estimator, "target", "expectation") == "log_mean_exp"


def training_loss(card, model, train, arguments, cost):
    """``(loss, batch_loss, num_samples)``: ``loss(parameters, seed)`` is minus the training
    bound on a random minibatch drawn from the seed, ``batch_loss(parameters, batch, seed)``
    the same on a given minibatch. ``cost``: the card's evaluations of ``f`` per sample on the
    model's latents. ``model.num_model_parameters`` parameters come first; RELAX's
    temperature, scale and residual network follow them."""
    from fxgx import vi
    from fxgx.core.seeds import canonical_seed, split_seed

    backend = model.backend
    minimum = getattr(card.make(), "minimum_samples", 1)
    num_samples = max(minimum, arguments.evaluations // cost)
    count = model.num_model_parameters
    data_tensor = backend.xp.asarray(train)

    def relax_estimator(parameters, batch, stop):
        hold = backend.stop_gradient if stop else (lambda value: value)
        return dataclasses.replace(
            card.make(control_variate=model.residual(batch)),
            temperature=backend.xp.exp(hold(parameters[count])), scale=hold(parameters[count + 1]),
            control_variate_parameters=[hold(value) for value in parameters[count + 2:]],
        )

    def loss(parameters, seed):
        seeds = split_seed(canonical_seed(seed, backend), ("batch", "bound"), backend)
        batch = minibatch(backend, data_tensor, arguments.batch_size, seeds["batch"])
        return batch_loss(parameters, batch, seeds["bound"])

    def batch_loss(parameters, batch, seed):
        seeds = split_seed(canonical_seed(seed, backend), ("bound", "variance"), backend)
        posterior = model.posterior(parameters, batch)

        def target(latents):
            return model.log_joint(parameters, batch, latents)

        estimator = card.make()
        if multi_sample(estimator):
            bound = vi.importance_weighted_bound(target, posterior, seed=seeds["bound"],
                                                 num_samples=num_samples, estimator=estimator)
            return -backend.xp.mean(bound)
        if card.name == "relax":
            estimator = relax_estimator(parameters, batch, stop=True)
        bound = vi.elbo(target, posterior, seed=seeds["bound"], num_samples=num_samples,
                        estimator=estimator)
        value = -backend.xp.mean(bound)
        if card.name == "relax":
            # The control variate minimises |g|^2 of the encoder-logit gradient (its variance
            # up to a constant) for the learning signal the ELBO hands the estimator, log
            # p(x, z) (fxgx.vi.elbo adds the entropy of q exactly). The model is held fixed
            # here. The term's value is removed and its gradient scaled by RELAX_WEIGHT:
            # Adam does not care about the scale, and the traced gradient variance then
            # measures the model's gradient, not the control variate's.
            frozen = [backend.stop_gradient(value) for value in parameters[:count]]

            def learning_signal(latents):
                return model.log_joint(frozen, batch, latents)

            variance = relax_estimator(parameters, batch, stop=False).variance_loss(
                learning_signal, model.posterior(frozen, batch), seed=seeds["variance"],
                num_samples=num_samples)
            scaled = RELAX_WEIGHT * variance
            value = value + scaled - backend.stop_gradient(scaled)
        return value

    return loss, batch_loss, num_samples


def evaluation(model, backend):
    """Compiled ``(elbo, importance-weighted bound)`` per data point, from fixed seeds."""
    from fxgx.core.seeds import canonical_seed

    def bounds(parameters, data, seed):
        seed = canonical_seed(seed, backend)
        posterior = model.posterior(parameters, data)
        latents = backend.stop_gradient(posterior.sample((IMPORTANCE_SAMPLES,), seed))
        weights = model.log_joint(parameters, data, latents) - posterior.log_prob(latents)
        elbo = backend.xp.mean(weights[:EVALUATION_SAMPLES], axis=0)
        bound = backend.logsumexp(weights, axis=0) - math.log(IMPORTANCE_SAMPLES)
        return backend.xp.mean(elbo), backend.xp.mean(bound)

    return backend.compile(bounds)


def train_discrete_vae(card, model, train, test, arguments, cost):
    """Train ``model`` with ``card``'s estimator at the budget ``arguments.evaluations``
    (``cost`` evaluations of ``f`` per sample) and return its record: the training curve, the
    traced gradient variance, the final bounds and the encoder-gradient variance."""
    from fxgx import vi

    backend = model.backend
    loss, batch_loss, num_samples = training_loss(card, model, train, arguments, cost)
    arrays = model.initial_parameters(arguments.seed, train.mean(axis=0),
                                      control_variate=card.name == "relax")
    parameters = make_parameters(backend, arrays)
    every = max(1, arguments.steps // arguments.checkpoints) if arguments.checkpoints else 0
    result = vi.fit(loss, parameters, num_steps=arguments.steps, seed=arguments.seed,
                    learning_rate=arguments.learning_rate, trace_variance_every=every,
                    progress=False)
    bounds = evaluation(model, backend)
    final = result.parameters
    train_elbo, _ = bounds(final, backend.xp.asarray(train),
                           np.array([arguments.seed, 8], np.int32))
    test_elbo, test_bound = bounds(final, backend.xp.asarray(test),
                                   np.array([arguments.seed, 9], np.int32))
    encoder_variance = encoder_gradient_variance(batch_loss, final,
                                                 train[: arguments.batch_size], backend,
                                                 arguments.seed + 1)
    traced = np.flatnonzero(np.isfinite(result.gradient_variance))
    variances = result.gradient_variance[traced]
    return {
        "name": card.name, "unbiased": card.unbiased, "num_samples": num_samples,
        "evaluations_per_step": num_samples * cost,
        "objective": "IWAE bound" if multi_sample(card.make()) else "ELBO",
        "training_bound": (-np.asarray(result.losses, float)).tolist(),
        "variance_steps": traced.tolist(),
        "log10_gradient_variance": np.log10(np.maximum(variances, 1e-30)).tolist(),
        "final_train_elbo": float(train_elbo), "test_elbo": float(test_elbo),
        "test_importance_weighted_bound": float(test_bound), "seconds": result.seconds,
        "log10_final_encoder_gradient_variance": float(np.log10(max(encoder_variance, 1e-30))),
    }
