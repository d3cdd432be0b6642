"""Using a trained model: predictions (2D, volumes, manifests), ONNX export, a local web page, feature maps.

Heavy optional parts (onnx, fastapi) are imported by their modules only when used.
"""

from __future__ import annotations

import os

from lsms.predictor import Prediction, Predictor, VolumePrediction
from lsms.registry import from_pretrained
from lsms.runtime import resolve_device

__all__ = ["Prediction", "Predictor", "VolumePrediction", "load_predictor"]


def load_predictor(folder: str | os.PathLike, *, device: str = "auto", **kwargs) -> Predictor:
    """A :class:`Predictor` on the model of a checkpoint folder, on ``device`` (``auto``: a GPU when there is
    one, see :func:`lsms.runtime.resolve_device`); ``kwargs`` as for the constructor."""
    return Predictor(from_pretrained(folder, device=str(resolve_device(device))), **kwargs)
