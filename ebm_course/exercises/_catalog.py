"""The list of exercises: name, lesson, title, task, hints; solutions and checkers load lazily.

Importing this module does not import torch: :attr:`Exercise.solution` and
:attr:`Exercise.checker` import :mod:`ebm_course.exercises.solutions` and the checker's
module on first use.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._feedback import Feedback, Source


@dataclass(frozen=True)
class Exercise:
    """One checked exercise.

    Attributes:
        name: the function the learner writes, e.g. ``"cd_loss"``; the reference solution is
            :mod:`ebm_course.exercises.solutions` ``.<name>`` and the checker
            ``check_<name>`` in the private module ``checks``.
        lesson: the lesson (1-8) it belongs to.
        title: a short title.
        task: one paragraph saying what to write (shapes and sign convention included).
        hints: progressively stronger hints.
        checks: the private module (``ebm_course.exercises.<checks>``) holding the checker.
    """

    name: str
    lesson: int
    title: str
    task: str
    hints: tuple[str, ...]
    checks: str

    @property
    def solution(self) -> Callable:
        """The reference solution (a function of :mod:`ebm_course.exercises.solutions`)."""
        return getattr(importlib.import_module(f"{__package__}.solutions"), self.name)

    @property
    def checker(self) -> Callable[[Any], Feedback]:
        """``checker(answer) -> Feedback``; its docstring lists the inputs and tolerance."""
        module = importlib.import_module(f"{__package__}.{self.checks}")
        return getattr(module, f"check_{self.name}")

    @property
    def signature(self) -> str:
        """The ``def`` line(s) of the solution, type hints included (the stub starts so)."""
        source = textwrap.dedent(inspect.getsource(self.solution))
        function = ast.parse(source).body[0]
        assert isinstance(function, ast.FunctionDef)
        first_body_line = function.body[0].lineno  # the docstring's first line
        return "\n".join(source.splitlines()[: first_body_line - 1])

    @property
    def mistakes(self) -> tuple[str, ...]:
        """The messages of the typical mistakes the checker recognises and names."""
        module = importlib.import_module(f"{__package__}.{self.checks}")
        builder = getattr(module, f"_{self.name}_spec", None)
        if builder is not None:
            return tuple(mistake.message for mistake in builder().mistakes)
        return tuple(module.MISTAKES[self.name])

    def check(self, answer: Any) -> Feedback:
        """Check the learner's function; see :func:`ebm_course.exercises.check`."""
        return self.checker(answer)

    def stub(self) -> Source:
        """The code a learner starts from: imports, the signature, the task, a placeholder."""
        signature = self.signature
        imports = "from collections.abc import Callable\n\n" if "Callable" in signature else ""
        imports += "import math\n\nimport torch\n"
        imports += (
            "from torch import Tensor, nn\n" if "nn." in signature else "from torch import Tensor\n"
        )
        task = textwrap.fill(self.task, width=88, initial_indent="    ", subsequent_indent="    ")
        return Source(
            imports
            + f"\n\n{signature}\n"
            + f'    """{task.strip()}\n    """\n'
            + "    # your code here\n"
            + "    raise NotImplementedError\n"
        )

    def show_solution(self) -> Source:
        """The reference solution's source, taken from :mod:`ebm_course.exercises.solutions`."""
        return Source(textwrap.dedent(inspect.getsource(self.solution)).rstrip("\n"))


def _exercise(name: str, lesson: int, title: str, task: str, *hints: str, checks: str) -> Exercise:
    return Exercise(name, lesson, title, " ".join(task.split()), tuple(hints), checks)


_DENSITY, _SAMPLING, _BUFFER = "_checks_density", "_checks_sampling", "_checks_buffer"
_TRAINING, _ANALYSIS, _APPLICATIONS = "_checks_training", "_checks_analysis", "_checks_applications"
_OBJECTIVES, _JEM, _DIFFUSION = "_checks_objectives", "_checks_jem", "_checks_diffusion"

