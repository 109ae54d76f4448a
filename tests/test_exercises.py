"""ebm_course.exercises: references pass, typical mistakes are named, stubs and errors are kind.

Each wrong answer below is written the way a learner might write it; the checker must name
its mistake (``kind == "mistake"`` and a phrase of that mistake's own message).
"""

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from ebm_course.exercises import (
    EXERCISES,
    Feedback,
    check,
    exercises_for,
    hints,
    show_solution,
    solutions,
    stub,
)

torch.set_num_threads(1)


def grad(score_fn, x):
    """What a learner writes for grad_x f: the gradient of the summed scores."""
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(score_fn(x).sum(), x)[0]


# ------------------------------------------------------------------ the wrong answers
# (exercise, a wrong implementation, a phrase of the message that must name its mistake)

LESSON_1 = [
    ("grid_log_partition", lambda s, a: math.log(float(torch.exp(s).sum()) * a), "overflowed"),
    ("grid_log_partition", lambda s, a: torch.logsumexp(s, 0), "forgot the cell area"),
    ("grid_log_partition", lambda s, a: float(torch.exp(s).sum() * a), "`Z` itself"),
    ("grid_log_partition", lambda s, a: torch.logsumexp(-s, 0) + math.log(a), "`exp(-f)`"),
    ("grid_log_partition", lambda s, a: s.logsumexp(0) - math.log(len(s) / a), "averaged"),
    ("grid_density", lambda s, a: s.exp() / (s.exp().sum() * a), "inf / inf"),
    ("grid_density", lambda s, a: s.softmax(0), "must *integrate* to 1"),
    ("grid_density", lambda s, a: s.exp(), "without dividing by `Z`"),
    ("grid_density", lambda s, a: s - torch.logsumexp(s, 0) - math.log(a), "`log q = f - log Z`"),
    ("grid_density", lambda s, a: (-s).softmax(0) / a, "normalised `exp(-f)`"),
]


def cd_flipped(real, fake, alpha):
    return real.mean() - fake.mean() + alpha * (real**2 + fake**2).mean()


def cd_sums(real, fake, alpha):
    return fake.sum() - real.sum() + alpha * (real**2 + fake**2).sum()


def cd_like_the_package(real, fake, alpha):
    reg_loss = alpha * (real**2 + fake**2).mean()
    cdiv = fake.mean() - real.mean()
    return cdiv + reg_loss, reg_loss, cdiv


LESSON_2 = [
    ("cd_loss", cd_flipped, "sign of the contrastive term is flipped"),
    ("cd_loss", lambda r, f, a: f.mean() - r.mean(), "left out the regulariser"),
    ("cd_loss", lambda r, f, a: f.mean() - r.mean() + a * (r**2).mean(), "only the real scores"),
    ("cd_loss", lambda r, f, a: f.mean() - r.mean() + a * (f**2).mean(), "only the fake scores"),
    (
        "cd_loss",
        lambda r, f, a: f.mean() - r.mean() + a * (r.mean() ** 2 + f.mean() ** 2),
        "squared the *mean* scores",
    ),
    ("cd_loss", lambda r, f, a: f.mean() - r.mean() + a * ((r + f) ** 2).mean(), "squared the sum"),
    ("cd_loss", lambda r, f, a: f.mean() - r.mean() + (r**2 + f**2).mean(), "not multiplied by"),
    ("cd_loss", cd_sums, "summed over the batch"),
    ("cd_loss", cd_like_the_package, "You returned a tuple"),
    ("cd_loss", lambda r, f, a: (f.mean() - r.mean() + a * (r**2 + f**2).mean()).item(), "cut off"),
    (
        "cd_loss",
        lambda r, f, a: torch.tensor((f.mean() - r.mean() + a * (r**2 + f**2).mean()).item()),
        "cut off",
    ),
    ("grid_nll", lambda d, g, a: float(d.mean() - torch.logsumexp(g, 0)) - math.log(a), "negative"),
    ("grid_nll", lambda d, g, a: -float(d.mean()), "forgot `log Z`"),
    ("grid_nll", lambda d, g, a: float(torch.logsumexp(g, 0) - d.mean()), "lacks the cell area"),
    (
        "grid_nll",
        lambda d, g, a: float(len(d) * (torch.logsumexp(g, 0) + math.log(a)) - d.sum()),
        "summed over the data points",
    ),
]


def textbook(scale_grad, scale_noise, mean=False):
    def step(score_fn, x, eps, noise):
        x = x.detach().requires_grad_(True)
        scores = score_fn(x)
        g = torch.autograd.grad(scores.mean() if mean else scores.sum(), x)[0]
        return (x + scale_grad(eps) * g + scale_noise(eps) * noise).detach()

    return step


def tutorial(noise_first=True, clamp_noise=True, clamp_grad=True, clamp_end=True, sign=1, lo=-1):
    def step(score_fn, x, step_size, noise_std, grad_clamp, noise):
        g0 = None if noise_first else grad(score_fn, x)
        x = x + noise_std * noise
        if clamp_noise:
            x = x.clamp(lo, 1)
        g = sign * (grad(score_fn, x) if g0 is None else g0)
        if clamp_grad:
            g = g.clamp(-grad_clamp, grad_clamp)
        x = x + step_size * g
        return x.clamp(lo, 1) if clamp_end else x

    return step


def tutorial_textbook_noise(score_fn, x, step_size, noise_std, grad_clamp, noise):
    return tutorial()(score_fn, x, step_size, math.sqrt(2 * step_size), grad_clamp, noise)


def tutorial_raw_noise(score_fn, x, step_size, noise_std, grad_clamp, noise):
    return tutorial()(score_fn, x, step_size, 1.0, grad_clamp, noise)


def draw(noise="uniform", inverted=False, no_fresh=False, same_rows=False, seeded=True):
    def draw_starts(stored, batch_size, reinit_prob, generator):
        g = generator if seeded else None
        shape = stored.shape[1:]
        p = 1 - reinit_prob if inverted else 0.0 if no_fresh else reinit_prob
        n_new = (
            batch_size
            if len(stored) == 0
            else int(
                torch.binomial(torch.tensor([float(batch_size)]), torch.tensor([p]), generator=g)
            )
        )
        if noise == "gaussian":
            fresh = torch.randn((n_new, *shape), generator=g)
        else:
            fresh = torch.rand((n_new, *shape), generator=g)
            fresh = fresh if noise == "zero_one" else fresh * 2 - 1
        if same_rows:
            index = torch.zeros(batch_size - n_new, dtype=torch.long)
        elif len(stored):
            index = torch.randint(len(stored), (batch_size - n_new,), generator=g)
        else:
            return fresh
        return torch.cat([fresh, stored[index]])

    return draw_starts


LESSON_3 = [
    ("langevin_step", textbook(lambda e: -e, lambda e: math.sqrt(2 * e)), "against the gradient"),
    ("langevin_step", textbook(lambda e: e, lambda e: 0.0), "left out the noise"),
    ("langevin_step", textbook(lambda e: e, lambda e: 1.0), "the raw `noise`"),
    ("langevin_step", textbook(lambda e: e, math.sqrt), "the factor 2 is missing"),
    ("langevin_step", textbook(lambda e: e, lambda e: e), "`step_size`, not its root"),
    ("langevin_step", textbook(lambda e: 1.0, lambda e: math.sqrt(2 * e)), "not multiplied"),
    ("langevin_step", textbook(lambda e: e, lambda e: (2 * e) ** 0.5, mean=True), "*mean*"),
    ("tutorial_langevin_step", tutorial(sign=-1), "against the gradient"),
    ("tutorial_langevin_step", tutorial(clamp_grad=False), "did not clamp the gradient"),
    ("tutorial_langevin_step", tutorial(clamp_end=False), "clamp again after the gradient step"),
    ("tutorial_langevin_step", tutorial(clamp_noise=False), "did not clamp after adding the noise"),
    ("tutorial_langevin_step", tutorial(clamp_noise=False, clamp_end=False), "clamp nowhere"),
    ("tutorial_langevin_step", tutorial(noise_first=False), "gradient before adding the noise"),
    ("tutorial_langevin_step", tutorial_textbook_noise, "textbook noise"),
    ("tutorial_langevin_step", tutorial_raw_noise, "without multiplying it by `noise_std`"),
    ("tutorial_langevin_step", tutorial(lo=0), "clamp to `[0, 1]`"),
    ("sampler_temperature", lambda eps, sigma: 2 * eps / sigma**2, "upside down"),
    ("sampler_temperature", lambda eps, sigma: sigma**2 / eps, "factor 2 is missing"),
    ("sampler_temperature", lambda eps, sigma: sigma / (2 * eps), "Square the noise"),
    (
        "sampler_temperature",
        lambda eps, sigma: sigma / (2 * eps) ** 0.5,
        "compared standard deviations",
    ),
    ("draw_starts", draw(seeded=False), "ignores `generator`"),
    ("draw_starts", draw(noise="gaussian"), "Gaussian noise"),
    ("draw_starts", draw(noise="zero_one"), "lies in `[0, 1]`"),
    ("draw_starts", draw(inverted=True), "not the fraction kept"),
    ("draw_starts", draw(no_fresh=True), "No fresh rows"),
    ("draw_starts", draw(same_rows=True), "not picked uniformly"),
]


