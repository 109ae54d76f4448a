"""What a checkpoint of a run holds beyond the modules' state dicts, and how it is read back.

A run is resumable bit for bit (on the CPU, at the same thread count) because a checkpoint
holds, besides weights, optimiser, scheduler and replay buffer: where the run is
(:class:`Progress`), its history, its config, and every random number generator's state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_checkpoint

#: Checkpoint formats :func:`read_run_checkpoint` understands, by the trainer that wrote them.
#: ``ebm_course.fit/1`` (before the history had an ``iterations`` column) is upgraded on load.
FORMATS = {"fit": ("ebm_course.fit/1", "ebm_course.fit/2"), "fit_jem": ("ebm_course.fit_jem/1",)}
REQUIRED = ("model", "optimizer", "scheduler", "buffer", "config", "progress", "rng")


@dataclass
class Progress:
    """Where a run is: the finished epochs, the finished steps of the current epoch, what is
    left of the current shuffled pass, the running sums of the step values, and so on."""

    epoch: int = 0  # finished epochs
    step: int = 0  # finished iterations of the current epoch
    order: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    sums: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # time spent in the current epoch so far
    rollbacks: int = 0


def capture_rng(*generators: torch.Generator) -> dict[str, Any]:
    """The state of torch's, Python's and NumPy's global generators and of ``generators``."""
    numpy_state = np.random.get_state()  # noqa: NPY002 (the global state user code may use)
    rng = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]),
        "generators": [g.get_state() for g in generators],
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(saved: dict[str, Any], *generators: torch.Generator) -> None:
    """Undo :func:`capture_rng` (``generators`` in the same order)."""
    torch.set_rng_state(saved["torch"].cpu())
    random.setstate(_as_tuple(saved["python"]))
    kind, keys, *rest = saved["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))  # noqa: NPY002
    for generator, state in zip(generators, saved["generators"], strict=True):
        generator.set_state(state.cpu())
    if "cuda" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in saved["cuda"]])


def _as_tuple(value: Any) -> Any:
    """Python's random state is nested tuples; a checkpoint may hand back lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def read_run_checkpoint(
    path: Path, kind: str, device: torch.device, iters_per_epoch: int
) -> dict[str, Any]:
    """Read ``path`` (``weights_only``) and check that trainer ``kind`` can resume from it.

    Raises ``ValueError`` naming the file for a corrupt file, a missing key or a format this
    version does not know. A ``ebm_course.fit/1`` state is upgraded to the current layout
    (its epochs had ``iters_per_epoch`` iterations each).
    """
    state = load_checkpoint(path, map_location=device, required=REQUIRED)
    tag = state.get("format", "ebm_course.fit/1")  # the first checkpoints had no tag
    if tag not in FORMATS[kind]:
        raise ValueError(
            f"cannot resume from {path}: it is a {tag!r} checkpoint, and this trainer reads "
            f"{list(FORMATS[kind])} (was it written by another trainer or a newer version?)"
        )
    if tag == "ebm_course.fit/1":
        state = _upgrade_fit_v1(state, iters_per_epoch)
    return state


def _upgrade_fit_v1(state: dict[str, Any], iters_per_epoch: int) -> dict[str, Any]:
    """Version 1 kept the two generators under their own names and no iteration count."""
    rng = dict(state["rng"])
    rng["generators"] = [rng.pop("sample"), rng.pop("shuffle")]
    history = dict(state["history"])
    history["iterations"] = [epoch * iters_per_epoch for epoch in history["epoch"]]
    return {**state, "rng": rng, "history": history, "format": "ebm_course.fit/2"}
