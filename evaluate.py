#!/usr/bin/env python
"""Evaluate a run's OOD detection. See `python evaluate.py --help`."""

import argparse
import sys
from pathlib import Path

from bal_tf.errors import run_cli


def main(argv=None) -> int:
    from bal_tf.protocols import PROTOCOLS

    parser = argparse.ArgumentParser(
        description="Score the ID test split and OOD sets with BAL (p1*p2 at the selected and the "
        "last checkpoint, p2 alone) and the baselines (max-softmax, max-logit, energy, ODIN, "
        "Mahalanobis, KNN, ViM, Generalized ODIN; with --trained-baselines also GCPL and AEC, which "
        "need their own training) on the same frozen backbone. Metrics follow the "
        "paper: ID is the positive class. Writes RUN/eval/results.{md,csv,json}, scores.npz and "
        "plots (ROC, histograms; confidence maps for a 2-d feature layer, BAL's when D reads h(x) alone: "
        "features.depths=penultimate).",
        epilog="Protocols: " + "; ".join(f"{k}: {v[0]} vs {'+'.join(v[1])}" for k, v in PROTOCOLS.items()),
    )
    parser.add_argument("--run", required=True, help="a run directory made by train.py")
    parser.add_argument("--ood", action="append", default=[], metavar="NAME",
                        help="OOD set: fashion_mnist, mnist, uniform_noise, gaussian_noise, cifar10, "
                        "svhn, lsun, omniglot, folder:PATH (repeatable; several add a mixture row)")
    parser.add_argument("--ood-dir", action="append", default=[], metavar="PATH",
                        help="a folder of OOD images (same as --ood folder:PATH)")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), help="the paper's OOD sets for an ID set")
    parser.add_argument("--limit", type=int, help="use at most this many images per OOD set")
    parser.add_argument("--no-odin", action="store_true", help="skip ODIN (it needs input gradients)")
    parser.add_argument("--trained-baselines", action="store_true",
                        help="also GCPL and AEC, the paper's baselines that need their own training: "
                        "trained once per run into RUN/baselines/ (about as long as stage 1)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    args = parser.parse_args(argv)
    names = args.ood + [f"folder:{p}" for p in args.ood_dir]

    def evaluate():
        from bal_tf import evaluation
        from bal_tf.run_dir import RunDir

        ood_names = names
        if args.protocol:
            id_name, protocol_oods = PROTOCOLS[args.protocol]
            run_id = RunDir(Path(args.run)).load_config().data.id_dataset
            if run_id != id_name:
                raise evaluation.InputError(f"Protocol {args.protocol} is for ID {id_name}; this run's ID is {run_id}.")
            ood_names = protocol_oods + names
        results = evaluation.evaluate_run(args.run, ood_names, progress=not args.quiet, limit=args.limit,
                                          odin=not args.no_odin, trained_baselines=args.trained_baselines)
        out = evaluation.write_results(args.run, results)
        if not args.no_plots:
            evaluation.make_plots(args.run, results)
        print(evaluation.to_markdown(results))
        print(f"written to {out}/ (results.md, results.csv, results.json, scores.npz"
              + ("" if args.no_plots else ", *.png") + ")")
        print("time per part: " + ", ".join(f"{part} {s:.0f} s" for part, s in results["seconds"].items()))

    return run_cli(evaluate, verbose=args.verbose)

if __name__ == "__main__":
    sys.exit(main())
