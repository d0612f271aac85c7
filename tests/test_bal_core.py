"""REM / RSM / RDM pieces on tiny tensors: sampling, FGSM, losses, one train_step."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from bal_tf import losses, sampling
from bal_tf.config import GANConfig
from bal_tf.gan import build_discriminator, build_generator, feature_batches, make_gan

RNG = np.random.default_rng(0)


def softplus(x):
    return np.log1p(np.exp(x))


def test_uniform_samples_lie_inside_the_batch_box():
    features = RNG.normal(size=(32, 6)).astype("float32") * np.arange(1, 7)
    samples = np.asarray(sampling.sample_uniform_box(features, 5000, keras.random.SeedGenerator(1)))
    low, high = features.min(0), features.max(0)
    assert samples.shape == (5000, 6)
    assert (samples >= low - 1e-6).all() and (samples <= high + 1e-6).all()
    # and they fill it: every dimension spans most of its range
    assert ((samples.max(0) - samples.min(0)) > 0.95 * (high - low)).all()


def shell_statistics(seed=0):
    """Three classes in 6-d with different scales per class and dimension, far from the floor."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), 400)
    scales = rng.uniform(0.2, 3.0, (3, 6))
    features = (20 + 40 * labels[:, None] + scales[labels] * rng.normal(size=(1200, 6))).astype("float32")
    return features, labels, sampling.ClassStatistics.fit(features, labels, 3)


def mahalanobis_over_radius(samples, labels, statistics):
    distance = np.linalg.norm((samples - statistics.means[labels]) / statistics.stds[labels], axis=1)
    return distance / statistics.radii[labels]


def test_class_statistics_radius_is_the_median_distance_of_the_class():
    features, labels, statistics = shell_statistics()
    ratios = mahalanobis_over_radius(features, labels, statistics)
    for c in range(3):
        assert np.median(ratios[labels == c]) == pytest.approx(1.0, abs=1e-4)
    assert (statistics.floor == features.min(0)).all()


@pytest.mark.parametrize("mode", ["gaussian_tail", "radial"])
def test_shell_negatives_lie_in_the_low_density_band_of_their_class(mode):
    features, labels, statistics = shell_statistics()
    unclipped = dataclasses.replace(statistics, floor=np.full(6, -np.inf, np.float32))  # clipping: tested below
    shell = np.asarray(sampling.sample_class_shell(labels, unclipped, (2.0, 3.0), keras.random.SeedGenerator(0),
                                                   features=features, mode=mode))
    ratios = mahalanobis_over_radius(shell, labels, statistics)
    id_ratios = mahalanobis_over_radius(features, labels, statistics)
    if mode == "gaussian_tail":  # exactly in the band of the class's own radius
        assert ratios.min() >= 2.0 - 1e-3 and ratios.max() <= 3.0 + 1e-3
    else:  # each point pushed out 2-3x its own distance from the class mean
        np.testing.assert_array_less(2.0 * id_ratios - 1e-3, ratios)
        np.testing.assert_array_less(ratios, 3.0 * id_ratios + 1e-3)
    # beyond almost every ID feature of the class: the low-density region, not the core
    assert np.median(ratios) > np.quantile(id_ratios, 0.95)
    # each sample stays nearest to its own class mean (it is labelled with that class)
    nearest = np.argmin(np.linalg.norm(shell[:, None] - statistics.means[None], axis=-1), axis=1)
    assert (nearest == labels).mean() > 0.9


def diagonal_gaussian_log_likelihood(samples, labels, statistics):
    z = (samples - statistics.means[labels]) / statistics.stds[labels]
    return -0.5 * (z ** 2).sum(1) - np.log(statistics.stds[labels]).sum(1)


def test_gaussian_tail_trivial_negatives_lie_in_each_classs_low_density_region():
    """Table 3's Gaussian arm as the paper words it: negatives in the low-density area of each
    class; the whole-Gaussian arm puts about half of its samples in the dense core."""
    features, labels, statistics = shell_statistics()
    likelihood = diagonal_gaussian_log_likelihood(features, labels, statistics)
    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], trivial_sampling="gaussian_tail")
    for arm, beyond in (("gaussian_tail", 0.99), ("gaussian", 0.3)):
        gan = make_gan(dataclasses.replace(config, trivial_sampling=arm), 3, features, labels, seed=0)
        trivial, trivial_labels = (np.asarray(t) for t in gan.sample_trivial(features))
        assert trivial.shape == features.shape
        # below the 10% likelihood quantile of the real features of the class it is labelled with
        levels = np.array([np.quantile(likelihood[labels == c], 0.1) for c in range(3)])
        low_density = diagonal_gaussian_log_likelihood(trivial, trivial_labels, statistics) < levels[trivial_labels]
        if arm == "gaussian_tail":  # all but the few that the feature floor clips back inward
            assert low_density.mean() >= beyond
        else:
            assert low_density.mean() < beyond


def test_shell_negatives_are_clipped_at_the_feature_floor():
    features, labels, _ = shell_statistics()
    features = np.maximum(features - 25, 0)  # like ReLU features: many exact zeros
    statistics = sampling.ClassStatistics.fit(features, labels, 3)
    for mode in ("gaussian_tail", "radial"):
        shell = np.asarray(sampling.sample_class_shell(labels, statistics, (2.0, 4.0), 0, features=features, mode=mode))
        assert shell.min() >= 0.0


def test_between_class_negatives_mix_two_classes_and_mask_same_class_pairs():
    features, labels = tiny_features(n=512)
    mixed, mixed_labels, mask = (np.asarray(t) for t in sampling.sample_between_classes(
        features, labels, (0.25, 0.5), keras.random.SeedGenerator(0)))
    np.testing.assert_array_equal(mixed_labels, labels)
    # each row lies on a segment from its own feature to another one, at a in [0.25, 0.5]
    offsets = mixed - features
    partners = []
    for i in range(len(features)):
        candidates = features + 0.0  # a = |offset| / |f_j - f_i| for the partner j
        ratio = np.linalg.norm(offsets[i]) / np.maximum(np.linalg.norm(candidates - features[i], axis=1), 1e-9)
        residual = np.linalg.norm(offsets[i][None] - ratio[:, None] * (candidates - features[i]), axis=1)
        j = int(np.argmin(np.where((ratio >= 0.25 - 1e-4) & (ratio <= 0.5 + 1e-4), residual, np.inf)))
        partners.append(j)
        assert residual[j] < 1e-3 * (1 + np.linalg.norm(features[i]))
    partners = np.array(partners)
    np.testing.assert_array_equal(mask, (labels[partners] != labels).astype(np.float32))
    assert 0.5 < mask.mean() < 0.8  # 3 balanced classes: about 2/3 of pairs differ


