"""Checker of lesson 3's replay-buffer draw: random output, so properties are tested."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import _fixtures as fx
from ._engine import (
    Case,
    Outcome,
    Tolerance,
    compare,
    describe,
    error_feedback,
    precheck,
    run,
    stub_feedback,
)
from ._feedback import Feedback

# ----------------------------------------------------------------- replay buffer draw

_DRAW_CASES = (  # label, stored rows, batch size, reinit_prob
    ("64 stored images, batch 400, reinit_prob 0.05", 64, 400, 0.05),
    ("an empty buffer (0 stored images), batch 16", 0, 16, 0.05),
    ("64 stored images, batch 32, reinit_prob 1.0", 64, 32, 1.0),
    ("64 stored images, batch 32, reinit_prob 0.0", 64, 32, 0.0),
    ("64 stored images, a single starting point (batch 1)", 64, 1, 0.05),
)
_STORED = fx.uniform(64, 1, 28, 28, seed=21)


def _draw_case(label: str, n: int, batch: int, p: float) -> Case:
    return Case(label, lambda: ((_STORED[:n].clone(), batch, p, fx.gen(22)), {}))


#: The typical mistakes this checker names (exercise -> messages), in the order it tests them.
MISTAKES = {
    "draw_starts": (
        "Two calls with generators of the same seed gave different batches: your function "
        "ignores `generator`. Pass `generator=generator` to every `torch.rand`, `torch.randint` "
        "and `torch.binomial`.",
        "Your fresh rows have values far outside `[-1, 1]`: that looks like Gaussian noise "
        "(`torch.randn`). Chains start from *uniform* noise: "
        "`torch.rand(..., generator=generator) * 2 - 1`.",
        "Your fresh noise lies in `[0, 1]` (`torch.rand` alone); images live in `[-1, 1]`: "
        "use `torch.rand(...) * 2 - 1`.",
        "Most rows are fresh noise for a small reinit_prob: `reinit_prob` is the fraction "
        "started afresh, not the fraction kept.",
        "No fresh rows although reinit_prob > 0: a fraction `reinit_prob` of the batch must "
        "restart from uniform noise, or the chains stop exploring.",
        "Your stored rows are not picked uniformly: some stored images come up far too often, "
        "others never. Pick indices with `torch.randint(len(stored), (k,), generator=generator)`.",
    )
}
_SEED, _GAUSSIAN, _ZERO_ONE, _INVERTED, _NO_FRESH, _NOT_UNIFORM = MISTAKES["draw_starts"]


def _form_problem(batch: int, out: Any) -> str:
    """What is wrong with the output's type, shape or dtype ("" when nothing)."""
    if not isinstance(out, Tensor):
        return f"expected a tensor of shape [{batch}, 1, 28, 28], got {describe(out)}"
    if list(out.shape) != [batch, 1, 28, 28]:
        note = ""
        if out.dim() == 4 and len(out) < batch:
            note = (
                ". Rows drawn without replacement (`randperm`) run out; draw indices with "
                "replacement: `torch.randint(len(stored), (k,), generator=generator)`"
            )
        return f"expected shape [{batch}, 1, 28, 28], got shape {list(out.shape)}{note}"
    if out.dtype != torch.float32:
        return f"expected dtype torch.float32, got dtype {out.dtype}"
    return ""


def _draw_verdict(label: str, n: int, batch: int, p: float, out: Tensor) -> tuple[str, str]:
    """("mistake" | "wrong" | "", message) for one case's (well-formed) output."""
    is_stored = (out[:, None] == _STORED[None, :n]).flatten(2).all(2) if n else None
    fresh = out if is_stored is None else out[~is_stored.any(1)]
    n_fresh = len(fresh)
    seen = f"\nSeen on the test input {label!r}: {n_fresh} of {batch} rows are fresh noise."
    if n_fresh and (fresh.abs() > 1).any():
        if fresh.abs().max() > 1.5:
            return "mistake", _GAUSSIAN + seen
        return "wrong", f"On the test input {label!r}: fresh rows leave `[-1, 1]`."
    if n_fresh and bool((fresh >= 0).all()):
        return "mistake", _ZERO_ONE + seen
    if n and n_fresh > 0.5 * batch and p < 0.5:
        return "mistake", _INVERTED + seen
    if n and p > 0 and n_fresh == 0 and batch * p >= 10:
        return "mistake", _NO_FRESH + seen
    expected_fresh = batch if n == 0 else batch * p
    if abs(n_fresh - expected_fresh) > max(4 * math.sqrt(batch * p * (1 - p)), 0.5):
        return "wrong", (
            f"On the test input {label!r}: {n_fresh} of {batch} rows are fresh noise, expected "
            f"about {expected_fresh:g} (within 4 binomial standard deviations)."
        )
    if is_stored is not None and batch - n_fresh >= 200:
        counts = is_stored.sum(0)
        if int((counts > 0).sum()) < n // 2 or int(counts.max()) > 40:
            return "mistake", _NOT_UNIFORM + f"\nSeen on the test input {label!r}."
    return "", ""


_EMPTY_HINT = (
    (
        "to be less than",
        "an empty buffer has nothing to pick from: return noise only when `len(stored) == 0`.",
    ),
)


def check_draw_starts(answer: Any) -> Feedback:
    """Check ``draw_starts(stored [N, 1, 28, 28], batch_size, reinit_prob, generator)``.

    The draw is random, so the checker tests properties on five inputs (batch 400 with
    reinit_prob 0.05, an empty buffer, reinit_prob 1 and 0, batch 1): the shape and dtype;
    the same generator seed gives the same batch; rows that are not stored images are
    uniform noise in ``[-1, 1]``; stored images are picked uniformly (none more than 40
    times in 380 picks from 64). Tolerance: the count of fresh rows may be 4 binomial
    standard deviations from ``batch * reinit_prob``. Known mistakes: :data:`MISTAKES`.
    """
    name = "draw_starts"
    early = precheck(name, answer)
    if early is not None:
        return early
    cases = [_draw_case(*spec) for spec in _DRAW_CASES]
    outcomes: list[tuple[Outcome, Outcome]] = [(run(answer, c), run(answer, c)) for c in cases]
    early = stub_feedback(name, [o for pair in outcomes for o in pair])
    if early is not None:
        return early
    for (first, _), (label, _n, batch, _p) in zip(outcomes, _DRAW_CASES, strict=True):
        if first.error:
            return error_feedback(name, first, label, _EMPTY_HINT)
        problem = _form_problem(batch, first.observed)
        if problem:
            return Feedback(name, False, "wrong", f"On the test input {label!r}: {problem}.")
    for (first, second), (label, *_rest) in zip(outcomes, _DRAW_CASES, strict=True):
        if compare(first.observed, second.observed, Tolerance(0.0, 0.0)) is not None:
            return Feedback(name, False, "mistake", _SEED + f"\nSeen on the test input {label!r}.")
    for (first, _), spec in zip(outcomes, _DRAW_CASES, strict=True):
        kind, message = _draw_verdict(*spec, first.observed)
        if kind:
            return Feedback(name, False, kind, message)
    text = (
        f"Your `{name}` has the right properties on all {len(cases)} test inputs "
        f"({'; '.join(c.label for c in cases)})."
    )
    return Feedback(name, True, "correct", text)
