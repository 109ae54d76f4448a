"""Package a finished training run as the shipped pretrained model, with its model card.

    python tools/ship_pretrained.py RUN_DIR [--checkpoint best|last] [--tutorial CKPT]
        [--command TEXT] [--selection TEXT] [--limitation TEXT ...] [--checkpoint-label TEXT]
        [--weights PT] [--continued-from RUN1] [--averaged-epochs E [E ...]]

Reads RUN_DIR/{best,last}.pt and config.json (written by
``python -m ebm_course train --out RUN_DIR``), evaluates the model side by side with the
original tutorial's checkpoint (fixed seeds, the full ``ebm_course.metrics.evaluate``), and
writes ``ebm_course/pretrained/mnist.pt`` (a state dict) and ``mnist.json`` (the card).

A recipe of several steps: ``--weights`` ships other weights than RUN_DIR's (e.g. the mean
that ``tools/average_checkpoints.py`` wrote), and ``--continued-from RUN1`` names the run whose
weights RUN_DIR started from (``train --init-from RUN1/epochs/...``): the card's history is then
RUN1's epochs followed by RUN_DIR's, numbered on.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from ebm_course.checkpoint import load_checkpoint, save_atomic
from ebm_course.metrics import evaluate, format_table
from ebm_course.models import cnn_from_state_dict, load_tutorial_checkpoint

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "ebm_course" / "pretrained"


def chain_histories(first: dict, then: dict) -> dict:
    """The history of a run continued by another: ``then``'s epochs, iteration counts and
    events numbered on after ``first``'s, every other column appended."""
    epochs = len(first["epoch"])
    iterations = first["iterations"][-1] if epochs else 0
    shift = {"epoch": epochs, "iterations": iterations, "step": iterations}
    chained = {}
    for key, values in then.items():
        if key in ("events", "samples"):  # dicts that carry an epoch (and a step)
            moved = [
                {k: v + shift[k] if k in shift else v for k, v in row.items()} for row in values
            ]
            chained[key] = first.get(key, []) + moved
        else:
            chained[key] = first[key] + [v + shift.get(key, 0) for v in values]
    return chained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument(
        "--tutorial", type=Path, default=REPO.parent / "shared/anchors/seed_tutorial/MNIST.ckpt"
    )
    parser.add_argument("--command", default="", help="the exact training command, for the card")
    parser.add_argument(
        "--checkpoint-label",
        default="",
        help="what the card names as the weights' origin (default: RUN_DIR's file and epoch)",
    )
    parser.add_argument("--selection", default="", help="how the checkpoint was chosen")
    parser.add_argument(
        "--limitation",
        action="append",
        default=[],
        help="a known weakness, for the card's 'Known limitations' (repeat for several)",
    )
    parser.add_argument(
        "--averaged-epochs",
        type=int,
        nargs="+",
        default=[],
        help="the epochs (counted over the whole recipe) whose weights the checkpoint averages",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="ship these weights (a file with 'model') instead of RUN_DIR's --checkpoint",
    )
    parser.add_argument(
        "--continued-from",
        type=Path,
        help="the run RUN_DIR started from: its history comes first in the card",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    weights = args.weights or args.run / f"{args.checkpoint}.pt"
    checkpoint = load_checkpoint(weights, required=("model",))
    model = cnn_from_state_dict(checkpoint["model"]).eval()
    # last.pt always holds the history, also for a run stopped before its last epoch
    history = load_checkpoint(args.run / "last.pt", required=("history",))["history"]
    if args.continued_from is not None:
        first = load_checkpoint(args.continued_from / "last.pt", required=("history",))
        history = chain_histories(first["history"], history)
    config = json.loads((args.run / "config.json").read_text())
    log = args.run.parent / f"{args.run.name}.log"
    started = time.perf_counter()
    results = {"shipped": evaluate(model)}
    if args.tutorial.is_file():
        results["tutorial (original checkpoint)"] = evaluate(
            load_tutorial_checkpoint(args.tutorial)
        )
    table = format_table(results)
    print(table)
    card = {
        "name": "mnist",
        "model": "ebm_course.models.CNNEnergy",
        "hidden_features": int(checkpoint["model"]["cnn_layers.0.weight"].shape[0] * 2),
        "output": "score f(x) = -E(x), shape [B]; images [B, 1, 28, 28] in [-1, 1]",
        "checkpoint": args.checkpoint_label
        or (
            f"{weights.name}, epoch {checkpoint['epoch']}"
            if "epoch" in checkpoint
            else str(weights)
        ),
        "command": args.command,
        "selection": args.selection,
        "averaged_epochs": args.averaged_epochs,
        "limitations": args.limitation,
        "config": config,
        "data": "MNIST train: the 10,000 offline images (first 10,000 of the 60,000, shuffled); "
        "validation: the real 10,000 MNIST test images. MNIST by LeCun & Cortes, CC BY-SA 3.0.",
        "epochs": len(history["epoch"]),
        "iterations": history["iterations"][-1] if history["epoch"] else 0,
        "train_seconds": round(sum(history["seconds"]), 1),
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "history": history,
        "metrics": results,
        "metrics_table": table,
        "evaluation_seconds": round(time.perf_counter() - started, 1),
        "log": log.name if log.exists() else None,
    }
    OUT.mkdir(exist_ok=True)
    save_atomic(model.state_dict(), OUT / "mnist.pt")
    (OUT / "mnist.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {OUT / 'mnist.pt'} and {OUT / 'mnist.json'}")


if __name__ == "__main__":
    main()
