"""Inspecting the certificate a remote TLS endpoint presents.

No Home Assistant imports. The ``inspect_endpoint*`` coroutines do their own
blocking parts (reading a CA bundle, loading trust stores) in the loop's
default executor; ``inspect_endpoints(own_loop=True)`` runs the whole batch on
a private event loop in an executor thread, so that the handshakes' CPU work
never runs between the caller loop's callbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import functools
import os
import socket
import ssl
import threading
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .names import ip_address, is_resolvable_name, normalize_san_name
from .x509.errors import (
    CertificateError,
    CertificateFormatError,
    EndpointConnectionError,
    EndpointConnectionRefusedError,
    EndpointConnectionResetError,
    EndpointHandshakeError,
    EndpointNameResolutionError,
    EndpointNoCertificateError,
    EndpointTimeoutError,
    StrPath,
)
from .x509.model import CertificateInfo
from .x509.parse import build_certificate_info, parse_certificates
from .x509.read import parse_file
from .x509.verify import VerificationStatus, verification_status_for

type Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Async callable ``(host, port) -> IP address strings``; raises OSError on failure."""

MAX_CA_BUNDLE_SIZE: Final = 4 * 1024 * 1024
"""Largest CA bundle accepted for endpoint verification (4 MiB)."""
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_CONCURRENCY: Final = 10
OWN_LOOP_THREAD_NAME: Final = "sra-endpoint-check"
"""Name prefix of the threads of ``inspect_endpoints(own_loop=True)``."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A TLS endpoint to inspect; ``ca_bundle`` replaces the system trust store."""

    host: str
    port: int = 443
    server_name: str | None = None
    ca_bundle: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointCertificate:
    """The certificate an endpoint presents and how its verification went.

    ``certificate`` describes the chain as sent by the server (leaf first),
    fetched even when verification fails. ``verification`` is judged by
    OpenSSL against ``ca_bundle`` (None: system trust store) for the name
    ``server_name or host``; when it is not VALID, ``verification_message`` and
    ``verification_code`` carry OpenSSL's verify error.
    """

    host: str
    port: int
    server_name: str | None
    address: str
    certificate: CertificateInfo
    verification: VerificationStatus
    verification_message: str | None = None
    verification_code: int | None = None
    ca_bundle: str | None = None
    tls_version: str | None = None
    cipher: str | None = None

    @property
    def verified(self) -> bool:
        """Return True when the chain verified for the requested name."""
        return self.verification is VerificationStatus.VALID

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict for diagnostics."""
        return {
            "host": self.host,
            "port": self.port,
            "server_name": self.server_name,
            "address": self.address,
            "verification": self.verification.value,
            "verification_message": self.verification_message,
            "verification_code": self.verification_code,
            "ca_bundle": self.ca_bundle,
            "tls_version": self.tls_version,
            "cipher": self.cipher,
            "certificate": self.certificate.as_dict(),
        }


@functools.cache
def _fetch_context() -> ssl.SSLContext:
    """Return the shared non-verifying client context (built in an executor)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.cache
def _system_verify_context() -> ssl.SSLContext:
    """Return the shared context trusting the system store (built in an executor)."""
    return ssl.create_default_context()


def build_verify_context(ca_bundle: StrPath | None = None) -> ssl.SSLContext:
    """Return a verifying client context for the system store or a CA bundle. Blocking.

    A CA bundle (PEM or DER, up to 4 MiB) replaces the system store, like
    ``curl --cacert``. Bad bundles raise `CertificateFileError` or
    `CertificateFormatError`.
    """
    _fetch_context()
    if ca_bundle is None:
        return _system_verify_context()
    certificates = parse_file(
        ca_bundle, parse_certificates, max_size=MAX_CA_BUNDLE_SIZE
    )
    pem = "".join(
        cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        for cert in certificates
    )
    try:
        return ssl.create_default_context(cadata=pem)
    except ssl.SSLError as err:
        raise CertificateFormatError(
            f"CA bundle rejected by OpenSSL: {err}", path=ca_bundle
        ) from err


async def _default_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    )
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def _resolve(host: str, port: int, resolver: Resolver | None) -> list[str]:
    if ip_address(host) is not None:
        return [str(ip_address(host))]
    normalized = normalize_san_name(host)
    if normalized is None or not is_resolvable_name(normalized):
        raise EndpointNameResolutionError(f"invalid host name {host!r}")
    if resolver is None and (
        normalized == "invalid" or normalized.endswith(".invalid")
    ):
        # RFC 6761 section 6.4: never resolvable, answer without asking DNS.
        raise EndpointNameResolutionError(f"cannot resolve {host}: reserved .invalid")
    try:
        addresses = list(await (resolver or _default_resolver)(normalized, port))
    except OSError as err:
        raise EndpointNameResolutionError(f"cannot resolve {host}: {err}") from err
    if not addresses:
        raise EndpointNameResolutionError(f"cannot resolve {host}: no address")
    return addresses