def test_standardized_discriminator_equals_the_raw_one_on_standardized_features():
    features, labels = tiny_features()
    mean, variance = features.mean(0), features.var(0)
    standardized = build_discriminator(6, 3, (16,), feature_mean=mean, feature_variance=variance)
    raw = build_discriminator(6, 3, (16,))
    raw.set_weights(standardized.get_weights()[-len(raw.get_weights()):])
    expected = raw([(features - mean) / np.sqrt(variance + 1e-6), labels]).numpy()
    np.testing.assert_allclose(standardized([features, labels]).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_standardized_discriminator_round_trips_through_a_keras_file(tmp_path):
    features, labels = tiny_features()
    discriminator = build_discriminator(6, 3, (16,), feature_mean=features.mean(0), feature_variance=features.var(0))
    discriminator.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(loaded([features, labels]).numpy(), discriminator([features, labels]).numpy(), atol=1e-6)


def test_batch_bounds_are_eqs_4_and_5():
    features = np.array([[1.0, -2.0], [3.0, 5.0], [-1.0, 0.0]], np.float32)
    low, high = sampling.batch_bounds(features)
    np.testing.assert_array_equal(low, [-1.0, -2.0])
    np.testing.assert_array_equal(high, [3.0, 5.0])


@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_shuffled_labels_never_equal_the_true_ones(num_classes):
    labels = np.tile(np.arange(num_classes), 500).astype("int32")
    seed = keras.random.SeedGenerator(3)
    for _ in range(5):
        shuffled = np.asarray(sampling.shuffle_labels(labels, num_classes, seed))
        assert (shuffled != labels).all()
        assert shuffled.min() >= 0 and shuffled.max() < num_classes
    if num_classes > 2:  # every wrong label occurs
        assert len(np.unique(shuffled[labels == 0])) == num_classes - 1


def test_nearest_class_shuffle_is_the_closest_other_class_in_class_radius_units():
    rng = np.random.default_rng(0)
    # Three classes along the first axis; class 2 is six times wider than the others.
    centres, spreads = np.array([0.0, 6.0, -10.0]), np.array([1.0, 1.0, 6.0])
    labels = np.repeat(np.arange(3), 400)
    features = spreads[labels, None] * rng.normal(size=(1200, 2))
    features[:, 0] += centres[labels]
    features = features.astype("float32")
    statistics = sampling.ClassStatistics.fit(features, labels, 3)
    shuffled = np.asarray(sampling.nearest_other_class(features, labels, statistics))
    distance = (np.linalg.norm((features[:, None] - statistics.means[None]) / statistics.stds[None], axis=-1)
                / statistics.radii[None])
    distance[np.arange(1200), labels] = np.inf
    np.testing.assert_array_equal(shuffled, distance.argmin(1))  # the numpy recomputation
    assert (shuffled != labels).all()
    # A class-1 feature at x = 4: class 0 is 4 away (radius ~1.2: 3.4 radii), class 2 is 14 away
    # (radius ~7: 2.0 radii). In radius units the wide class is the likelier confusion; plain
    # Euclidean distance would say class 0.
    queries = np.array([[4.0, 0.0], [-3.0, 0.0]], np.float32)
    assert np.asarray(sampling.nearest_other_class(queries, np.array([1, 0]), statistics)).tolist() == [2, 2]
    assert np.asarray(sampling.nearest_other_class(queries, np.array([2, 2]), statistics)).tolist() == [1, 0]


def test_shuffle_options_train_and_bad_weight_is_a_clear_error():
    from bal_tf.errors import ConfigError

    features, labels = tiny_features()
    for overrides in ({"shuffle_labels": "nearest_class", "shell_sampling": "none"}, {"shuffle_weight": 3.0}):
        config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], boundary_weight=0.0,
                           **overrides)
        gan = make_gan(config, 3, features, labels)  # nearest_class fits the class statistics it needs
        logs = gan.train_on_batch(features[:32], labels[:32].astype("int32"), return_dict=True)
        assert all(np.isfinite(v) for v in logs.values())
    with pytest.raises(ConfigError, match="shuffle_weight must be >= 0"):
        GANConfig(shuffle_weight=-1.0)
    with pytest.raises(ConfigError, match="shuffle_labels"):
        GANConfig(shuffle_labels="nearest")


def test_shuffle_weight_scales_l_s_in_l_d():
    features, labels = tiny_features()
    parts = {}
    for weight in (1.0, 3.0):
        config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], boundary_weight=0.0,
                           shell_sampling="none", shuffle_weight=weight)
        gan = make_gan(config, 3, features, labels, seed=0)
        parts[weight] = gan.discriminator_loss(keras.ops.convert_to_tensor(features[:32]),
                                               keras.ops.convert_to_tensor(labels[:32].astype("int32")),
                                               training=False)
    (loss_1, p1), (loss_3, p3) = parts[1.0], parts[3.0]
    # same seeds, same draws: only L_s's weight differs
    assert float(p3["l_s"]) == pytest.approx(float(p1["l_s"]), rel=1e-5)
    assert float(loss_3 - loss_1) == pytest.approx(2 * float(p1["l_s"]), rel=1e-4)


def test_epsilon_is_clipped_gaussian():
    eps = np.asarray(sampling.sample_epsilon(20000, 0.5, 0.15, 0.1, 0.8, keras.random.SeedGenerator(0)))
    assert eps.shape == (20000, 1) and eps.min() >= 0.1 and eps.max() <= 0.8
    assert abs(eps.mean() - 0.5) < 0.01


def test_epsilon_without_bounds_is_an_unclipped_gaussian():
    eps = np.asarray(sampling.sample_epsilon(20000, 0.1, 0.2, None, None, keras.random.SeedGenerator(0)))
    assert eps.min() < 0 < 0.5 < eps.max()  # both tails present: nothing was clipped
    assert abs(eps.mean() - 0.1) < 0.01 and abs(eps.std() - 0.2) < 0.01


def test_fgsm_lowers_d_on_average():
    keras.utils.set_random_seed(0)
    generator = build_generator(8, 3, 5, (16,), "linear")
    discriminator = build_discriminator(5, 3, (16,))
    z = tf.random.normal((512, 8))
    labels = tf.constant(RNG.integers(0, 3, 512), tf.int32)
    z_adv = sampling.fgsm_latent(generator, discriminator, z, labels, 0.1)
    before = discriminator([generator([z, labels]), labels])
    after = discriminator([generator([z_adv, labels]), labels])
    assert float(tf.reduce_mean(after)) < float(tf.reduce_mean(before))
    assert float(tf.reduce_mean(tf.cast(after < before, tf.float32))) > 0.9
    np.testing.assert_allclose(np.abs(z_adv - z), 0.1, rtol=1e-5)  # a sign step of size eps


# ----------------------------------------------------------------- losses by hand ----

REAL = np.array([2.0, -1.0], np.float32)
SHUFFLED = np.array([0.5, -3.0], np.float32)
TRIVIAL = np.array([-2.0, 1.0], np.float32)
GENERATED = np.array([0.0, 4.0], np.float32)
HARD = np.array([1.0, -1.0], np.float32)


def test_vanilla_loss_eq10():
    # -E log sigmoid(real) - E log(1 - sigmoid(generated))
    expected = np.mean(softplus(-REAL)) + np.mean(softplus(GENERATED))
    assert float(losses.vanilla_loss(REAL, GENERATED)) == pytest.approx(expected, rel=1e-6)
    sig = 1 / (1 + np.exp(-REAL))
    assert float(losses.id_loss(REAL)) == pytest.approx(-np.mean(np.log(sig)), rel=1e-6)


