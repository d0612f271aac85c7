"""How far the exported models are from the Keras detector they came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bal_tf.errors import InputError
from bal_tf.export.litert_runner import LiteRTRunner
from bal_tf.export.tflite import TFLITE_MODES


def max_abs_difference(a: dict, b: dict, keys=("p1", "p2", "score", "log_score")) -> float:
    return float(max(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))) for k in keys))


def auroc_parity(detector, out_dir: Path, config, ood_name: str, count: int, holdout: np.ndarray | None = None) -> dict:
    """AUROC (ID vs ``ood_name``, first ``count`` images each) of Keras and every TFLite model.

    ``ood_name`` is an OOD set (ID side: the ID test split) or a validation image family of
    ``bal_tf.validation`` (``rotate90``, ``pixel_permutation``, ...: made from the last ``count``
    ``holdout`` images, which are the ID side), so that parity can be measured without any test
    OOD data.
    """
    from bal_tf import data as data_lib
    from bal_tf.metrics import auroc
    from bal_tf.validation import IMAGE_FAMILIES, validation_images

    if ood_name in IMAGE_FAMILIES:
        if holdout is None:
            raise InputError(f"The validation family {ood_name!r} is made from held-out ID images; none given.")
        id_images = np.asarray(holdout[-count:])
        ood_images = validation_images(ood_name, id_images, seed=0)
        id_side = "held-out ID images (validation family: no test data)"
    else:
        id_images, _ = data_lib.to_numpy(data_lib.load_id_split(config.data, "test", limit=count))
        ood_images, _ = data_lib.to_numpy(data_lib.load_ood_set(ood_name, config.data, limit=count))
        id_side = "ID test split"
    result = {"ood": ood_name, "id": id_side, "images_each": count,
              "keras": auroc(detector.predict(id_images)["score"], detector.predict(ood_images)["score"])}
    for mode in TFLITE_MODES:  # not a glob: a stale file from an older export is not reported
        path = out_dir / f"bal_{mode}.tflite"
        runner = LiteRTRunner(path)
        result[path.stem] = auroc(runner(id_images, batch_size=256)["score"],
                                  runner(ood_images, batch_size=256)["score"])
    return result
