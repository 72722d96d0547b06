"""Where deliveries may go: every address form, and connections only to checked addresses."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.relay.destinations import DestinationRefused, check_public, is_public
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
    """A TCP server on 127.0.0.1 that records each connection and request head and answers
    ``reply`` (204 by default); ``silent`` answers nothing."""

    def __init__(self, reply: bytes = b"HTTP/1.1 204 No Content\r\n\r\n") -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self.reply = reply
        self.silent = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            if self.silent:
                await asyncio.sleep(30)
            writer.write(self.reply)
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def local_server(
    reply: bytes | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[LocalServer]:
    recorder = LocalServer() if reply is None else LocalServer(reply)
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0, ssl=tls)
    recorder.port = server.sockets[0].getsockname()[1]
    try:
        yield recorder
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def pools(**options: Any) -> AsyncIterator[Pools]:
    made = Pools(2, 2.0, **options)
    try:
        yield made
    finally:
        await made.aclose()


async def test_dns_rebinding_to_loopback_after_the_check_never_connects() -> None:
    """Public when checked (registration), 127.0.0.1 when connecting: refused, no connection."""
    async with local_server() as server:
        url = f"http://hooks.example.test:{server.port}/hook"
        resolver = resolving(["93.184.216.34"], ["127.0.0.1"])
        await check_public(url, resolver)  # the registration-time check passes
        async with pools(resolver=resolver) as checked:
            with pytest.raises(DestinationRefused):
                await checked.post(url, b"{}", {})
        assert resolver.calls == ["hooks.example.test", "hooks.example.test"]
        # The same answer with the check off does reach the server: the test can fail.
        async with pools(allow_private=True, resolver=resolver) as control:
            assert (await control.post(url, b"{}", {}))[0] == 204
        assert server.connections == 1


async def test_an_ip_literal_url_is_checked_too_and_never_connected() -> None:
    """aiohttp resolves no IP literal: the sender checks it itself."""
    async with local_server() as server:
        url = f"http://127.0.0.1:{server.port}/hook"
        async with pools() as checked:
            with pytest.raises(DestinationRefused, match="loopback"):
                await checked.post(url, b"{}", {})
        assert server.connections == 0
        async with pools(allow_private=True) as control:
            assert (await control.post(url, b"{}", {}))[0] == 204
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
        async with pools(allow_private=True, resolver=resolver) as sending:
            status, _, _ = await sending.post(url, b"{}", {"webhook-id": "msg_1"})
    assert status == 204
    assert resolver.calls == ["hooks.example.test"]
    head = server.requests[0].decode().lower()
    assert head.startswith("post /hook http/1.1\r\n")
    assert f"\r\nhost: hooks.example.test:{server.port}\r\n" in head
    assert "\r\nwebhook-id: msg_1\r\n" in head
    assert "\r\nuser-agent: billing-gateway-relay/" in head
    assert "\r\ncontent-type: application/json\r\n" in head


async def test_a_redirect_is_answered_not_followed() -> None:
    """A redirect would lead past the destination check: it is the subscriber's answer."""
    reply = (
        b"HTTP/1.1 307 Temporary Redirect\r\n"
        b"Location: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n"
    )
    async with local_server(reply) as server:
        url = f"http://hooks.example.test:{server.port}/hook"
        async with pools(allow_private=True, resolver=resolving(["127.0.0.1"])) as sending:
            status, _, _ = await sending.post(url, b"{}", {})
    assert status == 307
    assert len(server.requests) == 1


async def test_retry_after_and_the_first_2_kb_of_the_answer_are_kept() -> None:
    body = b"\x00" + b"x" * 5000
    reply = b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 5001\r\n\r\n" + body
    async with local_server(reply) as server:
        url = f"http://hooks.example.test:{server.port}/hook"
        async with pools(allow_private=True, resolver=resolving(["127.0.0.1"])) as sending:
            status, headers, kept = await sending.post(url, b"{}", {})
    assert (status, headers) == (503, {"retry-after": "7"})
    assert len(kept) == 2048
    assert kept.startswith("\ufffdxxx")  # a NUL cannot be stored in PostgreSQL text


async def test_a_silent_subscriber_times_out_within_the_timeout() -> None:
    async with local_server() as server:
        server.silent = True
        url = f"http://hooks.example.test:{server.port}/hook"
        made = Pools(2, 0.3, allow_private=True, resolver=resolving(["127.0.0.1"]))
        started = asyncio.get_running_loop().time()
        try:
            with pytest.raises(TimeoutError):
                await made.post(url, b"{}", {})
        finally:
            await made.aclose()
    assert asyncio.get_running_loop().time() - started < 2.0


def certificate_for(hostname: str, tmp_path: Any) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``hostname`` only: (server context, client context)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_tls_is_checked_against_the_hostname_not_the_address(tmp_path: Any) -> None:
    server_tls, client_tls = certificate_for("hooks.example.test", tmp_path)
    async with local_server(tls=server_tls) as server:
        url = f"https://hooks.example.test:{server.port}/hook"
        options = {"allow_private": True, "tls": client_tls}
        async with pools(resolver=resolving(["127.0.0.1"]), **options) as sending:
            assert (await sending.post(url, b"{}", {}))[0] == 204
        # The certificate names the host, not its address: by address, the check fails.
        async with pools(**options) as by_address:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await by_address.post(f"https://127.0.0.1:{server.port}/hook", b"{}", {})
    assert len(server.requests) == 1


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
