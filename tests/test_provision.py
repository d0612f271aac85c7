import gzip
import struct

import numpy as np

from bal_tf.data import load_dataset, provision, to_numpy
from tests.test_idx import write_idx

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_gzip_header_is_rebuilt_with_name_and_mtime():
    payload = b"fashion" * 100
    debian_style = bytearray(gzip.compress(payload, mtime=123))
    rebuilt = provision.upstream_gzip(bytes(debian_style), "train-images-idx3-ubyte", 1504176606)
    assert rebuilt[:4] == b"\x1f\x8b\x08\x08"  # FNAME flag set
    assert struct.unpack("<I", rebuilt[4:8])[0] == 1504176606
    assert rebuilt[10 : 10 + 24] == b"train-images-idx3-ubyte\x00"
    assert gzip.decompress(rebuilt) == payload


def test_mnist_store_roundtrip_keeps_pixels_and_order(tmp_path):
    rng = np.random.default_rng(0)
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    arrays = {}
    for prefix, count in (("train", 12), ("t10k", 5)):
        arrays[prefix] = (
            rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, (count,), dtype=np.uint8),
        )
        write_idx(idx_dir / f"{prefix}-images-idx3-ubyte", arrays[prefix][0])
        write_idx(idx_dir / f"{prefix}-labels-idx1-ubyte", arrays[prefix][1])
    data_dir = str(tmp_path / "tfds")
    provision.provision_mnist(data_dir, idx_dir)
    assert provision.is_prepared("mnist", data_dir)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = to_numpy(load_dataset("mnist", split, data_dir=data_dir))
        np.testing.assert_array_equal(images[..., 0], arrays[prefix][0])
        np.testing.assert_array_equal(labels, arrays[prefix][1])


def test_provisioned_mnist_has_the_real_counts(provisioned_data_dir):
    for split, total, counts in (("train", 60000, MNIST_TRAIN_COUNTS), ("test", 10000, MNIST_TEST_COUNTS)):
        images, labels = to_numpy(load_dataset("mnist", split, data_dir=provisioned_data_dir))
        assert images.shape == (total, 28, 28, 1) and images.dtype == np.uint8
        assert np.bincount(labels).tolist() == counts


def test_provisioned_fashion_mnist_has_the_real_counts(provisioned_data_dir):
    # tfds verified the sha256 of every source file when it prepared this dataset.
    for split, total in (("train", 60000), ("test", 10000)):
        images, labels = to_numpy(load_dataset("fashion_mnist", split, data_dir=provisioned_data_dir))
        assert images.shape == (total, 28, 28, 1)
        assert np.bincount(labels).tolist() == [total // 10] * 10
