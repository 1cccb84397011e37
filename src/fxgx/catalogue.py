"""The estimator catalogue: one TOML card per estimator, the single source of truth.

Cards live in the top-level ``estimators/`` folder of the repository (shipped inside the
wheel as ``fxgx/catalogue_cards``). The test suite, ``fxgx list`` and ``fxgx compare`` read
them, so adding an estimator is: code, card, done. The estimator classes read them too: a
class names its card (``class Disarm(Estimator, card="disarm")``) and takes its ``name``,
``unbiased`` and ``supports`` from it, so those are written once, in the card.

Card fields: ``name``, ``factory`` ("module:function"), ``family``, ``summary``,
``formula`` (LaTeX), ``references`` (list), ``unbiased`` (bool), ``distributions`` (list of
"bernoulli", "categorical", "normal", "any"), ``evaluations_per_sample`` (int),
optionally ``evaluations_per_variable`` and ``evaluations_per_class`` (ints, for a cost that
grows with the latents: ``measure_valued`` costs ``1 + 3 D`` per sample, IndeCateR ``D K``;
``Card.evaluations`` adds them up), and a
``[test]`` table: ``num_samples`` (the estimator's own), ``problems`` (built-in problem names
for the unbiasedness tests), ``num_estimates``, optionally ``default_problems`` (those of
``problems`` whose tests run in the default set; the rest run in the slow set), and for
biased estimators ``bias_problem`` and ``bias_sign`` (+1/-1 on every coordinate of that
problem) or ``bias_check = "none"`` with a ``bias_reason``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import tomllib
from pathlib import Path

REQUIRED_FIELDS = (
    "name",
    "factory",
    "family",
    "summary",
    "formula",
    "references",
    "unbiased",
    "distributions",
    "evaluations_per_sample",
    "test",
)

#: The kinds a card's ``distributions`` may list.
DISTRIBUTION_KINDS = ("bernoulli", "categorical", "normal", "any")


@dataclasses.dataclass(frozen=True)
class Card:
    """One estimator's card, as read from its TOML file.

    Attributes:
        name: the estimator's name (``fxgx list``, ``--estimators``).
        factory: ``"package.module:function"``, the factory that builds it.
        family: the estimator family, in words.
        summary: one sentence on what it does.
        formula: the gradient estimate in LaTeX.
        references: the papers, as strings.
        unbiased: whether its gradient estimate is unbiased.
        distributions: the latents it supports (``"bernoulli"``, ``"categorical"``,
            ``"normal"`` or ``"any"``).
        evaluations_per_sample: evaluations of ``f`` per sample (the part that does not
            depend on the number of latent variables).
        evaluations_per_variable: further evaluations per sample and latent variable.
        evaluations_per_class: further evaluations per sample, latent variable and class
            (Bernoulli variables have 2 classes).
        test: the ``[test]`` table: ``num_samples``, ``problems``, ``num_estimates`` and the
            bias check of a biased estimator.
        path: the card's file.
    """

    name: str
    factory: str
    family: str
    summary: str
    formula: str
    references: tuple
    unbiased: bool
    distributions: tuple
    evaluations_per_sample: int
    test: dict
    path: Path
    evaluations_per_variable: int = 0
    evaluations_per_class: int = 0

    @property
    def cost_depends_on_latents(self) -> bool:
        """Whether the cost per sample grows with the number of latent variables."""
        return bool(self.evaluations_per_variable or self.evaluations_per_class)

    def evaluations(self, num_variables: int | None = None, num_classes: int = 2) -> int:
        """Evaluations of ``f`` per sample for ``num_variables`` latents of ``num_classes``.

        ``evaluations_per_sample + evaluations_per_variable D + evaluations_per_class D K``.

        Args:
            num_variables: ``D``, the latent variables in one evaluation of ``f``; needed
                only when the cost depends on it.
            num_classes: ``K`` (2 for Bernoulli variables).

        Returns:
            The number of evaluations.

        Raises:
            ValueError: the cost depends on ``num_variables`` and it was not given.
        """
        if not self.cost_depends_on_latents:
            return self.evaluations_per_sample
        if num_variables is None:
            raise ValueError(f"{self.name}'s cost grows with the latents: pass num_variables.")
        return (self.evaluations_per_sample + self.evaluations_per_variable * num_variables
                + self.evaluations_per_class * num_variables * num_classes)

    def evaluations_on(self, problem) -> int:
        """Evaluations of ``f`` per sample on a built-in ``problem``.

        Args:
            problem: an ``fxgx.problems.Problem``; its first parameter holds the latents'
                logits (``[..., D]`` Bernoulli, ``[..., D, K]`` categorical) or means.

        Returns:
            The number of evaluations.
        """
        import numpy as np  # noqa: PLC0415 - the catalogue itself needs no NumPy

        shape = np.shape(problem.parameter_values()[0])
        if problem.kind == "categorical":
            return self.evaluations(int(np.prod(shape[:-1])), int(shape[-1]))
        return self.evaluations(int(np.prod(shape)), 2)

    def cost_formula(self) -> str:
        """The cost per sample in words: ``"1"``, ``"1 + 3 D"``, ``"D K"``.

        Returns:
            The formula.
        """
        terms = [str(self.evaluations_per_sample)] if self.evaluations_per_sample else []
        for coefficient, symbol in ((self.evaluations_per_variable, "D"),
                                    (self.evaluations_per_class, "D K")):
            if coefficient:
                terms.append(symbol if coefficient == 1 else f"{coefficient} {symbol}")
        return " + ".join(terms) or "0"

    def make(self, **hyperparameters):
        """Import the factory and build the estimator.

        Args:
            **hyperparameters: keyword arguments for the factory (its defaults otherwise).

        Returns:
            The estimator.
        """
        return load_factory(self.factory)(**hyperparameters)

    @property
    def target(self) -> str:
        """What the gradient estimates: ``"expectation"`` (``grad E[f]``, the default) or
        ``"log_mean_exp"`` (``grad E[log mean_k exp f(z_k)]``), the ``[test] target``."""
        return str(self.test.get("target", "expectation"))

    @property
    def num_samples(self) -> int:
        """The card's own ``num_samples`` (``[test] num_samples``, default 1)."""
        return int(self.test.get("num_samples", 1))

    def supports(self, kind: str) -> bool:
        """Whether the estimator accepts latents of ``kind``.

        Args:
            kind: ``"bernoulli"``, ``"categorical"`` or ``"normal"``.

        Returns:
            True when the card lists ``kind`` or ``"any"``.
        """
        return "any" in self.distributions or kind in self.distributions


