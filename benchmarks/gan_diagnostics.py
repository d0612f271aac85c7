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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--ood", action="append", default=[])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from bal_tf import metrics, selection
    from bal_tf.data import load_ood_set
    from bal_tf.evaluation import ood_cache_name
    from bal_tf.features import FeatureCache
    from bal_tf.pipeline import cached_features
    from bal_tf.run_dir import RunDir
    from bal_tf.train_bal import train_bal

    run = RunDir(args.run)
    config = run.load_config().with_overrides(args.overrides)
    features_of, splits, _, synthetic = cached_features(config, run, progress=False)
    cache = FeatureCache(run.features_dir, run.classifier_path)
    oods = {name: cache.get(ood_cache_name(name), lambda name=name: load_ood_set(name, config.data), features_of) for name in args.ood}
    test = splits["test"]

    def mean_d(discriminator, feature_set, use_labels):
        labels = feature_set.labels if use_labels else feature_set.predictions
        logits = selection.d_logits(discriminator, feature_set.features[:5000], labels[:5000])
        return float(np.mean(1 / (1 + np.exp(-logits))))

    class Diagnostics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            d = self.model.scoring_discriminator
            id_scores = selection.bal_log_score(d, test.features, test.logits)
            record = {"epoch": epoch + 1, "criterion": round(logs.get("selection_criterion", float("nan")), 4)}
            for name, o in oods.items():
                m = metrics.ood_metrics(id_scores, selection.bal_log_score(d, o.features, o.logits))
                record[name] = [round(m["auroc"], 4), round(m["fpr95"], 4)]
            record["mean_D"] = {"train": round(mean_d(d, splits["train"], True), 3),
                                "held_out": round(mean_d(d, splits["holdout"], True), 3),
                                "test": round(mean_d(d, test, True), 3)}
            if oods:
                first = next(iter(oods))
                record["mean_D"][first] = round(mean_d(d, oods[first], False), 3)
            print(json.dumps(record), flush=True)

    selection_data = selection.SelectionData(
        splits["holdout"].features, splits["holdout"].logits,
        {k: (v.features, v.logits) for k, v in synthetic.items()}, config.gan.batch_size)
    train_bal(config.gan, features_of, splits["train"], selection_data=selection_data, seed=args.seed,
              verbose=0, extra_callbacks=[Diagnostics()])


if __name__ == "__main__":
    main()
