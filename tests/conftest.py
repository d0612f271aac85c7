"""Shared fixtures. Tests run on tiny data; the real datasets come from the provisioned tfds dir.

``TINY`` is the one list of tiny settings, and ``tiny_run`` the one finished tiny run (both
stages, made once per test session by ``train.py`` in a subprocess, as a user would): tests
read it, or change a copy of it (``tiny_run_copy``).
"""

import os
import shutil
from pathlib import Path

from bal_tf.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's import-time log lines, once per test process

import pytest  # noqa: E402

from bal_tf.data import provision  # noqa: E402
from tests.tiny import train_command  # noqa: E402

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


def _shared_dir(config) -> Path:
    """A temp folder of this test session that every pytest-xdist worker sees."""
    base = config._tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def pytest_collection_modifyitems(session, config, items):
    """Starts training the tiny run in the background as soon as a collected test needs it, so
    that the workers run other tests meanwhile; one process (the first to get the lock) starts it."""
    import fcntl
    import shlex
    import subprocess

    needs_tiny_run = lambda item: "tiny_run" in getattr(item, "fixturenames", ())  # noqa: E731
    if not any(needs_tiny_run(item) for item in items):
        return
    # The tests that read the tiny run go last (a stable sort, the same in every xdist worker), so
    # that the workers run the others while it trains instead of waiting for it.
    items.sort(key=needs_tiny_run)
    shared = _shared_dir(config)
    with open(shared / "tiny_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (shared / "tiny_run.started").exists():
            return
        (shared / "tiny_run.started").touch()
        command = shlex.join(train_command(shared / "tiny_run", provision.default_data_dir()))
        subprocess.Popen(["bash", "-c", f"{command} > {shared / 'tiny_run.log'} 2>&1; echo $? > {shared / 'tiny_run.rc'}"],
                         start_new_session=True)


@pytest.fixture(scope="session")
def tiny_run(provisioned_data_dir, pytestconfig) -> Path:
    """A finished tiny run (both stages) made by `train.py` in a subprocess, once per test session
    (also under pytest-xdist): started at collection, waited for here. Read it only: copy it to
    change it."""
    import time

    shared = _shared_dir(pytestconfig)
    rc, deadline = shared / "tiny_run.rc", time.time() + 900
    while not rc.is_file() or not rc.read_text().strip():
        assert time.time() < deadline, "the tiny run did not finish in 15 minutes"
        time.sleep(0.2)
    if rc.read_text().strip() != "0":
        pytest.fail("train.py failed for the tiny run:\n" + (shared / "tiny_run.log").read_text()[-3000:])
    return shared / "tiny_run"


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy
