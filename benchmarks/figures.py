#!/usr/bin/env python
"""The paper's figures as PNGs: the 2-D toy (Figures 1b, 1c and 5) and a classifier with a
2-neuron penultimate layer on MNIST (Figures 1a and 4).

    python benchmarks/figures.py --toy --out docs/figures
    python train.py --preset mnist-cpu --set backbone.feature_dim=2 --set features.depths=penultimate \
        --run-dir runs/mnist-cpu-dim2-seed0
    python benchmarks/figures.py --mnist-2d runs/mnist-cpu-dim2-seed0 --out docs/figures
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np



def toy_figures(out: Path, seed: int) -> list[Path]:
    """Max-softmax vs BAL confidence over the plane, with BAL's trivial and hard OOD samples."""
    import tensorflow as tf

    from bal_tf import baselines, plots, scoring, toy

    result = toy.run_toy(seed=seed)
    points, labels = toy.two_gaussians(2000, seed + 2000)
    classifier = result.classifier
    logits_of = lambda x: np.asarray(classifier(x), np.float32)  # noqa: E731
    msp = lambda x: np.exp(baselines.log_max_softmax(logits_of(x)))  # noqa: E731
    bal = lambda x: np.exp(scoring.log_score(result.discriminator, x, logits_of(x)))  # noqa: E731
    samples = negative_samples(result.gan, tf.constant(points[:256]), tf.constant(labels[:256], tf.int32))
    far = toy.far_uniform_points(500, seed + 3000)
    title = f"(AUROC vs far points: max-softmax {result.auroc_max_softmax:.3f}, BAL {result.auroc_bal:.3f})"
    return [
        plots.confidence_map(msp, points, out / "toy_max_softmax.png", f"Fig. 1b: max-softmax p1\n{title}",
                             ood_features=far),
        plots.confidence_map(bal, points, out / "toy_bal.png", f"Fig. 1c: BAL p1 * p2\n{title}", ood_features=far),
        plots.confidence_map(bal, points, out / "toy_bal_samples.png",
                             f"Fig. 5: BAL p1 * p2 with its OOD samples (epoch {result.selected_epoch})",
                             extra_points=samples),
    ]


NEGATIVE_LABELS = {"trivial": "trivial (REM)", "hard": "hard G(z', c) (RSM)", "ladder": "Gaussian ladder (ours)",
                   "floor": "shrunk toward the floor (ours)"}


def negative_samples(gan, features, labels) -> dict[str, np.ndarray]:
    """One draw of each negative source the GAN trains D against, for a batch of real features
    (the shuffled pairs are real features with wrong labels: nothing new to draw)."""
    from bal_tf import negatives

    out = {}
    for name in gan.sources:
        if name == "shuffled":
            continue
        if name == "hard":
            drawn = negatives.hard(gan, *negatives.generated_latents(gan, int(features.shape[0])))
        else:
            drawn = getattr(negatives, name)(gan, features, labels)
        out[NEGATIVE_LABELS[name]] = np.asarray(drawn.features)
    return out


def mnist_2d_figures(run_dir: Path, out: Path) -> list[Path]:
    """Penultimate 2-d features of MNIST test images (coloured by class) over the confidence of
    max-softmax and of BAL, each computed on the 2-d feature plane."""
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bal_tf import baselines, scoring
    from bal_tf.evaluation import head_weights, load_discriminator
    from bal_tf.features import RunFeatures
    from bal_tf.io import atomic_path
    from bal_tf.run_dir import RunDir

    run = RunDir(run_dir)
    # the test split's features: cached by evaluate.py, else extracted now (train.py caches train only)
    test = RunFeatures(run.load_config(), run, progress=False).split("test")
    if test.features.shape[1] != 2:  # D's input: h(x), and with features.depths=stages the stages below it
        raise SystemExit(f"{run_dir}: its D reads {test.features.shape[1]}-d features; the figures draw D over a 2-d "
                         "h(x): train it with backbone.feature_dim=2 and features.depths=penultimate")
    discriminator = load_discriminator(run.bal_dir / "discriminator_selected.keras")
    kernel, bias = head_weights(keras.saving.load_model(run.classifier_path, safe_mode=True, compile=False))
    logits_of = lambda f: f @ kernel + bias  # noqa: E731  (the head on the feature plane)
    scores = {"Fig. 1a / 4: max-softmax p1": lambda f: np.exp(baselines.log_max_softmax(logits_of(f))),
              "BAL p1 * p2": lambda f: np.exp(scoring.log_score(discriminator, f, logits_of(f)))}
    f = test.features
    low, high = np.percentile(f, 0.5, 0), np.percentile(f, 99.5, 0)
    pad = 0.3 * (high - low)
    xs, ys = (np.linspace(low[i] - pad[i], high[i] + pad[i], 250) for i in (0, 1))
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    paths = []
    for (title, score), name in zip(scores.items(), ("mnist2d_max_softmax.png", "mnist2d_bal.png")):
        fig, ax = plt.subplots(figsize=(6, 5.2))
        image = ax.contourf(xs, ys, score(grid).reshape(len(ys), len(xs)), levels=30, cmap="viridis")
        fig.colorbar(image, ax=ax, label="score (higher = more ID)")
        sample = np.random.default_rng(0).permutation(len(f))[:3000]
        ax.scatter(*f[sample].T, c=test.labels[sample], cmap="tab10", s=2, alpha=0.6)
        ax.set(title=f"MNIST, 2-neuron penultimate layer: {title}", xlabel="feature 1", ylabel="feature 2",
               xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]))
        fig.tight_layout()
        path = out / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toy", action="store_true")
    parser.add_argument("--mnist-2d", type=Path, help="a finished run with backbone.feature_dim=2 and "
                        "features.depths=penultimate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = []
    if args.toy:
        paths += toy_figures(args.out, args.seed)
    if args.mnist_2d:
        paths += mnist_2d_figures(args.mnist_2d, args.out)
    for path in paths:
        print(path)
    # the stamp reproduce.py --status reads: which code drew which figures (PNG files carry none)
    from tables import provenance

    stamp_path = args.out / "figures.json"
    stamps = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
    stamp = {**provenance(), "command": " ".join(["python", "benchmarks/figures.py", *sys.argv[1:]])}
    stamps.update({path.name: stamp for path in paths})
    stamp_path.write_text(json.dumps(stamps, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
