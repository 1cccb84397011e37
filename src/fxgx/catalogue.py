"""The estimator catalogue: one TOML card per estimator, the single source of truth.

Cards live in the top-level ``estimators/`` folder of the repository (shipped inside the
wheel as ``fxgx/catalogue_cards``). The test suite, ``fxgx list`` and ``fxgx compare`` read
them, so adding an estimator is: code, card, done.

Card fields: ``name``, ``factory`` ("module:function"), ``family``, ``summary``,
``formula`` (LaTeX), ``references`` (list), ``unbiased`` (bool), ``distributions`` (list of
"bernoulli", "categorical", "normal", "any"), ``evaluations_per_sample`` (int), and a
``[test]`` table: ``num_samples`` (the estimator's own), ``problems`` (built-in problem names
for the unbiasedness tests), ``num_estimates``, optionally ``default_problems`` (those of
``problems`` whose tests run in the default set; the rest run in the slow set), and for
biased estimators ``bias_problem`` and ``bias_sign`` (+1/-1 on every coordinate of that
problem) or ``bias_check = "none"`` with a ``bias_reason``.
"""

from __future__ import annotations

import dataclasses
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
        evaluations_per_sample: evaluations of ``f`` per sample.
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

    def make(self, **hyperparameters):
        """Import the factory and build the estimator.

        Args:
            **hyperparameters: keyword arguments for the factory (its defaults otherwise).

        Returns:
            The estimator.
        """
        return load_factory(self.factory)(**hyperparameters)

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
        ValueError: a required field is missing.
    """
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    missing = [field for field in REQUIRED_FIELDS if field not in data]
    if missing:
        raise ValueError(f"Card {path.name} lacks the fields {missing}.")
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
    cards = [read_card(path) for path in sorted(directory.glob("*.toml"))]
    names = [card.name for card in cards]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"Duplicate card names: {sorted(duplicates)}.")
    return sorted(cards, key=lambda card: card.name)


def get_card(name: str) -> Card:
    """The card of the estimator called ``name``.

    Args:
        name: the estimator's name, e.g. ``"disarm"``.

    Returns:
        Its card.

    Raises:
        KeyError: no card has that name; the message lists the known names.
    """
    for card in load_cards():
        if card.name == name:
            return card
    raise KeyError(
        f"No estimator called {name!r}; known: {', '.join(card.name for card in load_cards())}."
    )
