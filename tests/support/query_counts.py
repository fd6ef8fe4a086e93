"""The query-count ratchet (tests/query_counts.json), NetBox-style: a page's or an API
endpoint's count must not grow with the data (1 object vs 50) and never rise above its recorded
number. Pages are recorded by their URL name, API endpoints as "GET /api/v1/...". After a change
that lowers a count, record it with UPDATE_QUERY_COUNTS=1."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

COUNTS_FILE = Path(__file__).resolve().parent.parent / "query_counts.json"
SMALL, LARGE = 1, 50


def count_queries(client: Any, url: str, status: int = 200) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == status, (url, response.content[:200])
    return len(queries)


def recorded_counts() -> dict[str, int]:
    return json.loads(COUNTS_FILE.read_text())


def check_ratchet(page: str, small: int, large: int) -> None:
    assert small == large, f"{page}: {small} queries with {SMALL} object, {large} with {LARGE}"
    recorded = recorded_counts()
    if os.environ.get("UPDATE_QUERY_COUNTS") == "1":
        COUNTS_FILE.write_text(
            json.dumps({**recorded, page: large}, indent=2, sort_keys=True) + "\n"
        )
        return
    assert page in recorded, f"record {page} with UPDATE_QUERY_COUNTS=1"
    assert large <= recorded[page], (
        f"{page} now takes {large} queries, more than the {recorded[page]} recorded in "
        f"{COUNTS_FILE.name}: find the new query (N+1?) before raising the number"
    )
