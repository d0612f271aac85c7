"""Held-out-class protocols: train on some classes of a dataset, the others are the OOD set."""

import numpy as np
import pytest

from bal_tf import pipeline
from bal_tf.config import get_preset
from bal_tf.data import load_id_split, load_ood_set, to_numpy
from bal_tf.errors import InputError
from bal_tf.features import FeatureSet
from tests.tiny import PLAIN_CNN, tiny_settings


def test_id_split_keeps_and_relabels_the_id_classes(provisioned_data_dir):
    config = get_preset("mnist-0to5-cpu").with_overrides([f"data.data_dir={provisioned_data_dir}",
                                                          "data.id_classes=[3, 5]"])
    images, labels = to_numpy(load_id_split(config.data, "test"))
    raw_images, raw_labels = to_numpy(load_id_split(get_preset("mnist-cpu").with_overrides(
        [f"data.data_dir={provisioned_data_dir}"]).data, "test"))
    assert sorted(set(labels.tolist())) == [0, 1]
    assert len(labels) == np.sum(raw_labels == 3) + np.sum(raw_labels == 5)
    np.testing.assert_array_equal(images, raw_images[(raw_labels == 3) | (raw_labels == 5)])
    ood_images, ood_labels = to_numpy(load_ood_set("held_out_classes", config.data))
    assert len(ood_labels) == len(raw_labels) - len(labels) and set(ood_labels.tolist()) == {-1}


def test_held_out_classes_need_a_partial_run_and_valid_classes(provisioned_data_dir):
    with pytest.raises(InputError, match="needs a run trained on some classes only"):
        load_ood_set("held_out_classes", get_preset("mnist-cpu").data)
    bad = get_preset("mnist-0to5-cpu").with_overrides(["data.id_classes=[1, 12]"])
    with pytest.raises(InputError, match="distinct labels in 0..9"):
        load_id_split(bad.data, "test")


def test_mnist_0_to_5_run_and_its_protocol_with_a_two_dimensional_feature_layer(provisioned_data_dir, tmp_path):
    """A held-out-class run (6 classes) whose penultimate layer has 2 units: the protocol's table,
    and the confidence maps a 2-D feature layer gets (Figures 4-5) beside the ROC / histogram plots."""
    import json

    import evaluate

    run_dir = tmp_path / "run"
    args = ["--preset", "mnist-0to5-cpu", "--quiet", "--data-dir", provisioned_data_dir, "--run-dir", str(run_dir),
            *tiny_settings("classifier.epochs=1", "gan.epochs=1", "backbone.feature_dim=2", PLAIN_CNN,
                           "features.depths=penultimate")]  # D over the 2-d h(x) alone, as in Figures 4-5
    assert pipeline.main(args) == 0
    assert evaluate.main(["--run", str(run_dir), "--protocol", "heldout-mnist", "--limit", "300", "--quiet",
                          "--no-odin"]) == 0
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert {row["ood"] for row in results["rows"]} == {"held_out_classes"}
    features = np.load(run_dir / "features" / "train.npz", allow_pickle=False)
    assert features["logits"].shape[1] == 6 and set(features["labels"].tolist()) <= set(range(6))
    assert FeatureSet.load(run_dir / "features" / "train.npz").at("penultimate").features.shape[1] == 2
    for name in ["confidence_map_bal.png", "confidence_map_max_softmax.png", "roc_held_out_classes.png",
                 "hist_held_out_classes.png"]:
        assert (run_dir / "eval" / name).stat().st_size > 10_000, name
    assert list((run_dir / "logs" / "eval").glob("events.out.tfevents*"))
