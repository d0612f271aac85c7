"""Algorithm 1: the Keras model whose ``train_step`` runs one D step then one G step per batch of
cached features, and ``make_gan``, which builds G (``bal_tf.generator``, RSM), D
(``bal_tf.discriminator``, RDM) and what D's negatives are drawn from (``bal_tf.rem``,
``bal_tf.negatives``) for one config.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bal_tf import losses, negatives, rem
from bal_tf.config import GANConfig
from bal_tf.discriminator import build_discriminator, whitening_transform
from bal_tf.distribute import per_replica_loss
from bal_tf.errors import ConfigError
from bal_tf.generator import build_generator


class BoundaryAwareGAN(keras.Model):
    """BAL's conditional GAN on penultimate features (Algorithm 1, lines 1-14).

    ``fit`` takes a dataset of ``(features, labels)`` batches. Each ``train_step``:

    * D step (lines 3-9): D minimizes L_d = L_t + L_s + L_u (Eq. 11) against the negatives of
      ``bal_tf.negatives`` that the config turns on (trivial box pairs, Eqs. 4-5; shuffled
      pairs, Eq. 8; hard pairs from G with an FGSM step on z, Eq. 7; the default's ladder and floor references).
    * G step (lines 11-14): random labels, L_g of Eq. 12.

    Args:
        generator: ``[z, label] -> feature``.
        discriminator: ``[feature, label] -> logit``.
        num_classes: K.
        config: the GAN section of the run config.
        statistics: ``rem.ClassStatistics`` of the training features (Table 3's Gaussians).
        memory_bank: ``[K, B, m]`` training features per class (``losses.class_memory_bank``):
            Eq. 12's M_c when ``l1_reference="memory_bank"``.
        gaussians: ``rem.TiedGaussians`` of the training features (the ladder and floor references,
            and the closed-form log q of D's density target).
        seed: seed of the model's own ``SeedGenerator``.
    """

    def __init__(self, generator, discriminator, num_classes: int, config: GANConfig,
                 statistics: rem.ClassStatistics | None = None, seed: int = 0,
                 memory_bank: np.ndarray | None = None,
                 gaussians: rem.TiedGaussians | None = None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.num_classes = num_classes
        self.gan_config = config
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.seed_generator = keras.random.SeedGenerator(seed)
        if needs_statistics(config) and statistics is None:
            raise ConfigError("trivial_sampling='gaussian'/'gaussian_tail' needs the class "
                              "statistics (rem.ClassStatistics.fit on the training features).")
        if config.l1_reference == "memory_bank" and memory_bank is None:
            raise ConfigError("l1_reference='memory_bank' needs the memory bank (losses.class_memory_bank "
                              "on the training features).")
        if needs_gaussians(config) and gaussians is None:
            raise ConfigError("ladder_weight > 0, floor_weight > 0 and p2_target density/blend need the tied "
                              "Gaussians (rem.TiedGaussians.fit on the training features).")
        self.gaussians = gaussians
        self.statistics = statistics
        self.memory_bank = None if memory_bank is None else ops.convert_to_tensor(np.asarray(memory_bank, np.float32))
        self.sources = negatives.active_sources(config)
        self.ema_discriminator = None
        if config.d_ema_decay > 0:
            # Polyak averaging of D's weights: the GAN game makes D's response off the data
            # manifold swing from step to step; the average is what gets scored and selected.
            self.ema_discriminator = keras.models.clone_model(discriminator)
            self.ema_discriminator.set_weights(discriminator.get_weights())
            for weight in self.ema_discriminator.weights:
                weight.trainable = False
        # One tracker per loss term and per kind of pair that D sees in this config, no more.
        names = ["d_loss", "g_loss", "l_t"] + [term for term in ("l_s", "l_u") if self._has_term(term)]
        names += ["g_adversarial", "g_l1", "d_real", "d_generated"] + [f"d_{name}" for name in self.sources]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        # G and D are built functional models: nothing is left to build (and fit under a
        # strategy would otherwise try to build it by calling it on features alone).
        self.built = True

    def _has_term(self, term: str) -> bool:
        return {"l_s": self.gan_config.use_shuffle_loss, "l_u": self.gan_config.use_uniform_loss}[term]

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def scoring_discriminator(self):
        """The D used for scoring: the weight average if ``d_ema_decay`` > 0, else D itself."""
        return self.ema_discriminator if self.ema_discriminator is not None else self.discriminator

    def ema_decay_now(self):
        """This step's decay. With ``d_ema_bias_correction`` the average is Adam's debiased one,
        m_t / (1 - decay^t) with m_0 = 0: step t's decay is decay (1 - decay^(t-1)) / (1 - decay^t),
        so the average holds no trace of D's random initialization (uncorrected, about
        exp(-t (1 - decay)) of it remains: 66% after 422 steps at 0.999)."""
        decay = self.gan_config.d_ema_decay
        if not self.gan_config.d_ema_bias_correction:
            return decay
        step = ops.cast(self.d_optimizer.iterations, "float32")  # t: D's updates so far, this one included
        return decay * (1.0 - decay ** (step - 1.0)) / (1.0 - decay ** step)

    def update_ema(self):
        decay = self.ema_decay_now()
        for average, weight in zip(self.ema_discriminator.weights, self.discriminator.weights):
            average.assign(decay * average + (1.0 - decay) * weight)

    def call(self, inputs, training=False):
        """D's logit for ``(features, labels)``: the model's inference is D."""
        features, labels = inputs
        return self.discriminator([features, labels], training=training)

    def sample_negatives(self, features, labels):
        """This batch's negatives of every active source (``negatives.SOURCE_ORDER``), and G's
        ``(z, labels)`` of L_t's generated pairs."""
        batch = ops.shape(features)[0]
        drawn = {name: getattr(negatives, name)(self, features, labels)
                 for name in ("trivial", "shuffled") if name in self.sources}
        z, g_labels = negatives.generated_latents(self, batch)
        if "hard" in self.sources:
            drawn["hard"] = negatives.hard(self, z, g_labels)
        drawn.update({name: getattr(negatives, name)(self, features, labels)
                      for name in ("ladder", "floor") if name in self.sources})
        return [drawn[name] for name in self.sources], (z, g_labels)

    def discriminator_loss(self, features, labels, training=True):
        """L_d of Eq. 11 for one batch; returns the loss and its parts for the trackers."""
        cfg = self.gan_config
        sources, (z, g_labels) = self.sample_negatives(features, labels)
        # One D pass over every pair of the step (real, generated, each source's negatives), split
        # after: D is a per-pair MLP (no batch statistics), so each pair's logit is what its own
        # pass would give, at one dispatch of D's layers (and of their gradients) instead of 7.
        pair_features = [features, self.generator([z, g_labels], training=False)] + [s.features for s in sources]
        pair_labels = [labels, g_labels] + [ops.cast(s.labels, "int32") for s in sources]
        logits = self.discriminator([ops.concatenate(pair_features, axis=0), ops.concatenate(pair_labels, axis=0)],
                                    training=training)
        real_logits, generated_logits, *source_logits = tf.split(
            logits, tf.stack([tf.shape(f)[0] for f in pair_features]), num=len(pair_features), axis=0)
        scored = list(zip(sources, source_logits))
        parts = {"d_real": ops.mean(ops.sigmoid(real_logits)), "d_generated": ops.mean(ops.sigmoid(generated_logits))}
        for source, logits in scored:
            parts[f"d_{source.name}"] = ops.mean(ops.sigmoid(logits))
        if cfg.pool_hard_with_trivial and "hard" in self.sources:
            scored = negatives.pool_trivial_and_hard(scored, cfg.lambda_c)

        l_t = losses.vanilla_loss(real_logits, generated_logits)  # Eq. 10
        d_loss = l_t if cfg.use_vanilla_loss else ops.zeros(())
        parts["l_t"] = l_t
        for term in ("l_s", "l_u"):  # Eqs. 8 and 9
            if not self._has_term(term):
                continue
            value = losses.term_loss(real_logits, [(source.weight, logits) for source, logits in scored
                                                   if source.term == term], cfg.negative_loss)
            parts[term] = value
            d_loss = d_loss + value
        return d_loss, parts

    def generator_objective(self, features, labels, training=True):
        """L_g of Eq. 12 with random labels (Algorithm 1, lines 11-13)."""
        cfg = self.gan_config
        batch = ops.shape(features)[0]
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        g_labels = rem.random_labels(batch, self.num_classes, self.seed_generator)
        generated = self.generator([z, g_labels], training=training)
        logits = self.discriminator([generated, g_labels], training=False)
        if cfg.l1_reference == "memory_bank":
            l1 = losses.nearest_in_memory_bank_l1(generated, g_labels, self.memory_bank)
        else:
            l1 = losses.nearest_same_class_l1(generated, g_labels, features, labels)
        return losses.generator_loss(logits, l1, cfg.lambda_l1) + (l1,)

    def train_step(self, data):
        features, labels = data[0], data[1]  # fit / train_on_batch may append sample weights
        labels = ops.cast(labels, "int32")
        # Under tf.distribute the optimizer sums the replicas' gradients, so each replica
        # differentiates its share of the global-batch mean (a no-op on one replica). The
        # division happens inside the tape, or it would not be differentiated at all.
        with tf.GradientTape() as tape:
            d_loss, parts = self.discriminator_loss(features, labels)
            d_share = per_replica_loss(d_loss)
        d_weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(d_share, d_weights), d_weights)
        if self.ema_discriminator is not None:
            self.update_ema()

        with tf.GradientTape() as tape:
            g_loss, g_adversarial, g_l1 = self.generator_objective(features, labels)
            g_share = per_replica_loss(g_loss)
        g_weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(g_share, g_weights), g_weights)

        values = {"d_loss": d_loss, "g_loss": g_loss, "g_adversarial": g_adversarial, "g_l1": g_l1, **parts}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {m.name: m.result() for m in self.metrics}


