"""Smoke tests of the runnable examples (tiny arguments), and exact checks of their models.

Each example is imported from ``examples/`` and its ``main(argv)`` run in this process with
``--quick`` (a handful of steps) and one or two estimators, so the whole file takes well
under a minute. The model checks compare each example's closed-form marginal likelihood
with an independent computation (a dense multivariate normal density); they are exact up to
floating-point rounding, so their tolerances are rounding tolerances.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytest.importorskip("matplotlib")


def load_example(name):
    """Import ``examples/<name>.py`` as a module (the folder is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    if str(EXAMPLES) not in sys.path:  # as when run as a script: example_support beside it
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name", ["bernoulli_toy", "sigmoid_belief_network", "gaussian_mixture", "variable_selection",
             "categorical_vae", "own_training_loop"]
)
def test_help_exits_cleanly(name, capsys):
    module = load_example(name)
    with pytest.raises(SystemExit) as raised:
        module.main(["--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert "--seed" in out and "--output-dir" in out
    assert "--backend" in out or name == "own_training_loop"  # a TensorFlow/Keras 3 example


def test_own_training_loop_trains_the_decoder_through_the_estimator(tmp_path):
    """The estimator used directly in a GradientTape loop passes gradients to the Keras 3
    decoder that f closes over: it moves, and the test ELBO ends well above the same loop's
    with the decoder frozen (300 steps: about -23.9 against -24.8 nats, from -25.3)."""
    pytest.importorskip("keras")
    module = load_example("own_training_loop")
    summary = module.main(["--quick", "--output-dir", str(tmp_path)])
    trained, frozen = summary["runs"]
    assert trained["decoder"] == "trained" and frozen["decoder"] == "frozen"
    assert trained["decoder_change"] > 0.1 and frozen["decoder_change"] == 0.0
    assert trained["test_elbo_after"] > trained["test_elbo_before"] + 1.0
    assert trained["test_elbo_after"] > frozen["test_elbo_after"] + 0.5
    assert (tmp_path / "results.json").exists() and (tmp_path / "own_training_loop.png").exists()


@pytest.mark.parametrize(
    "name", ["bernoulli_toy", "sigmoid_belief_network", "gaussian_mixture", "variable_selection",
             "categorical_vae"]
)
def test_help_shows_every_option_with_its_default(name, capsys, monkeypatch):
    parsers = []
    original = argparse.ArgumentParser.parse_args

    def recording(self, *arguments, **options):
        parsers.append(self)
        return original(self, *arguments, **options)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", recording)
    with pytest.raises(SystemExit):
        load_example(name).main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    (parser,) = parsers
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings} has no help"
        if action.default is not None and not isinstance(action.default, bool):
            assert f"(default: {action.default})" in text, f"{name} {action.option_strings}"


def test_every_catalogued_estimator_has_its_own_colour_and_biased_ones_are_dashed():
    load_example("bernoulli_toy")  # puts examples/ on sys.path
    from example_support import estimator_style

    from fxgx.catalogue import load_cards

    cards = load_cards()
    styles = {card.name: estimator_style(card.name) for card in cards}
    colours = [style["color"] for style in styles.values()]
    assert len(set(colours)) == len(cards)
    assert not {"black", "#000000", "gray", "#7f7f7f"} & set(colours)  # kept for references
    for card in cards:
        assert (styles[card.name]["linestyle"] in ("--", ":")) == (not card.unbiased)


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures the examples save, for checking what they show."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figures = []
    original = Figure.savefig

    def recording(self, *arguments, **options):
        figures.append(self)
        return original(self, *arguments, **options)

    monkeypatch.setattr(Figure, "savefig", recording)
    return figures


def assert_every_curve_shows(figure, names):
    """Every estimator's curve has points, its last point lies inside the axes' limits, and
    the curves of one panel have distinct colours."""
    panels = 0
    for axis in figure.axes:
        curves = [line for line in axis.get_lines() if line.get_transform() == axis.transData]
        if not curves:
            continue
        panels += 1
        assert len(curves) == len(names), (axis.get_title(), len(curves))
        low, high = sorted(axis.get_ylim())
        left, right = sorted(axis.get_xlim())
        for line in curves:
            x, y = (np.asarray(values, float) for values in line.get_data())
            finite = np.isfinite(y)
            assert finite.any(), f"an empty curve in the panel {axis.get_title()!r}"
            assert low <= y[finite][-1] <= high, (axis.get_title(), y[finite][-1], low, high)
            assert left <= x[finite][-1] <= right
        assert len({line.get_color() for line in curves}) == len(curves)
    assert panels >= 1


BACKENDS = ["tensorflow", "jax"]
#: The heavier examples' JAX quick runs are in the slow set (CI runs it).
BACKENDS_JAX_SLOW = ["tensorflow", pytest.param("jax", marks=pytest.mark.slow)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bernoulli_toy_quick_run_writes_the_figure(backend, tmp_path, saved_figures):
    module = load_example("bernoulli_toy")
    results = module.main(["--quick", "--estimators", "disarm,straight_through", "--backend",
                           backend, "--output-dir", str(tmp_path)])
    assert [result["name"] for result in results] == ["disarm", "straight_through"]
    (figure,) = saved_figures
    assert_every_curve_shows(figure, ["disarm", "straight_through"])
    for result in results:
        assert len(result["probabilities"]) == 4
        assert all(0.0 < p < 1.0 for p in result["probabilities"])
        assert all(v >= 0.0 for v in result["variances"])
    assert (tmp_path / "bernoulli_toy.png").stat().st_size > 0
    assert (tmp_path / "bernoulli_toy.json").exists()


def test_bernoulli_toy_skips_estimators_that_do_not_apply(capsys):
    module = load_example("bernoulli_toy")
    cards = module.select_cards("vimco,disarm")
    assert [card.name for card in cards] == ["disarm"]
    assert "skipping vimco" in capsys.readouterr().out


@pytest.mark.slow  # 8 s; the Bernoulli toy runs and the own training loop stay in the default set
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigmoid_belief_network_quick_run_prints_the_table(backend, tmp_path, capsys,
                                                           saved_figures):
    pytest.importorskip("sklearn")
    module = load_example("sigmoid_belief_network")
    records = module.main(["--quick", "--estimators", "vimco,no_such_estimator",
                           "--backend", backend, "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "skipping no_such_estimator" in out
    assert [record["name"] for record in records] == ["vimco"]
    # The quick run traces the gradient variance too (steps 0 and 2 of 4): no empty panel,
    # no nan in the table.
    assert records[0]["variance_steps"] == [0, 2]
    assert "nan" not in out.lower()
    (figure,) = saved_figures
    assert_every_curve_shows(figure, ["vimco"])
    for record in records:
        # Nats per 64-pixel image: the decoder starts at the pixel marginals, whose
        # log-likelihood (about -25) is far above 64 log(1/2) = -44.4, and is below 0.
        assert 64 * math.log(0.5) < record["final_train_elbo"] < 0.0
        assert record["test_importance_weighted_bound"] >= record["test_elbo"] - 0.5
    assert "| vimco |" in out
    assert (tmp_path / "sigmoid_belief_network.png").stat().st_size > 0


@pytest.mark.slow  # about 4 s on TensorFlow (its compilations), over the default set's 3 s
@pytest.mark.parametrize("backend", BACKENDS)
def test_categorical_vae_quick_run_prints_the_table(backend, tmp_path, capsys, saved_figures):
    pytest.importorskip("sklearn")
    module = load_example("categorical_vae")
    records = module.main(["--quick", "--estimators", "reinforce_leave_one_out,disarm,nothing",
                           "--backend", backend, "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "skipping disarm: it does not support categorical latents" in out
    assert "skipping nothing" in out
    (record,) = records
    assert (record["name"], record["num_samples"], record["evaluations_per_step"]) == (
        "reinforce_leave_one_out", 4, 4)
    assert record["variance_steps"] == [0, 2] and "nan" not in out.lower()
    (figure,) = saved_figures
    assert_every_curve_shows(figure, ["reinforce_leave_one_out"])
    # Nats per 64-pixel image: the decoder starts at the pixel marginals (about -25 nats, far
    # above 64 log(1/2) = -44.4); the ELBO is below 0.
    assert 64 * math.log(0.5) < record["final_train_elbo"] < 0.0
    assert record["test_importance_weighted_bound"] >= record["test_elbo"] - 0.5
    assert "| reinforce_leave_one_out |" in out and "wall time" in out
    assert (tmp_path / "categorical_vae.png").stat().st_size > 0
    assert json.loads((tmp_path / "categorical_vae.json").read_text())["skipped"] == {
        "disarm": "it does not support categorical latents",
        "nothing": "not in the estimator catalogue"}


def test_the_examples_take_every_catalogue_card_that_runs_in_the_loss(capsys):
    """``--estimators all``: every card for the latents, less those over the budget and those
    whose plain call leaves out a user function or state; none dropped without a reason."""
    load_example("categorical_vae")  # puts examples/ on sys.path
    from example_support import loss_cards

    from fxgx.catalogue import load_cards

    cards, skipped = loss_cards("all", "categorical", 2, configured=("relax",), num_variables=3,
                                num_classes=4)
    names = [card.name for card in cards]
    categorical = [card.name for card in load_cards() if card.supports("categorical")]
    assert sorted(names + list(skipped)) == sorted(categorical)
    assert {"reinforce_leave_one_out", "vimco", "straight_through"} <= set(names)
    assert "arm" not in skipped  # Bernoulli only: not listed under "all"
    assert "over the budget of 2" in skipped["rebar"] and "over the budget" in skipped["relax"]
    assert "user function (baseline)" in skipped["learned_baseline"]
    assert "keeps state" in skipped["moving_average_baseline"]
    out = capsys.readouterr().out
    assert all(f"skipping {name}: {reason}" in out for name, reason in skipped.items())
    cards, skipped = loss_cards("relax,learned_baseline", "bernoulli", 4, configured=("relax",),
                                num_variables=4)
    assert [card.name for card in cards] == ["relax"] and list(skipped) == ["learned_baseline"]
    # A factory with arguments that have no default cannot be called plainly either.
    from example_support import configuration_need

    needy = dataclasses.replace(load_cards()[0], factory="math:pow")
    assert configuration_need(needy) == "its factory needs the arguments x, y"


def test_a_failing_estimator_is_reported_and_the_comparison_goes_on(capsys):
    load_example("categorical_vae")
    from example_support import run_failing_softly

    from fxgx.catalogue import get_card

    def run(card, steps):
        if card.name == "rebar":
            raise FloatingPointError(f"non-finite loss at step {steps}\nmore detail")
        return {"name": card.name}

    skipped = {}
    records = [run_failing_softly(run, get_card(name), skipped, 7)
               for name in ("reinforce", "rebar")]
    assert records == [{"name": "reinforce"}, None]
    assert skipped == {"rebar": "failed: FloatingPointError: non-finite loss at step 7"}
    assert "rebar failed: FloatingPointError" in capsys.readouterr().out


def test_categorical_vae_log_joint_and_posterior_match_numpy():
    """log p(x, z) of the model against NumPy (rounding tolerance), and q(z | x) sums to 1
    over all K^D states (the logits' layout)."""
    from fxgx.backends import framework_by_name

    module = load_example("categorical_vae")
    backend = framework_by_name("tensorflow")
    model = module.CategoricalVae(backend, data_size=6, variables=2, categories=3)
    generator = np.random.default_rng(1)
    arrays = [generator.standard_normal(array.shape).astype(np.float32)
              for array in model.initial_parameters(0, np.full(6, 0.3), control_variate=False)]
    data = (generator.random((4, 6)) < 0.5).astype(np.float32)
    states = np.stack([np.eye(3)[[first, second]] for first in range(3) for second in range(3)])
    latents = np.broadcast_to(states[:, None], (9, 4, 2, 3)).astype(np.float32)
    parameters = [backend.xp.asarray(array) for array in arrays]
    actual = np.asarray(model.log_joint(parameters, backend.xp.asarray(data),
                                              backend.xp.asarray(latents)))
    logits = latents.reshape(9, 4, 6) @ arrays[2].astype(np.float64) + arrays[3]
    expected = (np.sum(data * logits - np.logaddexp(0.0, logits), axis=-1) - 2 * math.log(3))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    posterior = model.posterior(parameters, backend.xp.asarray(data))
    probabilities = np.exp(np.asarray(posterior.log_prob(backend.xp.asarray(latents))))
    np.testing.assert_allclose(probabilities.sum(axis=0), np.ones(4), rtol=1e-5)


@pytest.mark.slow  # 5 s; the other examples are smoke-tested in the default set
@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_gaussian_mixture_quick_run_stays_below_the_exact_evidence(backend, tmp_path,
                                                                   saved_figures):
    module = load_example("gaussian_mixture")
    summary = module.main(["--quick", "--estimators", "reinforce_leave_one_out",
                           "--backend", backend, "--output-dir", str(tmp_path)])
    (record,) = summary["results"]
    (figure,) = saved_figures
    assert_every_curve_shows(figure, ["reinforce_leave_one_out"])
    # An ELBO computed exactly can never exceed log p(x) (up to rounding).
    assert record["exact_elbo"] <= summary["log_evidence"] + 1e-9
    assert summary["best_mean_field_elbo"] <= summary["log_evidence"] + 1e-9
    assert (tmp_path / "gaussian_mixture.png").stat().st_size > 0


@pytest.mark.slow  # the mixture's quick run above stays in the default set
def test_gaussian_mixture_with_a_normal_surrogate_for_the_means(tmp_path):
    module = load_example("gaussian_mixture")
    summary = module.main(["--quick", "--means", "normal", "--points", "4",
                           "--estimators", "reinforce_leave_one_out",
                           "--output-dir", str(tmp_path)])
    (record,) = summary["results"]
    assert record["exact_elbo"] <= summary["log_evidence"] + 1e-9


@pytest.mark.slow  # 4 s; the SBN and categorical VAE runs keep the examples in the default set
@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_selection_quick_run(backend, tmp_path, saved_figures):
    module = load_example("variable_selection")
    summary = module.main(["--quick", "--estimators", "disarm", "--backend", backend,
                           "--output-dir", str(tmp_path)])
    (record,) = summary["results"]
    # The ELBO panel shows the curve although 4 steps end far below log p(y).
    (figure,) = saved_figures
    assert_every_curve_shows(figure, ["disarm"])
    assert record["exact_elbo"] <= summary["log_evidence"] + 1e-9
    inclusion = np.asarray(summary["inclusion_probabilities"])
    assert np.all(inclusion >= 0.0) and np.all(inclusion <= 1.0 + 1e-12)
    assert (tmp_path / "variable_selection.png").stat().st_size > 0


# ------------------------------------------------------------------ exact model checks


def gaussian_log_density(x, mean, covariance):
    """``log N(x; mean, covariance)`` by a dense Cholesky factorisation."""
    factor = np.linalg.cholesky(covariance)
    solved = np.linalg.solve(factor, x - mean)
    return (-0.5 * solved @ solved - np.sum(np.log(np.diag(factor)))
            - 0.5 * len(x) * math.log(2 * math.pi))


def test_gaussian_mixture_collapsed_likelihood_matches_the_dense_gaussian():
    module = load_example("gaussian_mixture")
    mixture = module.Mixture(points=5, components=3, noise_scale=0.7, prior_scale=1.8, seed=3)
    generator = np.random.default_rng(0)
    states = mixture.all_assignments()
    for index in generator.choice(len(states), 12, replace=False):
        labels = states[index].argmax(-1)
        # x ~ N(m_c, sigma^2 I + s0^2 [c_n == c_m]): the means integrated out, densely.
        covariance = (mixture.noise**2 * np.eye(5)
                      + mixture.prior**2 * (labels[:, None] == labels[None, :]))
        expected = (gaussian_log_density(mixture.data, mixture.prior_means[labels], covariance)
                    - 5 * math.log(3))
        actual = mixture.collapsed_log_joint(np, states[index])
        assert actual == pytest.approx(expected, abs=1e-9)


def test_spike_and_slab_marginal_matches_the_dense_gaussian_integral():
    """``p(y | gamma) = int N(y; 0, sigma^2 (I + tau^2 X_g X_g^T)) IG(sigma^2; a, b)``; the
    integral over sigma^2 is done by quadrature on a log grid (relative error ~1e-8)."""
    module = load_example("variable_selection")
    arguments = module.parse_arguments(["--observations", "15", "--predictors", "4",
                                        "--support", "2", "--seed", "5"])
    model = module.SpikeAndSlab(arguments)
    indicators = np.array([1.0, 0.0, 1.0, 1.0])
    columns = model.design[:, indicators == 1]
    n = len(model.response)
    kernel = np.eye(n) + model.slab_scale**2 * columns @ columns.T
    log_variance = np.linspace(-12, 12, 200001)
    variance = np.exp(log_variance)
    sign, log_determinant = np.linalg.slogdet(kernel)
    quadratic = model.response @ np.linalg.solve(kernel, model.response)
    log_normal = (-0.5 * n * np.log(2 * math.pi * variance) - 0.5 * log_determinant
                  - quadratic / (2 * variance))
    a, b = model.shape, model.rate
    log_prior = a * math.log(b) - math.lgamma(a) - (a + 1) * log_variance - b / variance
    integrand = log_normal + log_prior + log_variance  # d sigma^2 = sigma^2 d log sigma^2
    peak = integrand.max()
    log_marginal = peak + np.log(np.trapezoid(np.exp(integrand - peak), log_variance))
    h = model.prior_inclusion
    expected = log_marginal + 3 * math.log(h) + math.log1p(-h)
    actual = model.log_joint(module.NumpyAlgebra(), indicators)
    assert sign > 0
    assert actual == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("backend_name", ["tensorflow", "jax"])
def test_spike_and_slab_backend_log_joint_matches_numpy(backend_name):
    from fxgx.backends import framework_by_name

    module = load_example("variable_selection")
    arguments = module.parse_arguments(["--predictors", "6", "--seed", "2"])
    model = module.SpikeAndSlab(arguments)
    backend = framework_by_name(backend_name)
    models = model.all_models()
    expected = model.log_joint(module.NumpyAlgebra(), models)
    actual = model.log_joint(module.FrameworkAlgebra(backend),
                             backend.xp.asarray(models.astype(np.float32)))
    # float32 Cholesky of 6x6 matrices: about 1e-6 relative error on values near 100.
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=2e-5, atol=1e-3)
