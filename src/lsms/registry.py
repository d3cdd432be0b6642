"""Model registry in the style of timm: ``@register_model`` on a factory, ``create_model(name, **overrides)``."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from lsms.errors import ConfigError

_MODEL_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``factory(**overrides) -> nn.Module`` under ``name``."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODEL_FACTORIES:
            raise ValueError(f"model name {name!r} is registered twice")
        _MODEL_FACTORIES[name] = factory
        return factory

    return decorator


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (tests register throwaway models and must leave no trace)."""
    if name not in _MODEL_FACTORIES:
        raise KeyError(f"model {name!r} is not registered")
    del _MODEL_FACTORIES[name]


def _import_model_modules(include_baselines: bool) -> None:
    # Importing the architecture files runs their @register_model decorators. The baselines import
    # MONAI, which costs seconds, so they are imported only when a name is not an LSMS preset.
    import lsms.models  # noqa: F401

    if include_baselines:
        import lsms.models.baselines  # noqa: F401


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    _import_model_modules(include_baselines=True)
    return sorted(_MODEL_FACTORIES)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; keyword overrides replace fields of its preset config."""
    _import_model_modules(include_baselines=False)
    if name not in _MODEL_FACTORIES:
        _import_model_modules(include_baselines=True)
    if name not in _MODEL_FACTORIES:
        raise KeyError(f"unknown model {name!r}; expected one of: {', '.join(sorted(_MODEL_FACTORIES))}")
    model = _MODEL_FACTORIES[name](**overrides)
    model.architecture = name  # recorded by save_pretrained so from_pretrained can rebuild it
    return model


def check_input_size(model: nn.Module, size: tuple[int, int], key: str) -> None:
    """ConfigError naming ``key`` when (H, W) is below the model's ``min_input_side`` (if it has one)."""
    minimum = int(getattr(model, "min_input_side", 1))
    if min(size) < minimum:
        name = getattr(model, "architecture", type(model).__name__)
        raise ConfigError(f"{key} {size[0]}x{size[1]}: {name} needs input sides of at least {minimum} pixels")
