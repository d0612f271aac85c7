"""Stage 1: train the classifier H = head(h(x)) with Adam and cross-entropy (paper Sec. 5.2).

Resumable: after every epoch the weights, optimizer state and dropout's random state go to ``RUN/stage1/resume/epoch_N``
(each written atomically, see ``bal_tf.checkpointing``); running the same command again
continues after the newest complete epoch, on the same batches an uninterrupted run would see.
The finished classifier is written atomically to ``RUN/classifier.keras``.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from bal_tf import data, distribute
from bal_tf.backbones import build_classifier
from bal_tf.checkpointing import EpochCheckpoints, load_model_state, resumable_fit, save_model_state, seeded_epochs
from bal_tf.config import RunConfig
from bal_tf.errors import InputError
from bal_tf.io import atomic_path
from bal_tf.run_dir import RunDir


class IdData:
    """The ID splits of a run: training part, held-out part (selection / calibration), test.

    Each split is read on first use only, into memory: unbatched ``(image, label)`` datasets of
    known length (a class-filtered tfds split has none, and Keras then warns that validation
    "ran out of data").
    """

    def __init__(self, config: RunConfig):
        self.config = config
        name = config.data.id_dataset
        classes = data.run_classes(config.data)
        self.num_classes = len(classes) if classes else data.id_num_classes(name)
        self.image_shape = data.dataset_spec(name).image_shape
        train_split, holdout_split = data.train_holdout_splits(config.data.holdout_percent)
        self._sources = {"train": (train_split, config.classifier.max_train_examples),
                         "holdout": (holdout_split, None), "test": ("test", config.data.max_test_examples)}
        self._arrays = {}

    def arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images uint8 [N, H, W, C], labels int64 [N])`` of split ``name``; N may be 0."""
        if name not in self._arrays:
            split, limit = self._sources[name]
            dataset = data.load_id_split(self.config.data, split, limit=limit)
            try:
                self._arrays[name] = data.to_numpy(dataset)
            except InputError:  # an empty split (e.g. holdout_percent=0)
                self._arrays[name] = (np.zeros((0, *self.image_shape), np.uint8), np.zeros((0,), np.int64))
        return self._arrays[name]

    def dataset(self, name: str) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(self.arrays(name))

    @property
    def train(self) -> tf.data.Dataset:
        return self.dataset("train")

    @property
    def holdout(self) -> tf.data.Dataset:
        return self.dataset("holdout")

    @property
    def test(self) -> tf.data.Dataset:
        return self.dataset("test")


def load_id_data(config: RunConfig) -> IdData:
    """The ID dataset's splits (each loaded on first use)."""
    return IdData(config)


def augment_crop_flip(image: tf.Tensor, seed: tf.Tensor, padding: int = 4) -> tf.Tensor:
    """Random crop after zero-padding by ``padding`` pixels, and a random horizontal flip.

    Stateless ops with a per-example seed, so the same run seed gives the same augmentations.
    """
    height, width, channels = image.shape
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    image = tf.image.stateless_random_crop(padded, (height, width, channels), seed=seed)
    return tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])


def training_pipeline(
    images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, augment: bool,
    first_epoch: int = 0, epochs: int = 1,
) -> tf.data.Dataset:
    """Epochs ``first_epoch .. epochs - 1`` back to back, each shuffled and augmented from seeds
    that depend only on ``(seed, epoch)`` (``bal_tf.checkpointing.seeded_epochs``): a run
    resumed at epoch e trains on exactly the batches an uninterrupted run would."""
    per_example = (lambda s, image, label: (augment_crop_flip(image, s), label)) if augment else None
    return seeded_epochs((images, labels), batch_size, seed, first_epoch, epochs, per_example=per_example)


def eval_pipeline(dataset: tf.data.Dataset, batch_size: int = 512) -> tf.data.Dataset:
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def build_optimizer(config: RunConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate_schedule(config, steps_per_epoch))


def learning_rate_schedule(config: RunConfig, steps_per_epoch: int):
    """Adam's rate for stage 1: a float (``constant``) or a schedule of the step (``cosine``,
    ``one_cycle``; see ``ClassifierTrainConfig.lr_schedule``)."""
    lr = config.classifier.learning_rate
    steps = steps_per_epoch * config.classifier.epochs
    if config.classifier.lr_schedule == "cosine":  # else "constant" (checked by the config)
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    elif config.classifier.lr_schedule == "one_cycle":
        warmup = max(int(round(steps * config.classifier.warmup_fraction)), 1)
        lr = keras.optimizers.schedules.CosineDecay(lr / 25.0, decay_steps=max(steps - warmup, 1),
                                                    warmup_target=lr, warmup_steps=warmup)
    return lr


