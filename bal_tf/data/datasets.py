"""Datasets as ``tf.data.Dataset`` of ``(image uint8 [H, W, C], label int64)``.

Every name goes through tensorflow-datasets except image folders (``folder:PATH``, e.g.
TinyImageNet, which tfds lacks) and synthetic noise. Preprocessing follows the paper
(Sec. 5.2): the MNIST family is 28x28x1, everything else 32x32x3; an OOD set is converted to
the ID set's shape (resize, then channel conversion).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import urllib.parse
from concurrent import futures
from pathlib import Path

import numpy as np
import tensorflow as tf

from bal_tf.errors import DatasetNotAvailableError, InputError

MNIST_SHAPE = (28, 28, 1)
RGB_SHAPE = (32, 32, 3)
OOD_LABEL = -1
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A named dataset.

    Attributes:
        tfds_name: the tfds builder name (with config), or ``None`` when tfds has none.
        image_shape: the shape the paper uses for it (the ID shape; OOD sets are converted).
        num_classes: classes when used as ID; ``None`` for OOD-only sets.
        splits: our split name -> tfds split.
        how_to_provide: what to tell a user who lacks the data.
    """

    tfds_name: str | None
    image_shape: tuple[int, int, int]
    num_classes: int | None = None
    splits: dict = dataclasses.field(default_factory=lambda: {"train": "train", "test": "test"})
    how_to_provide: str = "Run on a machine with internet access once so tfds can download it."


_OFFLINE_HINT = "Run `python -m bal_tf.data.provision` (needs npm and Debian's dataset-fashion-mnist)."

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", MNIST_SHAPE, 10, how_to_provide=_OFFLINE_HINT),
    "fashion_mnist": DatasetSpec("fashion_mnist", MNIST_SHAPE, 10, how_to_provide=_OFFLINE_HINT),
    "cifar10": DatasetSpec("cifar10", RGB_SHAPE, 10),
    "cifar100": DatasetSpec("cifar100", RGB_SHAPE, 100),
    "svhn": DatasetSpec("svhn_cropped", RGB_SHAPE, 10),
    # OOD-only sets.
    "omniglot": DatasetSpec("omniglot", MNIST_SHAPE, splits={"test": "test", "train": "train"}),
    "lsun": DatasetSpec("lsun/classroom", RGB_SHAPE, splits={"test": "train"}),
    "tiny_imagenet": DatasetSpec(
        None, RGB_SHAPE, splits={},
        how_to_provide="tfds has no TinyImageNet: pass its images as an image folder, "
        "e.g. --ood-dir /path/to/tiny-imagenet-200/val (any folder of images works).",
    ),
}
NOISE_SETS = ("gaussian_noise", "uniform_noise")


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise InputError(
            f"Unknown dataset {name!r}. Known: {sorted(DATASETS)}, noise sets {list(NOISE_SETS)}, "
            "or an image folder as 'folder:PATH'."
        )
    return DATASETS[name]


def id_num_classes(name: str) -> int:
    spec = dataset_spec(name)
    if spec.num_classes is None:
        raise InputError(f"{name!r} is an OOD-only dataset; it cannot be the ID set.")
    return spec.num_classes


def train_holdout_splits(holdout_percent: int) -> tuple[str, str]:
    """tfds split strings for the training part and the held-out ID part of ``train``."""
    if not 0 <= holdout_percent < 100:
        raise InputError(f"holdout_percent must be in [0, 100). Received: {holdout_percent}")
    if holdout_percent == 0:
        return "train", "train[:0%]"
    cut = 100 - holdout_percent
    return f"train[:{cut}%]", f"train[{cut}%:]"


# ------------------------------------------------------------------------ availability ----


def _reachable(url: str, timeout: float) -> bool:
    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def downloads_reachable(builder, timeout: float = 3.0) -> bool:
    """Whether every host the builder downloads from answers a TCP connect within ``timeout``.

    tfds retries unreachable downloads for a long time; checking first lets an offline machine
    fail at once with a useful message. ``BAL_TF_ASSUME_ONLINE=1`` skips the check.
    """
    if os.environ.get("BAL_TF_ASSUME_ONLINE") == "1":
        return True
    urls = list((builder.url_infos or {}).keys())
    if not urls:
        return True  # nothing declared: let tfds try (and fail with its own message)
    hosts = {urllib.parse.urlparse(u).hostname: u for u in urls}
    pool = futures.ThreadPoolExecutor(max_workers=len(hosts))
    try:
        jobs = [pool.submit(_reachable, url, timeout) for url in hosts.values()]
        done, _ = futures.wait(jobs, timeout=timeout + 1)
        return len(done) == len(jobs) and all(job.result() for job in jobs)
    finally:
        pool.shutdown(wait=False)


