"""Checkers of lesson 7: denoising and sliced score matching, noise-contrastive estimation."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _fixtures as fx
from . import solutions as sol
from ._engine import Case, Mistake, Spec, Tolerance, evaluate, value_and_grads
from ._feedback import Feedback

# the loss and its gradient with respect to the model's parameters (argument 1)
_WRT_MODEL = value_and_grads(lambda args, kwargs: list(args[0].parameters()))

NO_GRAPH = (
    "Your loss does not reach the model's parameters: the input gradient was computed "
    "without `create_graph=True`, so it is a constant to `loss.backward()` and training "
    "would do nothing. Use `torch.autograd.grad(..., create_graph=True)`."
)


def _input_grad(f: Any, x: Tensor, graph: bool = True) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x, create_graph=graph)
    return x, grad


def _per_example(t: Tensor) -> Tensor:
    return t.flatten(1).sum(1)


# ----------------------------------------------------------------- denoising score matching


def _dsm(
    *,
    sign: float = 1.0,
    weight: str = "sigma",
    at: str = "noisy",
    graph: bool = True,
    reduce: str = "sum",
    half: float = 0.5,
) -> Callable:
    """Denoising score matching with one thing changed."""

    def wrong(f: Any, x: Tensor, sigma: float, noise: Tensor) -> Tensor:
        _, grad = _input_grad(f, x + sigma * noise if at == "noisy" else x, graph)
        # the course's sigma^2-weighted form, or Vincent's unweighted one
        residual = sigma * grad + sign * noise if weight == "sigma" else grad + noise / sigma
        squares = residual.pow(2)
        per = _per_example(squares) if reduce == "sum" else squares.flatten(1).mean(1)
        return half * per.mean()

    return wrong


def _model_case(label: str, batch: int, shape: tuple[int, ...], seed: int, **extra: Any) -> Any:
    """Inputs ``(model, x, *values, noise-like tensor)``, where ``extra`` gives the values."""
    features = math.prod(shape)
    x = fx.randn(batch, *shape, seed=seed, scale=0.5)
    last = fx.randn(batch, *shape, seed=seed + 1)

    def make() -> tuple[tuple, dict]:
        model = fx.TinyEnergy(features, hidden=16 if features < 10 else 4, seed=seed)
        return (model, x.clone(), *extra.values(), last.clone()), {}

    return Case(label, make)


@functools.cache
def _dsm_loss_spec() -> Spec:
    cases = [
        _model_case("eight 2-D points, sigma 0.1", 8, (2,), 70, sigma=0.1),
        _model_case("a single 2-D point, sigma 0.5", 1, (2,), 72, sigma=0.5),
        _model_case("two images [2, 1, 28, 28], sigma 0.05", 2, (1, 28, 28), 74, sigma=0.05),
    ]
    mistakes = [
        Mistake(
            _dsm(sign=-1.0),
            "Your regression target points *away* from the clean data. At the noisy point "
            "the model's gradient should point back to `x`: match `-(x~ - x) / sigma^2 = "
            "-noise / sigma`, i.e. the residual is `sigma * grad + noise`.",
        ),
        Mistake(
            _dsm(weight="vincent"),
            "You used Vincent's unweighted loss `|grad + noise / sigma|^2 / 2`; the course "
            "multiplies it by `sigma^2`: `|sigma * grad + noise|^2 / 2`.",
        ),
        Mistake(
            _dsm(at="clean"),
            "You took the model's gradient at the clean `x`; DSM evaluates it at the "
            "noisy point `x~ = x + sigma * noise`.",
        ),
        Mistake(_dsm(graph=False), NO_GRAPH),
        Mistake(
            _dsm(reduce="mean"),
            "You averaged over each example's coordinates too: sum the squares over the "
            "coordinates, then average over the batch (`.flatten(1).sum(1).mean()`).",
        ),
        Mistake(_dsm(half=1.0), "The factor 1/2 in front of the squared norm is missing."),
    ]
    spec = Spec("dsm_loss", cases, sol.dsm_loss, mistakes, Tolerance(1e-5, 1e-4), _WRT_MODEL)
    spec.note = "The loss is one number: a 0-d tensor that trains the model."
    return spec


def check_dsm_loss(answer: Any) -> Feedback:
    """Check ``dsm_loss(score_fn, x [B, ...], sigma, noise) -> 0-d tensor``.

    Inputs: a seeded SiLU network on eight 2-D points, a single point, two images. The loss
    and its gradient with respect to the network's parameters are compared; Tolerance
    ``1e-5 + 1e-4 |expected|``. Known mistakes: the target's sign, Vincent's unweighted
    loss, the gradient at the clean point, no ``create_graph``, a mean over coordinates,
    no factor 1/2.
    """
    return evaluate(_dsm_loss_spec(), answer)


# ----------------------------------------------------------------- sliced score matching


def _ssm(
    *,
    half: float = 0.5,
    vr: bool = False,
    sign: float = 1.0,
    reduce: str = "mean",
    graph1: bool = True,
    graph2: bool = True,
) -> Callable:
    def wrong(f: Any, x: Tensor, v: Tensor) -> Tensor:
        x, grad = _input_grad(f, x, graph1)
        grad_v = _per_example(grad * v)
        (hessian_v,) = torch.autograd.grad(grad_v.sum(), x, create_graph=graph2)
        square = _per_example(grad.pow(2)) if vr else grad_v.pow(2)
        per = sign * _per_example(hessian_v * v) + half * square
        return per.mean() if reduce == "mean" else per.sum()

    return wrong


def _signs(batch: int, seed: int) -> Tensor:
    return torch.randint(0, 2, (batch, 2), generator=fx.gen(seed)).float() * 2 - 1


@functools.cache
def _ssm_loss_spec() -> Spec:
    def case(label: str, batch: int, seed: int, v: Tensor) -> Case:
        x = fx.randn(batch, 2, seed=seed, scale=0.5)

        def make() -> tuple[tuple, dict]:
            return (fx.TinyEnergy(2, hidden=16, seed=seed), x.clone(), v.clone()), {}

        return Case(label, make)

    cases = [
        case("eight 2-D points, random sign directions", 8, 80, _signs(8, 81)),
        case("a single 2-D point", 1, 82, _signs(1, 83)),
        case("four points, every direction v = (1, 0)", 4, 84, torch.tensor([[1.0, 0.0]] * 4)),
    ]
    mistakes = [
        Mistake(_ssm(half=1.0), "The factor 1/2 in front of `(v . grad f)^2` is missing."),
        Mistake(
            _ssm(vr=True),
            "You used `|grad f|^2 / 2` (the variance-reduced SSM-VR): right in "
            "expectation, but this exercise asks for the projected square "
            "`(v . grad f)^2 / 2`.",
        ),
        Mistake(
            _ssm(sign=-1.0),
            "The Hessian term has the wrong sign: the loss is `+ v.H v + (v . g)^2 / 2`.",
        ),
        Mistake(_ssm(reduce="sum"), "You summed over the batch; average over the examples."),
        Mistake(
            _ssm(graph2=False),
            "The Hessian term does not train the model: the second `autograd.grad` "
            "needs `create_graph=True` as well.",
        ),
        Mistake(
            _ssm(graph1=False),
            "The first `autograd.grad` needs `create_graph=True`: without it the input "
            "gradient has no graph, and the second derivative `v.H v` cannot be taken.",
        ),
    ]
    return Spec("ssm_loss", cases, sol.ssm_loss, mistakes, Tolerance(1e-5, 1e-4), _WRT_MODEL)


def check_ssm_loss(answer: Any) -> Feedback:
    """Check ``ssm_loss(score_fn, x [B, 2], v [B, 2]) -> 0-d tensor``.

    Inputs: a seeded SiLU network on eight points with random signs, a single point, four
    points with ``v = (1, 0)``. The loss and its parameter gradient are compared; Tolerance
    ``1e-5 + 1e-4 |expected|``. Known mistakes: no 1/2, SSM-VR's square, the Hessian
    term's sign, a sum over the batch, no ``create_graph`` in either backward pass.
    """
    return evaluate(_ssm_loss_spec(), answer)


# ----------------------------------------------------------------- NCE


@functools.cache
def _nce_logit_spec() -> Spec:
    def case(label: str, n: int, nu: int, seed: int) -> Case:
        scores, log_noise = fx.randn(n, seed=seed), fx.randn(n, seed=seed + 1) - 2.0
        return Case(label, lambda: ((scores.clone(), log_noise.clone(), nu), {}))

    cases = [
        case("four points, noise_ratio 1", 4, 1, 90),
        case("twelve points, noise_ratio 4", 12, 4, 92),
        case("a single point, noise_ratio 10", 1, 10, 94),
    ]
    mistakes = [
        Mistake(
            lambda f, ln, nu: f + ln - math.log(nu),
            "You added `log p_n(u)`; the logit is the log *ratio* of the model's density "
            "to the noise's: `f(u) - log p_n(u) - log(nu)`.",
        ),
        Mistake(
            lambda f, ln, nu: f - ln,
            "You forgot `- log(nu)`: with `nu` noise points per data point, the prior odds "
            "of 'data' are `1 : nu`.",
        ),
        Mistake(lambda f, ln, nu: f - ln - nu, "Subtract `log(nu)`, not `nu` itself."),
        Mistake(
            lambda f, ln, nu: f - ln + math.log(nu),
            "The `log(nu)` term has the wrong sign: more noise points make 'data' *less* "
            "likely a priori, `- log(nu)`.",
        ),
        Mistake(
            lambda f, ln, nu: torch.sigmoid(f - ln - math.log(nu)),
            "You returned the probability `sigmoid(G)`; the exercise asks for the logit "
            "`G` itself.",
        ),
    ]
    return Spec("nce_logit", cases, sol.nce_logit, mistakes, Tolerance(1e-6, 1e-6))


def check_nce_logit(answer: Any) -> Feedback:
    """Check ``nce_logit(scores [N], log_noise [N], noise_ratio) -> [N]``.

    Inputs: noise ratios 1, 4 and 10 (a single point). Tolerance ``1e-6 + 1e-6 |expected|``.
    Known mistakes: ``+ log p_n``, no ``log nu``, ``nu`` instead of ``log nu``, ``+ log nu``,
    a probability instead of the logit.
    """
    return evaluate(_nce_logit_spec(), answer)


@functools.cache
def _nce_loss_spec() -> Spec:
    def case(label: str, data: list[float], noise: list[float]) -> Case:
        def make() -> tuple[tuple, dict]:
            return (
                torch.tensor(data, requires_grad=True),
                torch.tensor(noise, requires_grad=True),
            ), {}

        return Case(label, make)

    cases = [
        case(
            "four data and four noise logits (nu = 1)",
            [1.2, -0.3, 2.0, 0.1],
            [-1.0, 0.4, -2.2, 0.0],
        ),
        case(
            "two data and eight noise logits (nu = 4)",
            [0.5, 1.5],
            [-0.5, -1.0, 0.3, -2.0, 1.1, -0.2, -3.0, 0.0],
        ),
        case(
            "extreme logits (-200 for a data point, +200 for a noise point)",
            [-200.0, 3.0],
            [200.0, -1.0],
        ),
    ]
    ls = F.logsigmoid
    mistakes = [
        Mistake(
            lambda d, n: -ls(d).mean() - ls(-n).mean(),
            "You averaged the noise term over the `nu * B` noise points; NCE's loss is per "
            "*data* point: divide the noise term's sum by `B`, the number of data points.",
        ),
        Mistake(
            lambda d, n: -ls(d).mean() - ls(n).sum() / len(d),
            "Your loss rewards calling noise points data: noise should be classified as "
            "noise, `log sigmoid(-G(y))`.",
        ),
        Mistake(
            lambda d, n: ls(d).mean() + ls(-n).sum() / len(d),
            "You returned the log-likelihood of the classifier; the loss to minimise is "
            "its negative.",
        ),
        Mistake(
            lambda d, n: (
                -torch.log(torch.sigmoid(d)).mean() - torch.log(torch.sigmoid(-n)).sum() / len(d)
            ),
            "`log(sigmoid(G))` underflows to `-inf` for very negative logits: use "
            "`torch.nn.functional.logsigmoid`.",
        ),
    ]
    observe = value_and_grads(lambda args, kwargs: [args[0], args[1]])
    spec = Spec("nce_loss", cases, sol.nce_loss, mistakes, Tolerance(1e-5, 1e-5), observe)
    spec.note = "The loss is one number: a 0-d tensor connected to the logits."
    return spec


def check_nce_loss(answer: Any) -> Feedback:
    """Check ``nce_loss(data_logit [B], noise_logit [nu * B]) -> 0-d tensor``.

    Inputs: nu = 1, nu = 4, and logits of +-200. The loss and its gradients with respect to
    both logit tensors are compared; Tolerance ``1e-5 + 1e-5 |expected|``. Known mistakes:
    the noise term averaged over noise points, the noise term's sign, the missing minus,
    ``log(sigmoid(...))`` underflow.
    """
    return evaluate(_nce_loss_spec(), answer)
