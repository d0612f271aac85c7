"""Checkpoint selection without real OOD data.

The GAN's equilibrium erodes D's OOD signal (docs/DESIGN.md): the last epoch is often not the
best. Each epoch, held-out ID data (never trained on by the classifier or the GAN) is compared
with several synthetic OOD families, and the epoch with the best mean AUROC is kept:

* image-space corruptions of held-out ID images, scored with the full p1 * p2:
  ``pixel_permutation`` (every pixel moved: the intensity histogram survives, the shape not),
  ``patch_shuffle`` (a 4x4 grid of patches shuffled: local strokes survive, layout not),
  ``noise_blobs`` (blurred uniform noise stretched to [0, 255]: smooth blobs, no strokes);
* feature-space samples, scored with p2 = D(f, c):
  ``uniform_features`` (the batch box of Eqs. 4-5 over held-out features, BAL's own sampler),
  ``perturbed_features`` (held-out features plus Gaussian noise of one per-dimension standard
  deviation: near-manifold negatives, like RSM's but from a fixed distribution) and
  ``hard_features`` (the current G(z', c) of Eq. 7). ``hard_features`` gets harder as G
  improves, which biases the criterion towards early epochs; it is not a default family.

Several families are used because one family alone picked checkpoints that did not carry over
to other OOD types in the feasibility run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bal_tf import metrics, negatives, rem, scoring
from bal_tf.errors import ConfigError

IMAGE_FAMILIES = ("pixel_permutation", "patch_shuffle", "noise_blobs")
FEATURE_FAMILIES = ("uniform_features", "perturbed_features", "hard_features")


def pixel_permutation(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = images.reshape(len(images), -1, images.shape[-1]).copy()
    for row in flat:
        rng.shuffle(row)  # permutes the pixel positions of one image
    return flat.reshape(images.shape)


def patch_shuffle(images: np.ndarray, rng: np.random.Generator, grid: int = 4) -> np.ndarray:
    n, height, width, channels = images.shape
    ph, pw = height // grid, width // grid
    cropped = images[:, : ph * grid, : pw * grid]
    patches = cropped.reshape(n, grid, ph, grid, pw, channels).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(n, grid * grid, ph, pw, channels)
    for i in range(n):
        patches[i] = patches[i][rng.permutation(grid * grid)]
    out = images.copy()
    out[:, : ph * grid, : pw * grid] = (
        patches.reshape(n, grid, grid, ph, pw, channels).transpose(0, 1, 3, 2, 4, 5)
        .reshape(n, ph * grid, pw * grid, channels)
    )
    return out


def noise_blobs(images: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise = rng.uniform(0, 1, images.shape)
    blurred = gaussian_filter(noise, sigma=(0, sigma, sigma, 0))
    low = blurred.min(axis=(1, 2, 3), keepdims=True)
    high = blurred.max(axis=(1, 2, 3), keepdims=True)
    return np.round(255 * (blurred - low) / np.maximum(high - low, 1e-8)).astype(np.uint8)


CORRUPTIONS = {"pixel_permutation": pixel_permutation, "patch_shuffle": patch_shuffle,
               "noise_blobs": noise_blobs}


def synthetic_images(family: str, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Synthetic OOD images made from held-out ID images (uint8, same shape)."""
    if family not in CORRUPTIONS:
        raise ConfigError(f"Unknown synthetic image family {family!r}. Known: {list(CORRUPTIONS)}")
    return CORRUPTIONS[family](np.asarray(images, np.uint8), np.random.default_rng(seed))


@dataclasses.dataclass
class SelectionData:
    """Held-out ID features and the synthetic OOD features of the image families."""

    id_features: np.ndarray
    id_logits: np.ndarray
    image_families: dict  # family -> (features, logits)
    batch_size: int = 128


SYNTHETIC_IMAGES_PER_FAMILY = 2000


def build_selection_data(holdout, holdout_images: np.ndarray | None, families, batch_size: int,
                         features_of_images, seed: int = 0) -> SelectionData | None:
    """The one way selection data is made: held-out ID features, plus the features of each image
    family's corruptions of (at most 2,000 of) the held-out images.

    Args:
        holdout: the held-out ID ``FeatureSet``; ``None`` or empty means no selection (``None``).
        holdout_images: the images behind ``holdout`` (``None``: the image families are skipped).
        families: the configured synthetic families.
        features_of_images: ``(family, uint8 images) -> FeatureSet`` (a feature cache, or plain
            extraction).
    """
    if holdout is None or len(holdout) == 0:
        return None
    image_families = {}
    if holdout_images is not None:
        images = holdout_images[:SYNTHETIC_IMAGES_PER_FAMILY]
        for family in families:
            if family in IMAGE_FAMILIES:
                extracted = features_of_images(family, synthetic_images(family, images, seed=seed))
                image_families[family] = (extracted.features, extracted.logits)
    return SelectionData(holdout.features, holdout.logits, image_families, batch_size)


