#!/usr/bin/env python
"""Where each validation family falls in the whitened space D sees, beside D's own negatives
(validation data only; no GAN is trained).

For a run's cached features: the class-tied whitening of ``gan.whitening_transform`` (what
``discriminator_input=whitened`` puts in front of D), and each feature's distance to the mean of
its class (predicted class for held-out ID and every validation family, the sampled label for
negatives) in units of that class's median distance over its training features. Rows: held-out
ID, every validation family of ``bal_tf.validation`` and, as the run's GAN config draws them
(``--set gan.field=value`` to change it), the trivial samples of the batch-wise box (Eqs. 4-5,
random labels), the shell negatives (``gan.shell_sampling``) and the k-NN boundary negatives
(``gan.boundary_weight``; the candidates kept as OOD). The AUROC column is that
distance alone as a detector (held-out ID vs the family): how separable the family is by how
far out it lies, the thing D's negatives teach it.

    python benchmarks/family_radii.py --run runs/fashion_mnist-4to9-cpu-seed0 [--set gan.shell_radius=[1.5,4.0]] \\
        [--out FILE.json] [--markdown FILE.md]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from tables import add_report_arguments, emit_report, provenance

QUANTILES = (("p10", 10), ("median", 50), ("p90", 90))


def whitened_class_distance(train_features, train_labels, classes: int):
    """``relative(f, c)``: the distance of each f to class c's mean after the class-tied whitening
    D sees (``gan.whitening_transform``), in units of class c's median over its training features."""
    from bal_tf.gan import whitening_transform

    matrix, offset = whitening_transform(train_features, train_labels, classes)
    white = np.asarray(train_features, np.float64) @ matrix + offset
    centroids = np.stack([white[train_labels == c].mean(0) for c in range(classes)])
    radius = np.array([np.median(np.linalg.norm(white[train_labels == c] - centroids[c], axis=1))
                       for c in range(classes)])

    def relative(f, c):
        return np.linalg.norm(np.asarray(f, np.float64) @ matrix + offset - centroids[c], axis=1) / radius[c]

    return relative


def family_radii(run_dir: Path, overrides=(), samples: int = 4096, seed: int = 0) -> dict:
    from bal_tf import metrics, sampling, validation
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir
    from bal_tf.selection import uniform_box_samples

    run = RunDir(Path(run_dir))
    config = run.load_config().with_overrides(list(overrides))
    features = RunFeatures(config, run, progress=False)
    train = features.split("train")
    sets = validation.validation_sets(features, seed=config.seed)
    classes = train.logits.shape[1]
    relative = whitened_class_distance(train.features, train.labels, classes)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))[:samples]
    kinds = {"held_out_id": (sets.id.features, sets.id.predictions)}
    kinds.update({name: (s.features, s.predictions) for name, s in sets.ood.items()})
    box = uniform_box_samples(train.features[order], config.gan.batch_size, rng, config.gan.box_margin)
    kinds["negatives: trivial box"] = (box, rng.integers(0, classes, len(box)))
    if config.gan.shell_sampling != "none":
        labels = train.labels[order].astype(np.int32)
        statistics = sampling.ClassStatistics.fit(train.features, train.labels, classes)
        shells = sampling.sample_class_shell(labels, statistics, config.gan.shell_radius, seed,
                                             features=train.features[order], mode=config.gan.shell_sampling)
        kinds[f"negatives: {config.gan.shell_sampling} shells {list(config.gan.shell_radius)}"] = (
            np.asarray(shells), labels)

    if config.gan.boundary_weight > 0:  # the candidates D is told are OOD (mask 1: beyond the class's k-NN level)
        labels = train.labels[order].astype(np.int32)
        bank = sampling.BoundaryBank.fit(train.features, train.labels, classes, config.gan.boundary_k, seed)
        candidates, _, mask = (np.asarray(t) for t in sampling.sample_knn_boundary(
            labels, bank, config.gan.boundary_scale, seed))
        kept = mask > 0
        kinds[f"negatives: k-NN boundary {list(config.gan.boundary_scale)} (kept)"] = (candidates[kept], labels[kept])

    id_distance = relative(*kinds["held_out_id"])
    report = {**provenance(), "command": " ".join(["python", "benchmarks/family_radii.py", *sys.argv[1:]]),
              "run": str(run.root), "overrides": list(overrides), "kinds": {}}
    for kind, (f, c) in kinds.items():
        if len(f) == 0:  # e.g. no k-NN boundary candidate left its class
            report["kinds"][kind] = {"count": 0}
            continue
        distance = relative(f, c)
        row = {"count": int(len(f)),
               "distance_over_radius": {q: round(float(np.percentile(distance, p)), 3) for q, p in QUANTILES}}
        if kind != "held_out_id":
            row["auroc_of_distance"] = round(metrics.auroc(-id_distance, -distance), 4)
        report["kinds"][kind] = row
    return report


def markdown(report: dict) -> str:
    lines = [f"Run `{report['run']}` (commit {report['commit']}); distance to the (predicted) class's mean "
             "after class-tied whitening, in units of the class's median training distance.", "",
             "| features | count | p10 | median | p90 | AUROC of the distance vs held-out ID (%) |",
             "|---|---|---|---|---|---|"]
    for kind, row in report["kinds"].items():
        if not row["count"]:
            lines.append(f"| {kind} | 0 | - | - | - | |")
            continue
        q = row["distance_over_radius"]
        auroc = f"{100 * row['auroc_of_distance']:.2f}" if "auroc_of_distance" in row else ""
        lines.append(f"| {kind} | {row['count']} | {q['p10']:.2f} | {q['median']:.2f} | {q['p90']:.2f} | {auroc} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a run with stage 1 done (its features are cached)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override for the negatives drawn, e.g. gan.shell_radius=[1.5,4.0] (repeatable)")
    parser.add_argument("--samples", type=int, default=4096, help="negatives drawn of each kind")
    add_report_arguments(parser, render=False)
    args = parser.parse_args(argv)
    from bal_tf.console import quiet_tensorflow

    quiet_tensorflow()
    report = family_radii(args.run, args.overrides, args.samples)
    emit_report(report, markdown(report), args.out, args.markdown)


if __name__ == "__main__":
    main()
