"""A score-model training run: a validated config, a run folder that resumes, and the
package's measures for the result (``python -m ebm_course train-score`` drives it).

The run trains a :class:`~ebm_course.score_models.ScoreNet` by
:func:`~ebm_course.score_models.fit_score_model` in segments of ``checkpoint_every`` steps.
After each segment ``OUT/last.pt`` (model, EMA, Adam and generator states, history) is
written atomically, so a stopped run resumes where it was and gives the same weights, bit
for bit, as one that never stopped. At the end ``OUT/score_model.pt`` holds the EMA weights
and the config: what :func:`load_score_model` reads and
:func:`ebm_course.pretrained.load` ships.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import checks
from .checkpoint import load_checkpoint, save_atomic
from .diffusion import heun_sampler, prior_noise, reverse_diffusion
from .score_models import (
    ScoreNet,
    annealed_langevin,
    ema_copy,
    fit_score_model,
    karras_levels,
    lognormal_dsm_loss,
    multi_level_dsm_loss,
    noise_levels,
)
from .training.safety import claim_folder, data_changes, fingerprint

__all__ = [
    "ScoreConfig",
    "build_score_model",
    "train_score_run",
    "load_score_model",
    "sample_score_model",
    "evaluate_score_model",
    "OOD_SIGMA",
    "SAMPLERS",
]

SAMPLERS = (
    "heun",
    "predictor_corrector",
    "reverse_diffusion",
    "probability_flow",
    "annealed_langevin",
)
NOISE_SAMPLINGS = ("lognormal", "ladder")
#: Fields that only say how to sample: a run may resume with other values.
SAMPLING_FIELDS = ("sampler", "rho", "churn", "snr", "steps_per_level", "step_lr")
#: What a config saved before a field existed meant by it (the first shipped model's recipe).
LEGACY_FIELDS = {
    "preconditioning": "noise",
    "noise_sampling": "ladder",
    "middle_blocks": 0,
    "attention": False,
}
FORMAT = "ebm_course.score_run.v1"  # the tag a run's last.pt carries
MODEL_FORMAT = "ebm_course.score_model.v1"  # ... and its score_model.pt


def _count(maximum: int) -> functools.partial:
    return functools.partial(checks.positive_int, maximum=maximum)


def _real(low: float, high: float, *, open_low: bool = True, open_high: bool = False) -> Any:
    return functools.partial(
        checks.number, low=low, high=high, open_low=open_low, open_high=open_high
    )


def _channels(name: str, value: Any) -> None:
    checks.positive_int(name, value, minimum=8, maximum=1024)
    if value % 8:
        raise ValueError(f"{name} must be a multiple of 8, got {value}")


_FIELD_CHECKS = {
    "channels": _channels,
    "energy": checks.boolean,
    "preconditioning": lambda name, value: checks.one_of(name, value, ScoreNet.PRECONDITIONINGS),
    "middle_blocks": functools.partial(checks.positive_int, minimum=0, maximum=64),
    "attention": checks.boolean,
    "noise_sampling": lambda name, value: checks.one_of(name, value, NOISE_SAMPLINGS),
    "p_mean": _real(-20.0, 20.0, open_low=False),
    "p_std": _real(0.0, 20.0),
    "sigma_max": _real(0.0, 1e4),
    "sigma_min": _real(0.0, 1e4),
    "levels": _count(10**5),
    "steps": _count(10**9),
    "batch_size": _count(2**20),
    "lr": _real(0.0, 100.0),
    "cosine_decay": checks.boolean,
    "ema_decay": _real(0.0, 1.0, open_low=False, open_high=True),
    "seed": functools.partial(checks.positive_int, minimum=0, maximum=2**63 - 1),
    "sampler": lambda name, value: checks.one_of(name, value, SAMPLERS),
    "rho": _real(0.0, 1e3),
    "churn": _real(0.0, 2**0.5 - 1, open_low=False),
    "snr": _real(0.0, 100.0),
    "steps_per_level": _count(10**5),
    "step_lr": _real(0.0, 1e4),
}


@dataclass(frozen=True)
class ScoreConfig:
    """Everything that defines a score-model run and how it samples.

    Model: ``channels`` (ScoreNet width, a multiple of 8), ``energy`` (the energy view),
    ``preconditioning`` (``"edm"`` or ``"noise"``), ``middle_blocks`` and ``attention`` (extra
    capacity at 7 x 7 pixels; see :class:`~ebm_course.score_models.ScoreNet`).
    Noise: levels between ``sigma_max`` and ``sigma_min`` (pixels in ``[-1, 1]``); training
    draws them by ``noise_sampling``: ``"lognormal"``
    (:func:`~ebm_course.score_models.lognormal_dsm_loss` with ``p_mean``, ``p_std``) or
    ``"ladder"`` (uniformly from ``levels`` geometric levels,
    :func:`~ebm_course.score_models.multi_level_dsm_loss`). Training: ``steps`` Adam steps
    of ``batch_size`` images at ``lr`` (``cosine_decay``: down to 0 along a half cosine),
    EMA ``ema_decay``, ``seed``. Sampling: ``sampler`` (one of :data:`SAMPLERS`) walks
    ``levels`` levels down from ``sigma_max`` (:meth:`sampling_sigmas`): ``"heun"`` on the
    schedule of :func:`~ebm_course.score_models.karras_levels` with ``rho`` and ``churn``
    (:func:`~ebm_course.diffusion.heun_sampler`), the others on the geometric ladder;
    ``snr`` is the predictor-corrector's (:func:`~ebm_course.diffusion.corrector_step`);
    ``steps_per_level`` and ``step_lr`` are used by annealed Langevin only (with log-normal
    training, ``levels`` matters for sampling only). The defaults are the shipped model's
    config. Every bad field is named in one ``ValueError``.
    """

    channels: int = 16
    energy: bool = False
    preconditioning: str = "edm"
    middle_blocks: int = 2
    attention: bool = True
    sigma_max: float = 10.0
    sigma_min: float = 0.02
    levels: int = 60
    noise_sampling: str = "lognormal"
    p_mean: float = -0.6
    p_std: float = 1.2
    steps: int = 10000
    batch_size: int = 128
    lr: float = 2e-3
    cosine_decay: bool = True
    ema_decay: float = 0.999
    seed: int = 0
    sampler: str = "heun"
    rho: float = 7.0
    churn: float = 0.4
    snr: float = 0.3
    steps_per_level: int = 3
    step_lr: float = 2e-5

    def __post_init__(self) -> None:
        problems = checks.field_problems(self, _FIELD_CHECKS)
        if not problems and self.sigma_min > self.sigma_max:
            problems.append(f"sigma_min {self.sigma_min} exceeds sigma_max {self.sigma_max}")
        if not problems and self.levels == 1 and self.sigma_min != self.sigma_max:
            problems.append("levels = 1 needs sigma_min == sigma_max")
        if problems:
            raise ValueError("invalid ScoreConfig: " + "; ".join(problems))

    def sigmas(self) -> torch.Tensor:
        """The geometric ladder of noise levels, largest first: float32 ``[levels]``."""
        return noise_levels(self.sigma_max, self.sigma_min, self.levels)

    def sampling_sigmas(self) -> torch.Tensor:
        """The levels ``sampler`` walks down, largest first: float32 ``[levels]``."""
        if self.sampler == "heun":
            return karras_levels(self.sigma_max, self.sigma_min, self.levels, self.rho)
        return self.sigmas()

    def loss(self) -> Callable:
        """The training loss, ``loss(model, batch, generator=...)``, for
        :func:`~ebm_course.score_models.fit_score_model`: the ladder's
        :func:`~ebm_course.score_models.multi_level_dsm_loss` on :meth:`sigmas`, or the
        log-normal :func:`~ebm_course.score_models.lognormal_dsm_loss`."""
        if self.noise_sampling == "ladder":
            return functools.partial(multi_level_dsm_loss, sigmas=self.sigmas())
        return functools.partial(lognormal_dsm_loss, p_mean=self.p_mean, p_std=self.p_std)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ScoreConfig:
        """Build a config from a dict; unknown keys raise ``ValueError``."""
        return cls(**checks.known_fields(cls, values))


def build_score_model(config: ScoreConfig) -> ScoreNet:
    """A fresh :class:`~ebm_course.score_models.ScoreNet` for ``config``."""
    return ScoreNet(
        config.channels,
        energy=config.energy,
        preconditioning=config.preconditioning,
        middle_blocks=config.middle_blocks,
        attention=config.attention,
    )


def _learning_rate(config: ScoreConfig, step: int) -> float:
    """The learning rate for (1-based) ``step``: constant, or a half cosine down to 0 at
    the last step (and after it)."""
    if not config.cosine_decay:
        return config.lr
    angle = torch.tensor(torch.pi * min(step, config.steps) / config.steps)  # float32
    return 0.5 * config.lr * (1.0 + torch.cos(angle).item())


def _new_state(config: ScoreConfig, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(config.seed)
    model = build_score_model(config).to(device)
    return {
        "model": model,
        "ema": ema_copy(model),
        "optimizer": torch.optim.Adam(model.parameters(), lr=config.lr),
        "generator": torch.Generator().manual_seed(config.seed),
        "history": {"step": [], "loss": [], "seconds": []},
    }


def _resume(path: Path, config: ScoreConfig, data: dict, device: torch.device) -> dict:
    """The state saved at ``path``, refusing another config or other data."""
    saved = load_checkpoint(path, required=("format", "config", "model", "ema", "optimizer"))
    if saved["format"] != FORMAT:
        raise ValueError(f"{path} is not a score-model run (format {saved['format']!r})")
    before = {**ScoreConfig().to_dict(), **LEGACY_FIELDS, **saved["config"]}
    changed = [
        key
        for key, value in config.to_dict().items()
        if before[key] != value and key not in SAMPLING_FIELDS
    ]
    changed += data_changes(saved["data"], data)
    if changed:
        raise ValueError(
            f"{path} was made with other settings ({', '.join(changed)}); "
            "use another --out, or --fresh to start over"
        )
    state = _new_state(config, device)
    state["model"].load_state_dict(saved["model"])
    state["ema"].load_state_dict(saved["ema"])
    state["optimizer"].load_state_dict(saved["optimizer"])
    state["generator"].set_state(saved["generator"])
    state["history"] = saved["history"]
    return state


def _save(path: Path, state: dict, config: ScoreConfig, data: dict) -> None:
    save_atomic(
        {
            "format": FORMAT,
            "config": config.to_dict(),
            "data": data,
            "model": state["model"].state_dict(),
            "ema": state["ema"].state_dict(),
            "optimizer": state["optimizer"].state_dict(),
            "generator": state["generator"].get_state(),
            "history": state["history"],
        },
        path,
    )


def train_score_run(
    config: ScoreConfig,
    images: torch.Tensor,
    out: str | Path,
    *,
    checkpoint_every: int = 250,
    resume: bool = True,
    device: torch.device | str = "cpu",
    log: Callable[[int, float], None] | None = None,
) -> dict[str, list[float]]:
    """Train a score model on ``images`` ``[N, 1, 28, 28]`` in ``[-1, 1]`` into folder ``out``.

    Resumes from ``out/last.pt`` when ``resume`` (refusing another config or other data);
    ``log(step, loss)`` is called after each segment. Writes ``out/last.pt`` after every
    ``checkpoint_every`` steps and ``out/score_model.pt`` (EMA weights, config, history)
    at the end. Returns the history ``{"step", "loss", "seconds"}``; ``seconds`` counts
    the wall-clock of training only, across resumes.
    """
    images = checks.as_images("images", images)
    checks.positive_int("checkpoint_every", checkpoint_every)
    device = torch.device(device)
    out, data = Path(out), {"images": fingerprint(images)}
    with claim_folder(out):
        last = out / "last.pt"
        state = _resume(last, config, data, device) if resume and last.is_file() else None
        state = state or _new_state(config, device)
        images = images.to(device)  # once, not per segment
        while len(state["history"]["step"]) < config.steps:
            _train_segment(state, config, images, checkpoint_every)
            _save(last, state, config, data)
            if log is not None:
                log(state["history"]["step"][-1], state["history"]["loss"][-1])
        final = {"format": MODEL_FORMAT, "config": config.to_dict()}
        final.update(model=state["ema"].state_dict(), history=state["history"])
        save_atomic(final, out / "score_model.pt")
    return state["history"]


def _train_segment(state: dict, config: ScoreConfig, images: torch.Tensor, size: int) -> None:
    """Up to ``size`` more steps; the learning rate is set before every step."""
    history, optimizer = state["history"], state["optimizer"]
    done = len(history["step"])
    seconds = history["seconds"][-1] if done else 0.0

    def set_lr(step: int, _model: object = None) -> None:  # called after local step `step`
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, done + step + 1)

    set_lr(0)
    segment = fit_score_model(
        state["model"],
        images,
        None,
        loss=config.loss(),
        steps=min(size, config.steps - done),
        batch_size=config.batch_size,
        optimizer=optimizer,
        ema=state["ema"],
        ema_decay=config.ema_decay,
        generator=state["generator"],
        callback=set_lr,
    )
    history["step"] += [done + step for step in segment["step"]]
    history["loss"] += segment["loss"]
    history["seconds"] += [seconds + t for t in segment["seconds"]]


def load_score_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[ScoreNet, ScoreConfig]:
    """The model in ``score_model.pt`` (written by :func:`train_score_run`) in eval mode,
    and its config. A run's ``last.pt`` works too (its EMA weights are used)."""
    saved = load_checkpoint(path, map_location=map_location, required=("format", "config"))
    if saved["format"] not in (FORMAT, MODEL_FORMAT):
        raise ValueError(f"{path} is not a score model (format {saved['format']!r})")
    config = ScoreConfig.from_dict({**LEGACY_FIELDS, **saved["config"]})
    model = build_score_model(config)
    model.load_state_dict(saved["ema"] if saved["format"] == FORMAT else saved["model"])
    return model.to(map_location).eval(), config


