"""Small torch utilities the package shares: where a model lives, evaluation mode, batches.

Nothing here knows about energies; every module that runs a network over many images (the
training loop's evaluation, the metrics, JEM's detectors, the classifier) uses these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

__all__ = ["batched", "evaluation_mode", "model_device", "scores"]


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model with none."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode inside the ``with`` block; its train/eval mode is restored
    afterwards, even after an error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def batched(
    fn: Callable[[torch.Tensor], torch.Tensor],
    model: nn.Module,
    inputs: torch.Tensor,
    batch_size: int = 512,
) -> torch.Tensor:
    """``fn(batch)`` over ``inputs`` ``[N, ...]`` in batches, concatenated on the CPU (float32).

    Each batch is moved to ``model``'s device; ``model`` runs in eval mode (its mode is
    restored) and without gradients. ``fn`` is usually the model itself or one of its
    methods. Returns ``[N, ...]`` with the trailing shape ``fn`` gives.
    """
    from .checks import positive_int

    positive_int("batch_size", batch_size)
    device = model_device(model)
    with evaluation_mode(model):
        out = [
            fn(inputs[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, inputs.shape[0], batch_size)
        ]
    return torch.cat(out) if out else torch.empty(0)


def scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``, checked to be one score per example: ``[B, ...] -> [B]``.

    A network with several outputs (a classifier's logits ``[B, C]``) is refused with a
    ``ValueError``: read as an energy it would be trained or sampled silently wrong.
    """
    out = model(x)
    if out.shape != x.shape[:1]:
        raise ValueError(
            f"the model must return one score per example, shape [{x.shape[0]}], got "
            f"{list(out.shape)} (a classifier's logits? wrap it, e.g. in ebm_course.jem.JEM)"
        )
    return out
