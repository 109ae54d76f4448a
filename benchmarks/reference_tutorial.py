"""REFERENCE ONLY: the original tutorial's algorithm (CC BY-SA, Phillip Lippe), copied for
side-by-side benchmarking; the course's code is ebm_course.

Source: UvA Deep Learning Course, Tutorial 8 "Deep Energy-Based Generative Models" by Phillip
Lippe (lightning.ai tutorials edition, CC BY-SA). Its ``CNNModel``, its list-based ``Sampler``
and ``DeepEnergyModel.training_step`` are kept as written there, including the idioms the
course's own code replaces (``.data`` updates, ``requires_grad`` toggling, ``.backward()`` into
``inp_imgs.grad``, a Python list of ``[1, ...]`` tensors as the replay buffer, NumPy / ``random``
global RNGs). The only changes:

- no PyTorch Lightning: :func:`configure_optimizer` and :func:`training_step` reproduce what
  ``DeepEnergyModel.configure_optimizers`` / ``training_step`` plus Lightning's automatic
  optimisation do for one batch (``training_step``, ``zero_grad``, ``backward``, gradient-norm
  clipping at ``gradient_clip_val=0.1``, ``optimizer.step()``); ``self.log`` calls become the
  returned dict of floats;
- the tutorial's global ``device`` is a parameter (``Sampler(..., device=...)``);
- comments trimmed to line length. The StepLR scheduler (stepped once per epoch) is left out.

Nothing in the course imports this file; it lives in ``benchmarks/`` only.
"""

import random

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


class CNNModel(nn.Module):
    def __init__(self, hidden_features=32, out_dim=1, **kwargs):
        super().__init__()
        # We increase the hidden dimension over layers. Here pre-calculated for simplicity.
        c_hid1 = hidden_features // 2
        c_hid2 = hidden_features
        c_hid3 = hidden_features * 2

        # Series of convolutions and Swish activation functions
        self.cnn_layers = nn.Sequential(
            # [16x16] - Larger padding to get 32x32 image
            nn.Conv2d(1, c_hid1, kernel_size=5, stride=2, padding=4),
            nn.SiLU(),
            nn.Conv2d(c_hid1, c_hid2, kernel_size=3, stride=2, padding=1),  # [8x8]
            nn.SiLU(),
            nn.Conv2d(c_hid2, c_hid3, kernel_size=3, stride=2, padding=1),  # [4x4]
            nn.SiLU(),
            nn.Conv2d(c_hid3, c_hid3, kernel_size=3, stride=2, padding=1),  # [2x2]
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(c_hid3 * 4, c_hid3),
            nn.SiLU(),
            nn.Linear(c_hid3, out_dim),
        )

    def forward(self, x):
        x = self.cnn_layers(x).squeeze(dim=-1)
        return x


