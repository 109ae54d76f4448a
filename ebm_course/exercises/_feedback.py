"""The result of checking one exercise, and how it displays (plain text, markdown, HTML).

No torch here: a :class:`Feedback` is plain data, cheap to build and to print.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

KINDS = ("correct", "not_written", "mistake", "wrong", "error")

# kind -> (plain-text label, symbol for the rich displays, border colour)
# The label words carry the meaning; symbol and colour only repeat it.
_STYLE = {
    "correct": ("CORRECT", "✅", "#2e7d32"),
    "not_written": ("NOT WRITTEN YET", "✏️", "#6d6d6d"),
    "mistake": ("MISTAKE SPOTTED", "❌", "#c62828"),
    "wrong": ("NOT RIGHT YET", "❌", "#c62828"),
    "error": ("ERROR IN YOUR CODE", "⚠️", "#ef6c00"),
}

_CODE = re.compile(r"`([^`]+)`")
_EMPHASIS = re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*\S)?)\*(?![\w*])")


@dataclass(frozen=True)
class Feedback:
    """What :func:`ebm_course.exercises.check` says about an answer.

    Attributes:
        exercise: the exercise's name, e.g. ``"cd_loss"``.
        passed: True only when the answer agrees with the reference on every test input.
        kind: ``"correct"``, ``"not_written"`` (a stub: ``NotImplementedError``, ``None``
            or ``...``), ``"mistake"`` (a typical mistake, named in the message),
            ``"wrong"`` (some other wrong answer: which input, expected vs got) or
            ``"error"`` (the answer raised an exception: its type, message and input).
        message: the explanation, plain text with `code` in backticks.

    As the last expression of a notebook cell
    it renders as a boxed note (HTML or markdown); ``print(feedback)`` gives plain text.
    """

    exercise: str
    passed: bool
    kind: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.passed != (self.kind == "correct"):
            raise ValueError("passed must be True exactly when kind is 'correct'")

    @property
    def label(self) -> str:
        """The plain-text headline word(s) of this kind, e.g. ``"MISTAKE SPOTTED"``."""
        return _STYLE[self.kind][0]

    def __str__(self) -> str:
        return f"{self.label}: {self.exercise}\n{self.message}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        label, symbol, _ = _STYLE[self.kind]
        lines = self.message.split("\n")
        body = "  \n".join(lines)  # a markdown line break per message line
        return f"**{symbol} {label.capitalize()}** (`{self.exercise}`)\n\n{body}\n"

    def _repr_html_(self) -> str:
        label, symbol, colour = _STYLE[self.kind]
        body = "<br>".join(_inline_code(html.escape(line)) for line in self.message.split("\n"))
        return (
            f'<div role="status" style="border-left: 6px solid {colour}; padding: 0.4em 0.8em; '
            f'margin: 0.3em 0;"><strong>{symbol} {html.escape(label.capitalize())}</strong> '
            f"(<code>{html.escape(self.exercise)}</code>)<br>{body}</div>"
        )


def _inline_code(text: str) -> str:
    """`x` -> <code>x</code> and *x* -> <em>x</em> (on already escaped text)."""
    parts = _CODE.split(text)  # odd indices: code spans, left as they are
    return "".join(
        f"<code>{part}</code>" if i % 2 else _EMPHASIS.sub(r"<em>\1</em>", part)
        for i, part in enumerate(parts)
    )


class Source(str):
    """Python source text that shows as a highlighted code block in a notebook.

    A ``str`` (print it, search it, ``exec`` it); as the last expression of a cell it
    renders as a fenced ``python`` block, and its plain ``repr`` is the code itself.
    """

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        return f"```python\n{self}\n```"
