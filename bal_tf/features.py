"""REM, Eq. 3: the frozen classifier's penultimate features f = h(x), extracted once and cached.

Every cached set holds the features at every depth (``backbones.feature_model(...,
depths="stages")``: the penultimate features, then the global average pool of each backbone
stage), with their ``layout`` (the blocks' widths); a run reads them at its configured depths
(``features.depths``), and the multi-depth baselines read all of them.

BAL's GAN only ever sees features, so they are computed once per split and kept in
``RUN/features/<split>.npz`` (plain arrays, loaded with ``allow_pickle=False``). The cache is
keyed by the classifier file's SHA-256: a different classifier invalidates it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import weakref
import warnings
import zipfile
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from bal_tf.errors import InputError
from bal_tf.io import atomic_path, atomic_write_text


@dataclasses.dataclass
class FeatureSet:
    """Penultimate features, logits and labels of one split (labels are -1 for OOD sets)."""

    features: np.ndarray  # [N, m] float32
    logits: np.ndarray  # [N, K] float32
    labels: np.ndarray  # [N] int64
    layout: tuple[int, ...] | None = None  # widths of the depth blocks of ``features``; None: one block

    def __post_init__(self):
        n = len(self.features)
        if self.layout is not None:
            self.layout = tuple(int(w) for w in self.layout)
            if sum(self.layout) != self.features.shape[-1]:
                raise InputError(f"A FeatureSet's layout {self.layout} must add up to its feature width "
                                 f"{self.features.shape[-1]}.")
        if self.features.ndim != 2 or self.logits.ndim != 2 or self.labels.shape != (n,) or len(self.logits) != n:
            raise InputError(
                "A FeatureSet needs features [N, m], logits [N, K] and labels [N]. Received: "
                f"features {self.features.shape}, logits {self.logits.shape}, labels {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.features)

    @property
    def predictions(self) -> np.ndarray:
        return np.argmax(self.logits, axis=-1)

    def blocks(self) -> list[np.ndarray]:
        """The features of each depth, penultimate first."""
        edges = np.cumsum((0,) + (self.layout or (self.features.shape[-1],)))
        return [self.features[:, a:b] for a, b in zip(edges[:-1], edges[1:])]

    def at(self, depths: str) -> "FeatureSet":
        """These features at ``depths``: ``penultimate`` (the first block) or ``stages`` (all)."""
        if depths == "stages" or self.layout is None or len(self.layout) == 1:
            return self
        if depths != "penultimate":
            raise InputError(f"depths must be 'penultimate' or 'stages'. Received: {depths!r}")
        return FeatureSet(np.ascontiguousarray(self.blocks()[0]), self.logits, self.labels, self.layout[:1])

    def save(self, path: str | Path) -> None:
        layout = np.asarray(self.layout or (self.features.shape[-1],), np.int64)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, features=self.features, logits=self.logits, labels=self.labels, layout=layout)

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        try:
            with np.load(path, allow_pickle=False) as arrays:
                layout = tuple(arrays["layout"]) if "layout" in arrays.files else None
                loaded = cls(arrays["features"], arrays["logits"], arrays["labels"], layout)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"Feature file {path} is unreadable ({type(exc).__name__}: {exc}).") from exc
        if not np.isfinite(loaded.features).all() or not np.isfinite(loaded.logits).all():
            raise InputError(f"Feature file {path} holds NaN or Inf values.")
        return loaded


_FORWARD_FUNCTIONS = weakref.WeakKeyDictionary()


def _forward_function(feature_model: keras.Model, odin: tuple[float, float] | None = None):
    """One traced ``images -> (features, logits)`` per model (and ODIN setting), reused by every
    extraction (a new tf.function per call would retrace each time, and TensorFlow warns about it).
    With ``odin = (T, eps)`` it also returns ODIN's logits / T, from the same forward pass."""
    functions = _FORWARD_FUNCTIONS.setdefault(feature_model, {})
    if odin not in functions:
        if odin is None:
            @tf.function(reduce_retracing=True)
            def forward(images):
                return feature_model(tf.cast(images, tf.float32), training=False)
        else:
            from bal_tf.baselines import odin_perturbation

            temperature, epsilon = odin

            @tf.function(reduce_retracing=True)
            def forward(images):
                clean, perturbed = odin_perturbation(lambda x: feature_model(x, training=False),
                                                     tf.cast(images, tf.float32), temperature, epsilon)
                return (*clean, feature_model(perturbed, training=False)[1] / temperature)

        functions[odin] = forward
    return functions[odin]


