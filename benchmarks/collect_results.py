#!/usr/bin/env python
"""Per-seed and mean +- std table of evaluated runs (reads RUN/eval/results.json).

    python benchmarks/collect_results.py runs/mnist-cpu-seed0 runs/mnist-cpu-seed1 runs/mnist-cpu-seed2 \
        [--method bal --method bal_last --method max_softmax] [--ood fashion_mnist --ood uniform_noise]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from tables import SPREAD_LABEL, markdown_table, mean_std


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--method", action="append", default=[])
    parser.add_argument("--ood", action="append", default=[])
    args = parser.parse_args(argv)
    methods = args.method or ["bal", "bal_last", "bal_p2_only", "max_softmax"]
    table, rows = {}, []
    for run in args.runs:
        results = json.loads((run / "eval" / "results.json").read_text())
        config = json.loads((run / "config.json").read_text())
        history = run / "bal" / "history.json"
        selected = json.loads(history.read_text())["selected_epoch"] if history.exists() else "-"
        for row in results["rows"]:
            if row["method"] not in methods or (args.ood and row["ood"] not in args.ood):
                continue
            table.setdefault((row["method"], row["ood"]), []).append((row["auroc"], row["fpr95"]))
            rows.append([run.name, config["seed"], f"{100 * results['classification_accuracy']:.2f}", selected,
                         row["method"], row["ood"], f"{100 * row['auroc']:.2f}", f"{100 * row['fpr95']:.2f}"])
    print(markdown_table(["run", "seed", "accuracy", "selected epoch", "method", "OOD", "AUROC", "FPR95"], rows))
    print()
    summary = []
    for (method, ood), values in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        values = 100 * np.array(values)
        summary.append([method, ood, len(values), mean_std(values[:, 0]), mean_std(values[:, 1])])
    print("AUROC and FPR95 in %, " + SPREAD_LABEL.format(n="the listed") + ".")
    print(markdown_table(["method", "OOD", "runs", "AUROC", "FPR95"], summary))


if __name__ == "__main__":
    main()
