#!/usr/bin/env python
"""Diagnostics of finished protocol runs: why a detector scores what it scores (they explain
reported numbers and choose nothing; test OOD data is read here only to explain).

    python benchmarks/diagnose.py bal --run RUN [--run RUN ...] --ood NAME [--out FILE.json]
    python benchmarks/diagnose.py gcpl --run RUN --ood NAME [--out FILE.json]
    python benchmarks/diagnose.py {bal,gcpl} --render FILE.json [FILE.json ...]

``bal``: where the test OOD features lie in the space D sees, and what D outputs there.
``gcpl``: where ID and OOD features lie relative to GCPL's prototypes.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tables import add_report_arguments, emit_report, mean_std, provenance, render_reports

BAL_DOC = """"""

GCPL_DOC = """"""

def whitened_class_distance(train_features, train_labels, classes: int):
    """``relative(f, c)``: the distance of each f to class c's mean after the class-tied whitening
    D sees (``discriminator.whitening_transform``), in units of class c's median over its training
    features."""
    from bal_tf.discriminator import whitening_transform

    matrix, offset = whitening_transform(train_features, train_labels, classes)
    white = np.asarray(train_features, np.float64) @ matrix + offset
    centroids = np.stack([white[train_labels == c].mean(0) for c in range(classes)])
    radius = np.array([np.median(np.linalg.norm(white[train_labels == c] - centroids[c], axis=1))
                       for c in range(classes)])

    def relative(f, c):
        return np.linalg.norm(np.asarray(f, np.float64) @ matrix + offset - centroids[c], axis=1) / radius[c]

    return relative


QUANTILES = (("p10", 10), ("median", 50), ("p90", 90))
SCORES = (("distance", "distance alone"), ("bal_p2_only", "D alone (p2)"), ("max_softmax", "max-softmax (p1)"),
          ("bal", "BAL p1 * p2"))
ID_LIKE = 1.5  # ID test features: p90 of the distance is about 1.3 on the protocol runs


def quantiles(values) -> dict:
    return {name: round(float(np.percentile(values, q)), 4) for name, q in QUANTILES}


def distance_bands(shell_radius) -> list[tuple[float, float]]:
    """[0, 1.5), [1.5, inner), [inner, outer), [outer, inf): ID-like, between the ID and the
    references (a run's ladder scales; its radial shells' radii before issue 37), among them,
    beyond them."""
    inner, outer = (float(r) for r in shell_radius)
    edges = sorted({0.0, min(ID_LIKE, inner), inner, outer}) + [float("inf")]
    return list(zip(edges[:-1], edges[1:]))


def run_geometry(id_distance, ood_distance, id_scores: dict, ood_scores: dict, shell_radius) -> dict:
    """One run's report from the distances and evaluate.py's scores (numpy arrays; scores keyed as
    in scores.npz without the set prefix: ``bal``, ``bal_p2_only``, ``max_softmax``)."""
    from bal_tf import metrics

    id_distance, ood_distance = np.asarray(id_distance, np.float64), np.asarray(ood_distance, np.float64)
    auroc = {"distance": metrics.auroc(-id_distance, -ood_distance)}
    auroc.update({name: metrics.auroc(id_scores[name], ood_scores[name]) for name, _ in SCORES[1:]})
    p2 = {"id": 1.0 / (1.0 + np.exp(-np.asarray(id_scores["bal_p2_only"], np.float64))),  # scores hold D's logit
          "ood": 1.0 / (1.0 + np.exp(-np.asarray(ood_scores["bal_p2_only"], np.float64)))}
    bands = []
    for low, high in distance_bands(shell_radius):
        in_id, in_ood = (id_distance >= low) & (id_distance < high), (ood_distance >= low) & (ood_distance < high)
        bands.append({"from": low, "to": None if high == float("inf") else high,  # JSON has no inf
                      "ood_share": float(in_ood.mean()), "id_share": float(in_id.mean()),
                      "ood_mean_p2": float(p2["ood"][in_ood].mean()) if in_ood.any() else None,
                      "id_mean_p2": float(p2["id"][in_id].mean()) if in_id.any() else None})
    return {"distance_over_radius": {"id": quantiles(id_distance), "ood": quantiles(ood_distance)},
            "auroc": {k: round(float(v), 6) for k, v in auroc.items()}, "bands": bands}


def load_run(run_dir: Path, ood: str) -> dict:
    from bal_tf.errors import InputError
    from bal_tf.features import FeatureSet, ood_cache_name

    features, scores_path = run_dir / "features", run_dir / "eval" / "scores.npz"
    paths = [features / "train.npz", features / "test.npz", features / f"{ood_cache_name(ood)}.npz", scores_path,
             run_dir / "config.json"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{run_dir} lacks {', '.join(missing)}: expected a run evaluated by evaluate.py "
                         f"with OOD set {ood!r} (its features cached, its scores written).")
    # the penultimate block of the cached features (the cache holds every depth)
    train, test, ood_set = ({"features": fs.features, "logits": fs.logits, "labels": fs.labels}
                            for fs in (FeatureSet.load(p).at("penultimate") for p in paths[:3]))
    scores = np.load(scores_path, allow_pickle=False)
    keys = {f"{prefix}/{name}" for prefix in ("id", ood) for name, _ in SCORES[1:]}
    if not keys <= set(scores.files):
        raise InputError(f"{scores_path} lacks {sorted(keys - set(scores.files))}: expected evaluate.py's "
                         f"scores for OOD set {ood!r}.")
    classes = train["logits"].shape[1]
    relative = whitened_class_distance(train["features"], train["labels"], classes)
    config = json.loads((run_dir / "config.json").read_text())
    gan = config["gan"]
    # the bands' edges: where the run placed its references (ladder scales s: s class radii), or,
    # a run of before issue 37, its radial shells
    shell_radius = ([min(gan["ladder_scales"]), max(gan["ladder_scales"])] if gan.get("ladder_weight", 0.0) > 0
                    else gan.get("shell_radius", [2.0, 4.0]))
    report = run_geometry(relative(test["features"], test["logits"].argmax(1)),
                          relative(ood_set["features"], ood_set["logits"].argmax(1)),
                          {name: scores[f"id/{name}"] for name, _ in SCORES[1:]},
                          {name: scores[f"{ood}/{name}"] for name, _ in SCORES[1:]}, shell_radius)
    return {"run": str(run_dir), "seed": config.get("seed"), "shell_sampling": gan.get("shell_sampling", "none"),
            "shell_radius": shell_radius, **report}


def bal_markdown(report: dict) -> str:
    runs = report["runs"]
    seeds = len(runs)

    def spread(values):
        return mean_std(np.array(values, np.float64)) if seeds > 1 else f"{values[0]:.2f}"

    radii = runs[0]["shell_radius"]
    head = (f"{report['cell']} (commit {report['commit']}, {report.get('machine', 'machine unknown')}): "
            f"distance to the predicted class's mean in D's whitened space, in class radii; the runs' references "
            f"(ladder scales, or radial shells before issue 37) span {radii[0]}-{radii[1]}. Mean ± sample std (ddof=1) over {seeds} seeds" if seeds > 1 else
            f"{report['cell']} (commit {report['commit']}): one seed")
    lines = [head + ".", "",
             "| median distance ID | median distance OOD | " + " | ".join(f"AUROC {label}" for _, label in SCORES) + " |",
             "|---" * (2 + len(SCORES)) + "|",
             f"| {spread([r['distance_over_radius']['id']['median'] for r in runs])} | "
             f"{spread([r['distance_over_radius']['ood']['median'] for r in runs])} | "
             + " | ".join(spread([100 * r["auroc"][name] for r in runs]) for name, _ in SCORES) + " |", "",
             "| distance band | OOD share % | ID share % | mean p2 on OOD | mean p2 on ID |", "|---|---|---|---|---|"]
    for index, band in enumerate(runs[0]["bands"]):
        def column(key, scale=1.0):
            values = [r["bands"][index][key] for r in runs if r["bands"][index][key] is not None]
            return spread([scale * v for v in values]) if len(values) == seeds else (
                "-" if not values else f"{np.mean(values) * scale:.2f} ({len(values)} seeds)")
        high = "inf" if band["to"] is None else f"{band['to']:g}"
        lines.append(f"| [{band['from']:g}, {high}) | {column('ood_share', 100)} | {column('id_share', 100)} | "
                     f"{column('ood_mean_p2')} | {column('id_mean_p2')} |")
    return "\n".join(lines)


def bal_main(argv=None):
    parser = argparse.ArgumentParser(prog="diagnose.py bal", description=BAL_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", type=Path, default=[],
                        help="a protocol run evaluated by evaluate.py (repeatable: the seeds of one cell)")
    parser.add_argument("--ood", help="the OOD set as evaluate.py names it (fashion_mnist, held_out_classes, ...)")
    parser.add_argument("--cell", help="the cell's label in the table (default: the first run's name and --ood)")
    args = parse_diagnostic(parser, argv, bal_markdown, "give --run (one or more) and --ood (or --render FILE.json)")
    if args is None:
        return
    runs = [load_run(run, args.ood) for run in args.run]
    report = {**provenance(), "command": diagnostic_command("bal", argv),
              "cell": args.cell or f"{args.run[0].name} vs {args.ood}", "ood": args.ood, "runs": runs}
    emit_report(report, bal_markdown(report), args.out, args.markdown)


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
    return {**provenance(),
            "run": str(run.root), "id": config.data.id_dataset, "ood": ood,
            "gamma": config.baselines.gcpl_gamma, "prototype_weight": config.baselines.gcpl_prototype_weight,
            **report}


def gcpl_markdown(report: dict) -> str:
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


def gcpl_main(argv=None):
    parser = argparse.ArgumentParser(prog="diagnose.py gcpl", description=GCPL_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a protocol run evaluated with --trained-baselines")
    parser.add_argument("--ood", help="the OOD set, e.g. mnist (what evaluate.py --ood takes)")
    args = parse_diagnostic(parser, argv, gcpl_markdown, "give --run and --ood (or --render FILE.json)")
    if args is None:
        return
    from bal_tf.console import quiet_tensorflow

    quiet_tensorflow()
    report = {**gcpl_geometry(args.run, args.ood), "command": diagnostic_command("gcpl", argv)}
    emit_report(report, gcpl_markdown(report), args.out, args.markdown)


def parse_diagnostic(parser, argv, markdown, needs: str):
    """A diagnostic's arguments, its output flags added (``tables.add_report_arguments``); with
    ``--render`` it prints the tables of the raw reports named and returns None. Without, ``--run``
    and ``--ood`` are required (``needs`` says so)."""
    add_report_arguments(parser)
    args = parser.parse_args(argv)
    if args.render:
        print(render_reports(args.render, markdown))
        return None
    if not (args.run and args.ood):
        parser.error(needs)
    return args


def diagnostic_command(sub: str, argv) -> str:
    """The command a report is stamped with (its subcommand's own arguments: ``argv`` in process,
    else the command line's after the subcommand)."""
    return " ".join(["python", "benchmarks/diagnose.py", sub, *(sys.argv[2:] if argv is None else argv)])


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"bal": bal_main, "gcpl": gcpl_main}
    if not argv or argv[0] not in commands:
        print(__doc__)
        raise SystemExit(2 if argv and argv[0] not in ("-h", "--help") else 0)
    commands[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
