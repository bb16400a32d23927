"""What every configuration dataclass shares: a JSON round trip (saved beside each checkpoint), and each
setting's command-line flag, written once in its field.

    lr: float = option(1e-4, "--lr")                            # `babi-dnc train --lr`
    memory_slots: int = option(256, "--memory-slots", fixed=True)   # a resumed run refuses another value
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Self

JSON_TYPES = {int: (int,), float: (int, float), str: (str,), bool: (bool,), type(None): (type(None),),
              list: (list,), dict: (dict,), tuple: (list, tuple)}


def option(default, flag: str, fixed: bool = False, **kwargs):
    """A dataclass field set by the command-line flag `flag`. fixed: a resumed run keeps its saved value and
    refuses another one (the model, the data); otherwise a value given on resume replaces the saved one."""
    return dataclasses.field(default=default, metadata={"flag": flag, "fixed": fixed}, **kwargs)


def flags(cls) -> dict[str, str]:
    """{field: its flag} for the fields of config dataclass `cls` that have one."""
    return {f.name: f.metadata["flag"] for f in dataclasses.fields(cls) if "flag" in f.metadata}


def fixed_flags(cls) -> dict[str, str]:
    """{field: its flag} for the fields of `cls` that a resumed run keeps (option(..., fixed=True))."""
    return {f.name: f.metadata["flag"] for f in dataclasses.fields(cls) if f.metadata.get("fixed")}


class JsonConfig:
    """Mixin for a dataclass: `to_dict()`, `from_dict(d)` (ignoring keys this version lacks and refusing
    values of the wrong type: TypeError naming the field) and `check()` (the settings' rules, if any)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def check(self) -> None:
        """UserError naming the first setting out of range, as its command-line option; a config whose settings
        have no rules beyond their types passes as it is."""

    @classmethod
    def from_dict(cls, d: dict) -> Self:
        if not isinstance(d, dict):
            raise TypeError(f"{cls.__name__} needs a JSON object, not {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in d.items() if k in fields}
        for name, value in values.items():
            allowed = _json_types(hints.get(name))
            if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
                wanted = fields[name].type if isinstance(fields[name].type, str) else hints[name].__name__
                raise TypeError(f"{name} is {value!r}, not {wanted}")
        return cls(**values)


def _json_types(hint) -> tuple[type, ...] | None:
    """The Python types JSON gives for a field annotated `hint` (None: not checked)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    allowed: list[type] = []
    for option in options:
        option = typing.get_origin(option) or option
        if option not in JSON_TYPES:
            return None
        allowed += JSON_TYPES[option]
    return tuple(allowed)
