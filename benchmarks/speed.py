#!/usr/bin/env python
"""Speed figures in one go (a benchmark, not a test): GAN steps/s, feature extraction images/s
and the exported graph's latency ratio, for one finished and exported run.

    python benchmarks/speed.py --run runs/mnist-cpu-seed0

Run it on an otherwise idle machine: every figure is a wall-clock time.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

from export_latency import export_latency
from gan_speed import gan_speed


def feature_extraction_speed(run_dir: Path, images: int = 10000) -> dict:
    from bal_tf.backbones import feature_model
    from bal_tf.classifier import load_classifier
    from bal_tf.data import load_id_split
    from bal_tf.features import extract_features
    from bal_tf.run_dir import RunDir

    run = RunDir(run_dir)
    config = run.load_config()
    features_of = feature_model(load_classifier(run.classifier_path))
    from bal_tf.data import to_numpy
    import tensorflow as tf

    # In memory first, so that only the forward passes are timed below.
    dataset = tf.data.Dataset.from_tensor_slices(to_numpy(load_id_split(config.data, "test", limit=images)))
    extract_features(features_of, dataset.take(512))  # warm-up: tracing
    start = time.perf_counter()
    count = len(extract_features(features_of, dataset))
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": round(seconds, 2), "images_per_second": round(count / seconds, 1),
            "batch_size": 512}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a finished run, exported")
    args = parser.parse_args(argv)
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "run": str(args.run),
               "feature_extraction": feature_extraction_speed(args.run), "gan": gan_speed(),
               "export_latency": export_latency(args.run)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