def needs_statistics(config: GANConfig) -> bool:
    return config.trivial_sampling in ("gaussian", "gaussian_tail")


def needs_gaussians(config: GANConfig) -> bool:
    return config.ladder_weight > 0 or config.floor_weight > 0 or config.p2_target != "ratio"


def make_gan(config: GANConfig, num_classes: int, train_features: np.ndarray, train_labels: np.ndarray,
             seed: int = 0) -> BoundaryAwareGAN:
    """Builds and compiles BAL's GAN for features like ``train_features``."""
    feature_dim = train_features.shape[-1]
    output = config.generator_output
    if output == "auto":
        output = "relu" if float(np.min(train_features)) >= 0.0 else "linear"
    keras.utils.set_random_seed(seed)
    generator = build_generator(config.latent_dim, num_classes, feature_dim, config.generator_units, output)
    whitening = (whitening_transform(train_features, train_labels, num_classes)
                 if config.discriminator_input == "whitened" else None)
    discriminator = build_discriminator(feature_dim, num_classes, config.discriminator_units, whitening)
    statistics = None
    if needs_statistics(config):
        statistics = rem.ClassStatistics.fit(train_features, train_labels, num_classes)
    memory_bank = None
    if config.l1_reference == "memory_bank":
        memory_bank = losses.class_memory_bank(train_features, train_labels, num_classes, config.memory_bank_size,
                                               seed)
    gaussians = rem.TiedGaussians.fit(train_features, train_labels, num_classes) if needs_gaussians(config) else None
    gan = BoundaryAwareGAN(generator, discriminator, num_classes, config, statistics, seed=seed,
                           memory_bank=memory_bank, gaussians=gaussians)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(config.d_learning_rate, config.beta_1, config.beta_2),
        g_optimizer=keras.optimizers.Adam(config.g_learning_rate, config.beta_1, config.beta_2),
        steps_per_execution=steps_per_execution(config, len(train_features)),
    )
    return gan


