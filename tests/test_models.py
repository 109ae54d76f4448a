import pytest
import torch

from ebm_course.models import CNNEnergy, MLPEnergy, load_tutorial_checkpoint


def test_cnn_energy_matches_the_tutorial_architecture():
    model = CNNEnergy()
    convs = [m for m in model.cnn_layers if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 16, (5, 5), (2, 2), (4, 4)),
        (16, 32, (3, 3), (2, 2), (1, 1)),
        (32, 64, (3, 3), (2, 2), (1, 1)),
        (64, 64, (3, 3), (2, 2), (1, 1)),
    ]
    assert sum(isinstance(m, torch.nn.SiLU) for m in model.cnn_layers) == 5
    linears = [m for m in model.cnn_layers if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(256, 64), (64, 1)]
    assert model(torch.rand(5, 1, 28, 28) * 2 - 1).shape == (5,)


def test_cnn_energy_rejects_wrong_shapes_with_the_shape_in_the_message():
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\].*\[5, 3, 28, 28\]"):
        CNNEnergy()(torch.zeros(5, 3, 28, 28))
    with pytest.raises(ValueError, match="even integer"):
        CNNEnergy(hidden_features=7)


def test_cnn_energy_logits_for_several_outputs():
    assert CNNEnergy(hidden_features=16, out_dim=10)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_mlp_energy_shapes_and_errors():
    model = MLPEnergy(in_features=2, hidden=16, depth=2)
    assert model(torch.randn(7, 2)).shape == (7,)
    with pytest.raises(ValueError, match=r"\[B, 2\].*\[7, 3\]"):
        model(torch.randn(7, 3))
    with pytest.raises(ValueError, match="depth"):
        MLPEnergy(depth=0)


def test_tutorial_checkpoint_reproduces_the_tutorial_scores(
    tutorial_checkpoint, mnist_sample_images
):
    model = load_tutorial_checkpoint(tutorial_checkpoint)
    assert isinstance(model, CNNEnergy) and not model.training
    torch.manual_seed(42)
    with torch.no_grad():
        noise_score = model(torch.rand(128, 1, 28, 28) * 2 - 1).mean().item()
        data_score = model(mnist_sample_images[:256]).mean().item()
    # the tutorial prints -17.88 on noise and -0.01 on training images
    assert -18.5 < noise_score < -17.3
    assert abs(data_score) < 0.1


def test_tutorial_checkpoint_scores_the_real_test_set_near_zero(tutorial_checkpoint):
    from ebm_course.data import load_mnist, to_tensors

    try:
        test_set = load_mnist(train=False, download=False, fallback=False)
    except FileNotFoundError:
        pytest.skip("full MNIST test set not available (set PATH_DATASETS)")
    images, _ = to_tensors(test_set, limit=1024)
    with torch.no_grad():
        score = load_tutorial_checkpoint(tutorial_checkpoint)(images).mean().item()
    assert abs(score) < 0.1


def test_tutorial_checkpoint_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_tutorial_checkpoint(missing)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage.ckpt"):
        load_tutorial_checkpoint(garbage)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, foreign)
    with pytest.raises(ValueError, match="cnn.cnn_layers"):
        load_tutorial_checkpoint(foreign)


def test_tutorial_checkpoint_truncated_file_gives_clear_error(tutorial_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(tutorial_checkpoint.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated.ckpt"):
        load_tutorial_checkpoint(truncated)
