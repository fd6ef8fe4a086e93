"""uvicorn HTTP protocols that set TCP_NODELAY on every accepted connection.

With `--workers N` uvicorn hands each worker an inherited listening socket, and accepted sockets
keep Nagle's algorithm on: every keep-alive response after the first then waits ~40 ms for the
client's delayed ACK (uvicorn #3149, kserve #6050). Setting the option in `connection_made` works
for any loop and any worker count. This module must stay free of application logic.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HTTP_PROTOCOLS = {
    "httptools": "serving.nodelay:NoDelayHttpToolsProtocol",
    "h11": "serving.nodelay:NoDelayH11Protocol",
}


def set_nodelay(transport: asyncio.BaseTransport) -> bool:
    """Turn Nagle off for a TCP transport; False for other transports (e.g. Unix sockets)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        # The peer can reset the connection before we get here; uvicorn handles the close.
        return False
    return True


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