def test_shuffle_loss_eq8():
    expected = np.mean(-np.log(1 - 1 / (1 + np.exp(-SHUFFLED)))) + np.mean(-np.log(1 / (1 + np.exp(-REAL))))
    assert float(losses.shuffle_loss(REAL, SHUFFLED)) == pytest.approx(expected, rel=1e-6)


def test_uniform_loss_eq9_with_hard_negatives():
    expected = 0.7 * np.mean(softplus(TRIVIAL)) + np.mean(softplus(-REAL)) + 1.0 * np.mean(softplus(HARD))
    assert float(losses.uniform_loss(REAL, TRIVIAL, HARD, 0.7, 1.0)) == pytest.approx(expected, rel=1e-6)
    without_hard = 0.3 * np.mean(softplus(TRIVIAL)) + np.mean(softplus(-REAL))
    assert float(losses.uniform_loss(REAL, TRIVIAL, None, 0.3)) == pytest.approx(without_hard, rel=1e-6)


def log_sigmoid(x):
    return -softplus(-x)


def test_printed_eq8_and_eq9_use_plus_log_d_for_the_negatives():
    # Eq. 8: E log D(f, T(c)) - E log D(f, c); Eq. 9: lambda_c E_{P_u} log D - E log D(f, c)
    expected_s = np.mean(log_sigmoid(SHUFFLED)) - np.mean(log_sigmoid(REAL))
    assert float(losses.shuffle_loss(REAL, SHUFFLED, "log_d")) == pytest.approx(expected_s, abs=1e-5)
    expected_u = 0.7 * np.mean(log_sigmoid(TRIVIAL)) - np.mean(log_sigmoid(REAL))
    assert float(losses.uniform_loss(REAL, TRIVIAL, None, 0.7, form="log_d")) == pytest.approx(expected_u, abs=1e-5)
    # pooled: trivial and hard pairs are one expectation over P_u (Algorithm 1, line 7)
    pooled = 0.7 * np.mean(log_sigmoid(np.concatenate([TRIVIAL, HARD]))) - np.mean(log_sigmoid(REAL))
    assert float(losses.uniform_loss(REAL, TRIVIAL, HARD, 0.7, form="log_d", pool_hard=True)) == pytest.approx(
        pooled, abs=1e-5)
    separate = 0.7 * np.mean(log_sigmoid(TRIVIAL)) + 0.5 * np.mean(log_sigmoid(HARD)) - np.mean(log_sigmoid(REAL))
    assert float(losses.uniform_loss(REAL, TRIVIAL, HARD, 0.7, 0.5, form="log_d")) == pytest.approx(separate, abs=1e-5)


def test_printed_form_is_unbounded_but_clamped_at_the_guard():
    # the printed negatives reward D -> 0 without limit (the bounded form saturates at 0) ...
    very_negative, more_negative = np.array([-30.0], np.float32), np.array([-60.0], np.float32)
    assert float(losses.negative_term(more_negative, "log_d")) < float(losses.negative_term(very_negative, "log_d"))
    assert float(losses.negative_term(more_negative, "bce")) == pytest.approx(0.0, abs=1e-12)
    # ... until log D reaches the guard, where the loss and its gradient stop
    logits = tf.constant([-1e4, -50.0])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = losses.negative_term(logits, "log_d")
    assert float(value) == pytest.approx((losses.LOG_D_FLOOR - 50.0) / 2, rel=1e-4)
    np.testing.assert_allclose(tape.gradient(value, logits).numpy(), [0.0, 0.5], atol=1e-6)


def test_losses_stay_finite_for_huge_logits():
    huge = np.array([1e4, -1e4], np.float32)
    for value in (losses.vanilla_loss(huge, huge), losses.shuffle_loss(huge, huge),
                  losses.uniform_loss(huge, huge, huge)):
        assert np.isfinite(float(value))


def test_nearest_same_class_l1_eq12():
    generated = np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 9.0]], np.float32)
    g_labels = np.array([0, 1, 2], np.int32)
    real = np.array([[1.0, 1.0], [0.0, 3.0], [4.0, 4.0], [100.0, 100.0]], np.float32)
    r_labels = np.array([0, 0, 1, 0], np.int32)
    # class 0: nearest of (1,1),(0,3),(100,100) to (0,0) is L1 2; class 1: (4,4) to (5,5) is 2;
    # class 2 has no real feature in the batch and is left out.
    value = losses.nearest_same_class_l1(generated, g_labels, real, r_labels)
    assert float(value) == pytest.approx(2.0)


def test_memory_bank_l1_is_the_nearest_training_feature_of_the_class():
    features, labels = tiny_features(n=300, dim=5)
    generated = RNG.normal(2.0, 2.0, (40, 5)).astype("float32")
    g_labels = RNG.integers(0, 3, 40).astype("int32")
    # M_c exactly (size 0): the brute-force nearest L1 neighbour among all class-c features
    bank = sampling.class_memory_bank(features, labels, 3, size=0)
    brute = [np.abs(features[labels == c] - g).sum(1).min() for g, c in zip(generated, g_labels)]
    assert float(losses.nearest_in_memory_bank_l1(generated, g_labels, bank)) == pytest.approx(np.mean(brute), rel=1e-5)
    # a fixed draw of 16 per class: rows of the class, so its minimum can only be larger
    small = sampling.class_memory_bank(features, labels, 3, size=16, seed=1)
    assert small.shape == (3, 16, 5)
    for c in range(3):
        members = {tuple(row) for row in features[labels == c]}
        assert all(tuple(row) in members for row in small[c])
    assert float(losses.nearest_in_memory_bank_l1(generated, g_labels, small)) >= np.mean(brute) - 1e-4


def test_generator_loss_eq12():
    l1 = np.float32(3.0)
    total, adversarial = losses.generator_loss(GENERATED, l1, 0.01, "saturating")
    expected_adv = np.mean(np.log(1 - 1 / (1 + np.exp(-GENERATED))))
    assert float(adversarial) == pytest.approx(expected_adv, rel=1e-5)
    assert float(total) == pytest.approx(expected_adv + 0.03, rel=1e-5)
    _, non_saturating = losses.generator_loss(GENERATED, l1, 0.01, "non_saturating")
    assert float(non_saturating) == pytest.approx(np.mean(softplus(-GENERATED)), rel=1e-6)


def test_knn_boundary_bank_holds_each_class_outer_points_and_its_own_level():
    features, labels = tiny_features(n=600, dim=8)
    bank = sampling.BoundaryBank.fit(features, labels, 3, k=5, seed=0)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    for c in range(3):
        members = unit[labels == c]
        distances = np.sqrt(np.maximum(2 - 2 * members @ members.T, 0))
        np.fill_diagonal(distances, np.inf)
        kth = np.sort(distances, axis=1)[:, 4]
        assert abs(bank.levels[c] - np.quantile(kth, 0.95)) < 1e-5  # every member is in the reference here
        # the seeds of the candidates are members of class c, from its outer fifth
        points = bank.points[c] / np.linalg.norm(bank.points[c], axis=1, keepdims=True)
        index = np.argmin(np.linalg.norm(points[:, None] - members[None], axis=2), axis=1)
        assert np.all(kth[index] >= np.quantile(kth, 0.75))
    with pytest.raises(ValueError, match="k must be"):
        sampling.BoundaryBank.fit(features, labels, 3, k=0)


