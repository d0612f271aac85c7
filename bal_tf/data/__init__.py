"""ID and OOD data: tfds datasets, image folders, noise sets, offline provisioning."""

from bal_tf.data.datasets import (
    DATASETS,
    HELD_OUT_CLASSES,
    HELD_OUT_CLASSES_VALIDATION,
    MNIST_SHAPE,
    NOISE_SETS,
    RGB_SHAPE,
    DatasetSpec,
    convert_image,
    dataset_spec,
    ensure_prepared,
    id_num_classes,
    load_dataset,
    load_id_split,
    load_ood_set,
    run_classes,
    load_image_folder,
    noise_dataset,
    to_numpy,
    train_holdout_splits,
)
from bal_tf.data.idx import read_idx

__all__ = [
    "DATASETS", "HELD_OUT_CLASSES", "HELD_OUT_CLASSES_VALIDATION", "load_id_split", "load_ood_set", "run_classes", "MNIST_SHAPE", "NOISE_SETS", "RGB_SHAPE", "DatasetSpec", "convert_image",
    "dataset_spec", "ensure_prepared", "id_num_classes", "load_dataset", "load_image_folder",
    "noise_dataset", "read_idx", "to_numpy", "train_holdout_splits",
]
