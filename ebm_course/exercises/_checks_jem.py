"""Checkers of lesson 8: a classifier's logits read as an energy model (JEM)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from . import _fixtures as fx
from . import solutions as sol
from ._engine import Case, Mistake, Spec, Tolerance, evaluate
from ._feedback import Feedback


def _logit_cases() -> list[Case]:
    logits = {
        "four images, ten classes": fx.randn(4, 10, seed=100, scale=3.0),
        "a single image": fx.randn(1, 10, seed=101),
        "three images, three classes (B = C)": fx.randn(3, 3, seed=102),
        "large logits (around 500)": fx.randn(2, 10, seed=103) + 500.0,
    }
    return [Case(label, lambda t=t: ((t.clone(),), {})) for label, t in logits.items()]


@functools.cache
def _jem_marginal_score_spec() -> Spec:
    mistakes = [
        Mistake(
            lambda z: z.max(dim=1).values,
            "You took the largest logit: that is the max-logit detector of lesson 8. The "
            "marginal score adds up every class: `torch.logsumexp(logits, dim=1)`.",
        ),
        Mistake(
            lambda z: torch.log(torch.exp(z).sum(dim=1)),
            "`exp(logits)` overflowed to infinity for large logits: use "
            "`torch.logsumexp(logits, dim=1)`, which subtracts the maximum first.",
        ),
        Mistake(
            lambda z: torch.logsumexp(z, dim=0),
            "You took the logsumexp over the batch (dimension 0); sum out the *classes*, "
            "dimension 1: one score per image, `[B]`.",
        ),
        Mistake(
            lambda z: z.mean(dim=1),
            "You averaged the logits; the marginal is `log sum_y exp(l[y])` (logsumexp).",
        ),
        Mistake(
            lambda z: z.sum(dim=1),
            "You summed the logits; the marginal sums their *exponentials*: `log sum_y exp(l[y])`.",
        ),
        Mistake(
            lambda z: -torch.logsumexp(z, dim=1),
            "You returned the energy `E(x) = -logsumexp`; the score is `f = -E = "
            "+logsumexp(logits)`.",
        ),
        Mistake(
            lambda z: torch.log(torch.softmax(z, dim=1).sum(dim=1)),
            "You summed the probabilities `q(y | x)`, which always add up to 1 (log 0): "
            "the marginal sums `exp(logits)` *before* normalising.",
        ),
    ]
    note = "The marginal score has one value per image: shape `[B]`."
    return Spec(
        "jem_marginal_score",
        _logit_cases(),
        sol.jem_marginal_score,
        mistakes,
        Tolerance(1e-5, 1e-5),
        note=note,
    )


def check_jem_marginal_score(answer: Any) -> Feedback:
    """Check ``jem_marginal_score(logits [B, C]) -> [B]``.

    Inputs: four images with ten classes, a single image, B = C = 3, logits near 500.
    Tolerance ``1e-5 + 1e-5 |expected|``. Known mistakes: the max logit, overflow, the
    wrong dimension, mean or sum of logits, the energy's sign, a sum of probabilities.
    """
    return evaluate(_jem_marginal_score_spec(), answer)


@functools.cache
def _jem_class_probabilities_spec() -> Spec:
    mistakes = [
        Mistake(
            lambda z: torch.softmax(z, dim=0),
            "You normalised over the batch (dimension 0); `q(y | x)` normalises over the "
            "classes of each image, dimension 1: every row must sum to 1.",
        ),
        Mistake(
            lambda z: torch.log_softmax(z, dim=1),
            "You returned `log q(y | x)` (log_softmax); the exercise asks for the "
            "probabilities themselves.",
        ),
        Mistake(
            lambda z: torch.exp(z),
            "You did not normalise: divide `exp(logits)` by its sum over the classes "
            "(`torch.softmax(logits, dim=1)`).",
        ),
        Mistake(
            lambda z: torch.sigmoid(z),
            "A sigmoid treats each class on its own; the classes compete, so use a "
            "softmax over dimension 1.",
        ),
        Mistake(
            lambda z: torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True),
            "`exp(logits)` overflowed (inf / inf = NaN) for large logits: use "
            "`torch.softmax(logits, dim=1)`, which subtracts the maximum first.",
        ),
    ]
    note = "`q(y | x)` has the logits' shape `[B, C]`."
    return Spec(
        "jem_class_probabilities",
        _logit_cases(),
        sol.jem_class_probabilities,
        mistakes,
        Tolerance(1e-6, 1e-5),
        note=note,
    )


def check_jem_class_probabilities(answer: Any) -> Feedback:
    """Check ``jem_class_probabilities(logits [B, C]) -> [B, C]``.

    Same inputs as :func:`check_jem_marginal_score`. Tolerance ``1e-6 + 1e-5 |expected|``.
    Known mistakes: softmax over the batch, log-probabilities, no normalisation, a sigmoid,
    overflow to NaN.
    """
    return evaluate(_jem_class_probabilities_spec(), answer)


def _rows(z: Tensor, y: Any) -> Tensor:
    return z[y]


@functools.cache
def _jem_class_score_spec() -> Spec:
    four = fx.randn(4, 10, seed=110, scale=2.0)

    def case(label: str, logits: Tensor, y: Any) -> Case:
        return Case(
            label, lambda: ((logits.clone(), y.clone() if isinstance(y, Tensor) else y), {})
        )

    cases = [
        case("four images, one label each (tensor [4])", four, torch.tensor([3, 0, 9, 3])),
        case("four images, class 7 for all (an int)", four, 7),
        case("a single image, label tensor [1]", fx.randn(1, 10, seed=111), torch.tensor([5])),
        case(
            "three images, three classes (B = C)", fx.randn(3, 3, seed=112), torch.tensor([2, 0, 1])
        ),
    ]
    pick = sol.jem_class_score
    mistakes = [
        Mistake(
            lambda z, y: pick(torch.log_softmax(z, dim=1), y),
            "You returned `log q(y | x)`, the classifier's log-probability. The joint "
            "score `f(x, y) = -E(x, y)` is the raw logit `l(x)[y]`: no normalisation.",
        ),
        Mistake(
            lambda z, y: pick(torch.softmax(z, dim=1), y),
            "You returned `q(y | x)`; the joint score is the raw logit `l(x)[y]`.",
        ),
        Mistake(
            lambda z, y: z[:, y],
            "With one label per image, `logits[:, y]` picks every label for every image "
            "(`[B, B]`). Pair image `i` with label `y[i]`: `logits.gather(1, y[:, None])"
            ".squeeze(1)` or `logits[torch.arange(len(logits)), y]`.",
        ),
        Mistake(
            _rows,
            "`logits[y]` picks *images* (rows) by the label; the class is the second "
            "dimension: `logits[torch.arange(len(logits)), y]`.",
        ),
        Mistake(
            lambda z, y: torch.logsumexp(z, dim=1),
            "You returned the marginal score `logsumexp_y l(x)[y]`; the joint score keeps "
            "the label: `l(x)[y]`.",
        ),
        Mistake(
            lambda z, y: -pick(z, y),
            "You returned the energy `E(x, y) = -l(x)[y]`; the score is `+l(x)[y]`.",
        ),
    ]
    note = "The joint score has one value per image: shape `[B]`."
    return Spec(
        "jem_class_score", cases, sol.jem_class_score, mistakes, Tolerance(0.0, 0.0), note=note
    )


def check_jem_class_score(answer: Any) -> Feedback:
    """Check ``jem_class_score(logits [B, C], y int or int64 [B]) -> [B]``.

    Inputs: one label per image, one int for all, a single image, B = C = 3. The values are
    picked, not computed. Tolerance: exact equality. Known mistakes: ``log q(y | x)``,
    ``q(y | x)``, ``logits[:, y]`` (``[B, B]``), ``logits[y]``, the marginal, the energy.
    """
    return evaluate(_jem_class_score_spec(), answer)