def test_knn_boundary_negatives_are_kept_only_beyond_the_class_level():
    features, labels = tiny_features(n=600, dim=8)
    bank = sampling.BoundaryBank.fit(features, labels, 3, k=5, seed=0)
    near, near_labels, near_mask = (np.asarray(t) for t in sampling.sample_knn_boundary(labels, bank, (0.0, 0.0), 0))
    far, _, far_mask = (np.asarray(t) for t in sampling.sample_knn_boundary(labels, bank, (4.0, 5.0), 0))
    np.testing.assert_array_equal(near_labels, labels)
    assert near.min() >= 0.0 and far.min() >= 0.0  # clipped at the features' floor (0 here)
    assert near_mask.mean() < 0.5   # the boundary points themselves: mostly inside the level
    assert far_mask.mean() > 0.95   # moved 4-5 levels away: outside
    # the mask is the k-NN test itself, recomputed here in numpy
    unit = far / np.linalg.norm(far, axis=1, keepdims=True)
    for i in range(20):
        reference = bank.reference[labels[i]]
        kth = np.sort(np.sqrt(np.maximum(2 - 2 * reference @ unit[i], 0)))[4]
        assert far_mask[i] == float(kth > bank.levels[labels[i]])
    # the ratio returned for graded targets is that distance in units of the level: mask = ratio > 1
    _, _, mask, ratio = (np.asarray(t) for t in sampling.sample_knn_boundary(labels, bank, (0.0, 5.0), 0,
                                                                              with_ratio=True))
    np.testing.assert_array_equal(mask, (ratio > 1).astype(mask.dtype))
    assert ratio.min() < 1 < ratio.max()


def test_graded_targets_fall_linearly_and_their_loss_is_least_where_d_equals_the_target():
    ratio = np.array([0.2, 1.0, 1.25, 1.5, 3.0], np.float32)
    np.testing.assert_allclose(np.asarray(losses.graded_target(ratio, (1.0, 1.5))), [1, 1, 0.5, 0, 0], atol=1e-6)
    targets = np.array([0.9, 0.5, 0.1], np.float32)
    best = np.log(targets / (1 - targets))  # D = sigmoid(best) = t
    loss = lambda logits: float(losses.graded_loss(np.asarray(logits, np.float32), targets))  # noqa: E731
    for shift in (-0.5, 0.5):
        for i in range(3):
            moved = best.copy()
            moved[i] += shift
            assert loss(moved) > loss(best)
    # the two ends are the hard losses: t = 1 is "ID" (softplus(-l)), t = 0 "OOD" (softplus(l))
    logits = np.array([2.0, -1.0], np.float32)
    assert float(losses.graded_loss(logits, np.ones(2))) == pytest.approx(float(losses.id_loss(logits)), rel=1e-6)
    assert float(losses.graded_loss(logits, np.zeros(2))) == pytest.approx(float(losses.ood_loss(logits)), rel=1e-6)


# ------------------------------------------------------------------- train_step ----

def tiny_features(n=256, dim=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = rng.normal(0, 3, (classes, dim))
    features = np.abs(centers[labels] + rng.normal(0, 0.3, (n, dim))).astype("float32")
    return features, labels


@pytest.mark.parametrize("overrides", [{}, {"label_conditioning": "projection"},
                                       {"trivial_sampling": "gaussian", "generator_loss": "non_saturating"},
                                       {"shell_sampling": "radial", "discriminator_input": "standardized"},
                                       {"shell_sampling": "gaussian_tail", "between_class_weight": 1.0},
                                       {"boundary_weight": 1.0, "boundary_k": 3, "boundary_scale": [4.0, 5.0]},
                                       {"boundary_weight": 1.0, "boundary_k": 3, "boundary_scale": [0.0, 5.0],
                                        "boundary_targets": "graded"}])
def test_one_train_step_changes_d_and_g(overrides):
    features, labels = tiny_features()
    # boundary negatives only where asked: on this 6-d toy the default's close ones all fall
    # inside the class level (masked out), so the case that asks for them moves them far out
    config = GANConfig(latent_dim=4, generator_units=[16], discriminator_units=[16],
                       **{"boundary_weight": 0.0, **overrides})
    gan = make_gan(config, 3, features, labels, seed=0)
    d_before = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    g_before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    logs = gan.train_on_batch(features[:32], labels[:32].astype("int32"), return_dict=True)
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(d_before, gan.discriminator.trainable_weights))
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(g_before, gan.generator.trainable_weights))
    expected = {"d_loss", "g_loss", "l_t", "l_s", "l_u", "g_adversarial", "g_l1",
                "d_real", "d_shuffled", "d_trivial", "d_generated", "d_hard", "d_shell", "d_between", "d_boundary"}
    assert set(logs) == expected
    assert (logs["d_shell"] > 0) == (config.shell_sampling != "none")  # the shell term ran iff asked
    assert (logs["d_between"] > 0) == (config.between_class_weight > 0)
    assert (logs["d_boundary"] > 0) == (config.boundary_weight > 0)
    assert all(np.isfinite(v) for v in logs.values())


def test_boundary_negatives_without_their_bank_are_a_clear_error():
    from bal_tf.errors import ConfigError
    from bal_tf.gan import BoundaryAwareGAN, build_discriminator, build_generator

    config = GANConfig(latent_dim=4, boundary_weight=1.0, shell_sampling="none")
    with pytest.raises(ConfigError, match="boundary bank"):
        BoundaryAwareGAN(build_generator(4, 3, 6, [8]), build_discriminator(6, 3, [8]), 3, config)


def test_loss_switches_drop_terms():
    features, labels = tiny_features()
    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8],
                       use_vanilla_loss=False, use_shuffle_loss=False, use_uniform_loss=True)
    gan = make_gan(config, 3, features, labels, seed=0)
    logs = gan.train_on_batch(features[:32], labels[:32].astype("int32"), return_dict=True)
    assert logs["d_loss"] == pytest.approx(logs["l_u"], rel=1e-5)


def test_feature_batches_use_full_boxes():
    features, labels = tiny_features(n=300)
    batches = list(feature_batches(features, labels, 128, seed=0))
    assert [len(b[0]) for b in batches] == [128, 128]


def poison_d_at(epoch_to_poison):
    """A callback that writes NaN into D's weights when that (0-based) epoch begins."""

    def poison(epoch, logs):
        if epoch == epoch_to_poison:
            for weight in callback.model.discriminator.weights:
                weight.assign(np.full(weight.shape, np.nan, np.float32))

    callback = keras.callbacks.LambdaCallback(on_epoch_begin=poison)
    return callback


def test_nan_guard_stops_and_keeps_the_last_good_epoch():
    from bal_tf.features import FeatureSet
    from bal_tf.train_bal import train_bal

    features, labels = tiny_features(n=512)
    train = FeatureSet(features, np.eye(3, dtype=np.float32)[labels] * 5, labels)
    config = GANConfig(epochs=4, batch_size=64, latent_dim=4, generator_units=[8], discriminator_units=[8],
                       selection="last", d_ema_decay=0.0)
    result = train_bal(config, train, verbose=0, extra_callbacks=[poison_d_at(2)])
    assert result.diverged and "epoch 3" in result.diverged
    assert len(result.history) == 2 and result.selected_epoch == 2
    for model in (result.discriminator, result.last_discriminator):
        assert all(np.isfinite(w).all() for w in model.get_weights())
    with pytest.raises(FloatingPointError, match="before any epoch finished"):
        train_bal(config, train, verbose=0, extra_callbacks=[poison_d_at(0)])


