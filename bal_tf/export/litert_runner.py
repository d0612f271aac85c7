"""Runs an exported TFLite model with ai-edge-litert's Interpreter (no TensorFlow needed).

(Not named ``litert.py``: a module of that name shadows the ``litert`` package.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bal_tf.errors import InputError


class LiteRTRunner:
    """``runner(uint8 images [N, H, W, C]) -> {class, p1, p2, score, is_ood, threshold}``.

    Images of another dtype or another H, W, C are refused with an ``InputError`` naming the
    expected and the received shape; an empty batch gives empty outputs.
    """

    def __init__(self, model_path: str | Path):
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = str(model_path)
        interpreter = Interpreter(model_path=self.model_path)
        runner = interpreter.get_signature_runner("serving_default")
        self.image_shape = tuple(int(d) for d in runner.get_input_details()["images"]["shape"][1:])
        self.output_dtypes = {k: v["dtype"] for k, v in runner.get_output_details().items()}
        self.batch = None
        self.runner = None

    def _runner_for(self, batch_shape):
        from ai_edge_litert.interpreter import Interpreter

        if batch_shape != self.batch:
            # A fresh interpreter per input shape: resizing one that has run is refused.
            interpreter = Interpreter(model_path=self.model_path)
            index = interpreter.get_signature_runner("serving_default").get_input_details()["images"]["index"]
            interpreter.resize_tensor_input(index, batch_shape)
            interpreter.allocate_tensors()
            self.interpreter, self.batch = interpreter, batch_shape
            self.runner = interpreter.get_signature_runner("serving_default")
        return self.runner

    def __call__(self, images: np.ndarray, batch_size: int = 1) -> dict[str, np.ndarray]:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise InputError(f"Expected uint8 images. Received dtype {images.dtype}")
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise InputError(f"Expected images of shape [batch, {', '.join(map(str, self.image_shape))}] "
                             f"(batch, height, width, channels). Received shape {list(images.shape)}")
        if len(images) == 0:
            return {k: np.zeros((0,), dtype) for k, dtype in self.output_dtypes.items()}
        outputs = []
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size]
            out = self._runner_for(batch.shape)(images=batch)
            outputs.append({k: np.array(v) for k, v in out.items()})
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
