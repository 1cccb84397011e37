"""Helpers the example scripts share: parameters, annealed fitting, catalogue selection,
curve smoothing, the help formatter and one colour per estimator. Not part of the fxgx
package: the examples are user code."""

from __future__ import annotations

import functools

import numpy as np

# The examples' --help shows every default the way `fxgx --help` does.
from fxgx.cli import HelpFormatter  # noqa: F401 - re-exported for the example scripts

#: One colour per catalogued estimator, in catalogue order (matplotlib's tab10 without its
#: gray, then darker colours): black and gray stay free for the reference lines (exact
#: answers, best mean-field fits). Biased estimators are also drawn dashed.
ESTIMATOR_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                    "#e377c2", "#bcbd22", "#17becf", "#000080", "#b8860b", "#008080",
                    "#c71585", "#556b2f", "#800000", "#7b68ee", "#ff6347", "#4682b4")


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
    return [backend.convert(array) for array in arrays]


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