def cards_directory() -> Path:
    """The folder of cards: the installed copy, else the repository's ``estimators/``.

    Returns:
        The folder's path.

    Raises:
        FileNotFoundError: neither folder exists.
    """
    installed = Path(__file__).resolve().parent / "catalogue_cards"
    if installed.is_dir():
        return installed
    repository = Path(__file__).resolve().parents[2] / "estimators"
    if repository.is_dir():
        return repository
    raise FileNotFoundError(
        "The estimator catalogue was not found (looked in fxgx/catalogue_cards and the "
        "repository's estimators/ folder)."
    )


def load_factory(path: str):
    """Import a factory named ``"package.module:function"``.

    Args:
        path: the factory's ``"package.module:function"`` name, as in a card.

    Returns:
        The factory (a callable).

    Raises:
        ValueError: ``path`` has no ``:function`` part.
    """
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"factory={path!r} must look like 'package.module:function'.")
    return getattr(importlib.import_module(module_name), attribute)


def read_card(path: Path) -> Card:
    """Read one card.

    Args:
        path: the card's TOML file.

    Returns:
        The card.

    Raises:
        ValueError: a required field is missing, a distribution kind is not one fxgx knows,
            or the name is not the file's.
    """
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    missing = [field for field in REQUIRED_FIELDS if field not in data]
    if missing:
        raise ValueError(f"Card {path.name} lacks the fields {missing}.")
    unknown = sorted(set(data["distributions"]) - set(DISTRIBUTION_KINDS))
    if unknown:
        raise ValueError(
            f"Card {path.name} lists the distributions {unknown}; the kinds are "
            f"{', '.join(DISTRIBUTION_KINDS)}.")
    if data["name"] != path.stem:
        raise ValueError(f"Card {path.name} is named {data['name']!r}; name it {path.stem!r}.")
    return Card(
        name=data["name"],
        factory=data["factory"],
        family=data["family"],
        summary=data["summary"],
        formula=data["formula"],
        references=tuple(data["references"]),
        unbiased=bool(data["unbiased"]),
        distributions=tuple(data["distributions"]),
        evaluations_per_sample=int(data["evaluations_per_sample"]),
        test=dict(data["test"]),
        path=path,
        evaluations_per_variable=int(data.get("evaluations_per_variable", 0)),
        evaluations_per_class=int(data.get("evaluations_per_class", 0)),
    )


def load_cards(directory: Path | None = None) -> list[Card]:
    """Every card, sorted by name.

    Args:
        directory: the folder of cards; default ``cards_directory()``.

    Returns:
        The cards, sorted by name.

    Raises:
        ValueError: two cards have the same name.
    """
    directory = cards_directory() if directory is None else Path(directory)
    return list(_cards_in(directory.resolve()))


@functools.cache
def _cards_in(directory: Path) -> tuple[Card, ...]:
    """The cards of one folder, read once per process (estimator classes read theirs at
    import)."""
    cards = [read_card(path) for path in sorted(directory.glob("*.toml"))]
    names = [card.name for card in cards]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"Duplicate card names: {sorted(duplicates)}.")
    return tuple(sorted(cards, key=lambda card: card.name))


def get_card(name: str) -> Card:
    """The card of the estimator called ``name``.

    Args:
        name: the estimator's name, e.g. ``"disarm"``.

    Returns:
        Its card.

    Raises:
        KeyError: no card has that name; the message lists the known names.
    """
    cards = load_cards()
    for card in cards:
        if card.name == name:
            return card
    raise KeyError(
        f"No estimator called {name!r}; known: {', '.join(card.name for card in cards)}."
    )
