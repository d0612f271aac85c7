"""tf.distribute: two worker processes on localhost (MultiWorkerMirroredStrategy, the
strategy.run loop) and MirroredStrategy (Keras fit)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bal_tf import distribute
from bal_tf.errors import ConfigError
from tests.tiny import PLAIN_CNN, train_command

ROOT = Path(__file__).resolve().parents[1]
# The loss curve of 2 workers vs 1 worker with the same global batch: they draw different
# random samples (latents, labels, boxes), so they agree statistically, not bit for bit.
# Measured over 4 epochs: at most 2.2% apart per epoch (g_loss); the test trains the first 2 of
# them (a constant learning rate: the same epochs) and allows 5%.
LOSS_CURVE_RTOL = 0.05


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(command, count=2) -> list[subprocess.Popen]:
    ports = free_ports(count)
    processes = []
    for index in range(count):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(command(index), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    return processes


def wait_for(processes) -> list[str]:
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out[-4000:]
        outputs.append(out)
    return outputs


def test_two_workers_train_bal_alike_and_then_run_train_py_end_to_end(provisioned_data_dir, tmp_path):
    """Two worker processes on localhost: BAL's GAN in the strategy loop ends with identical
    weights on both and the single worker's loss curve; then, in the same processes and cluster,
    train.py runs both stages, the chief writing every file and the other worker none."""
    run_dir = tmp_path / "run"
    train_args = train_command(run_dir, provisioned_data_dir, "classifier.max_train_examples=256", "classifier.epochs=1",
                               "gan.epochs=2", PLAIN_CNN)[2:] + ["--strategy", "multiworker"]
    script = str(ROOT / "tests" / "multiworker_bal.py")
    workers = start_workers(
        lambda index: [sys.executable, script, str(tmp_path / f"worker{index}.npz"), "--", *train_args])
    from tests.multiworker_bal import main as train_alone

    assert "TF_CONFIG" not in os.environ
    train_alone(str(tmp_path / "single.npz"))  # one worker, in this process, while the two start up
    chief_out, worker_out = wait_for(workers)

    chief, other, alone = (np.load(tmp_path / f"{name}.npz") for name in ("worker0", "worker1", "single"))
    assert int(chief["replicas"]) == 2 and int(alone["replicas"]) == 1
    assert bool(chief["chief"]) and not bool(other["chief"])
    weights = [k for k in chief.files if k.startswith(("d/", "g/"))]
    assert weights
    for key in weights:
        np.testing.assert_array_equal(chief[key], other[key], err_msg=key)
    for loss in ("d_loss", "g_loss", "l_t", "l_s", "l_u"):
        np.testing.assert_allclose(chief[f"history/{loss}"], alone[f"history/{loss}"], rtol=LOSS_CURVE_RTOL,
                                   err_msg=loss)

    assert "2 replicas (multiworker)" in chief_out
    assert "detector saved to" in chief_out and "the chief writes the results" in worker_out
    for name in ("config.json", "classifier.keras", "detector.keras", "bal/history.json", "features/train.npz"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "bal" / "resume").exists() and not (run_dir / "stage1" / "resume").exists()


def test_mirrored_strategy_trains_with_keras_fit():
    from tests.multiworker_bal import feature_set

    from bal_tf.config import GANConfig
    from bal_tf.train_bal import train_bal

    config = GANConfig(epochs=2, batch_size=128, latent_dim=8, generator_units=[32], discriminator_units=[32],
                       selection="last", d_ema_decay=0.0)
    mirrored = train_bal(config, feature_set(), verbose=0, seed=1, strategy=distribute.make_strategy("mirrored"))
    plain = train_bal(config, feature_set(), verbose=0, seed=1)
    assert len(mirrored.history) == 2
    # One CPU replica: the same computation as without a strategy.
    for a, b in zip(mirrored.discriminator.get_weights(), plain.discriminator.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_strategy_errors(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        distribute.make_strategy("multiworker")
    with pytest.raises(ConfigError, match="Unknown strategy 'tpu'"):
        distribute.make_strategy("tpu")
    assert distribute.is_chief(distribute.make_strategy("default"))
