"""Features at several depths (``features.depths``): which layers, how they are cached and read,
and the multi-depth baselines."""

import numpy as np
import pytest

from bal_tf import baselines
from bal_tf.backbones import build_classifier, depth_layers, depth_sizes, feature_model
from bal_tf.config import BackboneConfig, get_preset
from bal_tf.errors import ConfigError, InputError
from bal_tf.features import FeatureSet


@pytest.mark.parametrize("arch, names", [
    # a ResNet's stages but its last, whose pooled output is the penultimate feature itself
    ("resnet18", ["stage1_block2_out", "stage2_block2_out", "stage3_block2_out"]),
    # the last layer at each spatial size of a plain CNN: 28x28, 14x14, 7x7
    ("cnn", ["block1_conv2", "block2_conv2", "block2_dropout"]),
])
def test_depth_layers_are_the_last_layer_at_each_spatial_size(arch, names):
    model = build_classifier(BackboneConfig(arch, 0.25), (28, 28, 1), 10)
    assert [layer.name for layer in depth_layers(model)] == names
    sizes = depth_sizes(model)
    images = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype(np.float32)
    stages, logits = feature_model(model, depths="stages")(images)
    penultimate, same_logits = feature_model(model)(images)
    assert stages.shape == (3, sum(sizes))
    np.testing.assert_allclose(np.asarray(stages)[:, :sizes[0]], penultimate, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, same_logits, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="penultimate"):
        feature_model(model, depths="every")


def test_feature_sets_keep_their_layout_through_the_cache_file(tmp_path):
    rng = np.random.default_rng(1)
    full = FeatureSet(rng.normal(size=(5, 7)).astype(np.float32), np.zeros((5, 3), np.float32),
                      np.arange(5), layout=(4, 2, 1))
    full.save(tmp_path / "x.npz")
    loaded = FeatureSet.load(tmp_path / "x.npz")
    assert loaded.layout == (4, 2, 1) and [b.shape[1] for b in loaded.blocks()] == [4, 2, 1]
    assert loaded.at("penultimate").features.shape == (5, 4) and loaded.at("stages") is loaded
    np.testing.assert_array_equal(loaded.at("penultimate").features, full.features[:, :4])
    with pytest.raises(InputError, match="layout"):
        FeatureSet(full.features, full.logits, full.labels, layout=(4, 2))


def test_depth_mahalanobis_standardizes_each_depth_on_held_out_data():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 400)
    # the second depth's scale is 100x the first's: standardized, it cannot drown the first
    blocks = [rng.normal(size=(400, 3)) + labels[:, None], 100 * rng.normal(size=(400, 2))]
    held_out = [rng.normal(size=(200, 3)), 100 * rng.normal(size=(200, 2))]
    fitted = baselines.DepthMahalanobis.fit(blocks, labels, 2, held_out)
    scores = np.stack([(part.score(b) - m) / s for part, b, m, s in zip(fitted.parts, held_out, fitted.means,
                                                                        fitted.stds)])
    np.testing.assert_allclose(scores.mean(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(scores.std(axis=1), 1, atol=1e-9)
    np.testing.assert_allclose(fitted.score(held_out), scores.sum(axis=0))
    unit = baselines.concatenated_unit_blocks(blocks)
    np.testing.assert_allclose(np.linalg.norm(unit[:, :3], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(unit[:, 3:], axis=1), 1, rtol=1e-5)


def test_the_depths_are_a_config_choice_saved_with_the_run():
    config = get_preset("mnist-cpu")
    assert config.features.depths == "stages"  # the default since issue 37's round 3
    assert config.with_overrides(["features.depths=penultimate"]).features.depths == "penultimate"  # the paper's h(x)
    with pytest.raises(ConfigError, match="stages"):
        config.with_overrides(["features.depths=all"])
