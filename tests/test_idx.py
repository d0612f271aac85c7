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


def test_header_sizes_match_mnist_layout(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((2, 28, 28), np.uint8))
    assert path.stat().st_size == 16 + 2 * 28 * 28  # 16-byte header for 3-d image files
    path = write_idx(tmp_path / "y", np.zeros((2,), np.uint8))
    assert path.stat().st_size == 8 + 2  # 8-byte header for labels


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