class _DiscardProtocol(asyncio.Protocol):
    """Ignore whatever the server sends after the handshake."""


async def _handshake(
    address: str, port: int, context: ssl.SSLContext, server_hostname: str
) -> asyncio.Transport:
    """Connect and complete the TLS handshake; map failures to typed errors."""
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_connection(
            _DiscardProtocol,
            address,
            port,
            ssl=context,
            server_hostname=server_hostname,
        )
    except ssl.SSLCertVerificationError:
        raise
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as err:
        raise EndpointConnectionResetError(
            f"connection closed during the TLS handshake: {err}"
        ) from err
    except ssl.SSLError as err:
        raise EndpointHandshakeError(
            f"TLS handshake failed: {err.reason or err}"
        ) from err
    except ConnectionRefusedError as err:
        raise EndpointConnectionRefusedError(
            f"connection refused by {address} port {port}"
        ) from err
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as err:
        raise EndpointConnectionResetError(
            f"connection reset by {address} port {port}"
        ) from err
    except TimeoutError:
        raise
    except OSError as err:
        raise EndpointConnectionError(
            f"cannot connect to {address} port {port}: {err.strerror or err}"
        ) from err
    return transport


def _peer_chain(ssl_object: ssl.SSLObject | None) -> list[x509.Certificate]:
    """Return the chain as sent by the peer (leaf first); empty if none."""
    if ssl_object is None:
        return []
    chain: Sequence[bytes] = ssl_object.get_unverified_chain() or []
    if not chain and (leaf := ssl_object.getpeercert(binary_form=True)):
        chain = [leaf]
    try:
        return [x509.load_der_x509_certificate(bytes(der)) for der in chain]
    except ValueError as err:
        raise CertificateFormatError(
            f"the peer sent an unparseable certificate: {err}"
        ) from err


async def _close(transport: asyncio.Transport) -> None:
    """Drop the connection at once (no close_notify wait) and let it settle."""
    transport.abort()
    await asyncio.sleep(0)


async def _inspect_address(
    host: str,
    port: int,
    address: str,
    server_name: str | None,
    verify_context: ssl.SSLContext,
    ca_bundle: str | None,
) -> EndpointCertificate:
    name = server_name or host
    status = VerificationStatus.VALID
    message: str | None = None
    code: int | None = None
    try:
        transport = await _handshake(address, port, verify_context, name)
    except ssl.SSLCertVerificationError as err:
        code = err.verify_code
        message = err.verify_message or str(err)
        status = verification_status_for(code)
        transport = await _handshake(address, port, _fetch_context(), name)
    try:
        ssl_object = transport.get_extra_info("ssl_object")
        chain = _peer_chain(ssl_object)
        tls_version = ssl_object.version() if ssl_object is not None else None
        cipher_info = ssl_object.cipher() if ssl_object is not None else None
    finally:
        await _close(transport)
    if not chain:
        raise EndpointNoCertificateError(
            f"{address} port {port} presented no certificate"
        )
    return EndpointCertificate(
        host=host,
        port=port,
        server_name=server_name,
        address=address,
        certificate=build_certificate_info(chain),
        verification=status,
        verification_message=message,
        verification_code=code,
        ca_bundle=ca_bundle,
        tls_version=tls_version,
        cipher=cipher_info[0] if cipher_info else None,
    )


class _VerifyContexts:
    """Verifying contexts by CA bundle, each built once per run (in the executor).

    A bundle that cannot be loaded is not remembered: every endpoint using it
    raises its own error.
    """

    def __init__(self) -> None:
        self._built: dict[str | None, ssl.SSLContext] = {}
        self._locks: dict[str | None, asyncio.Lock] = {}

    async def get(self, bundle: str | None) -> ssl.SSLContext:
        """The context for ``bundle`` (None: the system store)."""
        async with self._locks.setdefault(bundle, asyncio.Lock()):
            if (context := self._built.get(bundle)) is None:
                context = await asyncio.get_running_loop().run_in_executor(
                    None, build_verify_context, bundle
                )
                self._built[bundle] = context
        return context


async def inspect_endpoint(
    host: str,
    port: int = 443,
    *,
    server_name: str | None = None,
    ca_bundle: StrPath | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT,
    resolver: Resolver | None = None,
) -> EndpointCertificate:
    """Fetch and judge the certificate of ``host:port``; never blocks the loop.

    One verifying handshake (SNI and verified name: ``server_name or host``);
    when verification fails, a second, non-verifying handshake fetches the
    chain anyway. ``timeout_seconds`` bounds the whole check. Addresses from the
    resolver are tried in order while connections are refused or fail.
    Raises an `EndpointError` subclass, or a `CertificateFileError` /
    `CertificateFormatError` for a bad ``ca_bundle``.
    """
    return await _inspect_endpoint(
        host,
        port,
        server_name or None,
        os.fspath(ca_bundle) if ca_bundle is not None else None,
        timeout_seconds,
        resolver,
        _VerifyContexts(),
    )