def train(zero=True, noised=True, clamp=True, step=True, sign=1, reg=True):
    def training_step(model, optimizer, real, fake, alpha, input_noise, noise):
        if noised:
            real = real + input_noise * noise
        if clamp:
            real = torch.clamp(real, -1, 1)
        real_score, fake_score = model(real), model(fake)
        loss = sign * (fake_score.mean() - real_score.mean())
        if reg:
            loss = loss + alpha * (real_score**2 + fake_score**2).mean()
        if zero:
            optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
        return loss.item()

    return training_step


LESSON_4 = [
    ("to_model_range", lambda x: x / 255, "lie in `[0, 1]`"),
    ("to_model_range", lambda x: (x.float() - 127.5) / 255, "lie in `[-0.5, 0.5]`"),
    ("to_model_range", lambda x: x * 2 / 255 - 1, "overflowed in uint8"),
    ("to_model_range", lambda x: 1 - 2 * (x / 255), "Ink and paper are swapped"),
    ("to_model_range", lambda x: x.to(torch.float64) / 127.5 - 1, "float64"),
    ("training_step", train(zero=False), "did not clear the old gradients"),
    ("training_step", train(step=False), "parameters did not change"),
    ("training_step", train(noised=False, clamp=False), "did not add the input noise"),
    ("training_step", train(clamp=False), "did not clamp the noised real images"),
    ("training_step", train(sign=-1), "sign of the contrastive term is flipped"),
    ("training_step", train(reg=False), "left out the regulariser"),
]


def auroc_loop(in_scores, out_scores, tie):
    total = 0.0
    for a in in_scores.tolist():
        for b in out_scores.tolist():
            total += 1.0 if a > b else tie if a == b else 0.0
    return total / (len(in_scores) * len(out_scores))


def auroc_elementwise(in_scores, out_scores):
    return ((in_scores > out_scores).double() + 0.5 * (in_scores == out_scores).double()).mean()


def auroc_per_in(in_scores, out_scores):
    wins = (in_scores[:, None] > out_scores).sum() + 0.5 * (in_scores[:, None] == out_scores).sum()
    return float(wins) / len(in_scores)


def entropy(counts, base=math.e, drop_empty=True, shares=True, sign=-1):
    p = counts.double() / counts.sum() if shares else counts.double()
    p = p[p > 0] if drop_empty else p
    return float(sign * (p * torch.log(p)).sum() / math.log(base))


LESSON_5 = [
    ("auroc", lambda a, b: auroc_loop(a, b, tie=0.0), "Ties count 0"),
    ("auroc", lambda a, b: auroc_loop(a, b, tie=1.0), "Ties count 1"),
    ("auroc", lambda a, b: auroc_loop(b, a, tie=0.5), "arguments are swapped"),
    ("auroc", lambda a, b: auroc_loop(-a, -b, tie=0.5), "arguments are swapped"),
    ("auroc", auroc_elementwise, "compared `in_scores[i]` with `out_scores[i]` only"),
    ("auroc", auroc_per_in, "in-distribution scores only"),
    ("rotate_180", lambda x: torch.flip(x, [2]), "did not mirror them"),
    ("rotate_180", lambda x: torch.flip(x, [-1]), "did not turn them upside down"),
    ("rotate_180", lambda x: x.flip(0, 2, 3), "order of the images"),
    ("rotate_180", lambda x: x.flip(1, 2, 3), "reversed the channels"),
    ("rotate_180", lambda x: x.flip(0, 1, 2, 3), "flipped every dimension"),
    ("rotate_180", lambda x: x.rot90(1, (2, 3)), "90 degrees"),
    ("rotate_180", lambda x: x.permute(0, 1, 3, 2), "transposed"),
    ("class_entropy", lambda c: entropy(c, base=2), "bits"),
    ("class_entropy", lambda c: entropy(c, drop_empty=False), "gave NaN"),
    ("class_entropy", lambda c: entropy(c, sign=1), "negative"),
    ("class_entropy", lambda c: entropy(c, shares=False), "not the raw counts"),
]


