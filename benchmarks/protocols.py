#!/usr/bin/env python
"""Run the offline protocols end to end over several seeds and write one results document.

For each protocol and seed: ``train.py`` (both stages; skipped where already done) and
``evaluate.py --protocol`` (BAL and every baseline on the same backbone). Then a table per
protocol, mean +- std over seeds, with BAL's rank, beside the paper's targets.

    python benchmarks/protocols.py --protocol offline-mnist --protocol offline-fashion_mnist \\
        --protocol heldout-mnist --protocol heldout-fashion_mnist --seeds 0 1 2 \\
        --runs-root runs --out docs/results/protocols.md
    python benchmarks/protocols.py --summarize-only ...   # tables from finished runs only
    # a variant: overrides for every run, run dirs named <preset>-<tag>-seed<N>
    python benchmarks/protocols.py --protocol offline-fashion_mnist --set classifier.epochs=16 --tag ep16 ...

The paper's Table 4 mixes Omniglot into the OOD sets; Omniglot is not available offline, so the
offline protocols use Fashion-MNIST / MNIST alone.
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tables import SPREAD_LABEL, markdown_table, mean_std

ROOT = Path(__file__).resolve().parents[1]

# protocol -> (preset stem, the paper's BAL AUROC / FPR95 target or None)
PROTOCOL_PRESETS = {
    "offline-mnist": ("mnist", (99.32, 1.11)),
    "offline-fashion_mnist": ("fashion_mnist", (97.82, 9.20)),
    "heldout-mnist": ("mnist-0to5", None),
    "heldout-fashion_mnist": ("fashion_mnist-0to5", None),
}
METHODS = ["bal", "bal_last", "bal_p2_only", "max_softmax", "max_logit", "energy", "odin", "mahalanobis",
           "knn", "vim", "generalized_odin"]


def run_dir_name(preset: str, seed: int, tag: str | None) -> str:
    return f"{preset}-{tag}-seed{seed}" if tag else f"{preset}-seed{seed}"


def run_protocol(protocol: str, seed: int, scale: str, runs_root: Path, quiet: bool,
                 overrides: tuple[str, ...] = (), tag: str | None = None) -> Path:
    stem, _ = PROTOCOL_PRESETS[protocol]
    preset = stem + ("-cpu" if scale == "cpu" else "")
    run_dir = runs_root / run_dir_name(preset, seed, tag)
    flags = ["--quiet"] if quiet else []
    sets = [arg for item in overrides for arg in ("--set", item)]
    start = time.time()
    for command in ([str(ROOT / "train.py"), "--preset", preset, "--seed", str(seed), "--run-dir", str(run_dir),
                     *sets, *flags],
                    [str(ROOT / "evaluate.py"), "--run", str(run_dir), "--protocol", protocol, *flags]):
        subprocess.run([sys.executable, *command], check=True, cwd=ROOT)
    print(f"protocols: {protocol} seed {seed} done in {time.time() - start:.0f} s ({run_dir})", flush=True)
    return run_dir


def protocol_table(protocol: str, run_dirs: list[Path]) -> tuple[str, dict]:
    """Markdown table (mean +- std over runs) and a summary dict for one protocol."""
    from bal_tf.protocols import PROTOCOLS

    ood_name = "+".join(PROTOCOLS[protocol][1])  # the protocol's OOD set (or their mixture)
    per_method: dict[str, list[tuple[float, float]]] = {}
    accuracies = []
    for run_dir in run_dirs:
        results = json.loads((run_dir / "eval" / "results.json").read_text())
        accuracies.append(100 * results["classification_accuracy"])
        for row in results["rows"]:
            if row["ood"] == ood_name:
                per_method.setdefault(row["method"], []).append((100 * row["auroc"], 100 * row["fpr95"]))
    methods = [m for m in METHODS if m in per_method]
    means = {m: np.mean(per_method[m], axis=0) for m in methods}
    ranked = [m for m in sorted(means, key=lambda m: -means[m][0]) if m not in ("bal_last", "bal_p2_only")]
    rows = []
    for method in methods:
        values = np.array(per_method[method])
        rows.append([method, mean_std(values[:, 0]), mean_std(values[:, 1]),
                     " / ".join(f"{v:.2f}" for v in values[:, 0])])
    lines = [f"ID test vs {ood_name}; classifier accuracy {mean_std(accuracies)}%; "
             + SPREAD_LABEL.format(n=len(run_dirs)) + ".", "",
             markdown_table(["method", "AUROC", "FPR95", "per seed AUROC"], rows)]
    summary = {"ood": ood_name, "seeds": len(run_dirs),
               "bal": [float(v) for v in means.get("bal", [np.nan, np.nan])],
               "max_softmax": [float(v) for v in means.get("max_softmax", [np.nan, np.nan])],
               "bal_rank": ranked.index("bal") + 1 if "bal" in ranked else None, "methods_ranked": len(ranked),
               "ahead_of_bal": {m: round(float(means[m][0] - means["bal"][0]), 2)
                                for m in ranked[:ranked.index("bal")]} if "bal" in ranked else {}}
    return "\n".join(lines), summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", action="append", choices=sorted(PROTOCOL_PRESETS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    parser.add_argument("--runs-root", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, required=True, help="Markdown results file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="section.field=value for every training run (e.g. classifier.epochs=16)")
    parser.add_argument("--tag", help="names the run dirs <preset>-<tag>-seed<N> (needed with --set)")
    parser.add_argument("--summarize-only", action="store_true", help="only tabulate finished runs")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.overrides and not args.tag:
        parser.error("--set changes the runs' config: give --tag too, so they get their own run dirs")

    sections, targets = [], []
    for protocol in args.protocol:
        stem, target = PROTOCOL_PRESETS[protocol]
        preset = stem + ("-cpu" if args.scale == "cpu" else "")
        label = preset + "".join(f", {o}" for o in args.overrides)
        run_dirs = []
        for seed in args.seeds:
            run_dir = args.runs_root / run_dir_name(preset, seed, args.tag)
            if not args.summarize_only:
                run_protocol(protocol, seed, args.scale, args.runs_root, args.quiet, args.overrides, args.tag)
            if (run_dir / "eval" / "results.json").is_file():
                run_dirs.append(run_dir)
        if not run_dirs:
            sections.append(f"## {protocol} (preset {label})\n\nNo finished runs.\n")
            continue
        table, summary = protocol_table(protocol, run_dirs)
        sections.append(f"## {protocol} (preset {label})\n\n{table}\n")
        targets.append((protocol, target, summary))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    header = [
        "# Protocol results (generated by benchmarks/protocols.py)", "",
        f"Machine: {platform.machine()}, {__import__('os').cpu_count()} CPUs, no GPU; commit {commit}; scale "
        f"{args.scale}. Command: `python benchmarks/protocols.py "
        + " ".join(f"--protocol {p}" for p in args.protocol) + f" --seeds {' '.join(map(str, args.seeds))}"
        + "".join(f" --set {o}" for o in args.overrides) + (f" --tag {args.tag}" if args.tag else "") + "`.",
        "AUROC / FPR95 in %, ID is the positive class; " + SPREAD_LABEL.format(n="the listed") + ".", "",
        "## Targets and ranks", "",
        "| protocol | OOD | seeds | BAL AUROC | BAL FPR95 | paper target | met | max-softmax AUROC | BAL beats MSP | BAL rank | ahead of BAL (AUROC points) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol, target, s in targets:
        met = "-" if target is None else ("yes" if s["bal"][0] >= target[0] and s["bal"][1] <= target[1] else "no")
        header.append(
            f"| {protocol} | {s['ood']} | {s['seeds']} | {s['bal'][0]:.2f} | {s['bal'][1]:.2f} | "
            + ("-" if target is None else f"{target[0]} / {target[1]}") + f" | {met} | {s['max_softmax'][0]:.2f} | "
            + ("yes" if s["bal"][0] > s["max_softmax"][0] else "no") + f" | {s['bal_rank']} of {s['methods_ranked']} | "
            + (", ".join(f"{m} +{d}" for m, d in s["ahead_of_bal"].items()) or "none") + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header) + "\n\n" + "\n".join(sections))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
