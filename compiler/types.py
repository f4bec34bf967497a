"""The types of the Play language (PLAY-LANGUAGE.md section 4)."""
from __future__ import annotations

import enum


class Type(enum.Enum):
    NUM_SERIES = "series<float>"
    BOOL_SERIES = "series<bool>"
    NUM = "float"
    BOOL = "bool"

    @property
    def is_series(self) -> bool:
        return self in (Type.NUM_SERIES, Type.BOOL_SERIES)

    @property
    def is_bool(self) -> bool:
        return self in (Type.BOOL, Type.BOOL_SERIES)

    @property
    def is_num(self) -> bool:
        return self in (Type.NUM, Type.NUM_SERIES)

    def __str__(self) -> str:
        return self.value


def combine(result_bool: bool, *operands: Type) -> Type:
    """A result is a series as soon as one operand is."""
    series = any(t.is_series for t in operands)
    if result_bool:
        return Type.BOOL_SERIES if series else Type.BOOL
    return Type.NUM_SERIES if series else Type.NUM
