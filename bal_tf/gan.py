"""RDM and Algorithm 1: the conditional generator G(z, c), the conditional discriminator D(f, c),
and the Keras model whose ``train_step`` runs one D step then one G step.

G and D are small MLPs (the paper: "only fully connected layers", Sec. 5.5). D outputs a logit;
D(f, c) in the paper's notation is its sigmoid.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from bal_tf import losses, sampling
from bal_tf.config import GANConfig
from bal_tf.distribute import per_replica_loss
from bal_tf.errors import ConfigError


def build_generator(latent_dim: int, num_classes: int, feature_dim: int, units=(256, 256),
                    output_activation: str = "relu") -> keras.Model:
    """G(z, c): ``[z (latent_dim), class index] -> feature (feature_dim)``; c enters one-hot."""
    z = keras.Input((latent_dim,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    x = layers.Concatenate(name="z_and_label")([z, OneHot(num_classes, name="one_hot")(label)])
    for i, width in enumerate(units):
        x = layers.Dense(width, name=f"dense{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i + 1}")(x)
    out = layers.Dense(feature_dim, activation=output_activation, name="feature")(x)
    return keras.Model([z, label], out, name="generator")


@keras.saving.register_keras_serializable(package="bal_tf")
class SpectralNormBound(keras.constraints.Constraint):
    """Keeps a Dense kernel's largest singular value at most 1 (W <- W / max(1, sigma(W))), so
    each layer is 1-Lipschitz and D's logit can change no faster than its (whitened) input: D's
    output then falls off smoothly with the distance from the data instead of carving sharp,
    seed-dependent holes in the ID tails (the spectral normalization of Miyato et al. 2018, as a
    constraint applied after each update: the layers stay plain Dense layers, so saving,
    folding and export are unchanged). sigma is estimated by ``iterations`` power-iteration steps
    from a fixed start (an estimate from below: the bound is approximate).
    """

    def __init__(self, iterations: int = 16):
        self.iterations = iterations

    def __call__(self, kernel):
        v = ops.ones((ops.shape(kernel)[1], 1), kernel.dtype)
        for _ in range(self.iterations):
            u = ops.matmul(kernel, v)
            u = u / ops.maximum(ops.norm(u), 1e-12)
            v = ops.matmul(ops.transpose(kernel), u)
            v = v / ops.maximum(ops.norm(v), 1e-12)
        sigma = ops.sum(u * ops.matmul(kernel, v))
        return kernel / ops.maximum(sigma, 1.0)

    def get_config(self):
        return {"iterations": self.iterations}


def build_discriminator(feature_dim: int, num_classes: int, units=(256, 256),
                        conditioning: str = "concat", feature_mean=None, feature_variance=None,
                        l2_normalize: bool = False, whitening=None, spectral_bound: bool = False,
                        knn_input: tuple[int, int, str] | None = None, radius_input: str = "none") -> keras.Model:
    """D(f, c): ``[feature, class index] -> logit`` (higher = more in-distribution).

    conditioning:
        ``concat``: the one-hot label is appended to f before the first layer (the simplest
            cGAN form; best in 3/3 seeds of the feasibility run, see docs/DESIGN.md).
        ``projection``: logit = w . phi(f) + embed(c) . phi(f) (Miyato & Koyama, 2018).
    feature_mean / feature_variance: if given, f is standardized by a fixed layer first
        (``discriminator_input="standardized"``): D sees every dimension at unit scale.
    l2_normalize: D sees f / ||f|| (``discriminator_input="l2_normalized"``): the direction of
        the feature, as KNN's normalized features (Sun et al., 2022).
    whitening: ``(matrix, offset)``: D sees f @ matrix + offset, a fixed (non-trainable) Dense
        layer (``discriminator_input="whitened"``, ``whitening_transform``).
    spectral_bound: every trainable Dense kernel keeps its spectral norm <= 1
        (``SpectralNormBound``; ``discriminator_lipschitz``).
    knn_input: ``(reference size per class, k, mode)``: D also sees log(1 + r), r the k-NN
        distance of f to class c's reference features in units of the class's own level
        (``ClassKNNDistance``, ``discriminator_knn_size``; its weights come from
        ``knn_reference``). mode ``concat``: appended to the MLP's input after the one-hot label;
        ``monotone``: not seen by the MLP, subtracted from its logit with a learned slope >= 0
        (``MonotoneDistancePenalty``), so D can only fall as the k-NN distance grows.
    radius_input: ``none``, ``concat`` or ``monotone`` (as for ``knn_input``): D also sees
        log(1 + r), r the Mahalanobis radius of f from class c's mean in units of the class's
        median radius (``ClassRadius``, ``discriminator_radius_input``; its weights come from
        ``radius_reference``). It reads the raw feature, so folding the input transform leaves it.
    """
    constraint = SpectralNormBound if spectral_bound else (lambda: None)
    feature = keras.Input((feature_dim,), name="feature")
    label = keras.Input((), dtype="int32", name="label")
    f = feature
    if feature_mean is not None:
        f = layers.Normalization(mean=np.asarray(feature_mean, np.float32),
                                 variance=np.asarray(feature_variance, np.float32) + 1e-6,
                                 name="standardize")(feature)
    if l2_normalize:
        f = layers.UnitNormalization(name="l2_normalize")(f)
    if whitening is not None:
        whiten = layers.Dense(feature_dim, trainable=False, name="whiten")
        f = whiten(f)
        whiten.set_weights([np.asarray(whitening[0], np.float32), np.asarray(whitening[1], np.float32)])
    if conditioning not in ("concat", "projection"):
        raise ConfigError(f"label_conditioning must be concat or projection. Received: {conditioning!r}")
    if radius_input not in ("none", "concat", "monotone"):
        raise ConfigError(f"discriminator_radius_input must be none, concat or monotone. Received: {radius_input!r}")
    one_hot = (OneHot(num_classes, name="one_hot")(label)
               if conditioning == "concat" or knn_input or radius_input != "none" else None)
    parts = [f, one_hot] if conditioning == "concat" else [f]
    knn_distance = None
    if knn_input:
        size, k, mode = knn_input
        if mode not in ("concat", "monotone"):
            raise ConfigError(f"discriminator_knn_mode must be concat or monotone. Received: {mode!r}")
        knn_distance = ClassKNNDistance(num_classes, size, feature_dim, k, name="knn_distance")(feature, one_hot)
        if mode == "concat":
            parts.append(knn_distance)
            knn_distance = None
    radius = None
    if radius_input != "none":
        radius = ClassRadius(num_classes, feature_dim, name="class_radius")(feature, one_hot)
        if radius_input == "concat":
            parts.append(radius)
            radius = None
    x = parts[0] if len(parts) == 1 else layers.Concatenate(name="feature_and_label")(parts)
    for i, width in enumerate(units):
        x = layers.Dense(width, kernel_constraint=constraint(), name=f"dense{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i + 1}")(x)
    logit = layers.Dense(1, kernel_constraint=constraint(), name="logit")(x)
    if conditioning == "projection":
        embedded = layers.Embedding(num_classes, x.shape[-1], name="label_embedding")(label)
        logit = layers.Add(name="projection")([logit, layers.Dot(axes=1)([embedded, x])])
    if knn_distance is not None:
        logit = MonotoneDistancePenalty(name="knn_penalty")(logit, knn_distance)
    if radius is not None:
        logit = MonotoneDistancePenalty(name="radius_penalty")(logit, radius)
    logit = layers.Reshape((), name="squeeze")(logit)
    return keras.Model([feature, label], logit, name="discriminator")


# Fixed affine layers between D's feature input and its first Dense layer (in this order).
AFFINE_INPUT_LAYERS = ("standardize", "whiten")


def fold_input_transform(discriminator: keras.Model) -> keras.Model:
    """The same D with its fixed affine input layers (``standardize``, ``whiten``) folded into
    its first Dense layer: for that layer's feature rows K, ``(f @ W + b) @ K`` is
    ``f @ (W @ K) + b @ K``. In float the two compute the same function (to rounding); the
    folded one is what gets quantized: TFLite quantizes each weight tensor on its own range,
    and the whitening matrix (directions of small variance scaled up by up to 100x) would
    otherwise be quantized apart from the weights it feeds (docs/SERVING.md). A D without
    such layers, or with the non-affine ``l2_normalize``, is returned unchanged.
    """
    names = {layer.name for layer in discriminator.layers}
    present = [name for name in AFFINE_INPUT_LAYERS if name in names]
    if not present or "l2_normalize" in names:
        return discriminator
    feature_dim = discriminator.inputs[0].shape[-1]
    # The affine map read off the layers themselves: b = T(0), row i of W = T(e_i) - b.
    transform = keras.Model(discriminator.inputs[0], discriminator.get_layer(present[-1]).output)
    probes = np.concatenate([np.zeros((1, feature_dim)), np.eye(feature_dim)]).astype(np.float32)
    mapped = np.asarray(transform(probes), np.float64)
    offset, matrix = mapped[0], mapped[1:] - mapped[0]
    conditioning = "projection" if "label_embedding" in names else "concat"
    units = tuple(layer.units for layer in discriminator.layers
                  if layer.name.startswith("dense") and layer.name[5:].isdigit())
    knn = discriminator.get_layer("knn_distance") if "knn_distance" in names else None
    knn_mode = "monotone" if "knn_penalty" in names else "concat"
    radius_mode = "none" if "class_radius" not in names else "monotone" if "radius_penalty" in names else "concat"
    folded = build_discriminator(feature_dim, discriminator.get_layer("one_hot").num_classes
                                 if "one_hot" in names else _embedding_classes(discriminator),
                                 units, conditioning, knn_input=(knn.size, knn.k, knn_mode) if knn else None,
                                 radius_input=radius_mode)
    for layer in folded.layers:
        weights = discriminator.get_layer(layer.name).get_weights() if layer.weights else []
        if layer.name == "dense1":
            kernel, bias = (np.asarray(w, np.float64) for w in weights)
            feature_rows = kernel[:feature_dim]  # the one-hot label's rows (concat), k-NN input's follow
            weights = [np.concatenate([matrix @ feature_rows, kernel[feature_dim:]]).astype(np.float32),
                       (bias + offset @ feature_rows).astype(np.float32)]
        if weights:
            layer.set_weights(weights)
    return folded


def _embedding_classes(discriminator: keras.Model) -> int:
    return discriminator.get_layer("label_embedding").input_dim


@keras.saving.register_keras_serializable(package="bal_tf")
class ClassKNNDistance(layers.Layer):
    """``(f, one_hot(c)) -> log(1 + r)``, r the distance from f / ||f|| to its k-th nearest
    reference feature of class c (L2-normalized, as the KNN detector of Sun et al. 2022
    measures), divided by class c's own level (the median of its reference features' k-NN
    distances, so r ~ 1 inside the class whatever the backbone). A fixed input of D, computed
    from ID training features only and saved and exported with D (``discriminator_knn_size``):
    local density that an MLP on the features does not recover from its shell and boundary
    negatives alone. The class enters as its one-hot row (a sum, no gather: exact in int8).
    """

    def __init__(self, num_classes: int, size: int, dim: int, k: int, **kwargs):
        super().__init__(**kwargs)
        if not 0 < k < size:
            raise ConfigError(f"the k-NN input needs 0 < k < reference size. Received: k={k}, size={size}")
        self.num_classes, self.size, self.dim, self.k = num_classes, size, dim, k
        self.reference = self.add_weight(shape=(num_classes * size, dim), initializer="zeros",
                                         trainable=False, name="reference")
        self.levels = self.add_weight(shape=(num_classes,), initializer="ones", trainable=False, name="levels")

    def call(self, features, one_hot):
        unit = features / ops.maximum(ops.norm(features, axis=-1, keepdims=True), 1e-12)
        similarity = ops.reshape(ops.matmul(unit, ops.transpose(self.reference)), (-1, self.num_classes, self.size))
        own_class = ops.sum(similarity * ops.expand_dims(one_hot, -1), axis=1)  # [N, size]
        kth = ops.top_k(own_class, self.k, sorted=True)[0][:, self.k - 1]
        distance = ops.sqrt(ops.maximum(2.0 - 2.0 * kth, 1e-12))  # between unit vectors
        level = ops.sum(one_hot * self.levels, axis=-1)
        return ops.expand_dims(ops.log1p(distance / level), -1)

    def compute_output_shape(self, features_shape, one_hot_shape=None):
        return (features_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "size": self.size, "dim": self.dim,
                "k": self.k}


@keras.saving.register_keras_serializable(package="bal_tf")
class MonotoneDistancePenalty(layers.Layer):
    """``(logit, distance) -> logit - softplus(beta) * distance``: one learned slope, kept >= 0,
    so D's logit can only fall as the distance grows (``discriminator_knn_mode="monotone"``).
    D's loss saturates on both sides of the ID boundary and leaves its shape between them free;
    this fixes that shape's direction to the one the k-NN detector uses. Starts at slope 1."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.beta = self.add_weight(shape=(), initializer=keras.initializers.Constant(float(np.log(np.e - 1.0))),
                                    name="beta")

    def call(self, logit, distance):
        return logit - ops.softplus(self.beta) * distance

    def compute_output_shape(self, logit_shape, distance_shape=None):
        return logit_shape


