"""Evaluate a run: the ID test split vs OOD sets, BAL beside the baselines, same frozen backbone.

Feature-based scores come from cached features (``RUN/features/``): evaluating more OOD sets
costs one feature extraction per image set. ODIN needs input gradients, so it runs on images.
Real OOD data only ever enters here, never training or selection.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import keras

import numpy as np
import tensorflow as tf

from bal_tf import baselines, scoring, selection
import bal_tf.discriminator  # noqa: F401  (registers the layers of saved discriminators)
import bal_tf.density_ratio  # noqa: F401  (and those of a D scored with the density target)
from bal_tf import metrics as metrics_lib
from bal_tf.errors import InputError
from bal_tf.features import ood_cache_name
from bal_tf.protocols import PROTOCOLS  # noqa: F401  (evaluation.PROTOCOLS)
from bal_tf.run_dir import RunDir

# ODIN's setting for the MNIST family, as in the paper's Table 4 (T = 10, eps = 5e-4).
ODIN_MNIST_FAMILY = (10.0, 5e-4)
ODIN_TEMPERATURES = (1.0, 10.0, 100.0, 1000.0)
ODIN_EPSILONS = (0.0, 5e-4, 1e-3, 2e-3, 5e-3)

def load_discriminator(path: Path):
    """A saved D, or ``None`` when the run has none (no stage 2)."""
    if not path.is_file():
        return None
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises zip / h5 / JSON errors, some misleadingly worded
        raise InputError(f"Could not load the discriminator {path} (damaged or truncated?): "
                         f"{type(exc).__name__}: {exc}") from exc


def head_weights(classifier: keras.Model):
    """Kernel and bias of the classifier's last Dense layer (for ViM)."""
    head = [layer for layer in classifier.layers if isinstance(layer, keras.layers.Dense)][-1]
    bias = head.bias.numpy() if head.use_bias else np.zeros(head.units, np.float32)
    return head.kernel.numpy(), bias


class MethodScorer:
    """Fits every detector on the ID training features once; scores any feature set.

    ``train`` and the sets scored hold every depth (``RunFeatures.split(..., depths="stages")``):
    the baselines read the penultimate block, BAL the run's ``depths``, and, where the backbone has
    depths below the penultimate one and ``holdout`` is given, ``mahalanobis_depths`` and
    ``knn_depths`` read them all."""

    def __init__(self, run: RunDir, train, classifier, seed: int = 0, depths: str = "penultimate", holdout=None):
        num_classes = train.logits.shape[1]
        self.depths = depths
        self.discriminators = {
            "bal": load_discriminator(run.bal_dir / "discriminator_selected.keras"),
            "bal_last": load_discriminator(run.bal_dir / "discriminator_last.keras"),
        }
        self.depth_mahalanobis = self.depth_knn = None
        if train.layout is not None and len(train.layout) > 1 and holdout is not None:
            self.depth_mahalanobis = baselines.DepthMahalanobis.fit(train.blocks(), train.labels, num_classes,
                                                                    holdout.blocks())
            self.depth_knn = baselines.KNN.fit(baselines.concatenated_unit_blocks(train.blocks()))
        train = train.at("penultimate")
        self.mahalanobis = baselines.Mahalanobis.fit(train.features, train.labels, num_classes)
        self.knn = baselines.KNN.fit(train.features)
        kernel, bias = head_weights(classifier)
        self.vim = None
        if kernel.shape[0] == train.features.shape[1]:
            self.vim = baselines.ViM.fit(train.features, kernel, bias)
        self.generalized_odin = baselines.fit_generalized_odin(train.features, train.labels, num_classes, seed=seed)

    @property
    def has_bal(self) -> bool:
        return self.discriminators["bal"] is not None

    def scores(self, feature_set) -> dict[str, np.ndarray]:
        at_depths = feature_set.at(self.depths)
        f, logits = at_depths.features, at_depths.logits
        out = {}
        if self.discriminators["bal"] is not None:
            bal = scoring.score_features(self.discriminators["bal"], f, logits)
            out["bal"], out["bal_p2_only"] = bal["log_score"], bal["d_logit"]
        if self.discriminators["bal_last"] is not None:
            out["bal_last"] = scoring.log_score(self.discriminators["bal_last"], f, logits)
        return {**out, **self.baseline_scores(feature_set)}

    def baseline_scores(self, feature_set) -> dict[str, np.ndarray]:
        """Every feature-based baseline's scores (ODIN, on images, is scored apart)."""
        blocks = feature_set.blocks()
        feature_set = feature_set.at("penultimate")
        f, logits = feature_set.features, feature_set.logits
        out = {}
        out["max_softmax"] = baselines.log_max_softmax(logits)
        out["max_logit"] = baselines.max_logit(logits)
        out["energy"] = baselines.energy(logits)
        out["mahalanobis"] = self.mahalanobis.score(f)
        out["knn"] = self.knn.score(f)
        if self.vim is not None:
            out["vim"] = self.vim.score(f)
        out["generalized_odin"] = self.generalized_odin(f)
        if self.depth_mahalanobis is not None:
            out["mahalanobis_depths"] = self.depth_mahalanobis.score(blocks)
            out["knn_depths"] = self.depth_knn.score(baselines.concatenated_unit_blocks(blocks))
        return out


