"""Plots for evaluate.py (PNG files, also sent to TensorBoard): ROC curves per method,
ID vs OOD score histograms, and for a 2-d feature layer the confidence map over feature space
(the paper's Figure 1a)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402


def roc_curves(scores: dict, ood_name: str, path: Path) -> Path:
    """One ROC curve per method for ID test vs one OOD set (ID positive)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for method, id_scores in scores["id"].items():
        ood_scores = scores[ood_name][method]
        labels = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
        fpr, tpr, _ = skm.roc_curve(labels, np.r_[id_scores, ood_scores])
        ax.plot(fpr, tpr, label=f"{method} ({100 * skm.auc(fpr, tpr):.1f})", lw=2 if method == "bal" else 1)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="FPR (OOD accepted)", ylabel="TPR (ID accepted)", title=f"ROC, ID vs {ood_name}")
    ax.legend(fontsize=7, loc="lower right", title="method (AUROC %)", title_fontsize=7)
    return _save(fig, path)


def score_histograms(scores: dict, ood_name: str, path: Path) -> Path:
    """Histograms of ID and OOD scores, one panel per method."""
    methods = list(scores["id"])
    cols = 4
    rows = int(np.ceil(len(methods) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, method in zip(axes.ravel(), methods):
        id_scores, ood_scores = scores["id"][method], scores[ood_name][method]
        low, high = np.percentile(np.r_[id_scores, ood_scores], [0.5, 99.5])
        bins = np.linspace(low, high if high > low else low + 1, 50)
        # One polygon per histogram ("stepfilled"), not 50 bar patches: ~10x faster to draw and lay out.
        ax.hist(np.clip(id_scores, low, high), bins, alpha=0.6, density=True, label="ID", histtype="stepfilled")
        ax.hist(np.clip(ood_scores, low, high), bins, alpha=0.6, density=True, label=ood_name,
                histtype="stepfilled")
        ax.set_title(method, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Scores (higher = more ID): ID test vs {ood_name}", fontsize=10)
    return _save(fig, path)


def confidence_map(score_fn, id_features: np.ndarray, path: Path, title: str,
                   ood_features: np.ndarray | None = None, extra_points: dict | None = None) -> Path:
    """Score over a grid of a 2-d feature space, with the ID features drawn on top (Fig. 1a)."""
    points = np.concatenate([id_features, *([] if ood_features is None else [ood_features]),
                             *(np.asarray(e)[:1000] for e in (extra_points or {}).values())])
    low, high = points.min(0), points.max(0)
    pad = 0.15 * (high - low)
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], 200)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], 200)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    values = np.asarray(score_fn(grid)).reshape(len(ys), len(xs))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    image = ax.contourf(xs, ys, values, levels=30, cmap="viridis")
    fig.colorbar(image, ax=ax, label="score (higher = more ID)")
    ax.scatter(*id_features[:2000].T, s=1, c="white", alpha=0.4, label="ID")
    if ood_features is not None:
        ax.scatter(*ood_features[:2000].T, s=1, c="red", alpha=0.4, label="OOD")
    for label, extra in (extra_points or {}).items():
        ax.scatter(*extra[:1000].T, s=2, alpha=0.5, label=label)
    ax.legend(fontsize=7, markerscale=5)
    ax.set(title=title, xlabel="feature 1", ylabel="feature 2")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    from bal_tf.io import atomic_path

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def log_images_to_tensorboard(paths: list[Path], log_dir: Path) -> None:
    """Sends PNG files to TensorBoard's Images tab."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for step, path in enumerate(paths):
            image = tf.image.decode_png(tf.io.read_file(str(path)), channels=4)[None]
            tf.summary.image(Path(path).stem, image, step=0)
    writer.flush()
