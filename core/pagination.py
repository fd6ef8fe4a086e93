"""Keyset (cursor) pagination for long lists that only grow, such as a model's versions: each page
is one index range scan after the last key seen, so page 200 costs what page 1 costs, and no
COUNT(*) runs. It must never page on a key that is not unique within the list."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from core.errors import DomainError


class KeysetPagination(CursorPagination):
    """DRF's cursor pagination pinned to one unique integer key (`key`), with the answer
    `{"next", "previous", "results"}`. The `ordering` parameter (the view's OrderingFilter)
    chooses the direction; fields listed in `key_aliases` sort like the key (for versions,
    `created_at` follows `number`: numbers are handed out in registration order). `limit` sets the
    page size, as it did under limit/offset paging; `offset` is refused (it would restart from
    the first page on every request), and a cursor this API did not issue is a 400 naming
    `cursor`."""

    key = "id"
    key_aliases: frozenset[str] = frozenset()
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-id"

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list[Any] | None:
        offset = request.query_params.get("offset")
        if offset not in (None, "", "0"):
            raise DomainError(
                "this list is paged by cursor: follow the `next` link instead of an offset",
                field="offset",
            )
        return super().paginate_queryset(queryset, request, view)

    def get_ordering(self, request: Request, queryset: QuerySet, view: Any) -> tuple[str, ...]:
        first = super().get_ordering(request, queryset, view)[0]
        name = first.lstrip("-")
        if name != self.key and name not in self.key_aliases:
            raise AssertionError(f"{type(self).__name__} cannot page in {name!r} order")
        return (("-" if first.startswith("-") else "") + self.key,)

    def decode_cursor(self, request: Request) -> Any:
        invalid = DomainError(
            "is not a cursor this API issued: follow the `next` or `previous` link as given",
            field=self.cursor_query_param,
        )
        if not request.query_params.get(self.cursor_query_param):
            return None  # none, or `cursor=` as a script may send it: the first page
        try:
            cursor = super().decode_cursor(request)
        except NotFound:  # DRF answers 404 for a bad cursor; a bad parameter is a 400
            raise invalid from None
        if cursor is None:
            return None
        # The key is unique, so a cursor of ours never carries an offset; the position must be
        # an integer, or the filter on the key would fail in the database.
        position = cursor.position
        if cursor.offset or position is None or not position.isdigit():
            raise invalid
        return cursor