def sample_score_model(
    model: torch.nn.Module,
    config: ScoreConfig,
    n: int,
    generator: torch.Generator | None = None,
    batch_size: int = 250,
) -> torch.Tensor:
    """``n`` images ``[n, 1, 28, 28]`` in ``[-1, 1]`` (clamped) by ``config.sampler``.

    The diffusion samplers start from :func:`~ebm_course.diffusion.prior_noise` at
    ``sigma_max``; annealed Langevin starts from uniform noise in ``[-1, 1]``, as the
    energy models do. Runs on the model's device; ``generator`` lives there too.
    """
    checks.positive_int("n", n)
    checks.positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    sigmas = config.sampling_sigmas().to(device)
    chunks = []
    for start in range(0, n, batch_size):
        shape = (min(batch_size, n - start), 1, 28, 28)
        if config.sampler == "annealed_langevin":
            x = torch.rand(shape, generator=generator, device=device) * 2 - 1
            x = annealed_langevin(
                model, x, sigmas, config.steps_per_level, config.step_lr, generator
            )
        else:
            x = prior_noise(shape, config.sigma_max, generator, device)
            if config.sampler == "heun":
                x = heun_sampler(model, x, sigmas, config.churn, generator)
            else:
                snr = config.snr if config.sampler == "predictor_corrector" else 0.0
                ode = config.sampler == "probability_flow"
                x = reverse_diffusion(model, x, sigmas, generator, ode=ode, snr=snr)
        chunks.append(x.clamp(-1.0, 1.0).cpu())
    return torch.cat(chunks)


