"""ebm_course: the helpers behind the deep energy-based models course.

Sign convention, everywhere in this package: a network returns the *score*
``f(x) = -E(x)``, the negative energy. High score = low energy = likely under the
model, so the (unnormalised) density is ``q(x) = exp(f(x)) / Z``.

Submodules, one idea each (imports run one way: checks, utils <- speed <- sampling <-
training <- jem, objectives <- cli; the sampler and the training loop take any network and
never import ``models``):

- :mod:`ebm_course.models`   the energy networks (``CNNEnergy``, ``MLPEnergy``)
- :mod:`ebm_course.sampling` Langevin dynamics (``langevin_steps`` is the algorithm) and the
  replay buffer; :mod:`ebm_course.speed` the sampler's speed switches (``SamplerSpeed``)
- :mod:`ebm_course.training` ``TrainConfig``, ``History``, the shared ``Trainer`` loop, ``fit``
- :mod:`ebm_course.checks`, :mod:`ebm_course.utils` input checks and small torch utilities
- :mod:`ebm_course.explorer` kernel-free sliders over precomputed figures (``frames_slider``)
- :mod:`ebm_course.exercises` checked exercises for the lessons (``check``, ``stub``,
  ``show_solution``)
- :mod:`ebm_course.data`     MNIST / FashionMNIST in [-1, 1], with an offline sample
- :mod:`ebm_course.plots`    image grids, MCMC trajectories, curves, histograms
- :mod:`ebm_course.toy`      2-D data with known densities, grid partition functions, exact NLL
- :mod:`ebm_course.objectives` score matching and NCE beside contrastive divergence
- :mod:`ebm_course.jem`      joint energy models: a classifier's logits as an energy
- :mod:`ebm_course.score_models` noise-conditional score networks, multi-level denoising score
  matching, annealed Langevin; :mod:`ebm_course.diffusion` the reverse diffusion;
  :mod:`ebm_course.score_training` a score-model run (``train-score``) and its evaluation
- :mod:`ebm_course.metrics`  OOD AUROCs and sample quality; :mod:`ebm_course.pretrained` the
  shipped model and its card

``import ebm_course`` is cheap: the submodules (and torch) load on first use, so
``from ebm_course import langevin`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it (loaded lazily, PEP 562)
_EXPORTS = {
    "CNNEnergy": "models",
    "MLPEnergy": "models",
    "load_tutorial_checkpoint": "models",
    "langevin": "sampling",
    "langevin_steps": "sampling",
    "SamplerSpeed": "speed",
    "ReplayBuffer": "sampling",
    "uniform_noise": "sampling",
    "TrainConfig": "training",
    "History": "training",
    "DivergenceGuard": "training",
    "Trainer": "training",
    "fit": "training",
    "load_mnist": "data",
    "load_fashion_mnist": "data",
    "load_dataset": "data",
    "to_tensors": "data",
    "mnist_tensors": "data",
    "image_grid": "plots",
    "plot_trajectory": "plots",
    "plot_history": "plots",
    "plot_score_histograms": "plots",
    "denoising_score_matching": "objectives",
    "sliced_score_matching": "objectives",
    "noise_contrastive_estimation": "objectives",
    "fit_objective": "objectives",
    "JEM": "jem",
    "fit_jem": "jem",
    "frames_slider": "explorer",
    "jem_training_step": "jem",
}
_SUBMODULES = {
    "models",
    "sampling",
    "training",
    "data",
    "plots",
    "metrics",
    "classifier",
    "checkpoint",
    "pretrained",
    "toy",
    "jem",
    "objectives",
    "checks",
    "utils",
    "speed",
    "exercises",
    "explorer",
    "lesson",
    "score_models",
    "diffusion",
    "score_training",
}

__all__ = ["device", "quick", "__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    # ruff: noqa: F401 (re-exported names)
    import torch

    from .data import load_dataset, load_fashion_mnist, load_mnist, mnist_tensors, to_tensors
    from .explorer import frames_slider
    from .jem import JEM, fit_jem, jem_training_step
    from .models import CNNEnergy, MLPEnergy, load_tutorial_checkpoint
    from .objectives import (
        denoising_score_matching,
        fit_objective,
        noise_contrastive_estimation,
        sliced_score_matching,
    )
    from .plots import image_grid, plot_history, plot_score_histograms, plot_trajectory
    from .sampling import ReplayBuffer, langevin, langevin_steps, uniform_noise
    from .speed import SamplerSpeed
    from .training import DivergenceGuard, History, TrainConfig, Trainer, fit


def quick() -> bool:
    """True when ``EBM_COURSE_QUICK=1``: lessons shrink their runs (used by CI's nbval pass)."""
    import os

    return os.environ.get("EBM_COURSE_QUICK", "") not in ("", "0")


def device() -> torch.device:
    """The device lessons and scripts run on: ``cuda`` when a CUDA GPU is available, else
    ``cpu``. The environment variable ``EBM_COURSE_DEVICE`` (e.g. ``cpu``, ``cuda``,
    ``cuda:1``) forces one; asking for CUDA without a GPU raises ``RuntimeError``."""
    import os

    import torch

    wanted = os.environ.get("EBM_COURSE_DEVICE", "").strip()
    if not wanted:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(wanted)
    except RuntimeError as err:
        raise ValueError(f"EBM_COURSE_DEVICE={wanted!r} is not a device: {err}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"EBM_COURSE_DEVICE={wanted!r}, but no CUDA GPU is available")
    return chosen


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'ebm_course' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
