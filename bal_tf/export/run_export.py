"""Export a run directory: SavedModel in TF Serving's layout, TFLite variants, parity report."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from bal_tf.errors import InputError
from bal_tf.export.litert_runner import LiteRTRunner
from bal_tf.export.parity import auroc_parity, max_abs_difference
from bal_tf.export.saved_model import OUTPUT_KEYS, export_saved_model, tf_serving_layout
from bal_tf.export.threshold import calibrate_threshold
from bal_tf.export.tflite import TFLITE_MODES, convert_tflite
from bal_tf.io import atomic_path


@dataclasses.dataclass
class ExportOptions:
    """What ``export_run`` writes.

    Attributes:
        model_name / version: TF Serving's ``<model_name>/<version>/`` folder.
        tflite: also write the three TFLite models (``bal_<mode>.tflite``).
        parity_images: held-out ID images on which every export is compared with Keras.
        parity_ood: an OOD set (e.g. ``fashion_mnist``) or a validation image family (e.g.
            ``rotate90``, made from held-out ID images); if given, the report adds the AUROC of
            ID vs that set for Keras and each TFLite model (for reporting only).
        parity_ood_images: images of each side for that AUROC.
        jit_compile: XLA in the SavedModel: ``none``, ``head`` (BAL's part after the backbone)
            or ``all`` (``bal_tf.export.saved_model.ServingModule``).
    """

    model_name: str = "bal"
    version: int = 1
    tflite: bool = True
    parity_images: int = 512
    parity_ood: str | None = None
    parity_ood_images: int = 2000
    jit_compile: str = "none"


@dataclasses.dataclass
class _Export:
    """One export in progress: what every step needs."""

    staging: Path  # written here, swapped into out_dir at the end
    out_dir: Path
    detector: object
    config: object
    log_threshold: float
    holdout: np.ndarray
    holdout_split: str
    options: ExportOptions

    def final(self, path: Path) -> str:
        return str(self.out_dir / Path(path).relative_to(self.staging))


def export_run(run_dir: str | Path, out_dir: str | Path | None = None,
               options: ExportOptions | None = None) -> dict:
    """Exports a run (see ``ExportOptions``); returns the report also written to export_info.json."""
    from bal_tf import data as data_lib
    from bal_tf.detector import BALDetector
    from bal_tf.run_dir import RunDir

    options = options or ExportOptions()
    run = RunDir(Path(run_dir))
    config = run.load_config()
    out_dir = Path(out_dir) if out_dir else run.root / "export"
    if out_dir.exists() and not (out_dir / "export_info.json").is_file() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir} exists and is not a finished bal-tf export (no export_info.json); "
                         "refusing to replace it. Pass another --out or remove it.")
    detector = BALDetector.load(run.detector_path)
    _, holdout_split = data_lib.train_holdout_splits(config.data.holdout_percent)
    holdout, _ = data_lib.to_numpy(data_lib.load_id_split(config.data, holdout_split))
    log_threshold = calibrate_threshold(detector.score(holdout))
    # Everything is written into a staging folder that replaces out_dir in one step at the end:
    # a crash or a full disk leaves the previous export whole, never a mix of two.
    with atomic_path(out_dir, suffix="") as staging:
        staging.mkdir()
        job = _Export(staging, out_dir, detector, config, log_threshold, holdout, holdout_split, options)
        report = _export_saved_model(job)
        if options.tflite:
            tflite_report = _export_tflite(job)
            report["parity"].update(tflite_report.pop("parity"))
            report.update(tflite_report)
        (staging / "export_info.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _export_saved_model(job: _Export) -> dict:
    options = job.options
    saved_model = export_saved_model(job.detector.model, job.log_threshold, job.staging / "saved_model",
                                     jit_compile=options.jit_compile)
    serving_path = tf_serving_layout(saved_model, job.staging / "serving", options.model_name, options.version)
    sample = job.holdout[:options.parity_images]
    served = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    saved_out = {k: v.numpy() for k, v in served(images=tf.constant(sample)).items()}
    return {
        "threshold": float(np.exp(job.log_threshold)),
        "log_threshold": job.log_threshold,
        "calibration": f"accepts 95% of {len(job.holdout)} held-out ID images ({job.holdout_split})",
        "input": {"name": "images", "dtype": "uint8", "shape": [None, *job.detector.image_shape]},
        "outputs": list(OUTPUT_KEYS),
        "signatures": {"serving_default": "uint8 images", "serving_float": "float32 images, 0..255"},
        "saved_model": job.final(saved_model),
        "tf_serving": job.final(serving_path),
        "parity": {"saved_model_vs_keras_max_abs": max_abs_difference(saved_out, job.detector.predict(sample))},
        **stamp(),
    }


def stamp() -> dict:
    from bal_tf.provenance import stamp as provenance

    return provenance()


def _export_tflite(job: _Export) -> dict:
    from bal_tf import data as data_lib

    report = {"parity": {}}
    sample = job.holdout[:job.options.parity_images]
    keras_out = job.detector.predict(sample)
    train_images, _ = data_lib.to_numpy(data_lib.load_id_split(job.config.data, "train", limit=200))
    for mode in TFLITE_MODES:
        start = time.time()
        flatbuffer = convert_tflite(job.detector.model, job.log_threshold, mode, train_images)
        path = job.staging / f"bal_{mode}.tflite"
        path.write_bytes(flatbuffer)
        report["parity"][f"tflite_{mode}_vs_keras_max_abs"] = max_abs_difference(LiteRTRunner(path)(sample), keras_out)
        report[f"tflite_{mode}"] = {"path": job.final(path), "bytes": len(flatbuffer),
                                    "convert_seconds": round(time.time() - start, 1)}
    if job.options.parity_ood:
        report["auroc_parity"] = auroc_parity(job.detector, job.staging, job.config, job.options.parity_ood,
                                              job.options.parity_ood_images, job.holdout)
    return report
