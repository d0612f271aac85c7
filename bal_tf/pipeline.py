"""The end-to-end training flow behind ``train.py``: config resolution, then the stages."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bal_tf import config as config_lib
from bal_tf.errors import run_cli
from bal_tf.run_dir import RunDir, open_run_dir


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train a BAL OOD detector: stage 1 trains the classifier (or takes yours "
        "with --classifier); stage 2 trains BAL's conditional GAN on its frozen features "
        "(by default the penultimate layer and every backbone stage's pooled output: "
        "features.depths). Everything lands in one run directory.",
        epilog="Examples:\n"
        "  python train.py --id mnist                      # offline default, CPU preset here\n"
        "  python train.py --id cifar10 --arch densenet --scale paper\n"
        "  python train.py --id mnist --set classifier.epochs=2 --run-dir runs/quick\n"
        "  python train.py --id mnist --classifier my_model.keras --feature-layer penultimate\n"
        "Watch it with: tensorboard --logdir RUN_DIR/logs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--id", default="mnist", help="ID dataset: mnist, fashion_mnist, cifar10, "
                        "cifar100 or svhn (default: mnist)")
    parser.add_argument("--arch", help="resnet18 or cnn (MNIST family; cnn is a plain CNN, not the paper's); "
                        "resnet34 or densenet (RGB sets)")
    parser.add_argument("--scale", default="auto", choices=["auto", "paper", "cpu"],
                        help="paper-faithful preset or the narrower CPU preset; auto = paper "
                        "with a GPU, cpu without (default: auto)")
    parser.add_argument("--preset", help=f"a named preset instead of --id/--arch/--scale: "
                        f"{', '.join(sorted(config_lib.PRESETS))}")
    parser.add_argument("--gan-preset", choices=sorted(config_lib.GAN_PRESETS),
                        help="BAL GAN settings: 'default' (ours: D on whitened features of every backbone stage, "
                        "the paper's negatives plus density-ratio references (a ladder of inflated class Gaussians, "
                        "features shrunk toward the floor), p2 a held-out-calibrated blend of D's ratio and density, "
                        "checkpoint selection on synthetic OOD), 'paper_literal' (the paper as printed: D on the "
                        "penultimate features, +log D negatives, M_c from the training set, no averaging, last "
                        "epoch) or 'paper' (paper_literal with bounded negatives, a debiased average of D and "
                        "synthetic selection); docs/DESIGN.md")
    parser.add_argument("--config", type=Path, help="a config.json to start from (e.g. another run's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set classifier.epochs=3 (repeatable)")
    parser.add_argument("--seed", type=int, help="random seed (default: the preset's, 0)")
    parser.add_argument("--data-dir", help="tfds data dir (default: tfds' own / $TFDS_DATA_DIR)")
    parser.add_argument("--run-dir", type=Path, help="where the run goes (default: runs/PRESET-seedN)")
    parser.add_argument("--classifier", type=Path, help="your own trained Keras classifier "
                        "(.keras); skips stage 1")
    parser.add_argument("--feature-layer", help="name of its penultimate layer (default: the "
                        "input of its last Dense layer)")
    parser.add_argument("--stages", default="all", choices=["all", "classifier"],
                        help="run every stage (default) or stop after the classifier")
    parser.add_argument("--redo-gan", action="store_true",
                        help="train stage 2 again on this run's classifier and cached features (e.g. after a "
                        "change to the GAN's code): the finished stage 2 (detector.keras, bal/, eval/) is removed "
                        "first; a run killed after that resumes with the same command without this flag")
    parser.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker"],
                        help="tf.distribute strategy for both stages: mirrored = all GPUs of this "
                        "host, multiworker = the hosts in TF_CONFIG (run the same command on each; "
                        "the run dir must be on storage they share). Batch sizes are global. "
                        "(default: default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    return parser


def resolve_config(args: argparse.Namespace) -> config_lib.RunConfig:
    """Builds the run config from a preset (or a JSON file) and the command-line overrides."""
    if args.config:
        config = config_lib.RunConfig.from_json(args.config)
        source = f"config file {args.config}"
    else:
        name = args.preset or config_lib.preset_name(args.id, args.arch, args.scale)
        config = config_lib.get_preset(name)
        source = f"preset {name!r}"
        if args.scale == "auto" and not args.preset:
            source += " (no GPU found: CPU preset)" if name.endswith("-cpu") else " (GPU found)"
    if args.gan_preset:
        config = config_lib.apply_gan_preset(config, args.gan_preset)
        source += f", GAN preset {args.gan_preset!r}"
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    config = config.with_overrides(overrides)
    print(f"bal-tf: using {source}" + (f" with overrides {overrides}" if overrides else ""))
    return config


def default_run_dir(config: config_lib.RunConfig) -> Path:
    return Path("runs") / f"{config.preset or config.data.id_dataset}-seed{config.seed}"


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)

    def train():
        config = resolve_config(args)
        from bal_tf import distribute  # imports TensorFlow: not needed for --help

        strategy = distribute.make_strategy(args.strategy)
        root = args.run_dir or default_run_dir(config)
        if distribute.is_chief(strategy):
            if args.redo_gan and RunDir(Path(root)).config_path.is_file():
                remove_stage2(RunDir(Path(root)))  # before the config check: stage 2 may change settings
            run = open_run_dir(root, config)
        else:  # reads what the chief writes, writes nothing
            run = RunDir(Path(root), writable=False)
        print(f"bal-tf: run directory {run.root} (TensorBoard: tensorboard --logdir {run.logs_dir})"
              + (f"; {strategy.num_replicas_in_sync} replicas ({args.strategy})" if args.strategy != "default" else ""))
        run_stages(config, run, args, strategy)

    return run_cli(train, verbose=args.verbose)

def run_stages(config: config_lib.RunConfig, run: RunDir, args: argparse.Namespace, strategy=None) -> None:
    from bal_tf import classifier as classifier_lib

    verbose = 0 if args.quiet else "auto"
    if args.classifier:
        from bal_tf.backbones import find_feature_layer
        from bal_tf.data import dataset_spec
        from bal_tf.errors import InputError

        model = classifier_lib.load_classifier(args.classifier)
        expected = dataset_spec(config.data.id_dataset).image_shape
        if tuple(model.input_shape[1:]) != tuple(expected):
            raise InputError(
                f"Your classifier takes inputs of shape {tuple(model.input_shape[1:])}, but "
                f"{config.data.id_dataset} images are {tuple(expected)} (H, W, C)."
            )
        find_feature_layer(model, args.feature_layer)  # fail now, not after loading the data
        if not run.classifier_path.exists():
            shutil.copyfile(args.classifier, run.classifier_path)
        print(f"stage 1: using your classifier {args.classifier} ({model.count_params():,} params)")
    elif run.classifier_path.exists():
        print(f"stage 1: done already ({run.classifier_path}); skipping")
    else:
        print(f"stage 1: training {config.backbone.arch} x{config.backbone.width_multiplier} on "
              f"{config.data.id_dataset} for {config.classifier.epochs} epochs")
        classifier_lib.train_classifier(config, run, verbose=verbose, strategy=strategy)
        metrics = run.stage1_dir / "metrics.json"
        print(f"stage 1: done. {metrics.read_text().strip()}")
    if args.stages == "classifier":
        return
    if run.detector_path.exists():
        print(f"stage 2: done already ({run.detector_path}); skipping")
        return
    run_bal_stage(config, run, args.feature_layer, verbose=verbose, strategy=strategy)


def remove_stage2(run: RunDir) -> None:
    """What stage 2 and evaluation wrote, removed so that stage 2 runs again; the detector goes
    first (its presence means stage 2 is done), so a kill part-way leaves a run that resumes."""
    if run.detector_path.exists():
        run.detector_path.unlink()
    for path in (run.bal_dir, run.eval_dir, run.logs_dir / "stage2"):
        shutil.rmtree(path, ignore_errors=True)
    print("stage 2: removed the finished stage 2 (--redo-gan); training it again")


def run_bal_stage(config: config_lib.RunConfig, run: RunDir, feature_layer: str | None = None,
                  verbose="auto", strategy=None):
    """Stage 2: features (cached), the GAN with checkpoint selection, the detector."""
    from bal_tf import distribute
    from bal_tf.classifier import save_keras
    from bal_tf.detector import BALDetector
    from bal_tf.features import RunFeatures
    from bal_tf.train_bal import train_bal

    print(f"stage 2: extracting the classifier's features (depths: {config.features.depths}; cached in features/)")
    if not run.writable:
        distribute.barrier(strategy)  # let the chief write the feature cache first
    features = RunFeatures(config, run, feature_layer, progress=verbose != 0)
    train, selection_data = features.split("train"), features.selection_data()
    if run.writable:
        distribute.barrier(strategy)
    print(f"stage 2: training BAL's GAN on {len(train)} features of dimension "
          f"{train.features.shape[1]} for {config.gan.epochs} epochs")
    result = train_bal(
        config.gan, train, selection_data=selection_data, seed=config.seed,
        verbose=verbose, log_dir=str(run.logs_dir / "stage2"), checkpoint_dir=run.bal_dir / "resume",
        strategy=strategy)
    if not run.writable:
        print("stage 2: done on this worker (the chief writes the results)")
        return
    for name, model in (("generator_selected", result.gan.generator),
                        ("discriminator_selected", result.discriminator),
                        ("discriminator_last", result.last_discriminator)):
        save_keras(model, run.bal_dir / f"{name}.keras")
    from bal_tf.provenance import source_commit

    run.write_json("bal/history.json", {"selected_epoch": result.selected_epoch, "epochs": result.history,
                                        "diverged": result.diverged, "commit": source_commit()})
    if result.diverged:
        print(f"stage 2: warning: {result.diverged}. Training stopped; the checkpoints kept are "
              f"from the last finished epoch ({len(result.history)}) or earlier.")
    detector = BALDetector.from_parts(features.feature_model, result.discriminator)
    detector.save(run.detector_path)  # last: its presence means stage 2 is done
    shutil.rmtree(run.bal_dir / "resume", ignore_errors=True)
    best = result.history[result.selected_epoch - 1].get("selection_criterion")
    print(f"stage 2: done. selected epoch {result.selected_epoch} of {config.gan.epochs}"
          + (f" (selection criterion {best:.4f})" if best is not None else "")
          + f"; detector saved to {run.detector_path}")