# The three image families of checkpoint selection's default (the near-OOD proxies of
# bal_tf.selection are options of BAL's selection, not of ODIN's).
ODIN_SELECTION_FAMILIES = ("pixel_permutation", "patch_shuffle", "noise_blobs")


def choose_odin_parameters(logits_model, holdout_images: np.ndarray, seed: int = 0):
    """ODIN's (T, eps) without real OOD data: the pair with the best mean AUROC of held-out ID
    images vs the synthetic image families of checkpoint selection (pixel permutation, patch
    shuffle, blurred noise)."""
    id_ds = tf.data.Dataset.from_tensor_slices(holdout_images)
    synthetic = {family: tf.data.Dataset.from_tensor_slices(selection.synthetic_images(family, holdout_images, seed))
                 for family in ODIN_SELECTION_FAMILIES}
    best, best_auroc = None, -1.0
    for temperature in ODIN_TEMPERATURES:
        for epsilon in ODIN_EPSILONS:
            id_scores = baselines.odin_scores(logits_model, id_ds, temperature, epsilon)
            auroc = np.mean([metrics_lib.auroc(id_scores, baselines.odin_scores(logits_model, ds, temperature, epsilon))
                             for ds in synthetic.values()])
            if auroc > best_auroc:
                best, best_auroc = (temperature, epsilon), auroc
    return best


