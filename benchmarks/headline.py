#!/usr/bin/env python
"""The README's headline results, generated from the raw protocol results (never typed by hand).

Reads ``docs/results/protocols.json`` (written by ``benchmarks/protocols.py --json``) and
rewrites the block between ``<!-- headline:begin -->`` and ``<!-- headline:end -->`` in
README.md: one row per cell (protocol, backbone, OOD set) with BAL's AUROC, max-softmax's, the
best method's, BAL's rank, and the issue-13 targets checked cell by cell.

    python benchmarks/headline.py                 # rewrite README.md's block
    python benchmarks/headline.py --check         # exit 1 if README.md's block is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tables import SPREAD_LABEL, competition_rank, markdown_table, mean_std

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- headline:begin -->", "<!-- headline:end -->"
# Rows that are BAL's diagnostics or other GAN presets: shown elsewhere, never ranked.
UNRANKED_PREFIXES = ("bal_last", "bal_p2_only", "bal[")
# The targets of issue 13 (mean AUROC over seeds, %), per (protocol, OOD set).
AUROC_TARGETS = {("offline-fashion_mnist", "mnist"): 97.8, ("heldout-fashion_mnist", "held_out_classes"): 78.0,
                 ("offline-mnist", "fashion_mnist"): 99.5}


def mean_aurocs(cells: list[dict]) -> dict[str, float]:
    """Mean AUROC of each ranked method of one cell (BAL's diagnostics and variants left out)."""
    return {c["method"]: float(np.mean(c["auroc"])) for c in cells if not c["method"].startswith(UNRANKED_PREFIXES)}


def ranked_methods(cells: list[dict]) -> list[str]:
    """Methods of one cell by mean AUROC, best first."""
    means = mean_aurocs(cells)
    return sorted(means, key=lambda m: -means[m])


def cell_summaries(results: dict) -> list[dict]:
    """One summary per (protocol, backbone, OOD set) of protocols.json."""
    groups: dict[tuple, list[dict]] = {}
    for cell in results["cells"]:
        groups.setdefault((cell["protocol"], cell["backbone"], cell["ood"]), []).append(cell)
    summaries = []
    for (protocol, backbone, ood), cells in groups.items():
        by_method = {c["method"]: c for c in cells}
        if "bal" not in by_method or "max_softmax" not in by_method:
            continue
        ranking = ranked_methods(cells)
        bal, msp = np.array(by_method["bal"]["auroc"]), np.array(by_method["max_softmax"]["auroc"])
        best = ranking[0] if ranking[0] != "bal" else (ranking[1] if len(ranking) > 1 else "bal")
        summaries.append({
            "protocol": protocol, "backbone": backbone, "ood": ood, "seeds": len(bal),
            "bal": bal, "max_softmax": msp, "best_other": best, "best_other_auroc": np.array(by_method[best]["auroc"]),
            "rank": competition_rank(mean_aurocs(cells), "bal"), "methods": len(ranking),
            "beats_msp_every_seed": bool(len(bal) == len(msp) and (bal > msp).all()),
            "target": AUROC_TARGETS.get((protocol, ood)),
        })
    return summaries


PAPER_PRESETS = ("paper_literal", "paper")


def paper_recipe_rows(results: dict) -> list[list]:
    """Per cell with a run of the paper's presets (``bal[paper_literal]``, ``bal[paper]``): BAL at
    the default, at each preset (mean ± std over the seeds it has, and how many) and max-softmax."""
    groups: dict[tuple, dict[str, dict]] = {}
    for cell in results["cells"]:
        groups.setdefault((cell["protocol"], cell["backbone"], cell["ood"]), {})[cell["method"]] = cell
    rows = []
    for (protocol, backbone, ood), by_method in groups.items():
        presets = [by_method.get(f"bal[{name}]") for name in PAPER_PRESETS]
        if not any(presets) or "bal" not in by_method:
            continue
        rows.append([protocol, backbone, ood, mean_std(np.array(by_method["bal"]["auroc"])),
                     *(f"{mean_std(np.array(c['auroc']))} ({len(c['auroc'])})" if c else "-" for c in presets),
                     mean_std(np.array(by_method["max_softmax"]["auroc"])) if "max_softmax" in by_method else "-"])
    return rows


def targets_report(summaries: list[dict]) -> list[str]:
    """The issue-13 targets, each met or missed, with by how much."""
    if not summaries:
        return ["No cells measured yet."]
    lines = []
    losing = [s for s in summaries if not s["beats_msp_every_seed"]]
    lines.append(f"- BAL beats max-softmax in every cell and seed: {'yes' if not losing else 'no'}"
                 + (f" (not in {len(losing)} of {len(summaries)} cells)" if losing else ""))
    low = [s for s in summaries if s["rank"] > 2]
    lines.append(f"- BAL first or second in every cell: {'yes' if not low else 'no'}"
                 + (f" ({len(low)} of {len(summaries)} cells rank lower)" if low else ""))
    mean_rank = float(np.mean([s["rank"] for s in summaries]))
    lines.append(f"- BAL's mean rank over the cells at most 1.5: {'yes' if mean_rank <= 1.5 else 'no'} "
                 f"({mean_rank:.2f} over {len(summaries)} cells)")
    for s in summaries:
        if s["target"] is not None:
            value = float(s["bal"].mean())
            met = value >= s["target"]
            lines.append(f"- {s['protocol']} ({s['backbone']}) >= {s['target']}: {'yes' if met else 'no'} "
                         f"({value:.2f}" + ("" if met else f", {s['target'] - value:.2f} short") + ")")
    return lines


def headline_markdown(results: dict, source: str = "docs/results/protocols.json") -> str:
    summaries = cell_summaries(results)
    seeds = sorted({s["seeds"] for s in summaries})
    rows = [[s["protocol"], s["backbone"], s["ood"], s["seeds"], mean_std(s["bal"]), mean_std(s["max_softmax"]),
             f"{s['best_other']} {mean_std(s['best_other_auroc'])}", f"{s['rank']} of {s['methods']}",
             "yes" if s["beats_msp_every_seed"] else "no"] for s in summaries]
    spread = SPREAD_LABEL.format(n="/".join(map(str, seeds)) or "0")
    return "\n".join([
        f"Generated by `python benchmarks/headline.py` from `{source}` (written at commit `{results['commit']}`; "
        f"runs evaluated at {', '.join(f'`{c}`' for c in results.get('evaluated_at', [results['commit']]))}), "
        f"machine {results['machine']}, scale {results.get('scale', '?')}; measured by `{results['command']}`. "
        f"AUROC in % (ID positive), {spread}; BAL is p1 * p2 at the default GAN settings of that commit, ranked among "
        "every method of evaluate.py on the same backbone by mean AUROC at two decimals, ties sharing the better rank "
        "(standard competition ranking: 1-2-2-4).",
        "",
        f"{len(summaries)} cells" + (" measured" if all(s["seeds"] == max(seeds) for s in summaries) else
                                     " measured so far (a cell appears once its first seed is evaluated)") + ".",
        "",
        markdown_table(["protocol", "backbone", "OOD", "seeds", "BAL", "max-softmax", "best other method", "BAL's rank",
                        "BAL > max-softmax in every seed"], rows),
        "",
        "Targets (issue 13):",
        "",
        *targets_report(summaries),
        "",
        "Why each missed cell misses (where its test OOD features lie in D's space, D alone against the distance "
        "alone): docs/results/diagnostics.md, \"Why BAL misses its targets on the test protocols\".",
        *paper_recipe_section(results),
    ])


def paper_recipe_section(results: dict) -> list[str]:
    rows = paper_recipe_rows(results)
    if not rows:
        return []
    return ["", "The paper's recipe on the same classifiers (`--gan-preset paper_literal`: the paper as printed; "
            "`paper`: plus the fixes it needs to train stably; docs/DESIGN.md), AUROC %, mean ± sample std (ddof=1) "
            "over the seeds in brackets; not ranked:", "",
            markdown_table(["protocol", "backbone", "OOD", "BAL (default)", "BAL (paper_literal)", "BAL (paper)",
                            "max-softmax"], rows)]


def replace_block(text: str, block: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block to fill.")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "results" / "protocols.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="only check that the README's block is current")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    source = args.results.resolve().relative_to(ROOT) if args.results.resolve().is_relative_to(ROOT) else args.results
    updated = replace_block(args.readme.read_text(), headline_markdown(results, str(source)))
    if args.check:
        if updated != args.readme.read_text():
            print(f"{args.readme} is stale: run python benchmarks/headline.py", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(updated)
    print(headline_markdown(results, str(source)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
