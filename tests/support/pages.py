"""Reading a page in a test: the HTML of a response whose status was checked first, so that a
test asserting that something is absent cannot pass on an error page that lacks it too."""

from __future__ import annotations

from typing import Any


def html_of(client: Any, url: str, *args: Any, status: int = 200, **kwargs: Any) -> str:
    response = client.get(url, *args, **kwargs)
    assert response.status_code == status, (url, response.status_code, response.content[:300])
    return response.content.decode()
