#!/usr/bin/env python
"""Stage 2's wall-clock time on a run's cached features (a benchmark, not a test).

Stage 2 as ``train.py`` runs it once the classifier is trained: load the cached penultimate
features, train BAL's GAN for the preset's epochs with checkpoint selection on synthetic OOD,
and keep the selected D. Nothing is written into the run. The target (issue "BAL that leads"):
under 4 minutes at the CPU preset.

    python benchmarks/stage2_time.py --run runs/mnist-cpu-seed0 [--gan-preset NAME] [--set gan.FIELD=VALUE ...] \
        [--out docs/results/stage2_time_mnist-cpu.json]
    python benchmarks/stage2_time.py --render docs/results/stage2_time_mnist-cpu.json  # README line

Run it on an otherwise idle machine: every figure is a wall-clock time.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from tables import provenance

TARGET_SECONDS = 240.0


def stage2_time(run_dir: Path, gan_preset: str | None = None, seed: int = 0, overrides=()) -> dict:
    """Seconds to load the cached features and train + select BAL's GAN on them."""
    import dataclasses

    from bal_tf.config import GAN_PRESETS
    from bal_tf.features import RunFeatures
    from bal_tf.run_dir import RunDir
    from bal_tf.train_bal import train_bal

    run = RunDir(Path(run_dir))
    config = run.load_config()
    if gan_preset:
        config = dataclasses.replace(config, gan=GAN_PRESETS[gan_preset]())
    config = config.with_overrides(list(overrides))  # after the preset, as validate.py's variants
    start = time.perf_counter()
    features = RunFeatures(config, run, progress=False)
    train, selection_data = features.split("train"), features.selection_data()
    loaded = time.perf_counter()
    result = train_bal(config.gan, train, selection_data=selection_data, seed=seed, verbose=0)
    done = time.perf_counter()
    total = done - start
    return {"run": str(run.root), "preset": config.preset, "gan_preset": gan_preset or "the run's own",
            "overrides": list(overrides),
            "features": int(len(train.labels)), "feature_dim": int(train.features.shape[-1]),
            "epochs": config.gan.epochs, "selected_epoch": result.selected_epoch,
            "seconds_load_features": round(loaded - start, 1), "seconds_gan": round(done - loaded, 1),
            "seconds_total": round(total, 1), "target_seconds": TARGET_SECONDS,
            "meets_target": total < TARGET_SECONDS}


def render(result: dict, source: str) -> str:
    """The README's sentence, from a raw result."""
    verdict = "meets" if result["meets_target"] else "misses"
    changed = "".join(f", `{item}`" for item in result.get("overrides", []))
    return (f"Stage 2 on the `{result['preset']}` preset (GAN preset {result['gan_preset']}{changed}, "
            f"{result['features']:,} cached features of dimension {result['feature_dim']}, {result['epochs']} epochs "
            f"with checkpoint selection): **{result['seconds_total']:.0f} s** wall clock "
            f"({result['seconds_load_features']:.0f} s loading features, {result['seconds_gan']:.0f} s GAN), "
            f"which {verdict} the {result['target_seconds'] / 60:.0f}-minute target. Measured by "
            f"`{result['command']}` at commit {result['commit']} on {result['machine']} (raw: `{source}`).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a run whose stage 1 is done (features cached "
                        "or extracted on the way, which is then timed too)")
    parser.add_argument("--render", metavar="JSON", help="print the README sentence for this raw result instead")
    parser.add_argument("--gan-preset", help="time this GAN preset instead of the run's GAN settings")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="gan.FIELD=VALUE",
                        help="change a GAN setting after the preset, e.g. gan.discriminator_units=[512,512] "
                        "(repeatable): the stage-2 time of a validation variant")
    parser.add_argument("--seed", type=int, default=0, help="the GAN's seed (default: 0)")
    parser.add_argument("--out", type=Path, help="also write the result here (JSON, stamped)")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text()), args.render))
        return 0
    if args.run is None:
        parser.error("--run is required (or --render JSON)")
    result = {**stage2_time(args.run, args.gan_preset, args.seed, args.overrides), **provenance(),
              "command": " ".join(["python", "benchmarks/stage2_time.py", *sys.argv[1:]])}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
