"""Command line: ``python -m ebm_course {train,sample,evaluate} ...``.

Bad flags and missing files print a clear message and exit with code 2. The core
modules never import this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

from . import __version__


class CLIError(Exception):
    """A user error: printed without a traceback, exit code 2."""


def _config_fields() -> list[dataclasses.Field]:
    from .training import TrainConfig

    return list(dataclasses.fields(TrainConfig))


def _optional_number(kind: type) -> typing.Callable[[str], object]:
    def parse(text: str) -> object:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = f"{kind.__name__} or 'none'"
    return parse


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, e.g. ``--batch-size 64``; defaults come from a file or
    the dataclass, so only flags given on the command line override."""
    group = parser.add_argument_group("training configuration (default: the tutorial's)")
    hints = typing.get_type_hints(__import__("ebm_course.training").training.TrainConfig)
    for field in _config_fields():
        flag = "--" + field.name.replace("_", "-")
        hint = hints[field.name]
        optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        kwargs: dict = {"default": argparse.SUPPRESS, "dest": field.name}
        if base is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif field.name == "value_range":
            group.add_argument(flag, type=float, nargs=2, metavar=("LOW", "HIGH"), **kwargs)
        else:
            parse = _optional_number(base) if optional else base
            group.add_argument(flag, type=parse, help=f"default {field.default}", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ebm_course",
        description="Train, sample and evaluate deep energy-based models (score f = -E).",
    )
    parser.add_argument("--version", action="version", version=f"ebm_course {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a CNN energy on MNIST (resumable)")
    train.add_argument(
        "--out",
        type=Path,
        default=Path("runs/mnist"),
        help="folder for checkpoints, history.json and logs (default runs/mnist)",
    )
    train.add_argument("--config", type=Path, help="JSON file with TrainConfig fields")
    train.add_argument("--dataset", default="mnist", help="mnist or fashion_mnist")
    train.add_argument("--data-root", type=Path, help="datasets folder (default PATH_DATASETS)")
    train.add_argument("--offline", action="store_true", help="never try to download data")
    train.add_argument("--train-limit", type=int, help="use only the first N training images")
    train.add_argument("--hidden-features", type=int, default=32, help="CNN width (default 32)")
    train.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    train.add_argument("--threads", type=int, help="torch CPU threads")
    train.add_argument("--tensorboard", action="store_true", help="log to OUT/tensorboard")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--fresh", action="store_true", help="ignore OUT/last.pt, start over")
    train.add_argument(
        "--keep-epochs", action="store_true", help="also keep each epoch's weights in OUT/epochs/"
    )
    train.add_argument(
        "--init-from",
        type=Path,
        help="start from these weights (any checkpoint); ignored when OUT/last.pt resumes",
    )
    _add_config_flags(train)

    sample = commands.add_parser("sample", help="generate images from a checkpoint")
    sample.add_argument("checkpoint", help="a checkpoint file, or 'pretrained'")
    sample.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    sample.add_argument("--steps", type=int, default=256, help="Langevin steps (default 256)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", type=Path, default=Path("samples.png"))
    sample.add_argument("--device")
    evaluate = commands.add_parser(
        "evaluate", help="OOD AUROCs and sample quality of one or more checkpoints"
    )
    evaluate.add_argument(
        "checkpoints", nargs="+", help="checkpoint files, or 'pretrained' for the shipped model"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.add_argument("--n-samples", type=int, default=1000, help="generated images")
    evaluate.add_argument("--steps", type=int, default=256, help="Langevin steps per sample")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--data-root", type=Path, help="datasets folder (default PATH_DATASETS)")
    evaluate.add_argument("--device")
    return parser


def _load_model(spec: str, device):
    from .models import load_energy

    try:
        if spec == "pretrained":
            from .pretrained import load

            return load("mnist", map_location=device)
        return load_energy(spec, map_location=device)
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from err


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.n_samples < 2 or args.steps < 1:
        raise CLIError(
            f"--n-samples must be >= 2 and --steps >= 1, got {args.n_samples}, {args.steps}"
        )
    from .metrics import evaluate, format_table

    device = _device(args.device)
    models = {spec: _load_model(spec, device) for spec in args.checkpoints}
    results = {}
    for spec, model in models.items():
        try:
            results[spec] = evaluate(
                model,
                n_samples=args.n_samples,
                steps=args.steps,
                seed=args.seed,
                data_root=args.data_root,
            )
        except FileNotFoundError as err:
            raise CLIError(f"{err} (set PATH_DATASETS or --data-root)") from err
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def _load_config(args: argparse.Namespace):
    from .training import TrainConfig

    values: dict = {}
    if args.config is not None:
        if not args.config.is_file():
            raise CLIError(f"config file not found: {args.config}")
        try:
            values = json.loads(args.config.read_text())
        except json.JSONDecodeError as err:
            raise CLIError(f"config file {args.config} is not valid JSON: {err}") from err
        if not isinstance(values, dict):
            raise CLIError(f"config file {args.config} must hold a JSON object")
    for field in _config_fields():
        if hasattr(args, field.name):
            values[field.name] = getattr(args, field.name)
    if "value_range" in values:
        values["value_range"] = tuple(values["value_range"])
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise CLIError(str(err)) from err


def _device(name: str | None):
    import torch

    from . import device

    if name is None:
        return device()
    try:
        chosen = torch.device(name)
    except RuntimeError as err:
        raise CLIError(f"unknown device {name!r}") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda asked for, but no CUDA GPU is available")
    return chosen


def _log_every(n: int):
    """A fit callback that prints a line every ``n`` iterations (for logs without bars)."""
    import time

    started = time.perf_counter()

    def log(step: int, _model: object) -> None:
        if step % n == 0:
            print(f"iteration {step}: {time.perf_counter() - started:.0f} s", flush=True)

    return log


def cmd_train(args: argparse.Namespace) -> int:
    config = _load_config(args)
    import torch

    from .data import load_dataset, to_tensors
    from .models import CNNEnergy
    from .training import fit

    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.train_limit is not None and args.train_limit < config.batch_size:
        raise CLIError(f"--train-limit must be >= batch size {config.batch_size}")
    device = _device(args.device)
    try:
        found = {"root": args.data_root, "download": not args.offline}
        train_set = load_dataset(args.dataset, train=True, **found)
        test_set = load_dataset(args.dataset, train=False, **found)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        raise CLIError(str(err)) from err
    images, _ = to_tensors(train_set, limit=args.train_limit)
    val_images, _ = to_tensors(test_set)
    print(f"ebm_course {__version__} | torch {torch.__version__} | device {device}")
    print(f"data: {args.dataset}, {len(images)} training and {len(val_images)} test images")
    print("config:", json.dumps(config.to_dict()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    torch.manual_seed(config.seed)
    model = CNNEnergy(hidden_features=args.hidden_features)
    if args.init_from is not None:
        init = _load_model(str(args.init_from), "cpu")
        if init.hidden_features != model.hidden_features:
            raise CLIError(
                f"--init-from {args.init_from} has hidden_features "
                f"{init.hidden_features}, not {model.hidden_features}"
            )
        model.load_state_dict(init.state_dict())
        print(f"initial weights: {args.init_from}")
    history = fit(
        model,
        images,
        val_images,
        config,
        checkpoint_dir=args.out,
        resume=not args.fresh,
        keep_epochs=args.keep_epochs,
        device=device,
        progress=not args.no_progress,
        tensorboard_dir=args.out / "tensorboard" if args.tensorboard else None,
        callback=_log_every(200) if args.no_progress else None,
    )
    (args.out / "history.json").write_text(json.dumps(history.to_dict(), indent=2))
    print(f"done: {len(history)} epochs; checkpoints in {args.out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 1 or args.steps < 1:
        raise CLIError(f"--n and --steps must be >= 1, got {args.n} and {args.steps}")
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from .plots import image_grid
    from .sampling import langevin, uniform_noise

    device = _device(args.device)
    model = _load_model(str(args.checkpoint), device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    start = uniform_noise((args.n, 1, 28, 28), device=device, generator=gen)
    samples = langevin(model, start, steps=args.steps, generator=gen)
    figure = image_grid(samples, nrow=min(8, args.n))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=150, bbox_inches="tight")
    print(f"wrote {args.n} samples ({args.steps} steps) to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with code 2 on bad flags
    handler = {"train": cmd_train, "sample": cmd_sample, "evaluate": cmd_evaluate}[args.command]
    try:
        return handler(args)
    except CLIError as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return 2
