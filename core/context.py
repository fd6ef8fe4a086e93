"""Who is acting and on behalf of which request: carried in context variables so that services,
the audit log and structured logs agree, whether the change came from the API, a page, the
admin or a worker. Never holds secrets."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
remote_addr_var: contextvars.ContextVar[str] = contextvars.ContextVar("remote_addr", default="")


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def request_context(request_id: str, remote_addr: str = "") -> Iterator[None]:
    rid = request_id_var.set(request_id)
    addr = remote_addr_var.set(remote_addr)
    try:
        yield
    finally:
        request_id_var.reset(rid)
        remote_addr_var.reset(addr)


@dataclass(frozen=True)
class RequestMeta:
    request_id: str
    remote_addr: str


def current_request_meta() -> RequestMeta:
    return RequestMeta(request_id=request_id_var.get(), remote_addr=remote_addr_var.get())