def diverged(finite="all", gap="both", scale="abs", limits=True):
    def looks_diverged(row, max_abs_score=50.0, max_score_gap=10.0):
        if not limits:
            max_abs_score, max_score_gap = 50.0, 10.0
        values = list(row.values()) if finite == "all" else [row["real_score"], row["fake_score"]]
        if finite != "none" and any(math.isnan(v) or math.isinf(v) for v in values):
            return True
        real, fake = row["real_score"], row["fake_score"]
        if scale == "abs" and (abs(real) > max_abs_score or abs(fake) > max_abs_score):
            return True
        if scale == "signed" and (real > max_abs_score or fake > max_abs_score):
            return True
        return {"both": abs(real - fake), "real": real - fake, "fake": fake - real}.get(
            gap, 0.0
        ) > max_score_gap

    return looks_diverged


def masked(noise_mask="mask", grad_mask="mask", sign=1):
    def masked_langevin_step(score_fn, x, mask, step_size, noise_std, grad_clamp, noise):
        keep = {"mask": mask.float(), "inverse": (~mask).float(), "none": 1.0}
        x = (x + noise_std * noise * keep[noise_mask]).clamp(-1, 1)
        g = (sign * grad(score_fn, x)).clamp(-grad_clamp, grad_clamp) * keep[grad_mask]
        return (x + step_size * g).clamp(-1, 1)

    return masked_langevin_step


def masked_restore(score_fn, x, mask, step_size, noise_std, grad_clamp, noise):
    moved = tutorial()(score_fn, x, step_size, noise_std, grad_clamp, noise)
    return torch.where(mask, moved, x)


def denoise(data=1.0, power=2, sign=1, clamp=True):
    def map_denoise_step(score_fn, x, y, sigma, step_size):
        x = x + step_size * (sign * grad(score_fn, x) - data * (x - y) / sigma**power)
        return x.clamp(-1, 1) if clamp else x

    return map_denoise_step


LESSON_6 = [
    ("looks_diverged", diverged(finite="none"), "NaN fails every comparison"),
    ("looks_diverged", diverged(finite="scores"), "a NaN loss"),
    ("looks_diverged", diverged(gap="real"), "only real scores far *above*"),
    ("looks_diverged", diverged(gap="fake"), "only fake scores far above"),
    ("looks_diverged", diverged(scale="signed"), "only large *positive* scores"),
    ("looks_diverged", diverged(gap="none"), "never test the gap"),
    ("looks_diverged", diverged(scale="none"), "never test the size"),
    ("looks_diverged", diverged(limits=False), "ignore the thresholds"),
    ("masked_langevin_step", masked("inverse", "inverse"), "froze the missing ones"),
    ("masked_langevin_step", masked(grad_mask="none"), "gradient step also moves"),
    ("masked_langevin_step", masked(noise_mask="none"), "noise also changes"),
    ("masked_langevin_step", masked("none", "none"), "ignored the mask"),
    ("masked_langevin_step", masked_restore, "restored the known ones afterwards"),
    ("masked_langevin_step", masked(sign=-1), "against the gradient"),
    ("map_denoise_step", denoise(data=-1.0), "*away* from the observation"),
    ("map_denoise_step", denoise(power=1), "Square sigma"),
    ("map_denoise_step", denoise(data=0.5), "half as strong"),
    ("map_denoise_step", denoise(data=0.0), "left out the data term"),
    ("map_denoise_step", denoise(sign=-1), "against the gradient"),
    ("map_denoise_step", denoise(clamp=False), "leaves `[-1, 1]`"),
]


