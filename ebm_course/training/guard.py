"""The divergence guard: notice when training has gone wrong, so the loop can roll back."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .. import checks


class TrainingDiverged(RuntimeError):
    """Raised when the divergence guard has rolled back too often."""


@dataclass
class DivergenceGuard:
    """Watches each training iteration and asks for a rollback when training diverges.

    Signs of divergence (scores are ``f = -E``; the regulariser keeps healthy ones near 0):

    - a non-finite loss or score (NaN / Inf);
    - an exploding energy scale: ``|mean real score|`` or ``|mean fake score|`` above
      ``max_abs_score``;
    - the sampler losing touch with the data: ``|real score - fake score|`` above
      ``max_score_gap`` (the tutorial's failure mode: real images score high while the
      MCMC samples are noise stuck in spurious maxima, or samples score far above data);
    - a loss beyond ``max_abs_loss`` (for losses without scores, e.g. a classifier's).

    The state *after* the optimiser step is judged too, before it becomes a checkpoint or
    the point to roll back to (:meth:`state_problem`): its weights must be finite and the
    end-of-epoch evaluation finite and within the same bounds. So an update that blows up
    on an epoch's last step never becomes ``last.pt`` or ``best.pt``.

    On a rollback the training loop restores the last stable state (the end of the last
    healthy epoch), reseeds the sampler, multiplies the learning rate by ``lr_factor`` and
    carries on; after ``max_rollbacks`` it raises :class:`TrainingDiverged`.
    """

    enabled: bool = True
    max_abs_score: float = 50.0
    max_score_gap: float = 10.0
    max_rollbacks: int = 3
    lr_factor: float = 0.5
    max_abs_loss: float = 1e4

    def __post_init__(self) -> None:
        checks.boolean("enabled", self.enabled)
        checks.number("max_abs_score", self.max_abs_score, 0.0, open_low=True)
        checks.number("max_score_gap", self.max_score_gap, 0.0, open_low=True)
        checks.positive_int("max_rollbacks", self.max_rollbacks, minimum=0)
        checks.number("lr_factor", self.lr_factor, 0.0, 1.0, open_low=True)
        checks.number("max_abs_loss", self.max_abs_loss, 0.0, open_low=True)

    def problem(self, row: dict[str, float]) -> str | None:
        """Why an iteration's ``row`` (from a training step) looks diverged, or None.

        Every value of ``row`` must be finite; the score checks apply when it holds
        ``real_score`` and ``fake_score``.
        """
        if not self.enabled:
            return None
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            return f"non-finite {', '.join(bad)}"
        if "real_score" in row and "fake_score" in row:
            real, fake = row["real_score"], row["fake_score"]
            if max(abs(real), abs(fake)) > self.max_abs_score:
                return f"energy scale exploded (real {real:.3g}, fake {fake:.3g})"
            if abs(real - fake) > self.max_score_gap:
                return f"real/fake score gap {real - fake:.3g} beyond {self.max_score_gap}"
        if abs(row.get("loss", 0.0)) > self.max_abs_loss:
            return f"loss {row['loss']:.3g} beyond {self.max_abs_loss:g}"
        return None

    def state_problem(
        self, model: nn.Module, evaluation: dict[str, float] | None = None
    ) -> str | None:
        """Why the state after a step (weights, and the epoch's ``evaluation`` scores) may not
        be kept, or None. Evaluated scores must be finite and within ``max_abs_score`` (their
        differences, such as ``val_cdiv``, within twice that)."""
        if not self.enabled:
            return None
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            return "non-finite weights after the optimiser step"
        for key, value in (evaluation or {}).items():
            bound = 2 * self.max_abs_score if key.endswith("cdiv") else self.max_abs_score
            if not math.isfinite(value) or abs(value) > bound:
                return f"evaluation {key} = {value:.3g} (bound {bound:g}) after the epoch"
        return None

    def give_up(self, rollbacks: int, reason: str) -> None:
        """Raise :class:`TrainingDiverged` when ``rollbacks`` is more than allowed."""
        if rollbacks > self.max_rollbacks:
            raise TrainingDiverged(
                f"training diverged {rollbacks} times (last: {reason}); gave up after "
                f"{self.max_rollbacks} rollbacks. Try a lower lr or step_size, or a larger alpha."
            )
