#!/usr/bin/env python
"""D ensembles over epochs, on the validation protocol (prints validation metrics only).

Trains BAL's GAN as ``benchmarks/validate.py`` does, keeps D's logits on the validation data at
the end of every epoch, and scores p1 * sigmoid(mean logit) for D's averaged over several epochs
(``bal_tf.validation.ENSEMBLE_RULES``: the top K by checkpoint selection's criterion, the last
K, all) or for the epochs another selection criterion would keep (``top1:default+near``: the
default families plus the near-OOD proxies of ``bal_tf.selection``; one training serves every
criterion, since selection only reads D). Appends records in validate.py's format (method ``bal``, variant ``VARIANT | D
ensemble: RULE``), so ``python benchmarks/validate.py --summarize`` ranks them beside the rest.

    python benchmarks/epoch_ensembles.py --run /work/runs_val/mnist-4to9-cpu-seed0 --seeds 0 1 2 \\
        --out docs/results/validation/mnist-4to9-cpu-seed0.jsonl
"""

import argparse
import dataclasses
import time
from pathlib import Path

from tables import split_variant
from validate import open_run, report, with_variant


def ensemble_records(run_dir: Path, variant: str, seeds: list[int], rules) -> list[dict]:
    import keras

    from bal_tf import validation
    from bal_tf.features import RunFeatures
    from bal_tf.train_bal import train_bal

    run, base, features, sets, train, stamp = open_run(run_dir, None, "benchmarks/epoch_ensembles.py")
    overrides = split_variant(variant)
    config = with_variant(base, overrides)
    # Families a rule reads are scored every epoch too. Appended after the configured ones, and the
    # image families draw no random numbers, so the training and the configured criterion are
    # unchanged; only which epochs a rule picks depends on them.
    extra = [f for rule in rules for f in validation.rule_families(rule) if f not in config.gan.synthetic_families]
    if extra:
        config = dataclasses.replace(config, gan=dataclasses.replace(
            config.gan, synthetic_families=list(config.gan.synthetic_families) + list(dict.fromkeys(extra))))
    selection_data = RunFeatures(config, run, progress=False).selection_data()

    class EveryEpoch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.d_logits = []

        def on_epoch_end(self, epoch, logs=None):
            self.d_logits.append(validation.validation_d_logits(self.model.scoring_discriminator, sets))

    records = []
    for seed in seeds:
        every_epoch, start = EveryEpoch(), time.time()
        result = train_bal(config.gan, train, selection_data=selection_data, seed=seed, verbose=0,
                           extra_callbacks=[every_epoch])
        print(f"epoch_ensembles: {run.root.name} [{variant}] GAN seed {seed}: selected epoch "
              f"{result.selected_epoch}, {time.time() - start:.0f} s", flush=True)
        for rule in rules:
            members = validation.ensemble_members(result.history, rule)
            records.append({"run": str(run.root), "method": "bal", "variant": f"{variant} | D ensemble: {rule}",
                            "overrides": overrides, "seed": seed, "ensemble_epochs": members,
                            "selected_epoch": result.selected_epoch, "seconds": round(time.time() - start, 1),
                            "validation": validation.ensemble_metrics(every_epoch.d_logits, members, sets), **stamp})
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", type=Path, required=True, help="a run with stage 1 done")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="GAN seeds")
    parser.add_argument("--variant", default="gan_preset=default",
                        help="the GAN to train: 'default' or gan.field=value overrides (as validate.py's --variant)")
    parser.add_argument("--rule", action="append", help="ensemble rules (default: all of "
                        "bal_tf.validation.ENSEMBLE_RULES): topK, lastK or all; topK:FAMILY+... ranks epochs by "
                        "those selection families (or groups: default, image, feature, near)")
    parser.add_argument("--out", type=Path, help="JSON lines output (appended)")
    args = parser.parse_args(argv)
    from bal_tf.console import quiet_tensorflow
    from bal_tf.validation import ENSEMBLE_RULES

    quiet_tensorflow()
    for run in args.run:
        report(run, ensemble_records(run, args.variant, args.seeds, args.rule or list(ENSEMBLE_RULES)), args.out)


if __name__ == "__main__":
    main()
