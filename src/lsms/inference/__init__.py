"""Using a trained model: predictions (2D, volumes, manifests), ONNX export, a local web page, feature maps.

Heavy optional parts (onnx, fastapi) are imported by their modules only when used.
"""

from lsms.inference.predictor import Prediction, Predictor, VolumePrediction

__all__ = ["Prediction", "Predictor", "VolumePrediction"]
