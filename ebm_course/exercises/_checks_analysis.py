"""Checkers of lesson 5: AUROC, the flipped-digit transform, the class entropy of samples."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor

from . import _fixtures as fx
from . import solutions as sol
from ._engine import Case, Mistake, Spec, Tolerance, evaluate
from ._feedback import Feedback

# ----------------------------------------------------------------- AUROC

_AUROC_CASES = (
    (
        "three in-distribution and four outlier scores, no ties",
        [2.0, 0.5, 1.5],
        [1.0, -1.0, 0.7, 1.8],
    ),
    ("ties between the two sets", [1.0, 2.0, 2.0, 3.0], [2.0, 2.0, 0.0]),
    ("every score equal (AUROC 0.5)", [0.3, 0.3, 0.3], [0.3, 0.3]),
    ("one score each, the outlier higher", [0.0], [1.0]),
    ("five scores each, interleaved", [0.1, 0.9, 0.4, 0.8, 0.3], [0.5, 0.2, 0.7, 0.6, 0.0]),
)


def _pairs(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """(a_i > b_j, a_i == b_j) over all pairs, as float64 ``[N, M]``."""
    return (a[:, None] > b[None, :]).double(), (a[:, None] == b[None, :]).double()


def _auroc_ties(weight: float) -> Any:
    def wrong(a: Tensor, b: Tensor) -> float:
        above, ties = _pairs(a, b)
        return float((above + weight * ties).mean())

    return wrong


def _elementwise(a: Tensor, b: Tensor) -> float:
    return float(((a > b).double() + 0.5 * (a == b).double()).mean())


def _per_in_score(a: Tensor, b: Tensor) -> float:
    above, ties = _pairs(a, b)
    return float((above + 0.5 * ties).sum() / len(a))


@functools.cache
def _auroc_spec() -> Spec:
    cases = [
        Case(
            label,
            lambda i=i, o=o: (
                (torch.tensor(i, dtype=torch.float64), torch.tensor(o, dtype=torch.float64)),
                {},
            ),
        )
        for label, i, o in _AUROC_CASES
    ]
    mistakes = [
        Mistake(
            _auroc_ties(0.0),
            "Ties count 0 in your AUROC (`>` alone); a tie between an in-distribution and "
            "an outlier score counts *half* a correct pair.",
        ),
        Mistake(
            _auroc_ties(1.0),
            "Ties count 1 in your AUROC (`>=`); a tie counts *half*: "
            "`P(in > out) + 0.5 * P(in == out)`.",
        ),
        Mistake(
            lambda a, b: sol.auroc(b, a),
            "Your AUROC is 1 minus the right one: the arguments are swapped, or you used "
            "energies `E = -f` instead of scores. In-distribution data should score "
            "*higher* (AUROC near 1 for a good detector).",
        ),
        Mistake(
            _elementwise,
            "You compared `in_scores[i]` with `out_scores[i]` only; the AUROC compares "
            "*every* in-distribution score with *every* outlier score (`N * M` pairs, "
            "e.g. `in_scores[:, None] > out_scores[None, :]`).",
        ),
        Mistake(
            _per_in_score,
            "You divided the count of correct pairs by the number of in-distribution "
            "scores only; average over all `N * M` pairs.",
        ),
    ]
    return Spec("auroc", cases, sol.auroc, mistakes, Tolerance(1e-6, 0.0))


def check_auroc(answer: Any) -> Feedback:
    """Check ``auroc(in_scores [N], out_scores [M]) -> float``.

    Inputs (float64): no ties, ties between the sets, all scores equal, one score each,
    five each (equal lengths). Tolerance ``1e-6``. Known mistakes: ties counted 0, ties
    counted 1, arguments swapped (or energies), elementwise pairs only, divided by ``N``.
    """
    return evaluate(_auroc_spec(), answer)


# ----------------------------------------------------------------- rotation by 180 degrees


@functools.cache
def _rotate_180_spec() -> Spec:
    three, one = fx.uniform(3, 1, 28, 28, seed=60), fx.uniform(1, 1, 28, 28, seed=61)
    odd = fx.uniform(2, 2, 5, 7, seed=62)
    cases = [
        Case("three different images [3, 1, 28, 28]", lambda: ((three.clone(),), {})),
        Case("a single image [1, 1, 28, 28]", lambda: ((one.clone(),), {})),
        Case("two 2-channel, non-square images [2, 2, 5, 7]", lambda: ((odd.clone(),), {})),
    ]
    mistakes = [
        Mistake(
            lambda x: x.flip(dims=(2,)),
            "You turned the images upside down but did not mirror them: a rotation by "
            "180 degrees flips *both* spatial axes, `images.flip(dims=(2, 3))`.",
        ),
        Mistake(
            lambda x: x.flip(dims=(3,)),
            "You mirrored the images left-right but did not turn them upside down: flip "
            "*both* spatial axes, `images.flip(dims=(2, 3))`.",
        ),
        Mistake(
            lambda x: x.flip(dims=(0, 2, 3)),
            "You also reversed the order of the images in the batch (dimension 0): "
            "flip only the spatial axes 2 and 3.",
        ),
        Mistake(
            lambda x: x.flip(dims=(1, 2, 3)),
            "You also reversed the channels (dimension 1): flip only the spatial axes 2 and 3.",
        ),
        Mistake(
            lambda x: x.flip(dims=(0, 1, 2, 3)),
            "You flipped every dimension, batch and channels included: flip only the "
            "spatial axes 2 and 3.",
        ),
        Mistake(
            lambda x: torch.rot90(x, 1, dims=(2, 3)),
            "You rotated by 90 degrees, not 180: `torch.rot90(x, 2, dims=(2, 3))` or "
            "`x.flip(dims=(2, 3))`.",
        ),
        Mistake(
            lambda x: x.transpose(2, 3),
            "You transposed the images (mirrored along the diagonal); a rotation by 180 "
            "degrees flips both axes: `images.flip(dims=(2, 3))`.",
        ),
    ]
    hints = [
        (
            "step must be greater than zero",
            "PyTorch slices take no negative steps (`x[..., ::-1]`); use `x.flip(dims=...)`.",
        )
    ]
    spec = Spec("rotate_180", cases, sol.rotate_180, mistakes, Tolerance(0.0, 0.0))
    spec.error_hints = hints
    return spec


def check_rotate_180(answer: Any) -> Feedback:
    """Check ``rotate_180(images [B, C, H, W]) -> [B, C, H, W]``.

    Inputs: three images, a single image, two 2-channel non-square images. The result must
    be exact (Tolerance: exact equality). Known mistakes: only one axis flipped, batch or channels
    flipped too, a 90-degree rotation, a transpose.
    """
    return evaluate(_rotate_180_spec(), answer)


# ----------------------------------------------------------------- class entropy


@functools.cache
def _class_entropy_spec() -> Spec:
    counts = {
        "ten equal classes (ln 10)": [100] * 10,
        "uneven counts with an empty class": [50, 30, 0, 20],
        "a single class (entropy 0)": [7],
        "two classes, 3 and 1": [3, 1],
    }
    cases = [
        Case(label, lambda c=c: ((torch.tensor(c, dtype=torch.int64),), {}))
        for label, c in counts.items()
    ]

    def shares(c: Tensor) -> Tensor:
        return c.double() / c.sum()

    def plogp(p: Tensor) -> Tensor:
        return (p * p.log()).sum()

    mistakes = [
        Mistake(
            lambda c: float(-plogp(shares(c)[c > 0]) / math.log(2)),
            "Your entropy is in bits (`log2`); the course measures it in nats (natural "
            "log, `torch.log`): ten equal classes give ln 10 = 2.303.",
        ),
        Mistake(
            lambda c: float(-plogp(shares(c))),
            "A class with no samples gave NaN: `0 * log 0` is NaN in floating point but "
            "counts as 0 in an entropy. Drop the empty classes (`p = p[p > 0]`).",
        ),
        Mistake(
            lambda c: float(plogp(shares(c)[c > 0])),
            "Your entropy is negative: it is `-sum p log p` (the minus makes it >= 0).",
        ),
        Mistake(
            lambda c: float(-plogp(c[c > 0].double())),
            "Use the class shares `p = counts / counts.sum()`, not the raw counts.",
        ),
    ]
    return Spec("class_entropy", cases, sol.class_entropy, mistakes, Tolerance(1e-5, 1e-6))


def check_class_entropy(answer: Any) -> Feedback:
    """Check ``class_entropy(counts [C] int64) -> float`` (nats).

    Inputs: ten equal classes, uneven counts with an empty class, a single class, counts 3
    and 1. Tolerance ``1e-5 + 1e-6 |expected|``. Known mistakes: bits instead of nats,
    NaN from an empty class, a negative sign, raw counts instead of shares.
    """
    return evaluate(_class_entropy_spec(), answer)
