"""Pretrained energy models shipped with the package, with their model cards.

``load("mnist")`` returns a ready :class:`~ebm_course.models.CNNEnergy` (eval mode; its
output is the score ``f(x) = -E(x)``), read offline from this folder with
``weights_only=True``. ``model_card("mnist")`` returns the JSON card: the exact training
command, config, data, iterations, wall time, device, torch version and metrics.
``load_score("mnist_score")`` returns the shipped noise-conditional score model (lesson 9)
and its :class:`~ebm_course.score_training.ScoreConfig`; ``model_card("mnist_score")`` its
card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
AVAILABLE = ("mnist",)  # energy models: load()
SCORE_MODELS = ("mnist_score",)  # score models: load_score()


def _check(name: str, kinds: tuple[str, ...] = AVAILABLE) -> None:
    if name not in kinds:
        raise ValueError(f"unknown pretrained model {name!r}; available: {list(kinds)}")


def weights_path(name: str = "mnist") -> Path:
    """Where the weights of pretrained model ``name`` live (a state-dict file)."""
    _check(name)
    return HERE / f"{name}.pt"


def load(name: str = "mnist", map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """The pretrained model ``name`` in eval mode: a :class:`~ebm_course.models.CNNEnergy`
    for ``"mnist"``; for a score model (``"mnist_score"``) its
    :class:`~ebm_course.score_models.ScoreNet` (:func:`load_score` also gives its config).

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the weights are missing from this installation.
    """
    from ..models import load_energy

    if name in SCORE_MODELS:
        return load_score(name, map_location)[0]
    path = weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} are missing; reinstall ebm_course or train your own "
            "with `python -m ebm_course train`"
        )
    return load_energy(path, map_location=map_location)


def load_score(
    name: str = "mnist_score", map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any]:
    """The shipped score model ``name`` (a :class:`~ebm_course.score_models.ScoreNet` in
    eval mode, its EMA weights) and its :class:`~ebm_course.score_training.ScoreConfig`.

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the weights are missing from this installation.
    """
    from ..score_training import load_score_model

    _check(name, SCORE_MODELS)
    path = HERE / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} are missing; reinstall ebm_course or train your own "
            "with `python -m ebm_course train-score`"
        )
    return load_score_model(path, map_location=map_location)


def training_samples(name: str = "mnist") -> dict[str, Any]:
    """Samples from noise at several epochs of the shipped model's training run.

    Returns ``{"epochs": [e1, ...], "images": float32 [E, 16, 1, 28, 28] in [-1, 1]}``: for
    each epoch, 16 images from the same uniform noise after 256 steps of the run's sampler
    (written by ``tools/training_samples.py``). Raises ``FileNotFoundError`` when missing.
    """
    from ..checkpoint import load_checkpoint

    _check(name)
    saved = load_checkpoint(HERE / f"{name}_training_samples.pt", required=("epochs", "pixels"))
    return {"epochs": list(saved["epochs"]), "images": saved["pixels"].float() / 127.5 - 1.0}


def model_card(name: str = "mnist") -> dict[str, Any]:
    """The model card of pretrained model ``name`` (a dict read from its JSON file)."""
    _check(name, AVAILABLE + SCORE_MODELS)
    path = HERE / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"model card {path} is missing")
    return json.loads(path.read_text())


# metric key -> (what it measures, which way is better); the order of the card's table
_METRICS = {
    "auroc_fashion_mnist": ("OOD AUROC, MNIST test vs FashionMNIST test", "higher"),
    "auroc_uniform_noise": ("OOD AUROC vs uniform noise", "higher"),
    "auroc_gaussian_noise": ("OOD AUROC vs MNIST + Gaussian noise (sigma 0.3)", "higher"),
    "noisy_below_clean": ("noisy test digits scoring below their own clean image", "higher"),
    "auroc_flipped": ("OOD AUROC vs MNIST flipped on both axes", "higher"),
    "auroc_tiny": ("OOD AUROC vs MNIST shrunk into a corner", "higher"),
    "frechet_classifier_distance": ("Frechet distance, 1,000 samples vs real", "lower"),
    "frechet_classifier_distance_real_vs_real": ("... floor: real vs real", "lower"),
    "class_entropy": ("entropy of the samples' classes (max ln 10 = 2.303)", "higher"),
    "malformed_fraction": ("samples the classifier is unsure of (max prob < 0.5)", "lower"),
    "malformed_fraction_real": ("... the same for real test images", "lower"),
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _metrics_rows(metrics: dict[str, dict[str, Any]]) -> list[str]:
    names = list(metrics)
    rows = [
        "| metric | better | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for key, (what, better) in _METRICS.items():
        if all(key in metrics[name] for name in names):
            values = " | ".join(_fmt(metrics[name][key]) for name in names)
            rows.append(f"| {what} | {better} | {values} |")
    histograms = " | ".join(_fmt(metrics[name].get("class_histogram", "")) for name in names)
    rows.append(f"| samples per class 0-9 (of 1,000) | even | {histograms} |")
    return rows


def _limitations(items: list[str]) -> list[str]:
    """The card's "Known limitations" section (nothing when the card lists none)."""
    if not items:
        return []
    return ["## Known limitations", "", *(f"- {item}" for item in items), ""]


