#!/usr/bin/env python
"""Evaluate a run's OOD detection. See `python evaluate.py --help`."""

import argparse
import sys

from bal_tf.errors import BalError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Score the ID test split and OOD sets with BAL (p1*p2, selected and last "
        "checkpoint, p2 alone) and max-softmax on the same frozen backbone. Metrics follow the "
        "paper: ID is the positive class. Results go to RUN_DIR/eval/results.{md,csv,json}.",
    )
    parser.add_argument("--run", required=True, help="a run directory made by train.py")
    parser.add_argument("--ood", action="append", default=[], metavar="NAME",
                        help="OOD set: fashion_mnist, mnist, uniform_noise, gaussian_noise, "
                        "cifar10, svhn, lsun, omniglot, folder:PATH (repeatable; several add a "
                        "mixture row)")
    parser.add_argument("--ood-dir", action="append", default=[], metavar="PATH",
                        help="a folder of OOD images (same as --ood folder:PATH)")
    parser.add_argument("--limit", type=int, help="use at most this many images per OOD set")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    from bal_tf import evaluation

    names = args.ood + [f"folder:{p}" for p in args.ood_dir]
    try:
        evaluation.check_ood_names(names)
        results = evaluation.evaluate_run(args.run, names, progress=not args.quiet, limit=args.limit)
    except BalError as exc:
        print(f"error: {exc}")
        return 2
    out = evaluation.write_results(args.run, results)
    print(evaluation.to_markdown(results))
    print(f"written to {out}/results.{{md,csv,json}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