def evaluate_run(run_dir: str | Path, ood_names: list[str], progress: bool = True,
                 limit: int | None = None, odin: bool = True, trained_baselines: bool = False) -> dict:
    """Scores the ID test split and each OOD set with every method; returns a results dict.

    ``trained_baselines``: also GCPL and AEC, which need their own training (done once per run
    into ``RUN/baselines/``, about as long as stage 1; ``bal_tf.trained_baselines``).

    Raises:
        DatasetNotAvailableError: an OOD set is not present (checked before any scoring).
    """
    from bal_tf import data as data_lib
    from bal_tf.features import RunFeatures

    if not ood_names:
        raise InputError("Give at least one OOD set (e.g. --ood fashion_mnist or --protocol offline-mnist).")
    run = RunDir(Path(run_dir))
    config = run.load_config()
    load_ood = {name: (lambda name=name: data_lib.load_ood_set(name, config.data, limit=limit, seed=config.seed))
                for name in ood_names}
    for make in load_ood.values():
        make()  # fail at once on a missing OOD set, before minutes of scoring
    seconds = {}  # where evaluate's time goes, in the results (issue 36's profile)
    clock = time.perf_counter()

    def lap(part):
        nonlocal clock
        now = time.perf_counter()
        seconds[part] = round(seconds.get(part, 0.0) + now - clock, 2)
        clock = now

    features = RunFeatures(config, run, progress=progress)
    features_of = features.feature_model
    train = features.split("train", depths="stages")
    lap("features: training split")
    scorer = MethodScorer(run, train, features.classifier, seed=config.seed, depths=config.features.depths,
                          holdout=features.split("holdout", depths="stages") if config.data.holdout_percent else None)
    lap("fitting the feature-based methods")

    odin_parameters = None
    logits_model = keras.Model(features_of.inputs, features_of.outputs[1])
    if odin:
        if config.data.id_dataset in ("mnist", "fashion_mnist"):
            odin_parameters = ODIN_MNIST_FAMILY
        else:
            odin_parameters = choose_odin_parameters(
                logits_model, features.holdout_images(selection.SYNTHETIC_IMAGES_PER_FAMILY), config.seed)
        lap("ODIN (input gradients)")
    # ODIN's scores come from the feature-extraction pass of a set not cached yet (one forward
    # pass for both); for a cached set, ODIN runs on its images here.
    image_sets = {"id": (lambda: features.id_data.test, lambda odin_: features.split("test", odin_, "stages"))}
    image_sets.update({name: (make, lambda odin_, name=name, make=make: features.ood(name, make, odin_, "stages"))
                       for name, make in load_ood.items()})
    scores = {}
    for name, (make_images, features_with) in image_sets.items():
        feature_set, odin_scores = features_with(odin_parameters) if odin else (features_with(None), None)
        lap("features: test and OOD sets" + (" (with ODIN)" if odin else ""))
        if name == "id":
            test = feature_set
        scores[name] = scorer.scores(feature_set)
        lap("scoring the feature-based methods")
        if odin:
            scores[name]["odin"] = (odin_scores if odin_scores is not None else
                                    baselines.odin_scores(logits_model, make_images().map(lambda x, y: x),
                                                          *odin_parameters))
            lap("ODIN (input gradients)")

    if trained_baselines:
        from bal_tf import trained_baselines as trained

        models = trained.train_trained_baselines(config, run.root, features.id_data, verbose="auto" if progress else 0)
        image_sets = {"id": features.id_data.test.map(lambda x, y: x),
                      **{name: make().map(lambda x, y: x) for name, make in load_ood.items()}}
        for name, images in image_sets.items():
            scores[name]["gcpl"] = trained.gcpl_scores(models["gcpl"], images)
            scores[name]["aec"] = -trained.reconstruction_errors(models["aec"], images)
        lap("trained baselines (GCPL, AEC)")

    if len(ood_names) > 1:
        mixture = "+".join(ood_names)
        scores[mixture] = {m: np.concatenate([scores[n][m] for n in ood_names]) for m in scores["id"]}
    rows = []
    for ood_name, per_method in scores.items():
        if ood_name == "id":
            continue
        for method, ood_scores in per_method.items():
            try:
                values = metrics_lib.ood_metrics(scores["id"][method], ood_scores)
            except InputError as exc:
                raise InputError(f"Method {method!r}, ID test vs {ood_name}: {exc}") from exc
            rows.append({"method": method, "ood": ood_name, **values})
    lap("metrics")
    from bal_tf.provenance import stamp

    return {"run": str(run.root), "id": config.data.id_dataset, **stamp(),
            "classification_accuracy": float(np.mean(test.predictions == test.labels)),
            "convention": metrics_lib.CONVENTION, "bal_missing": not scorer.has_bal,
            "odin_parameters": odin_parameters, "seconds": seconds, "rows": rows, "scores": scores}


COLUMNS = ["method", "ood", "auroc", "fpr95", "detection_error", "aupr_in", "aupr_out", "fpr95_ood_positive"]


