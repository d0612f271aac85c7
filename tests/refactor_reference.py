"""D's scores after a tiny fixed-seed stage 2, for each GAN preset: the record that a refactor
changes no number (``tests/fixtures/refactor_d_scores.json``, checked by
``tests/test_refactor_reference.py``).

Features are synthetic (three ReLU'd Gaussian classes in 16 dimensions), so no classifier is
trained; the GAN runs ``STEPS`` steps of ``train_step`` (Algorithm 1) through ``fit``, as stage 2
does, and D and its weight average are read on fixed probe points: the training features, their
wrong-label pairs, and points of the uniform box.

Write the fixture (names the commit it was measured at):
    python -m tests.refactor_reference --write tests/fixtures/refactor_d_scores.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

PRESETS = ("default", "paper", "paper_literal")
CLASSES, DIM, PER_CLASS = 3, 16, 128
STEPS = 12
# Small widths and short schedules: the record is about the arithmetic of train_step, not quality.
SMALL = dict(epochs=3, batch_size=64, latent_dim=8, generator_units=[32], discriminator_units=[32, 32],
             memory_bank_size=64)


def synthetic_features(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 2.0, (CLASSES, DIM))
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    features = np.maximum(centers[labels] + rng.normal(size=(len(labels), DIM)), 0.0)
    return features.astype(np.float32), labels.astype(np.int32)


def probe_points(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    box = rng.uniform(features.min(0), features.max(0), (64, DIM)).astype(np.float32)
    wrong = (labels[:64] + 1) % CLASSES
    return (np.concatenate([features[::3], features[:64], box]),
            np.concatenate([labels[::3], wrong, rng.integers(0, CLASSES, 64)]).astype(np.int32))


def d_scores(preset: str) -> dict[str, list[float]]:
    """D's and the scored D's logits on the probe points after the tiny stage 2 of ``preset``."""
    from bal_tf.config import GAN_PRESETS
    from bal_tf.gan import feature_batches, make_gan

    features, labels = synthetic_features()
    config = dataclasses.replace(GAN_PRESETS[preset](), **SMALL)
    gan = make_gan(config, CLASSES, features, labels, seed=0)
    steps_per_epoch = len(features) // config.batch_size
    gan.fit(feature_batches(features, labels, config.batch_size, seed=0, epochs=config.epochs),
            epochs=1, steps_per_epoch=min(STEPS, steps_per_epoch * config.epochs), verbose=0)
    probe, probe_labels = probe_points(features, labels)
    read = lambda model: np.asarray(model([probe, probe_labels]), np.float64).round(7).tolist()  # noqa: E731
    return {"discriminator": read(gan.discriminator), "scoring_discriminator": read(gan.scoring_discriminator)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", type=Path, help="write the fixture JSON here (else print the scores)")
    parser.add_argument("--preset", action="append", choices=PRESETS, help="only these presets (repeatable)")
    args = parser.parse_args(argv)
    from bal_tf.console import quiet_tensorflow

    quiet_tensorflow()
    scores = {name: d_scores(name) for name in args.preset or PRESETS}
    if not args.write:
        json.dump(scores, sys.stdout)
        return 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "bal_tf"], capture_output=True, text=True,
                           cwd=Path(__file__).parent).stdout.strip()
    record = {"measured_at_commit": commit + ("+dirty" if dirty else ""), "steps": STEPS, "scores": scores}
    args.write.parent.mkdir(parents=True, exist_ok=True)
    args.write.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.write} (commit {record['measured_at_commit']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
