"""The score-model commands of the command line: ``train-score`` and ``evaluate-score``
(:mod:`ebm_course.score_training` does the work; :mod:`ebm_course.cli` runs them)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from . import __version__
from .cli import (
    CLIError,
    add_dataclass_flags,
    int_at_least,
    pick_device,
    run_folder,
    training_data,
)


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``train-score`` and ``evaluate-score`` to the subcommands ``commands``."""
    _add_train(
        commands.add_parser(
            "train-score", parents=[common], help="train a noise-conditional score model"
        )
    )
    _add_evaluate(
        commands.add_parser(
            "evaluate-score", parents=[common], help="OOD AUROCs and samples of a score model"
        )
    )


def _add_train(parser: argparse.ArgumentParser) -> None:
    from .score_training import ScoreConfig

    add = parser.add_argument
    add("--out", type=run_folder, default=Path("runs/score"), help="run folder")
    add("--data-root", type=Path, help="datasets folder (default PATH_DATASETS)")
    add("--offline", action="store_true", help="never try to download data")
    add("--train-limit", type=int_at_least(1), help="use only the first N training images")
    add("--threads", type=int_at_least(1), help="torch CPU threads")
    add("--fresh", action="store_true", help="ignore OUT/last.pt, start over")
    add("--checkpoint-every", type=int_at_least(1), default=250, help="steps (default 250)")
    add_dataclass_flags(parser, ScoreConfig, "score model (default: the shipped recipe)")


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("checkpoint", help="a score_model.pt or a run's last.pt, or 'pretrained'")
    add("--json", action="store_true", help="print JSON instead of a table")
    add("--n-samples", type=int_at_least(2), default=1000, help="generated images")
    add("--seed", type=int_at_least(0), default=0)
    add("--ood-sigma", type=float, default=None, help="noise level of the OOD score")
    add("--data-root", type=Path, help="datasets folder (default PATH_DATASETS)")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .score_training import ScoreConfig, train_score_run

    fields = [field.name for field in dataclasses.fields(ScoreConfig)]
    try:
        config = ScoreConfig.from_dict({k: getattr(args, k) for k in fields if hasattr(args, k)})
    except (TypeError, ValueError) as err:
        raise CLIError(str(err)) from err
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.dataset = "mnist"
    images, _ = training_data(args)
    if len(images) < config.batch_size:
        raise CLIError(f"{len(images)} training images are fewer than --batch-size")
    device = pick_device(args.device)
    print(f"ebm_course {__version__} | torch {torch.__version__} | device {device}")
    print(f"data: mnist, {len(images)} training images")
    print("config:", json.dumps(config.to_dict()), flush=True)

    def log(step: int, loss: float) -> None:
        print(f"step {step}: loss {loss:.2f}", flush=True)

    history = train_score_run(
        config,
        images,
        args.out,
        checkpoint_every=args.checkpoint_every,
        resume=not args.fresh,
        device=device,
        log=log,
    )
    seconds = history["seconds"][-1]
    print(f"done: {len(history['step'])} steps in {seconds:.0f} s; model in {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .metrics import format_table
    from .score_training import evaluate_score_model, load_score_model

    device = pick_device(args.device)
    try:
        if args.checkpoint == "pretrained":
            from .pretrained import load_score

            model, config = load_score("mnist_score", map_location=device)
        else:
            model, config = load_score_model(args.checkpoint, map_location=device)
        result = evaluate_score_model(
            model,
            config,
            n_samples=args.n_samples,
            seed=args.seed,
            ood_sigma=args.ood_sigma,
            data_root=args.data_root,
        )
    except FileNotFoundError as err:
        raise CLIError(f"{err} (set PATH_DATASETS or --data-root)") from err
    results = {args.checkpoint: result}
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0
