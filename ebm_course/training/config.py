"""The hyper-parameters of a training run, validated once, and the seeds derived from them."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from .. import checks
from ..speed import PRECISIONS, SamplerSpeed

# Every random stream of a run derives from ``config.seed`` by a fixed offset, so that a run
# is reproducible and the streams are independent of each other.
SHUFFLE_SEED_OFFSET = 1  # the CPU generator that shuffles the training data
EVAL_SEED_OFFSET = 7  # the noise images scored after every epoch (the same ones each epoch)
WATCH_SEED_OFFSET = 11  # the starting noise of the samples fit(sample_every=N) records
RANK_SEED_STRIDE = 1000  # process r of a multi-process run samples with seed + 1000 r
ROLLBACK_SEED_STRIDE = 7919  # after the k-th rollback the sampler restarts at seed + 7919 k

#: Fields that may change when a run is resumed: they change neither the algorithm nor the
#: data (a resume with other speed switches is not bit-identical, but it is the same run).
RESUMABLE_CHANGES = ("epochs", "precision", "channels_last", "compile", "cuda_graph")


def _count(maximum: int) -> functools.partial:
    return functools.partial(checks.positive_int, maximum=maximum)


def _real(low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> Any:
    return functools.partial(
        checks.number, low=low, high=high, open_low=open_low, open_high=open_high
    )


# field -> its check, called as check(name, value); each raises naming the field. The upper
# bounds are far beyond any sensible run; they stop values that would overflow or exhaust
# memory only after training has started.
_FIELD_CHECKS = {
    "batch_size": _count(2**20),
    "alpha": _real(0.0, 1e6),
    "flatness": _real(0.0, 1e6),
    "lr": _real(0.0, 100.0, open_low=True),
    "beta1": _real(0.0, 1.0, open_high=True),  # 1 would freeze Adam's moments (0/0 steps)
    "beta2": _real(0.0, 1.0, open_high=True),
    "lr_gamma": _real(0.0, 1.0, open_low=True),
    "grad_clip": _real(0.0, 1e6, open_low=True),
    "epochs": _count(10**6),
    "mcmc_steps": _count(10**5),
    "step_size": _real(0.0, 1e4, open_low=True),
    "mcmc_noise": _real(0.0, 10.0),
    "grad_clamp": _real(0.0, 1e6, open_low=True),
    "input_noise": _real(0.0, 10.0),
    "buffer_capacity": _count(10**8),
    "reinit_prob": _real(0.0, 1.0),
    "value_range": checks.value_range,
    "seed": functools.partial(checks.positive_int, minimum=0, maximum=2**63 - 1),
    "iters_per_epoch": _count(10**9),
    "val_batch_size": _count(2**20),
    "noise_images": _count(10**7),
    "precision": functools.partial(checks.one_of, choices=PRECISIONS),
    "channels_last": checks.boolean,
    "compile": checks.boolean,
    "cuda_graph": checks.boolean,
}
_MAY_BE_NONE = ("grad_clip", "grad_clamp", "iters_per_epoch")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`~ebm_course.training.fit`; defaults are the tutorial's MNIST
    values. Every invalid field is reported at construction, together, as one ``ValueError``
    that names each field (a config is checked as a whole).
    """

    batch_size: int = 128
    alpha: float = 0.1  # weight of the score regulariser
    flatness: float = 0.0  # weight of Var(f(real)) in the loss; 0 is the tutorial's loss
    lr: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.999
    lr_gamma: float = 0.97  # learning rate x gamma after each epoch (StepLR, step 1)
    grad_clip: float | None = 0.1  # max gradient norm; None disables
    epochs: int = 60
    mcmc_steps: int = 60
    step_size: float = 10.0
    mcmc_noise: float = 0.005  # noise std of each Langevin step
    grad_clamp: float | None = 0.03  # per-pixel clamp of the Langevin gradient
    input_noise: float = 0.005  # noise std added to real images
    buffer_capacity: int = 8192
    reinit_prob: float = 0.05
    value_range: tuple[float, float] = (-1.0, 1.0)
    seed: int = 42
    iters_per_epoch: int | None = None  # None: one pass over the data (drop_last)
    val_batch_size: int = 256
    noise_images: int = 1024  # uniform-noise images scored after each epoch
    # speed switches of the sampler (see ebm_course.speed.SamplerSpeed)
    precision: str = "auto"  # "auto" | "fp32" | "bf16" for the MCMC forward passes
    channels_last: bool = True
    compile: bool = False
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        problems = checks.field_problems(self, _FIELD_CHECKS, _MAY_BE_NONE)
        if not problems and self.flatness > 0 and self.batch_size < 2:
            problems.append("flatness > 0 needs batch_size >= 2 (a variance over the batch)")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))
        self.value_range = checks.value_range("value_range", self.value_range)

    @property
    def speed(self) -> SamplerSpeed:
        """The sampler's speed switches as one :class:`~ebm_course.speed.SamplerSpeed`."""
        return SamplerSpeed(self.precision, self.channels_last, self.compile, self.cuda_graph)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict; unknown keys raise ``ValueError``."""
        return cls(**checks.known_fields(cls, values))

    def changes_from(self, saved: dict[str, Any]) -> list[str]:
        """The fields in which this config differs from ``saved`` (a config dict an earlier
        run wrote), except :data:`RESUMABLE_CHANGES`. A field that ``saved`` lacks (a run made
        before the field existed) counts as its default: the algorithm that run used."""
        defaults = TrainConfig().to_dict()
        old = TrainConfig.from_dict({**defaults, **saved}).to_dict()
        now = self.to_dict()
        return sorted(k for k in now if k not in RESUMABLE_CHANGES and now[k] != old[k])
