"""One test per row of the bad-input table in docs/ROBUSTNESS.md: each bad input gives a clear
error and a non-zero exit code (2) and leaves earlier artifacts intact."""

import errno
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from bal_tf import pipeline
from bal_tf.errors import InputError
from tests.tiny import PLAIN_CNN, ROOT, tiny_settings


def train_args(data_dir, run_dir, *extra):
    return ["--scale", "cpu", "--quiet", "--data-dir", data_dir, "--run-dir", str(run_dir), *tiny_settings(),
            *extra]


@pytest.fixture(scope="module")
def finished_run(tiny_run):
    return tiny_run


@pytest.fixture
def run_copy(tiny_run_copy):
    return tiny_run_copy


def export_main(argv):
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_model", ROOT / "export" / "export_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def evaluate_main(argv):
    import evaluate

    return evaluate.main(argv + ["--quiet", "--no-odin", "--no-plots", "--limit", "50"])


@pytest.mark.parametrize("args, message", [
    (["--id", "not_a_dataset"], "ID dataset 'not_a_dataset'. Known: ['mnist'"),
    (["--id", "mnist", "--arch", "vgg16"], "vgg16"),
    (["--preset", "no-such-preset"], "no-such-preset"),
    (["--id", "mnist", "--set", "gan.no_such_field=1"], "no_such_field"),
])
def test_unknown_names(provisioned_data_dir, tmp_path, capsys, args, message):
    assert pipeline.main(train_args(provisioned_data_dir, tmp_path / "run", *args)) == 2
    out = capsys.readouterr().out
    assert "error:" in out and message in out
    assert not (tmp_path / "run" / "classifier.keras").exists()


def test_unknown_ood_set(run_copy, capsys):
    assert evaluate_main(["--run", str(run_copy), "--ood", "not_a_dataset"]) == 2
    assert "Unknown dataset 'not_a_dataset'" in capsys.readouterr().out
    assert not (run_copy / "eval").exists()


def test_images_of_the_wrong_shape_or_channels(run_copy, tmp_path, capsys):
    from bal_tf.detector import BALDetector

    detector = BALDetector.load(run_copy / "detector.keras")
    with pytest.raises(InputError, match=r"\(28, 28, 1\)"):
        detector.score(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(InputError, match=r"\(28, 28, 1\)"):
        detector.score(np.zeros((2, 28, 28), np.uint8))
    # A user's classifier for another image shape: refused before any work.
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(4, name="penultimate")(x))).save(tmp_path / "rgb.keras")
    assert pipeline.main(["--id", "mnist", "--scale", "cpu", "--quiet", "--run-dir", str(tmp_path / "r"),
                          "--classifier", str(tmp_path / "rgb.keras")]) == 2
    assert "inputs of shape (32, 32, 3)" in capsys.readouterr().out


def test_empty_datasets(provisioned_data_dir, run_copy, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert evaluate_main(["--run", str(run_copy), "--ood-dir", str(tmp_path / "empty")]) == 2
    assert "holds no images" in capsys.readouterr().out
    args = train_args(provisioned_data_dir, tmp_path / "run0", "--id", "mnist", "--set",
                      "classifier.max_train_examples=0")
    assert pipeline.main(args) == 2
    assert "is empty" in capsys.readouterr().out


def test_nan_in_features(provisioned_data_dir, tmp_path, capsys):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(4, name="penultimate")(x)))
    model.get_layer("penultimate").kernel.assign(np.full((1, 4), np.nan, np.float32))
    model.save(tmp_path / "nan.keras")
    args = train_args(provisioned_data_dir, tmp_path / "run", "--id", "mnist", "--classifier",
                      str(tmp_path / "nan.keras"))
    assert pipeline.main(args) == 2
    assert "NaN or Inf" in capsys.readouterr().out
    assert not (tmp_path / "run" / "detector.keras").exists()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_in_scores(run_copy, capsys):
    from bal_tf.evaluation import load_discriminator

    path = run_copy / "bal" / "discriminator_selected.keras"
    discriminator = load_discriminator(path)
    for weight in discriminator.weights:
        weight.assign(np.full(weight.shape, np.nan, np.float32))
    discriminator.save(path)
    assert evaluate_main(["--run", str(run_copy), "--ood", "uniform_noise"]) == 2
    out = capsys.readouterr().out
    assert "Method 'bal'" in out and "NaN or Inf" in out
    assert not (run_copy / "eval" / "results.json").exists()