_ALL = (
    # ---------------------------------------------------------------- lesson 1
    _exercise(
        "grid_log_partition",
        1,
        "log Z of a 2-D score on a grid",
        """Given the scores f = -E at the N cell centres of a grid (a tensor [N]) and the
        area of one cell, return log Z, where Z = sum_i exp(f_i) * cell_area is the midpoint
        (Riemann) sum of the integral of exp(f). Return a float. Stay in log space: scores can
        be large.""",
        "The Riemann sum of an integral is sum(value x cell area).",
        "log(sum_i exp(f_i) * a) = log(sum_i exp(f_i)) + log(a).",
        "`torch.logsumexp(scores, dim=0)` computes log(sum exp) without overflow.",
        checks=_DENSITY,
    ),
    _exercise(
        "grid_density",
        1,
        "The normalised density on a grid",
        """Given the scores f = -E at the N cell centres of a grid ([N]) and the area of one
        cell, return the normalised density q = exp(f) / Z at the cell centres ([N], same
        dtype), with Z the Riemann sum of exp(f) over the grid, so that
        q.sum() * cell_area == 1.""",
        "First compute log Z as in `grid_log_partition`.",
        "exp(f) / Z = exp(f - log Z), which never overflows.",
        checks=_DENSITY,
    ),
    # ---------------------------------------------------------------- lesson 2
    _exercise(
        "cd_loss",
        2,
        "Contrastive divergence with the score regulariser",
        """Given the scores f(x+) of a batch of real data and f(x-) of the model's samples
        (tensors [B]; scores f = -E, higher = more likely), return the loss to minimise,
        a 0-d tensor: mean f(x-) - mean f(x+) + alpha * mean(f(x+)^2 + f(x-)^2).""",
        "Minimising the loss must raise the real scores and lower the fake ones.",
        "The regulariser squares every score of both batches, then averages.",
        checks=_DENSITY,
    ),
    _exercise(
        "grid_nll",
        2,
        "Exact negative log-likelihood of 2-D data",
        """Given the scores f at M data points ([M]), the scores at the N cell centres of a
        grid covering the data ([N]) and the cell area, return the mean negative
        log-likelihood -mean log q(x) in nats per point (a float), with q = exp(f) / Z and
        Z computed on the grid.""",
        "log q(x) = f(x) - log Z.",
        "log Z is the logsumexp of the grid's scores plus log(cell_area).",
        checks=_DENSITY,
    ),
    # ---------------------------------------------------------------- lesson 3
    _exercise(
        "langevin_step",
        3,
        "One step of textbook Langevin dynamics",
        """Given a score function (maps [B, ...] to scores f = -E of shape [B]), points x
        [B, ...], a step size eps and standard normal noise shaped like x, return one step of
        unadjusted Langevin dynamics, x + eps * grad_x f(x) + sqrt(2 * eps) * noise
        ([B, ...], detached).""",
        "Get the gradient with `x = x.detach().requires_grad_(True)` and "
        "`torch.autograd.grad(score_fn(x).sum(), x)`.",
        "The score's gradient points uphill, towards higher density: add it.",
        "The noise's standard deviation is sqrt(2 * eps).",
        checks=_SAMPLING,
    ),
    _exercise(
        "tutorial_langevin_step",
        3,
        "One step of the tutorial's image sampler",
        """Given a score function, images x [B, 1, 28, 28] in [-1, 1], step_size, noise_std,
        grad_clamp and standard normal noise shaped like x, return one step of the tutorial's
        sampler: add noise_std * noise and clamp to [-1, 1]; take the gradient of the score
        at that noisy image and clamp it to [-grad_clamp, grad_clamp]; add step_size times it
        and clamp to [-1, 1] again. Return the detached result.""",
        "Three lines: noise and clamp, gradient and clamp, step and clamp.",
        "`tensor.clamp(low, high)` clamps; the gradient is taken *after* the noise.",
        checks=_SAMPLING,
    ),
    _exercise(
        "sampler_temperature",
        3,
        "The temperature of a Langevin sampler",
        """The update x + eps * grad f + sigma * noise is textbook Langevin for the tempered
        density exp(f / T) / Z_T at one particular temperature T. Given eps (step_size) and
        sigma (noise_std), return that T as a float.""",
        "Textbook Langevin for the score f / T with step eps' is "
        "x + eps' * grad(f / T) + sqrt(2 eps') noise.",
        "Match the gradient terms (eps' = eps * T), then the noise terms.",
        checks=_SAMPLING,
    ),
    _exercise(
        "draw_starts",
        3,
        "Starting points from a replay buffer",
        """Given stored samples [N, 1, 28, 28] (N may be 0), a batch size, reinit_prob and a
        torch.Generator, return batch_size starting points: about a fraction reinit_prob of
        them (a Binomial count) fresh uniform noise in [-1, 1], the rest stored samples picked
        uniformly with replacement. An empty buffer gives noise only. Draw every random number
        from the generator.""",
        "`torch.binomial(torch.tensor([float(n)]), torch.tensor([p]), generator=g)` draws the "
        "count.",
        "`torch.rand(shape, generator=g) * 2 - 1` is uniform noise in [-1, 1]; "
        "`torch.randint(N, (k,), generator=g)` picks rows with replacement.",
        checks=_BUFFER,
    ),
    # ---------------------------------------------------------------- lesson 4
    _exercise(
        "to_model_range",
        4,
        "Images into the sampler's box",
        """Given MNIST pixels as bytes (uint8 tensor, any shape, 0 = paper, 255 = ink), return
        float32 images in [-1, 1]: 0 becomes -1 and 255 becomes +1, linearly.""",
        "Convert to float before any arithmetic.",
        "x / 255 is in [0, 1]; stretch and shift that to [-1, 1].",
        checks=_TRAINING,
    ),
    _exercise(
        "training_step",
        4,
        "One training step",
        """Given a model (images [B, 1, 28, 28] -> scores f = -E [B]), its optimizer, real
        images, fake images (the model's samples), alpha, input_noise and standard normal
        noise shaped like the real images: noise the reals (real + input_noise * noise,
        clamped to [-1, 1]), score both batches, compute the loss of `cd_loss`, clear the old
        gradients, backpropagate and take one optimiser step. Return the loss as a float.""",
        "The order that works: zero_grad, backward, step.",
        "`loss.item()` turns a 0-d tensor into a float.",
        checks=_TRAINING,
    ),
    # ---------------------------------------------------------------- lesson 5
    _exercise(
        "auroc",
        5,
        "AUROC from two lists of scores",
        """Given the scores f = -E of in-distribution examples ([N]) and of outliers ([M]),
        return the AUROC as a float: the fraction of the N * M pairs (in, out) in which the
        in-distribution example scores higher, a tie counting half.""",
        "`in_scores[:, None] > out_scores[None, :]` compares every pair at once ([N, M]).",
        "Ties: `in_scores[:, None] == out_scores[None, :]`, weighted 0.5.",
        checks=_ANALYSIS,
    ),
    _exercise(
        "rotate_180",
        5,
        "Flipped digits",
        """Given images [B, C, H, W], return every image rotated by 180 degrees (upside down
        and mirrored), the 'flipped' outliers of lesson 5, same shape.""",
        "A 180-degree rotation reverses both spatial axes.",
        "`tensor.flip(dims=...)` reverses the dimensions you name.",
        checks=_ANALYSIS,
    ),
    _exercise(
        "class_entropy",
        5,
        "How evenly do the samples cover the classes?",
        """Given class counts ([C], integers >= 0, at least one positive), return the entropy
        in nats of the class shares p = counts / counts.sum(), -sum p log p, as a float.
        Empty classes contribute 0.""",
        "Turn the counts into shares first.",
        "0 * log 0 is NaN in floating point: keep only the shares above 0.",
        checks=_ANALYSIS,
    ),
    # ---------------------------------------------------------------- lesson 6
    _exercise(
        "looks_diverged",
        6,
        "Is this training step diverging?",
        """Given one training iteration's numbers as a dict of floats (at least 'real_score'
        and 'fake_score', the mean scores f = -E of the real and fake batches; maybe also
        'loss', 'cdiv'), return True when it looks diverged: any number is NaN or infinite,
        either score's size exceeds max_abs_score, or the real and fake scores differ by more
        than max_score_gap (either way round).""",
        "`math.isfinite(v)` is False for NaN and for infinities.",
        "Sizes and gaps are absolute values.",
        checks=_APPLICATIONS,
    ),
    _exercise(
        "masked_langevin_step",
        6,
        "One inpainting step",
        """As `tutorial_langevin_step`, but only the pixels where the bool mask is True (the
        missing ones; the mask broadcasts to x) may move: multiply the noise and the clamped
        gradient by the mask. The known pixels keep their values, and the score sees them as
        they are.""",
        "`mask.to(x.dtype)` turns True/False into 1.0/0.0.",
        "Mask the noise *before* adding it, so the gradient sees the true known pixels.",
        checks=_APPLICATIONS,
    ),
    _exercise(
        "map_denoise_step",
        6,
        "One step of MAP denoising",
        """Given a score function, the current estimate x and the noisy observation y (both
        [B, 1, 28, 28]), the observation noise sigma and a step size, take one gradient-ascent
        step on f(x) - |x - y|^2 / (2 sigma^2): x + step_size * (grad f(x) - (x - y) /
        sigma^2), clamped to [-1, 1]. Return it detached.""",
        "The data term's gradient pulls x towards y.",
        "The derivative of |x - y|^2 / (2 sigma^2) with respect to x is (x - y) / sigma^2.",
        checks=_APPLICATIONS,
    ),
    # ---------------------------------------------------------------- lesson 7
    _exercise(
        "dsm_loss",
        7,
        "Denoising score matching",
        """Given a score model (maps [B, ...] to f = -E [B]), clean data x, sigma and standard
        normal noise shaped like x, return the denoising score-matching loss with the
        course's sigma^2 weighting, a 0-d tensor: with x~ = x + sigma * noise,
        1/2 * mean over the batch of the sum over coordinates of (sigma * grad f(x~) +
        noise)^2. It must train the model's parameters.""",
        "The gradient of the score at x~ must stay in the graph: `create_graph=True`.",
        "`.flatten(1).sum(1).mean()` sums over coordinates, then averages over the batch.",
        checks=_OBJECTIVES,
    ),
    _exercise(
        "nce_logit",
        7,
        "The NCE logit",
        """Given model scores f(u) ([N]), the noise density's log p_n(u) ([N]) and the number
        nu of noise samples per data point, return the logit of 'u is data':
        G(u) = f(u) - log p_n(u) - log(nu), shape [N].""",
        "A logit is a log ratio of the two classes' densities, times their prior odds.",
        checks=_OBJECTIVES,
    ),
    _exercise(
        "nce_loss",
        7,
        "The NCE loss",
        """Given the logits G of B data points ([B]) and of nu * B noise points ([nu * B]),
        return NCE's logistic loss per data point, a 0-d tensor:
        -mean over data of log sigmoid(G(x)) - (1 / B) * sum over noise of log sigmoid(-G(y)).
        Keep it finite for large logits.""",
        "`torch.nn.functional.logsigmoid` is a stable log(sigmoid(.)).",
        "Data should be classified as data (G > 0), noise as noise (G < 0).",
        checks=_OBJECTIVES,
    ),
    _exercise(
        "ssm_loss",
        7,
        "Sliced score matching",
        """Given a score model (twice differentiable), data x [B, D] and projection directions
        v shaped like x, return the sliced score-matching loss, a 0-d tensor: the batch mean
        of v . grad_x (v . g) + (v . g)^2 / 2, with g = grad_x f(x). It must train the
        model's parameters.""",
        "v . H v = v . grad_x (v . g): differentiate the projected gradient once more.",
        "Both `torch.autograd.grad` calls need `create_graph=True`.",
        checks=_OBJECTIVES,
    ),
    # ---------------------------------------------------------------- lesson 8
    _exercise(
        "jem_marginal_score",
        8,
        "JEM's marginal score",
        """Given a classifier's logits l(x) ([B, C]), return JEM's marginal score
        f(x) = log sum_y exp(l(x)[y]) = -E(x), one value per image ([B]).""",
        "`torch.logsumexp` over the class dimension.",
        checks=_JEM,
    ),
    _exercise(
        "jem_class_probabilities",
        8,
        "q(y | x) from the logits",
        """Given logits ([B, C]), return the classifier's q(y | x) = exp(l(x)[y]) /
        sum_y' exp(l(x)[y']), shape [B, C]: the joint model's Z cancels.""",
        "Each row must sum to 1.",
        checks=_JEM,
    ),
    _exercise(
        "jem_class_score",
        8,
        "The class-conditional score",
        """Given logits ([B, C]) and labels y (an int for every image, or an int64 tensor [B]),
        return the joint score f(x, y) = l(x)[y] = -E(x, y) of each image with its label,
        shape [B].""",
        "Pair image i with label y[i]; an int label applies to every image.",
        "`logits.gather(1, labels[:, None]).squeeze(1)`.",
        checks=_JEM,
    ),
    # ---------------------------------------------------------------- lesson 9
    _exercise(
        "geometric_noise_levels",
        9,
        "The ladder of noise levels",
        """Given sigma_max > sigma_min > 0 and n >= 2, return the n noise levels from sigma_max
        down to sigma_min in which each level is the previous one times the same ratio: a
        float32 tensor [n], largest first.""",
        "Evenly spaced in log sigma: sigma_i = sigma_max * (sigma_min / sigma_max) ** t_i.",
        "t runs from 0 to 1 inclusive: `torch.arange(n) / (n - 1)`.",
        checks=_DIFFUSION,
    ),
    _exercise(
        "dsm_target",
        9,
        "The denoising score-matching target",
        """Given clean data x [B, ...], its noisy copy x~ = x + sigma * eps and the levels
        sigma [B] (one per example), return the score of the noise kernel N(x, sigma^2 I) at
        x~: -(x~ - x) / sigma^2, shaped like x.""",
        "The log-density of N(x, sigma^2 I) at x~ is -|x~ - x|^2 / (2 sigma^2) + const.",
        "Reshape sigma to [B, 1, ...] (`sigma.view(-1, *[1] * (x.dim() - 1))`) to broadcast.",
        checks=_DIFFUSION,
    ),
    _exercise(
        "reverse_diffusion_step",
        9,
        "One step of the reverse diffusion",
        """Given samples x at level sigma, the model's score there (shaped like x), the next
        level next_sigma (a float, 0 for the last step) and standard normal noise z shaped
        like x, return x + (sigma^2 - next_sigma^2) * score + sqrt(sigma^2 - next_sigma^2) * z.""",
        "The step size is the variance the step removes: sigma^2 - next_sigma^2.",
        "The noise is scaled by its square root, the standard deviation.",
        checks=_DIFFUSION,
    ),
)

#: Every exercise by name, in lesson order.
EXERCISES: dict[str, Exercise] = {exercise.name: exercise for exercise in _ALL}


def get(name: str) -> Exercise:
    """The exercise called ``name``; an unknown name raises ``KeyError`` listing the valid ones."""
    try:
        return EXERCISES[name]
    except KeyError:
        raise KeyError(f"no exercise {name!r}; the exercises are: {', '.join(EXERCISES)}") from None


def signature(name: str) -> str:
    return get(name).signature
