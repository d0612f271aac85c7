#!/usr/bin/env python
"""Where held-out ID, each validation family and the k-NN boundary candidates lie in the class-
conditional k-NN distance that the boundary negatives use (validation data only, no training).

r = the k-th nearest-neighbour distance of f / ||f|| to class c's L2-normalized training features,
in units of the class's ID level (``sampling.BoundaryBank``: 1000 references per class, k =
``gan.boundary_k``, level = the 95th percentile of the class's own k-NN distances); c is the
classifier's predicted class (the conditioning class for the candidates). A family at r > 1 lies
beyond the level where the hard boundary negatives start; graded targets
(``gan.boundary_targets=graded``) tell D to order that region by r.

    python benchmarks/knn_ratio.py --run runs/mnist-4to9-cnn-cpu-seed0 [--scale 0.15 2.0] [--out FILE.json]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tables import provenance

PERCENTILES = (5, 25, 50, 75, 95)


def class_knn_ratio(bank, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """r of each feature against its class's references, in units of the class's level."""
    features = np.asarray(features, np.float64)  # 2 - 2 cos loses digits in float32 near 0
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    ratio = np.empty(len(features))
    for c in np.unique(classes):
        members = classes == c
        squared = np.maximum(2.0 - 2.0 * unit[members] @ bank.reference[c].astype(np.float64).T, 0.0)
        ratio[members] = np.sqrt(np.partition(squared, bank.k - 1, axis=1)[:, bank.k - 1]) / bank.levels[c]
    return ratio


def knn_ratio_report(run_dir: Path, scales=((0.15, 0.6), (0.15, 2.0)), seed: int = 0) -> dict:
    import keras

    from bal_tf import sampling, validation
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir

    run = RunDir(Path(run_dir))
    config = run.load_config()
    features = RunFeatures(config, run, progress=False)
    train = features.split("train")
    classes = train.logits.shape[1]
    bank = sampling.BoundaryBank.fit(train.features, train.labels, classes, config.gan.boundary_k, seed)
    sets = validation.validation_sets(features)
    kinds = {"held_out_id": sets.id, **sets.ood}

    def summary(ratio):
        return {f"p{p}": round(float(np.percentile(ratio, p)), 3) for p in PERCENTILES} | {
            "beyond_level": round(float(np.mean(ratio > 1.0)), 3)}

    report = {**provenance(), "command": " ".join(["python", "benchmarks/knn_ratio.py", *sys.argv[1:]]),
              "run": str(run.root), "boundary_k": bank.k, "ratio": {}}
    for name, feature_set in kinds.items():
        report["ratio"][name] = summary(class_knn_ratio(bank, feature_set.features, feature_set.predictions))
    labels = np.repeat(np.arange(classes), 2000).astype(np.int32)
    for low, high in scales:
        candidates, _, _, ratio = sampling.sample_knn_boundary(labels, bank, (low, high),
                                                               keras.random.SeedGenerator(seed), with_ratio=True)
        report["ratio"][f"candidates_scale_{low}_{high}"] = summary(np.asarray(ratio))
    return report


def markdown(report: dict) -> str:
    lines = [f"r (k-NN distance / class level) on `{report['run']}`, at `{report['commit']}`: percentiles and the "
             "fraction beyond the level (r > 1).", "",
             "| features | " + " | ".join(f"p{p}" for p in PERCENTILES) + " | r > 1 |",
             "|---|" + "---|" * (len(PERCENTILES) + 1)]
    for name, row in report["ratio"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[f'p{p}']:.2f}" for p in PERCENTILES)
                     + f" | {100 * row['beyond_level']:.0f}% |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a run with stage 1 done (validation partition)")
    parser.add_argument("--scale", nargs=2, type=float, action="append", metavar=("LOW", "HIGH"),
                        help="boundary_scale of the candidates (repeatable; default: 0.15 0.6 and 0.15 2.0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the raw report (JSON) here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bal_tf.console import quiet_tensorflow

    quiet_tensorflow()
    report = knn_ratio_report(args.run, [tuple(s) for s in args.scale] if args.scale else ((0.15, 0.6), (0.15, 2.0)),
                              args.seed)
    if args.out:
        from bal_tf.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