@keras.saving.register_keras_serializable(package="bal_tf")
class ClassRadius(layers.Layer):
    """``(f, one_hot(c)) -> log(1 + r)``, r = ||(f - mu_c) P|| / level_c: the Mahalanobis radius
    of f from class c's training mean (P = Sigma^(-1/2), the class-tied covariance of
    ``whitening_transform``), in units of class c's median radius over its training features
    (so r ~ 1 inside the class whatever the backbone). A fixed input of D computed from ID
    training features only, saved and exported with D (``discriminator_radius_input``): the
    quantity an MLP on 128-d features does not learn from negatives that cover few directions.
    The class enters as its one-hot row (sums, no gather: exact in int8)."""

    def __init__(self, num_classes: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.dim = num_classes, dim
        self.centers = self.add_weight(shape=(num_classes, dim), initializer="zeros", trainable=False, name="centers")
        self.matrix = self.add_weight(shape=(dim, dim), initializer="identity", trainable=False, name="matrix")
        self.levels = self.add_weight(shape=(num_classes,), initializer="ones", trainable=False, name="levels")

    def call(self, features, one_hot):
        offset = ops.matmul(features - ops.matmul(one_hot, self.centers), self.matrix)
        radius = ops.sqrt(ops.maximum(ops.sum(offset * offset, axis=-1), 1e-12))
        return ops.expand_dims(ops.log1p(radius / ops.sum(one_hot * self.levels, axis=-1)), -1)

    def compute_output_shape(self, features_shape, one_hot_shape=None):
        return (features_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "dim": self.dim}


def radius_reference(features: np.ndarray, labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    """``ClassRadius``'s weights ``[centers, matrix, levels]``: class means, Sigma^(-1/2) of the
    class-tied covariance (``whitening_transform``'s matrix) and each class's median radius."""
    features = np.asarray(features, np.float64)
    matrix = whitening_transform(features, labels, num_classes)[0].astype(np.float64)
    centers, levels = np.zeros((num_classes, features.shape[1])), np.ones(num_classes)
    for c in range(num_classes):
        members = features[labels == c]
        if len(members) < 2:
            raise ConfigError(f"the radius input needs at least 2 training features of class {c}. "
                              f"Received: {len(members)}")
        centers[c] = members.mean(0)
        levels[c] = max(float(np.median(np.linalg.norm((members - centers[c]) @ matrix, axis=1))), 1e-6)
    return [centers.astype(np.float32), matrix.astype(np.float32), levels.astype(np.float32)]


def knn_reference(features: np.ndarray, labels: np.ndarray, num_classes: int, size: int, k: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``ClassKNNDistance``'s weights: ``size`` random L2-normalized training features per class
    (``[num_classes * size, m]``; a class with fewer repeats its own) and each class's level,
    the median over those features of the distance to their k-th nearest other one."""
    rng = np.random.default_rng(seed)
    normalized = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    reference, levels = [], []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if len(members) <= k:
            raise ConfigError(f"the k-NN input needs more than k={k} training features of class {c}. "
                              f"Received: {len(members)}")
        cloud = normalized[rng.choice(members, min(size, len(members)), replace=False)].astype(np.float64)
        distances = np.sqrt(np.maximum(2.0 - 2.0 * cloud @ cloud.T, 0.0))
        np.fill_diagonal(distances, np.inf)
        levels.append(np.median(np.partition(distances, k - 1, axis=1)[:, k - 1]))
        reference.append(np.resize(cloud, (size, cloud.shape[1])))
    return np.concatenate(reference).astype(np.float32), np.maximum(np.asarray(levels), 1e-6).astype(np.float32)


@keras.saving.register_keras_serializable(package="bal_tf")
class OneHot(layers.Layer):
    """Class index -> one-hot vector (a named layer, so saved models load in safe mode)."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def call(self, labels):
        # Rows of an identity matrix rather than ops.one_hot: the same values, but TFLite's
        # full-int8 ONE_HOT kernel ignores the output's quantization scale and feeds D wrong
        # labels, while GATHER of a quantized constant is exact (docs/SERVING.md).
        return ops.take(ops.eye(self.num_classes), ops.cast(labels, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


class BoundaryAwareGAN(keras.Model):
    """BAL's conditional GAN on penultimate features (Algorithm 1, lines 1-14).

    ``fit`` takes a dataset of ``(features, labels)`` batches. Each ``train_step``:

    * D step (lines 3-9): the batch box (Eqs. 4-5) gives trivial OOD pairs; T gives shuffled
      pairs (Eq. 8); G with an FGSM step on z gives hard OOD pairs (Eq. 7); D minimizes
      L_d = L_t + L_s + L_u (Eq. 11).
    * G step (lines 11-14): random labels, L_g of Eq. 12.

    Args:
        generator: ``[z, label] -> feature``.
        discriminator: ``[feature, label] -> logit``.
        num_classes: K.
        config: the GAN section of the run config (losses, eps, lambdas, sampling).
        statistics: ``sampling.ClassStatistics`` of the training features, used by
            ``trivial_sampling="gaussian"|"gaussian_tail"`` and ``shell_sampling``.
        memory_bank: ``[K, B, m]`` training features per class (``sampling.class_memory_bank``):
            Eq. 12's M_c when ``l1_reference="memory_bank"``.
        seed: seed of the model's own ``SeedGenerator``.
    """

    def __init__(self, generator, discriminator, num_classes: int, config: GANConfig,
                 statistics: sampling.ClassStatistics | None = None, seed: int = 0,
                 memory_bank: np.ndarray | None = None, boundary_bank: sampling.BoundaryBank | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.num_classes = num_classes
        self.gan_config = config
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.seed_generator = keras.random.SeedGenerator(seed)
        if needs_statistics(config) and statistics is None:
            raise ConfigError("trivial_sampling='gaussian'/'gaussian_tail' and shell_sampling need the class "
                              "statistics (sampling.ClassStatistics.fit on the training features).")
        if config.l1_reference == "memory_bank" and memory_bank is None:
            raise ConfigError("l1_reference='memory_bank' needs the memory bank (sampling.class_memory_bank "
                              "on the training features).")
        if config.boundary_weight > 0 and boundary_bank is None:
            raise ConfigError("boundary_weight > 0 needs the boundary bank (sampling.BoundaryBank.fit on the "
                              "training features).")
        self.statistics = statistics
        self.boundary_bank = boundary_bank
        self.memory_bank = None if memory_bank is None else ops.convert_to_tensor(np.asarray(memory_bank, np.float32))
        self.ema_discriminator = None
        if config.d_ema_decay > 0:
            # Polyak averaging of D's weights: the GAN game makes D's response off the data
            # manifold swing from step to step; the average is what gets scored and selected.
            self.ema_discriminator = keras.models.clone_model(discriminator)
            self.ema_discriminator.set_weights(discriminator.get_weights())
            for weight in self.ema_discriminator.weights:
                weight.trainable = False
        names = ["d_loss", "g_loss", "l_t", "l_s", "l_u", "g_adversarial", "g_l1",
                 "d_real", "d_shuffled", "d_trivial", "d_generated", "d_hard", "d_shell", "d_between", "d_boundary"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        # G and D are built functional models: nothing is left to build (and fit under a
        # strategy would otherwise try to build it by calling it on features alone).
        self.built = True

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

    def sample_latent(self, num_samples):
        return keras.random.normal((num_samples, self.latent_dim), seed=self.seed_generator)

    def sample_trivial(self, features):
        """REM: trivial OOD pairs <f_hat, c_hat> (Sec. 4.1)."""
        batch = ops.shape(features)[0]
        labels = sampling.random_labels(batch, self.num_classes, self.seed_generator)
        cfg = self.gan_config
        if cfg.trivial_sampling == "uniform":
            trivial = sampling.sample_uniform_box(features, batch, self.seed_generator, cfg.box_margin)
        elif cfg.trivial_sampling == "gaussian_tail":
            # Table 3's Gaussian arm as the paper words it: "the low density area of each
            # category is treated as OOD region", labelled with that category.
            trivial = sampling.sample_class_shell(labels, self.statistics, cfg.shell_radius, self.seed_generator,
                                                  mode="gaussian_tail")
        else:
            trivial = sampling.sample_class_gaussian(labels, self.statistics.means, self.statistics.stds,
                                                     self.seed_generator)
        return trivial, labels

    def sample_shell(self, features, labels):
        """Negatives from each class's low-density region, labelled with the class (an REM option)."""
        cfg = self.gan_config
        return sampling.sample_class_shell(labels, self.statistics, cfg.shell_radius, self.seed_generator,
                                           features=features, mode=cfg.shell_sampling)

    def sample_hard(self, num_samples):
        """RSM: hard OOD pairs <G(z', c), c> with z' from FGSM on the latent (Eq. 7)."""
        cfg = self.gan_config
        z = self.sample_latent(num_samples)
        labels = sampling.random_labels(num_samples, self.num_classes, self.seed_generator)
        eps = sampling.sample_epsilon(num_samples, cfg.epsilon_mean, cfg.epsilon_std,
                                      cfg.epsilon_min, cfg.epsilon_max, self.seed_generator)
        z_adv = sampling.fgsm_latent(self.generator, self.discriminator, z, labels, eps)
        return z, z_adv, labels

    def discriminator_loss(self, features, labels, training=True):
        """L_d of Eq. 11 for one batch; returns the loss and its parts for the trackers."""
        cfg = self.gan_config
        batch = ops.shape(features)[0]
        trivial, trivial_labels = self.sample_trivial(features)
        if cfg.shuffle_labels == "nearest_class":
            shuffled_labels = sampling.nearest_other_class(features, labels, self.statistics)
        else:
            shuffled_labels = sampling.shuffle_labels(labels, self.num_classes, self.seed_generator)
        z, z_adv, g_labels = self.sample_hard(batch)
        generated = self.generator([z, g_labels], training=False)
        hard = self.generator([z_adv, g_labels], training=False)

        D = lambda f, c: self.discriminator([f, c], training=training)  # noqa: E731
        real_logits = D(features, labels)
        shuffled_logits = D(features, shuffled_labels)
        trivial_logits = D(trivial, trivial_labels)
        generated_logits = D(generated, g_labels)
        hard_logits = D(hard, g_labels)

        l_t = losses.vanilla_loss(real_logits, generated_logits)
        l_s = losses.shuffle_loss(real_logits, shuffled_logits, cfg.negative_loss)
        l_u = losses.uniform_loss(real_logits, trivial_logits, hard_logits, cfg.lambda_c, cfg.hard_weight,
                                  cfg.negative_loss, cfg.pool_hard_with_trivial)
        shell_mean = ops.zeros(())
        if cfg.shell_sampling != "none":
            shell = self.sample_shell(features, labels)
            if cfg.shell_ascent_steps > 0:
                shell = sampling.ascend_discriminator(self.discriminator, shell, labels, self.statistics,
                                                      cfg.shell_ascent_steps, cfg.shell_ascent_step)
            shell_logits = D(shell, labels)
            l_u = l_u + cfg.shell_weight * losses.ood_loss(shell_logits)
            shell_mean = ops.mean(ops.sigmoid(shell_logits))
        between_mean = ops.zeros(())
        if cfg.between_class_weight > 0:
            between, between_labels, mask = sampling.sample_between_classes(
                features, labels, cfg.between_class_mix, self.seed_generator)
            between_logits = D(between, between_labels)
            pairs = ops.maximum(ops.sum(mask), 1.0)
            l_u = l_u + cfg.between_class_weight * ops.sum(ops.softplus(between_logits) * mask) / pairs
            between_mean = ops.sum(ops.sigmoid(between_logits) * mask) / pairs
        boundary_mean = ops.zeros(())
        if cfg.boundary_weight > 0:
            boundary, boundary_labels, mask, ratio = sampling.sample_knn_boundary(
                labels, self.boundary_bank, cfg.boundary_scale, self.seed_generator, with_ratio=True)
            boundary_logits = D(boundary, boundary_labels)
            if cfg.boundary_targets == "graded":
                # Every candidate, with a target that falls as it leaves the class (no mask).
                targets = losses.graded_target(ratio, cfg.boundary_target_range)
                l_u = l_u + cfg.boundary_weight * losses.graded_loss(boundary_logits, targets)
                boundary_mean = ops.mean(ops.sigmoid(boundary_logits))
            else:
                kept = ops.maximum(ops.sum(mask), 1.0)
                l_u = l_u + cfg.boundary_weight * ops.sum(ops.softplus(boundary_logits) * mask) / kept
                boundary_mean = ops.sum(ops.sigmoid(boundary_logits) * mask) / kept
        d_loss = (float(cfg.use_vanilla_loss) * l_t + float(cfg.use_shuffle_loss) * cfg.shuffle_weight * l_s
                  + float(cfg.use_uniform_loss) * l_u)
        parts = {
            "l_t": l_t, "l_s": l_s, "l_u": l_u,
            "d_real": ops.mean(ops.sigmoid(real_logits)),
            "d_shuffled": ops.mean(ops.sigmoid(shuffled_logits)),
            "d_trivial": ops.mean(ops.sigmoid(trivial_logits)),
            "d_generated": ops.mean(ops.sigmoid(generated_logits)),
            "d_hard": ops.mean(ops.sigmoid(hard_logits)),
            "d_shell": shell_mean,
            "d_between": between_mean,
            "d_boundary": boundary_mean,
        }
        return d_loss, parts

    def generator_objective(self, features, labels, training=True):
        """L_g of Eq. 12 with random labels (Algorithm 1, lines 11-13)."""
        cfg = self.gan_config
        batch = ops.shape(features)[0]
        z = self.sample_latent(batch)
        g_labels = sampling.random_labels(batch, self.num_classes, self.seed_generator)
        generated = self.generator([z, g_labels], training=training)
        logits = self.discriminator([generated, g_labels], training=False)
        if cfg.l1_reference == "memory_bank":
            l1 = losses.nearest_in_memory_bank_l1(generated, g_labels, self.memory_bank)
        else:
            l1 = losses.nearest_same_class_l1(generated, g_labels, features, labels)
        return losses.generator_loss(logits, l1, cfg.lambda_l1, cfg.generator_loss) + (l1,)

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


def whitening_transform(features: np.ndarray, labels: np.ndarray, num_classes: int,
                        floor: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` with f @ W + b = Sigma^(-1/2) (f - mu): Sigma is the class-tied covariance (each
    feature minus its class mean, as Mahalanobis fits it), mu the overall mean. Eigenvalues below
    ``floor`` times the largest (dead ReLU units, rank-deficient features) are raised to it, so
    no direction is blown up by more than 1 / sqrt(floor)."""
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    centered = features.copy()
    for c in range(num_classes):
        members = labels == c
        if members.any():
            centered[members] -= features[members].mean(0)
    covariance = centered.T @ centered / max(len(features) - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, floor * max(values.max(), 1e-12))
    matrix = vectors @ np.diag(values ** -0.5) @ vectors.T  # symmetric: Sigma^(-1/2)
    offset = -features.mean(0) @ matrix
    return matrix.astype(np.float32), offset.astype(np.float32)


def needs_statistics(config: GANConfig) -> bool:
    return (config.trivial_sampling in ("gaussian", "gaussian_tail") or config.shell_sampling != "none"
            or config.shuffle_labels == "nearest_class")


def make_gan(config: GANConfig, num_classes: int, train_features: np.ndarray, train_labels: np.ndarray,
             seed: int = 0) -> BoundaryAwareGAN:
    """Builds and compiles BAL's GAN for features like ``train_features``."""
    feature_dim = train_features.shape[-1]
    output = config.generator_output
    if output == "auto":
        output = "relu" if float(np.min(train_features)) >= 0.0 else "linear"
    keras.utils.set_random_seed(seed)
    generator = build_generator(config.latent_dim, num_classes, feature_dim, config.generator_units, output)
    standardize = {}
    if config.discriminator_input == "standardized":
        standardize = {"feature_mean": train_features.mean(0), "feature_variance": train_features.var(0)}
    elif config.discriminator_input == "l2_normalized":
        standardize = {"l2_normalize": True}
    elif config.discriminator_input == "whitened":
        standardize = {"whitening": whitening_transform(train_features, train_labels, num_classes)}
    discriminator = build_discriminator(feature_dim, num_classes, config.discriminator_units,
                                        config.label_conditioning, spectral_bound=config.discriminator_lipschitz,
                                        knn_input=((config.discriminator_knn_size, config.discriminator_knn_k,
                                                    config.discriminator_knn_mode)
                                                   if config.discriminator_knn_size else None),
                                        radius_input=config.discriminator_radius_input, **standardize)
    if config.discriminator_radius_input != "none":
        discriminator.get_layer("class_radius").set_weights(radius_reference(train_features, train_labels, num_classes))
    if config.discriminator_knn_size:
        discriminator.get_layer("knn_distance").set_weights(list(knn_reference(
            train_features, train_labels, num_classes, config.discriminator_knn_size, config.discriminator_knn_k, seed)))
    statistics = None
    if needs_statistics(config):
        statistics = sampling.ClassStatistics.fit(train_features, train_labels, num_classes)
    memory_bank = None
    if config.l1_reference == "memory_bank":
        memory_bank = sampling.class_memory_bank(train_features, train_labels, num_classes,
                                                 config.memory_bank_size, seed)
    boundary_bank = None
    if config.boundary_weight > 0:
        boundary_bank = sampling.BoundaryBank.fit(train_features, train_labels, num_classes, config.boundary_k, seed)
    gan = BoundaryAwareGAN(generator, discriminator, num_classes, config, statistics, seed=seed,
                           memory_bank=memory_bank, boundary_bank=boundary_bank)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(config.d_learning_rate, config.beta_1, config.beta_2),
        g_optimizer=keras.optimizers.Adam(config.g_learning_rate, config.beta_1, config.beta_2),
    )
    return gan


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
