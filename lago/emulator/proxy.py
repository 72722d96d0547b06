"""What a reverse proxy in front of Lago answers on its own: nginx's error pages, dropped
connections, and its ``client_max_body_size`` limit."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from .faults import ConnectionFault, Fault

SERVER_SEND = "lago_emulator.server_send"
# Marks the proxy's own answers, which Lago's contract does not describe.
PROXY_SERVER = (b"server", b"nginx")
# nginx's wording where it differs from the RFC's.
_TITLES = {503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def page(status: int) -> bytes:
    """nginx's built-in error page for ``status``."""
    title = f"{status} {_TITLES.get(status) or HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


async def answer_page(send: Send, status: int) -> None:
    """Send nginx's error page: HTML, no ``Retry-After``."""
    body = page(status)
    headers = [
        PROXY_SERVER,
        (b"content-type", b"text/html"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _server_transport(scope: Scope) -> Any:
    """The socket transport of uvicorn's ``send`` (a bound method of its request cycle);
    uvloop's transports do not subclass ``asyncio.Transport``, so this checks ``abort``."""
    owner = getattr(scope.get(SERVER_SEND), "__self__", None)
    transport = getattr(owner, "transport", None)
    return transport if callable(getattr(transport, "abort", None)) else None


async def drop_connection(scope: Scope, fault: Fault) -> None:
    """Close the connection without answering; in-process, raise ``ConnectionFault``.

    Over a socket both ``reset`` and ``refuse`` abort the connection: the server is already
    listening, so a real refusal (no listener) cannot be copied per request.
    """
    transport = _server_transport(scope)
    if transport is None:
        raise ConnectionFault(fault)
    transport.abort()
    # Let connection_lost run, so the server does not try to answer a 500 on its own.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def limit_body(scope: Scope, receive: Receive, limit: int) -> Receive | None:
    """``receive`` replaying a body within ``limit`` bytes, or ``None`` when it is over."""
    declared = _declared_length(scope)
    if declared is not None:
        return None if declared > limit else receive
    messages: list[Message] = []
    size, more = 0, True
    while more:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        more = message.get("more_body", False) and message["type"] == "http.request"
        if size > limit:
            return None
    queued = iter(messages)

    async def replay() -> Message:
        return next(queued, None) or await receive()

    return replay
