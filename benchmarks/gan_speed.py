#!/usr/bin/env python
"""GAN training speed on cached features (a benchmark, not a test).

Trains BAL's GAN (the default config: D and G steps, FGSM on z, EMA of D) on synthetic
512-d features at batch 128 and reports steps per second after a warm-up.

    python benchmarks/gan_speed.py [--dim 512] [--batch 128] [--steps 400] [--jit]
"""

import argparse
import json
import os
import platform
import time


def gan_speed(dim: int = 512, batch: int = 128, classes: int = 10, steps: int = 400, jit: bool = False) -> dict:
    """GAN training steps per second on random features (after a warm-up)."""
    import numpy as np
    import tensorflow as tf

    from bal_tf.config import GANConfig
    from bal_tf.gan import feature_batches, make_gan

    rng = np.random.default_rng(0)
    n = batch * steps
    features = np.maximum(rng.normal(size=(n, dim)), 0).astype(np.float32)
    labels = rng.integers(0, classes, n)
    gan = make_gan(GANConfig(), classes, features, labels, seed=0)
    gan.jit_compile = jit
    data = feature_batches(features, labels, batch, seed=0).cache()
    gan.fit(data.take(50), epochs=1, steps_per_epoch=50, verbose=0, shuffle=False)  # warm-up: tracing
    start = time.perf_counter()
    gan.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    result = {"steps_per_second": round(steps / seconds, 1), "feature_dim": dim,
              "batch_size": batch, "steps": steps, "jit_compile": jit,
              "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "tensorflow": tf.__version__}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    args = parser.parse_args(argv)
    print(json.dumps(gan_speed(args.dim, args.batch, args.classes, args.steps, args.jit)))


if __name__ == "__main__":
    main()