def ensure_prepared(name: str, data_dir: str | None = None):
    """Returns the tfds builder of ``name``, downloading it when needed and possible.

    Raises:
        DatasetNotAvailableError: neither present in ``data_dir`` nor downloadable from here.
    """
    import tensorflow_datasets as tfds

    spec = dataset_spec(name)
    if spec.tfds_name is None:
        raise DatasetNotAvailableError(f"Dataset {name!r} is not in tfds. {spec.how_to_provide}")
    try:
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as exc:  # pragma: no cover - tfds version drift
        raise DatasetNotAvailableError(f"tfds does not know {spec.tfds_name!r}: {exc}") from exc
    if builder.is_prepared():
        return builder
    if not downloads_reachable(builder):
        raise DatasetNotAvailableError(
            f"Dataset {name!r} (tfds {spec.tfds_name!r}) is not prepared in "
            f"{Path(builder.data_dir).parent.parent} and its download hosts cannot be reached from this machine. "
            f"{spec.how_to_provide} You can also point --data-dir (or $TFDS_DATA_DIR) at a "
            "folder where it is already prepared."
        )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return builder


# ------------------------------------------------------------------------- conversion ----


def convert_image(image: tf.Tensor, shape: tuple[int, int, int]) -> tf.Tensor:
    """Converts one uint8 image to ``shape``: resize (bilinear, antialiased), then channels."""
    height, width, channels = shape
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    if image.shape[-1] == 4:
        image = image[..., :3]  # drop alpha
    if image.shape[0] != height or image.shape[1] != width:
        image = tf.image.resize(image, (height, width), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    in_channels = image.shape[-1]
    if in_channels == 3 and channels == 1:
        image = tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8)
    elif in_channels == 1 and channels == 3:
        image = tf.image.grayscale_to_rgb(image)
    elif in_channels != channels:
        raise InputError(f"Cannot convert {in_channels}-channel images to shape {shape}.")
    return tf.ensure_shape(tf.cast(image, tf.uint8), shape)


# ---------------------------------------------------------------------------- loading ----


def load_dataset(
    name: str,
    split: str = "test",
    *,
    data_dir: str | None = None,
    image_shape: tuple[int, int, int] | None = None,
    limit: int | None = None,
    seed: int = 0,
    classes: list[int] | None = None,
    relabel: bool = True,
) -> tf.data.Dataset:
    """Loads a dataset as ``(image uint8 [H, W, C], label int64)`` pairs, in a fixed order.

    Args:
        name: a key of ``DATASETS``, ``gaussian_noise`` / ``uniform_noise``, or
            ``folder:PATH`` (an image folder; class sub-folders give labels, else -1).
        split: ``train`` / ``test`` or any tfds split string (``train[:90%]``).
        data_dir: tfds data dir (default: tfds' own).
        image_shape: convert to this shape (the ID set's); default: the dataset's own.
        limit: keep only the first ``limit`` examples.
        seed: seed of the noise sets.
        classes: keep only examples of these labels; ``relabel`` maps them to their index in
            ``classes`` (0..K-1), else the label becomes ``OOD_LABEL``.

    Raises:
        DatasetNotAvailableError: the data is neither present nor downloadable.
        InputError: unknown name, empty folder, unreadable image.
    """
    if name.startswith("folder:"):
        dataset = load_image_folder(name[len("folder:"):], image_shape or RGB_SHAPE)
    elif name in NOISE_SETS:
        dataset = noise_dataset(name, image_shape or RGB_SHAPE, count=limit or 10000, seed=seed)
    else:
        import tensorflow_datasets as tfds

        spec = dataset_spec(name)
        builder = ensure_prepared(name, data_dir)
        tfds_split = spec.splits.get(split, split)
        # No tfds auto-cache: callers read each split once into memory, and a cached split read
        # in part (``limit``) makes TensorFlow warn that it discards the partial cache.
        dataset = builder.as_dataset(
            split=tfds_split, shuffle_files=False,
            read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False),
        )
        has_label = "label" in builder.info.features

        def to_pair(example):
            label = example["label"] if has_label else tf.constant(OOD_LABEL, tf.int64)
            return example["image"], tf.cast(label, tf.int64)

        dataset = dataset.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)
        shape = tuple(image_shape or spec.image_shape)
        if tuple(builder.info.features["image"].shape) != shape:
            dataset = dataset.map(lambda x, y: (convert_image(x, shape), y),
                                  num_parallel_calls=tf.data.AUTOTUNE)
    if classes is not None:
        dataset = select_classes(dataset, classes, relabel)
    if limit is not None:
        dataset = dataset.take(limit)
    return dataset


def select_classes(dataset: tf.data.Dataset, classes: list[int], relabel: bool = True) -> tf.data.Dataset:
    """Keeps the examples whose label is in ``classes``; relabels them 0..K-1 (or OOD_LABEL)."""
    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or min(classes) < 0:
        raise InputError(f"classes must be distinct non-negative labels. Received: {classes}")
    table = tf.constant(classes, tf.int64)
    dataset = dataset.filter(lambda x, y: tf.reduce_any(tf.equal(table, y)))
    if relabel:
        return dataset.map(lambda x, y: (x, tf.argmax(tf.cast(tf.equal(table, y), tf.int64), output_type=tf.int64)))
    return dataset.map(lambda x, y: (x, tf.constant(OOD_LABEL, tf.int64)))


