"""The validation protocol: the data every design choice and every default is decided on.

Nothing here reads the ID test split or a test OOD set (Fashion-MNIST or MNIST as OOD, the
held-out-class test protocols, evaluate.py's noise sets). The ID side is the held-out part of
the ID *training* split (``RUN/features/holdout.npz``, never trained on). The OOD side:

| family | made from | kind | the test cell it resembles |
|---|---|---|---|
| ``pixel_permutation``, ``patch_shuffle`` | held-out ID images, corrupted (also checkpoint selection's families) | far / mid | none |
| ``noise_blobs`` | blurred uniform noise (also a selection family) | far | **uniform noise: that test cell is a seen one** |
| ``rotate90`` | held-out ID images turned a quarter | near: the same strokes, another shape | none |
| ``invert`` | held-out ID images, 255 - x | far: the intensity histogram reversed | none |
| ``held_out_classes_validation`` | the classes outside ``data.id_classes``, from the held-out part of the training split (a run trained on a validation partition, e.g. ``mnist-4to9-cpu``) | near | the held-out-class test protocols use another partition (0-5 vs 6-9) and the test split |

The ID side is shared with checkpoint selection (both use the held-out part); the corrupted
images are not: validation corrupts the last 2,000 held-out images with another seed, selection
the first 2,000. Every method of evaluate.py that works on features is scored (ODIN needs input gradients and is
left out), so a sweep shows where BAL ranks on validation data, never on test data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bal_tf import metrics, scoring, selection
from bal_tf.data import HELD_OUT_CLASSES_VALIDATION
from bal_tf.errors import ConfigError
from bal_tf.features import FeatureSet

IMAGES_PER_FAMILY = 2000
VALIDATION_SEED_OFFSET = 7919


def rotate90(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(images, k=1, axes=(1, 2)))


def invert(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (255 - images.astype(np.int16)).astype(np.uint8)


CORRUPTIONS = {**selection.CORRUPTIONS, "rotate90": rotate90, "invert": invert}
IMAGE_FAMILIES = tuple(CORRUPTIONS)
# Families that nearly copy a test OOD set: a test cell of that set is a seen one.
SEEN_TEST_CELLS = {"noise_blobs": "uniform_noise"}
DEFAULT_FAMILIES = ("pixel_permutation", "patch_shuffle", "noise_blobs", "rotate90", "invert")


@dataclasses.dataclass
class ValidationSets:
    """Held-out ID features and the features of each validation OOD family."""

    id: FeatureSet
    ood: dict[str, FeatureSet]


def validation_images(family: str, images: np.ndarray, seed: int = 0) -> np.ndarray:
    if family not in CORRUPTIONS:
        raise ConfigError(f"Unknown validation image family {family!r}. Known: {list(CORRUPTIONS)}")
    return CORRUPTIONS[family](np.asarray(images, np.uint8), np.random.default_rng(seed))


def default_families(config) -> list[str]:
    """The image families, plus held-out classes for a run trained on some classes only."""
    families = list(DEFAULT_FAMILIES)
    if config.data.id_classes is not None:
        families.append(HELD_OUT_CLASSES_VALIDATION)
    return families


def validation_sets(features, families=None, seed: int = 0) -> ValidationSets:
    """The validation data of a run (``features``: its ``bal_tf.features.RunFeatures``), its
    features cached in ``RUN/features/validation_*.npz``."""
    import tensorflow as tf

    from bal_tf.data import load_ood_set

    config = features.config
    families = list(families or default_families(config))
    holdout = features.split("holdout", depths="stages")
    if len(holdout) == 0:
        raise ConfigError("The validation protocol needs held-out ID data: data.holdout_percent is 0.")
    # Not checkpoint selection's images: selection corrupts the first 2,000 held-out images with
    # the run's seed; validation the last 2,000 (disjoint when the held-out part has >= 4,000,
    # e.g. MNIST's 6,000) with another seed.
    images = features.holdout_images()[-IMAGES_PER_FAMILY:]
    seed = seed + VALIDATION_SEED_OFFSET
    ood = {}
    for family in families:
        if family == HELD_OUT_CLASSES_VALIDATION:
            ood[family] = features.ood(family, lambda: load_ood_set(family, config.data), depths="stages")
            continue

        def corrupted(family=family):
            made = validation_images(family, images, seed)
            return tf.data.Dataset.from_tensor_slices((made, np.full(len(made), -1, np.int64)))

        ood[family] = features.cached(f"validation_{family}", corrupted, depths="stages")
    return ValidationSets(holdout, ood)


def _metrics(id_scores, ood_scores) -> dict:
    values = metrics.ood_metrics(id_scores, ood_scores)
    return {"auroc": float(values["auroc"]), "fpr95": float(values["fpr95"])}


def bal_metrics(discriminator, sets: ValidationSets, score: str = "log_score",
                depths: str = "penultimate") -> dict[str, dict]:
    """AUROC / FPR95 of BAL's p1 * p2 (Eq. 2; ``score="log_score"``), held-out ID vs each family,
    on the features at ``depths`` (the run's ``features.depths``). ``score="d_logit"``: D's p2 alone
    (a diagnostic, never BAL's reported score)."""
    def scores(feature_set):
        feature_set = feature_set.at(depths)
        return scoring.score_features(discriminator, feature_set.features, feature_set.logits)[score]

    id_scores = scores(sets.id)
    return {family: _metrics(id_scores, scores(ood)) for family, ood in sets.ood.items()}


def baseline_metrics(scorer, sets: ValidationSets) -> dict[str, dict[str, dict]]:
    """``{method: {family: metrics}}`` for the feature-based baselines of ``scorer``
    (``bal_tf.evaluation.MethodScorer``, fitted on the training features)."""
    id_scores = scorer.baseline_scores(sets.id)
    per_family = {family: scorer.baseline_scores(ood) for family, ood in sets.ood.items()}
    return {method: {family: _metrics(id_scores[method], scores[method]) for family, scores in per_family.items()}
            for method in id_scores}


def ranks(per_method: dict[str, dict[str, dict]], metric: str = "auroc") -> dict[str, dict[str, int]]:
    """``{method: {family: rank}}`` (1 = best AUROC) among the given methods."""
    families = next(iter(per_method.values())).keys()
    out = {method: {} for method in per_method}
    for family in families:
        order = sorted(per_method, key=lambda m: -per_method[m][family][metric])
        for rank, method in enumerate(order, start=1):
            out[method][family] = rank
    return out
