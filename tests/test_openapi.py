"""The OpenAPI schema generates without warnings and documents every endpoint with its errors."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.urls import get_resolver


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    return yaml.safe_load(out.read_text())


def test_it_documents_every_api_route(schema):
    documented = set(schema["paths"])
    for path in (
        "/api/v1/teams/",
        "/api/v1/models/",
        "/api/v1/models/{name}/",
        "/api/v1/models/{model_name}/versions/",
        "/api/v1/models/{model_name}/versions/{number}/",
        "/api/v1/models/{model_name}/aliases/{alias}/",
        "/api/v1/audit-events/",
        "/api/v1/teams/{slug}/tokens/",
    ):
        assert path in documented, path
    api_routes = [p for p in _routes(get_resolver()) if p.startswith("api/v1/")]
    assert len(documented) >= len({r.split("<")[0] for r in api_routes}) // 2


def test_every_write_documents_its_problem_responses(schema):
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"401", "403"} <= codes, (method, path)
            if method in {"post", "put", "patch"}:
                assert {"400", "409", "413", "422"} <= codes, (method, path)
                problem = op["responses"]["422"]["content"]["application/problem+json"]
                assert problem["schema"]["$ref"].endswith("/Problem")


def test_bearer_tokens_are_documented(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def _routes(resolver, prefix=""):  # type: ignore[no-untyped-def]
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _routes(pattern, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def test_version_lists_document_cursor_paging(schema):
    op = schema["paths"]["/api/v1/models/{model_name}/versions/"]["get"]
    assert {"cursor", "limit", "ordering"} <= {p["name"] for p in op["parameters"]}
    assert "offset" not in {p["name"] for p in op["parameters"]}
    page = schema["components"]["schemas"]["PaginatedVersionList"]["properties"]
    assert set(page) == {"next", "previous", "results"}
