"""core.jsonsafe.json_safe: the one sanitiser for JSON columns."""

from __future__ import annotations

import enum
import json
import math
from decimal import Decimal

from core.jsonsafe import json_safe


class Colour(enum.StrEnum):
    RED = "red"


class Rank(enum.IntEnum):
    HIGH = 3


def test_it_turns_non_finite_floats_into_none():
    assert json_safe({"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.5}) == {
        "a": None,
        "b": None,
        "c": None,
        "d": 1.5,
    }


def test_it_keeps_decimals_exact_as_text():
    assert json_safe({"cpu": Decimal("0.10")}) == {"cpu": "0.10"}
    assert json_safe(Decimal("NaN")) is None


def test_it_turns_enums_into_their_values():
    assert json_safe([Colour.RED, Rank.HIGH]) == ["red", 3]
    assert type(json_safe(Colour.RED)) is str


def test_it_turns_tuples_and_nested_keys_into_json_shapes():
    assert json_safe({1: (1, 2), "x": {"y": (math.nan,)}}) == {"1": [1, 2], "x": {"y": [None]}}


def test_its_output_is_strict_json():
    value = json_safe({"a": [math.nan, Decimal("1.5"), Colour.RED, object()]})
    json.dumps(value, allow_nan=False)
