#!/usr/bin/env python
"""Export a trained run for TF Serving and TFLite. See `python export/export_model.py --help`."""

import argparse
import json
import sys
from pathlib import Path

# Run from any checkout (`python export/export_model.py`): this checkout's bal_tf, not another one
# installed in the same environment.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Turn a run into one graph, uint8 images -> {class, p1, p2, score, is_ood, threshold}: "
        "a SavedModel (serving_default), the TF Serving layout <out>/serving/<name>/<version>/ with "
        "models.config, and TFLite float32 / dynamic-range / full-int8 models. The threshold accepts 95% of "
        "held-out ID images. Prints and writes export_info.json with parity figures.")
    parser.add_argument("--run", required=True, help="a run directory with detector.keras")
    parser.add_argument("--out", help="output folder (default: RUN/export)")
    parser.add_argument("--name", default="bal", help="model name for TF Serving (default: bal)")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--no-tflite", action="store_true")
    parser.add_argument("--parity-ood", help="also report AUROC of Keras vs each TFLite model against this OOD "
                        "set (ID side: the ID test split), or against a validation family made from held-out ID "
                        "images, no test data involved: pixel_permutation, patch_shuffle, noise_blobs, rotate90, "
                        "invert")
    parser.add_argument("--parity-ood-images", type=int, default=2000,
                        help="images of each side (ID, OOD) for that AUROC (default: 2000)")
    parser.add_argument("--xla", choices=["none", "head", "all"], default="none",
                        help="XLA in the SavedModel: 'head' compiles BAL's part after the backbone into one "
                        "kernel, 'all' the whole graph (TF Serving then needs --xla_cpu_compilation_enabled "
                        "on CPU). Default: none")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    args = parser.parse_args(argv)
    from bal_tf.errors import run_cli

    def export():
        from bal_tf.export import ExportOptions, export_run  # after run_cli quiets TensorFlow

        options = ExportOptions(model_name=args.name, version=args.version, tflite=not args.no_tflite,
                                parity_ood=args.parity_ood, parity_ood_images=args.parity_ood_images,
                                jit_compile=args.xla)
        report = export_run(args.run, args.out, options)
        print(json.dumps(report, indent=2))

    return run_cli(export, verbose=args.verbose)

if __name__ == "__main__":
    sys.exit(main())