def test_feature_batches_resume_mid_run_with_the_same_batches():
    features, labels = tiny_features(n=300)
    whole = [b[1].numpy() for b in feature_batches(features, labels, 64, seed=3, epochs=3)]
    resumed = [b[1].numpy() for b in feature_batches(features, labels, 64, seed=3, first_epoch=2, epochs=3)]
    assert len(whole) == 12 and len(resumed) == 4
    for a, b in zip(whole[8:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(whole[0], whole[4])  # each epoch has its own order


def test_gan_training_resumes_from_its_checkpoint_to_identical_weights(tmp_path):
    """Stop after epoch 2 (as a crash would), resume with the same call: same end state as an
    uninterrupted run, selection history included. Also: the same seed twice gives the same run."""
    from bal_tf.features import FeatureSet
    from bal_tf.selection import SelectionData
    from bal_tf.train_bal import train_bal

    features, labels = tiny_features(n=512)
    logits = np.eye(3, dtype=np.float32)[labels] * 5
    train = FeatureSet(features, logits, labels)
    selection = SelectionData(features[:64], logits[:64], {}, 64)
    config = GANConfig(epochs=4, batch_size=64, latent_dim=4, generator_units=[8], discriminator_units=[8],
                       synthetic_families=["uniform_features", "perturbed_features"])

    def run(checkpoint_dir, callbacks=()):
        return train_bal(config, train, verbose=0, selection_data=selection, seed=5,
                         checkpoint_dir=checkpoint_dir, extra_callbacks=callbacks)

    reference = run(tmp_path / "uninterrupted")
    again = run(None)
    stop_after_two = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(stopper.model, "stop_training", epoch == 1))
    stopper = stop_after_two
    run(tmp_path / "crashed", [stopper])
    assert sorted(p.name for p in (tmp_path / "crashed").iterdir()) == ["epoch_0001", "epoch_0002"]
    resumed = run(tmp_path / "crashed")
    for other in (again, resumed):
        assert [h["selection_criterion"] for h in other.history] == [h["selection_criterion"] for h in reference.history]
        assert other.selected_epoch == reference.selected_epoch
        for model in ("discriminator", "last_discriminator"):
            for a, b in zip(getattr(other, model).get_weights(), getattr(reference, model).get_weights()):
                np.testing.assert_array_equal(a, b)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    from bal_tf.checkpointing import EpochCheckpoints

    checkpoints = EpochCheckpoints(tmp_path, keep=2)
    for epoch in (1, 2, 3):
        checkpoints.save(epoch, lambda path, epoch=epoch: (path / "value.txt").write_text(str(epoch)))
    assert checkpoints.saved_epochs() == [3, 2]
    (checkpoints.path(3) / "value.txt").write_text("garbage")
    seen = []
    with pytest.warns(UserWarning, match="could not be restored"):
        restored = checkpoints.restore(lambda path: seen.append(int((path / "value.txt").read_text())))
    assert restored == 2 and seen == [2]


@pytest.mark.parametrize("bias_correction", [False, True])
def test_ema_of_d_is_the_exponential_average_of_ds_weights(bias_correction):
    features, labels = tiny_features()
    decay = 0.9
    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], d_ema_decay=decay,
                       d_ema_bias_correction=bias_correction)
    gan = make_gan(config, 3, features, labels, seed=0)
    initial = gan.discriminator.get_weights()
    trajectory = []
    for step in range(6):
        batch = slice(32 * step, 32 * (step + 1))
        gan.train_on_batch(features[batch], labels[batch].astype("int32"))
        trajectory.append(gan.discriminator.get_weights())
    for i, averaged in enumerate(gan.ema_discriminator.get_weights()):
        steps = len(trajectory)
        weights = np.array([(1 - decay) * decay ** (steps - 1 - t) for t in range(steps)])
        expected = sum(w * trajectory[t][i] for t, w in enumerate(weights))
        if bias_correction:  # Adam's debiasing: the weights sum to 1, nothing left of the init
            expected = expected / weights.sum()
        else:  # the rest of the mass stays on D's random initialization
            expected = expected + decay ** steps * initial[i]
        np.testing.assert_allclose(averaged, expected, rtol=1e-4, atol=1e-5)


def test_d_trained_with_shell_negatives_rejects_each_classs_shell_and_keeps_its_core():
    # Without shell negatives this D says ~0.9 on the 3x shell (it only sees the box, G and
    # wrong labels as negatives); with them, < 0.2.
    features, labels = tiny_features(n=1200)
    statistics = sampling.ClassStatistics.fit(features, labels, 3)
    config = GANConfig(latent_dim=4, generator_units=[32], discriminator_units=[64, 64], shell_sampling="radial",
                       shell_radius=[2.0, 4.0], d_ema_decay=0.0, d_learning_rate=1e-3, boundary_weight=0.0)
    gan = make_gan(config, 3, features, labels, seed=0)
    gan.fit(feature_batches(features, labels, 128, seed=0, epochs=40), epochs=1, verbose=0)
    d = lambda f, c: keras.ops.sigmoid(gan.discriminator([f, c.astype("int32")])).numpy()  # noqa: E731
    means = statistics.means[labels]
    core = means + 0.5 * (features - means)  # halfway to the class mean
    shell = np.maximum(means + 3.0 * (features - means), 0.0)
    assert np.median(d(core, labels)) > 0.8
    assert np.median(d(shell, labels)) < 0.2
    # the class matters: the same core with a wrong label is rejected (L_s)
    assert np.median(d(core, (labels + 1) % 3)) < 0.2


