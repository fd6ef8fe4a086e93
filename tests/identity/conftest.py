from __future__ import annotations

import pytest

from tests.factories import RegisteredModelFactory


@pytest.fixture
def foreign_model(other_team):  # type: ignore[no-untyped-def]
    return RegisteredModelFactory(team=other_team, name="ranker")
