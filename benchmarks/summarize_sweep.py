#!/usr/bin/env python
"""Summarize the ablation sweeps' JSON lines (ablations.py) as a Markdown table (mean +- std over seeds).

    python benchmarks/summarize_sweep.py results.jsonl [--ood fashion_mnist --ood uniform_noise] [--prefix table1:]
    python benchmarks/summarize_sweep.py table3.jsonl --ood fashion_mnist --by-dim   # Table 3's layout

With --reading, the table is followed by what it says, computed from the same records (ranking,
which variants one sample std cannot tell apart, which beat max-softmax of the same classifier,
which collapse at the last epoch, the classifiers' accuracy), so that the docs' sentences about a
table are regenerated with it rather than typed.
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
    parser.add_argument("--reading", action="store_true",
                        help="also print what the table says, computed from the records (first --ood)")
    parser.add_argument("--paper-order", nargs="+", metavar="VARIANT",
                        help="with --reading: the paper's order of these variants, worst first (checked on the means)")
    parser.add_argument("--identical", nargs=2, metavar=("VARIANT", "OTHER"),
                        help="with --reading: say whether two labels of one configuration, trained separately, "
                             "agree in every seed (the determinism check; OTHER may lie outside --prefix)")
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in open(args.jsonl) if line.strip()]
    all_records = records
    print(provenance_line(args.jsonl, records))
    if args.by_dim:
        by_dim_table(records, args.ood[0] if args.ood else "fashion_mnist")
        if args.reading:
            print("\n".join(by_dim_reading(records, args.ood[0] if args.ood else "fashion_mnist")))
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
    if args.reading:
        print("\n".join(reading(by_variant, oods[0], args.prefix or "", args.paper_order)))
        if args.identical:
            print(identical_line(all_records, *args.identical, oods[0]))


def _aurocs(runs: list[dict], ood: str, tag: str = "selected") -> np.ndarray:
    return np.array([100 * r[f"{tag}/{ood}"]["auroc"] for r in runs])


def _spread(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _names(names: list[str], prefix: str = "") -> str:
    return ", ".join(n.removeprefix(prefix) for n in names) or "none"


def reading(by_variant: dict[str, list[dict]], ood: str, prefix: str = "", paper_order=None) -> list[str]:
    """What a variants x seeds table says about the selected checkpoint's AUROC on ``ood``."""
    baselines = {r["run"]: r for r in by_variant.get("max_softmax", [])}
    variants = {name: runs for name, runs in by_variant.items() if name != "max_softmax"}
    means = {name: float(_aurocs(runs, ood).mean()) for name, runs in variants.items()}
    spreads = {name: _spread(_aurocs(runs, ood)) for name, runs in variants.items()}
    ranked = sorted(means, key=means.get)
    lines = ["", f"Reading (generated from the same records; AUROC of the selected checkpoint on {ood}, "
             "mean over seeds):", "",
             "- ranked, worst first: " + " < ".join(f"{n.removeprefix(prefix)} {means[n]:.2f}" for n in ranked) + "."]
    if paper_order:
        order = [n for n in paper_order if n in means]
        holds = all(means[a] < means[b] for a, b in zip(order, order[1:]))
        lines.append(f"- the paper's order ({' < '.join(n.removeprefix(prefix) for n in order)}) "
                     f"{'holds' if holds else 'does not hold'} on these means.")
    best = ranked[-1]
    close = [n for n in ranked[:-1] if means[best] - means[n] <= max(spreads[best], spreads[n])]
    lines.append(f"- best: {best.removeprefix(prefix)} ({means[best]:.2f} ± {spreads[best]:.2f}); within one sample "
                 f"std of it (difference <= the larger of the two stds): {_names(close, prefix)}.")
    if baselines:
        msp = float(np.mean([100 * b[f"selected/{ood}"]["auroc"] for b in baselines.values()]))
        above = [n for n in ranked if means[n] > msp]
        every = [n for n in ranked if all(100 * r[f"selected/{ood}"]["auroc"] > 100 * baselines[r["run"]][f"selected/{ood}"]["auroc"]
                                          for r in variants[n] if r["run"] in baselines)]
        lines.append(f"- above max-softmax of the same classifiers ({msp:.2f}) on the mean: {_names(above, prefix)}; "
                     f"in every seed: {_names(every, prefix)}.")
    collapsed = [n for n in ranked if means[n] - float(_aurocs(variants[n], ood, "last").mean()) > 5]
    lines.append(f"- last epoch more than 5 points below the selected checkpoint: {_names(collapsed, prefix)}.")
    accuracy = classifier_accuracies([r for runs in by_variant.values() for r in runs])
    if accuracy:
        lines.append(f"- classifiers' test accuracy: {accuracy}.")
    return lines


