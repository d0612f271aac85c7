"""Per-epoch training state for resuming after a crash, written atomically.

Each finished epoch N becomes a directory ``DIR/epoch_000N`` that appears in one rename, so a
run killed at any moment leaves only complete epoch directories (and hidden temporaries, which
are ignored). Resuming restores the newest one that loads; a corrupt one is reported and the
one before it is tried. The last ``keep`` epochs are kept.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path
from typing import Callable

import keras

from bal_tf.io import atomic_path

_EPOCH_DIR = re.compile(r"^epoch_(\d{4,})$")


def random_state_variables(model: keras.Model) -> list:
    """The model's random-number state: the seed generators of its Dropout (and other random)
    layers. ``model.save_weights`` leaves them out, so a resumed run would draw the first epochs'
    dropout masks again and part from an uninterrupted run of the same seed."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights and "seed_generator" in v.path]


def save_model_state(model: keras.Model, directory: Path) -> None:
    """Weights (with the optimizer's state, if built) and random-number state, into ``directory``."""
    import numpy as np

    model.save_weights(directory / "model.weights.h5")
    states = random_state_variables(model)
    if states:
        np.save(directory / "random_state.npy", np.stack([np.asarray(v.numpy()) for v in states]))


def load_model_state(model: keras.Model, directory: Path) -> None:
    """Restores what ``save_model_state`` wrote."""
    import numpy as np

    model.load_weights(directory / "model.weights.h5")
    states = random_state_variables(model)
    if states:
        saved = np.load(directory / "random_state.npy", allow_pickle=False)
        if saved.shape[0] != len(states):
            raise ValueError(f"{directory}: random state of {saved.shape[0]} seed generators, expected {len(states)}")
        for variable, value in zip(states, saved):
            variable.assign(value)


class EpochCheckpoints:
    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory)
        self.keep = keep

    def saved_epochs(self) -> list[int]:
        """Finished epochs with a complete checkpoint, newest first."""
        if not self.directory.is_dir():
            return []
        epochs = [int(m.group(1)) for p in self.directory.iterdir() if (m := _EPOCH_DIR.match(p.name))]
        return sorted(epochs, reverse=True)

    def path(self, epoch: int) -> Path:
        return self.directory / f"epoch_{epoch:04d}"

    def save(self, epoch: int, write: Callable[[Path], None]) -> Path:
        """Writes epoch ``epoch`` (1-based, finished) with ``write(tmp_dir)``, then prunes."""
        with atomic_path(self.path(epoch), suffix="") as tmp:
            tmp.mkdir()
            write(tmp)
        for old in self.saved_epochs()[self.keep:]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return self.path(epoch)

    def restore(self, read: Callable[[Path], None]) -> int:
        """Calls ``read(dir)`` on the newest loadable checkpoint; returns its epoch (0 = none)."""
        for epoch in self.saved_epochs():
            try:
                read(self.path(epoch))
                return epoch
            except Exception as exc:  # a damaged file: numpy, zip, JSON or Keras errors
                warnings.warn(f"Checkpoint {self.path(epoch)} could not be restored "
                              f"({type(exc).__name__}: {exc}); trying an older one.")
        return 0

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class SaveEachEpoch(keras.callbacks.Callback):
    """Keras callback: ``checkpoints.save(epoch, write)`` at the end of every epoch."""

    def __init__(self, checkpoints: EpochCheckpoints, write: Callable[[Path], None],
                 should_save: Callable[[], bool] = lambda: True):
        super().__init__()
        self.checkpoints = checkpoints
        self.write = write
        self.should_save = should_save

    def on_epoch_end(self, epoch, logs=None):
        if self.should_save():
            self.checkpoints.save(epoch + 1, self.write)


def seeded_epochs(arrays: tuple, batch_size: int, seed: int, first_epoch: int, epochs: int,
                  shuffle: bool = True, drop_remainder: bool = False, per_example=None):
    """Batches of in-memory ``arrays`` for epochs ``first_epoch .. epochs - 1``, back to back.

    Epoch e's order is a stateless shuffle seeded by ``(seed, e)`` and ``per_example(seed, *x)``
    gets a per-example stateless seed ``(seed * 100003 + e, index)``: what an epoch sees depends
    on nothing but the seed and its number, so a resumed run sees the batches an uninterrupted
    one would.
    """
    import tensorflow as tf

    count = len(arrays[0])
    tensors = tuple(tf.constant(a) for a in arrays)

    def epoch_indices(epoch):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).map(lambda i: (epoch, i)).batch(
            batch_size, drop_remainder=drop_remainder)

    def gather(epoch, indices):
        batch = tuple(tf.gather(t, indices) for t in tensors)
        if per_example is None:
            return batch
        seeds = tf.stack([tf.constant(seed, tf.int64) * 100_003 + epoch, tf.cast(indices, tf.int64)], axis=-1)
        return tf.map_fn(lambda item: per_example(item[0], *item[1:]), (seeds, *batch),
                         fn_output_signature=tuple(tf.TensorSpec(t.shape[1:], t.dtype) for t in tensors))

    dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_indices)
    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def resumable_fit(model: keras.Model, make_data: Callable[[int], object], *, epochs: int,
                  steps_per_epoch: int, checkpoints: EpochCheckpoints | None,
                  save_state: Callable[[Path], None], load_state: Callable[[Path], None],
                  callbacks=(), after_save=(), strategy=None, writes: bool = True, should_save=lambda: True,
                  verbose="auto", stage: str = "", **fit_kwargs) -> int:
    """Trains ``model`` for ``epochs``, resuming after the newest complete checkpoint.

    The one training loop of both stages: restore the newest loadable epoch (``load_state``),
    save every finished epoch (``save_state``, only where ``writes``: the chief), then Keras'
    ``fit`` or, under a multi-worker strategy, ``bal_tf.distribute.fit_in_strategy_loop``.

    Args:
        make_data: ``first_epoch -> dataset`` of the batches of epochs ``first_epoch .. epochs-1``
            back to back (seeded per epoch, so a resumed run sees an uninterrupted run's batches).
        checkpoints: where the epochs go; ``None`` trains from scratch without saving.
        callbacks / after_save: Keras callbacks run before / after the epoch's checkpoint is
            written (what the checkpoint must hold goes before; what may stop the process after).
        should_save: checked before each save (e.g. not after a diverged epoch).
        stage: prefix of the "resuming" message.
        fit_kwargs: more arguments of ``fit`` (e.g. ``validation_data``).

    Returns:
        The epoch training resumed after (0 = from scratch).
    """
    from bal_tf import distribute

    first_epoch = 0
    callbacks, after_save = list(callbacks), list(after_save)
    if checkpoints is not None:
        first_epoch = checkpoints.restore(load_state)
        if first_epoch:
            print(f"{stage}: resuming after epoch {first_epoch} ({checkpoints.path(first_epoch)})")
        if writes:
            callbacks.append(SaveEachEpoch(checkpoints, save_state, should_save=should_save))
    callbacks += after_save
    if first_epoch >= epochs:
        return first_epoch
    data = make_data(first_epoch)
    if strategy is not None and distribute.is_multiworker(strategy):
        distribute.fit_in_strategy_loop(model, strategy, data, epochs, steps_per_epoch, first_epoch, callbacks,
                                        verbose=verbose)
    else:
        model.fit(data, epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=verbose, shuffle=False, **fit_kwargs)
    return first_epoch