def test_l2_normalized_discriminator_sees_only_the_direction():
    features, labels = tiny_features()
    discriminator = build_discriminator(6, 3, (16,), l2_normalize=True)
    np.testing.assert_allclose(discriminator([3.0 * features, labels]).numpy(),
                               discriminator([features, labels]).numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------- what a trained D does on a separable toy ----

@pytest.fixture(scope="module")
def trained_toy_gan():
    """BAL's default losses (L_t + L_s + L_u, no extra negatives) on three separable classes."""
    features, labels = tiny_features(n=1200)
    config = GANConfig(latent_dim=4, generator_units=[32], discriminator_units=[64, 64], d_ema_decay=0.0,
                       d_learning_rate=1e-3, g_learning_rate=1e-3, boundary_weight=0.0)
    gan = make_gan(config, 3, features, labels, seed=0)
    gan.fit(feature_batches(features, labels, 128, seed=0, epochs=40), epochs=1, verbose=0)
    return gan, features, labels


def toy_d(gan, f, c):
    return keras.ops.sigmoid(gan.discriminator([np.asarray(f, np.float32), np.asarray(c, np.int32)])).numpy()


def test_trained_d_accepts_real_pairs_and_rejects_wrong_labels(trained_toy_gan):
    gan, features, labels = trained_toy_gan
    shuffled = np.asarray(sampling.shuffle_labels(labels, 3, 0))
    real, wrong = toy_d(gan, features, labels), toy_d(gan, features, shuffled)
    assert np.median(real) > 0.8 and np.median(wrong) < 0.2  # L_s: the label matters
    assert (real > wrong).mean() > 0.95


def test_trained_d_rejects_the_uniform_box(trained_toy_gan):
    gan, features, labels = trained_toy_gan
    box = np.asarray(sampling.sample_uniform_box(features, 2000, 0))
    box_labels = RNG.integers(0, 3, 2000)
    assert np.median(toy_d(gan, box, box_labels)) < 0.2 < 0.8 < np.median(toy_d(gan, features, labels))


def test_hard_features_score_below_real_ones_and_lie_farther_from_the_data_than_g(trained_toy_gan):
    gan, features, labels = trained_toy_gan
    z, z_adv, g_labels = (np.asarray(t) for t in gan.sample_hard(1000))
    generated = gan.generator([z, g_labels]).numpy()
    hard = gan.generator([z_adv, g_labels]).numpy()

    def distance_to_class(points):  # L1 to the nearest real feature of the conditioning class
        return np.array([np.abs(features[labels == c] - p).sum(1).min() for p, c in zip(points, g_labels)])

    hard_distance, generated_distance = distance_to_class(hard), distance_to_class(generated)
    # each G(z', c) against its own G(z, c): farther from the class's data more often than not
    # (0.62 here; with the FGSM step reversed, 0.39), and farther in the median
    assert (hard_distance > generated_distance).mean() > 0.55
    assert np.median(hard_distance) > np.median(generated_distance)
    assert np.median(toy_d(gan, hard, g_labels)) < np.median(toy_d(gan, generated, g_labels))
    assert np.median(toy_d(gan, hard, g_labels)) < 0.5 < np.median(toy_d(gan, features, labels))


def test_box_margin_widens_the_box_by_that_fraction_on_each_side():
    features = RNG.normal(size=(64, 4)).astype("float32")
    low, high = features.min(0), features.max(0)
    samples = np.asarray(sampling.sample_uniform_box(features, 20000, 0, margin=0.5))
    np.testing.assert_allclose(samples.min(0), low - 0.5 * (high - low), atol=0.01 * (high - low).max())
    np.testing.assert_allclose(samples.max(0), high + 0.5 * (high - low), atol=0.01 * (high - low).max())
    assert ((samples < low) | (samples > high)).any(1).mean() > 0.5  # most of the 2x-wide box is outside


@pytest.mark.parametrize("preset", ["paper_literal", "paper"])
def test_paper_presets_pull_g_to_the_memory_bank_not_the_batch(preset, monkeypatch):
    from bal_tf.config import GAN_PRESETS

    features, labels = tiny_features()
    config = dataclasses.replace(GAN_PRESETS[preset](), latent_dim=4, generator_units=[8], discriminator_units=[8],
                                 memory_bank_size=32)
    gan = make_gan(config, 3, features, labels, seed=0)
    assert tuple(gan.memory_bank.shape) == (3, 32, 6)
    for c in range(3):  # the bank holds training features of its class
        assert np.isin(gan.memory_bank.numpy()[c][:, 0], features[labels == c][:, 0]).all()
    calls = []
    monkeypatch.setattr(losses, "nearest_same_class_l1", lambda *a: calls.append("batch") or 0.0)
    bank_l1 = losses.nearest_in_memory_bank_l1
    monkeypatch.setattr(losses, "nearest_in_memory_bank_l1", lambda *a: calls.append("bank") or bank_l1(*a))
    logs = gan.train_on_batch(features[:64], labels[:64].astype("int32"), return_dict=True)
    assert set(calls) == {"bank"} and logs["g_l1"] > 0  # (traced once or twice)
    assert all(np.isfinite(v) for v in logs.values())


def test_the_discriminator_returned_and_scored_is_the_selected_epochs():
    from bal_tf.features import FeatureSet
    from bal_tf.selection import SelectionData
    from bal_tf.train_bal import train_bal

    features, labels = tiny_features(n=512)
    logits = np.eye(3, dtype=np.float32)[labels] * 5
    train = FeatureSet(features, logits, labels)
    selection = SelectionData(features[:64], logits[:64], {}, 64)
    config = GANConfig(epochs=6, batch_size=64, latent_dim=4, generator_units=[8], discriminator_units=[8],
                       synthetic_families=["uniform_features", "perturbed_features"], d_learning_rate=2e-3)
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(recorder.model.scoring_discriminator.get_weights()))
    recorder = record
    result = train_bal(config, train, verbose=0, selection_data=selection, seed=2, extra_callbacks=[record])
    criteria = [h["selection_criterion"] for h in result.history]
    assert result.selected_epoch == int(np.argmax(criteria)) + 1
    assert result.selected_epoch < config.epochs  # (this seed selects an earlier epoch: the test has teeth)
    for kept, snapshot in ((result.discriminator, snapshots[result.selected_epoch - 1]),
                           (result.last_discriminator, snapshots[-1])):
        for a, b in zip(kept.get_weights(), snapshot):
            np.testing.assert_array_equal(a, b)


