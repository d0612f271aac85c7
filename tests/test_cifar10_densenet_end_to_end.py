"""The design card's headline command on tfds mock data (CIFAR-10 is not available offline)."""

import json

import numpy as np
import tensorflow_datasets as tfds

from bal_tf import pipeline


def test_cifar10_densenet_end_to_end_on_mock_data(tmp_path, monkeypatch, capsys):
    """The design card's headline command, `train.py --id cifar10 --arch densenet`, through both
    stages, evaluate.py with an image-folder OOD set, and export, on tfds mock data (32x32x3)."""
    import evaluate
    import tensorflow as tf

    from bal_tf.detector import BALDetector
    from bal_tf.export import OUTPUT_KEYS
    from tests.test_pipeline import export_main

    monkeypatch.setenv("BAL_TF_ASSUME_ONLINE", "1")  # as on a machine with internet access
    run_dir = tmp_path / "run"
    args = ["--id", "cifar10", "--arch", "densenet", "--scale", "cpu", "--quiet", "--run-dir", str(run_dir),
            "--data-dir", str(tmp_path / "tfds")]
    # DenseNet-BC-16 (two bottleneck layers per block): the preset's architecture and code path
    # at a fraction of DenseNet-BC-100's tracing time.
    for item in ["classifier.epochs=1", "classifier.batch_size=4", "backbone.width_multiplier=0.25",
                 "backbone.densenet_depth=16",
                 "gan.epochs=2", "gan.batch_size=4", "data.max_test_examples=8"]:
        args += ["--set", item]
    ood_dir = tmp_path / "ood_images"
    ood_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):  # another size, as user folders are: converted to 32x32x3
        tf.io.write_file(str(ood_dir / f"{i}.png"), tf.io.encode_png(rng.integers(0, 256, (40, 40, 3), np.uint8)))
    with tfds.testing.mock_data(num_examples=16):
        assert pipeline.main(args) == 0
        out = capsys.readouterr().out
        assert "preset 'cifar10-densenet-cpu'" in out and "training densenet" in out and "stage 2: done" in out
        assert evaluate.main(["--run", str(run_dir), "--ood-dir", str(ood_dir), "--quiet", "--no-odin",
                              "--no-plots"]) == 0
        results = json.loads((run_dir / "eval" / "results.json").read_text())
        assert {row["ood"] for row in results["rows"]} == {f"folder:{ood_dir}"}
        assert {"bal", "max_softmax", "knn"} <= {row["method"] for row in results["rows"]}
        assert export_main(["--run", str(run_dir), "--no-tflite"]) == 0
    info = json.loads((run_dir / "export" / "export_info.json").read_text())
    # 1e-4: the float32 log_score of a D without EMA differs by up to 1.05e-5 between the graphs
    assert info["input"]["shape"] == [None, 32, 32, 3] and info["parity"]["saved_model_vs_keras_max_abs"] <= 1e-4
    images = rng.integers(0, 256, (5, 32, 32, 3), np.uint8)
    served = tf.saved_model.load(str(run_dir / "export" / "saved_model")).signatures["serving_default"]
    outputs = {k: v.numpy() for k, v in served(images=tf.constant(images)).items()}
    assert set(outputs) == set(OUTPUT_KEYS) and all(v.shape == (5,) for v in outputs.values())
    assert set(outputs["class"]) <= set(range(10))
    expected = BALDetector.load(run_dir / "detector.keras").predict(images)
    np.testing.assert_allclose(outputs["log_score"], expected["log_score"], atol=1e-5)
    np.testing.assert_array_equal(outputs["is_ood"], expected["log_score"] < info["log_threshold"])