HELD_OUT_CLASSES = "held_out_classes"
# The validation protocol's counterpart (bal_tf.validation): the classes a run never trained on,
# taken from the held-out part of the *training* split. The test split is never read for it.
HELD_OUT_CLASSES_VALIDATION = "held_out_classes_validation"


def run_classes(data_config) -> list[int] | None:
    """The run's ID classes (``data.id_classes``), checked against the dataset; None = all."""
    classes = data_config.id_classes
    if classes is None:
        return None
    total = id_num_classes(data_config.id_dataset)
    if not classes or any(not 0 <= int(c) < total for c in classes) or len(set(classes)) != len(classes):
        raise InputError(f"data.id_classes must be distinct labels in 0..{total - 1} of "
                         f"{data_config.id_dataset}. Received: {classes}")
    return [int(c) for c in classes]


def load_id_split(data_config, split: str, limit: int | None = None) -> tf.data.Dataset:
    """A split of the run's ID data (``data`` section of a RunConfig), ID classes only."""
    return load_dataset(data_config.id_dataset, split, data_dir=data_config.data_dir, limit=limit,
                        classes=run_classes(data_config))


def load_ood_set(name: str, data_config, limit: int | None = None, seed: int = 0) -> tf.data.Dataset:
    """An OOD set in the run's image shape; ``held_out_classes`` is the test split of the ID
    dataset's classes the run never trained on."""
    if name in (HELD_OUT_CLASSES, HELD_OUT_CLASSES_VALIDATION):
        classes = run_classes(data_config)
        if classes is None:
            raise InputError(f"{name!r} needs a run trained on some classes only "
                             "(data.id_classes, e.g. --preset mnist-0to5-cpu).")
        rest = [c for c in range(id_num_classes(data_config.id_dataset)) if c not in classes]
        split = "test" if name == HELD_OUT_CLASSES else train_holdout_splits(data_config.holdout_percent)[1]
        return load_dataset(data_config.id_dataset, split, data_dir=data_config.data_dir, limit=limit,
                            classes=rest, relabel=False)
    shape = dataset_spec(data_config.id_dataset).image_shape
    return load_dataset(name, "test", data_dir=data_config.data_dir, image_shape=shape, limit=limit, seed=seed)


def load_image_folder(path: str | os.PathLike, image_shape: tuple[int, int, int]) -> tf.data.Dataset:
    """Loads every image under ``path``; sub-folders (sorted) become labels 0..K-1."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetNotAvailableError(f"Image folder {root} does not exist (or is not a folder).")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputError(f"Image folder {root} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    class_dirs = sorted({p.parent for p in files} - {root})
    if class_dirs and all(p.parent != root for p in files):
        index = {d: i for i, d in enumerate(class_dirs)}
        labels = [index[p.parent] for p in files]
    else:
        labels = [OOD_LABEL] * len(files)

    def decode(file_name, label):
        raw = tf.io.read_file(file_name)
        image = tf.io.decode_image(raw, channels=0, expand_animations=False)
        image = tf.ensure_shape(image, [None, None, None])
        channels = tf.shape(image)[-1]
        image = tf.cond(channels == 1, lambda: tf.image.grayscale_to_rgb(image),
                        lambda: image[..., :3])
        image = tf.image.resize(image, image_shape[:2], antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        image.set_shape((*image_shape[:2], 3))
        return convert_image(image, image_shape), label

    dataset = tf.data.Dataset.from_tensor_slices(
        ([str(f) for f in files], np.asarray(labels, np.int64))
    )
    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).apply(
        tf.data.experimental.assert_cardinality(len(files))
    )


def noise_dataset(name: str, image_shape, count: int = 10000, seed: int = 0) -> tf.data.Dataset:
    """Synthetic OOD images: ``uniform_noise`` (U[0, 255]) or ``gaussian_noise`` (N(128, 64²))."""
    rng = np.random.default_rng(seed)
    if name == "uniform_noise":
        images = rng.integers(0, 256, size=(count, *image_shape), dtype=np.uint8)
    elif name == "gaussian_noise":
        images = np.clip(np.round(rng.normal(128.0, 64.0, size=(count, *image_shape))), 0, 255)
        images = images.astype(np.uint8)
    else:
        raise InputError(f"Unknown noise set {name!r}. Known: {list(NOISE_SETS)}")
    labels = np.full((count,), OOD_LABEL, np.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels))


def to_numpy(dataset: tf.data.Dataset, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Materializes a (small) dataset as ``(images, labels)`` arrays."""
    images, labels = [], []
    for x, y in dataset.batch(batch_size).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    if not images:
        raise InputError("The dataset is empty: expected at least one example.")
    return np.concatenate(images), np.concatenate(labels)