class Sampler:
    def __init__(self, model, img_shape, sample_size, max_len=8192, device="cpu"):
        """Sampler.

        Args:
            model: Neural network to use for modeling E_theta
            img_shape: Shape of the images to model
            sample_size: Batch size of the samples
            max_len: Maximum number of data points to keep in the buffer
            device: where MCMC runs (the tutorial's global ``device``)

        """
        super().__init__()
        self.model = model
        self.img_shape = img_shape
        self.sample_size = sample_size
        self.max_len = max_len
        self.device = torch.device(device)
        self.examples = [(torch.rand((1,) + img_shape) * 2 - 1) for _ in range(self.sample_size)]

    def sample_new_exmps(self, steps=60, step_size=10):
        """Function for getting a new batch of "fake" images.

        Args:
            steps: Number of iterations in the MCMC algorithm
            step_size: Learning rate nu in the algorithm above

        """
        # Choose 95% of the batch from the buffer, 5% generate from scratch
        n_new = np.random.binomial(self.sample_size, 0.05)
        rand_imgs = torch.rand((n_new,) + self.img_shape) * 2 - 1
        old_imgs = torch.cat(random.choices(self.examples, k=self.sample_size - n_new), dim=0)
        inp_imgs = torch.cat([rand_imgs, old_imgs], dim=0).detach().to(self.device)

        # Perform MCMC sampling
        inp_imgs = Sampler.generate_samples(self.model, inp_imgs, steps=steps, step_size=step_size)

        # Add new images to the buffer and remove old ones if needed
        self.examples = (
            list(inp_imgs.to(torch.device("cpu")).chunk(self.sample_size, dim=0)) + self.examples
        )
        self.examples = self.examples[: self.max_len]
        return inp_imgs

    @staticmethod
    def generate_samples(model, inp_imgs, steps=60, step_size=10, return_img_per_step=False):
        """Function for sampling images for a given model.

        Args:
            model: Neural network to use for modeling E_theta
            inp_imgs: Images to start from for sampling. If you want to generate new images,
                enter noise between -1 and 1.
            steps: Number of iterations in the MCMC algorithm.
            step_size: Learning rate nu in the algorithm above
            return_img_per_step: If True, we return the sample at every iteration of the MCMC

        """
        # Before MCMC: set model parameters to "required_grad=False"
        # because we are only interested in the gradients of the input.
        is_training = model.training
        model.eval()
        for p in model.parameters():
            p.requires_grad = False
        inp_imgs.requires_grad = True

        # Enable gradient calculation if not already the case
        had_gradients_enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(True)

        # We use a buffer tensor in which we generate noise each loop iteration.
        # More efficient than creating a new tensor every iteration.
        noise = torch.randn(inp_imgs.shape, device=inp_imgs.device)

        # List for storing generations at each step (for later analysis)
        imgs_per_step = []

        # Loop over K (steps)
        for _ in range(steps):
            # Part 1: Add noise to the input.
            noise.normal_(0, 0.005)
            inp_imgs.data.add_(noise.data)
            inp_imgs.data.clamp_(min=-1.0, max=1.0)

            # Part 2: calculate gradients for the current input.
            out_imgs = -model(inp_imgs)
            out_imgs.sum().backward()
            # For stabilizing and preventing too high gradients
            inp_imgs.grad.data.clamp_(-0.03, 0.03)

            # Apply gradients to our current samples
            inp_imgs.data.add_(-step_size * inp_imgs.grad.data)
            inp_imgs.grad.detach_()
            inp_imgs.grad.zero_()
            inp_imgs.data.clamp_(min=-1.0, max=1.0)

            if return_img_per_step:
                imgs_per_step.append(inp_imgs.clone().detach())

        # Reactivate gradients for parameters for training
        for p in model.parameters():
            p.requires_grad = True
        model.train(is_training)

        # Reset gradient calculation to setting before this function
        torch.set_grad_enabled(had_gradients_enabled)

        if return_img_per_step:
            return torch.stack(imgs_per_step, dim=0)
        else:
            return inp_imgs


def configure_optimizer(cnn, lr=1e-4, beta1=0.0):
    """``DeepEnergyModel.configure_optimizers`` without the per-epoch StepLR scheduler."""
    # Energy models can have issues with momentum as the loss surfaces changes with its
    # parameters. Hence, we set it to 0 by default.
    return optim.Adam(cnn.parameters(), lr=lr, betas=(beta1, 0.999))


def training_step(cnn, sampler, optimizer, real_imgs, alpha=0.1, gradient_clip_val=0.1):
    """``DeepEnergyModel.training_step`` plus Lightning's automatic optimisation, one batch.

    ``real_imgs`` ([B, 1, 28, 28] on the sampler's device) is modified in place, as the
    tutorial does to the batch its DataLoader hands it. Returns the logged values as floats.
    """
    # --- DeepEnergyModel.training_step ---
    # We add minimal noise to the original images to prevent the model from focusing on
    # purely "clean" inputs
    small_noise = torch.randn_like(real_imgs) * 0.005
    real_imgs.add_(small_noise).clamp_(min=-1.0, max=1.0)

    # Obtain samples
    fake_imgs = sampler.sample_new_exmps(steps=60, step_size=10)

    # Predict energy score for all images
    inp_imgs = torch.cat([real_imgs, fake_imgs], dim=0)
    real_out, fake_out = cnn(inp_imgs).chunk(2, dim=0)

    # Calculate losses
    reg_loss = alpha * (real_out**2 + fake_out**2).mean()
    cdiv_loss = fake_out.mean() - real_out.mean()
    loss = reg_loss + cdiv_loss

    # --- Lightning's automatic optimisation: zero_grad, backward, clip, step ---
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(cnn.parameters(), gradient_clip_val)
    optimizer.step()

    # Logging (self.log in the tutorial)
    return {
        "loss": loss.item(),
        "loss_regularization": reg_loss.item(),
        "loss_contrastive_divergence": cdiv_loss.item(),
        "metrics_avg_real": real_out.mean().item(),
        "metrics_avg_fake": fake_out.mean().item(),
    }
