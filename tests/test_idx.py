import gzip

import numpy as np
import pytest

from bal_tf.data import read_idx
from bal_tf.errors import InputError


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())
    return path


def test_reads_images_and_labels(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 0, 9], np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i-idx3-ubyte", images)), images)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l-idx1-ubyte", labels)), labels)


def test_reads_a_hand_written_mnist_layout_file(tmp_path):
    # magic 0x00000803 (unsigned bytes, 3 dims), dims 2 x 2 x 3 big-endian, then 12 pixels
    header = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3])
    (tmp_path / "images").write_bytes(header + bytes(range(12)))
    np.testing.assert_array_equal(read_idx(tmp_path / "images"), np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    # labels: magic 0x00000801, one dim of 4
    (tmp_path / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 4, 7, 0, 9, 255]))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), [7, 0, 9, 255])


def test_reads_gzip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 3), dtype=np.uint8)
    raw = write_idx(tmp_path / "a", images).read_bytes()
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), images)


def test_truncated_file_is_rejected(tmp_path):
    path = write_idx(tmp_path / "t", np.zeros((4, 2, 2), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InputError, match="truncated"):
        read_idx(path)


def test_bad_magic_is_rejected(tmp_path):
    path = tmp_path / "png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InputError, match="not an idx file"):
        read_idx(path)