def steps_per_execution(config: GANConfig, count: int) -> int:
    """Steps per call of the compiled train step for ``count`` training features: the epoch's
    steps when ``config.steps_per_execution`` is None, else that value, which must divide them
    (a call that crossed an epoch's end would move the epoch boundary, and resume with it)."""
    steps = steps_per_epoch(count, config.batch_size)
    if config.steps_per_execution is None:
        return steps
    if steps % config.steps_per_execution:
        raise ConfigError(f"gan.steps_per_execution={config.steps_per_execution} does not divide the epoch's "
                          f"{steps} steps ({count} features in batches of {config.batch_size}). Use a divisor "
                          f"of {steps} or None (one call per epoch).")
    return config.steps_per_execution


def feature_batches(features: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                    shuffle: bool = True, first_epoch: int = 0, epochs: int = 1) -> tf.data.Dataset:
    """tf.data over cached features for epochs ``first_epoch .. epochs - 1``, back to back.

    Every batch is one batch-wise box of Eqs. 4-5. Epoch e's order is a stateless shuffle
    seeded by ``(seed, e)``, so a run resumed at epoch e sees the batches an uninterrupted run
    would. ``drop_remainder`` keeps the box computed over full batches (a 3-feature tail batch
    would give a degenerate box); see ``steps_per_epoch``.
    """
    from bal_tf.checkpointing import seeded_epochs

    return seeded_epochs((features.astype(np.float32), labels.astype(np.int32)), batch_size, seed,
                         first_epoch, epochs, shuffle=shuffle, drop_remainder=len(features) >= batch_size)


def steps_per_epoch(count: int, batch_size: int) -> int:
    return count // batch_size if count >= batch_size else 1