def dsm(sign=1, vincent=False, clean=False, graph=True, mean_coords=False, half=0.5):
    def dsm_loss(score_fn, x, sigma, noise):
        point = (x if clean else x + sigma * noise).detach().requires_grad_(True)
        g = torch.autograd.grad(score_fn(point).sum(), point, create_graph=graph)[0]
        residual = g + noise / sigma if vincent else sigma * g + sign * noise
        squares = residual**2
        per_example = squares.flatten(1).mean(1) if mean_coords else squares.flatten(1).sum(1)
        return half * per_example.mean()

    return dsm_loss


def ssm(half=0.5, vr=False, sign=1, reduce="mean", graph1=True, graph2=True):
    def ssm_loss(score_fn, x, v):
        x = x.detach().requires_grad_(True)
        g = torch.autograd.grad(score_fn(x).sum(), x, create_graph=graph1)[0]
        gv = (g * v).sum(1)
        hv = torch.autograd.grad(gv.sum(), x, create_graph=graph2)[0]
        square = (g**2).sum(1) if vr else gv**2
        per_example = sign * (hv * v).sum(1) + half * square
        return per_example.mean() if reduce == "mean" else per_example.sum()

    return ssm_loss


def nce_naive(data_logit, noise_logit):
    data = torch.log(torch.sigmoid(data_logit)).mean()
    return -data - torch.log(1 - torch.sigmoid(noise_logit)).sum() / len(data_logit)


LESSON_7 = [
    ("dsm_loss", dsm(sign=-1), "points *away* from the clean data"),
    ("dsm_loss", dsm(vincent=True), "Vincent's unweighted loss"),
    ("dsm_loss", dsm(clean=True), "at the clean `x`"),
    ("dsm_loss", dsm(graph=False), "does not reach the model's parameters"),
    ("dsm_loss", dsm(mean_coords=True), "averaged over each example's coordinates"),
    ("dsm_loss", dsm(half=1.0), "factor 1/2"),
    ("ssm_loss", ssm(half=1.0), "factor 1/2"),
    ("ssm_loss", ssm(vr=True), "variance-reduced"),
    ("ssm_loss", ssm(sign=-1), "Hessian term has the wrong sign"),
    ("ssm_loss", ssm(reduce="sum"), "summed over the batch"),
    ("ssm_loss", ssm(graph2=False), "Hessian term does not train the model"),
    ("ssm_loss", ssm(graph1=False), "first `autograd.grad` needs `create_graph=True`"),
    ("nce_logit", lambda f, log_pn, nu: f + log_pn - math.log(nu), "You added `log p_n(u)`"),
    ("nce_logit", lambda f, log_pn, nu: f - log_pn, "forgot `- log(nu)`"),
    ("nce_logit", lambda f, log_pn, nu: f - log_pn - nu, "not `nu` itself"),
    ("nce_logit", lambda f, log_pn, nu: f - log_pn + math.log(nu), "wrong sign"),
    ("nce_logit", lambda f, log_pn, nu: (f - log_pn - math.log(nu)).sigmoid(), "probability"),
    (
        "nce_loss",
        lambda d, n: -F.logsigmoid(d).mean() - F.logsigmoid(-n).mean(),
        "averaged the noise term",
    ),
    (
        "nce_loss",
        lambda d, n: -F.logsigmoid(d).mean() - F.logsigmoid(n).sum() / len(d),
        "calling noise points data",
    ),
    (
        "nce_loss",
        lambda d, n: F.logsigmoid(d).mean() + F.logsigmoid(-n).sum() / len(d),
        "its negative",
    ),
    ("nce_loss", nce_naive, "underflows"),
]


def class_score_energy(logits, y):
    return -solutions.jem_class_score(logits, y)


def class_score_log_prob(logits, y):
    return logits.log_softmax(1)[torch.arange(len(logits)), y]


