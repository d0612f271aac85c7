#!/usr/bin/env python
"""Latency of the exported graph (backbone + head + D + score) vs the backbone alone.

    python benchmarks/export_latency.py --run runs/mnist-cpu-seed0 [--rounds 30 --calls 10]

Needs `python export/export_model.py --run RUN` first (or `--xla all --out DIR` for the
XLA-compiled graph, then `--saved-model DIR/saved_model` here). Goal: BAL adds at most 5% to the
backbone's latency. Two measurements per batch size (1 and 256):

* ``ratio``: exported graph / backbone (the classifier as a tf.function). The two are timed in
  alternating rounds, so that drifts in machine load hit both; the median of the per-round
  ratios is reported with its interquartile range.
* ``bal_part_ratio``: the part BAL adds (D on the features, the argmax and the score) timed on
  its own, divided by the backbone's time. It is far less noisy than a difference of two large
  timings.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path


def time_ms(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return 1000 * (time.perf_counter() - start) / calls


def interleaved(fns: dict, rounds: int, calls: int) -> dict:
    """Per-round mean ms of each function, the functions taking turns within every round."""
    for fn in fns.values():  # warm-up (tracing, allocation)
        time_ms(fn, 3)
    out = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            out[name].append(time_ms(fn, calls))
    return out


def export_latency(run: Path, rounds: int = 30, calls: int = 10, saved_model: Path | None = None) -> dict:
    """Latency figures of ``saved_model`` (default: ``RUN/export/saved_model``) vs the backbone."""
    import numpy as np
    import tensorflow as tf

    from bal_tf.classifier import load_classifier
    from bal_tf.detector import BALDetector, PredictedClass, ProductScore

    saved_model = saved_model or run / "export" / "saved_model"
    served = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    classifier = load_classifier(run / "classifier.keras")
    detector = BALDetector.load(run / "detector.keras")
    discriminator = detector.model.get_layer("discriminator")
    shape = tuple(classifier.input_shape[1:])
    backbone = tf.function(lambda x: classifier(tf.cast(x, tf.float32), training=False))
    features_of = detector.model.get_layer("feature_model")
    predicted_class, product = PredictedClass(), ProductScore()

    @tf.function
    def bal_part(features, logits):
        predicted, log_p1 = predicted_class(logits)
        return product(log_p1, discriminator([features, predicted], training=False))

    results = {"machine": f"{platform.machine()} {platform.processor()}".strip(), "cpus": os.cpu_count(),
               "run": str(run), "saved_model": str(saved_model), "tensorflow": tf.__version__}
    for batch in (1, 256):
        images = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, *shape), dtype=np.uint8))
        features, logits = features_of(tf.cast(images, tf.float32), training=False)
        batch_calls = calls if batch == 1 else max(1, calls // 5)
        ms = interleaved({"exported": lambda: served(images=images), "backbone": lambda: backbone(images),
                          "bal_part": lambda: bal_part(features, logits)}, rounds, batch_calls)
        ratios = np.array(ms["exported"]) / np.array(ms["backbone"])
        results[f"batch{batch}"] = {
            "exported_ms": round(float(np.median(ms["exported"])), 3),
            "backbone_ms": round(float(np.median(ms["backbone"])), 3),
            "ratio": round(float(np.median(ratios)), 3),
            "ratio_iqr": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])],
            "bal_part_ms": round(float(np.median(ms["bal_part"])), 4),
            "bal_part_ratio": round(float(np.median(ms["bal_part"]) / np.median(ms["backbone"])), 4),
        }
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--saved-model", type=Path, help="another export of the run (default: RUN/export/saved_model)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=10, help="calls per round at batch 1 (batch 256: a fifth)")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    import subprocess

    results = export_latency(args.run, args.rounds, args.calls, args.saved_model)
    results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                       capture_output=True, text=True).stdout.strip()
    results["command"] = "python benchmarks/export_latency.py " + " ".join(argv or __import__("sys").argv[1:])
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
