"""Reference solutions of the course's exercises: short functions a learner could write.

Sign convention, as everywhere in :mod:`ebm_course`: a network (or ``score_fn``) returns the
*score* ``f(x) = -E(x)``, one number per example, ``[B, ...] -> [B]``; the model's density is
``q(x) = exp(f(x)) / Z``. High score = low energy = likely. Images are ``[B, 1, 28, 28]`` with
pixels in ``[-1, 1]``; 2-D toy points are ``[B, 2]``.

Each function is the answer to the exercise of the same name (see
:data:`ebm_course.exercises.EXERCISES`); :func:`ebm_course.exercises.show_solution` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ----------------------------------------------------------------- lesson 1: score -> density


def grid_log_partition(scores: Tensor, cell_area: float) -> float:
    """``log Z`` of a 2-D score by the midpoint (Riemann) sum over a grid's cells.

    Args:
        scores: the score ``f = -E`` at the ``N`` cell centres, ``[N]``.
        cell_area: the area ``Delta^2`` of one cell.

    Returns:
        ``log Z = log(sum_i exp(f_i) * cell_area)`` as a float, computed as
        ``logsumexp(f) + log(cell_area)`` so that large scores do not overflow.
    """
    return float(torch.logsumexp(scores, dim=0)) + math.log(cell_area)


def grid_density(scores: Tensor, cell_area: float) -> Tensor:
    """The normalised density ``q = exp(f) / Z`` at a grid's cell centres.

    Args:
        scores: the score ``f = -E`` at the ``N`` cell centres, ``[N]``.
        cell_area: the area of one cell; ``Z = sum_i exp(f_i) * cell_area``.

    Returns:
        ``q`` ``[N]``, same dtype, with ``q.sum() * cell_area == 1``. Computed as
        ``exp(f - log Z)``, which stays finite where ``exp(f)`` would overflow.
    """
    log_z = torch.logsumexp(scores, dim=0) + math.log(cell_area)
    return torch.exp(scores - log_z)


# ----------------------------------------------------------- lesson 2: contrastive divergence


def cd_loss(real_score: Tensor, fake_score: Tensor, alpha: float) -> Tensor:
    """The tutorial's loss, to *minimise*: contrastive divergence plus the score regulariser.

    Args:
        real_score: scores ``f(x+)`` of the data batch, ``[B]``.
        fake_score: scores ``f(x-)`` of the model's samples, ``[B]``.
        alpha: weight of the regulariser (``>= 0``).

    Returns:
        A 0-d tensor ``mean f(x-) - mean f(x+) + alpha * mean(f(x+)^2 + f(x-)^2)``.
        Minimising it raises the data's scores and lowers the samples' (``f = -E``:
        lower energy for the data); the regulariser keeps both near 0.
    """
    cdiv = fake_score.mean() - real_score.mean()
    regulariser = alpha * (real_score.pow(2) + fake_score.pow(2)).mean()
    return cdiv + regulariser


def grid_nll(data_scores: Tensor, grid_scores: Tensor, cell_area: float) -> float:
    """Exact mean negative log-likelihood of 2-D data under ``q = exp(f) / Z``, ``Z`` on a grid.

    Args:
        data_scores: ``f = -E`` at the ``M`` data points, ``[M]``.
        grid_scores: ``f`` at the ``N`` cell centres of a grid covering the data, ``[N]``.
        cell_area: the area of one grid cell.

    Returns:
        ``-mean_j log q(x_j) = log Z - mean_j f(x_j)`` in nats per point, a float.
    """
    log_z = torch.logsumexp(grid_scores, dim=0) + math.log(cell_area)
    return float(log_z - data_scores.mean())


# ------------------------------------------------------------------- lesson 3: Langevin


def langevin_step(
    score_fn: Callable[[Tensor], Tensor], x: Tensor, step_size: float, noise: Tensor
) -> Tensor:
    """One step of textbook (unadjusted) Langevin dynamics for ``q = exp(f) / Z``.

    ``x_new = x + eps * grad_x f(x) + sqrt(2 * eps) * noise``: a step *up* the score
    (down the energy) plus Gaussian noise of variance ``2 * eps``.

    Args:
        score_fn: maps ``[B, ...]`` to scores ``f = -E`` ``[B]``.
        x: current points ``[B, ...]``.
        step_size: ``eps > 0``.
        noise: standard normal draws shaped like ``x`` (``torch.randn_like(x)`` in a sampler).

    Returns:
        ``x_new`` ``[B, ...]``, detached. The gradient is that of ``sum_i f(x_i)``: each
        ``f(x_i)`` depends on ``x_i`` only, so this is every point's own gradient.
    """
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(score_fn(x).sum(), x)
    return (x + step_size * grad + math.sqrt(2 * step_size) * noise).detach()


def tutorial_langevin_step(
    score_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    step_size: float,
    noise_std: float,
    grad_clamp: float,
    noise: Tensor,
) -> Tensor:
    """One step of the tutorial's image sampler: noisy, clamped gradient ascent on ``f``.

    1. ``x <- clamp(x + noise_std * noise, -1, 1)``
    2. ``g <- clamp(grad_x f(x), -grad_clamp, grad_clamp)``, at the noisy ``x``
    3. ``x <- clamp(x + step_size * g, -1, 1)``

    ``score_fn`` maps images ``[B, 1, 28, 28]`` to scores ``f = -E`` ``[B]``; ``x`` is images in
    ``[-1, 1]``; ``noise`` standard normal draws shaped like ``x``. The tutorial uses
    ``step_size=10, noise_std=0.005, grad_clamp=0.03``. Returns the new images, detached.
    """
    x = (x.detach() + noise_std * noise).clamp(-1.0, 1.0).requires_grad_(True)
    (grad,) = torch.autograd.grad(score_fn(x).sum(), x)
    return (x + step_size * grad.clamp(-grad_clamp, grad_clamp)).clamp(-1.0, 1.0).detach()


def sampler_temperature(step_size: float, noise_std: float) -> float:
    """The temperature ``T`` for which ``x + eps * grad f + sigma * noise`` is textbook Langevin.

    With ``sigma^2 = 2 * eps * T`` the update is ``x + (eps T) grad(f / T) + sqrt(2 eps T)
    noise``: textbook Langevin with step ``eps * T`` for the tempered density
    ``exp(f / T) / Z_T``. So ``T = sigma^2 / (2 * eps)``; the tutorial's sampler
    (``eps = 10``, ``sigma = 0.005``) runs at ``T = 1.25e-6``, almost noise-free.
    """
    return noise_std**2 / (2 * step_size)


def draw_starts(
    stored: Tensor, batch_size: int, reinit_prob: float, generator: torch.Generator
) -> Tensor:
    """Starting points for a batch of chains, drawn the way the replay buffer draws them.

    Args:
        stored: past samples ``[N, *shape]``; ``N`` may be 0 (an empty buffer).
        batch_size: how many starting points.
        reinit_prob: fraction of the batch started afresh (a Binomial count).
        generator: the source of all randomness (same seed, same batch).

    Returns:
        ``[batch_size, *shape]``: fresh uniform noise in ``[-1, 1]`` for about
        ``reinit_prob`` of the rows, stored samples picked uniformly with replacement
        for the rest. An empty buffer gives noise only.
    """
    shape, device = tuple(stored.shape[1:]), stored.device
    if len(stored) == 0:
        return torch.rand((batch_size, *shape), generator=generator, device=device) * 2 - 1
    count = torch.tensor([float(batch_size)], device=device)
    n_new = int(torch.binomial(count, torch.full_like(count, reinit_prob), generator=generator))
    fresh = torch.rand((n_new, *shape), generator=generator, device=device) * 2 - 1
    index = torch.randint(len(stored), (batch_size - n_new,), generator=generator, device=device)
    return torch.cat([fresh, stored[index]])


# ------------------------------------------------------------------ lesson 4: training


def to_model_range(pixels: Tensor) -> Tensor:
    """Bytes ``0..255`` (uint8, any shape) to float32 in ``[-1, 1]``: ``x / 255 * 2 - 1``.

    Paper (0) becomes -1 and ink (255) +1, the box the sampler lives in; the same as
    torchvision's ``ToTensor()`` followed by ``Normalize((0.5,), (0.5,))``.
    """
    return pixels.float() / 255 * 2 - 1


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    real: Tensor,
    fake: Tensor,
    alpha: float,
    input_noise: float,
    noise: Tensor,
) -> float:
    """One contrastive-divergence update: the tutorial's iteration, given the fake batch.

    Args:
        model: maps images ``[B, 1, 28, 28]`` to scores ``f = -E`` ``[B]``.
        optimizer: over ``model``'s parameters.
        real: data ``[B, 1, 28, 28]`` in ``[-1, 1]``.
        fake: the model's samples (replay buffer + Langevin) ``[B, 1, 28, 28]``.
        alpha: weight of the score regulariser.
        input_noise: std of the noise added to the real images.
        noise: standard normal draws shaped like ``real`` (``torch.randn_like(real)``).

    Noises the reals (``clamp(real + input_noise * noise, -1, 1)``), scores both batches,
    takes :func:`cd_loss`, clears the old gradients, backpropagates and steps.
    Returns the loss as a float.
    """
    real = (real + input_noise * noise).clamp(-1.0, 1.0)
    loss = cd_loss(model(real), model(fake), alpha)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


# ------------------------------------------------------------------ lesson 5: analysis


def auroc(in_scores: Tensor, out_scores: Tensor) -> float:
    """AUROC of the score as an in-distribution detector, from all pairs; ties count half.

    Args:
        in_scores: scores ``f = -E`` of in-distribution examples, ``[N]``.
        out_scores: scores of outliers, ``[M]``.

    Returns:
        ``P(f(in) > f(out)) + 0.5 * P(f(in) == f(out))`` over the ``N * M`` pairs: 1.0
        perfect, 0.5 chance (sklearn's ``roc_auc_score`` with the in-distribution set positive).
    """
    above = in_scores[:, None] > out_scores[None, :]
    ties = in_scores[:, None] == out_scores[None, :]
    return float(above.double().mean() + 0.5 * ties.double().mean())


def rotate_180(images: Tensor) -> Tensor:
    """Each image upside down *and* mirrored: ``[B, C, H, W] -> [B, C, H, W]``.

    Both spatial axes flip; the order of the images and channels stays.
    """
    return images.flip(dims=(2, 3))


def class_entropy(counts: Tensor) -> float:
    """Entropy in nats of the class shares ``p = counts / counts.sum()``: ``-sum p log p``.

    ``counts`` ``[C]`` (>= 0, positive sum); an empty class adds 0 (``0 log 0 = 0``).
    ``ln 10 = 2.303`` for ten equal classes, 0 when every sample is of one class.
    """
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


# -------------------------------------------------- lesson 6: instability and applications


def looks_diverged(
    row: dict[str, float], max_abs_score: float = 50.0, max_score_gap: float = 10.0
) -> bool:
    """Whether one training iteration's numbers look diverged (the divergence guard's test).

    Args:
        row: floats of one iteration with at least ``"real_score"`` and ``"fake_score"``
            (mean scores ``f = -E`` of the real and fake batches), e.g. also ``"loss"``.
        max_abs_score: largest healthy ``|mean score|``.
        max_score_gap: largest healthy ``|real - fake|``, whichever is higher.

    Returns:
        True when any number is NaN or infinite, a score's size exceeds
        ``max_abs_score``, or the real/fake gap exceeds ``max_score_gap``.
    """
    if not all(math.isfinite(value) for value in row.values()):
        return True
    real, fake = row["real_score"], row["fake_score"]
    return max(abs(real), abs(fake)) > max_abs_score or abs(real - fake) > max_score_gap


def masked_langevin_step(
    score_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    mask: Tensor,
    step_size: float,
    noise_std: float,
    grad_clamp: float,
    noise: Tensor,
) -> Tensor:
    """One step of the tutorial's sampler that moves only the missing pixels (inpainting).

    As :func:`tutorial_langevin_step`, with the noise and the clamped gradient multiplied
    by ``mask``: the known pixels keep their values, and the score sees them as they are.

    ``x`` is images ``[B, 1, 28, 28]`` in ``[-1, 1]``; ``mask`` is bool, broadcastable to
    ``x``, True where a pixel is missing (may move). Returns the new images, detached.
    """
    m = mask.to(x.dtype)
    x = (x.detach() + noise_std * noise * m).clamp(-1.0, 1.0).requires_grad_(True)
    (grad,) = torch.autograd.grad(score_fn(x).sum(), x)
    step = step_size * grad.clamp(-grad_clamp, grad_clamp) * m
    return (x + step).clamp(-1.0, 1.0).detach()


def map_denoise_step(
    score_fn: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, sigma: float, step_size: float
) -> Tensor:
    """One gradient-ascent step on the MAP objective ``f(x) - |x - y|^2 / (2 sigma^2)``.

    ``x_new = clamp(x + step_size * (grad f(x) - (x - y) / sigma^2), -1, 1)``: the score
    pulls towards plausible images, the data term back towards the observation ``y``.

    ``score_fn`` maps images ``[B, 1, 28, 28]`` to scores ``f = -E`` ``[B]``; ``x`` is the
    current estimate and ``y`` the noisy observation (same shape); ``sigma`` the std of the
    observation noise. Returns the new estimate in ``[-1, 1]``, detached.
    """
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(score_fn(x).sum(), x)
    return (x + step_size * (grad - (x - y) / sigma**2)).clamp(-1.0, 1.0).detach()


# --------------------------------------------------------- lesson 7: other ways to train


def dsm_loss(score_fn: nn.Module, x: Tensor, sigma: float, noise: Tensor) -> Tensor:
    """Denoising score matching with the ``sigma^2`` weighting of ``denoising_score_matching``.

    ``x~ = x + sigma * noise``; ``loss = 1/2 mean_b |sigma * grad f(x~) + noise|^2`` (sum over
    each example's coordinates, mean over the batch): at the noisy point the model's
    gradient should point back to the clean one, ``grad f(x~) ~ -(x~ - x) / sigma^2``.

    ``score_fn`` maps ``[B, ...]`` to scores ``f = -E`` ``[B]``; ``x`` is clean data and
    ``noise`` standard normal draws shaped like it. Returns a 0-d tensor; the gradient stays
    in the graph (``create_graph=True``) so that the loss trains ``score_fn``'s parameters.
    """
    x_noisy = (x.detach() + sigma * noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(score_fn(x_noisy).sum(), x_noisy, create_graph=True)
    return 0.5 * (sigma * grad + noise).pow(2).flatten(1).sum(1).mean()


def nce_logit(scores: Tensor, log_noise: Tensor, noise_ratio: int) -> Tensor:
    """The NCE logit of "``u`` is data": ``G(u) = f(u) - log p_n(u) - log(nu)``.

    ``scores`` ``f = -E`` ``[N]``, ``log_noise`` ``log p_n(u)`` ``[N]``, ``noise_ratio``
    ``nu`` noise samples per data point. Returns ``[N]``.
    """
    return scores - log_noise - math.log(noise_ratio)


def nce_loss(data_logit: Tensor, noise_logit: Tensor) -> Tensor:
    """NCE's logistic loss per data point from the logits ``G``.

    ``-mean_x log sigmoid(G(x)) - (1 / B) sum_y log sigmoid(-G(y))`` with ``data_logit``
    ``[B]`` and ``noise_logit`` ``[nu * B]``; ``logsigmoid`` keeps it finite for large logits.
    Returns a 0-d tensor.
    """
    data_term = -F.logsigmoid(data_logit).mean()
    noise_term = -F.logsigmoid(-noise_logit).sum() / data_logit.shape[0]
    return data_term + noise_term


def ssm_loss(score_fn: nn.Module, x: Tensor, v: Tensor) -> Tensor:
    """Sliced score matching with given directions: ``mean_b [v.H v + 1/2 (v.g)^2]``.

    ``g = grad_x f(x)`` and ``v.H v = v . grad_x (v . g)`` (a second backward pass).

    ``score_fn`` maps ``[B, ...]`` to scores ``f = -E`` ``[B]`` (twice differentiable); ``v``
    holds directions shaped like ``x`` (e.g. random signs). Returns a 0-d tensor; both
    gradients use ``create_graph=True`` so that it trains ``score_fn``.
    """
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(score_fn(x).sum(), x, create_graph=True)
    grad_v = (grad * v).flatten(1).sum(1)
    (hessian_v,) = torch.autograd.grad(grad_v.sum(), x, create_graph=True)
    return ((hessian_v * v).flatten(1).sum(1) + 0.5 * grad_v.pow(2)).mean()


# ---------------------------------------------------------------------- lesson 8: JEM


def jem_marginal_score(logits: Tensor) -> Tensor:
    """JEM's marginal score ``f(x) = logsumexp_y l(x)[y] = -E(x)``: ``[B, C] -> [B]``."""
    return torch.logsumexp(logits, dim=1)


def jem_class_probabilities(logits: Tensor) -> Tensor:
    """``q(y | x) = exp(l(x)[y]) / sum_y' exp(l(x)[y'])``, a softmax over the classes.

    ``[B, C] -> [B, C]``, rows summing to 1: the joint model's ``Z`` cancels.
    """
    return torch.softmax(logits, dim=1)


def jem_class_score(logits: Tensor, y: int | Tensor) -> Tensor:
    """The joint score ``f(x, y) = l(x)[y] = -E(x, y)``: ``[B, C] -> [B]``.

    ``y`` is one class for every image (an int) or one per image (int64 ``[B]``).
    """
    labels = torch.as_tensor(y, device=logits.device).expand(logits.shape[0])
    return logits.gather(1, labels[:, None]).squeeze(1)


# ---------------------------------------------------------------------- lesson 9: diffusion


def geometric_noise_levels(sigma_max: float, sigma_min: float, n: int) -> Tensor:
    """``n`` levels from ``sigma_max`` down to ``sigma_min``, each the previous one times the
    same ratio: ``sigma_max * (sigma_min / sigma_max) ** (i / (n - 1))``, ``[n]``."""
    exponent = torch.arange(n, dtype=torch.float64) / (n - 1)
    return (sigma_max * (sigma_min / sigma_max) ** exponent).float()


def dsm_target(clean: Tensor, noisy: Tensor, sigma: Tensor) -> Tensor:
    """The score of the noise kernel N(clean, sigma^2 I) at ``noisy``, what denoising score
    matching regresses on: ``-(noisy - clean) / sigma^2``, sigma ``[B]`` per example."""
    variance = sigma.view(-1, *[1] * (clean.dim() - 1)) ** 2
    return -(noisy - clean) / variance


def reverse_diffusion_step(
    x: Tensor, score: Tensor, sigma: float, next_sigma: float, z: Tensor
) -> Tensor:
    """One step of the reverse diffusion from ``sigma`` to ``next_sigma``:
    ``x + (sigma^2 - next^2) * score + sqrt(sigma^2 - next^2) * z``."""
    variance = sigma**2 - next_sigma**2
    return x + variance * score + variance**0.5 * z
