"""Where deliveries may go: every address form, and connections only to checked addresses."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import pytest

from gateway.relay.destinations import (
    DestinationRefused,
    PublicOnlyBackend,
    check_public,
    is_public,
)
from gateway.relay.outbound import Pools
from gateway.relay.sender import Sender
from tests.conftest import Gateway
from tests.relay.conftest import enqueue, eventually

REFUSED = [
    "127.0.0.1",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",  # CGNAT
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::8.8.8.8",  # IPv4-compatible, whatever it embeds
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::808:808",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    "2001:0:7f00:1:8000:63bf:f7f7:fbfb",  # Teredo, server 127.0.0.1
    "2606:4700::5efe:7f00:1",  # ISATAP interface id of 127.0.0.1
    "2606:4700::200:5efe:a00:1",  # ISATAP (u bit set) of 10.0.0.1
    "fe80::1",
    "fd00::1",  # unique local
    "fc00::1",
    "fec0::1",  # site-local (deprecated)
    "ff02::1",
    "ff0e::1",  # multicast, global scope
    "2001:db8::1",  # documentation
    "100::1",  # discard
]
ALLOWED = [
    "8.8.8.8",
    "93.184.216.34",
    "2606:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (an IPv6-only host with DNS64)
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_in_every_form_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def resolving(*answers: list[str]) -> Any:
    """A resolver answering each call with the next of ``answers`` (the last one repeats)."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


async def test_one_non_public_address_among_public_ones_refuses_the_url() -> None:
    await check_public("https://hooks.example.test/", resolving(["8.8.8.8", "2606:4700::1111"]))
    with pytest.raises(DestinationRefused):
        await check_public("https://hooks.example.test/", resolving(["8.8.8.8", "::1"]))
    with pytest.raises(DestinationRefused):
        await check_public("https://hooks.example.test/", resolving([]))


class LocalServer:
    """A TCP server on 127.0.0.1 that records each connection and answers 204."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def local_server() -> AsyncIterator[LocalServer]:
    recorder = LocalServer()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    try:
        yield recorder
    finally:
        server.close()
        await server.wait_closed()


async def test_dns_rebinding_to_loopback_after_the_check_never_connects() -> None:
    """Public when checked (registration), 127.0.0.1 when connecting: refused, no connection."""
    async with local_server() as server:
        url = f"http://hooks.example.test:{server.port}/hook"
        resolver = resolving(["93.184.216.34"], ["127.0.0.1"])
        await check_public(url, resolver)  # the registration-time check passes
        pools = Pools(2, 2.0, network=PublicOnlyBackend(resolver=resolver))
        try:
            with pytest.raises(DestinationRefused):
                await pools.post(url, b"{}", {})
        finally:
            await pools.aclose()
        assert resolver.calls == ["hooks.example.test", "hooks.example.test"]
        # The same answer with the check off does reach the server: the test can fail.
        control = Pools(2, 2.0, network=PublicOnlyBackend(allow_private=True, resolver=resolver))
        try:
            assert (await control.post(url, b"{}", {}))[0] == 204
        finally:
            await control.aclose()
        assert server.connections == 1


async def test_a_delivery_connects_to_the_resolved_address_with_the_original_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy in the environment is not used: deliveries go straight to the checked address.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with local_server() as server:
        url = f"http://hooks.example.test:{server.port}/hook"
        resolver = resolving(["127.0.0.1"])
        pools = Pools(2, 2.0, network=PublicOnlyBackend(allow_private=True, resolver=resolver))
        try:
            status, _, _ = await pools.post(url, b"{}", {"webhook-id": "msg_1"})
        finally:
            await pools.aclose()
    assert status == 204
    assert resolver.calls == ["hooks.example.test"]
    head = server.requests[0].decode().lower()
    assert head.startswith("post /hook http/1.1\r\n")
    assert f"\r\nhost: hooks.example.test:{server.port}\r\n" in head


class RecordingNetwork(httpcore.AsyncMockBackend):
    """httpcore's mock network, remembering where it connected and the TLS server name."""

    def __init__(self, answer: list[bytes]) -> None:
        super().__init__(answer)
        self.connected: list[str] = []
        self.server_names: list[str | None] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connected.append(host)
        stream = await super().connect_tcp(host, port, *args, **kwargs)
        network = self

        class Stream(type(stream)):  # type: ignore[misc]
            async def start_tls(
                self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, **_: Any
            ) -> Any:
                network.server_names.append(server_hostname)
                return self

        stream.__class__ = Stream
        return stream


async def test_tls_is_checked_against_the_hostname_not_the_address() -> None:
    network = RecordingNetwork([b"HTTP/1.1 200 OK\r\n", b"Content-Length: 0\r\n\r\n"])
    backend = PublicOnlyBackend(resolver=resolving(["93.184.216.34"]), network=network)
    async with httpcore.AsyncConnectionPool(network_backend=backend) as pool:
        response = await pool.request("POST", "https://hooks.example.test/hook", content=b"{}")
    assert response.status == 200
    assert network.connected == ["93.184.216.34"]
    assert network.server_names == ["hooks.example.test"]


async def test_the_sender_records_a_refused_connection_and_reaches_nothing(
    relay_gateway: Gateway,
) -> None:
    """Registered while private addresses were allowed; now they are not, and the host
    resolves to loopback: the attempt fails as refused, nothing connects."""
    async with local_server() as server:
        admin = await relay_gateway.headers("admin")
        url = f"http://hooks.example.test:{server.port}/hook"
        created = await relay_gateway.client.post(
            "/gateway/endpoints", json={"url": url}, headers=admin
        )
        assert created.status_code == 201, created.text
        await enqueue(relay_gateway, "m_refused", "invoice.created")
        settings = relay_gateway.runtime.settings.model_copy(update={"relay_allow_private": False})
        sender = Sender(settings, relay_gateway.runtime.database, resolver=resolving(["127.0.0.1"]))
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        reader = await relay_gateway.headers("billing:read")

        async def attempts() -> list[dict[str, Any]]:
            response = await relay_gateway.client.get("/gateway/messages/m_refused", headers=reader)
            found: list[dict[str, Any]] = response.json()["message"]["attempts"]
            return found

        try:
            await eventually(attempts)
        finally:
            stop.set()
            await task
        assert (await attempts())[0]["error"].startswith("refused: the URL points at a loopback")
        assert server.connections == 0
