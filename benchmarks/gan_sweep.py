#!/usr/bin/env python
"""Multi-seed sweep of BAL GAN settings on one run's cached features.

For each variant and seed: train the GAN, select a checkpoint with the synthetic criterion (no
real OOD data), and report AUROC / FPR95 on real OOD sets for the selected and the last epoch,
beside max-softmax. Real OOD data is used here only for reporting.

    python benchmarks/gan_sweep.py --run runs/mnist-cpu-seed0 --ood fashion_mnist \
        --ood uniform_noise --seeds 0 1 2 --variant default --variant gan.label_conditioning=projection
"""

import argparse
import json
import time
from pathlib import Path

from tables import split_variant


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


def append_jsonl(path: Path | None, records: list[dict]) -> None:
    """Prints each record as a JSON line, and appends it to ``path`` if given; each record is
    stamped with the commit, the machine and the command that measured it."""
    import sys

    from tables import provenance

    stamp = {**provenance(), "command": " ".join(["python", *sys.argv])}
    for record in records:
        record = {**record, **{k: v for k, v in stamp.items() if k not in record}}
        print(json.dumps(record), flush=True)
        if path:
            with open(path, "a") as handle:
                handle.write(json.dumps(record) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--ood", action="append", default=[])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", action="append", default=[],
                        help="'default' or comma-separated gan.field=value overrides")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="gan.field=value applied to every variant")
    parser.add_argument("--label", help="name recorded for the variant (default: the overrides)")
    parser.add_argument("--out", type=Path, help="JSON lines output file")
    args = parser.parse_args(argv)
    append_jsonl(args.out, sweep(Path(args.run), args.variant or ["default"], args.seeds, args.ood,
                                 args.overrides, args.label))


if __name__ == "__main__":
    main()
