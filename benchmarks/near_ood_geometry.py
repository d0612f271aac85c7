#!/usr/bin/env python
"""Where near-OOD features fall, and what D says there (validation data only).

On a run trained on the validation partition (e.g. ``--preset mnist-4to9-cpu``): trains BAL's
GAN once (the run's config, one seed), then for each kind of feature reports its distance to
the centroid of its (predicted or conditioning) class in units of that class's radius (the
median distance of the class's training features to their centroid), and D's mean output:

* held-out ID features (predicted class), the validation near-OOD set
  (``held_out_classes_validation``: classes the classifier never saw, from the training split's
  held-out part; predicted class);
* BAL's own negatives: trivial samples of the batch box (Eqs. 4-5, random class), G(z, c) and
  the hard samples G(z', c) after the FGSM step (Eqs. 6-7); with ``gan.shell_sampling`` on, the
  shell negatives of each class too.

Also the AUROC, held-out ID vs near-OOD, of D alone, of p1 * p2, of max-softmax and of the
distance itself. No test data is read.

    python benchmarks/near_ood_geometry.py --run runs/mnist-4to9-cpu-seed0 [--seed 0] [--out FILE.json] \
        [--set gan.shell_sampling=radial]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tables import provenance


def near_ood_geometry(run_dir: Path, seed: int = 0, samples: int = 4096, overrides=()) -> dict:
    from bal_tf import baselines, metrics, scoring
    from bal_tf.data import HELD_OUT_CLASSES_VALIDATION, load_ood_set
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir
    from bal_tf.selection import uniform_box_samples
    from bal_tf.train_bal import train_bal

    run = RunDir(Path(run_dir))
    config = run.load_config().with_overrides(list(overrides))
    features = RunFeatures(config, run, progress=False)
    train, held_out = features.split("train"), features.split("holdout")
    near = features.ood(HELD_OUT_CLASSES_VALIDATION, lambda: load_ood_set(HELD_OUT_CLASSES_VALIDATION, config.data))
    result = train_bal(config.gan, train, selection_data=features.selection_data(), seed=seed, verbose=0)
    gan, discriminator = result.gan, result.discriminator

    classes = train.logits.shape[1]
    centroids = np.stack([train.features[train.labels == c].mean(0) for c in range(classes)])
    radius = np.array([np.median(np.linalg.norm(train.features[train.labels == c] - centroids[c], axis=1))
                       for c in range(classes)])

    def relative_distance(f, c):
        return np.linalg.norm(f - centroids[c], axis=1) / radius[c]

    rng = np.random.default_rng(seed)
    z, z_hard, g_labels = (np.asarray(t) for t in gan.sample_hard(samples))
    generated = np.asarray(gan.generator([z, g_labels], training=False))
    hard = np.asarray(gan.generator([z_hard, g_labels], training=False))
    order = rng.permutation(len(train))[:samples]
    trivial = uniform_box_samples(train.features[order], config.gan.batch_size, rng, config.gan.box_margin)
    trivial_labels = rng.integers(0, classes, len(trivial))
    kinds = {
        "held_out_id": (held_out.features, held_out.predictions),
        "near_ood_validation": (near.features, near.predictions),
        "trivial_box": (trivial, trivial_labels),
        "generated": (generated, g_labels),
        "hard": (hard, g_labels),
    }
    if config.gan.shell_sampling != "none":
        shell_labels = train.labels[order].astype(np.int32)
        kinds["shell"] = (np.asarray(gan.sample_shell(train.features[order], shell_labels)), shell_labels)
    report = {**provenance(), "command": " ".join(["python", "benchmarks/near_ood_geometry.py", *sys.argv[1:]]),
              "run": str(run.root), "seed": seed, "overrides": list(overrides), "selected_epoch": result.selected_epoch, "kinds": {}}
    for kind, (f, c) in kinds.items():
        distance = relative_distance(f, c)
        d_out = 1 / (1 + np.exp(-scoring.discriminator_logits(discriminator, f, c)))
        report["kinds"][kind] = {
            "count": int(len(f)),
            "distance_over_radius": {q: round(float(np.percentile(distance, p)), 3)
                                     for q, p in (("p10", 10), ("median", 50), ("p90", 90))},
            "d_mean": round(float(d_out.mean()), 4),
        }
    id_bal = scoring.score_features(discriminator, held_out.features, held_out.logits)
    ood_bal = scoring.score_features(discriminator, near.features, near.logits)
    report["auroc_held_out_id_vs_near_ood"] = {
        "bal_p1_p2": round(metrics.auroc(id_bal["log_score"], ood_bal["log_score"]), 4),
        "d_alone": round(metrics.auroc(id_bal["d_logit"], ood_bal["d_logit"]), 4),
        "max_softmax": round(metrics.auroc(baselines.log_max_softmax(held_out.logits),
                                           baselines.log_max_softmax(near.logits)), 4),
        "minus_distance_over_radius": round(metrics.auroc(
            -relative_distance(held_out.features, held_out.predictions),
            -relative_distance(near.features, near.predictions)), 4),
    }
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a run trained on some classes (stage 1 done)")
    parser.add_argument("--seed", type=int, default=0, help="GAN seed")
    parser.add_argument("--out", type=Path, help="also write the report to this JSON file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="gan.field=value (repeatable)")
    args = parser.parse_args(argv)
    from bal_tf.console import quiet_tensorflow

    quiet_tensorflow()
    text = json.dumps(near_ood_geometry(args.run, args.seed, overrides=args.overrides), indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
