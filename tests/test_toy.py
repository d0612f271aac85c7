"""The paper's 2-D toy (Figures 1b and 5): BAL separates ID from far-away points; MSP does not."""

from bal_tf.toy import far_uniform_points, run_toy, toy_gan_config, MEANS

import numpy as np


def test_far_points_are_more_than_4_sigma_from_both_means():
    points = far_uniform_points(500, seed=0)
    distances = np.linalg.norm(points[:, None] - MEANS[None], axis=-1)
    assert points.shape == (500, 2) and (distances > 4.0).all()


def test_bal_detects_far_points_that_max_softmax_accepts():
    # half the figures' 40 GAN epochs (the suite's time; 0.994 AUROC here, 0.997 at 40)
    result = run_toy(seed=0, gan_config=toy_gan_config(epochs=20))
    assert result.auroc_max_softmax <= 0.8  # max-softmax is confident far from the boundary
    assert result.auroc_bal >= 0.99
