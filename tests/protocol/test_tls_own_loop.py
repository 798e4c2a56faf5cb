"""``inspect_endpoints``: one bundle read per call, and the checks on a loop of their own."""

from __future__ import annotations

import asyncio
from pathlib import Path
import socket
import threading
from typing import Any
from unittest.mock import patch

import pytest

from custom_components.secure_remote_access.protocol import tls, x509
from custom_components.secure_remote_access.protocol.tls import (
    Endpoint,
    EndpointCertificate,
)
from tests.fakes import certs
from tests.fakes.tls_server import refused_port, stalling_server, tls_server


async def test_bundle_read_once_per_call(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """Endpoints sharing a CA bundle load it once per call, again on the next call."""
    with patch.object(
        tls, "build_verify_context", wraps=tls.build_verify_context
    ) as build:
        async with tls_server(leaf) as server:
            endpoints = [
                Endpoint("127.0.0.1", server.port, "example.test", str(ca_bundle))
                for _ in range(4)
            ]
            results = await tls.inspect_endpoints(endpoints, concurrency=4)
            assert all(
                isinstance(r, EndpointCertificate) and r.verified for r in results
            )
            assert build.call_count == 1
            await tls.inspect_endpoints(endpoints[:1])
            assert build.call_count == 2


async def test_unreadable_bundle_fails_every_endpoint_using_it(
    tmp_path: Path,
) -> None:
    """A missing bundle is not remembered: each endpoint reports its own error."""
    missing = str(tmp_path / "nope.pem")
    results = await tls.inspect_endpoints(
        [Endpoint("127.0.0.1", 443, ca_bundle=missing) for _ in range(2)]
    )
    assert all(isinstance(r, x509.CertificateFileNotFoundError) for r in results)
    assert results[0] is not results[1]


async def test_own_loop_same_results_on_another_thread(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """With own_loop the checks run (and the resolver is awaited) on another thread."""
    threads: set[int] = set()

    async def resolver(host: str, port: int) -> list[str]:
        threads.add(threading.get_ident())
        return ["127.0.0.1"]

    with refused_port() as closed:
        async with tls_server(leaf) as server:
            endpoints = [
                Endpoint("good.test", server.port, "example.test", str(ca_bundle)),
                Endpoint("refused.test", closed),
                Endpoint("unknown.test", server.port, "example.test"),
            ]
            here = await tls.inspect_endpoints(endpoints, resolver=resolver)
            assert threads == {threading.get_ident()}
            threads.clear()
            there = await tls.inspect_endpoints(
                endpoints, resolver=resolver, own_loop=True
            )
    assert len(threads) == 1
    assert threading.get_ident() not in threads
    assert [type(r) for r in there] == [type(r) for r in here]
    assert isinstance(there[0], EndpointCertificate)
    assert there[0].verified
    assert isinstance(there[1], x509.EndpointConnectionRefusedError)
    assert isinstance(there[2], EndpointCertificate)
    assert not there[2].verified
    assert not _own_loop_threads()


async def test_own_loop_cancelled_with_the_caller(socket_enabled: None) -> None:
    """Cancelling the caller stops the checks long before their timeout."""
    loop = asyncio.get_running_loop()
    async with stalling_server() as server:
        task = asyncio.create_task(
            tls.inspect_endpoints(
                [Endpoint("127.0.0.1", server.port)],
                timeout_seconds=30,
                own_loop=True,
            )
        )
        while server.connections == 0:
            await asyncio.sleep(0.01)
        assert _own_loop_threads()  # the private loop's pool is alive
        start = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The private loop ends (asyncio.run joins its pool) long before 30 s.
        while _own_loop_threads() and loop.time() - start < 5:
            await asyncio.sleep(0.01)
        assert not _own_loop_threads()


def _own_loop_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith(tls.OWN_LOOP_THREAD_NAME)
    ]


async def test_own_loop_propagates_unexpected_errors(
    socket_enabled: None, leaf: certs.IssuedCertificate
) -> None:
    """An exception that is not a CertificateError reaches the caller."""

    async def broken(host: str, port: int) -> list[str]:
        raise RuntimeError("resolver bug")

    with pytest.raises(ExceptionGroup) as err:
        await tls.inspect_endpoints(
            [Endpoint("broken.test", 443)], resolver=broken, own_loop=True
        )
    assert err.group_contains(RuntimeError, match="resolver bug")


async def test_hung_lookups_do_not_starve_the_other_checks(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """Name lookups that hang (a dead name server) keep their threads: others go on."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.startswith("slow"):
            release.wait(30)  # until the test has its results
        return real(host, *args, **kwargs)

    async with tls_server(leaf) as server:
        # One bundle for all: its one load comes first, then the lookups queue
        # in order, the healthy endpoint's last.
        endpoints = [
            Endpoint(f"slow{index}.test", 443, "example.test", str(ca_bundle))
            for index in range(3)
        ] + [Endpoint("localhost", server.port, "example.test", str(ca_bundle))]
        with patch.object(socket, "getaddrinfo", getaddrinfo):
            try:
                results = await tls.inspect_endpoints(
                    endpoints, timeout_seconds=2, own_loop=True
                )
            finally:
                release.set()
    assert isinstance(results[-1], EndpointCertificate)
    assert all(isinstance(r, x509.CertificateError) for r in results[:-1])


async def test_cancel_just_after_the_private_loop_ended(socket_enabled: None) -> None:
    """A cancellation that arrives as the run ends is a cancellation, nothing else."""
    ended = threading.Event()
    proceed = threading.Event()
    original = tls._OwnLoopRun.run

    def run(self: Any) -> Any:
        try:
            return original(self)
        finally:
            ended.set()
            proceed.wait(5)  # the caller cancels between loop close and result

    loop = asyncio.get_running_loop()
    with patch.object(tls._OwnLoopRun, "run", run):
        task = asyncio.create_task(
            tls.inspect_endpoints([Endpoint("127.0.0.1", 9)], own_loop=True)
        )
        await loop.run_in_executor(None, ended.wait, 5)
        task.cancel()
        proceed.set()
        with pytest.raises(asyncio.CancelledError):
            await task
