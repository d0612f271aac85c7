#!/usr/bin/env python
"""The paper's ablations (Tables 1-3) on this project's offline data, over several seeds.

Each (variant, seed) trains BAL's GAN on the cached features of one run (the run's own seed is
the GAN seed), selects a checkpoint with the synthetic criterion (no real OOD data) and reports
AUROC / FPR95 on real OOD sets (``sweep``). Results are appended as JSON lines;
``ablations.py summarize`` turns them into the tables of docs/results/REPRODUCTION.md.

    # Tables 1 and 2 on the three MNIST runs, Fashion-MNIST as OOD
    python benchmarks/ablations.py --table 1 --table 2 --ood fashion_mnist \\
        --runs runs/mnist-cpu-seed0 runs/mnist-cpu-seed1 runs/mnist-cpu-seed2 --out ablations.jsonl
    # Table 3: one classifier per feature dimension (an extra Dense layer), trained first
    python benchmarks/ablations.py --table 3 --ood fashion_mnist --seeds 0 1 2 --out table3.jsonl
    # cheaper: one classifier per dim (seed 0), three GAN seeds on it
    python benchmarks/ablations.py --table 3 --table3-classifier-seed 0 --ood fashion_mnist --out table3.jsonl
    # the tables, from the raw JSON lines
    python benchmarks/ablations.py summarize ablations.jsonl --ood fashion_mnist --prefix table1: --reading

The paper's ablations use CIFAR-10 vs TinyImageNet, which are not available offline.
"""

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from tables import SPREAD_LABEL, append_jsonl, classifier_digest, markdown_table, mean_std, resume_sweep, split_variant

# Every table ablates the paper's own negatives and D input (the batch box, shuffled pairs and hard
# features into a D on raw features, p2 = sigmoid of D's logit; the former `stable` preset),
# whatever the run's default: the default's ladder and floor references enter L_u and would blur
# Table 1's "without L_u" rows and Table 3's trivial-sampling arms. ``shell_radius`` [1.5, 4] is the
# Gaussian-tail arm's. The paper's ablation settings are these overrides, not presets.
PAPER_NEGATIVES = ["gan.ladder_weight=0.0", "gan.floor_weight=0.0", "gan.p2_target=ratio", "gan.p2_calibration=none",
                   "gan.shell_radius=[1.5,4.0]", "gan.discriminator_input=raw"]

# Table 1: the loss combinations of L_d (Eq. 11). L_t alone drops both trivial and hard negatives.
TABLE1 = {
    "L_t": "gan.use_shuffle_loss=false,gan.use_uniform_loss=false",
    "L_t+L_s": "gan.use_uniform_loss=false",
    "L_t+L_u": "gan.use_shuffle_loss=false",
    "L_t+L_s+L_u": "default",
}
# Table 2: lambda_c of Eq. 9 (0.7 is the default, shared with Table 1's last row).
TABLE2 = {f"lambda_c={v}": f"gan.lambda_c={v}" for v in (0.1, 0.3, 0.5, 0.7, 0.9)}
# Table 3: trivial sampling method at several penultimate sizes. The paper's Gaussian arm treats
# "the low density area of each category" as OOD: gaussian_tail. The whole Gaussian (dense core
# included) is kept as a third row, for comparison with earlier results.
TABLE3_DIMS = (2, 64, 256, 512)
TABLE3 = {"uniform": "gan.trivial_sampling=uniform", "gaussian_tail": "gan.trivial_sampling=gaussian_tail",
          "gaussian": "gan.trivial_sampling=gaussian"}


