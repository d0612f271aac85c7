"""Shared fixtures. Tests run on tiny data; the real datasets come from the provisioned tfds dir.

``TINY`` is the one list of tiny settings, and ``tiny_run`` the one finished tiny run (both
stages, made once per test session by ``train.py`` in a subprocess, as a user would): tests
read it, or change a copy of it (``tiny_run_copy``).
"""

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from bal_tf.data import provision  # noqa: E402
from tests.tiny import run_to_completion, train_command  # noqa: E402

@pytest.fixture(scope="session")
def provisioned_data_dir():
    """The tfds data dir where `scripts/setup.sh` provisioned MNIST and Fashion-MNIST."""
    data_dir = provision.default_data_dir()
    missing = [n for n in ("mnist", "fashion_mnist") if not provision.is_prepared(n, data_dir)]
    if missing:
        pytest.fail(
            f"{missing} not provisioned in {data_dir}: run `bash scripts/setup.sh` "
            "(or `python -m bal_tf.data.provision`) first."
        )
    return data_dir


@pytest.fixture(scope="session")
def tiny_run(provisioned_data_dir, tmp_path_factory) -> Path:
    """A finished tiny run (both stages). Read it only: copy it to change it.

    Made once per test session, also under pytest-xdist: the workers share a base temp folder,
    and the first to get the lock trains while the others wait for it.
    """
    import fcntl

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers' temp folders are in
    run_dir = shared / "tiny_run"
    with open(shared / "tiny_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (run_dir / "detector.keras").is_file():
            shutil.rmtree(run_dir, ignore_errors=True)
            run_to_completion(train_command(run_dir, provisioned_data_dir))
    return run_dir


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy
