#!/usr/bin/env python
"""Per-epoch diagnostics of one GAN training on a run's cached features (not a test).

Prints, after every epoch: the OOD-free selection criterion and its families, AUROC / FPR95 of
BAL's score on real OOD sets (reporting only), and D's mean output on training, held-out and
test ID features and on the first OOD set (to tell overfitting from the GAN game).

    python benchmarks/gan_diagnostics.py --run runs/mnist-cpu-seed0 --ood fashion_mnist \
        --ood uniform_noise --set gan.epochs=10 --set gan.d_ema_decay=0 --seed 0
"""

import argparse
import json
from pathlib import Path



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--ood", action="append", default=[])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from bal_tf import metrics, scoring
    from bal_tf.data import load_ood_set
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir
    from bal_tf.train_bal import train_bal

    run = RunDir(args.run)
    config = run.load_config().with_overrides(args.overrides)
    features = RunFeatures(config, run, progress=False)
    splits = {name: features.split(name) for name in ("train", "holdout", "test")}
    oods = {name: features.ood(name, lambda name=name: load_ood_set(name, config.data)) for name in args.ood}
    test = splits["test"]

    def mean_d(discriminator, feature_set, use_labels):
        labels = feature_set.labels if use_labels else feature_set.predictions
        logits = scoring.discriminator_logits(discriminator, feature_set.features[:5000], labels[:5000])
        return float(np.mean(1 / (1 + np.exp(-logits))))

    class Diagnostics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            d = self.model.scoring_discriminator
            id_scores = scoring.log_score(d, test.features, test.logits)
            record = {"epoch": epoch + 1, "criterion": round(logs.get("selection_criterion", float("nan")), 4)}
            for name, o in oods.items():
                m = metrics.ood_metrics(id_scores, scoring.log_score(d, o.features, o.logits))
                record[name] = [round(m["auroc"], 4), round(m["fpr95"], 4)]
            record["mean_D"] = {"train": round(mean_d(d, splits["train"], True), 3),
                                "held_out": round(mean_d(d, splits["holdout"], True), 3),
                                "test": round(mean_d(d, test, True), 3)}
            if oods:
                first = next(iter(oods))
                record["mean_D"][first] = round(mean_d(d, oods[first], False), 3)
            print(json.dumps(record), flush=True)

    train_bal(config.gan, splits["train"], selection_data=features.selection_data(), seed=args.seed,
              verbose=0, extra_callbacks=[Diagnostics()])


if __name__ == "__main__":
    main()
