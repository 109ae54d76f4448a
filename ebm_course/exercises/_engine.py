"""Run a learner's function on fixed inputs and explain how it differs from the reference.

A :class:`Spec` lists the test inputs (:class:`Case`), the reference solution, the typical
mistakes (:class:`Mistake`, each a wrong implementation and the message that names it) and
the tolerance. :func:`evaluate` runs the answer on every case and returns a
:class:`Feedback`: correct; not written yet (a stub); a named mistake, when the answer's
outputs agree with those of a known wrong implementation on every case; an exception
(type, message, input, line); or a generic "wrong" with the input, expected and got.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._compare import Tolerance, compare, describe
from ._feedback import Feedback

# frames in these folders are the checker's or torch's, not the learner's
_NOT_LEARNER = (str(Path(__file__).resolve().parent), str(Path(torch.__file__).resolve().parent))


@dataclass(frozen=True)
class Case:
    """One test input: ``make()`` returns fresh ``(args, kwargs)`` for every call."""

    label: str
    make: Callable[[], tuple[tuple, dict]]


@dataclass(frozen=True)
class Mistake:
    """A typical wrong implementation (same signature as the answer) and what to tell."""

    fn: Callable
    message: str


@dataclass(frozen=True)
class Outcome:
    """What one call produced: the observation, or the exception it raised."""

    observed: Any = None
    error: BaseException | None = None
    where: str = ""  # the learner's line that raised, when known
    mutated: str = ""  # name of an input tensor the call changed in place
    stub: str = ""  # why this looks like an unwritten stub, if it does
    phase: str = "call"  # where the error happened: "call" (the answer) or "check" (after)


@dataclass
class Spec:
    """Everything needed to check one exercise (see the module docstring).

    ``observe(result, args, kwargs)`` turns a call's return value into what is compared
    (default: the value itself), e.g. a loss and its gradients, or a model's parameters
    after a training step. ``note`` is added to type and shape complaints.
    """

    exercise: str
    cases: Sequence[Case]
    reference: Callable
    mistakes: Sequence[Mistake]
    tolerance: Tolerance = field(default_factory=Tolerance)
    observe: Callable[[Any, tuple, dict], Any] | None = None
    note: str = ""
    error_hints: Sequence[tuple[str, str]] = ()
    _cache: dict = field(default_factory=dict, repr=False)

    def outcomes(self, fn: Callable, key: Any = None) -> list[Outcome]:
        """Outcomes of ``fn`` on every case; cached under ``key`` (reference, mistakes)."""
        if key is not None and key in self._cache:
            return self._cache[key]
        result = [run(fn, case, self.observe) for case in self.cases]
        if key is not None:
            self._cache[key] = result
        return result


def _tensors(args: tuple, kwargs: dict) -> list[tuple[str, Tensor]]:
    named = [(f"argument {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())
    return [(name, t) for name, t in named if isinstance(t, Tensor)]


def _learner_line(err: BaseException) -> str:
    """``line N of fn: code`` for the innermost frame outside this package and torch."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        if not str(Path(frame.filename).resolve()).startswith(_NOT_LEARNER):
            code = f": {frame.line.strip()}" if frame.line else ""
            return f"line {frame.lineno} of `{frame.name}`{code}"
    return ""


def run(fn: Callable, case: Case, observe: Callable | None = None) -> Outcome:
    """Call ``fn`` on a fresh copy of the case's inputs and record what happened."""
    args, kwargs = case.make()
    before = [(name, t.detach().clone()) for name, t in _tensors(args, kwargs)]
    try:
        with torch.enable_grad():
            result = fn(*args, **kwargs)
    except NotImplementedError as err:
        return Outcome(error=err, stub="raises `NotImplementedError`")
    except Exception as err:  # the learner's bug, reported back to them
        return Outcome(error=err, where=_learner_line(err))
    if result is None or result is Ellipsis:
        return Outcome(stub=f"returned `{result!r}`")
    try:
        with torch.enable_grad():
            observed = observe(result, args, kwargs) if observe else result
    except Exception as err:  # e.g. backpropagating through a broken graph
        return Outcome(error=err, phase="check")
    pairs = zip(before, _tensors(args, kwargs), strict=True)
    changed = [name for (name, old), (_, new) in pairs if _changed(old, new.detach())]
    return Outcome(observed=observed, mutated=changed[0] if changed else "")


def _changed(old: Tensor, new: Tensor) -> bool:
    if old.shape != new.shape or old.dtype != new.dtype:
        return True
    if old.is_floating_point():
        return not bool(torch.isclose(old, new, rtol=0.0, atol=0.0, equal_nan=True).all())
    return not torch.equal(old, new)


# ----------------------------------------------------------------------------- verdict


def _not_written(name: str, why: str) -> Feedback:
    text = (
        f"Not written yet: your `{name}` {why}. Replace the placeholder with your code and "
        f"run the check again (stuck? `ebm_course.exercises.hints({name!r})`)."
    )
    if why.startswith("returned"):
        text += " If you did write it, a `return` statement may be missing."
    return Feedback(name, False, "not_written", text)


# Hints for errors any exercise can run into: (text in the error message, hint).
_COMMON_ERRORS = (
    (
        "does not require grad",
        "`torch.autograd.grad` needs an input with `requires_grad=True`: use "
        "`x = x.detach().requires_grad_(True)` before computing the score. For a second "
        "derivative the first `autograd.grad` needs `create_graph=True`.",
    ),
    (
        "a leaf Variable that requires grad",
        "an in-place operation on a tensor that requires grad: use out-of-place "
        "operations (`x = x + ...` instead of `x += ...`).",
    ),
    (
        "backward through the graph a second time",
        "pass `retain_graph=True` or `create_graph=True` to the first backward pass.",
    ),
)


