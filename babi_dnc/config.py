"""The one piece every configuration dataclass shares: a JSON round trip, saved beside each checkpoint."""

from __future__ import annotations

import dataclasses
from typing import Self


class JsonConfig:
    """Mixin for a dataclass: `to_dict()` and `from_dict(d)`, the latter ignoring keys this version lacks."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})