LESSON_8 = [
    ("jem_marginal_score", lambda z: z.max(1).values, "max-logit detector"),
    ("jem_marginal_score", lambda z: z.exp().sum(1).log(), "overflowed"),
    ("jem_marginal_score", lambda z: z.logsumexp(0), "over the batch"),
    ("jem_marginal_score", lambda z: z.mean(1), "averaged the logits"),
    ("jem_marginal_score", lambda z: z.sum(dim=1), "summed the logits"),
    ("jem_marginal_score", lambda z: -torch.logsumexp(z, 1), "returned the energy"),
    ("jem_marginal_score", lambda z: z.softmax(1).sum(1).log(), "summed the probabilities"),
    ("jem_class_probabilities", lambda z: z.softmax(0), "over the batch"),
    ("jem_class_probabilities", lambda z: F.log_softmax(z, 1), "log_softmax"),
    ("jem_class_probabilities", lambda z: z.exp(), "did not normalise"),
    ("jem_class_probabilities", torch.sigmoid, "sigmoid"),
    ("jem_class_probabilities", lambda z: z.exp() / z.exp().sum(1, keepdim=True), "overflowed"),
    ("jem_class_score", class_score_log_prob, "log-probability"),
    ("jem_class_score", lambda z, y: z.softmax(1)[torch.arange(len(z)), y], "returned `q(y | x)`"),
    ("jem_class_score", lambda z, y: z[:, y], "picks every label for every image"),
    ("jem_class_score", lambda z, y: z[y], "picks *images*"),
    ("jem_class_score", lambda z, y: z.logsumexp(1), "marginal score"),
    ("jem_class_score", class_score_energy, "returned the energy"),
]


def per_example(sigma, x):
    return sigma.view(-1, *[1] * (x.dim() - 1))


LESSON_9 = [
    ("geometric_noise_levels", lambda hi, lo, n: torch.linspace(hi, lo, n), "evenly spaced"),
    (
        "geometric_noise_levels",
        lambda hi, lo, n: torch.logspace(math.log10(lo), math.log10(hi), n),
        "levels go up",
    ),
    (
        "geometric_noise_levels",
        lambda hi, lo, n: hi * (lo / hi) ** (torch.arange(n) / n),
        "above sigma_min",
    ),
    ("dsm_target", lambda x, xt, s: (xt - x) / per_example(s, x) ** 2, "*away*"),
    ("dsm_target", lambda x, xt, s: (x - xt) / per_example(s, x), "divided by sigma"),
    ("dsm_target", lambda x, xt, s: x - xt, "left out the noise level"),
    (
        "reverse_diffusion_step",
        lambda x, g, s, t, z: x + (s - t) * g + math.sqrt(s - t) * z,
        "sigma - next_sigma",
    ),
    (
        "reverse_diffusion_step",
        lambda x, g, s, t, z: x + 0.5 * (s * s - t * t) * g + math.sqrt(s * s - t * t) * z,
        "Langevin step",
    ),
    (
        "reverse_diffusion_step",
        lambda x, g, s, t, z: x + (s * s - t * t) * (g + z),
        "*standard deviation*",
    ),
    (
        "reverse_diffusion_step",
        lambda x, g, s, t, z: x - (s * s - t * t) * g + math.sqrt(s * s - t * t) * z,
        "against the score",
    ),
]

WRONG = (
    LESSON_1 + LESSON_2 + LESSON_3 + LESSON_4 + LESSON_5 + LESSON_6 + LESSON_7 + LESSON_8 + LESSON_9
)


# ------------------------------------------------------------------ tests


def test_catalog_covers_every_lesson():
    assert len(EXERCISES) >= 18
    for lesson in range(1, 10):
        assert exercises_for(lesson), f"lesson {lesson} has no exercise"
    for name, exercise in EXERCISES.items():
        assert exercise.name == name and exercise.title and exercise.task and exercise.hints
        assert exercise.solution is getattr(solutions, name)
        assert exercise.solution.__doc__ and exercise.checker.__doc__
        assert "Tolerance" in exercise.checker.__doc__, f"{name}: checker states no tolerance"
        assert len(exercise.mistakes) >= 2, f"{name} knows fewer than two mistakes"


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_solution_passes(name):
    feedback = check(name, EXERCISES[name].solution)
    assert feedback.passed and feedback.kind == "correct", feedback.message


@pytest.mark.parametrize(
    ("name", "answer", "phrase"), WRONG, ids=[f"{n}-{p[:30]}" for n, _, p in WRONG]
)
def test_typical_mistake_is_named(name, answer, phrase):
    feedback = check(name, answer)
    assert feedback.kind == "mistake" and not feedback.passed, str(feedback)
    assert phrase in feedback.message, str(feedback)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_known_mistake_has_a_test_with_its_own_phrase(name):
    messages = set(EXERCISES[name].mistakes)  # two wrong answers may share one message
    phrases = [phrase for n, _, phrase in WRONG if n == name]
    for message in messages:
        mine = [p for p in phrases if p in message]
        assert mine, f"{name}: no wrong answer in this file tests {message!r}"
    for phrase in phrases:  # each phrase identifies one message
        assert sum(phrase in m for m in messages) == 1, f"{name}: {phrase!r} is ambiguous"


