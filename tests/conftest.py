"""Shared fixtures. Tests run on tiny data; the real datasets come from the provisioned tfds dir."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from bal_tf.data import provision  # noqa: E402


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
