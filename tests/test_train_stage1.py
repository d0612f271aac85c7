"""Stage 1 on a tiny MNIST subset with a narrow backbone: resume, CLI errors, a missing dataset."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from bal_tf import classifier as classifier_lib
from bal_tf import pipeline
from bal_tf.config import get_preset
from bal_tf.errors import ConfigError
from bal_tf.run_dir import open_run_dir
from tests.tiny import PLAIN_CNN

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "backbone.width_multiplier=0.0625",
    "classifier.max_train_examples=256",
    "classifier.batch_size=64",
    "data.holdout_percent=1",
    "data.max_test_examples=256",
]


def tiny_config(data_dir, epochs=2, *extra: str):
    return get_preset("mnist-cpu").with_overrides(
        TINY + [f"classifier.epochs={epochs}", f"data.data_dir={data_dir}", *extra]
    )


def stop_after_epoch(epoch_to_stop):
    """Simulates a crash at the end of an epoch, after the checkpoint callback saved it."""

    def stop(epoch, logs):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt("simulated interruption")

    return keras.callbacks.LambdaCallback(on_epoch_end=stop)


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.started = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch)


def test_training_resumes_after_an_interruption(provisioned_data_dir, tmp_path):
    """An interrupted run resumed with the same call ends with the weights of an uninterrupted
    run of the same seed (same batches, same optimizer state, same dropout masks: the plain CNN has
    Dropout layers, whose random state save_weights leaves out): also the determinism check."""
    config = tiny_config(provisioned_data_dir, 2, PLAIN_CNN)
    run = open_run_dir(tmp_path / "run", config)
    with pytest.raises(KeyboardInterrupt):
        classifier_lib.train_classifier(config, run, verbose=0, extra_callbacks=[stop_after_epoch(0)])
    assert not run.classifier_path.exists()
    assert [p.name for p in (run.stage1_dir / "resume").iterdir()] == ["epoch_0001"]

    recorder = RecordEpochs()
    model = classifier_lib.train_classifier(config, run, verbose=0, extra_callbacks=[recorder])
    assert recorder.started == [1]  # epoch 0 was not trained again
    assert run.classifier_path.is_file()
    assert not (run.stage1_dir / "resume").exists()
    metrics = json.loads((run.stage1_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    reloaded = classifier_lib.load_classifier(run.classifier_path)
    assert len(reloaded.weights) == len(model.weights)

    uninterrupted = classifier_lib.train_classifier(config, open_run_dir(tmp_path / "ref", config), verbose=0)
    for a, b in zip(model.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    reference = json.loads((tmp_path / "ref" / "stage1" / "metrics.json").read_text())
    assert reference["test_accuracy"] == metrics["test_accuracy"]


def test_cli_trains_and_then_skips_a_finished_stage(provisioned_data_dir, tmp_path, capsys):
    args = ["--id", "mnist", "--scale", "cpu", "--run-dir", str(tmp_path / "run"), "--quiet",
            "--stages", "classifier", "--data-dir", provisioned_data_dir]
    args += [a for item in TINY + ["classifier.epochs=1"] for a in ("--set", item)]
    assert pipeline.main(args) == 0
    out = capsys.readouterr().out
    assert "preset 'mnist-cpu'" in out and "stage 1: done" in out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["classifier"]["epochs"] == 1 and saved["preset"] == "mnist-cpu"
    assert pipeline.main(args) == 0
    assert "skipping" in capsys.readouterr().out
    # The same run dir with another config is refused, naming the difference.
    assert pipeline.main(args + ["--set", "classifier.epochs=2"]) == 2
    assert "classifier.epochs: 1 -> 2" in capsys.readouterr().out


def test_run_dir_with_another_config_is_refused(tmp_path):
    open_run_dir(tmp_path, get_preset("mnist-cpu"))
    with pytest.raises(ConfigError, match="seed: 0 -> 1"):
        open_run_dir(tmp_path, get_preset("mnist-cpu").with_overrides(["seed=1"]))


def test_gan_settings_may_change_until_stage_2_begins(tmp_path):
    open_run_dir(tmp_path, get_preset("mnist-cpu"))
    changed = get_preset("mnist-cpu").with_overrides(["gan.epochs=3"])
    assert open_run_dir(tmp_path, changed).load_config().gan.epochs == 3  # the classifier is reused
    (tmp_path / "bal").mkdir()
    (tmp_path / "bal" / "history.json").write_text("{}")
    with pytest.raises(ConfigError, match="gan.epochs: 3 -> 4"):
        open_run_dir(tmp_path, get_preset("mnist-cpu").with_overrides(["gan.epochs=4"]))


def test_the_depths_may_change_until_stage_2_begins(tmp_path):
    """The feature cache holds every depth, so a classifier trained under one features.depths is
    reused under another; a finished stage 2 is not."""
    open_run_dir(tmp_path, get_preset("mnist-cpu").with_overrides(["features.depths=penultimate"]))
    assert open_run_dir(tmp_path, get_preset("mnist-cpu")).load_config().features.depths == "stages"
    (tmp_path / "bal").mkdir()
    (tmp_path / "bal" / "history.json").write_text("{}")
    with pytest.raises(ConfigError, match="features.depths: 'stages' -> 'penultimate'"):
        open_run_dir(tmp_path, get_preset("mnist-cpu").with_overrides(["features.depths=penultimate"]))


def test_an_older_config_json_is_written_out_in_full_before_stage_2(tmp_path, capsys):
    config = get_preset("mnist-cpu")
    open_run_dir(tmp_path, config)
    written = json.loads((tmp_path / "config.json").read_text())
    del written["gan"]["floor_shrink"]  # as written before that field existed
    (tmp_path / "config.json").write_text(json.dumps(written))
    open_run_dir(tmp_path, config)
    assert "predates fields gan.floor_shrink" in capsys.readouterr().out
    assert json.loads((tmp_path / "config.json").read_text())["gan"]["floor_shrink"] == config.gan.floor_shrink


def test_a_gan_option_missing_from_an_older_config_json_reads_as_off(tmp_path):
    from bal_tf.config import GAN_FIELDS_ABSENT_MEANS, RunConfig
    from bal_tf.run_dir import RunDir

    written = get_preset("mnist-cpu").to_dict()
    for name in ("ladder_weight", "p2_target", "discriminator_input"):  # options added after such runs
        del written["gan"][name]
    (tmp_path / "config.json").write_text(json.dumps(written))
    gan = RunDir(tmp_path).load_config().gan  # a run's own record: what that run used
    assert (gan.ladder_weight, gan.p2_target, gan.discriminator_input) == (0.0, "ratio", "raw")
    assert RunConfig.from_json(tmp_path / "config.json").gan.ladder_weight > 0  # a partial config: defaults
    assert get_preset("mnist-cpu").gan.ladder_weight > 0  # today's default differs: not what that run used
    assert set(GAN_FIELDS_ABSENT_MEANS) <= {f.name for f in dataclasses.fields(type(gan))}


def test_a_config_json_without_the_depths_reads_as_the_penultimate_features(tmp_path):
    """Runs written before features.depths existed (91ac3d9) saw h(x) alone; today's default is
    every stage."""
    from bal_tf.run_dir import RunDir

    written = get_preset("mnist-cpu").to_dict()
    del written["features"]
    (tmp_path / "config.json").write_text(json.dumps(written))
    assert RunDir(tmp_path).load_config().features.depths == "penultimate"
    written["features"] = {}
    (tmp_path / "config.json").write_text(json.dumps(written))
    assert RunDir(tmp_path).load_config().features.depths == "penultimate"
    assert get_preset("mnist-cpu").features.depths == "stages"


def test_cifar10_densenet_without_data_stops_at_once(tmp_path):
    start = time.time()
    result = subprocess.run(
        [sys.executable, "train.py", "--id", "cifar10", "--arch", "densenet",
         "--data-dir", str(tmp_path / "empty"), "--run-dir", str(tmp_path / "run")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "BAL_TF_ASSUME_ONLINE": "0"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Dataset 'cifar10'" in result.stdout and "not prepared" in result.stdout
    assert "Epoch 1" not in result.stdout
    assert time.time() - start < 90


def test_the_cpu_presets_one_cycle_schedule_warms_up_then_decays_to_zero():
    config = get_preset("mnist-cpu")
    assert (config.classifier.lr_schedule, config.classifier.learning_rate, config.classifier.epochs) == ("one_cycle", 3e-3, 2)
    steps_per_epoch = 100
    schedule = classifier_lib.learning_rate_schedule(config, steps_per_epoch)
    rate = lambda step: float(schedule(step))  # noqa: E731
    warmup = round(0.15 * 2 * steps_per_epoch)  # 30 steps
    assert rate(0) == pytest.approx(3e-3 / 25)
    assert rate(warmup) == pytest.approx(3e-3)
    assert rate(warmup // 2) == pytest.approx((3e-3 / 25 + 3e-3) / 2, rel=1e-3)  # linear warm-up
    assert rate(2 * steps_per_epoch) == pytest.approx(0.0, abs=1e-9)
    rates = [rate(step) for step in range(warmup, 2 * steps_per_epoch + 1, 10)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # then a monotone decay
    assert isinstance(classifier_lib.build_optimizer(config, steps_per_epoch), keras.optimizers.Adam)
    with pytest.raises(ConfigError, match="warmup_fraction must be in"):
        get_preset("mnist-cpu").with_overrides(["classifier.warmup_fraction=1.0"])