@pytest.mark.parametrize("victim, command", [
    ("classifier.keras", "evaluate"),
    ("detector.keras", "export"),
    ("bal/discriminator_selected.keras", "evaluate"),
])
def test_truncated_keras_files(run_copy, capsys, victim, command):
    path = run_copy / victim
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    if command == "evaluate":
        assert evaluate_main(["--run", str(run_copy), "--ood", "uniform_noise"]) == 2
    else:
        assert export_main(["--run", str(run_copy), "--no-tflite"]) == 2
    out = capsys.readouterr().out
    assert "error:" in out and path.name in out
    assert not (run_copy / "export").exists() and not (run_copy / "eval" / "results.json").exists()


def test_corrupt_feature_cache_is_extracted_again(run_copy):
    from bal_tf.features import FeatureSet

    path = run_copy / "features" / "train.npz"
    count = len(FeatureSet.load(path))
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="Extracting the features again"):
        assert evaluate_main(["--run", str(run_copy), "--ood", "uniform_noise"]) == 0
    assert len(FeatureSet.load(path)) == count


def test_corrupt_resume_checkpoint_falls_back(provisioned_data_dir, tmp_path, capsys):
    """A damaged newest epoch checkpoint: warned about, the one before it is used."""
    run_dir = tmp_path / "run"
    args = train_args(provisioned_data_dir, run_dir, "--id", "mnist", "--stages", "classifier",
                      "--set", "classifier.epochs=2", "--set", PLAIN_CNN)
    resume = run_dir / "stage1" / "resume"

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # after epoch 2 was saved, before classifier.keras
                raise KeyboardInterrupt

    from bal_tf import classifier as classifier_lib
    from bal_tf.run_dir import open_run_dir

    config = pipeline.resolve_config(pipeline.build_arg_parser().parse_args(args))
    with pytest.raises(KeyboardInterrupt):
        classifier_lib.train_classifier(config, open_run_dir(run_dir, config), verbose=0, extra_callbacks=[Crash()])
    assert sorted(p.name for p in resume.iterdir()) == ["epoch_0001", "epoch_0002"]
    (resume / "epoch_0002" / "model.weights.h5").write_bytes(b"\x00" * 100)
    with pytest.warns(UserWarning, match="could not be restored"):
        assert pipeline.main(args) == 0
    assert "resuming after epoch 1" in capsys.readouterr().out


def test_run_dir_made_with_another_config(provisioned_data_dir, finished_run, capsys):
    before = (finished_run / "config.json").read_text()
    args = train_args(provisioned_data_dir, finished_run, "--id", "mnist", "--set", "gan.lambda_c=0.5")
    assert pipeline.main(args) == 2
    assert "gan.lambda_c: 0.7 -> 0.5" in capsys.readouterr().out
    assert (finished_run / "config.json").read_text() == before


def test_full_disk_during_export(run_copy, monkeypatch, capsys):
    import tensorflow as tf

    assert export_main(["--run", str(run_copy), "--no-tflite"]) == 0
    before = (run_copy / "export" / "export_info.json").read_text()

    def no_space(self, data, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", no_space)  # export_info.json, the export's last file
    assert export_main(["--run", str(run_copy), "--no-tflite"]) == 2
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert "No space left on device" in out and "earlier results are untouched" in out
    assert (run_copy / "export" / "export_info.json").read_text() == before
    signature = tf.saved_model.load(str(run_copy / "export" / "saved_model")).signatures["serving_default"]
    assert signature(images=tf.zeros((1, 28, 28, 1), tf.uint8))["score"].shape == (1,)
    assert not list(run_copy.glob(".export.*"))


def test_keras_files_load_in_safe_mode_and_nothing_is_unpickled():
    """Static check of the sources: every Keras load uses safe_mode=True, every np.load
    allow_pickle=False, and pickle is never imported."""
    sources = [p for d in ("bal_tf", "export", "benchmarks") for p in (ROOT / d).rglob("*.py")]
    sources += [ROOT / "train.py", ROOT / "evaluate.py"]
    for path in sources:
        text = path.read_text()
        for call in re.findall(r"load_model\([^)]*\)", text):
            assert "safe_mode=True" in call, f"{path}: {call}"
        for call in re.findall(r"np\.load\([^)]*\)", text):
            assert "allow_pickle=False" in call, f"{path}: {call}"
        assert not re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", text, re.M), path
