"""tf.distribute for both stages: ``default``, ``mirrored`` (one host, all its GPUs) and
``multiworker`` (hosts described by ``TF_CONFIG``).

With ``default`` and ``mirrored`` the models train with Keras' own ``fit``. Keras 3's ``fit``
fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585: "Attempt to convert a value
(PerReplica...) to a Tensor"), so there :func:`fit_in_strategy_loop` drives the model's own
``train_step`` with ``strategy.run``: the same step as ``fit`` runs, classifier or BAL's GAN,
with the same callbacks. Keras 3 optimizers all-reduce (sum) the gradients themselves; losses
are divided by the number of replicas so that the sum is the global-batch mean.

The config's batch sizes are global batches: N workers with batch 128 each see 128 / N
examples per step, and the run matches a single-worker run with batch 128.
"""

from __future__ import annotations

import functools
import os

import keras
import tensorflow as tf

from bal_tf.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multiworker needs TF_CONFIG describing the cluster, e.g. "
                              '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                              '"task": {"type": "worker", "index": 0}}. Received: no TF_CONFIG.')
        return _multiworker_strategy()
    raise ConfigError(f"Unknown strategy {name!r}. Known: {list(STRATEGIES)}")


@functools.cache
def _multiworker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    # TensorFlow configures its collective ops once per process (a second strategy there fails
    # with "Collective ops must be configured at program startup"): one process, one strategy.
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True on the one process that writes the run's artifacts (the chief, else worker 0)."""
    if strategy is None or not is_multiworker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def per_replica_loss(loss):
    """A replica's share of a global-batch mean loss (gradients are summed over replicas)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss / replicas


def fit_in_strategy_loop(model: keras.Model, strategy: tf.distribute.Strategy, dataset: tf.data.Dataset,
                         epochs: int, steps_per_epoch: int, initial_epoch: int = 0, callbacks=(),
                         verbose=0) -> keras.callbacks.History:
    """``model.fit`` for strategies whose Keras ``fit`` is broken: ``model.train_step`` in
    ``strategy.run``, epoch by epoch, with Keras callbacks (stop_training is honoured).

    ``dataset`` yields global batches for epochs ``initial_epoch .. epochs - 1`` back to back.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    iterator = iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))

    @tf.function
    def one_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for name, value in logs.items()}

    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList([*callbacks, history], model=model, verbose=verbose,
                                                 epochs=epochs, steps=steps_per_epoch)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        for metric in model.metrics:
            metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        logs = {}
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = {name: float(value) for name, value in one_step(iterator).items()}
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return history


def barrier(strategy: tf.distribute.Strategy | None) -> None:
    """Blocks until every worker gets here (a collective all-reduce); a no-op on one worker.

    Used where the chief writes a file that the other workers then read (the classifier, the
    feature cache)."""
    if strategy is None or not is_multiworker(strategy):
        return

    @tf.function
    def all_arrive():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

    all_arrive()
