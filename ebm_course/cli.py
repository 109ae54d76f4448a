"""Command line: ``python -m ebm_course {train,sample,evaluate,train-score,evaluate-score}``.

Every user error (a bad flag, a missing or corrupt file, a folder in use, a run that cannot
be resumed, a full disk, training that diverged for good) prints one line naming the problem
and exits with code 2; ``--debug`` shows the traceback instead. Ctrl-C during training saves
the run at the next safe point, says how to resume and exits with code 130. Everything that
can be checked is checked before the first iteration. The core modules never import this one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path

from . import __version__


class CLIError(Exception):
    """A user error: printed without a traceback, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (the usage is one ``--help`` away), exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def int_at_least(minimum: int) -> typing.Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum or value >= 2**63:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


def _hidden_features(text: str) -> int:
    value = int_at_least(2)(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"must be an even integer >= 2, got {value}")
    return value


def run_folder(text: str) -> Path:
    """An argparse type: a folder for a run (not empty, not an existing file)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty path")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    return path


IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _image_file(text: str) -> Path:
    """An argparse type: where to save a figure (a file; ``.png`` added when no suffix)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name an image file, got an empty path")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{path} is a folder; give a file, e.g. {path}/samples.png"
        )
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        path = path.with_name(path.name + ".png")  # what matplotlib would write anyway
    return path


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
    from .training import TrainConfig

    add_dataclass_flags(parser, TrainConfig, "training configuration (default: the tutorial's)")


