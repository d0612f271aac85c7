"""Export: one SavedModel graph (uint8 in, scores out), TF Serving layout, TFLite parity."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from bal_tf.backbones import build_classifier, feature_model
from bal_tf.config import BackboneConfig
from bal_tf.detector import BALDetector
from bal_tf.export import (OUTPUT_KEYS, LiteRTRunner, calibrate_threshold, convert_tflite, export_saved_model,
                           max_abs_difference, tf_serving_layout)
from bal_tf.errors import InputError
from bal_tf.discriminator import build_discriminator

SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    classifier = build_classifier(BackboneConfig("resnet18", 0.0625), SHAPE, 10)
    detector = BALDetector.from_parts(feature_model(classifier), build_discriminator(32, 10, (16,)))
    images = np.random.default_rng(0).integers(0, 256, (64, *SHAPE)).astype(np.uint8)
    log_threshold = calibrate_threshold(detector.score(images))
    out = tmp_path_factory.mktemp("export")
    saved = export_saved_model(detector.model, log_threshold, out / "saved_model")
    return detector, images, log_threshold, saved, out


def test_threshold_accepts_95_percent():
    scores = np.arange(100, dtype=np.float64)
    threshold = calibrate_threshold(scores)
    assert np.mean(scores >= threshold) == pytest.approx(0.96, abs=0.011)


def test_saved_model_signature_matches_keras(exported):
    detector, images, log_threshold, saved, _ = exported
    signature = tf.saved_model.load(str(saved)).signatures["serving_default"]
    out = {k: v.numpy() for k, v in signature(images=tf.constant(images)).items()}
    assert set(out) == set(OUTPUT_KEYS)
    reference = detector.predict(images)
    assert max_abs_difference(out, reference) <= 1e-5
    np.testing.assert_array_equal(out["class"], reference["class"])
    np.testing.assert_array_equal(out["is_ood"], reference["log_score"] < log_threshold)
    np.testing.assert_allclose(out["threshold"], np.exp(log_threshold), rtol=1e-6)


def test_signature_rejects_wrong_dtype_and_shape(exported):
    _, images, _, saved, _ = exported
    signature = tf.saved_model.load(str(saved)).signatures["serving_default"]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(images=tf.constant(images.astype(np.float32)))


@pytest.mark.parametrize("signature_name", ["serving_default", "serving_float"])
@pytest.mark.parametrize("shape", [(2, 32, 32, 1), (2, 28, 28, 3), (2, 28, 32, 1)])
def test_signatures_refuse_another_image_shape_naming_both(exported, signature_name, shape):
    _, _, _, saved, _ = exported
    signature = tf.saved_model.load(str(saved)).signatures[signature_name]
    dtype = tf.uint8 if signature_name == "serving_default" else tf.float32
    expected = rf"{signature_name}: expected images of shape \[batch, 28, 28, 1\].*received shape\] \[{' '.join(map(str, shape))}\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        signature(images=tf.zeros(shape, dtype))


@pytest.mark.parametrize("signature_name", ["serving_default", "serving_float"])
def test_empty_batch_gives_empty_outputs(exported, signature_name):
    _, _, _, saved, _ = exported
    signature = tf.saved_model.load(str(saved)).signatures[signature_name]
    dtype = tf.uint8 if signature_name == "serving_default" else tf.float32
    out = signature(images=tf.zeros((0, 28, 28, 1), dtype))
    assert set(out) == set(OUTPUT_KEYS)
    assert all(v.shape == (0,) for v in out.values())
    assert out["class"].dtype == tf.int32 and out["is_ood"].dtype == tf.bool and out["score"].dtype == tf.float32


def test_float_signature_clips_rounds_and_refuses_nan(exported):
    _, images, _, saved, _ = exported
    loaded = tf.saved_model.load(str(saved))
    as_uint8 = loaded.signatures["serving_default"](images=tf.constant(images[:8]))
    floats = images[:8].astype(np.float32)
    floats[0] = np.where(images[0] == 0, -40.0, floats[0])  # clips to 0
    floats[1] = np.where(images[1] == 255, 300.0, floats[1])  # clips to 255
    floats[2] += 0.3  # rounds back
    as_float = loaded.signatures["serving_float"](images=tf.constant(floats))
    for key in ("class", "p1", "p2", "score", "is_ood"):
        np.testing.assert_array_equal(as_float[key].numpy(), as_uint8[key].numpy(), err_msg=key)
    floats[3, 5, 5, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        loaded.signatures["serving_float"](images=tf.constant(floats))


def test_tf_serving_layout(exported):
    _, _, _, saved, out = exported
    target = tf_serving_layout(saved, out / "serving", "bal", 3)
    assert target == out / "serving" / "bal" / "3" and (target / "saved_model.pb").is_file()
    config = (out / "serving" / "models.config").read_text()
    assert 'name: "bal"' in config and 'base_path: "/models/bal"' in config


def test_float_tflite_matches_keras_with_litert(exported):
    detector, images, log_threshold, saved, out = exported
    path = out / "float32.tflite"
    path.write_bytes(convert_tflite(detector.model, log_threshold, "float32"))
    lite = LiteRTRunner(path)(images, batch_size=16)
    assert max_abs_difference(lite, detector.predict(images)) <= 1e-4
    assert set(lite) == set(OUTPUT_KEYS)
    with pytest.raises(Exception, match="uint8"):
        LiteRTRunner(path)(images.astype(np.float32))
    with pytest.raises(InputError, match=r"Expected images of shape \[batch, 28, 28, 1\].*Received shape \[2, 32, 32, 1\]"):
        LiteRTRunner(path)(np.zeros((2, 32, 32, 1), np.uint8))
    empty = LiteRTRunner(path)(np.zeros((0, 28, 28, 1), np.uint8))
    assert set(empty) == set(lite) and all(v.shape == (0,) and v.dtype == lite[k].dtype for k, v in empty.items())


def test_full_int8_tflite_computes_in_int8_and_tracks_keras(exported):
    from ai_edge_litert.interpreter import Interpreter

    _, images, _, _, out = exported
    keras.utils.set_random_seed(0)
    features_of = feature_model(build_classifier(BackboneConfig("resnet18", 0.0625), SHAPE, 10))
    # An untrained D's logits sit near one value, where the int8 p2's 1/256 steps would tie
    # them all: rescale its last layer so that its logits spread with mean 0 and std 2.
    discriminator = build_discriminator(32, 10, (16,))
    features, logits = features_of.predict(images, verbose=0)
    d_logits = discriminator.predict([features, logits.argmax(-1)], verbose=0)
    kernel, bias = discriminator.get_layer("logit").get_weights()
    scale = 2.0 / d_logits.std()
    discriminator.get_layer("logit").set_weights([kernel * scale, (bias - d_logits.mean()) * scale])
    detector = BALDetector.from_parts(features_of, discriminator)
    log_threshold = float(np.median(detector.score(images)))
    path = out / "full_int8.tflite"
    path.write_bytes(convert_tflite(detector.model, log_threshold, "full_int8", images[:32]))
    interpreter = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    weighted = [op for op in interpreter._get_ops_details()
                if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")]
    assert weighted, "expected the backbone's and D's weighted ops"
    for op in weighted:  # activations and weights in int8: no float op left behind
        assert {tensors[i]["dtype"] for i in op["inputs"][:2]} == {np.int8}, op["op_name"]

    lite = LiteRTRunner(path)(images, batch_size=32)
    reference = detector.predict(images)
    assert np.isfinite(lite["score"]).all()
    # An untrained classifier's logits on noise are near ties; most classes must still agree.
    assert np.mean(lite["class"] == reference["class"]) >= 0.75
    # The scores must keep their order, D's part included: a label path broken by quantization
    # (TFLite's int8 ONE_HOT did this) leaves p2 constant and this correlation near 0.
    for key in ("p2", "score"):
        assert spearman(lite[key], reference[key]) >= 0.8, key
    assert path.stat().st_size < len(convert_tflite(detector.model, log_threshold, "float32")) / 2


def spearman(a, b) -> float:
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


def test_grpc_predict_request_fits_the_signature(exported):
    pytest.importorskip("tensorflow_serving", reason="installed by `scripts/setup.sh --dev`")
    from bal_tf.export import predict_request

    _, images, _, saved, _ = exported
    request = predict_request(images[:3], "bal")
    assert request.model_spec.name == "bal" and request.model_spec.signature_name == "serving_default"
    proto = request.inputs["images"]
    assert proto.dtype == tf.uint8.as_datatype_enum
    assert [d.size for d in proto.tensor_shape.dim] == [3, 28, 28, 1]
    signature = tf.saved_model.load(str(saved)).signatures["serving_default"]
    assert set(request.inputs) == set(signature.structured_input_signature[1])
    out = signature(images=tf.constant(tf.make_ndarray(proto)))
    assert out["score"].shape == (3,)
    floats = predict_request(images[:3].astype(np.float32), "bal", signature="serving_float")
    assert floats.inputs["images"].dtype == tf.float32.as_datatype_enum
    assert floats.model_spec.signature_name == "serving_float"


def test_rest_body_and_saved_model_cli(exported):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from bal_tf.export import rest_request_body
    from bal_tf.errors import InputError

    _, images, _, saved, _ = exported
    body = rest_request_body(images[:2])
    assert body["signature_name"] == "serving_default" and np.asarray(body["inputs"]["images"]).shape == (2, 28, 28, 1)
    with pytest.raises(InputError, match="uint8"):
        rest_request_body(images.astype(np.float32))
    with pytest.raises(InputError, match="Unknown signature"):
        rest_request_body(images, signature="predict")
    cli = shutil.which("saved_model_cli") or str(Path(sys.executable).parent / "saved_model_cli")
    np.save(saved.parent / "x.npy", images[:2])
    commands = {"show": [cli, "show", "--dir", str(saved), "--all"],
                "run": [cli, "run", "--dir", str(saved), "--tag_set", "serve", "--signature_def", "serving_default",
                        "--inputs", f"images={saved.parent / 'x.npy'}"]}
    # both at once: each process mostly imports TensorFlow
    started = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, command in commands.items()}
    outputs = {}
    for name, process in started.items():
        outputs[name], stderr = process.communicate(timeout=120)
        assert process.returncode == 0, f"saved_model_cli {name}: {stderr}"
    shown = outputs["show"]
    assert "serving_default" in shown and "DT_UINT8" in shown and "is_ood" in shown and "serving_float" in shown
    assert "score" in outputs["run"]


@pytest.mark.parametrize("jit_compile", ["head", "all"])
def test_xla_compiled_serving_graph_gives_the_same_outputs(exported, jit_compile):
    detector, images, log_threshold, _, out = exported
    saved = export_saved_model(detector.model, log_threshold, out / f"xla_{jit_compile}", jit_compile=jit_compile)
    signature = tf.saved_model.load(str(saved)).signatures["serving_default"]
    compiled = {k: v.numpy() for k, v in signature(images=tf.constant(images)).items()}
    reference = detector.predict(images)
    assert max_abs_difference(compiled, reference) <= 1e-5
    np.testing.assert_array_equal(compiled["class"], reference["class"])
    assert signature(images=tf.zeros((0, *SHAPE), tf.uint8))["score"].shape == (0,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected images of shape"):
        signature(images=tf.zeros((1, 32, 32, 1), tf.uint8))
    with pytest.raises(ValueError, match="jit_compile must be one of"):
        export_saved_model(detector.model, log_threshold, out / "bad", jit_compile="yes")


def _badly_conditioned_whitening(dim: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """A Sigma^(-1/2)-like map whose directions are scaled by 1 to 100 (whitening_transform's range)."""
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    matrix = rotation @ np.diag(np.geomspace(1.0, 100.0, dim)) @ rotation.T
    return matrix.astype(np.float32), rng.normal(size=dim).astype(np.float32)


def test_folded_discriminator_computes_the_same_function():
    from bal_tf.discriminator import fold_input_transform

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    whitened = build_discriminator(8, 3, (16, 16), whitening=_badly_conditioned_whitening(8, rng))
    folded = fold_input_transform(whitened)
    assert "whiten" not in {layer.name for layer in folded.layers}
    assert len(folded.weights) == len(whitened.weights) - 2  # the fixed kernel and bias are gone
    features, labels = rng.normal(size=(256, 8)).astype(np.float32), rng.integers(0, 3, 256).astype(np.int32)
    expected = whitened.predict([features, labels], verbose=0)
    np.testing.assert_allclose(folded.predict([features, labels], verbose=0), expected,
                               atol=1e-4 * np.abs(expected).max())
    raw = build_discriminator(8, 3, (16,))
    assert fold_input_transform(raw) is raw  # no input layer: nothing to fold


def test_quantized_tflite_scores_with_the_folded_discriminator(exported, tmp_path):
    """The whitening layer is folded into D's first layer before conversion: the int8 graph has
    no FULLY_CONNECTED op of its own for it, and its p2 ranks images as Keras' does."""
    from ai_edge_litert.interpreter import Interpreter

    _, images, _, _, _ = exported
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)
    features_of = feature_model(build_classifier(BackboneConfig("resnet18", 0.0625), SHAPE, 10))
    features, logits = features_of.predict(images, verbose=0)
    # centre and scale the whitening on these features, so that D's input spans the 1-100 range
    matrix, _ = _badly_conditioned_whitening(32, rng)
    matrix /= features.std()
    whitening = (matrix, (-features.mean(0) @ matrix).astype(np.float32))
    counts = {}
    for name, extra in (("raw", {}), ("whitened", {"whitening": whitening})):
        keras.utils.set_random_seed(2)
        discriminator = build_discriminator(32, 10, (16,), **extra)
        detector = BALDetector.from_parts(features_of, discriminator)
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(convert_tflite(detector.model, 0.0, "dynamic_range"))
        ops = Interpreter(model_path=str(path))._get_ops_details()
        counts[name] = sum(op["op_name"] == "FULLY_CONNECTED" for op in ops)
    assert counts["whitened"] == counts["raw"]
    lite = LiteRTRunner(path)(images, batch_size=32)
    assert spearman(lite["p2"], detector.predict(images)["p2"]) >= 0.9
