#!/usr/bin/env python
"""Why BAL scores what it scores on a protocol cell: where the test OOD features lie in the space
D sees, and what D outputs there (a diagnostic of finished runs; it chooses nothing).

Reads what evaluate.py left in each run: the cached features (``RUN/features/``: train, test,
``ood_NAME``) and the scores (``RUN/eval/scores.npz``). Each feature's distance to the mean of its
predicted class after the class-tied whitening D sees (``family_radii.whitened_class_distance``),
in units of that class's median training distance: ID test features sit near 1, and the default's
shell negatives (``gan.shell_radius``) are drawn between its two radii. Per run, the AUROC (ID
positive) of four scores on the same images: that distance alone, D alone (p2, ``bal_p2_only``),
max-softmax (p1) and BAL's p1 * p2; and per band of distance, the share of OOD and ID features in
it and D's mean output p2 = sigmoid(D's logit) there. If the distance alone separates a cell better than D does, the
features hold the answer and D has not learnt it; if the OOD features sit inside the ID radii,
no detector of this feature space can.

    python benchmarks/bal_geometry.py --run RUN [--run RUN ...] --ood NAME [--out FILE.json] [--markdown FILE.md]
    python benchmarks/bal_geometry.py --render FILE.json [FILE.json ...]   # the table, from raw reports

The runs of one cell (its seeds) go in one report: the table shows mean ± sample std over them.
Test OOD data is read here to explain the reported numbers; no default or option was chosen with it.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from family_radii import whitened_class_distance
from tables import add_report_arguments, emit_report, mean_std, provenance, render_reports

QUANTILES = (("p10", 10), ("median", 50), ("p90", 90))
SCORES = (("distance", "distance alone"), ("bal_p2_only", "D alone (p2)"), ("max_softmax", "max-softmax (p1)"),
          ("bal", "BAL p1 * p2"))
ID_LIKE = 1.5  # ID test features: p90 of the distance is about 1.3 on the protocol runs


def quantiles(values) -> dict:
    return {name: round(float(np.percentile(values, q)), 4) for name, q in QUANTILES}


def distance_bands(shell_radius) -> list[tuple[float, float]]:
    """[0, 1.5), [1.5, shell start), [shell start, shell end), [shell end, inf): ID-like, between
    the ID and the shells, inside the shells, beyond them."""
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
    from bal_tf.features import ood_cache_name

    features, scores_path = run_dir / "features", run_dir / "eval" / "scores.npz"
    paths = [features / "train.npz", features / "test.npz", features / f"{ood_cache_name(ood)}.npz", scores_path,
             run_dir / "config.json"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{run_dir} lacks {', '.join(missing)}: expected a run evaluated by evaluate.py "
                         f"with OOD set {ood!r} (its features cached, its scores written).")
    train, test, ood_set = (np.load(p, allow_pickle=False) for p in paths[:3])
    scores = np.load(scores_path, allow_pickle=False)
    keys = {f"{prefix}/{name}" for prefix in ("id", ood) for name, _ in SCORES[1:]}
    if not keys <= set(scores.files):
        raise InputError(f"{scores_path} lacks {sorted(keys - set(scores.files))}: expected evaluate.py's "
                         f"scores for OOD set {ood!r}.")
    classes = train["logits"].shape[1]
    relative = whitened_class_distance(train["features"], train["labels"], classes)
    config = json.loads((run_dir / "config.json").read_text())
    shell_radius = config["gan"].get("shell_radius", [2.0, 4.0])
    report = run_geometry(relative(test["features"], test["logits"].argmax(1)),
                          relative(ood_set["features"], ood_set["logits"].argmax(1)),
                          {name: scores[f"id/{name}"] for name, _ in SCORES[1:]},
                          {name: scores[f"{ood}/{name}"] for name, _ in SCORES[1:]}, shell_radius)
    return {"run": str(run_dir), "seed": config.get("seed"), "shell_sampling": config["gan"].get("shell_sampling"),
            "shell_radius": shell_radius, **report}


def markdown(report: dict) -> str:
    runs = report["runs"]
    seeds = len(runs)

    def spread(values):
        return mean_std(np.array(values, np.float64)) if seeds > 1 else f"{values[0]:.2f}"

    radii = runs[0]["shell_radius"]
    head = (f"{report['cell']} (commit {report['commit']}, {report.get('machine', 'machine unknown')}): "
            f"distance to the predicted class's mean in D's whitened space, in class radii; the runs' shells "
            f"span {radii[0]}-{radii[1]}. Mean ± sample std (ddof=1) over {seeds} seeds" if seeds > 1 else
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", type=Path, default=[],
                        help="a protocol run evaluated by evaluate.py (repeatable: the seeds of one cell)")
    parser.add_argument("--ood", help="the OOD set as evaluate.py names it (fashion_mnist, held_out_classes, ...)")
    parser.add_argument("--cell", help="the cell's label in the table (default: the first run's name and --ood)")
    add_report_arguments(parser)
    args = parser.parse_args(argv)
    if args.render:
        print(render_reports(args.render, markdown))
        return
    if not (args.run and args.ood):
        parser.error("give --run (one or more) and --ood (or --render FILE.json)")
    runs = [load_run(run, args.ood) for run in args.run]
    report = {**provenance(), "command": " ".join(["python", "benchmarks/bal_geometry.py", *sys.argv[1:]]),
              "cell": args.cell or f"{args.run[0].name} vs {args.ood}", "ood": args.ood, "runs": runs}
    emit_report(report, markdown(report), args.out, args.markdown)


if __name__ == "__main__":
    main()
