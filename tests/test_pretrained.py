"""The shipped pretrained model: loads offline, samples, and its card matches the book page."""

from pathlib import Path

import pytest
import torch

from ebm_course import pretrained
from ebm_course.models import CNNEnergy
from ebm_course.sampling import langevin, uniform_noise

REPO = Path(__file__).resolve().parents[1]


def test_load_and_generate_16_samples():
    model = pretrained.load("mnist")
    assert isinstance(model, CNNEnergy) and not model.training
    generator = torch.Generator().manual_seed(0)
    start = uniform_noise((16, 1, 28, 28), generator=generator)
    samples = langevin(model, start, steps=32, generator=generator)
    assert samples.shape == (16, 1, 28, 28)
    assert samples.min() >= -1 and samples.max() <= 1
    with torch.no_grad():
        # sampling raises the score (f = -E): the chains move towards the data
        assert model(samples).mean() > model(start).mean() + 1.0


def test_card_has_what_reproduces_the_model():
    card = pretrained.model_card("mnist")
    for key in ("command", "config", "data", "iterations", "train_seconds", "device", "torch"):
        assert card[key], key
    assert set(card["metrics"]["shipped"]) >= {"auroc_fashion_mnist", "frechet_classifier_distance"}
    state = torch.load(pretrained.weights_path("mnist"), weights_only=True)
    assert state["cnn_layers.0.weight"].shape[0] * 2 == card["hidden_features"]


def test_book_page_is_the_rendered_card():
    page = (REPO / "book" / "model_card.md").read_text()
    assert page == pretrained.model_card_markdown("mnist")
    assert "| OOD AUROC, MNIST test vs FashionMNIST test | higher |" in page


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="unknown pretrained model 'cifar'"):
        pretrained.load("cifar")
    with pytest.raises(ValueError, match="unknown pretrained model 'cifar'"):
        pretrained.load_score("cifar")
    with pytest.raises(ValueError, match="available"):
        pretrained.model_card("cifar")


def test_card_names_its_known_limitations():
    card = pretrained.model_card("mnist")
    assert card["limitations"], "the card lists no known limitations"
    page = pretrained.model_card_markdown("mnist")
    section = page.split("## Known limitations", 1)[1].split("\n## ", 1)[0]
    assert section.count("\n- ") == len(card["limitations"])
    # the sample-quality targets are discussed with the shipped model's own number
    assert f"{card['metrics']['shipped']['frechet_classifier_distance']:.1f}" in section


def test_the_shipped_score_model_loads_and_samples_digits_like_images():
    from ebm_course.score_models import ScoreNet
    from ebm_course.score_training import sample_score_model

    model, config = pretrained.load_score("mnist_score")
    assert isinstance(model, ScoreNet) and not model.training
    assert isinstance(pretrained.load("mnist_score"), ScoreNet)
    quick = type(config).from_dict({**config.to_dict(), "levels": 20})
    samples = sample_score_model(model, quick, 4, torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 28, 28)
    # MNIST digits are mostly background: most pixels of a sample end near -1
    assert (samples < -0.9).float().mean() > 0.5


def test_score_card_has_what_reproduces_the_model_and_its_book_page():
    from ebm_course.score_training import ScoreConfig

    card = pretrained.model_card("mnist_score")
    assert card["config"] == ScoreConfig().to_dict()  # its command: ScoreConfig's defaults
    for key in ("command", "config", "data", "steps", "train_seconds", "device", "torch"):
        assert card[key], key
    assert "train-score" in card["command"]
    assert set(card["metrics"]) == {"score model", "shipped EBM"}
    assert card["metrics"]["score model"]["n_samples"] == 1000
    page = (REPO / "book" / "score_model_card.md").read_text()
    assert page == pretrained.model_card_markdown("mnist_score")
    with pytest.raises(ValueError, match="available"):
        pretrained.load_score("mnist")


def test_score_card_tells_the_replaced_model_by_what_differs():
    card = pretrained.model_card("mnist_score")
    page = pretrained.model_card_markdown("mnist_score")
    previous = card["previous_model"]
    changed = {k: v for k, v in previous["config"].items() if card["config"].get(k) != v}
    assert changed, "the replaced model's recipe should differ from this one's"
    section = page.split("## The model this one replaced")[1].split("##")[0]
    for key, value in changed.items():
        assert f"{key} {value}" in section
    assert f"{previous['metrics']['frechet_classifier_distance']:.1f}" in section