def usable_families(families, data: SelectionData | None) -> list[str]:
    """The configured families that ``data`` can score (image families need their features)."""
    if data is None:
        return list(families)
    return [f for f in families if f in FEATURE_FAMILIES or f in data.image_families]


def uniform_box_samples(features: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Batch-wise box samples (Eqs. 4-5) over consecutive batches of ``features``."""
    out = []
    for i in range(0, len(features), batch_size):
        batch = features[i : i + batch_size]
        low, high = batch.min(axis=0), batch.max(axis=0)
        out.append(low + rng.uniform(size=batch.shape).astype(np.float32) * (high - low))
    return np.concatenate(out)


def selection_scores(gan, data: SelectionData, families, seed: int = 0):
    """Per-family AUROC of held-out ID vs synthetic OOD, and the D outputs behind them.

    Image families are scored with p1 * p2 (Eq. 2), feature families with p2 alone. p2's logit is
    read off D as ``bal_tf.density_ratio`` says (D's logit plus beta log q, calibrated on the
    held-out ID features); with ``p2_target="blend"`` every beta of the grid is scored and the
    best mean AUROC is kept, so the epoch and beta are chosen together, on synthetic data only.

    Returns:
        ``(aurocs, d_values, reading)``: AUROC per family, p2 per feature kind (for TensorBoard
        histograms) and the ``density_ratio.P2Reading`` they were scored with.
    """
    from bal_tf import density_ratio

    rng = np.random.default_rng(seed)
    cfg = gan.gan_config
    discriminator = gan.scoring_discriminator
    gaussians = getattr(gan, "gaussians", None) if cfg.p2_target != "ratio" else None

    def log_q(features, labels):
        if gaussians is None:
            return np.zeros(len(features), np.float32)
        return np.asarray(rem.ladder_log_density(gaussians.whitened_distances(features, labels), gaussians.rank,
                                                 cfg.ladder_scales))

    def scored(features, labels):
        labels = np.asarray(labels)
        return scoring.discriminator_logits(discriminator, features, labels), log_q(features, labels)

    id_predicted, id_log_p1 = (np.asarray(v) for v in scoring.predicted_class_and_log_p1(
        np.asarray(data.id_logits, np.float32)))
    id_raw = scored(data.id_features, id_predicted)
    # Each family: (is an image family, OOD log p1 or None, OOD (logit, log q)).
    pairs = {}
    for family in families:
        if family in IMAGE_FAMILIES:
            features, logits = data.image_families[family]
            predicted, log_p1 = (np.asarray(v) for v in scoring.predicted_class_and_log_p1(
                np.asarray(logits, np.float32)))
            pairs[family] = (log_p1, scored(features, predicted))
        elif family == "uniform_features":
            samples = uniform_box_samples(data.id_features, data.batch_size, rng)
            pairs[family] = (None, scored(samples, rng.integers(0, gan.num_classes, len(samples))))
        elif family == "perturbed_features":
            scale = data.id_features.std(axis=0, keepdims=True)
            samples = (data.id_features + scale * rng.normal(size=data.id_features.shape)).astype(np.float32)
            pairs[family] = (None, scored(samples, id_predicted))
        elif family == "hard_features":
            z, labels = negatives.generated_latents(gan, len(data.id_features))
            hard = np.asarray(negatives.hard(gan, z, labels).features)
            pairs[family] = (None, scored(hard, np.asarray(labels)))
        else:
            raise ConfigError(
                f"Unknown synthetic family {family!r}. Known: {list(IMAGE_FAMILIES + FEATURE_FAMILIES)}"
            )
    best = None
    for beta in density_ratio.betas(cfg.p2_target):
        reading = density_ratio.calibrated(beta, *id_raw, cfg.p2_calibration)
        id_z = reading.apply(*id_raw)
        id_log_score = np.asarray(scoring.outputs(id_log_p1, id_z)["log_score"])
        aurocs, d_values = {}, {"held_out_id": _sigmoid(id_z)}
        for family, (log_p1, raw) in pairs.items():
            z = reading.apply(*raw)
            if log_p1 is None:  # a feature family: p2 alone
                aurocs[family] = metrics.auroc(id_z, z)
            else:
                aurocs[family] = metrics.auroc(id_log_score, np.asarray(scoring.outputs(log_p1, z)["log_score"]))
            d_values[family] = _sigmoid(z)
        criterion = float(np.mean(list(aurocs.values()))) if aurocs else 0.0
        if best is None or criterion > best[0]:
            best = (criterion, aurocs, d_values, reading)
    return best[1], best[2], best[3]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))