def add_dataclass_flags(parser: argparse.ArgumentParser, config: type, title: str) -> None:
    """One flag per field of the dataclass ``config`` (``--batch-size 64``); a flag not given
    leaves the attribute unset, so the dataclass's default (or a file's value) holds."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
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
    parser = _Parser(
        prog="python -m ebm_course",
        description="Train, sample and evaluate deep energy-based models (score f = -E).",
    )
    parser.add_argument("--version", action="version", version=f"ebm_course {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    common.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands.add_parser("train", parents=[common], help="train a CNN energy"))
    _add_sample(commands.add_parser("sample", parents=[common], help="generate images"))
    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="OOD AUROCs and sample quality of checkpoints"
    )
    _add_evaluate(evaluate)
    from . import cli_score

    cli_score.add_commands(commands, common)
    return parser


def _add_train(train: argparse.ArgumentParser) -> None:
    add = train.add_argument
    add(
        "--out",
        type=run_folder,
        default=Path("runs/mnist"),
        help="folder for checkpoints, history.json and logs (default runs/mnist)",
    )
    add("--config", type=Path, help="JSON file with TrainConfig fields")
    add("--dataset", default="mnist", help="mnist or fashion_mnist")
    add("--data-root", type=Path, help="datasets folder (default PATH_DATASETS)")
    add("--offline", action="store_true", help="never try to download data")
    add("--train-limit", type=int_at_least(1), help="use only the first N training images")
    add("--hidden-features", type=_hidden_features, default=32, help="CNN width (default 32)")
    add("--threads", type=int_at_least(1), help="torch CPU threads")
    add("--tensorboard", action="store_true", help="log to OUT/tensorboard")
    add("--no-progress", action="store_true", help="no progress bars")
    add("--fresh", action="store_true", help="ignore OUT/last.pt, start over")
    add("--keep-epochs", action="store_true", help="also keep each epoch's weights in OUT/epochs/")
    add(
        "--checkpoint-every",
        type=int_at_least(1),
        help="also save OUT/last.pt every N iterations (default: after every epoch)",
    )
    add(
        "--sample-every",
        type=int_at_least(1),
        help="record samples every N epochs (in OUT/last.pt's history and TensorBoard)",
    )
    add(
        "--init-from",
        type=Path,
        help="start from these weights (any checkpoint); ignored when OUT/last.pt resumes",
    )
    _add_config_flags(train)


def _add_sample(sample: argparse.ArgumentParser) -> None:
    sample.add_argument("checkpoint", help="a checkpoint file, or 'pretrained'")
    sample.add_argument("--n", type=int_at_least(1), default=64, help="images (default 64)")
    sample.add_argument("--steps", type=int_at_least(1), default=256, help="Langevin steps")
    sample.add_argument("--seed", type=int_at_least(0), default=0)
    sample.add_argument(
        "--out",
        type=_image_file,
        default=Path("samples.png"),
        help="image file (default samples.png; .png added without a suffix)",
    )


def _add_evaluate(evaluate: argparse.ArgumentParser) -> None:
    add = evaluate.add_argument
    add("checkpoints", nargs="+", help="checkpoint files, or 'pretrained' for the shipped model")
    add("--json", action="store_true", help="print JSON instead of a table")
    add("--n-samples", type=int_at_least(2), default=1000, help="generated images")
    add("--steps", type=int_at_least(1), default=256, help="Langevin steps per sample")
    add("--seed", type=int_at_least(0), default=0)
    add("--data-root", type=Path, help="datasets folder (default PATH_DATASETS)")


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
    from .metrics import evaluate, format_table

    device = pick_device(args.device)
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


def pick_device(name: str | None) -> typing.Any:
    """The ``torch.device`` named by ``--device`` (default: :func:`ebm_course.device`)."""
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

    from .models import CNNEnergy
    from .training import fit

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.train_limit is not None and args.train_limit < config.batch_size:
        raise CLIError(f"--train-limit must be >= batch size {config.batch_size}")
    device = pick_device(args.device)
    torch.manual_seed(config.seed)
    model = CNNEnergy(hidden_features=args.hidden_features)
    if args.init_from is not None:
        _load_initial_weights(model, args.init_from)
    images, val_images = training_data(args)
    print(f"ebm_course {__version__} | torch {torch.__version__} | device {device}")
    print(f"data: {args.dataset}, {len(images)} training and {len(val_images)} test images")
    print("config:", json.dumps(config.to_dict()))
    history = fit(
        model,
        images,
        val_images,
        config,
        checkpoint_dir=args.out,
        resume=not args.fresh,
        keep_epochs=args.keep_epochs,
        checkpoint_every=args.checkpoint_every,
        device=device,
        progress=not args.no_progress,
        callback=_log_every(200) if args.no_progress else None,
        tensorboard_dir=args.out / "tensorboard" if args.tensorboard else None,
        sample_every=args.sample_every,
    )
    from .training.safety import write_json

    write_json(args.out / "history.json", history.to_dict(samples=False))
    print(f"done: {len(history)} epochs; checkpoints in {args.out}")
    return 0


def _load_initial_weights(model, path: Path) -> None:
    init = _load_model(str(path), "cpu")
    if init.hidden_features != model.hidden_features:
        raise CLIError(
            f"--init-from {path} has hidden_features {init.hidden_features}, "
            f"not {model.hidden_features} (set --hidden-features {init.hidden_features})"
        )
    model.load_state_dict(init.state_dict())
    print(f"initial weights: {path}")


def training_data(args: argparse.Namespace) -> tuple[typing.Any, typing.Any]:
    """``(train images, test images)`` of ``args.dataset``, from ``--data-root``."""
    from .data import load_dataset, to_tensors

    try:
        found = {"root": args.data_root, "download": not args.offline}
        train_set = load_dataset(args.dataset, train=True, **found)
        test_set = load_dataset(args.dataset, train=False, **found)
    except FileNotFoundError as err:
        raise CLIError(f"{err} (set PATH_DATASETS or --data-root)") from err
    images, _ = to_tensors(train_set, limit=args.train_limit)
    val_images, _ = to_tensors(test_set)
    return images, val_images


def cmd_sample(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from .plots import image_grid
    from .sampling import langevin, uniform_noise

    device = pick_device(args.device)
    model = _load_model(str(args.checkpoint), device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    start = uniform_noise((args.n, 1, 28, 28), device=device, generator=gen)
    samples = langevin(model, start, steps=args.steps, generator=gen)
    if not torch.isfinite(samples).all():
        raise CLIError(
            f"the samples of {args.checkpoint} are not finite (NaN or Inf); no image written"
        )
    figure = image_grid(samples, nrow=min(8, args.n))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=150, bbox_inches="tight")
    print(f"wrote {args.n} samples ({args.steps} steps) to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with code 2 on bad flags
    handler = {
        "train": cmd_train,
        "sample": cmd_sample,
        "evaluate": cmd_evaluate,
        "train-score": _score_command("train"),
        "evaluate-score": _score_command("evaluate"),
    }[args.command]
    if not args.debug:  # a warning is one line too, not a source listing
        warnings.formatwarning = lambda message, *_, **__: f"{parser.prog}: warning: {message}\n"
    try:
        return handler(args)
    except KeyboardInterrupt as err:  # TrainingInterrupted says what was saved
        print(f"{parser.prog} {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 130
    except _user_errors() as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        return 2


def _score_command(name: str) -> typing.Callable[[argparse.Namespace], int]:
    from . import cli_score

    return getattr(cli_score, f"cmd_{name}")


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user's input can cause: reported in one line, without a traceback."""
    from .checkpoint import RunLocked
    from .training import TrainingDiverged

    return (CLIError, ValueError, TypeError, OSError, RunLocked, TrainingDiverged)
