"""The validation protocol never reads the ID test split or a test OOD set."""

import numpy as np
import pytest

from bal_tf import validation
from bal_tf.config import get_preset
from bal_tf.data import HELD_OUT_CLASSES_VALIDATION, load_id_split, load_ood_set, to_numpy


def test_corruptions_keep_shape_and_dtype_and_change_the_images():
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), np.uint8)
    for family in validation.IMAGE_FAMILIES:
        made = validation.validation_images(family, images)
        assert made.shape == images.shape and made.dtype == np.uint8, family
        assert not np.array_equal(made, images), family
    np.testing.assert_array_equal(validation.validation_images("invert", images), 255 - images)
    np.testing.assert_array_equal(validation.validation_images("rotate90", images)[0, :, :, 0],
                                  np.rot90(images[0, :, :, 0]))


def test_near_ood_proxies_mix_two_held_out_images():
    from bal_tf import selection

    images = np.stack([np.full((28, 28, 1), 10 * i, np.uint8) for i in range(6)])
    blended = selection.synthetic_images("image_blend", images, seed=0)
    swapped = selection.synthetic_images("half_swap", images, seed=0)
    partners = images[np.random.default_rng(0).permutation(6)]
    np.testing.assert_array_equal(blended, ((images.astype(int) + partners) / 2).round().astype(np.uint8))
    np.testing.assert_array_equal(swapped[:, :14], images[:, :14])  # the top half is the image's own
    np.testing.assert_array_equal(swapped[:, 14:], partners[:, 14:])  # the bottom half its partner's


def test_held_out_classes_validation_comes_from_the_training_splits_held_out_part(provisioned_data_dir):
    config = get_preset("mnist-4to9-cpu").with_overrides([f"data.data_dir={provisioned_data_dir}"])
    assert config.data.id_classes == [4, 5, 6, 7, 8, 9]
    images, labels = to_numpy(load_ood_set(HELD_OUT_CLASSES_VALIDATION, config.data))
    all_config = get_preset("mnist-cpu").with_overrides([f"data.data_dir={provisioned_data_dir}"])
    holdout_images, holdout_labels = to_numpy(load_id_split(all_config.data, "train[90%:]"))
    np.testing.assert_array_equal(images, holdout_images[holdout_labels < 4])  # classes 0-3, in order
    assert set(labels.tolist()) == {-1}