#: The default noise level of the detector, :class:`~ebm_course.score_models.OODScore`: the
#: level ``tools/ship_score_model.py`` chose for the shipped model on training data (its card).
OOD_SIGMA = 1.0


def evaluate_score_model(
    model: torch.nn.Module,
    config: ScoreConfig,
    *,
    n_samples: int = 1000,
    seed: int = 0,
    ood_sigma: float | None = None,
    data_root: str | Path | None = None,
    classifier: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """The score model on the energy models' measures (:func:`ebm_course.metrics.evaluate`):
    the AUROCs of :class:`~ebm_course.score_models.OODScore` at ``ood_sigma`` (default
    :data:`OOD_SIGMA`) and ``n_samples`` images from :func:`sample_score_model`, judged
    against MNIST test with the same seeds. Adds ``"ood_sigma"`` and ``"sampler"``."""
    from .metrics import evaluate
    from .score_models import OODScore

    sigma = OOD_SIGMA if ood_sigma is None else ood_sigma
    result = evaluate(
        OODScore(model, sigma),
        n_samples=n_samples,
        seed=seed,
        data_root=data_root,
        classifier=classifier,
        sampler=functools.partial(sample_score_model, model, config),
    )
    return {**result, "ood_sigma": sigma, "sampler": config.sampler}
