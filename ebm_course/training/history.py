"""What a training run records, defined once: the columns of :class:`History`.

Scores are the network's output ``f(x) = -E(x)``. Every key a training step reports, every
per-epoch sum, the columns of the history and the panels of
:func:`ebm_course.plots.plot_history` come from the one table :data:`COLUMNS` below.
"""

from __future__ import annotations

import math
from typing import Any

# key -> (when it is measured, panel of plot_history or None); the order is the history's.
COLUMNS: dict[str, tuple[str, str | None]] = {
    "loss": ("step", "Loss"),  # contrastive divergence + regulariser, the optimised value
    "reg_loss": ("step", "Loss"),  # alpha * mean(f(x+)^2 + f(x-)^2) (+ the flatness term)
    "cdiv": ("step", "Loss"),  # mean f(fake) - mean f(real)
    "real_score": ("step", "Scores f(x) = -E(x)"),  # mean f of (noised) training images
    "fake_score": ("step", "Scores f(x) = -E(x)"),  # mean f of replay-buffer samples
    "noise_score": ("epoch", "Scores f(x) = -E(x)"),  # mean f of fixed uniform-noise images
    "val_cdiv": ("epoch", "Validation"),  # mean f(noise) - mean f(held-out images)
    "lr": ("epoch", "Learning rate"),  # the learning rate the epoch ran with
    "iterations": ("epoch", None),  # optimiser steps so far (all epochs)
    "seconds": ("epoch", None),  # wall-clock seconds of the epoch's iterations
}

#: What one training step reports (batch means), in order: summed over an epoch, then averaged.
STEP_KEYS = tuple(key for key, (when, _) in COLUMNS.items() if when == "step")
#: The columns of a :class:`History`: the epoch number, then :data:`COLUMNS`.
HISTORY_KEYS = ("epoch", *COLUMNS)
_YLABELS = {
    "Loss": "loss",
    "Scores f(x) = -E(x)": "mean score",
    "Validation": "contrastive divergence",
    "Learning rate": "lr",
}
#: Panels of ``plot_history``: (title, y label, keys drawn in that panel).
PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = tuple(
    (panel, ylabel, tuple(key for key, (_, p) in COLUMNS.items() if p == panel))
    for panel, ylabel in _YLABELS.items()
)


class History:
    """Per-epoch training record: one list per key of :data:`HISTORY_KEYS`, one entry per
    finished epoch, read as attributes (``history.val_cdiv``) or as ``to_dict()``.

    ``events`` lists the divergence guard's rollbacks (dicts with ``epoch``, ``step``,
    ``reason`` and the new ``lr``). ``val_cdiv`` is NaN without validation data. ``samples``
    holds what ``fit(..., sample_every=N)`` recorded every N epochs: dicts with ``epoch``,
    ``from_noise`` (images from uniform noise after 256 Langevin steps, ``[16, ...]``, CPU)
    and ``buffer`` (16 images of the replay buffer at that time).
    """

    def __init__(self, **columns: list) -> None:
        unknown = sorted(set(columns) - {*HISTORY_KEYS, "events", "samples"})
        if unknown:
            raise ValueError(f"unknown History columns {unknown}; known: {list(HISTORY_KEYS)}")
        self.events: list[dict] = list(columns.get("events", []))
        self.samples: list[dict] = list(columns.get("samples", []))
        epochs = len(columns.get("epoch", []))
        # a column an older run did not record reads as NaN
        self.columns = {key: list(columns.get(key, [math.nan] * epochs)) for key in HISTORY_KEYS}

    def __getattr__(self, name: str) -> list:
        columns = self.__dict__.get("columns", {})
        if name in columns:
            return columns[name]
        raise AttributeError(f"History has no column {name!r}; columns: {list(HISTORY_KEYS)}")

    def append(self, **row: float) -> None:
        """Add one epoch: a value for every column."""
        missing = sorted(set(HISTORY_KEYS) - set(row))
        if missing:
            raise ValueError(f"History.append needs a value for every column; missing {missing}")
        for key in HISTORY_KEYS:
            self.columns[key].append(row[key])

    def __len__(self) -> int:
        return len(self.columns["epoch"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self.to_dict(False) == other.to_dict(False)

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, columns {list(HISTORY_KEYS)})"

    def to_dict(self, samples: bool = True) -> dict[str, list[Any]]:
        """The columns, ``events`` and (unless ``samples=False``, e.g. for JSON) ``samples``."""
        out = {**{k: list(v) for k, v in self.columns.items()}, "events": list(self.events)}
        return {**out, "samples": list(self.samples)} if samples else out

    @classmethod
    def from_dict(cls, values: dict[str, list]) -> History:
        return cls(**{k: list(v) for k, v in values.items()})