def test_whitened_discriminator_sees_each_class_as_a_unit_sphere(tmp_path):
    from bal_tf.gan import whitening_transform

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 500)
    mixing = np.array([3.0, 1.0, 0.3, 0.1])[:, None] * np.linalg.qr(rng.normal(size=(4, 4)))[0]  # correlated, unequal scales
    features = (rng.normal(size=(1500, 4)) @ mixing + 10 * labels[:, None]).astype("float32")
    matrix, offset = whitening_transform(features, labels, 3)
    whitened = features @ matrix + offset
    within = np.concatenate([whitened[labels == c] - whitened[labels == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(np.cov(within.T), np.eye(4), atol=0.02)  # tied covariance -> identity
    assert abs(whitened.mean(0)).max() < 1e-3
    discriminator = build_discriminator(4, 3, (8,), whitening=(matrix, offset))
    assert not discriminator.get_layer("whiten").trainable_weights  # a fixed layer
    np.testing.assert_allclose(keras.Model(discriminator.inputs, discriminator.get_layer("whiten").output)(
        [features, labels]).numpy(), whitened, rtol=1e-4, atol=1e-4)
    discriminator.save(tmp_path / "d.keras")  # saved (and so exported) with its fixed layer
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(loaded([features, labels]).numpy(), discriminator([features, labels]).numpy(), atol=1e-5)
    gan = make_gan(GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8],
                             discriminator_input="whitened"), 3, features, labels)
    np.testing.assert_allclose(gan.discriminator.get_layer("whiten").get_weights()[0], matrix, atol=1e-6)


def test_lipschitz_discriminator_keeps_every_kernels_spectral_norm_near_one(tmp_path):
    from bal_tf.gan import SpectralNormBound

    rng = np.random.default_rng(0)
    bounded = SpectralNormBound()(keras.ops.convert_to_tensor(rng.normal(size=(40, 30)).astype("float32") * 5))
    assert 0.95 < np.linalg.svd(np.asarray(bounded), compute_uv=False)[0] <= 1.0 + 1e-4
    small = 0.01 * rng.normal(size=(8, 8)).astype("float32")
    np.testing.assert_allclose(np.asarray(SpectralNormBound()(keras.ops.convert_to_tensor(small))), small)  # left alone
    features, labels = tiny_features()
    gan = make_gan(GANConfig(latent_dim=4, generator_units=[16], discriminator_units=[32, 32],
                             discriminator_lipschitz=True, d_learning_rate=1e-2), 3, features, labels)
    gan.fit(feature_batches(features, labels, 64, seed=0), epochs=1, verbose=0)
    for name in ("dense1", "dense2", "logit"):
        sigma = np.linalg.svd(gan.discriminator.get_layer(name).kernel.numpy(), compute_uv=False)[0]
        assert sigma <= 1.1, (name, sigma)
    gan.discriminator.save(tmp_path / "d.keras")  # the constraint is saved and loaded with D
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(loaded([features, labels]).numpy(), gan.discriminator([features, labels]).numpy(),
                               atol=1e-5)


def test_knn_input_is_the_class_conditional_knn_distance_in_units_of_the_class_level(tmp_path):
    from bal_tf.gan import fold_input_transform, knn_reference

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 200)
    features = (rng.normal(size=(600, 5)) + 4 * np.eye(5)[labels]).astype("float32")
    reference, levels = knn_reference(features, labels, 3, size=50, k=3, seed=0)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert reference.shape == (150, 5) and np.isin(reference[:50].round(5), unit[labels == 0].round(5)).all()
    # each class's level: the median over its references of the distance to the 3rd nearest other one
    own = reference[50:100].astype(np.float64)
    distances = np.sqrt(np.maximum(2 - 2 * own @ own.T, 0)) + np.diag(np.full(50, np.inf))
    np.testing.assert_allclose(levels[1], np.median(np.sort(distances, axis=1)[:, 2]), rtol=1e-5)

    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], discriminator_knn_size=50,
                       discriminator_knn_k=3, discriminator_input="whitened")
    discriminator = make_gan(config, 3, features, labels).discriminator
    knn = keras.Model(discriminator.inputs, discriminator.get_layer("knn_distance").output)
    queries, classes = (rng.normal(size=(40, 5)) * 3).astype("float32"), rng.integers(0, 3, 40)
    got = knn([queries, classes]).numpy()[:, 0]
    query_unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = []
    for q, c in zip(query_unit, classes):
        d = np.sort(np.sqrt(np.maximum(2 - 2 * reference[50 * c:50 * (c + 1)] @ q, 0)))[2]  # against class c only
        expected.append(np.log1p(d / levels[c]))
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    # a feature of class 0 is near class 0's references, far from class 1's: the label matters
    member = features[labels == 0][:20]
    assert (knn([member, np.zeros(20, int)]).numpy() < knn([member, np.ones(20, int)]).numpy()).all()

    discriminator.save(tmp_path / "d.keras")  # the references are saved (and exported) with D
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(loaded([queries, classes]).numpy(), discriminator([queries, classes]).numpy(), atol=1e-5)
    folded = fold_input_transform(discriminator)  # the whitening folds; the k-NN input stays
    assert "whiten" not in {layer.name for layer in folded.layers}
    np.testing.assert_allclose(folded([queries, classes]).numpy(), discriminator([queries, classes]).numpy(),
                               rtol=1e-3, atol=1e-3)


def test_knn_input_bad_settings_are_clear_errors():
    from bal_tf.errors import ConfigError

    features, labels = tiny_features()
    with pytest.raises(ConfigError, match="discriminator_knn_k"):
        GANConfig(discriminator_knn_size=10, discriminator_knn_k=10)
    with pytest.raises(ConfigError, match="more than k=3 training features of class 2"):
        make_gan(GANConfig(discriminator_knn_size=20), 3, features[labels < 2], labels[labels < 2])


def test_monotone_knn_input_lowers_d_by_a_nonnegative_slope_times_the_distance(tmp_path):
    from bal_tf.gan import fold_input_transform

    features, labels = tiny_features()
    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], discriminator_knn_size=20,
                       discriminator_knn_mode="monotone", boundary_weight=0.0)
    gan = make_gan(config, 3, features, labels)
    discriminator = gan.discriminator
    names = {layer.name for layer in discriminator.layers}
    assert "knn_penalty" in names and discriminator.get_layer("dense1").kernel.shape[0] == 6 + 3  # MLP: f, label
    distance = keras.Model(discriminator.inputs, discriminator.get_layer("knn_distance").output)
    mlp = keras.Model(discriminator.inputs, discriminator.get_layer("logit").output)
    slope = float(keras.ops.softplus(discriminator.get_layer("knn_penalty").beta))
    queries = features[:16] * np.float32(1.5)
    expected = mlp([queries, labels[:16]]).numpy()[:, 0] - slope * distance([queries, labels[:16]]).numpy()[:, 0]
    np.testing.assert_allclose(discriminator([queries, labels[:16]]).numpy(), expected, rtol=1e-5, atol=1e-5)
    discriminator.get_layer("knn_penalty").beta.assign(-30.0)  # the slope cannot turn negative
    assert float(keras.ops.softplus(discriminator.get_layer("knn_penalty").beta)) >= 0
    logs = gan.fit(feature_batches(features, labels, 64, seed=0), epochs=1, verbose=0).history  # trains with it
    assert np.isfinite(logs["d_loss"]).all()
    discriminator.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(loaded([queries, labels[:16]]).numpy(), discriminator([queries, labels[:16]]).numpy(),
                               atol=1e-5)
    folded = fold_input_transform(discriminator)
    np.testing.assert_allclose(folded([queries, labels[:16]]).numpy(), discriminator([queries, labels[:16]]).numpy(),
                               rtol=1e-3, atol=1e-3)


def test_d_trained_with_graded_boundary_targets_falls_as_candidates_leave_the_class():
    """D's level between a class and its boundary negatives follows their k-NN distance r: high
    inside the class level (r < 1), low beyond r_out, falling in between (Spearman < -0.5)."""
    from scipy.stats import spearmanr

    features, labels = tiny_features(n=1200, dim=8)
    config = GANConfig(latent_dim=4, generator_units=[32], discriminator_units=[64, 64], shell_sampling="none",
                       discriminator_input="raw", d_ema_decay=0.0, d_learning_rate=3e-3, boundary_weight=5.0,
                       boundary_k=5, boundary_scale=[0.0, 3.0], boundary_targets="graded",
                       boundary_target_range=[1.0, 2.0])
    gan = make_gan(config, 3, features, labels, seed=0)
    gan.fit(feature_batches(features, labels, 128, seed=0, epochs=15), epochs=1, verbose=0)
    candidate_labels = np.repeat(np.arange(3), 400).astype("int32")
    candidates, _, _, ratio = (np.asarray(t) for t in sampling.sample_knn_boundary(
        candidate_labels, gan.boundary_bank, (0.0, 3.0), 1, with_ratio=True))
    d = keras.ops.sigmoid(gan.discriminator([candidates, candidate_labels])).numpy().reshape(-1)
    assert spearmanr(d, ratio).statistic < -0.5
    assert np.median(d[ratio < 1.0]) > 0.7 and np.median(d[ratio > 2.0]) < 0.3


