"""The base of the models' configs: serialisable dataclasses whose bad fields raise one-line ConfigErrors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from lsms.errors import ConfigError

ConfigT = TypeVar("ConfigT", bound="ModelConfig")


@dataclass
class ModelConfig:
    """Base of every model config (LSMS and baselines): JSON-friendly ``to_dict`` / ``from_dict`` and
    field checks that raise :class:`ConfigError`.

    Subclasses add fields (all with defaults) and override :meth:`validate`.
    """

    def __post_init__(self) -> None:
        # JSON round trips give lists; keep tuples so a rebuilt config equals the original.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} field(s): {', '.join(unknown)}; expected some of: {', '.join(known)}"
            )
        return cls(**values)
