import keras
import numpy as np
import pytest

from bal_tf.backbones import build_classifier, feature_model
from bal_tf.config import BackboneConfig
from bal_tf.errors import ConfigError, InputError


@pytest.mark.parametrize(
    "arch,shape,expected_params",
    [
        ("resnet18", (32, 32, 3), 11.18e6),  # the CIFAR ResNet-18 figure everyone quotes
        ("resnet18", (28, 28, 1), 11.18e6),
        ("resnet34", (32, 32, 3), 21.30e6),
        ("densenet", (32, 32, 3), 0.79e6),  # DenseNet-BC-100, k=12: "0.8M"
        # plain CNN: convs 320 + 9,248 + 18,496 + 36,928, Dense 3,136 -> 128: 401,536, head 1,290
        ("cnn", (28, 28, 1), 467_818),
    ],
)
def test_full_size_parameter_counts(arch, shape, expected_params):
    model = build_classifier(BackboneConfig(arch, 1.0), shape, 10)
    assert model.count_params() == pytest.approx(expected_params, rel=0.01)


def test_plain_cnn_features_are_its_relu_dense_layer():
    model = build_classifier(BackboneConfig("cnn", 0.5), (28, 28, 1), 6)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype(np.float32)
    features, logits = feature_model(model)(images)
    assert features.shape == (4, 64) and logits.shape == (4, 6)
    assert float(np.min(features)) >= 0.0  # after ReLU: generator_output "auto" picks relu
    np.testing.assert_allclose(logits, model(images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch,feature_size", [("resnet18", 128), ("resnet34", 128), ("densenet", 171)])
def test_quarter_and_half_width_output_shapes(arch, feature_size):
    width = 0.5 if arch == "densenet" else 0.25
    shape = (32, 32, 3)
    model = build_classifier(BackboneConfig(arch, width), shape, 7)
    features, logits = feature_model(model)(np.zeros((2, *shape), np.float32))
    assert features.shape == (2, feature_size) and logits.shape == (2, 7)


def test_extra_feature_layer_sets_the_penultimate_size():
    model = build_classifier(BackboneConfig("resnet18", 0.125, feature_dim=2), (28, 28, 1), 10)
    features, logits = feature_model(model)(np.zeros((3, 28, 28, 1), np.float32))
    assert features.shape == (3, 2) and logits.shape == (3, 10)
    np.testing.assert_allclose(logits, model(np.zeros((3, 28, 28, 1), np.float32)), atol=1e-6)


def test_user_softmax_classifier_gives_logits_and_named_layer():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="relu", name="penultimate")(inputs)
    probs = keras.layers.Dense(3, activation="softmax")(hidden)
    user_model = keras.Model(inputs, probs)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    features, logits = feature_model(user_model)(x)
    np.testing.assert_allclose(keras.ops.softmax(logits), user_model(x), atol=1e-6)
    named, _ = feature_model(user_model, "penultimate")(x)
    np.testing.assert_allclose(named, features)
    with pytest.raises(InputError, match="no layer named 'nope'"):
        feature_model(user_model, "nope")


def test_unknown_arch():
    with pytest.raises(ConfigError, match=r"BackboneConfig.arch must be one of \['resnet18', 'resnet34', 'densenet', 'cnn'\]"):
        build_classifier(BackboneConfig("vgg"), (28, 28, 1), 10)


def test_densenet_depth_is_configurable_and_checked():
    from bal_tf.config import get_preset

    shallow = build_classifier(BackboneConfig("densenet", 0.25, densenet_depth=16), (32, 32, 3), 10)
    full = build_classifier(BackboneConfig("densenet", 0.25), (32, 32, 3), 10)
    convs = lambda model: sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)  # noqa: E731
    assert convs(shallow) == 1 + 3 * 2 * 2 + 2 and convs(full) == 1 + 3 * 16 * 2 + 2  # stem, blocks, transitions
    with pytest.raises(ConfigError, match="densenet_depth must be 6n \\+ 4"):
        get_preset("cifar10-densenet-cpu").with_overrides(["backbone.densenet_depth=17"])


def test_batchnorm_momentum_reaches_every_bn_layer_and_its_saved_file(tmp_path):
    """The moving statistics' momentum (0.9 in the short CPU presets, Keras' 0.99 in the paper's)
    is what inference uses; it must survive saving, or a reloaded classifier would drift."""
    from bal_tf.config import get_preset

    model = build_classifier(BackboneConfig("resnet18", 0.25, batchnorm_momentum=0.9), (28, 28, 1), 10)
    momenta = {layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert {layer.momentum for layer in reloaded.layers if isinstance(layer, keras.layers.BatchNormalization)} == {0.9}
    # one training step moves the moving mean by (1 - momentum) of the way to the batch mean
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    probe = keras.Model(model.inputs, bn.input)
    images = np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 1)).astype("float32")
    batch_mean = np.asarray(probe(images)).mean(axis=(0, 1, 2))
    before = bn.moving_mean.numpy().copy()
    model(images, training=True)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.9 * before + 0.1 * batch_mean, rtol=1e-4, atol=1e-5)
    assert get_preset("mnist-cpu").backbone.batchnorm_momentum == 0.9
    assert get_preset("mnist").backbone.batchnorm_momentum == 0.99  # the GPU presets: untouched
    with pytest.raises(ConfigError, match="batchnorm_momentum must be in"):
        BackboneConfig(batchnorm_momentum=1.0)
