"""REM / RSM / RDM pieces on tiny tensors: negatives, FGSM, losses, one train_step; and what a trained D does."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from bal_tf import losses, negatives, rem
from bal_tf.config import GANConfig
from bal_tf.errors import ConfigError
from bal_tf.discriminator import build_discriminator
from bal_tf.gan import feature_batches, make_gan
from bal_tf.generator import build_generator, fgsm_latent, sample_epsilon

RNG = np.random.default_rng(0)


def softplus(x):
    return np.log1p(np.exp(x))


def test_uniform_samples_lie_inside_the_batch_box():
    features = RNG.normal(size=(32, 6)).astype("float32") * np.arange(1, 7)
    samples = np.asarray(rem.sample_uniform_box(features, 5000, keras.random.SeedGenerator(1)))
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
    return features, labels, rem.ClassStatistics.fit(features, labels, 3)


def mahalanobis_over_radius(samples, labels, statistics):
    distance = np.linalg.norm((samples - statistics.means[labels]) / statistics.stds[labels], axis=1)
    return distance / statistics.radii[labels]


def test_class_statistics_radius_is_the_median_distance_of_the_class():
    features, labels, statistics = shell_statistics()
    ratios = mahalanobis_over_radius(features, labels, statistics)
    for c in range(3):
        assert np.median(ratios[labels == c]) == pytest.approx(1.0, abs=1e-4)
    assert (statistics.floor == features.min(0)).all()


def test_gaussian_tail_negatives_lie_in_the_low_density_band_of_their_class():
    features, labels, statistics = shell_statistics()
    unclipped = dataclasses.replace(statistics, floor=np.full(6, -np.inf, np.float32))  # clipping: tested below
    tail = np.asarray(rem.sample_gaussian_tail(labels, unclipped, (2.0, 3.0), keras.random.SeedGenerator(0)))
    ratios = mahalanobis_over_radius(tail, labels, statistics)
    id_ratios = mahalanobis_over_radius(features, labels, statistics)
    # exactly in the band of the class's own radius
    assert ratios.min() >= 2.0 - 1e-3 and ratios.max() <= 3.0 + 1e-3
    # beyond almost every ID feature of the class: the low-density region, not the core
    assert np.median(ratios) > np.quantile(id_ratios, 0.95)
    # each sample stays nearest to its own class mean (it is labelled with that class)
    nearest = np.argmin(np.linalg.norm(tail[:, None] - statistics.means[None], axis=-1), axis=1)
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
        drawn = negatives.trivial(gan, features, None)
        trivial, trivial_labels = np.asarray(drawn.features), np.asarray(drawn.labels)
        assert trivial.shape == features.shape
        # below the 10% likelihood quantile of the real features of the class it is labelled with
        levels = np.array([np.quantile(likelihood[labels == c], 0.1) for c in range(3)])
        low_density = diagonal_gaussian_log_likelihood(trivial, trivial_labels, statistics) < levels[trivial_labels]
        if arm == "gaussian_tail":  # all but the few that the feature floor clips back inward
            assert low_density.mean() >= beyond
        else:
            assert low_density.mean() < beyond


def test_gaussian_tail_negatives_are_clipped_at_the_feature_floor():
    features, labels, _ = shell_statistics()
    features = np.maximum(features - 25, 0)  # like ReLU features: many exact zeros
    statistics = rem.ClassStatistics.fit(features, labels, 3)
    tail = np.asarray(rem.sample_gaussian_tail(labels, statistics, (2.0, 4.0), 0))
    assert tail.min() >= 0.0


def test_batch_bounds_are_eqs_4_and_5():
    features = np.array([[1.0, -2.0], [3.0, 5.0], [-1.0, 0.0]], np.float32)
    low, high = rem.batch_bounds(features)
    np.testing.assert_array_equal(low, [-1.0, -2.0])
    np.testing.assert_array_equal(high, [3.0, 5.0])


@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_shuffled_labels_never_equal_the_true_ones(num_classes):
    labels = np.tile(np.arange(num_classes), 500).astype("int32")
    seed = keras.random.SeedGenerator(3)
    for _ in range(5):
        shuffled = np.asarray(negatives.shuffle_labels(labels, num_classes, seed))
        assert (shuffled != labels).all()
        assert shuffled.min() >= 0 and shuffled.max() < num_classes
    if num_classes > 2:  # every wrong label occurs
        assert len(np.unique(shuffled[labels == 0])) == num_classes - 1


def test_epsilon_is_clipped_gaussian():
    eps = np.asarray(sample_epsilon(20000, 0.5, 0.15, 0.1, 0.8, keras.random.SeedGenerator(0)))
    assert eps.shape == (20000, 1) and eps.min() >= 0.1 and eps.max() <= 0.8
    assert abs(eps.mean() - 0.5) < 0.01


def test_epsilon_without_bounds_is_an_unclipped_gaussian():
    eps = np.asarray(sample_epsilon(20000, 0.1, 0.2, None, None, keras.random.SeedGenerator(0)))
    assert eps.min() < 0 < 0.5 < eps.max()  # both tails present: nothing was clipped
    assert abs(eps.mean() - 0.1) < 0.01 and abs(eps.std() - 0.2) < 0.01


def test_fgsm_lowers_d_on_average():
    keras.utils.set_random_seed(0)
    generator = build_generator(8, 3, 5, (16,), "linear")
    discriminator = build_discriminator(5, 3, (16,))
    z = tf.random.normal((512, 8))
    labels = tf.constant(RNG.integers(0, 3, 512), tf.int32)
    z_adv = fgsm_latent(generator, discriminator, z, labels, 0.1)
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
    assert float(losses.term_loss(REAL, [(1.0, SHUFFLED)])) == pytest.approx(expected, rel=1e-6)


def test_uniform_loss_eq9_with_hard_negatives():
    expected = 0.7 * np.mean(softplus(TRIVIAL)) + np.mean(softplus(-REAL)) + 1.0 * np.mean(softplus(HARD))
    assert float(losses.term_loss(REAL, [(0.7, TRIVIAL), (1.0, HARD)])) == pytest.approx(expected, rel=1e-6)
    without_hard = 0.3 * np.mean(softplus(TRIVIAL)) + np.mean(softplus(-REAL))
    assert float(losses.term_loss(REAL, [(0.3, TRIVIAL)])) == pytest.approx(without_hard, rel=1e-6)


def log_sigmoid(x):
    return -softplus(-x)


def test_printed_eq8_and_eq9_use_plus_log_d_for_the_negatives():
    # Eq. 8: E log D(f, T(c)) - E log D(f, c); Eq. 9: lambda_c E_{P_u} log D - E log D(f, c)
    expected_s = np.mean(log_sigmoid(SHUFFLED)) - np.mean(log_sigmoid(REAL))
    assert float(losses.term_loss(REAL, [(1.0, SHUFFLED)], "log_d")) == pytest.approx(expected_s, abs=1e-5)
    expected_u = 0.7 * np.mean(log_sigmoid(TRIVIAL)) - np.mean(log_sigmoid(REAL))
    assert float(losses.term_loss(REAL, [(0.7, TRIVIAL)], "log_d")) == pytest.approx(expected_u, abs=1e-5)
    separate = 0.7 * np.mean(log_sigmoid(TRIVIAL)) + 0.5 * np.mean(log_sigmoid(HARD)) - np.mean(log_sigmoid(REAL))
    assert float(losses.term_loss(REAL, [(0.7, TRIVIAL), (0.5, HARD)], "log_d")) == pytest.approx(
        separate, abs=1e-5)


def test_paper_literal_pools_trivial_and_hard_pairs_in_one_expectation():
    # Algorithm 1, line 7: trivial and hard pairs are one expectation over P_u, weighted lambda_c
    trivial = negatives.Negatives("trivial", None, None, 0.7, "l_u")
    hard = negatives.Negatives("hard", None, None, 1.0, "l_u")
    shuffled = negatives.Negatives("shuffled", None, None, 1.0, "l_s")
    pooled = negatives.pool_trivial_and_hard([(trivial, TRIVIAL), (shuffled, SHUFFLED), (hard, HARD)], 0.7)
    assert [(n.name, n.weight) for n, _ in pooled] == [("trivial+hard", 0.7), ("shuffled", 1.0)]
    np.testing.assert_array_equal(pooled[0][1], np.concatenate([TRIVIAL, HARD]))
    expected = 0.7 * np.mean(log_sigmoid(np.concatenate([TRIVIAL, HARD]))) - np.mean(log_sigmoid(REAL))
    assert float(losses.term_loss(REAL, [(0.7, pooled[0][1])], "log_d")) == pytest.approx(expected, abs=1e-5)


def test_printed_form_is_unbounded_but_clamped_at_the_guard():
    # the printed negatives reward D -> 0 without limit (the bounded form saturates at 0) ...
    very_negative, more_negative = np.array([-30.0], np.float32), np.array([-60.0], np.float32)
    assert float(losses.negative_loss(more_negative, "log_d")) < float(losses.negative_loss(very_negative, "log_d"))
    assert float(losses.negative_loss(more_negative, "bce")) == pytest.approx(0.0, abs=1e-12)
    # ... until log D reaches the guard, where the loss and its gradient stop
    logits = tf.constant([-1e4, -50.0])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = losses.negative_loss(logits, "log_d")
    assert float(value) == pytest.approx((losses.LOG_D_FLOOR - 50.0) / 2, rel=1e-4)
    np.testing.assert_allclose(tape.gradient(value, logits).numpy(), [0.0, 0.5], atol=1e-6)


def test_losses_stay_finite_for_huge_logits():
    huge = np.array([1e4, -1e4], np.float32)
    for value in (losses.vanilla_loss(huge, huge), losses.term_loss(huge, [(1.0, huge)]),
                  losses.term_loss(huge, [(0.7, huge), (1.0, huge)])):
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
    bank = losses.class_memory_bank(features, labels, 3, size=0)
    brute = [np.abs(features[labels == c] - g).sum(1).min() for g, c in zip(generated, g_labels)]
    assert float(losses.nearest_in_memory_bank_l1(generated, g_labels, bank)) == pytest.approx(np.mean(brute), rel=1e-5)
    # a fixed draw of 16 per class: rows of the class, so its minimum can only be larger
    small = losses.class_memory_bank(features, labels, 3, size=16, seed=1)
    assert small.shape == (3, 16, 5)
    for c in range(3):
        members = {tuple(row) for row in features[labels == c]}
        assert all(tuple(row) in members for row in small[c])
    assert float(losses.nearest_in_memory_bank_l1(generated, g_labels, small)) >= np.mean(brute) - 1e-4


def test_generator_loss_eq12():
    l1 = np.float32(3.0)
    total, adversarial = losses.generator_loss(GENERATED, l1, 0.01)
    expected_adv = np.mean(np.log(1 - 1 / (1 + np.exp(-GENERATED))))
    assert float(adversarial) == pytest.approx(expected_adv, rel=1e-5)
    assert float(total) == pytest.approx(expected_adv + 0.03, rel=1e-5)


# ------------------------------------------------------------------- train_step ----

def tiny_features(n=256, dim=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = rng.normal(0, 3, (classes, dim))
    features = np.abs(centers[labels] + rng.normal(0, 0.3, (n, dim))).astype("float32")
    return features, labels


def eager_gan(config, features, labels):
    """BAL's GAN for tests of one step or a few: the same train_step run eagerly (tracing it costs
    seconds on the CI machine, running it a fraction of one); the training tests run it traced."""
    gan = make_gan(config, 3, features, labels, seed=0)
    gan.run_eagerly = True
    return gan


@pytest.mark.parametrize("overrides", [{}, {"ladder_weight": 0.0, "floor_weight": 0.0, "p2_target": "ratio",
                                        "p2_calibration": "none", "discriminator_input": "raw"},
                                       {"trivial_sampling": "gaussian"}, {"trivial_sampling": "gaussian_tail"},
                                       {"negative_loss": "log_d", "pool_hard_with_trivial": True,
                                        "l1_reference": "memory_bank", "floor_weight": 0.0}])
def test_one_train_step_changes_d_and_g(overrides):
    features, labels = tiny_features()
    config = GANConfig(latent_dim=4, generator_units=[16], discriminator_units=[16], **overrides)
    gan = eager_gan(config, features, labels)
    d_before = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    g_before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    logs = gan.train_on_batch(features[:32], labels[:32].astype("int32"), return_dict=True)
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(d_before, gan.discriminator.trainable_weights))
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(g_before, gan.generator.trainable_weights))
    # a tracker per loss term and per source that is on, none for one that is off
    sources = ["trivial", "shuffled", "hard"] + (["ladder"] if config.ladder_weight > 0 else []) \
        + (["floor"] if config.floor_weight > 0 else [])
    assert set(logs) == {"d_loss", "g_loss", "l_t", "l_s", "l_u", "g_adversarial", "g_l1", "d_real", "d_generated",
                         *(f"d_{name}" for name in sources)}
    assert all(np.isfinite(v) for v in logs.values())


def test_the_table_1_switches_turn_their_sources_and_trackers_off():
    features, labels = tiny_features()
    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8], ladder_weight=1.0,
                       use_shuffle_loss=False, use_uniform_loss=False)
    gan = eager_gan(config, features, labels)
    assert negatives.active_sources(config) == []
    logs = gan.train_on_batch(features[:32], labels[:32].astype("int32"), return_dict=True)
    assert set(logs) == {"d_loss", "g_loss", "l_t", "g_adversarial", "g_l1", "d_real", "d_generated"}
    assert logs["d_loss"] == pytest.approx(logs["l_t"], rel=1e-5)


def test_references_without_their_gaussians_are_a_clear_error():
    from bal_tf.errors import ConfigError
    from bal_tf.gan import BoundaryAwareGAN

    config = GANConfig(latent_dim=4)  # the default: ladder and floor references, blended p2
    with pytest.raises(ConfigError, match="tied Gaussians"):
        BoundaryAwareGAN(build_generator(4, 3, 6, [8]), build_discriminator(6, 3, [8]), 3, config)


def test_loss_switches_drop_terms():
    features, labels = tiny_features()
    config = GANConfig(latent_dim=4, generator_units=[8], discriminator_units=[8],
                       use_vanilla_loss=False, use_shuffle_loss=False, use_uniform_loss=True)
    gan = eager_gan(config, features, labels)
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
    uninterrupted run, selection history included (so the same seed also gives the same epochs 1-2)."""
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
    stop_after_two = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(stopper.model, "stop_training", epoch == 1))
    stopper = stop_after_two
    run(tmp_path / "crashed", [stopper])
    assert sorted(p.name for p in (tmp_path / "crashed").iterdir()) == ["epoch_0001", "epoch_0002"]
    resumed = run(tmp_path / "crashed")
    assert [h["selection_criterion"] for h in resumed.history] == [h["selection_criterion"] for h in reference.history]
    assert resumed.selected_epoch == reference.selected_epoch
    for model in ("discriminator", "last_discriminator"):
        for a, b in zip(getattr(resumed, model).get_weights(), getattr(reference, model).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_steps_per_execution_changes_speed_not_the_run():
    """One compiled call per epoch (the default) trains the same steps in the same order as one
    call per step, or per two steps: the same weights at the end."""
    from bal_tf.features import FeatureSet
    from bal_tf.train_bal import train_bal

    features, labels = tiny_features(n=256)
    train = FeatureSet(features, np.eye(3, dtype=np.float32)[labels] * 5, labels)
    config = GANConfig(epochs=2, batch_size=64, latent_dim=4, generator_units=[8], discriminator_units=[8],
                       selection="last")
    per_epoch, *per_call = [train_bal(dataclasses.replace(config, steps_per_execution=spe), train, verbose=0, seed=3)
                            for spe in (None, 1, 2)]
    for other in per_call:
        for a, b in zip(per_epoch.discriminator.get_weights(), other.discriminator.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="does not divide the epoch's 4 steps"):
        make_gan(dataclasses.replace(config, steps_per_execution=3), 3, features, labels, seed=0)
    with pytest.raises(ConfigError, match="steps_per_execution must be >= 1"):
        GANConfig(steps_per_execution=0)


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
    gan = eager_gan(config, features, labels)
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


@pytest.mark.parametrize("ladder_weight", [1.0, 0.0])
def test_d_trained_with_the_ladder_rejects_each_classs_inflated_copy_and_keeps_its_core(ladder_weight):
    # The ladder's references (each class's Gaussian inflated 1.5-4x) lie where the 3x copy of a
    # class does: with them D rejects it; with the paper's negatives alone (the box, G and wrong
    # labels) it does not, so the test would fail on a D trained without the references.
    features, labels = tiny_features(n=1200)
    statistics = rem.ClassStatistics.fit(features, labels, 3)
    config = GANConfig(latent_dim=4, generator_units=[32], discriminator_units=[64, 64], ladder_weight=ladder_weight,
                       floor_weight=0.0, d_ema_decay=0.0, d_learning_rate=1e-3)
    gan = make_gan(config, 3, features, labels, seed=0)
    gan.fit(feature_batches(features, labels, 128, seed=0, epochs=40), epochs=1, verbose=0)
    d = lambda f, c: keras.ops.sigmoid(gan.discriminator([f, c.astype("int32")])).numpy()  # noqa: E731
    means = statistics.means[labels]
    core = means + 0.5 * (features - means)  # halfway to the class mean
    shell = np.maximum(means + 3.0 * (features - means), 0.0)
    assert np.median(d(core, labels)) > 0.8
    assert (np.median(d(shell, labels)) < 0.2) == (ladder_weight > 0)
    # the class matters: the same core with a wrong label is rejected (L_s)
    assert np.median(d(core, (labels + 1) % 3)) < 0.2


# ------------------------------------------- what a trained D does on a separable toy ----

TOY_DEFAULT = GANConfig(latent_dim=4, generator_units=[32], discriminator_units=[64, 64], d_ema_decay=0.0,
                        d_learning_rate=1e-3, g_learning_rate=1e-3)


def train_toy(config=TOY_DEFAULT):
    features, labels = tiny_features(n=1200)
    gan = make_gan(config, 3, features, labels, seed=0)
    gan.fit(feature_batches(features, labels, 128, seed=0, epochs=40), epochs=1, verbose=0)
    return gan, features, labels


@pytest.fixture(scope="module")
def trained_toy_gan():
    """The default's losses and every negative source of the default (the paper's trivial, shuffled
    and hard pairs; the ladder and floor references) on three separable classes; small
    widths and no EMA, so that D itself is read."""
    return train_toy()


def source_scores_below_real(gan, features, labels) -> dict[str, bool]:
    """For each source the GAN trains against: does D score that source's negatives (a fresh draw)
    below the real pairs, median against the 10% quantile?"""
    real = toy_d(gan, features, labels)
    out = {}
    for name in gan.sources:
        if name == "hard":
            z, g_labels = negatives.generated_latents(gan, len(features))
            drawn = negatives.hard(gan, z, g_labels)
        else:
            drawn = getattr(negatives, name)(gan, features, labels)
        scores = toy_d(gan, drawn.features, drawn.labels)
        out[name] = bool(np.median(scores) < min(0.5, np.quantile(real, 0.1)))
    return out


def test_trained_d_scores_every_source_of_the_default_below_real_features(trained_toy_gan):
    gan, features, labels = trained_toy_gan
    assert gan.sources == ["trivial", "shuffled", "hard", "ladder", "floor"]  # the default's list
    assert source_scores_below_real(*trained_toy_gan) == dict.fromkeys(gan.sources, True)


def test_the_source_test_fails_when_the_negatives_targets_are_flipped(monkeypatch):
    # every negative pair taught as ID (softplus(-l) in place of softplus(l)): no source is then
    # scored below the real pairs, so the test above would fail on a D trained that way
    flipped = lambda logits, form="bce": losses.id_loss(logits)  # noqa: E731
    monkeypatch.setattr(losses, "negative_loss", flipped)
    trained = train_toy()
    assert source_scores_below_real(*trained) == dict.fromkeys(trained[0].sources, False)


def toy_d(gan, f, c):
    return keras.ops.sigmoid(gan.discriminator([np.asarray(f, np.float32), np.asarray(c, np.int32)])).numpy()


def test_trained_d_accepts_real_pairs_and_rejects_wrong_labels(trained_toy_gan):
    gan, features, labels = trained_toy_gan
    shuffled = np.asarray(negatives.shuffle_labels(labels, 3, 0))
    real, wrong = toy_d(gan, features, labels), toy_d(gan, features, shuffled)
    assert np.median(real) > 0.5 and np.median(wrong) < 0.2  # L_s: the label matters
    assert (real > wrong).mean() > 0.95


def test_trained_d_rejects_the_uniform_box(trained_toy_gan):
    gan, features, labels = trained_toy_gan
    box = np.asarray(rem.sample_uniform_box(features, 2000, 0))
    box_labels = RNG.integers(0, 3, 2000)
    assert np.median(toy_d(gan, box, box_labels)) < 0.2 < 0.5 < np.median(toy_d(gan, features, labels))


def test_hard_features_score_below_real_ones_and_lie_farther_from_the_data_than_g(trained_toy_gan):
    gan, features, labels = trained_toy_gan
    z, g_labels_tensor = negatives.generated_latents(gan, 1000)
    generated = gan.generator([z, g_labels_tensor]).numpy()
    hard = np.asarray(negatives.hard(gan, z, g_labels_tensor).features)
    g_labels = np.asarray(g_labels_tensor)

    def distance_to_class(points):  # L1 to the nearest real feature of the conditioning class
        return np.array([np.abs(features[labels == c] - p).sum(1).min() for p, c in zip(points, g_labels)])

    hard_distance, generated_distance = distance_to_class(hard), distance_to_class(generated)
    # each G(z', c) against its own G(z, c): farther from the class's data more often than not
    # (0.62 here; with the FGSM step reversed, 0.39), and farther in the median
    assert (hard_distance > generated_distance).mean() > 0.55
    assert np.median(hard_distance) > np.median(generated_distance)
    assert np.median(toy_d(gan, hard, g_labels)) < np.median(toy_d(gan, generated, g_labels))
    assert np.median(toy_d(gan, hard, g_labels)) < 0.5 < np.median(toy_d(gan, features, labels))


@pytest.mark.parametrize("preset", ["paper_literal", "paper"])
def test_paper_presets_pull_g_to_the_memory_bank_not_the_batch(preset, monkeypatch):
    from bal_tf.config import GAN_PRESETS

    features, labels = tiny_features()
    config = dataclasses.replace(GAN_PRESETS[preset](), latent_dim=4, generator_units=[8], discriminator_units=[8],
                                 memory_bank_size=32)
    gan = eager_gan(config, features, labels)
    assert tuple(gan.memory_bank.shape) == (3, 32, 6)
    for c in range(3):  # the bank holds training features of its class
        assert np.isin(gan.memory_bank.numpy()[c][:, 0], features[labels == c][:, 0]).all()
    calls = []
    monkeypatch.setattr(losses, "nearest_same_class_l1", lambda *a: calls.append("batch") or 0.0)
    bank_l1 = losses.nearest_in_memory_bank_l1
    monkeypatch.setattr(losses, "nearest_in_memory_bank_l1", lambda *a: calls.append("bank") or bank_l1(*a))
    logs = gan.train_on_batch(features[:64], labels[:64].astype("int32"), return_dict=True)
    assert set(calls) == {"bank"} and logs["g_l1"] > 0
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
    from bal_tf.discriminator import whitening_transform

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