def error_feedback(
    exercise: str, outcome: Outcome, label: str, hints: Sequence[tuple[str, str]] = ()
) -> Feedback:
    """Feedback for an answer that raised: the exception, the input, the line, a hint."""
    err = outcome.error
    assert err is not None
    text = f"Your function raised `{type(err).__name__}: {err}` on the test input {label!r}."
    if outcome.phase == "check":
        text = (
            f"Your function ran on the test input {label!r}, but backpropagating through "
            f"its result failed: `{type(err).__name__}: {err}`."
        )
    if outcome.where:
        text += f"\nIt happened at {outcome.where}."
    for needle, hint in (*hints, *_COMMON_ERRORS):
        if needle in str(err):
            text += f"\nHint: {hint}"
            break
    if isinstance(err, TypeError) and "argument" in str(err):
        from ._catalog import signature

        text += f"\nThe exercise expects this signature:\n{signature(exercise)}"
    return Feedback(exercise, False, "error", text)


def precheck(name: str, answer: Any) -> Feedback | None:
    """Feedback for an answer that is no function at all (``None``, ``...``, a value)."""
    if answer is None or answer is Ellipsis:
        return _not_written(name, f"is `{answer!r}`")
    if not callable(answer):
        return Feedback(
            name,
            False,
            "wrong",
            f"`check` expects your function itself, e.g. `check({name!r}, {name})` (no "
            f"parentheses after the name), but got {describe(answer)}.",
        )
    return None


def stub_feedback(name: str, outcomes: Sequence[Outcome]) -> Feedback | None:
    """The "not written yet" feedback when any call looked like a stub, else None."""
    for outcome in outcomes:
        if outcome.stub:
            return _not_written(name, outcome.stub)
    return None


def evaluate(spec: Spec, answer: Any) -> Feedback:
    """Check ``answer`` (the learner's function) against ``spec``; see the module docstring."""
    name = spec.exercise
    early = precheck(name, answer)
    if early is not None:
        return early
    mine = spec.outcomes(answer)
    early = stub_feedback(name, mine)
    if early is not None:
        return early
    expected = spec.outcomes(spec.reference, key="reference")
    problems = [
        None if o.error else compare(e.observed, o.observed, spec.tolerance)
        for e, o in zip(expected, mine, strict=True)
    ]
    labels = [case.label for case in spec.cases]
    if not any(o.error for o in mine) and not any(problems):
        mutated = [(o.mutated, label) for o, label in zip(mine, labels, strict=True) if o.mutated]
        if mutated:
            which, label = mutated[0]
            text = (
                f"Your results are right, but your function changed its input ({which}) in "
                f"place on the test input {label!r}. The caller's tensor must stay as it "
                "was: work on a copy (`x = x.clone()`) or use out-of-place operations."
            )
            return Feedback(name, False, "wrong", text)
        text = (
            f"Your `{name}` agrees with the reference on all {len(labels)} test inputs "
            f"({'; '.join(labels)}).\nTolerance: {spec.tolerance}."
        )
        return Feedback(name, True, "correct", text)
    first = next(i for i, (o, p) in enumerate(zip(mine, problems, strict=True)) if o.error or p)
    evidence = problems[first]
    for i, mistake in enumerate(spec.mistakes):
        theirs = spec.outcomes(mistake.fn, key=("mistake", i))
        if all(_same(a, b, spec.tolerance) for a, b in zip(mine, theirs, strict=True)):
            text = mistake.message
            if mine[first].error:
                err = mine[first].error
                text += f"\n(On the test input {labels[first]!r} it raised "
                text += f"`{type(err).__name__}: {err}`.)"
            elif evidence:
                text += f"\nSeen on the test input {labels[first]!r}: {evidence}."
                text += f"\nTolerance: {spec.tolerance}."
            return Feedback(name, False, "mistake", text)
    if mine[first].error:
        return error_feedback(name, mine[first], labels[first], spec.error_hints)
    text = f"Not the expected result on the test input {labels[first]!r}: {evidence}."
    if spec.note and ("shape" in evidence or "expected a" in evidence):
        text += f"\n{spec.note}"
    others = [repr(labels[i]) for i in range(first + 1, len(mine)) if mine[i].error or problems[i]]
    if others:
        text += f"\nIt is also wrong on: {', '.join(others)}."
    text += f"\nTolerance: {spec.tolerance}."
    return Feedback(name, False, "wrong", text)


def _same(a: Outcome, b: Outcome, tol: Tolerance) -> bool:
    """Both raised alike (same phase, type and first line), or both returned matching results."""
    if a.error or b.error:
        if not (a.error and b.error):
            return False
        first = [str(err).split("\n", 1)[0] for err in (a.error, b.error)]
        same_type = type(a.error) is type(b.error)
        return a.phase == b.phase and same_type and first[0] == first[1]
    return compare(b.observed, a.observed, tol) is None


def value_and_grads(inputs: Callable[[tuple, dict], list[Tensor]]) -> Callable:
    """An ``observe`` for losses: the value, and its gradient with respect to ``inputs``.

    The gradient is ``None`` when the result is not a tensor connected to the inputs (a
    detached loss would train nothing).
    """

    def observe(result: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
        grads = None
        wrt = inputs(args, kwargs)
        if isinstance(result, Tensor) and result.requires_grad and wrt:
            parts = torch.autograd.grad(result.sum(), wrt, allow_unused=True)
            grads = torch.cat(
                [
                    (torch.zeros_like(w) if g is None else g).flatten()
                    for g, w in zip(parts, wrt, strict=True)
                ]
            ).detach()
        return {"the returned value": result, "its gradient": grads}

    return observe
