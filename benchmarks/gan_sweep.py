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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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

    import numpy as np

    from bal_tf import baselines, metrics, scoring
    from bal_tf.data import load_ood_set
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir
    from bal_tf.train_bal import train_bal

    run = RunDir(Path(args.run))
    base = run.load_config()
    features = RunFeatures(base, run, progress=False)
    train, test = features.split("train"), features.split("test")
    oods = {name: features.ood(name, lambda name=name: load_ood_set(name, base.data)) for name in args.ood}
    msp = {name: metrics.ood_metrics(np.exp(baselines.log_max_softmax(test.logits)), np.exp(baselines.log_max_softmax(o.logits)))
           for name, o in oods.items()}
    msp_record = {"variant": "max_softmax", "baseline": True, "run": str(run.root), "seed": base.seed,
                  "classifier_seed": base.seed, "selected_epoch": "-"}
    for name, m in msp.items():
        msp_record[f"selected/{name}"] = msp_record[f"last/{name}"] = {
            "auroc": round(m["auroc"], 4), "fpr95": round(m["fpr95"], 4)}
    print(json.dumps(msp_record), flush=True)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(json.dumps(msp_record) + "\n")
    for variant in args.variant or ["default"]:
        overrides = list(args.overrides) + ([] if variant == "default" else variant.split(","))
        config = base.with_overrides(overrides)
        for seed in args.seeds:
            start = time.time()
            selection_data = RunFeatures(config, run, progress=False).selection_data()
            result = train_bal(config.gan, train, selection_data=selection_data, seed=seed, verbose=0)
            record = {"variant": args.label or variant, "overrides": overrides, "run": str(run.root),
                      "seed": seed, "classifier_seed": base.seed, "selected_epoch": result.selected_epoch,
                      "seconds": round(time.time() - start, 1)}
            for tag, disc in (("selected", result.discriminator), ("last", result.last_discriminator)):
                id_scores = scoring.log_score(disc, test.features, test.logits)
                for name, o in oods.items():
                    m = metrics.ood_metrics(id_scores, scoring.log_score(disc, o.features, o.logits))
                    record[f"{tag}/{name}"] = {"auroc": round(m["auroc"], 4), "fpr95": round(m["fpr95"], 4)}
            record["criterion_by_epoch"] = [round(h.get("selection_criterion", float("nan")), 4)
                                            for h in result.history]
            print(json.dumps(record), flush=True)
            if args.out:
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