def _config_table(config: dict[str, Any]) -> list[str]:
    """The card's "Training configuration" section: one row per field."""
    rows = [f"| `{key}` | {value} |" for key, value in config.items()]
    return ["## Training configuration", "", "| field | value |", "|---|---|", *rows, ""]


def _split_commands(text: str) -> tuple[str, list[str]]:
    """The card's ``command`` text without its shell commands ("command 1 below", ...), and
    the commands: ``python -m ...`` after any ``VAR=value``, up to a double space or "("."""
    import re

    commands = []
    for match in re.findall(r"(?:\b[A-Z][A-Z0-9_]*=\S+ )*python -m \S+(?: (?!\()\S+)*", text):
        commands.append(match.rstrip(".,;:"))
        text = text.replace(commands[-1], f"command {len(commands)} below", 1)
    return " ".join(text.split()), commands


def model_card_markdown(name: str = "mnist") -> str:
    """The model card of ``name`` as a Markdown page (the book's model-card page).

    Generated from :func:`model_card`, so the page and the JSON never disagree;
    ``python -m ebm_course.pretrained`` prints it; its shell commands form a code block.
    """
    if name in SCORE_MODELS:
        return _score_card_markdown(name)
    card = model_card(name)
    first = card["metrics"].get("shipped", {})
    prose, commands = _split_commands(card.get("command") or "")
    code = ["", "The training commands, one per line:", "", "```bash", *commands, "```"]
    lines = [
        f"# Model card: the pretrained `{name}` energy",
        "",
        f"This page is generated from `ebm_course/pretrained/{name}.json` by "
        "`ebm_course.pretrained.model_card_markdown`; the numbers come from one evaluation "
        "run with fixed seeds.",
        "",
        "```python",
        "from ebm_course import pretrained",
        "",
        f'model = pretrained.load("{name}")  # {card["model"].rsplit(".", 1)[-1]}, eval mode',
        "```",
        "",
        f"- **Model**: `{card['model']}` with `hidden_features={card['hidden_features']}` "
        "(the tutorial's architecture).",
        f"- **Output**: {card['output']}.",
        f"- **Data**: {card['data']}",
        f"- **Training**: {card['iterations']:,} iterations ({card['epochs']} epochs), "
        f"{card['train_seconds'] / 60:.0f} min on {card['device']} ({card['cpu']}), "
        f"torch {card['torch']}; weights from `{card['checkpoint']}`.",
        f"- **Command**: {prose}" if prose else "",
        f"- **Checkpoint choice**: {card['selection']}" if card.get("selection") else "",
        *(code if commands else []),
        "",
        "## Evaluation",
        "",
        f"Side by side with the original tutorial's checkpoint, measured by "
        f"`ebm_course.metrics.evaluate` ({first.get('n_samples', '?')} samples from uniform "
        f"noise, {first.get('steps', '?')} Langevin steps, seed {first.get('seed', '?')}; "
        "AUROCs on the 10,000 MNIST test images).",
        "",
        *_metrics_rows(card["metrics"]),
        "",
        *_limitations(card.get("limitations", [])),
        *_config_table(card["config"]),
        "## Attribution",
        "",
        "The architecture and recipe follow Phillip Lippe's UvA Deep Learning tutorial "
        '"Deep Energy-Based Generative Models" (CC BY-SA 4.0); MNIST is by LeCun, Cortes '
        "and Burges (CC BY-SA 3.0).",
        "",
    ]
    return "\n".join(lines)