@pytest.mark.parametrize("mode", ["concat", "monotone"])
def test_radius_input_is_the_class_mahalanobis_radius_in_units_of_the_class_median(tmp_path, mode):
    from bal_tf.gan import fold_input_transform

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 200)
    scales = np.array([1.0, 3.0, 0.5, 2.0, 1.0])  # anisotropic: the radius is Mahalanobis, not Euclidean
    features = (rng.normal(size=(600, 5)) * scales + 6 * np.eye(5)[labels]).astype("float32")
    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], discriminator_radius_input=mode,
                       boundary_weight=0.0)
    gan = make_gan(config, 3, features, labels)
    discriminator = gan.discriminator
    radius = keras.Model(discriminator.inputs, discriminator.get_layer("class_radius").output)
    # numpy: the class-tied covariance, its inverse square root, each class's median radius
    centers = np.stack([features[labels == c].mean(0) for c in range(3)]).astype(np.float64)
    centered = features - centers[labels]
    values, vectors = np.linalg.eigh(centered.T @ centered / (len(features) - 1))
    inverse_root = vectors @ np.diag(values ** -0.5) @ vectors.T
    levels = [np.median(np.linalg.norm(centered[labels == c] @ inverse_root, axis=1)) for c in range(3)]
    queries, classes = (rng.normal(size=(40, 5)) * 4).astype("float32"), rng.integers(0, 3, 40)
    expected = [np.log1p(np.linalg.norm((q - centers[c]) @ inverse_root) / levels[c]) for q, c in zip(queries, classes)]
    np.testing.assert_allclose(radius([queries, classes]).numpy()[:, 0], expected, rtol=1e-3, atol=1e-4)
    # inside its own class r ~ 1 (median exactly 1: log 2); the same features read as another class are far
    own = radius([features, labels]).numpy()[:, 0]
    assert abs(np.median(own) - np.log(2)) < 0.02
    as_class_1 = radius([features[labels == 0], np.ones(200, int)]).numpy()[:, 0]
    assert np.median(as_class_1) > np.median(own[labels == 0]) + 0.5
    # a step along the low-variance axis 2 counts 6x more than the same step along axis 1
    center = np.tile(centers[0].astype("float32"), (2, 1))
    center[0, 1] += 1.0
    center[1, 2] += 1.0
    assert radius([center, np.zeros(2, int)]).numpy()[1, 0] > 2 * radius([center, np.zeros(2, int)]).numpy()[0, 0]
    first_layer_inputs = discriminator.get_layer("dense1").kernel.shape[0]
    assert first_layer_inputs == 5 + 3 + (1 if mode == "concat" else 0)
    if mode == "monotone":  # not seen by the MLP: subtracted from its logit with a slope >= 0
        mlp = keras.Model(discriminator.inputs, discriminator.get_layer("logit").output)
        slope = float(keras.ops.softplus(discriminator.get_layer("radius_penalty").beta))
        np.testing.assert_allclose(discriminator([queries, classes]).numpy(),
                                   mlp([queries, classes]).numpy()[:, 0] - slope * radius([queries, classes]).numpy()[:, 0],
                                   rtol=1e-5, atol=1e-5)
    logs = gan.fit(feature_batches(features, labels, 64, seed=0), epochs=1, verbose=0).history  # trains with it
    assert np.isfinite(logs["d_loss"]).all()
    discriminator.save(tmp_path / "d.keras")  # centers, matrix and levels are saved (and exported) with D
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(loaded([queries, classes]).numpy(), discriminator([queries, classes]).numpy(), atol=1e-5)
    folded = fold_input_transform(discriminator)  # the whitening folds; the radius input stays
    assert "whiten" not in {layer.name for layer in folded.layers} and "class_radius" in {l.name for l in folded.layers}
    np.testing.assert_allclose(folded([queries, classes]).numpy(), discriminator([queries, classes]).numpy(),
                               rtol=1e-3, atol=1e-3)


def test_radius_input_unknown_mode_is_a_clear_error():
    from bal_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="discriminator_radius_input"):
        GANConfig(discriminator_radius_input="sideways")


def test_shell_ascent_moves_negatives_up_ds_logit_never_toward_their_class():
    from bal_tf import sampling

    features, labels = tiny_features(n=300, dim=6)
    statistics = sampling.ClassStatistics.fit(features, labels, 3)
    inputs = [keras.Input((6,)), keras.Input((), dtype="int32")]
    direction = np.array([1.0, -1.0, 2.0, 0.5, -0.5, 1.0], np.float32)  # D's logit = direction . f
    linear = keras.Model(inputs, keras.ops.sum(inputs[0] * direction, axis=-1))
    shell_labels = np.repeat(np.arange(3), 20).astype("int32")
    shells = np.asarray(sampling.sample_class_shell(shell_labels, statistics, [2.0, 4.0], 0, mode="gaussian_tail"))
    moved = np.asarray(sampling.ascend_discriminator(linear, shells, shell_labels, statistics, steps=3, step=0.1))
    assert (moved >= statistics.floor - 1e-6).all()  # clipped to the features' floor last
    unclipped = dataclasses.replace(statistics, floor=np.full(6, -1e9, np.float32))  # the radius rule alone
    moved = np.asarray(sampling.ascend_discriminator(linear, shells, shell_labels, unclipped, steps=3, step=0.1))

    def radius(x):
        return np.linalg.norm((x - statistics.means[shell_labels]) / statistics.stds[shell_labels], axis=1)

    assert (moved @ direction > shells @ direction + 1e-4).mean() > 0.9  # up D's logit
    assert (radius(moved) >= radius(shells) - 1e-3).all()  # never closer to the class than it began
    # one step without the radius or floor binding is exactly +step * sigma_c * sign(dD/df)
    far = statistics.means[shell_labels] + 50 * statistics.stds[shell_labels] * np.sign(direction)
    one = np.asarray(sampling.ascend_discriminator(linear, far, shell_labels, unclipped, steps=1, step=0.1))
    np.testing.assert_allclose(one, far + 0.1 * statistics.stds[shell_labels] * np.sign(direction), rtol=1e-5)
    # zero steps change nothing
    np.testing.assert_array_equal(
        np.asarray(sampling.ascend_discriminator(linear, shells, shell_labels, statistics, steps=0, step=0.1)), shells)


def test_shell_ascent_trains_and_needs_shells():
    from bal_tf.errors import ConfigError

    features, labels = tiny_features()
    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], shell_ascent_steps=2,
                       boundary_weight=0.0)
    gan = make_gan(config, 3, features, labels)
    logs = gan.fit(feature_batches(features, labels, 64, seed=0), epochs=1, verbose=0).history
    assert np.isfinite(logs["d_loss"]).all() and np.isfinite(logs["d_shell"]).all()
    with pytest.raises(ConfigError, match="shell_ascent_steps moves the shell negatives"):
        GANConfig(shell_sampling="none", shell_ascent_steps=2)
    with pytest.raises(ConfigError, match="shell_ascent_step > 0"):
        GANConfig(shell_ascent_step=0.0)