def sweep(run: Path, variants: list[str], seeds: list[int], oods: list[str], overrides: list[str] = (),
          label: str | None = None) -> list[dict]:
    """Records: one for max-softmax (``baseline``), then one per (variant, seed).

    Args:
        variants: ``"default"`` or comma-separated ``gan.field=value`` overrides.
        overrides: ``gan.field=value`` applied to every variant.
        label: the name recorded for the variants (default: the variant itself).
    """

    from bal_tf import baselines, metrics, scoring
    from bal_tf.data import load_ood_set
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir
    from bal_tf.train_bal import train_bal

    run = RunDir(Path(run))
    base = run.load_config()
    features = RunFeatures(base, run, progress=False)
    train, test = features.split("train"), features.split("test")
    ood_sets = {name: features.ood(name, lambda name=name: load_ood_set(name, base.data)) for name in oods}
    rounded = lambda m: {"auroc": round(m["auroc"], 4), "fpr95": round(m["fpr95"], 4)}  # noqa: E731
    baseline = {"variant": "max_softmax", "baseline": True, "run": str(run.root), "seed": base.seed,
                "classifier_seed": base.seed, "selected_epoch": "-"}
    for name, ood in ood_sets.items():
        m = metrics.ood_metrics(baselines.log_max_softmax(test.logits), baselines.log_max_softmax(ood.logits))
        baseline[f"selected/{name}"] = baseline[f"last/{name}"] = rounded(m)
    records = [baseline]
    for variant in variants:
        variant_overrides = list(overrides) + split_variant(variant)
        config = base.with_overrides(variant_overrides)
        for seed in seeds:
            start = time.time()
            selection_data = RunFeatures(config, run, progress=False).selection_data()
            result = train_bal(config.gan, train, selection_data=selection_data, seed=seed, verbose=0)
            record = {"variant": label or variant, "overrides": variant_overrides, "run": str(run.root),
                      "seed": seed, "classifier_seed": base.seed, "selected_epoch": result.selected_epoch,
                      "seconds": round(time.time() - start, 1)}
            for tag, disc in (("selected", result.discriminator), ("last", result.last_discriminator)):
                id_scores = scoring.log_score(disc, test.features, test.logits)
                for name, ood in ood_sets.items():
                    record[f"{tag}/{name}"] = rounded(
                        metrics.ood_metrics(id_scores, scoring.log_score(disc, ood.features, ood.logits)))
            record["criterion_by_epoch"] = [round(h.get("selection_criterion", float("nan")), 4)
                                            for h in result.history]
            records.append(record)
    return records