def _previous_model(previous: dict | None, config: dict) -> list[str]:
    """The section on the model a score card's model replaced (none if there was none);
    its recipe is told by the fields where it differs from this model's ``config``."""
    if not previous:
        return []
    scored = previous["metrics"]
    changed = [f"{k} {v}" for k, v in previous["config"].items() if config.get(k) != v]
    recipe = "this model's" + (" except " + ", ".join(changed) if changed else "")
    return [
        "## The model this one replaced",
        "",
        f"Recipe: {recipe}; {previous['train_seconds'] / 60:.0f} min of training; sampled by "
        f"{previous['sampling']}. On the same test evaluation: Frechet distance "
        f"{scored['frechet_classifier_distance']:.1f}, class entropy "
        f"{scored['class_entropy']:.3f}, malformed share {scored['malformed_fraction']:.3f}, "
        f"AUROC FashionMNIST {scored['auroc_fashion_mnist']:.4f}"
        + (
            f", shrunken digits {scored['auroc_tiny']:.4f}, flipped digits "
            f"{scored['auroc_flipped']:.4f} (detector at sigma {scored['ood_sigma']:g})"
            if "auroc_tiny" in scored
            else ""
        )
        + ", "
        f"{scored['sample_seconds']:.0f} s to sample 1,000 images.",
        "",
    ]


def _score_card_markdown(name: str) -> str:
    """:func:`model_card_markdown` for a score model (``name`` in :data:`SCORE_MODELS`)."""
    card = model_card(name)
    ours = card["metrics"]["score model"]
    _, commands = _split_commands(card["command"])
    lines = [
        f"# Model card: the pretrained `{name}` score model",
        "",
        f"This page is generated from `ebm_course/pretrained/{name}.json` by "
        "`ebm_course.pretrained.model_card_markdown`; the numbers come from one evaluation "
        "run with fixed seeds. Lesson 9 shows how the model works and what it costs.",
        "",
        "```python",
        "from ebm_course import pretrained",
        "",
        f'model, config = pretrained.load_score("{name}")  # ScoreNet (EMA weights), eval mode',
        "```",
        "",
        f"- **Model**: `{card['model']}` with `channels={card['config']['channels']}` "
        f"({card['parameters']:,} parameters).",
        f"- **Output**: {card['output']}.",
        f"- **Data**: {card['data']}",
        f"- **Training**: {card['steps']:,} Adam steps, {card['train_seconds'] / 60:.0f} min "
        f"on {card['device']} ({card['cpu']}), torch {card['torch']}.",
        f"- **Sampling**: {card['sampling']}",
        f"- **OOD detector**: {card['ood']}",
        "",
        "The training command:",
        "",
        "```bash",
        *commands,
        "```",
        "",
        "## Evaluation",
        "",
        f"Measured by `ebm_course.score_training.evaluate_score_model` beside the shipped "
        f"energy model's `ebm_course.metrics.evaluate` ({ours['n_samples']:,} samples, "
        f"seed {ours['seed']}; AUROCs on the 10,000 MNIST test images).",
        "",
        *_metrics_rows(card["metrics"]),
        f"| seconds to sample {ours['n_samples']:,} images on this CPU | lower | "
        + " | ".join(f"{m.get('sample_seconds', 0):.0f}" for m in card["metrics"].values())
        + " |",
        "",
        *_limitations(card.get("limitations", [])),
        *_previous_model(card.get("previous_model"), card["config"]),
        *_config_table(card["config"]),
        "## Attribution",
        "",
        "Noise-conditional score networks and annealed Langevin dynamics: Song & Ermon (2019, "
        "2020); the reverse-diffusion sampler: Song et al. (2021), Ho et al. (2020); the "
        "preconditioning, the log-normal noise levels and Heun's sampler: Karras et al. "
        "(2022). MNIST is by LeCun, Cortes and Burges (CC BY-SA 3.0).",
        "",
    ]
    return "\n".join(lines)