def raises(*args, **kwargs):
    raise NotImplementedError


def returns_none(*args, **kwargs):
    return None


def body_is_ellipsis(*args, **kwargs): ...


def returns_ellipsis(*args, **kwargs):
    return ...


@pytest.mark.parametrize("name", list(EXERCISES))
@pytest.mark.parametrize("answer", [raises, returns_none, body_is_ellipsis, returns_ellipsis, None])
def test_stub_is_not_written(name, answer):
    feedback = check(name, answer)
    assert feedback.kind == "not_written" and "Not written yet" in feedback.message


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_stub_text_defines_an_unwritten_function(name):
    source = stub(name)
    namespace = {}
    exec(source, namespace)  # the stub is runnable code: imports, def, placeholder
    assert check(name, namespace[name]).kind == "not_written"
    assert EXERCISES[name].signature in source and "NotImplementedError" in source


def test_an_exception_is_reported_with_type_input_and_line():
    def cd_loss(real_score, fake_score, alpha):
        raise ValueError("the scores look odd")

    feedback = check("cd_loss", cd_loss)
    assert feedback.kind == "error" and not feedback.passed
    assert "ValueError: the scores look odd" in feedback.message
    assert "four real and four fake scores" in feedback.message  # the input that failed
    assert "line" in feedback.message and "cd_loss" in feedback.message


def test_a_wrong_signature_is_reported_with_the_expected_one():
    feedback = check("langevin_step", lambda x, step_size: x)
    assert feedback.kind == "error" and "TypeError" in feedback.message
    assert "def langevin_step(" in feedback.message


def test_an_autograd_error_gets_a_hint():
    def langevin_step(score_fn, x, step_size, noise):  # forgot requires_grad_
        return x + step_size * torch.autograd.grad(score_fn(x).sum(), x)[0]

    feedback = check("langevin_step", langevin_step)
    assert feedback.kind == "error" and "requires_grad_(True)" in feedback.message


def test_wrong_shape_and_dtype_are_named():
    shape = check("langevin_step", lambda f, x, eps, noise: x[0])
    assert shape.kind == "wrong" and "expected shape [5, 2], got shape [2]" in shape.message
    dtype = check("grid_density", lambda s, a: solutions.grid_density(s, a).double())
    assert dtype.kind == "wrong" and "dtype torch.float32" in dtype.message
    kind = check("auroc", lambda a, b: "0.5")
    assert kind.kind == "wrong" and "expected a number" in kind.message


def test_an_unrecognised_wrong_answer_says_where_and_what():
    feedback = check("cd_loss", lambda r, f, a: solutions.cd_loss(r, f, a) + 0.01)
    assert feedback.kind == "wrong"
    assert "four real and four fake scores" in feedback.message
    assert "expected -1.22625, got -1.21625" in feedback.message
    assert "Tolerance" in feedback.message


def test_changing_the_input_in_place_is_reported():
    def langevin_step(score_fn, x, step_size, noise):
        new = solutions.langevin_step(score_fn, x, step_size, noise)
        x.copy_(new)
        return new

    feedback = check("langevin_step", langevin_step)
    assert feedback.kind == "wrong" and "in place" in feedback.message


def test_a_value_instead_of_a_function_is_explained():
    feedback = check("sampler_temperature", 1.25e-6)
    assert feedback.kind == "wrong" and "your function itself" in feedback.message


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, ebm_course.exercises as e; e.stub; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_exercise_lists_the_names():
    with pytest.raises(KeyError, match="cd_loss"):
        check("no_such_exercise", solutions.cd_loss)


def test_feedback_displays_as_text_markdown_and_html():
    feedback = check("cd_loss", cd_flipped)
    text = repr(feedback)
    assert text.startswith("MISTAKE SPOTTED: cd_loss") and text == str(feedback)
    assert "Mistake spotted" in feedback._repr_markdown_()
    html = feedback._repr_html_()
    assert "Mistake spotted" in html and "<code>cd_loss</code>" in html and "&lt;=" in html
    assert isinstance(feedback, Feedback)
    with pytest.raises(ValueError):
        Feedback("cd_loss", True, "wrong", "inconsistent")