def extract_features(feature_model: keras.Model, dataset: tf.data.Dataset, batch_size: int = 512,
                     progress: bool = False, description: str = "features",
                     odin: tuple[float, float] | None = None):
    """Runs ``image -> (features, logits)`` over an unbatched ``(image, label)`` dataset.

    With ``odin = (temperature, epsilon)`` returns ``(FeatureSet, ODIN scores)``: ODIN's input
    gradient needs the same forward pass that gives the features, so one pass serves both (a
    quarter of ODIN's and the extraction's arithmetic together)."""
    from tqdm.auto import tqdm

    from bal_tf.baselines import log_max_softmax

    forward = _forward_function(feature_model, odin)
    batch_size = batch_size if odin is None else min(batch_size, 256)  # the gradient's memory
    features, logits, labels, odin_scores = [], [], [], []
    total = int(dataset.cardinality())
    batches = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    with tqdm(total=total if total > 0 else None, desc=description + (" + ODIN" if odin else ""), unit="img",
              disable=not progress, leave=False) as bar:
        for images, batch_labels in batches:
            f, l, *odin_logits = forward(images)
            features.append(f.numpy())
            logits.append(l.numpy())
            labels.append(batch_labels.numpy())
            if odin_logits:
                odin_scores.append(log_max_softmax(odin_logits[0].numpy()))
            bar.update(len(batch_labels))
    if not features:
        raise InputError("Cannot extract features from an empty dataset: expected at least one image.")
    out = FeatureSet(
        np.concatenate(features).astype(np.float32),
        np.concatenate(logits).astype(np.float32),
        np.concatenate(labels).astype(np.int64),
    )
    if not np.isfinite(out.features).all() or not np.isfinite(out.logits).all():
        raise InputError("The classifier produced NaN or Inf features/logits; check its weights and inputs.")
    return out if odin is None else (out, np.concatenate(odin_scores))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureCache:
    """``RUN/features/``: one ``.npz`` per split, valid for one classifier file."""

    def __init__(self, root: str | Path, classifier_path: str | Path, writable: bool = True,
                 layout: tuple[int, ...] | None = None):
        self.root = Path(root)
        self.writable = writable
        self.layout = None if layout is None else [int(w) for w in layout]
        self.classifier_sha256 = file_sha256(classifier_path)
        meta = self.root / "meta.json"
        expected = {"classifier_sha256": self.classifier_sha256, "layout": self.layout}
        # a cache of another classifier, or of the same one before the depths were cached, is stale
        self.valid = meta.is_file() and {k: json.loads(meta.read_text()).get(k) for k in expected} == expected
        if writable and not self.valid:
            for stale in self.root.glob("*.npz"):
                stale.unlink()
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(meta, json.dumps(expected) + "\n")
            self.valid = True

    def get(self, split: str, make_dataset, feature_model: keras.Model, progress: bool = False,
            odin: tuple[float, float] | None = None):
        """Returns the cached features of ``split``, extracting them on the first call.

        With ``odin = (T, eps)`` returns ``(FeatureSet, ODIN scores or None)``: the scores come
        from the extraction pass when there is one, ``None`` when the features were cached (the
        caller then runs ODIN on the images)."""
        path = self.root / f"{split}.npz"
        if self.valid and path.is_file():
            try:
                cached = FeatureSet.load(path)
                return cached if odin is None else (cached, None)
            except InputError as exc:  # derived data: extract again rather than stop
                warnings.warn(f"{exc} Extracting the features again.")
        extracted = extract_features(feature_model, make_dataset(), progress=progress, description=split, odin=odin)
        if self.layout is not None:
            (extracted if odin is None else extracted[0]).layout = tuple(self.layout)
        if self.writable:
            (extracted if odin is None else extracted[0]).save(path)
        return extracted


