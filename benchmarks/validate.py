#!/usr/bin/env python
"""The sweep tool of the validation protocol (bal_tf/validation.py): it prints validation
metrics only, never a test OOD set's.

For each run, variant and GAN seed: train BAL's GAN on the run's cached features (checkpoint
selection as configured), then score held-out ID data against each validation family with
BAL's p1 * p2 (selected and last checkpoint) and with every feature-based baseline of
evaluate.py on the same backbone. Prints a table per run (mean ± sample std over seeds) with
BAL's rank among the methods, and appends JSON lines to --out.

    python benchmarks/validate.py --run runs/mnist-cpu-seed0 --run runs/mnist-4to9-cpu-seed0 \\
        --seeds 0 1 2 --variant default --variant gan.d_ema_decay=0 --out validation.jsonl
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tables import SPREAD_LABEL, markdown_table, classifier_digest, mean_std, provenance, resume_sweep, split_variant


def validate_run(run_dir: Path, variants: list[str], seeds: list[int], overrides: list[str] = (),
                 families: list[str] | None = None, done: set = frozenset(), emit=None) -> list[dict]:
    """Records: one per baseline, then one per (variant, seed); metrics per validation family.

    Args:
        done: keys ``(method, variant, seed)`` measured already (``resume_sweep``): a baseline key
            skips the baselines, ``("bal", variant, seed)`` that GAN.
        emit: called with each measurement's records as soon as they exist (``append_records``),
            so a sweep cut short keeps every GAN it finished.
    """
    from bal_tf import validation
    from bal_tf.evaluation import MethodScorer
    from bal_tf.features import RunFeatures
    from bal_tf.train_bal import train_bal

    emit = emit or (lambda records: None)
    run, base, features, sets, train, stamp = open_run(run_dir, families, "benchmarks/validate.py")
    records = []
    if not any(variant == "-" for _, variant, _ in done):
        scorer = MethodScorer(run, train, features.classifier, seed=base.seed)
        records = [{"run": str(run.root), "method": method, "variant": "-", "seed": base.seed,
                    "validation": values, **stamp}
                   for method, values in validation.baseline_metrics(scorer, sets).items()]
        emit(records)
    for variant in variants:
        todo = [seed for seed in seeds if ("bal", variant, seed) not in done]
        if not todo:
            continue
        variant_overrides = list(overrides) + split_variant(variant)
        config = with_variant(base, variant_overrides)
        selection_data = RunFeatures(config, run, progress=False).selection_data()
        for seed in todo:
            start = time.time()
            result = train_bal(config.gan, train, selection_data=selection_data, seed=seed, verbose=0)
            seconds = round(time.time() - start, 1)
            print(f"validate: {run.root.name} [{variant}] GAN seed {seed}: selected epoch "
                  f"{result.selected_epoch}, {seconds:.0f} s", flush=True)  # a sweep takes hours: say where it is
            # BAL's score p1 * p2 at the selected and the last epoch; p2 alone as a diagnostic.
            measured = [{"run": str(run.root), "method": method, "variant": variant,
                         "overrides": variant_overrides, "seed": seed,
                         "selected_epoch": result.selected_epoch, "seconds": seconds,
                         "validation": validation.bal_metrics(discriminator, sets, score), **stamp}
                        for method, discriminator, score in (("bal", result.discriminator, "log_score"),
                                                             ("bal_last", result.last_discriminator, "log_score"),
                                                             ("bal_p2_only", result.discriminator, "d_logit"))]
            emit(measured)
            records += measured
    return records


def open_run(run_dir: Path, families, script: str):
    """``(run, its config, its RunFeatures, validation sets, training features, provenance stamp)``."""
    from bal_tf import validation
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir

    run = RunDir(Path(run_dir))
    # the classifier's digest lets a resumed sweep keep records measured on this very classifier
    stamp = {**provenance(), "command": " ".join(["python", script, *sys.argv[1:]]),
             "classifier_sha256": classifier_digest(run.root)}
    base = run.load_config()
    features = RunFeatures(base, run, progress=False)
    return run, base, features, validation.validation_sets(features, families, seed=base.seed), \
        features.split("train"), stamp


def with_variant(base, overrides: list[str]):
    """``base`` with a variant's overrides; an item ``gan_preset=NAME`` first replaces the whole
    GAN section by that preset (``bal_tf.config.GAN_PRESETS``), the others apply after it."""
    import dataclasses

    from bal_tf.config import GAN_PRESETS
    from bal_tf.errors import ConfigError

    config = base
    for item in (o for o in overrides if o.startswith("gan_preset=")):
        name = item.split("=", 1)[1]
        if name not in GAN_PRESETS:
            raise ConfigError(f"Unknown GAN preset {name!r} in variant item {item!r}; known: {sorted(GAN_PRESETS)}")
        config = dataclasses.replace(config, gan=GAN_PRESETS[name]())
    return config.with_overrides([o for o in overrides if not o.startswith("gan_preset=")])


def summary_table(records: list[dict]) -> str:
    """Rows: baselines and BAL per variant; columns: AUROC per family and BAL's rank."""
    from bal_tf.validation import SEEN_TEST_CELLS

    families = list(records[0]["validation"])
    rows, means = [], {}
    groups = {}
    for record in records:
        groups.setdefault((record["method"], record["variant"]), []).append(record)
    for (method, variant), group in groups.items():
        name = method if variant == "-" else f"{method} [{variant}]"
        means[name] = {f: np.mean([100 * r["validation"][f]["auroc"] for r in group]) for f in families}
        rows.append([name, len(group)] + [mean_std([100 * r["validation"][f]["auroc"] for r in group])
                                          for f in families])
    baselines = [n for n in means if "[" not in n]
    for row in rows:
        if "[" in row[0]:  # BAL's rank among the baselines, per family, by mean AUROC
            ranked = {f: 1 + sum(means[b][f] > means[row[0]][f] for b in baselines) for f in families}
            row.append(", ".join(f"{ranked[f]}" for f in families))
            row.append(f"{np.mean(list(ranked.values())):.2f}")
        else:
            row += ["", ""]
    header = ["method", "seeds"] + [f + (f" (seen: {SEEN_TEST_CELLS[f]})" if f in SEEN_TEST_CELLS else "")
                                    for f in families] + ["BAL's rank per family", "mean rank"]
    return (f"Validation AUROC in %, held-out ID vs each family; {SPREAD_LABEL.format(n='the listed')}.\n"
            + markdown_table(header, rows))


