"""Evaluate a run: ID test split vs OOD sets, BAL against max-softmax on the same backbone.

Scores come from cached features (``RUN/features/``), so evaluating more OOD sets or more
checkpoints costs one feature extraction per image set.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import keras
import numpy as np

from bal_tf import metrics as metrics_lib
from bal_tf import selection
from bal_tf.errors import InputError
from bal_tf.run_dir import RunDir


def ood_cache_name(name: str) -> str:
    return "ood_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def load_discriminator(path: Path):
    if not path.is_file():
        return None
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def method_scores(run: RunDir, features, logits) -> dict[str, np.ndarray]:
    """Every method's score (higher = more ID) for cached features and logits."""
    scores = {"max_softmax": np.exp(selection.log_p1(logits))}
    for method, file_name in (("bal", "discriminator_selected.keras"), ("bal_last", "discriminator_last.keras")):
        discriminator = load_discriminator(run.bal_dir / file_name)
        if discriminator is None:
            continue
        scores[method] = selection.bal_log_score(discriminator, features, logits)
        if method == "bal":
            scores["bal_p2_only"] = selection.d_logits(discriminator, features, np.argmax(logits, -1))
    return scores


def evaluate_run(run_dir: str | Path, ood_names: list[str], progress: bool = True,
                 limit: int | None = None) -> dict:
    """Scores the ID test split and each OOD set with every method; returns a results dict."""
    from bal_tf.pipeline import cached_features
    from bal_tf import data as data_lib
    from bal_tf.features import FeatureCache

    run = RunDir(Path(run_dir))
    config = run.load_config()
    features_of, splits, _, _ = cached_features(config, run, progress=progress)
    cache = FeatureCache(run.features_dir, run.classifier_path)
    image_shape = data_lib.dataset_spec(config.data.id_dataset).image_shape
    test = splits["test"]
    id_scores = method_scores(run, test.features, test.logits)
    accuracy = float(np.mean(test.predictions == test.labels))
    rows = []
    ood_scores_all = {}
    for name in ood_names:
        ood = cache.get(
            ood_cache_name(name),
            lambda name=name: data_lib.load_dataset(name, "test", data_dir=config.data.data_dir,
                                                    image_shape=image_shape, limit=limit, seed=config.seed),
            features_of, progress)
        ood_scores_all[name] = method_scores(run, ood.features, ood.logits)
    if len(ood_names) > 1:
        ood_scores_all["+".join(ood_names)] = {
            m: np.concatenate([ood_scores_all[n][m] for n in ood_names]) for m in id_scores}
    for ood_name, per_method in ood_scores_all.items():
        for method, ood_scores in per_method.items():
            rows.append({"method": method, "ood": ood_name,
                         **metrics_lib.ood_metrics(id_scores[method], ood_scores)})
    bal_missing = "bal" not in id_scores
    return {"run": str(run.root), "id": config.data.id_dataset, "classification_accuracy": accuracy,
            "convention": metrics_lib.CONVENTION, "bal_missing": bal_missing, "rows": rows}


COLUMNS = ["method", "ood", "auroc", "fpr95", "detection_error", "aupr_in", "aupr_out", "fpr95_ood_positive"]


def to_markdown(results: dict) -> str:
    lines = [f"ID: {results['id']} (test split), classification accuracy "
             f"{100 * results['classification_accuracy']:.2f}%. Convention: {results['convention']}.",
             "Values in %.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in results["rows"]:
        cells = [row["method"], row["ood"]] + [f"{100 * row[c]:.2f}" for c in COLUMNS[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    if results["bal_missing"]:
        lines.append("\nBAL is missing from this run (no stage 2): only baselines are shown.")
    return "\n".join(lines) + "\n"


def write_results(run_dir: str | Path, results: dict) -> Path:
    from bal_tf.io import atomic_write_text

    out = Path(run_dir) / "eval"
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.md", to_markdown(results))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in results["rows"]:
        writer.writerow({c: row[c] for c in COLUMNS})
    atomic_write_text(out / "results.csv", buffer.getvalue())
    return out


def check_ood_names(names):
    if not names:
        raise InputError("Give at least one OOD set with --ood (e.g. --ood fashion_mnist).")
