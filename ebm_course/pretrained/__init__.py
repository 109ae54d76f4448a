"""Pretrained energy models shipped with the package, with their model cards.

``load("mnist")`` returns a ready :class:`~ebm_course.models.CNNEnergy` (eval mode; its
output is the score ``f(x) = -E(x)``), read offline from this folder with
``weights_only=True``. ``model_card("mnist")`` returns the JSON card: the exact training
command, config, data, iterations, wall time, device, torch version and metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
AVAILABLE = ("mnist",)


def _check(name: str) -> None:
    if name not in AVAILABLE:
        raise ValueError(f"unknown pretrained model {name!r}; available: {list(AVAILABLE)}")


def weights_path(name: str = "mnist") -> Path:
    """Where the weights of pretrained model ``name`` live (a state-dict file)."""
    _check(name)
    return HERE / f"{name}.pt"


def load(name: str = "mnist", map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """The pretrained model ``name`` as a :class:`~ebm_course.models.CNNEnergy` in eval mode.

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the weights are missing from this installation.
    """
    from ..models import load_energy

    path = weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} are missing; reinstall ebm_course or train your own "
            "with `python -m ebm_course train`"
        )
    return load_energy(path, map_location=map_location)


def model_card(name: str = "mnist") -> dict[str, Any]:
    """The model card of pretrained model ``name`` (a dict read from its JSON file)."""
    _check(name)
    path = HERE / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"model card {path} is missing")
    return json.loads(path.read_text())
