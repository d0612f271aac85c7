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
    scorer = MethodScorer(run, features.split("train", depths="stages"), features.classifier, holdout=sets.id)
    per_method = validation.baseline_metrics(scorer, sets)
    assert {"mahalanobis_depths", "knn_depths"} <= set(per_method)  # the ResNet has depths below h(x)
    from bal_tf.evaluation import load_discriminator

    per_method["bal"] = validation.bal_metrics(load_discriminator(run.bal_dir / "discriminator_selected.keras"), sets,
                                               depths=config.features.depths)
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