def bal_mean_rank(records: list[dict]) -> dict[str, float]:
    """``{variant: BAL's mean rank over the families}`` for the ``bal`` rows of one run's records
    (rank among the baselines by mean AUROC over seeds, as in ``summary_table``)."""
    families = list(records[0]["validation"])
    means = {}
    for record in records:
        if record["method"] == "bal" or record["variant"] == "-":
            key = record["variant"] if record["method"] == "bal" else "-" + record["method"]
            means.setdefault(key, []).append([100 * record["validation"][f]["auroc"] for f in families])
    means = {k: np.mean(v, axis=0) for k, v in means.items()}
    baselines = [k for k in means if k.startswith("-")]
    return {k: float(np.mean([1 + sum(means[b][i] > means[k][i] for b in baselines) for i in range(len(families))]))
            for k in means if not k.startswith("-")}


def cross_run_table(per_run: dict[str, list[dict]]) -> str:
    """BAL's mean rank per run and averaged over the runs, for the variants every run has."""
    ranks = {run: bal_mean_rank(records) for run, records in per_run.items()}
    common = [v for v in next(iter(ranks.values())) if all(v in r for r in ranks.values())]
    rows = [[v] + [f"{ranks[run][v]:.2f}" for run in ranks] + [f"{np.mean([r[v] for r in ranks.values()]):.2f}"]
            for v in common]
    return ("BAL's mean rank over the families (1 = best among the feature-based baselines), per run and "
            "averaged over the runs; variants measured on every run.\n\n"
            + markdown_table(["variant"] + [Path(run).name for run in ranks] + ["mean over runs"], rows))