async def _inspect_endpoint(
    host: str,
    port: int,
    server_name: str | None,
    bundle: str | None,
    timeout_seconds: float,
    resolver: Resolver | None,
    contexts: _VerifyContexts,
) -> EndpointCertificate:
    try:
        async with asyncio.timeout(timeout_seconds):
            verify_context = await contexts.get(bundle)
            addresses = await _resolve(host, port, resolver)
            host_for_tls = normalize_san_name(host) or host
            if ip_address(host) is not None:
                host_for_tls = str(ip_address(host))
            last_error: EndpointConnectionError | None = None
            for address in addresses:
                try:
                    return await _inspect_address(
                        host_for_tls,
                        port,
                        address,
                        server_name,
                        verify_context,
                        bundle,
                    )
                except EndpointConnectionResetError:
                    raise
                except EndpointConnectionError as err:
                    last_error = err
            assert last_error is not None
            raise last_error
    except TimeoutError as err:
        raise EndpointTimeoutError(
            f"no answer from {host} port {port} within {timeout_seconds} s"
        ) from err


type _Results = list[EndpointCertificate | CertificateError]


async def inspect_endpoints(
    endpoints: Iterable[Endpoint],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_seconds: float = DEFAULT_TIMEOUT,
    resolver: Resolver | None = None,
    own_loop: bool = False,
) -> _Results:
    """Inspect several endpoints, at most ``concurrency`` at a time.

    Returns one item per endpoint, in order: the result or the
    `CertificateError` it raised. Unexpected exceptions propagate (as an
    ExceptionGroup) after the other checks are cancelled. Each CA bundle is
    read once per call.

    ``own_loop``: run the checks on a private event loop in one thread of the
    caller loop's default executor (``resolver`` is then awaited on that loop);
    the caller's loop only waits for the result. Cancelling the call cancels
    the checks.
    """
    endpoints = list(endpoints)
    if not own_loop:
        return await _inspect_all(endpoints, concurrency, timeout_seconds, resolver)
    runner = _OwnLoopRun(endpoints, concurrency, timeout_seconds, resolver)
    future = asyncio.get_running_loop().run_in_executor(None, runner.run)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        runner.cancel()
        # Nobody awaits the job any more: retrieve its outcome when it ends.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise


async def _inspect_all(
    endpoints: Sequence[Endpoint],
    concurrency: int,
    timeout_seconds: float,
    resolver: Resolver | None,
) -> _Results:
    semaphore = asyncio.Semaphore(max(1, concurrency))
    contexts = _VerifyContexts()

    async def check(endpoint: Endpoint) -> EndpointCertificate | CertificateError:
        async with semaphore:
            try:
                return await _inspect_endpoint(
                    endpoint.host,
                    endpoint.port,
                    endpoint.server_name or None,
                    endpoint.ca_bundle,
                    timeout_seconds,
                    resolver,
                    contexts,
                )
            except CertificateError as err:
                return err

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(check(endpoint)) for endpoint in endpoints]
    return [task.result() for task in tasks]


class _UnjoinedPool(ThreadPoolExecutor):
    """A pool whose shutdown never waits: a hung name lookup ends by itself."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; threads still busy finish on their own."""
        del wait, cancel_futures
        super().shutdown(wait=False, cancel_futures=True)


class _OwnLoopRun:
    """One ``inspect_endpoints(own_loop=True)`` call, on a loop of its own."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        concurrency: int,
        timeout_seconds: float,
        resolver: Resolver | None,
    ) -> None:
        self._args = (endpoints, concurrency, timeout_seconds, resolver)
        self._lock = threading.Lock()
        self._cancelled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[_Results] | None = None

    def run(self) -> _Results:
        """Run the checks to the end on a new event loop. Blocking."""
        return asyncio.run(self._main())

    async def _main(self) -> _Results:
        loop = asyncio.get_running_loop()
        # Name resolution and trust stores: a pool of this loop's own, shut
        # down by asyncio.run at the end. Larger than the concurrency: a
        # lookup that timed out keeps its thread, and must not leave the other
        # checks queueing for one (nor hold the results until it ends).
        concurrency = max(1, self._args[1])
        loop.set_default_executor(
            _UnjoinedPool(2 * concurrency + 2, thread_name_prefix=OWN_LOOP_THREAD_NAME)
        )
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            if self._cancelled:
                raise asyncio.CancelledError
            self._loop, self._task = loop, task
        try:
            return await _inspect_all(*self._args)
        finally:
            with self._lock:  # the loop closes next: nothing may be sent to it
                self._loop = self._task = None

    def cancel(self) -> None:
        """Cancel the checks from any thread (before they start: skip them)."""
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)
