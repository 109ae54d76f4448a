"""Training an energy model with contrastive divergence (the tutorial's recipe), and the loop
every trainer of the course shares.

One module per concern:

- :mod:`~ebm_course.training.config`   ``TrainConfig`` (validated) and the seed offsets
- :mod:`~ebm_course.training.step`     the loss, the negatives and one ``training_step``
- :mod:`~ebm_course.training.history`  what a run records (``History``), defined once
- :mod:`~ebm_course.training.guard`    ``DivergenceGuard``: when to roll back
- :mod:`~ebm_course.training.state`    checkpoint contents, RNG capture, resume formats
- :mod:`~ebm_course.training.safety`   one writer per folder, checks before the first
  iteration, the data's fingerprint, a clean stop on Ctrl-C
- :mod:`~ebm_course.training.trainer`  ``Trainer``: the loop (``fit``) over short methods
- :mod:`~ebm_course.training.cd`       ``fit``: contrastive divergence with a replay buffer

Scores are the network's output ``f(x) = -E(x)``. Validation contrastive divergence:
``mean f(uniform noise) - mean f(held-out images)`` (lower is better).
"""

from .cd import ContrastiveDivergenceTrainer, fit, samples_from_noise
from .config import RESUMABLE_CHANGES, TrainConfig
from .guard import DivergenceGuard, TrainingDiverged
from .history import HISTORY_KEYS, STEP_KEYS, History
from .safety import TrainingInterrupted
from .step import (
    contrastive_divergence_loss,
    draw_negatives,
    mean_score,
    noisy_real,
    training_step,
)
from .trainer import RunOptions, Trainer

__all__ = [
    "HISTORY_KEYS",
    "RESUMABLE_CHANGES",
    "STEP_KEYS",
    "ContrastiveDivergenceTrainer",
    "DivergenceGuard",
    "History",
    "RunOptions",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "contrastive_divergence_loss",
    "draw_negatives",
    "fit",
    "mean_score",
    "noisy_real",
    "samples_from_noise",
    "training_step",
]
