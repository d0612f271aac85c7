#!/usr/bin/env python
"""Why GCPL scores what it scores on a protocol run: where ID and OOD features lie relative to its
prototypes (a diagnostic of the trained baseline; it chooses nothing).

GCPL's OOD score (``bal_tf.trained_baselines.gcpl_scores``, Yang et al. 2018) is minus the squared
distance of h(x) to the nearest of its learned prototypes. That ranks ID above OOD only if the
features collapse onto their prototypes more than OOD features land near one. The report gives,
for the run's ID test split and one OOD set: GCPL's classification accuracy, the prototypes' norms,
the features' norms and nearest-prototype squared distances (p10 / median / p90), and the AUROC
(ID positive) of three scores from the same features: GCPL's (-min squared distance; it equals
evaluate.py's ``gcpl`` row), the max softmax of GCPL's distance logits -gamma ||h(x) - m_k||^2,
and the feature norm alone.

    python benchmarks/gcpl_geometry.py --run RUN --ood mnist [--out FILE.json] [--markdown FILE.md]
    python benchmarks/gcpl_geometry.py --render FILE.json [FILE.json ...]   # the tables, from raw reports

RUN is a protocol run evaluated with ``--trained-baselines`` (GCPL's weights in RUN/baselines/).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from tables import add_report_arguments, emit_report, provenance, render_reports

QUANTILES = (("p10", 10), ("median", 50), ("p90", 90))


def quantiles(values) -> dict:
    return {name: round(float(np.percentile(values, q)), 4) for name, q in QUANTILES}


def prototype_geometry(id_features, ood_features, prototypes, gamma: float, id_labels=None) -> dict:
    """The report's numbers from GCPL's features and prototypes (numpy arrays [N, D], [K, D])."""
    from scipy.special import softmax

    from bal_tf import metrics

    id_features, ood_features, prototypes = (np.asarray(a, np.float64) for a in (id_features, ood_features, prototypes))

    def squared_distances(features):
        return ((features[:, None, :] - prototypes[None]) ** 2).sum(-1)

    id_distances, ood_distances = squared_distances(id_features), squared_distances(ood_features)
    id_norm, ood_norm = np.linalg.norm(id_features, axis=1), np.linalg.norm(ood_features, axis=1)
    report = {
        "prototype_norm": quantiles(np.linalg.norm(prototypes, axis=1)),
        "feature_norm": {"id": quantiles(id_norm), "ood": quantiles(ood_norm)},
        "nearest_prototype_squared_distance": {"id": quantiles(id_distances.min(1)),
                                               "ood": quantiles(ood_distances.min(1))},
        "auroc": {
            "gcpl_minus_nearest_squared_distance": metrics.auroc(-id_distances.min(1), -ood_distances.min(1)),
            "max_softmax_of_distance_logits": metrics.auroc(softmax(-gamma * id_distances, axis=1).max(1),
                                                            softmax(-gamma * ood_distances, axis=1).max(1)),
            "feature_norm": metrics.auroc(id_norm, ood_norm),
        },
    }
    if id_labels is not None:
        report["accuracy"] = float(np.mean(id_distances.argmin(1) == np.asarray(id_labels)))
    return report


def gcpl_geometry(run_dir: Path, ood: str) -> dict:
    import tensorflow as tf

    from bal_tf.classifier import load_id_data
    from bal_tf.data.datasets import load_ood_set
    from bal_tf.errors import InputError
    from bal_tf.run_dir import RunDir
    from bal_tf.trained_baselines import build_gcpl

    run = RunDir(Path(run_dir))
    weights = run.root / "baselines" / "gcpl.weights.h5"
    if not weights.is_file():
        raise InputError(f"{run.root} has no trained GCPL (expected {weights}: evaluate the run with "
                         "--trained-baselines first).")
    config = run.load_config()
    id_data = load_id_data(config)
    model = build_gcpl(config, id_data.image_shape, id_data.num_classes)
    model.load_weights(weights)

    def features(images: tf.data.Dataset) -> np.ndarray:
        return np.concatenate([model.features_model(tf.cast(batch, tf.float32), training=False).numpy()
                               for batch in images.batch(512)])

    images, labels = id_data.arrays("test")
    id_features = features(tf.data.Dataset.from_tensor_slices(images))
    ood_features = features(load_ood_set(ood, config.data).map(lambda image, *_: image))
    report = prototype_geometry(id_features, ood_features, model.prototypes.numpy(),
                                config.baselines.gcpl_gamma, labels)
    return {**provenance(), "command": " ".join(["python", "benchmarks/gcpl_geometry.py", *sys.argv[1:]]),
            "run": str(run.root), "id": config.data.id_dataset, "ood": ood,
            "gamma": config.baselines.gcpl_gamma, "prototype_weight": config.baselines.gcpl_prototype_weight,
            **report}


def markdown(report: dict) -> str:
    def row(name, values):
        return f"| {name} | {values['p10']:.2f} | {values['median']:.2f} | {values['p90']:.2f} |"

    auroc = report["auroc"]
    accuracy = f", GCPL accuracy {100 * report['accuracy']:.2f}%" if "accuracy" in report else ""
    return "\n".join([
        f"Run `{report['run']}` (commit {report['commit']}, {report.get('machine', 'machine unknown')}): ID {report['id']} test vs {report['ood']}{accuracy}; "
        f"gamma {report['gamma']}, prototype-loss weight {report['prototype_weight']}.", "",
        "| quantity | p10 | median | p90 |", "|---|---|---|---|",
        row("prototype norm", report["prototype_norm"]),
        row("feature norm, ID", report["feature_norm"]["id"]),
        row("feature norm, OOD", report["feature_norm"]["ood"]),
        row("nearest-prototype squared distance, ID", report["nearest_prototype_squared_distance"]["id"]),
        row("nearest-prototype squared distance, OOD", report["nearest_prototype_squared_distance"]["ood"]), "",
        "| score (same features) | AUROC % (ID positive) |", "|---|---|",
        f"| GCPL: minus nearest-prototype squared distance | {100 * auroc['gcpl_minus_nearest_squared_distance']:.2f} |",
        f"| max softmax of GCPL's distance logits | {100 * auroc['max_softmax_of_distance_logits']:.2f} |",
        f"| feature norm | {100 * auroc['feature_norm']:.2f} |",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a protocol run evaluated with --trained-baselines")
    parser.add_argument("--ood", help="the OOD set, e.g. mnist (what evaluate.py --ood takes)")
    add_report_arguments(parser)
    args = parser.parse_args(argv)
    if args.render:
        print(render_reports(args.render, markdown))
        return
    if not (args.run and args.ood):
        parser.error("give --run and --ood (or --render FILE.json)")
    from bal_tf.console import quiet_tensorflow

    quiet_tensorflow()
    report = gcpl_geometry(args.run, args.ood)
    emit_report(report, markdown(report), args.out, args.markdown)


if __name__ == "__main__":
    main()
