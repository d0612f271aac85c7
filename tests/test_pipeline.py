"""train.py (both stages) then evaluate.py on a tiny MNIST subset with a narrow backbone."""

import json

import numpy as np
import pytest

from bal_tf import pipeline
from bal_tf.detector import BALDetector
from bal_tf.data import load_dataset, to_numpy

TINY = ["backbone.width_multiplier=0.0625", "classifier.max_train_examples=512", "classifier.epochs=1",
        "classifier.batch_size=64", "data.holdout_percent=1", "gan.epochs=2", "gan.batch_size=64"]


@pytest.fixture(scope="module")
def tiny_run(provisioned_data_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    args = ["--id", "mnist", "--scale", "cpu", "--run-dir", str(run_dir), "--quiet",
            "--data-dir", provisioned_data_dir]
    for item in TINY:
        args += ["--set", item]
    assert pipeline.main(args) == 0
    return run_dir, args


def test_both_stages_write_their_artifacts(tiny_run):
    run_dir, _ = tiny_run
    for name in ["config.json", "classifier.keras", "detector.keras", "bal/history.json",
                 "bal/discriminator_selected.keras", "bal/discriminator_last.keras",
                 "features/train.npz", "features/holdout.npz", "features/test.npz"]:
        assert (run_dir / name).is_file(), name
    history = json.loads((run_dir / "bal/history.json").read_text())
    assert len(history["epochs"]) == 2 and 1 <= history["selected_epoch"] <= 2
    first = history["epochs"][0]
    for key in ["d_loss", "g_loss", "l_t", "l_s", "l_u", "d_real", "d_hard", "selection_criterion",
                "selection_pixel_permutation", "selection_uniform_features"]:
        assert np.isfinite(first[key]), key
    assert list((run_dir / "logs" / "stage2").rglob("events.out.tfevents*"))


def test_rerun_skips_finished_stages(tiny_run, capsys):
    _, args = tiny_run
    assert pipeline.main(args) == 0
    out = capsys.readouterr().out
    assert "stage 1: done already" in out and "stage 2: done already" in out


def test_detector_scores_images(tiny_run, provisioned_data_dir):
    run_dir, _ = tiny_run
    detector = BALDetector.load(run_dir / "detector.keras")
    images, _ = to_numpy(load_dataset("mnist", "test", data_dir=provisioned_data_dir, limit=8))
    out = detector.predict(images)
    assert set(out) == {"class", "p1", "p2", "score", "log_score"}
    np.testing.assert_allclose(out["score"], out["p1"] * out["p2"], rtol=1e-5)


def test_evaluate_cli_writes_tables(tiny_run, capsys):
    import evaluate

    run_dir, _ = tiny_run
    assert evaluate.main(["--run", str(run_dir), "--ood", "fashion_mnist", "--ood", "uniform_noise",
                          "--limit", "200", "--quiet"]) == 0
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    methods = {row["method"] for row in results["rows"]}
    assert {"bal", "bal_last", "bal_p2_only", "max_softmax"} <= methods
    assert {row["ood"] for row in results["rows"]} == {"fashion_mnist", "uniform_noise",
                                                       "fashion_mnist+uniform_noise"}
    assert (run_dir / "eval" / "results.md").read_text().count("| bal |") == 3
    assert "ID is the positive class" in capsys.readouterr().out


def test_users_own_classifier_skips_stage_1(provisioned_data_dir, tmp_path, capsys):
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation="relu", name="penultimate")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    path = tmp_path / "mine.keras"
    keras.Model(inputs, outputs).save(path)
    common = ["--scale", "cpu", "--quiet", "--data-dir", provisioned_data_dir, "--classifier", str(path),
              "--feature-layer", "penultimate"]
    for item in TINY:
        common += ["--set", item]
    assert pipeline.main(common + ["--id", "mnist", "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "using your classifier" in out and "training resnet18" not in out
    detector = BALDetector.load(tmp_path / "run" / "detector.keras")
    assert detector.score(np.zeros((2, 28, 28, 1), np.uint8)).shape == (2,)
    # A classifier for another image shape is refused before any work.
    assert pipeline.main(common + ["--id", "cifar10", "--run-dir", str(tmp_path / "run2")]) == 2
    assert "inputs of shape (28, 28, 1)" in capsys.readouterr().out


def test_evaluate_without_bal_stage_reports_baselines(tiny_run, tmp_path, capsys):
    import shutil

    import evaluate

    run_dir, _ = tiny_run
    bare = tmp_path / "stage1_only"
    bare.mkdir()
    for name in ("config.json", "classifier.keras"):
        shutil.copy(run_dir / name, bare / name)
    assert evaluate.main(["--run", str(bare), "--ood", "fashion_mnist", "--limit", "100", "--quiet",
                          "--no-odin"]) == 0
    out = capsys.readouterr().out
    assert "BAL is missing" in out and "| mahalanobis | fashion_mnist |" in out and "| bal |" not in out


def test_protocol_with_missing_data_stops_at_once(tiny_run, capsys):
    import evaluate

    run_dir, _ = tiny_run
    assert evaluate.main(["--run", str(run_dir), "--protocol", "table4-mnist", "--quiet"]) == 2
    assert "Dataset 'omniglot'" in capsys.readouterr().out


def test_two_dimensional_feature_layer_gets_confidence_maps(provisioned_data_dir, tmp_path):
    import evaluate

    run_dir = tmp_path / "run2d"
    args = ["--id", "mnist", "--scale", "cpu", "--run-dir", str(run_dir), "--quiet",
            "--data-dir", provisioned_data_dir, "--set", "backbone.feature_dim=2", "--set", "gan.epochs=1"]
    for item in TINY:
        if not item.startswith("gan.epochs"):
            args += ["--set", item]
    assert pipeline.main(args) == 0
    assert evaluate.main(["--run", str(run_dir), "--ood", "fashion_mnist", "--limit", "100", "--quiet",
                          "--no-odin"]) == 0
    for name in ["confidence_map_bal.png", "confidence_map_max_softmax.png", "roc_fashion_mnist.png",
                 "hist_fashion_mnist.png"]:
        assert (run_dir / "eval" / name).stat().st_size > 10_000, name
    assert list((run_dir / "logs" / "eval").glob("events.out.tfevents*"))


def test_export_command_on_a_trained_run(tiny_run, capsys):
    import importlib.util
    from pathlib import Path

    run_dir, _ = tiny_run
    spec = importlib.util.spec_from_file_location("export_model", Path(__file__).parents[1] / "export" / "export_model.py")
    export_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_model)
    # Uniform noise: even this tiny model ranks it far from chance (the AUROC of MNIST vs
    # Fashion-MNIST would be ~0.5 here, where a broken int8 model could not be told apart).
    assert export_model.main(["--run", str(run_dir), "--parity-ood", "uniform_noise"]) == 0
    info = json.loads((run_dir / "export" / "export_info.json").read_text())
    assert info["parity"]["saved_model_vs_keras_max_abs"] <= 1e-5
    assert info["parity"]["tflite_float32_vs_keras_max_abs"] <= 1e-4
    assert 0 < info["threshold"] <= 1
    parity = info["auroc_parity"]
    assert set(parity) >= {"keras", "bal_float32", "bal_dynamic_range", "bal_full_int8"}
    assert abs(parity["keras"] - 0.5) > 0.05  # a real ranking (a constant score gives 0.5)
    assert abs(parity["bal_float32"] - parity["keras"]) < 1e-3
    assert abs(parity["bal_full_int8"] - parity["bal_float32"]) <= 0.005  # the 0.5 points
    assert (run_dir / "export" / "serving" / "bal" / "1" / "saved_model.pb").is_file()
    assert (run_dir / "export" / "serving" / "models.config").is_file()
