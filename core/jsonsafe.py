"""The one conversion of evidence, snapshots and config changes into values a JSON column takes
(PostgreSQL's jsonb refuses NaN and infinity, and json.dumps refuses Decimal, enums and tuples).
It never raises: what JSON cannot hold becomes null (a non-finite float) or its text."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with dict keys as strings, tuples and lists as lists, enums as their values,
    Decimals as their exact text, and NaN or infinity as None."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    return str(value)