def to_markdown(results: dict) -> str:
    lines = [f"ID: {results['id']} (test split), classification accuracy "
             f"{100 * results['classification_accuracy']:.2f}%. Convention: {results['convention']}.",
             "Values in %; fpr95_ood_positive is OpenOOD / pytorch-ood / oodeel's FPR95 (OOD positive).", ""]
    if results.get("odin_parameters"):
        lines.insert(1, "ODIN: T = {}, eps = {}.".format(*results["odin_parameters"]))
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in results["rows"]:
        cells = [row["method"], row["ood"]] + [f"{100 * row[c]:.2f}" for c in COLUMNS[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    if results["bal_missing"]:
        lines.append("\nBAL is missing from this run (no stage 2 yet): only the baselines are shown.")
    return "\n".join(lines) + "\n"


def write_results(run_dir: str | Path, results: dict) -> Path:
    """Writes results.{json,md,csv} (scores themselves go to scores.npz) into RUN/eval/."""
    from bal_tf.io import atomic_path, atomic_write_text

    out = Path(run_dir) / "eval"
    summary = {k: v for k, v in results.items() if k != "scores"}
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "results.md", to_markdown(results))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in results["rows"]:
        writer.writerow({c: row[c] for c in COLUMNS})
    atomic_write_text(out / "results.csv", buffer.getvalue())
    with atomic_path(out / "scores.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{f"{ood}/{method}": s for ood, per in results["scores"].items()
                                for method, s in per.items()})
    return out


def make_plots(run_dir: str | Path, results: dict) -> list[Path]:
    """ROC curves and score histograms per OOD set, and the confidence map of a 2-d feature
    layer (Fig. 1a); written to RUN/eval/ and sent to TensorBoard (RUN/logs/eval)."""
    from bal_tf import plots
    from bal_tf import classifier as classifier_lib
    from bal_tf.features import FeatureSet

    run = RunDir(Path(run_dir))
    scores = results["scores"]
    paths = []
    for ood_name in scores:
        if ood_name == "id":
            continue
        safe = ood_cache_name(ood_name)[4:]
        paths.append(plots.roc_curves(scores, ood_name, run.eval_dir / f"roc_{safe}.png"))
        paths.append(plots.score_histograms(scores, ood_name, run.eval_dir / f"hist_{safe}.png"))
    test = FeatureSet.load(run.features_dir / "test.npz").at("penultimate")
    discriminator = load_discriminator(run.bal_dir / "discriminator_selected.keras")
    if test.features.shape[1] == 2:
        kernel, bias = head_weights(classifier_lib.load_classifier(run.classifier_path))
        first_ood = next((n for n in scores if n not in ("id",) and "+" not in n), None)
        ood = (FeatureSet.load(run.features_dir / f"{ood_cache_name(first_ood)}.npz").at("penultimate")
               if first_ood else None)
        maps = {"max_softmax": lambda g: np.exp(baselines.log_max_softmax(g @ kernel + bias))}
        if discriminator is not None and discriminator.inputs[0].shape[-1] == 2:
            maps["bal"] = lambda g: np.exp(scoring.log_score(discriminator, g, g @ kernel + bias))
        elif discriminator is not None:  # D reads the stages below h(x) too: no plane of its inputs
            print(f"evaluate: no confidence map of BAL: its D reads {discriminator.inputs[0].shape[-1]}-d features "
                  "(h(x) and the stages below it, features.depths=stages); features.depths=penultimate draws it "
                  "over the 2-d h(x) (the paper's Figures 4-5)")
        for method, fn in maps.items():
            paths.append(plots.confidence_map(fn, test.features, run.eval_dir / f"confidence_map_{method}.png",
                                              f"{method} over the 2-d feature space",
                                              None if ood is None else ood.features))
    plots.log_images_to_tensorboard(paths, run.logs_dir / "eval")
    return paths