def ood_cache_name(name: str) -> str:
    """The cache file stem of an OOD set (``folder:/a/b`` -> ``ood_folder_a_b``)."""
    import re

    return "ood_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


class RunFeatures:
    """A run's features, cached in ``RUN/features/``: each set is extracted on first use only.

    Stage 2 uses ``split("train")`` and ``selection_data()``; evaluate.py adds ``split("test")``
    and ``ood(...)``. Nothing is extracted that the caller does not ask for.

    Example:
        >>> features = RunFeatures(config, run)
        >>> train = features.split("train")
    """

    def __init__(self, config, run, feature_layer: str | None = None, progress: bool = True):
        from bal_tf import classifier as classifier_lib
        from bal_tf.backbones import depth_sizes, feature_model

        self.config = config
        self.run = run
        self.progress = progress
        self.depths = config.features.depths
        self.classifier = classifier_lib.load_classifier(run.classifier_path)
        # what BAL sees and the detector graph exports; every depth is extracted and cached
        self.feature_model = feature_model(self.classifier, feature_layer, self.depths)
        self.extraction_model = feature_model(self.classifier, feature_layer, "stages")
        self.layout = tuple(depth_sizes(self.classifier, feature_layer))
        self.cache = FeatureCache(run.features_dir, run.classifier_path, writable=run.writable, layout=self.layout)
        self._id_data = None

    @property
    def id_data(self):
        if self._id_data is None:
            from bal_tf.classifier import load_id_data

            self._id_data = load_id_data(self.config)
        return self._id_data

    def split(self, name: str, odin: tuple[float, float] | None = None, depths: str | None = None):
        """Features of the ID split ``train``, ``holdout`` or ``test`` at ``depths`` (default: the
        run's; with ``odin``, also its ODIN scores when extracted now: ``FeatureCache.get``)."""
        if name not in ("train", "holdout", "test"):
            raise InputError(f"ID splits are train, holdout and test. Received: {name!r}")
        return self.cached(name, lambda: getattr(self.id_data, name), odin, depths)

    def ood(self, name: str, make_dataset, odin: tuple[float, float] | None = None, depths: str | None = None):
        """Features of an OOD set; ``make_dataset()`` gives its unbatched ``(image, label)`` data."""
        return self.cached(ood_cache_name(name), make_dataset, odin, depths)

    def cached(self, name: str, make_dataset, odin: tuple[float, float] | None = None, depths: str | None = None):
        """Any image set's features at ``depths`` (default: the run's), cached as ``name``."""
        got = self.cache.get(name, make_dataset, self.extraction_model, self.progress, odin)
        view = lambda fs: fs.at(depths or self.depths)  # noqa: E731
        return view(got) if odin is None else (view(got[0]), got[1])

    def holdout_images(self, limit: int | None = None) -> np.ndarray | None:
        """The first ``limit`` held-out ID images (uint8), ``None`` when there is no held-out part."""
        from bal_tf import data as data_lib

        if self.config.data.holdout_percent == 0:
            return None
        _, holdout_split = data_lib.train_holdout_splits(self.config.data.holdout_percent)
        images, _ = data_lib.to_numpy(data_lib.load_id_split(self.config.data, holdout_split, limit=limit))
        return images

    def selection_data(self):
        """Checkpoint selection's data (``bal_tf.selection.build_selection_data``), cached."""
        from bal_tf import selection

        holdout = self.split("holdout") if self.config.data.holdout_percent else None
        if holdout is None or len(holdout) == 0:
            return None

        def features_of_images(family, images):
            dataset = lambda: tf.data.Dataset.from_tensor_slices(  # noqa: E731
                (images, np.full(len(images), -1, np.int64)))
            return self.cached(f"synthetic_{family}", dataset)

        gan = self.config.gan
        return selection.build_selection_data(
            holdout, self.holdout_images(selection.SYNTHETIC_IMAGES_PER_FAMILY), gan.synthetic_families,
            gan.batch_size, features_of_images, seed=self.config.seed)
