"""Package a finished training run as the shipped pretrained model, with its model card.

    python tools/ship_pretrained.py RUN_DIR [--checkpoint best|last] [--tutorial CKPT]
        [--command TEXT] [--selection TEXT] [--limitation TEXT ...] [--checkpoint-label TEXT]
        [--averaged-epochs E [E ...]]

Reads RUN_DIR/{best,last}.pt and config.json (written by
``python -m ebm_course train --out RUN_DIR``), evaluates the model side by side with the
original tutorial's checkpoint (fixed seeds, the full ``ebm_course.metrics.evaluate``), and
writes ``ebm_course/pretrained/mnist.pt`` (a state dict) and ``mnist.json`` (the card).
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
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    checkpoint = load_checkpoint(args.run / f"{args.checkpoint}.pt", required=("model",))
    model = cnn_from_state_dict(checkpoint["model"]).eval()
    # last.pt always holds the history, also for a run stopped before its last epoch
    history = load_checkpoint(args.run / "last.pt", required=("history",))["history"]
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
        or f"{args.checkpoint}.pt, epoch {checkpoint.get('epoch')}",
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
