"""lsms: Medical Image Referring Segmentation with LSMS (Language-guided Scale-aware MedSegmentor)."""

__version__ = "0.1.0"

from lsms.models.pretrained import from_pretrained, save_pretrained  # noqa: E402
from lsms.registry import create_model, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "from_pretrained", "list_models", "save_pretrained"]
