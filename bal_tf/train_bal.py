"""Stage 2: train BAL's GAN on cached features, select a checkpoint, log everything.

TensorBoard (``RUN/logs/stage2``): every loss term and D's mean output on real, shuffled,
trivial, generated and hard features (per epoch), the selection criterion and its families,
and histograms of D on each kind of feature.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from bal_tf import density_ratio, distribute, selection
from bal_tf.config import GANConfig
from bal_tf.checkpointing import EpochCheckpoints, resumable_fit
from bal_tf.errors import InputError
from bal_tf.features import FeatureSet
from bal_tf.gan import feature_batches, make_gan, steps_per_epoch


@dataclasses.dataclass
class BALResult:
    gan: keras.Model
    discriminator: keras.Model  # the selected one
    last_discriminator: keras.Model
    selected_epoch: int  # 1-based
    history: list
    diverged: str | None = None  # set when the NaN guard stopped training


class SelectionCallback(keras.callbacks.Callback):
    """Scores every epoch on held-out ID vs synthetic OOD and remembers the best weights.

    Also the NaN guard: a non-finite loss or D mean after any batch stops training, and the
    weights of the last finished epoch stay the "last" checkpoint (``diverged`` says where).
    """

    def __init__(self, data: selection.SelectionData | None, families, log_dir: str | None, seed: int):
        super().__init__()
        self.data = data
        self.families = list(families)
        self.seed = seed
        self.writer = tf.summary.create_file_writer(str(Path(log_dir) / "histograms")) if log_dir else None
        self.best = -np.inf
        self.best_epoch = None
        self.best_weights = None
        self.best_reading = None  # density_ratio.P2Reading of the best epoch
        self.last_reading = None
        self.last_good_weights = None
        self.diverged = None
        self.epoch = 0
        self.history = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    # --- resume support: everything the selection has learned so far, as arrays and JSON ---
    def state(self) -> tuple[dict, dict]:
        arrays = {}
        for prefix, weights in (("best_d", (self.best_weights or ((), ()))[0]),
                                ("best_g", (self.best_weights or ((), ()))[1]),
                                ("last_good_d", self.last_good_weights or ())):
            arrays.update({f"{prefix}/{i}": w for i, w in enumerate(weights)})
        meta = {"best": None if self.best_epoch is None else float(self.best), "best_epoch": self.best_epoch,
                "history": self.history, "diverged": self.diverged,
                "best_reading": None if self.best_reading is None else dataclasses.asdict(self.best_reading),
                "last_reading": None if self.last_reading is None else dataclasses.asdict(self.last_reading)}
        return arrays, meta

    def load_state(self, arrays: dict, meta: dict) -> None:
        take = lambda prefix: [arrays[k] for k in sorted((k for k in arrays if k.startswith(prefix + "/")),  # noqa: E731
                                                         key=lambda k: int(k.split("/")[1]))]
        self.best_epoch, self.history, self.diverged = meta["best_epoch"], meta["history"], meta["diverged"]
        self.best = -np.inf if meta["best"] is None else meta["best"]
        reading = lambda name: None if meta.get(name) is None else density_ratio.P2Reading(**meta[name])  # noqa: E731
        self.best_reading, self.last_reading = reading("best_reading"), reading("last_reading")
        self.best_weights = (take("best_d"), take("best_g")) if self.best_epoch is not None else None
        self.last_good_weights = take("last_good_d") or None

    def on_train_batch_end(self, batch, logs=None):
        self._check_finite(logs, f"batch {batch + 1} of epoch {self.epoch + 1}")

    def _check_finite(self, logs, where) -> bool:
        bad = {k: float(v) for k, v in (logs or {}).items() if not np.isfinite(float(v))}
        if bad and self.diverged is None:
            self.diverged = f"GAN training diverged at {where}: {bad}"
            self.model.stop_training = True
        return self.diverged is None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if not self._check_finite(logs, f"the end of epoch {epoch + 1}"):
            return  # nothing to select from a broken model
        record = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
        scoring = self.model.scoring_discriminator
        if self.data is not None:
            aurocs, d_values, reading = selection.selection_scores(self.model, self.data, self.families,
                                                                   seed=self.seed + epoch)
            criterion = float(np.mean(list(aurocs.values())))
            self.last_reading = reading
            record.update(p2_beta=reading.beta)
            # Written into `logs`, so the TensorBoard callback after this one logs them too.
            logs["selection_criterion"] = criterion
            for family, value in aurocs.items():
                logs[f"selection_{family}"] = value
            record.update(selection_criterion=criterion, **{f"selection_{k}": v for k, v in aurocs.items()})
            if self.writer is not None:
                with self.writer.as_default(step=epoch + 1):
                    for kind, values in d_values.items():
                        tf.summary.histogram(f"D_on/{kind}", values)
            if criterion > self.best:
                self.best, self.best_epoch, self.best_reading = criterion, epoch + 1, reading
                self.best_weights = (scoring.get_weights(), self.model.generator.get_weights())
        self.last_good_weights = scoring.get_weights()
        self.history.append(record)


def train_bal(config: GANConfig, train: FeatureSet, *, selection_data: selection.SelectionData | None = None,
              seed: int = 0, verbose="auto", log_dir: str | None = None,
              checkpoint_dir: str | Path | None = None, strategy: tf.distribute.Strategy | None = None,
              extra_callbacks=()) -> BALResult:
    """Trains the GAN (Algorithm 1) and returns the selected and the last discriminator.

    Args:
        config: the GAN section of the run config.
        train: cached training features (the GAN's data).
        selection_data: held-out ID and synthetic OOD features for checkpoint selection
            (``bal_tf.selection.build_selection_data``); ``None`` keeps the last epoch.
        checkpoint_dir: if set, the full training state (G, D, D's average, both optimizers,
            the sampler's RNG, the selection so far) is saved there after every epoch, and
            training resumes from the newest complete one. A resumed run ends with the weights
            an uninterrupted run of the same seed ends with. Under a multi-worker strategy
            every worker restores from it and only the chief writes (shared storage needed).
        strategy: a ``tf.distribute`` strategy (``bal_tf.distribute.make_strategy``); the
            config's batch size is the global batch.
        extra_callbacks: more Keras callbacks (after selection and checkpointing).
    """
    if len(train) < 2:
        raise InputError(f"BAL needs at least 2 training features. Received: {len(train)}")
    if not np.isfinite(train.features).all():
        raise InputError("The training features contain NaN or Inf.")
    num_classes = train.logits.shape[-1]
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        gan = make_gan(config, num_classes, train.features, train.labels, seed=seed)
    families = selection.usable_families(config.synthetic_families, selection_data)
    selector = SelectionCallback(selection_data, families, log_dir, seed)
    # The selection runs first (the epoch's checkpoint holds it), TensorBoard last (it logs the
    # selection criterion that the selector writes into the epoch's logs).
    after_save = list(extra_callbacks)
    chief = distribute.is_chief(strategy)
    if log_dir and chief:
        after_save.append(keras.callbacks.TensorBoard(log_dir, update_freq="epoch"))
    start = time.time()
    resumable_fit(
        gan,
        lambda first_epoch: feature_batches(train.features, train.labels, config.batch_size, seed,
                                            first_epoch=first_epoch, epochs=config.epochs),
        epochs=config.epochs, steps_per_epoch=steps_per_epoch(len(train), config.batch_size),
        checkpoints=None if checkpoint_dir is None else EpochCheckpoints(checkpoint_dir),
        save_state=lambda path: save_training_state(path, gan, selector),
        load_state=lambda path: load_training_state(path, gan, selector),
        should_save=lambda: selector.diverged is None,
        callbacks=[selector], after_save=after_save, strategy=strategy, writes=chief, verbose=verbose, stage="stage 2")
    seconds = time.time() - start
    if selector.diverged and selector.last_good_weights is None:
        raise FloatingPointError(
            f"{selector.diverged}, before any epoch finished. Lower gan.d_learning_rate / "
            "gan.g_learning_rate or the FGSM epsilon."
        )
    scoring = gan.scoring_discriminator
    last = keras.models.clone_model(scoring)
    last.set_weights(selector.last_good_weights if selector.last_good_weights is not None
                     else scoring.get_weights())
    selected_epoch = len(selector.history)
    if config.selection == "synthetic" and selector.best_weights is not None:
        selected_epoch = selector.best_epoch
        scoring.set_weights(selector.best_weights[0])
        gan.generator.set_weights(selector.best_weights[1])
    for record in selector.history:
        record["seconds_total"] = round(seconds, 2)
    if selector.diverged and not (config.selection == "synthetic" and selector.best_weights is not None):
        scoring.set_weights(selector.last_good_weights)
    selected_reading = selector.best_reading if selected_epoch == selector.best_epoch else selector.last_reading
    scoring, last = (p2_discriminator(config, gan, d, reading)
                     for d, reading in ((scoring, selected_reading), (last, selector.last_reading)))
    return BALResult(gan, scoring, last, selected_epoch, selector.history, selector.diverged)


def p2_discriminator(config: GANConfig, gan, discriminator: keras.Model, reading) -> keras.Model:
    """D as it is scored: D itself for the paper's p2 (``p2_target="ratio"``, no calibration), else
    ``density_ratio.build_scoring_discriminator`` with the epoch's reading (without selection
    data: beta of ``density`` 1, of ``blend`` the grid's middle, no calibration)."""
    if config.p2_target == "ratio" and config.p2_calibration == "none":
        return discriminator
    if reading is None:
        grid = density_ratio.betas(config.p2_target)
        reading = density_ratio.P2Reading(grid[len(grid) // 2])
    gaussians = gan.gaussians if config.p2_target != "ratio" else None
    return density_ratio.build_scoring_discriminator(discriminator, gaussians, config.ladder_scales, reading)


def _optimizer_variables(gan) -> dict:
    for optimizer, model in ((gan.d_optimizer, gan.discriminator), (gan.g_optimizer, gan.generator)):
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
    return {"d_opt": gan.d_optimizer.variables, "g_opt": gan.g_optimizer.variables}


def _gan_variables(gan) -> dict:
    groups = {"g": gan.generator.weights, "d": gan.discriminator.weights,
              "seed": [gan.seed_generator.state], **_optimizer_variables(gan)}
    if gan.ema_discriminator is not None:
        groups["ema"] = gan.ema_discriminator.weights
    return groups


def save_training_state(path: Path, gan, selector: SelectionCallback) -> None:
    """The GAN's and the selection's state after an epoch, as ``state.npz`` + ``selection.json``
    (plain arrays and JSON: nothing is pickled)."""
    import json

    arrays = {f"{group}/{i}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
              for group, variables in _gan_variables(gan).items() for i, v in enumerate(variables)}
    selector_arrays, meta = selector.state()
    arrays.update({f"selector/{k}": v for k, v in selector_arrays.items()})
    np.savez(path / "state.npz", **arrays)
    (path / "selection.json").write_text(json.dumps(meta))


def load_training_state(path: Path, gan, selector: SelectionCallback) -> None:
    import json

    meta = json.loads((path / "selection.json").read_text())
    with np.load(path / "state.npz", allow_pickle=False) as stored:
        arrays = {k: stored[k] for k in stored.files}
    for group, variables in _gan_variables(gan).items():
        for i, variable in enumerate(variables):
            value = arrays[f"{group}/{i}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise InputError(f"{path}: {group}/{i} has shape {value.shape}, the model expects "
                                 f"{tuple(variable.shape)} (a checkpoint of another config?)")
            variable.assign(value)
    selector.load_state({k[len("selector/"):]: v for k, v in arrays.items() if k.startswith("selector/")}, meta)
