#!/usr/bin/env python
"""Latency of the exported graph (backbone + head + D + score) vs the backbone alone.

    python benchmarks/export_latency.py --run runs/mnist-cpu-seed0 [--repeats 50]

Needs `python export/export_model.py --run RUN` first. Reports median milliseconds per call at
batch 1 and batch 256 and the ratio exported / backbone (goal: <= 1.05).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def median_ms(fn, repeats):
    fn()  # warm-up (tracing)
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return sorted(times)[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from bal_tf.classifier import load_classifier

    served = tf.saved_model.load(str(args.run / "export" / "saved_model")).signatures["serving_default"]
    classifier = load_classifier(args.run / "classifier.keras")
    shape = tuple(classifier.input_shape[1:])
    backbone = tf.function(lambda x: classifier(tf.cast(x, tf.float32), training=False))
    results = {"machine": platform.processor() or platform.machine(), "run": str(args.run)}
    for batch in (1, 256):
        images = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, *shape), dtype=np.uint8))
        exported_ms = median_ms(lambda: served(images=images), args.repeats)
        backbone_ms = median_ms(lambda: backbone(images), args.repeats)
        results[f"batch{batch}"] = {"exported_ms": round(exported_ms, 3), "backbone_ms": round(backbone_ms, 3),
                                    "ratio": round(exported_ms / backbone_ms, 3)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