def train_classifier(config: RunConfig, run: RunDir, id_data: IdData | None = None,
                     verbose: str | int = "auto", extra_callbacks=(),
                     strategy: tf.distribute.Strategy | None = None) -> keras.Model:
    """Trains (or resumes training) the classifier and saves ``RUN/classifier.keras``.

    Args:
        config: the run's config (data, backbone and ``classifier`` sections are used).
        run: the run directory.
        id_data: preloaded ID splits (default: loaded from the config).
        verbose: Keras' ``fit`` verbosity (``"auto"`` shows a progress bar).
        extra_callbacks: more Keras callbacks, run after the checkpoint callback.
        strategy: a ``tf.distribute`` strategy; ``classifier.batch_size`` is the global batch.
            Under a multi-worker strategy only the chief writes (``run.writable``) and every
            worker resumes from the chief's checkpoints (shared storage needed).

    Returns:
        The trained classifier (image -> logits).
    """
    keras.utils.set_random_seed(config.seed)
    id_data = id_data or load_id_data(config)
    augment = config.classifier.augment
    if augment is None:
        augment = id_data.image_shape[-1] == 3  # not for digits: a mirrored 2 is not a 2
    train_images, train_labels = id_data.arrays("train")
    if len(train_images) == 0:
        raise InputError(
            f"The training split of {config.data.id_dataset!r} is empty. Expected at least one example.")
    train_count = len(train_images)
    steps_per_epoch = -(-train_count // config.classifier.batch_size)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_classifier(config.backbone, id_data.image_shape, id_data.num_classes)
        model.compile(
            optimizer=build_optimizer(config, steps_per_epoch),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        model.optimizer.build(model.trainable_variables)
    callbacks = list(extra_callbacks)
    if run.writable:
        callbacks.insert(0, keras.callbacks.TensorBoard(str(run.logs_dir / "stage1"), update_freq="epoch"))
    holdout = eval_pipeline(id_data.holdout)
    has_holdout = len(id_data.arrays("holdout")[0]) != 0
    checkpoints = EpochCheckpoints(run.stage1_dir / "resume")
    start = time.time()
    # Resume: weights and optimizer state (Adam's moments, the step that drives the cosine
    # schedule) of the newest complete epoch; the data pipeline then starts at the next epoch.
    resumable_fit(
        model,
        lambda first_epoch: training_pipeline(train_images, train_labels, config.classifier.batch_size,
                                              config.seed, augment, first_epoch, config.classifier.epochs),
        epochs=config.classifier.epochs, steps_per_epoch=steps_per_epoch, checkpoints=checkpoints,
        save_state=lambda path: save_model_state(model, path),
        load_state=lambda path: load_model_state(model, path),
        after_save=callbacks, strategy=strategy, writes=run.writable, verbose=verbose, stage="stage 1",
        validation_data=holdout if has_holdout else None)
    train_seconds = time.time() - start
    test_loss, test_accuracy = loss_and_accuracy(model, eval_pipeline(id_data.test))
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "fit_seconds_this_process": round(train_seconds, 1),
        "epochs": config.classifier.epochs,
        "params": int(model.count_params()),
    }
    if has_holdout:
        metrics["holdout_accuracy"] = loss_and_accuracy(model, holdout)[1]
    if run.writable:
        run.write_json("stage1/metrics.json", metrics)
        save_keras(model, run.classifier_path)  # last: its presence means stage 1 is done
        checkpoints.clear()
    distribute.barrier(strategy)  # the other workers read classifier.keras next
    return model


def loss_and_accuracy(model: keras.Model, batches: tf.data.Dataset) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a logits model, by direct calls (which, unlike
    ``evaluate``, work under every tf.distribute strategy)."""
    total_loss, correct, count = 0.0, 0, 0
    for images, labels in batches:
        logits = model(images, training=False)
        total_loss += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)))
        correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == labels, tf.int32)))
        count += len(labels)
    return total_loss / max(count, 1), correct / max(count, 1)


def save_keras(model: keras.Model, path: Path) -> None:
    """Saves a ``.keras`` file atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_classifier(path: str | Path) -> keras.Model:
    """Loads a Keras classifier (``.keras``, safe mode on) with a clear error on bad files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Classifier file {path} does not exist.")
    if path.suffix != ".keras":
        raise InputError(f"Expected a Keras v3 `.keras` classifier file. Received: {path.name}")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises a variety of zip / h5 / JSON errors
        raise InputError(f"Could not load classifier {path}: {type(exc).__name__}: {exc}") from exc

