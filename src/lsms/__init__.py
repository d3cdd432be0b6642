"""lsms: Medical Image Referring Segmentation with LSMS (Language-guided Scale-aware MedSegmentor).

The top-level names are imported lazily so that ``import lsms`` (and every CLI call) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "lsms.registry",
    "list_models": "lsms.registry",
    "from_pretrained": "lsms.registry",
    "save_pretrained": "lsms.models.pretrained",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lsms' has no attribute {name!r}")
