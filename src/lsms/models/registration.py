"""The table of model factories that ``@register_model`` fills; :mod:`lsms.registry` builds from it.

Kept apart from :func:`lsms.registry.create_model` so that the architecture files, which register
themselves here, never import the module that imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

# The input size a fresh model of a preset predicts at until a checkpoint says otherwise (LViT's 224x224).
DEFAULT_IMAGE_SIZE = (224, 224)


@dataclass(frozen=True)
class ModelEntry:
    """A registered preset: its factory and default input size (H, W)."""

    factory: Callable[..., nn.Module]
    image_size: tuple[int, int]


MODEL_ENTRIES: dict[str, ModelEntry] = {}


def register_model(
    name: str, image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``factory(**overrides) -> nn.Module`` under ``name``, predicting at ``image_size`` (H, W)
    by default."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODEL_ENTRIES:
            raise ValueError(f"model name {name!r} is registered twice")
        MODEL_ENTRIES[name] = ModelEntry(factory, image_size)
        return factory

    return decorator


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (tests register throwaway models and must leave no trace)."""
    if name not in MODEL_ENTRIES:
        raise KeyError(f"model {name!r} is not registered")
    del MODEL_ENTRIES[name]
