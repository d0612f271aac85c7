"""D's negatives as a list: every kind of pair that D is taught to call OOD, one function each.

Each source returns a :class:`Negatives` (its features, labels, weight and the loss term it belongs
to); ``discriminator_loss`` in ``bal_tf.gan`` scores
each source with D and sums them: L_d = L_t + L_s + L_u (Eq. 11), with

    L_s = -E log D(f, c) + E neg(f, T(c))                          (Eq. 8, source ``shuffled``)
    L_u = -E log D(f, c) + sum over the L_u sources of weight * E neg(pair)   (Eq. 9)

where neg is ``losses.negative_loss``. The sources:

| source | pairs | paper | on in |
|---|---|---|---|
| ``trivial`` | uniform in the batch box, random labels (weight lambda_c) | REM, Eqs. 4-5 | every preset |
| ``hard`` | G(z', c), z' the FGSM step on z (weight ``hard_weight``) | RSM, Eq. 7 | every preset |
| ``shuffled`` | real features with a wrong label T(c) (L_s) | RDM, Eq. 8 | every preset |
| ``ladder`` | class-conditional Gaussians N(mu_c, s^2 Sigma), s in ``ladder_scales`` (closed-form density) | ours (telescoping references) | ``default`` |
| ``floor`` | the batch's features shrunk toward the features' floor | ours | ``default`` |

The last two are the references of D's density-ratio target (``bal_tf.density_ratio``): against
them D's logit estimates log p(f | c) - log q(f | c) (noise-contrastive estimation).

``paper_literal`` pools ``trivial`` and ``hard`` into one expectation over P_u weighted lambda_c
(Algorithm 1, line 7 samples them together): ``pool_hard_with_trivial``.

The sources draw from the model's one seed generator in the order of ``SOURCE_ORDER``: a run
resumed from its checkpoint, or the same seed on another machine, draws the same negatives.
"""

from __future__ import annotations

import dataclasses
import typing

import keras
from keras import ops

from bal_tf import generator, rem
from bal_tf.config import GANConfig

SOURCE_ORDER = ("trivial", "shuffled", "hard", "ladder", "floor")


@dataclasses.dataclass
class Negatives:
    """One source's negative pairs for this batch."""

    name: str
    features: typing.Any
    labels: typing.Any
    weight: float
    term: str  # "l_s" or "l_u": the term of L_d (Eq. 11) it belongs to (the Table 1 switches)


def active_sources(config: GANConfig) -> list[str]:
    """The sources that a config trains D against, in ``SOURCE_ORDER``."""
    on = {
        "trivial": config.use_uniform_loss,
        "shuffled": config.use_shuffle_loss,
        "hard": config.use_uniform_loss,
        "ladder": config.use_uniform_loss and config.ladder_weight > 0,
        "floor": config.use_uniform_loss and config.floor_weight > 0,
    }
    return [name for name in SOURCE_ORDER if on[name]]


def trivial(gan, features, labels) -> Negatives:
    """REM's trivial OOD pairs <f_hat, c_hat> (Sec. 4.1): the batch box of Eqs. 4-5 with random
    labels, or a Table 3 arm (``trivial_sampling``: per-class Gaussians, whole or their tails)."""
    cfg = gan.gan_config
    batch = ops.shape(features)[0]
    random_labels = rem.random_labels(batch, gan.num_classes, gan.seed_generator)
    if cfg.trivial_sampling == "uniform":
        points = rem.sample_uniform_box(features, batch, gan.seed_generator)
    elif cfg.trivial_sampling == "gaussian_tail":
        # Table 3's Gaussian arm as the paper words it: "the low density area of each category is
        # treated as OOD region", labelled with that category.
        points = rem.sample_gaussian_tail(random_labels, gan.statistics, cfg.shell_radius, gan.seed_generator)
    else:
        points = rem.sample_class_gaussian(random_labels, gan.statistics.means, gan.statistics.stds,
                                           gan.seed_generator)
    return Negatives("trivial", points, random_labels, cfg.lambda_c, "l_u")


def shuffle_labels(labels, num_classes: int, seed):
    """The shuffle function T of Eq. 8: a label that is never the true one.

    Adding an offset drawn from {1, ..., K-1} modulo K gives every wrong label the same
    probability and can never return c itself.
    """
    labels = ops.cast(labels, "int32")
    offset = keras.random.randint(ops.shape(labels), 1, num_classes, seed=seed, dtype="int32")
    return (labels + offset) % num_classes


def shuffled(gan, features, labels) -> Negatives:
    """L_s's negative pairs <f, T(c)> (Eq. 8): real features with a wrong label."""
    return Negatives("shuffled", features, shuffle_labels(labels, gan.num_classes, gan.seed_generator), 1.0, "l_s")


def generated_latents(gan, batch):
    """z and c of G(z, c) for this batch: L_t's generated pairs and the start of the hard ones."""
    z = keras.random.normal((batch, gan.latent_dim), seed=gan.seed_generator)
    return z, rem.random_labels(batch, gan.num_classes, gan.seed_generator)


def hard(gan, z, g_labels) -> Negatives:
    """RSM's hard OOD pairs <G(z', c), c>, z' the FGSM step on the latent with a Gaussian step size
    per sample (Eqs. 6-7)."""
    cfg = gan.gan_config
    eps = generator.sample_epsilon(ops.shape(z)[0], cfg.epsilon_mean, cfg.epsilon_std, cfg.epsilon_min,
                                   cfg.epsilon_max, gan.seed_generator)
    z_adv = generator.fgsm_latent(gan.generator, gan.discriminator, z, g_labels, eps)
    return Negatives("hard", gan.generator([z_adv, g_labels], training=False), g_labels, cfg.hard_weight, "l_u")


def ladder(gan, features, labels) -> Negatives:
    """References of the ladder for the batch's classes: N(mu_c, s^2 Sigma), s in ``ladder_scales``
    (``rem.sample_gaussian_ladder``); their density is ``gan.gaussians``' closed form."""
    cfg = gan.gan_config
    points = rem.sample_gaussian_ladder(labels, gan.gaussians, cfg.ladder_scales, gan.seed_generator)
    return Negatives("ladder", points, labels, cfg.ladder_weight, "l_u")


def floor(gan, features, labels) -> Negatives:
    """References inward of the data: the batch's features shrunk toward the floor, own labels
    (``rem.sample_toward_floor``)."""
    cfg = gan.gan_config
    points = rem.sample_toward_floor(features, gan.gaussians.floor, cfg.floor_shrink, gan.seed_generator)
    return Negatives("floor", points, labels, cfg.floor_weight, "l_u")


def pool_trivial_and_hard(scored: list[tuple[Negatives, typing.Any]], lambda_c: float):
    """``pool_hard_with_trivial``: the trivial and hard pairs as one expectation over P_u weighted
    lambda_c (Eq. 9 as Algorithm 1 line 7 samples them), in place of their two terms."""
    by_name = {negatives.name: (negatives, logits) for negatives, logits in scored}
    pooled = Negatives("trivial+hard", None, None, lambda_c, "l_u")
    logits = ops.concatenate([by_name["trivial"][1], by_name["hard"][1]], axis=0)
    out, placed = [], False
    for negatives, source_logits in scored:
        if negatives.name in ("trivial", "hard"):
            if not placed:
                out.append((pooled, logits))
                placed = True
            continue
        out.append((negatives, source_logits))
    return out