def summaries_from_file(path: Path | list[Path], cross_run_only: bool = False) -> str:
    """One table per run from JSON lines files of several invocations (baselines, which every
    invocation scores again with the same values, counted once); with several runs, a
    cross-run table of BAL's mean rank too (``cross_run_only``: that table alone)."""
    paths = [Path(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
    missing = [p for p in paths if not p.is_file()]
    if missing:  # e.g. reproduce.py --render-only before its validation job has measured them
        return (f"No records yet in {', '.join(map(str, missing))}: `python benchmarks/reproduce.py --only "
                "validation` measures them.\n")
    per_run: dict[str, list[dict]] = {}
    seen = set()
    for line in (line for p in paths for line in p.read_text().splitlines()):
        record = json.loads(line)
        if record["variant"] == "-":
            key = (record["run"], record["method"], record["seed"])
            if key in seen:
                continue
            seen.add(key)
        per_run.setdefault(record["run"], []).append(record)
    stamps = sorted({(r.get("commit", "?"), r.get("machine", "?")) for rs in per_run.values() for r in rs})
    header = (f"Generated by `python benchmarks/validate.py --summarize {' '.join(map(str, paths))}` from its raw "
              f"records; measured at commit(s) {', '.join(sorted({c for c, _ in stamps}))} on "
              f"{'; '.join(sorted({m for _, m in stamps}))} ('?': records written before they were stamped).\n\n")
    cross = f"## Across runs\n\n{cross_run_table(per_run)}\n\n" if len(per_run) > 1 else ""
    if cross_run_only:
        return header + cross_run_table(per_run) + "\n"
    return header + cross + "\n".join(f"## {run}\n\n{summary_table(records)}\n" for run, records in per_run.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", type=Path, help="a run with stage 1 done")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="GAN seeds")
    parser.add_argument("--variant", action="append", default=[],
                        help="'default', or comma-separated gan.field=value overrides, of which one may be "
                             "gan_preset=NAME (that GAN preset, the other overrides on top) (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="gan.field=value applied to every variant")
    parser.add_argument("--family", action="append", help="validation families (default: all that apply)")
    parser.add_argument("--out", type=Path, help="JSON lines output (appended)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the baselines and GANs whose records --out already holds, written by the "
                             "same code on the same classifier file; drop the runs' other records there "
                             "(for a file this sweep owns, e.g. reproduce.py's; never the decision log's own files)")
    parser.add_argument("--summarize", type=Path, nargs="+", help="only tabulate these JSON lines files (every run in them)")
    parser.add_argument("--markdown", type=Path, help="with --summarize: also write the tables to this file")
    parser.add_argument("--cross-run-only", action="store_true", help="with --summarize: only the cross-run table")
    args = parser.parse_args(argv)
    from bal_tf.errors import run_cli

    return run_cli(lambda: sweep(args, parser))


def sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The body of ``main``: a run directory that is not one, or an unknown field in any variant,
    ends it with one ``error:`` line (``run_cli``) before anything trains."""
    from bal_tf.errors import ConfigError

    if args.summarize:
        text = summaries_from_file(args.summarize, args.cross_run_only)
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(text)
        print(text)
        return
    if not args.run:
        parser.error("give --run (or --summarize FILE)")
    not_runs = [str(run) for run in args.run if not (run / "config.json").is_file()]
    if not_runs:  # checked for every run first: a typo in the last --run would otherwise surface hours in
        raise ConfigError(f"--run expects run directories written by train.py (DIR/config.json); "
                          f"received {', '.join(not_runs)} (no config.json there).")
    variants, done = args.variant or ["default"], {}
    from bal_tf.run_dir import RunDir

    for run in args.run:  # an unknown field in the last variant: an error now, not after the others' GANs
        for variant in variants:
            with_variant(RunDir(run).load_config(), list(args.overrides) + split_variant(variant))
    if args.resume:
        if not args.out:
            parser.error("--resume needs --out (the file it resumes from)")
        expected = {run.name: {("bal", variant, seed) for variant in variants for seed in args.seeds}
                    for run in args.run}
        done = resume_sweep(args.out, {run.name: classifier_digest(run) for run in args.run},
                            lambda r: (r["method"], r["variant"], r["seed"]), expected)
    for run in args.run:
        run_done = done.get(run.name, set())
        if all(("bal", v, s) in run_done for v in variants for s in args.seeds) \
                and any(variant == "-" for _, variant, _ in run_done):
            print(f"validate: {run} finished by the same code already ({args.out}); skipped", flush=True)
            continue
        if run_done:
            print(f"validate: {run}: resuming, {sum(1 for m, v, _ in run_done if m == 'bal')} of "
                  f"{len(variants) * len(args.seeds)} GANs measured by the same code already ({args.out})", flush=True)
        records = validate_run(run, variants, args.seeds, args.overrides, args.family, done=run_done,
                               emit=lambda records: append_records(args.out, records))
        if args.out:  # the table covers the records of earlier sessions too
            records = [r for r in read_records(args.out) if Path(r.get("run", "")).name == run.name]
        if records:
            print(f"## {run}\n\n{summary_table(records)}\n", flush=True)


def append_records(out: Path | None, records: list[dict]) -> None:
    """Appends records to ``out`` (JSON lines; nothing without ``out``), in one write."""
    if out and records:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in records))


def read_records(path: Path) -> list[dict]:
    """The records of a JSON lines file (none if it does not exist yet)."""
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def report(run, records: list[dict], out: Path | None) -> None:
    """Appends one run's records to ``out`` (JSON lines) and prints their table."""
    append_records(out, records)
    print(f"## {run}\n\n{summary_table(records)}\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