def identical_line(records: list[dict], variant: str, other: str, ood: str) -> str:
    """Whether two labels of one configuration agree in every (run, seed): selected epoch and AUROC."""
    def outcomes(name):
        return {(r["run"], r["seed"]): (r["selected_epoch"], r[f"selected/{ood}"]["auroc"])
                for r in records if r["variant"] == name}

    mine, theirs = outcomes(variant), outcomes(other)
    shared = sorted(set(mine) & set(theirs))
    same = [key for key in shared if mine[key] == theirs[key]]
    if not shared:
        return f"- determinism: no (run, seed) measured as both {variant} and {other}."
    verdict = "agree to every digit" if len(same) == len(shared) else f"differ in {len(shared) - len(same)}"
    return (f"- determinism: {variant} and {other} are the same configuration trained in separate calls; "
            f"over the {len(shared)} (run, seed) pairs measured as both, their selected epochs and AUROCs {verdict}.")


def classifier_accuracies(records: list[dict]) -> str:
    """'99.36% (mnist-cpu-seed0), ...' from the records' ``classifier_test_accuracy`` (once per run)."""
    from pathlib import Path

    found = {Path(r["run"]).name: r["classifier_test_accuracy"] for r in records
             if r.get("classifier_test_accuracy") is not None}
    return ", ".join(f"{100 * acc:.2f}% ({name})" for name, acc in sorted(found.items(), key=lambda kv: _natural(kv[0])))


def _natural(name: str) -> list:
    """Sort key that orders the numbers in a name by value: ...-dim64-... before ...-dim256-..."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def by_dim_reading(records: list[dict], ood: str) -> list[str]:
    """What Table 3 says, per feature dim: the best arm, the arms one sample std cannot tell from it,
    and the arms above max-softmax of that dim's classifier."""
    arms: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    msp, dim_of_run = {}, {}
    for record in records:
        if record["variant"].startswith("table3:dim="):
            _, dim, name = record["variant"].split(":", 2)
            dim = int(dim.split("=")[1])
            dim_of_run[record["run"]] = dim
            arms[dim][name].append(100 * record[f"selected/{ood}"]["auroc"])
    for record in records:
        if record.get("baseline") and record["run"] in dim_of_run:
            msp[dim_of_run[record["run"]]] = 100 * record[f"selected/{ood}"]["auroc"]
    lines = ["", f"Reading (generated from the same records; AUROC of the selected checkpoint on {ood}, "
             "mean over seeds):", ""]
    for dim in sorted(arms):
        means = {n: float(np.mean(v)) for n, v in arms[dim].items()}
        spreads = {n: _spread(np.array(v)) for n, v in arms[dim].items()}
        best = max(means, key=means.get)
        close = [n for n in sorted(means, key=means.get) if n != best
                 and means[best] - means[n] <= max(spreads[best], spreads[n])]
        line = (f"- dim {dim}: best {best} ({means[best]:.2f} ± {spreads[best]:.2f}); within one sample std of it: "
                f"{_names(close)}")
        if dim in msp:
            above = [n for n in sorted(means, key=means.get, reverse=True) if means[n] > msp[dim]]
            line += f"; above max-softmax of that classifier ({msp[dim]:.2f}): {_names(above)}"
        lines.append(line + ".")
    accuracy = classifier_accuracies([r for r in records if r["run"] in dim_of_run])
    if accuracy:
        lines.append(f"- classifiers' test accuracy: {accuracy}.")
    return lines


def provenance_line(path: str, records: list[dict]) -> str:
    """Where the records were measured: their commits, machines and commands (stamped by
    tables.append_jsonl; older records carry none and are counted as unstamped)."""
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
