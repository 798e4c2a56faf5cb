"""Local fake servers on 127.0.0.1 for TLS endpoint tests.

All servers run on the test's event loop (no threads), listen on a free port
and shut down cleanly (clients aborted, listener closed) when the ``async
with`` block ends. Tests must request the ``socket_enabled`` fixture::

    async def test_x(socket_enabled: None) -> None:
        leaf = certs.issue(["example.test"])
        other = certs.issue(["other.test"])
        async with tls_server(leaf, sni={"other.test": other}) as server:
            await inspect_endpoint("127.0.0.1", server.port, server_name="other.test")
        assert server.server_names == ["other.test"]

    async with reset_server() as server: ...      # accepts, then RST after ClientHello
    async with stalling_server() as server: ...   # accepts, never answers (timeouts)
    async with garbage_server() as server: ...    # plain TCP, answers non-TLS bytes
    with refused_port() as port: ...              # bound but not listening: refused
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
import contextlib
from dataclasses import dataclass, field
import socket
import ssl
import struct
import tempfile
from typing import Any, Protocol

HOST = "127.0.0.1"
HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class ServedCertificate(Protocol):
    """Anything with a PEM full chain and key, e.g. `certs.IssuedCertificate`."""

    @property
    def fullchain_pem(self) -> bytes:
        """Return leaf + intermediates as PEM."""
        ...

    @property
    def key_pem(self) -> bytes:
        """Return the private key as PEM."""
        ...


@dataclass
class FakeServer:
    """A running fake server: its port and what it has seen."""

    host: str
    port: int
    connections: int = 0
    """Connections accepted (`tls_server`: ClientHellos received)."""
    handshakes: int = 0
    """TLS handshakes completed (`tls_server` only)."""
    server_names: list[str | None] = field(default_factory=list)
    """SNI names received, in order (`tls_server` only; None: no SNI sent)."""
    received: bytearray = field(default_factory=bytearray)
    """Bytes received (plain TCP servers only)."""


class _Tracked(asyncio.Protocol):
    """Base protocol: counts connections; subclasses react to data."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.server.received.extend(data)


class _TlsTracked(_Tracked):
    """Counts completed handshakes (connections are counted per ClientHello)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.handshakes += 1


class _Reset(_Tracked):
    def __init__(self, server: FakeServer, graceful: bool) -> None:
        super().__init__(server)
        self.graceful = graceful

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.graceful:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        assert self.transport is not None
        if self.graceful:
            self.transport.close()
        else:
            self.transport.abort()  # SO_LINGER 0: the kernel sends RST


class _Garbage(_Tracked):
    def __init__(self, server: FakeServer, payload: bytes) -> None:
        super().__init__(server)
        self.payload = payload

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        assert self.transport is not None
        self.transport.write(self.payload)


@contextlib.asynccontextmanager
async def _serve(
    factory: Callable[[FakeServer], asyncio.Protocol],
    *,
    ssl_context: ssl.SSLContext | None = None,
    state: FakeServer | None = None,
    port: int = 0,
) -> AsyncIterator[FakeServer]:
    loop = asyncio.get_running_loop()
    state = state or FakeServer(HOST, 0)
    previous_handler = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Failed server-side handshakes (the client gave up, as the checks under
        # test do on purpose) are reported in debug mode; the hass fixture would
        # re-raise them. Swallow those of our own protocols only.
        if isinstance(context.get("protocol"), _Tracked):
            return
        if previous_handler is not None:
            previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    server = await loop.create_server(
        lambda: factory(state), state.host, port, ssl=ssl_context, reuse_address=True
    )
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        server.abort_clients()
        await server.wait_closed()
        for _ in range(3):  # let aborted transports and accept tasks finish
            await asyncio.sleep(0)
        loop.set_exception_handler(previous_handler)


def _server_context(source: ServedCertificate) -> ssl.SSLContext:
    """Build a server context (blocking: load_cert_chain needs files)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="sra-tls-") as folder:
        cert_path = f"{folder}/fullchain.pem"
        key_path = f"{folder}/privkey.pem"
        with open(cert_path, "wb") as cert_file:
            cert_file.write(source.fullchain_pem)
        with open(key_path, "wb") as key_file:
            key_file.write(source.key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context


def _server_contexts(
    default: ServedCertificate,
    sni: Mapping[str, ServedCertificate],
    state: FakeServer,
) -> ssl.SSLContext:
    context = _server_context(default)
    by_name = {name.lower(): _server_context(source) for name, source in sni.items()}

    def select(
        ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        state.connections += 1
        state.server_names.append(server_name)
        if server_name is not None and server_name.lower() in by_name:
            ssl_object.context = by_name[server_name.lower()]

    context.sni_callback = select
    return context


@contextlib.asynccontextmanager
async def tls_server(
    default: ServedCertificate,
    *,
    sni: Mapping[str, ServedCertificate] | None = None,
    host: str = HOST,
    port: int = 0,
) -> AsyncIterator[FakeServer]:
    """Serve ``default``'s chain + key; ``sni`` maps server names to others.

    ``host`` and ``port`` only inside a network namespace of the test's own
    (tests/fakes/miniupnpd.py): elsewhere 127.0.0.1 and a free port.
    """
    state = FakeServer(host, 0)
    context = await asyncio.get_running_loop().run_in_executor(
        None, _server_contexts, default, dict(sni or {}), state
    )
    async with _serve(
        _TlsTracked, ssl_context=context, state=state, port=port
    ) as server:
        yield server


@contextlib.asynccontextmanager
async def reset_server(*, graceful: bool = False) -> AsyncIterator[FakeServer]:
    """Accept, read the first bytes (ClientHello), then reset (or FIN if graceful)."""
    async with _serve(lambda state: _Reset(state, graceful)) as server:
        yield server


@contextlib.asynccontextmanager
async def stalling_server() -> AsyncIterator[FakeServer]:
    """Accept and read, never answer: handshakes stall until the client gives up."""
    async with _serve(_Tracked) as server:
        yield server


@contextlib.asynccontextmanager
async def garbage_server(payload: bytes = HTTP_400) -> AsyncIterator[FakeServer]:
    """Plain TCP: answer any bytes with ``payload`` (default: an HTTP 400)."""
    async with _serve(lambda state: _Garbage(state, payload)) as server:
        yield server


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """Yield a 127.0.0.1 port that is bound but not listening: connects are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]
