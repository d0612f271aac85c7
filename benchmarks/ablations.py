#!/usr/bin/env python
"""The paper's ablations (Tables 1-3) on this project's offline data, over several seeds.

Each (variant, seed) trains BAL's GAN on the cached features of one run (the run's own seed is
the GAN seed), selects a checkpoint with the synthetic criterion (no real OOD data) and reports
AUROC / FPR95 on real OOD sets (``sweep``). Results are appended as JSON lines;
``summarize_sweep.py`` turns them into the tables of docs/results/REPRODUCTION.md.

    # Tables 1 and 2 on the three MNIST runs, Fashion-MNIST as OOD
    python benchmarks/ablations.py --table 1 --table 2 --ood fashion_mnist \\
        --runs runs/mnist-cpu-seed0 runs/mnist-cpu-seed1 runs/mnist-cpu-seed2 --out ablations.jsonl
    # Table 3: one classifier per feature dimension (an extra Dense layer), trained first
    python benchmarks/ablations.py --table 3 --ood fashion_mnist --seeds 0 1 2 --out table3.jsonl
    # cheaper: one classifier per dim (seed 0), three GAN seeds on it
    python benchmarks/ablations.py --table 3 --table3-classifier-seed 0 --ood fashion_mnist --out table3.jsonl

The paper's ablations use CIFAR-10 vs TinyImageNet, which are not available offline.
"""

import argparse
import time
from pathlib import Path

from tables import append_jsonl, classifier_digest, resume_sweep, split_variant

# Every table ablates the paper's own negatives and D input (the batch box, shuffled pairs and hard
# features into a D on raw features; the former `stable` preset), whatever the run's default: the
# default's shell and k-NN boundary negatives enter L_u and would blur Table 1's "without L_u" rows
# and Table 3's trivial-sampling arms. The paper's ablation settings are these overrides, not presets.
PAPER_NEGATIVES = ["gan.shell_sampling=none", "gan.shell_weight=1.0", "gan.shell_radius=[1.5,4.0]",
                   "gan.boundary_weight=0.0", "gan.discriminator_input=raw"]

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


if __name__ == "__main__":
    main()
