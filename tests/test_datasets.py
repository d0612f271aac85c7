import time

import numpy as np
import pytest
import tensorflow as tf

from bal_tf.data import convert_image, load_dataset, to_numpy, train_holdout_splits
from bal_tf.errors import DatasetNotAvailableError, InputError


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(InputError, match="Unknown dataset 'cifar11'.*cifar10"):
        load_dataset("cifar11")


def test_missing_tfds_dataset_fails_at_once_with_a_hint(tmp_path):
    start = time.time()
    with pytest.raises(DatasetNotAvailableError, match="'cifar10'.*not prepared.*internet"):
        load_dataset("cifar10", "train", data_dir=str(tmp_path))
    assert time.time() - start < 15  # no hanging retries


def test_tiny_imagenet_asks_for_an_image_folder():
    with pytest.raises(DatasetNotAvailableError, match="image folder"):
        load_dataset("tiny_imagenet")


@pytest.mark.parametrize("source,target", [((40, 40, 3), (28, 28, 1)), ((28, 28, 1), (32, 32, 3)),
                                           ((32, 32, 4), (32, 32, 3))])
def test_convert_image_to_the_id_shape(source, target):
    image = tf.cast(tf.random.uniform(source, 0, 255), tf.uint8)
    out = convert_image(image, target)
    assert tuple(out.shape) == target and out.dtype == tf.uint8


def test_grayscale_to_rgb_keeps_pixels():
    image = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28, 1)
    out = convert_image(image, (28, 28, 3)).numpy()
    np.testing.assert_array_equal(out[..., 1], image[..., 0])


def test_image_folder_with_class_subfolders(tmp_path):
    for label, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            pixels = np.full((10, 12, 3), 40 * label + i, np.uint8)
            (tmp_path / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    images, labels = to_numpy(load_dataset(f"folder:{tmp_path}", image_shape=(28, 28, 1)))
    assert images.shape == (6, 28, 28, 1)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_flat_image_folder_gets_ood_labels(tmp_path):
    (tmp_path / "a.png").write_bytes(tf.io.encode_png(np.zeros((5, 5, 1), np.uint8)).numpy())
    _, labels = to_numpy(load_dataset(f"folder:{tmp_path}"))
    assert labels.tolist() == [-1]


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(InputError, match="holds no images"):
        load_dataset(f"folder:{tmp_path}")
    with pytest.raises(DatasetNotAvailableError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


@pytest.mark.parametrize("name", ["uniform_noise", "gaussian_noise"])
def test_noise_sets(name):
    images, labels = to_numpy(load_dataset(name, image_shape=(28, 28, 1), limit=50, seed=3))
    assert images.shape == (50, 28, 28, 1) and images.dtype == np.uint8
    assert (labels == -1).all()
    again, _ = to_numpy(load_dataset(name, image_shape=(28, 28, 1), limit=50, seed=3))
    np.testing.assert_array_equal(images, again)


def test_holdout_splits():
    assert train_holdout_splits(10) == ("train[:90%]", "train[90%:]")
    with pytest.raises(InputError):
        train_holdout_splits(100)


def test_ood_set_is_converted_to_the_id_shape(provisioned_data_dir):
    images, _ = to_numpy(load_dataset("fashion_mnist", "test", data_dir=provisioned_data_dir,
                                      image_shape=(32, 32, 3), limit=4))
    assert images.shape == (4, 32, 32, 3)