def table3_run(root: Path, dim: int, seed: int, base_preset: str, quiet: bool) -> Path:
    """Trains (or reuses) a classifier whose penultimate layer has ``dim`` units."""
    from bal_tf import pipeline

    run_dir = root / f"{base_preset}-dim{dim}-seed{seed}"
    argv = ["--preset", base_preset, "--seed", str(seed), "--run-dir", str(run_dir),
            "--set", f"backbone.feature_dim={dim}", "--stages", "classifier"]
    if pipeline.main(argv + (["--quiet"] if quiet else [])) != 0:
        raise SystemExit(f"stage 1 failed for {run_dir}")
    return run_dir


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["summarize"]:
        return summarize_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=int, action="append", choices=[1, 2, 3], required=True)
    parser.add_argument("--runs", nargs="*", type=Path, default=[],
                        help="finished runs for Tables 1 and 2 (one per seed)")
    parser.add_argument("--ood", action="append", default=[], help="OOD sets to report (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Table 3 seeds")
    parser.add_argument("--table3-classifier-seed", type=int, default=None,
                        help="train one classifier per feature dim with this seed and vary only the GAN "
                             "seed (default: one classifier per seed)")
    parser.add_argument("--table3-preset", default="mnist-cpu")
    parser.add_argument("--table3-root", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="gan.field=value applied to every variant, after the paper's negatives "
                             "(PAPER_NEGATIVES; e.g. gan.epochs=10)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines output (appended)")
    args = parser.parse_args(argv)
    overrides = PAPER_NEGATIVES + args.overrides
    if any(table in (1, 2) for table in args.table) and not args.runs:
        parser.error("Tables 1 and 2 need --runs")

    # Resumable across sessions and machines, one GAN at a time: --out keeps the measurements made
    # by the same code on the same classifier file (tables.resume_sweep); a run cut short whose
    # classifier is retrained elsewhere is measured again whole.
    table3_runs = {}  # run dir name -> (dim, classifier seed, GAN seeds)
    for dim in TABLE3_DIMS:
        for seed in args.seeds:
            classifier_seed = seed if args.table3_classifier_seed is None else args.table3_classifier_seed
            name = f"{args.table3_preset}-dim{dim}-seed{classifier_seed}"
            table3_runs.setdefault(name, (dim, classifier_seed, []))[2].append(seed)
    expected: dict[str, set] = {}
    run_dirs: dict[str, Path] = {}
    for table in args.table:
        if table in (1, 2):
            for run in args.runs:
                run_dirs[run.name] = run
                expected.setdefault(run.name, set()).update(
                    (f"table{table}:{name}", _run_seed(run)) for name in (TABLE1 if table == 1 else TABLE2))
        else:
            for name, (dim, _, seeds) in table3_runs.items():
                run_dirs[name] = args.table3_root / name
                expected[name] = {(f"table3:dim={dim}:{arm}", seed) for arm in TABLE3 for seed in seeds}
    done = resume_sweep(args.out, {name: classifier_digest(run_dirs[name]) for name in expected},
                        lambda r: None if r.get("baseline") else (r["variant"], r["seed"]), expected)
    for name in sorted(expected):
        if expected[name] <= done[name]:
            print(f"ablations: {name} finished by the same code already ({args.out}); skipped", flush=True)
        elif done[name]:
            print(f"ablations: {name}: resuming, {len(done[name] & expected[name])} of {len(expected[name])} "
                  f"GANs measured by the same code already ({args.out})", flush=True)

    def measure(run: Path, variant: str, seed: int, label: str) -> None:
        if (label, seed) in done[run.name]:
            return
        # stamped with the classifier's digest (so that a resumed sweep can tell its classifier)
        # and its test accuracy (the tables' text quotes it)
        about = {"classifier_sha256": classifier_digest(run), "classifier_test_accuracy": _test_accuracy(run)}
        append_jsonl(args.out, [{**record, **about}
                                for record in sweep(run, [variant], [seed], args.ood, overrides, label=label)])

    for run in args.runs if (1 in args.table or 2 in args.table) else []:
        for table in (t for t in args.table if t in (1, 2)):
            for name, variant in (TABLE1 if table == 1 else TABLE2).items():
                measure(run, variant, _run_seed(run), f"table{table}:{name}")
    if 3 in args.table:
        for name, (dim, classifier_seed, seeds) in table3_runs.items():
            if expected[name] <= done[name]:
                continue
            run = table3_run(args.table3_root, dim, classifier_seed, args.table3_preset, quiet=True)
            for seed in seeds:
                for arm, variant in TABLE3.items():
                    measure(run, variant, seed, f"table3:dim={dim}:{arm}")


def _test_accuracy(run: Path) -> float | None:
    """Stage 1's test accuracy (``RUN/stage1/metrics.json``), None for a classifier trained elsewhere."""
    import json

    metrics = run / "stage1" / "metrics.json"
    return json.loads(metrics.read_text()).get("test_accuracy") if metrics.is_file() else None


def _run_seed(run: Path) -> int:
    import json

    return int(json.loads((run / "config.json").read_text())["seed"])


# ---- summarize (was benchmarks/summarize_sweep.py) ------------------------------------------

SUMMARIZE_DOC = """Summarize the ablation sweeps' JSON lines (ablations.py) as a Markdown table (mean +- std over seeds).

    python benchmarks/ablations.py summarize results.jsonl [--ood fashion_mnist --ood uniform_noise] [--prefix table1:]
    python benchmarks/ablations.py summarize table3.jsonl --ood fashion_mnist --by-dim   # Table 3's layout

With --reading, the table is followed by what it says, computed from the same records (ranking,
which variants one sample std cannot tell apart, which beat max-softmax of the same classifier,
which collapse at the last epoch, the classifiers' accuracy), so that the docs' sentences about a
table are regenerated with it rather than typed.
"""


def summarize_main(argv=None):
    parser = argparse.ArgumentParser(prog="ablations.py summarize", description=SUMMARIZE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
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