def test_validation_reads_no_test_data(tiny_run, monkeypatch):
    """Every dataset the validation protocol loads is a part of the ID training split."""
    from bal_tf.data import datasets
    from bal_tf.evaluation import MethodScorer
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir

    loaded = []
    original = datasets.load_dataset

    def recording(name, split="test", **kwargs):
        loaded.append((name, split))
        return original(name, split, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", recording)
    run = RunDir(tiny_run)
    config = run.load_config()
    features = RunFeatures(config, run, progress=False)
    features.cache.writable = False  # read the session's run, write nothing into it
    sets = validation.validation_sets(features)
    assert set(sets.ood) == set(validation.DEFAULT_FAMILIES)
    assert loaded and all(name == "mnist" and split.startswith("train[") for name, split in loaded), loaded
    scorer = MethodScorer(run, features.split("train"), features.classifier)
    per_method = validation.baseline_metrics(scorer, sets)
    from bal_tf.evaluation import load_discriminator

    per_method["bal"] = validation.bal_metrics(load_discriminator(run.bal_dir / "discriminator_selected.keras"), sets)
    assert all(0.0 <= v["auroc"] <= 1.0 for m in per_method.values() for v in m.values())
    ranks = validation.ranks(per_method)
    for family in sets.ood:
        assert sorted(r[family] for r in ranks.values()) == list(range(1, len(per_method) + 1))


def test_held_out_classes_validation_needs_a_partial_run():
    with pytest.raises(Exception, match="needs a run trained on some classes only"):
        load_ood_set(HELD_OUT_CLASSES_VALIDATION, get_preset("mnist-cpu").data)


def test_validation_images_are_not_checkpoint_selections(tiny_run):
    from bal_tf import selection
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir

    run = RunDir(tiny_run)
    features = RunFeatures(run.load_config(), run, progress=False)
    features.cache.writable = False
    held_out = features.holdout_images()
    for family in ("pixel_permutation", "patch_shuffle", "noise_blobs"):
        chosen = selection.synthetic_images(family, held_out[:selection.SYNTHETIC_IMAGES_PER_FAMILY], seed=0)
        validated = validation.validation_images(family, held_out[-validation.IMAGES_PER_FAMILY:],
                                                 seed=validation.VALIDATION_SEED_OFFSET)
        assert not np.array_equal(chosen, validated), family


def test_ensemble_members_follow_the_selection_criterion_or_the_last_epochs():
    from bal_tf.errors import ConfigError

    history = [{"selection_criterion": c} for c in [0.1, 0.5, 0.3, 0.9, 0.2]]
    assert validation.ensemble_members(history, "top2") == [2, 4]
    assert validation.ensemble_members(history, "top1") == [4]  # = checkpoint selection's epoch
    assert validation.ensemble_members(history, "last2") == [4, 5]
    assert validation.ensemble_members(history, "last9") == [1, 2, 3, 4, 5]
    assert validation.ensemble_members(history, "all") == [1, 2, 3, 4, 5]
    with pytest.raises(ConfigError, match="Unknown ensemble rule 'best'"):
        validation.ensemble_members(history, "best")


def test_rules_with_families_rank_epochs_by_those_families_only():
    from bal_tf.errors import ConfigError

    # Epoch 2 wins on the far family, epoch 3 on the near proxies; the criterion says epoch 1.
    history = [{"selection_criterion": 0.99, "selection_noise_blobs": 0.90, "selection_image_blend": 0.60,
                "selection_half_swap": 0.50},
               {"selection_criterion": 0.50, "selection_noise_blobs": 0.99, "selection_image_blend": 0.70,
                "selection_half_swap": 0.60},
               {"selection_criterion": 0.40, "selection_noise_blobs": 0.80, "selection_image_blend": 0.90,
                "selection_half_swap": 0.80}]
    assert validation.ensemble_members(history, "top1") == [1]
    assert validation.ensemble_members(history, "top1:noise_blobs") == [2]
    assert validation.ensemble_members(history, "top1:near") == [3]  # the group: image_blend + half_swap
    assert validation.ensemble_members(history, "top1:noise_blobs+image_blend") == [3]  # means 0.75, 0.845, 0.85
    assert validation.ensemble_members(history, "top2:noise_blobs+near") == [2, 3]
    assert validation.rule_families("top1:default+near")[-2:] == ["image_blend", "half_swap"]
    assert len(validation.rule_families("top1:image+image")) == 3  # no family counted twice
    with pytest.raises(ConfigError, match="did not score: \\['rotate90'\\]"):
        validation.ensemble_members(history, "top1:rotate90")


def test_ensemble_scores_p1_times_the_sigmoid_of_the_mean_logit():
    from bal_tf import metrics
    from bal_tf.features import FeatureSet

    rng = np.random.default_rng(0)

    def feature_set(n):
        return FeatureSet(rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 3)).astype("float32"),
                          np.full(n, -1))

    sets = validation.ValidationSets(feature_set(50), {"a": feature_set(40)})
    epochs = [{"id": rng.normal(1, 1, 50), "a": rng.normal(0, 1, 40)} for _ in range(3)]

    def expected(members, name, feature_set):
        logits = feature_set.logits
        log_p1 = np.log(np.exp(logits - logits.max(1, keepdims=True)).max(1) / np.exp(logits - logits.max(1, keepdims=True)).sum(1))
        mean = np.mean([epochs[e - 1][name] for e in members], axis=0)
        return log_p1 - np.log1p(np.exp(-mean))

    for members in ([2], [1, 3], [1, 2, 3]):
        got = validation.ensemble_metrics(epochs, members, sets)["a"]
        want = metrics.ood_metrics(expected(members, "id", sets.id), expected(members, "a", sets.ood["a"]))
        assert got["auroc"] == pytest.approx(float(want["auroc"]), abs=1e-6)
        assert got["fpr95"] == pytest.approx(float(want["fpr95"]), abs=1e-6)
    assert (validation.ensemble_metrics(epochs, [1], sets)["a"]["auroc"]
            != validation.ensemble_metrics(epochs, [1, 2, 3], sets)["a"]["auroc"])  # the members matter
