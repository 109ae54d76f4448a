"""Checked exercises for the lessons, with instant, specific feedback.

Every exercise asks for one short function (a loss, a sampler step, a metric...). Write it,
then check it::

    from ebm_course.exercises import check, stub

    print(stub("cd_loss"))          # the starting code: signature, task, placeholder

    def cd_loss(real_score, fake_score, alpha):
        ...

    check("cd_loss", cd_loss)       # CORRECT / NOT WRITTEN YET / MISTAKE SPOTTED / ...

The checker runs your function on small, fixed inputs (edge cases included) and compares
it with the reference solution within a stated tolerance. When your answer matches a
typical mistake it names the mistake; otherwise it says which input failed, what was
expected and what came out. :func:`show_solution` prints the reference solution, the code
of :mod:`ebm_course.exercises.solutions`.

Sign convention, as everywhere in :mod:`ebm_course`: networks return the *score*
``f(x) = -E(x)``, and the model density is ``q(x) = exp(f(x)) / Z``.

Importing this module is cheap: torch loads when a check runs or a solution is shown.
"""

from __future__ import annotations

from typing import Any

from ._catalog import EXERCISES, Exercise, get
from ._feedback import Feedback, Source

__all__ = [
    "EXERCISES",
    "Exercise",
    "Feedback",
    "Source",
    "check",
    "exercises_for",
    "hints",
    "show_solution",
    "stub",
]


def check(name: str, answer: Any) -> Feedback:
    """Check ``answer``, the learner's function for the exercise ``name``.

    Returns a :class:`Feedback` (``.passed``, ``.kind``, ``.message``) that displays as a
    boxed note in a notebook. Never raises for a wrong or failing answer; an unknown
    ``name`` raises ``KeyError`` listing the exercises.
    """
    return get(name).check(answer)


def stub(name: str) -> Source:
    """The code a learner starts from: imports, signature, task as docstring, placeholder."""
    return get(name).stub()


def show_solution(name: str) -> Source:
    """The reference solution's source code (from :mod:`ebm_course.exercises.solutions`)."""
    return get(name).show_solution()


def hints(name: str) -> list[str]:
    """The exercise's hints, from gentle to nearly the answer."""
    return list(get(name).hints)


def exercises_for(lesson: int) -> list[Exercise]:
    """The exercises of one lesson (1-8), in order."""
    return [exercise for exercise in EXERCISES.values() if exercise.lesson == lesson]
