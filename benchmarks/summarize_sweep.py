#!/usr/bin/env python
"""Summarize gan_sweep.py's JSON lines as a Markdown table (mean +- std over seeds).

    python benchmarks/summarize_sweep.py results.jsonl [--ood fashion_mnist --ood uniform_noise] [--prefix table1:]
"""

import argparse
import json
from collections import defaultdict

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jsonl")
    parser.add_argument("--ood", action="append", default=[])
    parser.add_argument("--prefix", help="only variants whose name starts with this (e.g. table1:)")
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in open(args.jsonl) if line.strip()]
    oods = args.ood or sorted({k.split("/", 1)[1] for r in records for k in r if k.startswith("selected/")})
    if args.prefix:
        records = [r for r in records if r["variant"].startswith(args.prefix) or r.get("baseline")]
    by_variant = defaultdict(list)
    seen = set()
    for record in records:
        key = (record["variant"], record.get("run"), record["seed"])
        if key in seen:  # a baseline is recorded once per sweep call; count it once per run
            continue
        seen.add(key)
        by_variant[record["variant"]].append(record)
    header = ["variant", "seeds", "selected epochs"]
    for ood in oods:
        header += [f"{ood} AUROC sel.", f"{ood} FPR95 sel.", f"{ood} AUROC last"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for variant, rows in by_variant.items():
        cells = [variant, str(len(rows)), ",".join(str(r["selected_epoch"]) for r in rows)]
        for ood in oods:
            for tag, metric in (("selected", "auroc"), ("selected", "fpr95"), ("last", "auroc")):
                values = 100 * np.array([r[f"{tag}/{ood}"][metric] for r in rows])
                cells.append(f"{values.mean():.2f} ± {values.std():.2f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