def test_show_solution_is_the_package_source_and_hints_exist():
    source = show_solution("cd_loss")
    assert source == inspect.getsource(solutions.cd_loss).rstrip("\n")
    assert repr(source) == str(source) and source._repr_markdown_().startswith("```python")
    assert hints("cd_loss") == list(EXERCISES["cd_loss"].hints)


# ------------------------------------------------------------------ agreement with the package


def test_solutions_agree_with_the_package():
    from ebm_course import toy
    from ebm_course.jem import JEM
    from ebm_course.training import contrastive_divergence_loss

    real, fake = torch.randn(6), torch.randn(6)
    expected, _, _ = contrastive_divergence_loss(real, fake, 0.1)
    torch.testing.assert_close(solutions.cd_loss(real, fake, 0.1), expected)

    grid, gaussian = toy.Grid(n=50), toy.GaussianScore(mean=(0.1, -0.2), std=0.3)
    with torch.no_grad():
        mine = solutions.grid_log_partition(gaussian(grid.points), grid.cell_area)
    assert mine == pytest.approx(toy.log_partition(gaussian, grid), abs=1e-4)

    # 8 of 12 pairs won, ties counted half (sklearn's roc_auc_score gives the same)
    a, b = torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 0.0])
    assert solutions.auroc(a, b) == pytest.approx(8 / 12)

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.randn(5, 1, 2, 2)
    with torch.no_grad():  # JEM's forward is the marginal score of its network's logits
        torch.testing.assert_close(solutions.jem_marginal_score(net(x)), JEM(net)(x))


def test_sampler_steps_agree_with_langevin():
    from ebm_course.sampling import langevin

    linear = torch.nn.Linear(784, 1)
    with torch.no_grad():  # weights exact in bfloat16: the same gradient at any precision
        linear.weight.copy_(torch.randint(-6, 7, (1, 784)) / 128)
    score = torch.nn.Sequential(torch.nn.Flatten(), linear, torch.nn.Flatten(0))
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    mask = torch.zeros(1, 1, 28, 28, dtype=torch.bool)
    mask[..., 14:, :] = True
    for m in (None, mask):
        g = torch.Generator().manual_seed(0)
        out = langevin(score, x, 1, 10.0, 0.3, 0.03, (-1.0, 1.0), generator=g, mask=m)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        if m is None:
            mine = solutions.tutorial_langevin_step(score, x, 10.0, 0.3, 0.03, noise)
        else:
            mine = solutions.masked_langevin_step(score, x, m, 10.0, 0.3, 0.03, noise)
        torch.testing.assert_close(mine, out, atol=1e-5, rtol=1e-5)


def test_objectives_agree_with_the_package():
    from ebm_course.objectives import (
        denoising_score_matching,
        noise_contrastive_estimation,
        sliced_score_matching,
    )

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.SiLU(), torch.nn.Linear(8, 1))
    score = lambda x: model(x).squeeze(1)
    x = torch.randn(16, 2)

    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    expected = denoising_score_matching(score, x, 0.1, torch.Generator().manual_seed(1))
    torch.testing.assert_close(solutions.dsm_loss(score, x, 0.1, noise), expected)

    v = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(2)).float() * 2 - 1
    expected = sliced_score_matching(score, x, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(solutions.ssm_loss(score, x, v), expected)

    gauss = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), 1.0), 1)
    samples = gauss.sample((48,))
    expected = noise_contrastive_estimation(score, x, gauss, 3, noise_samples=samples)
    points = torch.cat([x, samples])
    logit = solutions.nce_logit(score(points), gauss.log_prob(points), 3)
    torch.testing.assert_close(solutions.nce_loss(logit[:16], logit[16:]), expected)


def test_the_replay_buffer_passes_the_draw_check():
    from ebm_course.sampling import ReplayBuffer

    def draw_starts(stored, batch_size, reinit_prob, generator):
        buffer = ReplayBuffer(stored.shape[1:], max(len(stored), 1), reinit_prob,
                              generator=generator)  # fmt: skip
        if len(stored):
            buffer.push(stored)
        return buffer.draw(batch_size)

    feedback = check("draw_starts", draw_starts)
    assert feedback.passed, feedback.message
