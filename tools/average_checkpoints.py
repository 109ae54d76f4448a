"""Average the weights of several checkpoints of one run (a Polyak / stochastic weight average).

    python tools/average_checkpoints.py OUT.pt CKPT [CKPT ...]

Each CKPT is anything :func:`ebm_course.models.load_energy` reads (``fit``'s ``last.pt`` or
``best.pt``, or a ``{"model": state_dict}`` snapshot); all must have the same architecture.
Writes ``{"model": averaged_state_dict, "averaged": [paths]}`` atomically to OUT.pt.

Why: in contrastive-divergence training the model and its sampler chase each other, so the
weights oscillate from epoch to epoch and so does the quality of the samples. The mean of the
weights over a stretch of late epochs damps that oscillation.
"""

from __future__ import annotations

import argparse

import torch

from ebm_course.checkpoint import save_atomic
from ebm_course.models import load_energy


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of state dicts with identical keys and shapes."""
    if not states:
        raise ValueError("nothing to average: no state dicts given")
    keys = states[0].keys()
    for i, state in enumerate(states[1:], start=1):
        if state.keys() != keys:
            raise ValueError(f"state dict {i} has other keys than the first")
    return {key: torch.stack([s[key].float() for s in states]).mean(dim=0) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args()
    states = [load_energy(path).state_dict() for path in args.checkpoints]
    save_atomic({"model": average_state_dicts(states), "averaged": args.checkpoints}, args.out)
    print(f"wrote the mean of {len(states)} checkpoints to {args.out}")


if __name__ == "__main__":
    main()
