#!/usr/bin/env python
"""Summarize gan_sweep.py's JSON lines as a Markdown table (mean +- std over seeds).

    python benchmarks/summarize_sweep.py results.jsonl [--ood fashion_mnist --ood uniform_noise] [--prefix table1:]
    python benchmarks/summarize_sweep.py table3.jsonl --ood fashion_mnist --by-dim   # Table 3's layout
"""

import argparse
import json
from collections import defaultdict

import numpy as np

from tables import SPREAD_LABEL, markdown_table, mean_std


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jsonl")
    parser.add_argument("--ood", action="append", default=[])
    parser.add_argument("--prefix", help="only variants whose name starts with this (e.g. table1:)")
    parser.add_argument("--by-dim", action="store_true",
                        help="Table 3's layout: variants 'table3:dim=D:NAME' as rows NAME, columns D")
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in open(args.jsonl) if line.strip()]
    print(provenance_line(args.jsonl, records))
    if args.by_dim:
        by_dim_table(records, args.ood[0] if args.ood else "fashion_mnist")
        return
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
    rows = []
    for variant, runs in by_variant.items():
        cells = [variant, str(len(runs)), ",".join(str(r["selected_epoch"]) for r in runs)]
        for ood in oods:
            for tag, metric in (("selected", "auroc"), ("selected", "fpr95"), ("last", "auroc")):
                cells.append(mean_std([100 * r[f"{tag}/{ood}"][metric] for r in runs]))
        rows.append(cells)
    print("In %, " + SPREAD_LABEL.format(n="the listed") + ".\n")
    print(markdown_table(header, rows))


def provenance_line(path: str, records: list[dict]) -> str:
    """Where the records were measured: their commits, machines and commands (stamped by
    gan_sweep.append_jsonl; older records carry none and are counted as unstamped)."""
    stamped = [r for r in records if "commit" in r]
    parts = [f"From `{path}` ({len(records)} records)"]
    if stamped:
        parts.append("measured at commit(s) " + ", ".join(sorted({r["commit"] for r in stamped}))
                     + " on " + "; ".join(sorted({r["machine"] for r in stamped}))
                     + " by " + "; ".join(f"`{c}`" for c in sorted({r["command"] for r in stamped})))
    if len(stamped) < len(records):
        parts.append(f"{len(records) - len(stamped)} records unstamped (written before records carried "
                     "their commit; see the text for the commit)")
    return ", ".join(parts) + ".\n"


def by_dim_table(records: list[dict], ood: str) -> None:
    """Rows: trivial-sampling variants (and max-softmax of each dim's classifier); columns: feature
    dims; cells: selected-checkpoint AUROC (mean +- std over seeds) and FPR95."""
    dim_of_run, cells = {}, defaultdict(dict)
    for record in records:
        if record["variant"].startswith("table3:dim="):
            _, dim, name = record["variant"].split(":", 2)
            dim = int(dim.split("=")[1])
            dim_of_run[record["run"]] = dim
            cells[name].setdefault(dim, {})[record["seed"]] = record[f"selected/{ood}"]
    for record in records:  # max-softmax does not depend on the GAN seed: once per classifier
        if record.get("baseline") and record["run"] in dim_of_run:
            cells["max-softmax"].setdefault(dim_of_run[record["run"]], {})[0] = record[f"selected/{ood}"]
    dims = sorted(set(dim_of_run.values()))
    rows = []
    for name, by_dim in cells.items():
        row = [name]
        for dim in dims:
            runs = list(by_dim.get(dim, {}).values())
            if not runs:
                row.append("-")
                continue
            fpr = 100 * np.array([r["fpr95"] for r in runs])
            row.append(f"{mean_std([100 * r['auroc'] for r in runs])} / {fpr.mean():.1f}"
                       + (f" ({len(runs)})" if len(runs) > 1 else ""))
        rows.append(row)
    print("AUROC " + SPREAD_LABEL.format(n="the (count)") + " / mean FPR95, in %.\n")
    print(markdown_table(["method"] + [f"dim {d}: AUROC / FPR95" for d in dims], rows))


if __name__ == "__main__":
    main()
