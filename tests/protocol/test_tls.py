"""Tests for protocol/tls.py: inspecting remote TLS endpoints."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import socket
from typing import Any

import pytest

from custom_components.secure_remote_access.protocol import tls, x509
from custom_components.secure_remote_access.protocol.tls import (
    Endpoint,
    EndpointCertificate,
)
from custom_components.secure_remote_access.protocol.x509 import (
    CertificateInfo,
    VerificationStatus,
)
from tests.fakes import certs
from tests.fakes.tls_server import (
    garbage_server,
    refused_port,
    reset_server,
    stalling_server,
    tls_server,
)
from tests.protocol.common import NAMES, error_reason


async def test_endpoint_valid_with_private_ca(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """A chain from the private CA verifies against its bundle in one handshake."""
    async with tls_server(leaf) as server:
        result = await tls.inspect_endpoint(
            "127.0.0.1",
            server.port,
            server_name="www.example.test",
            ca_bundle=ca_bundle,
        )
    assert isinstance(result, EndpointCertificate)
    assert result.verification is VerificationStatus.VALID
    assert result.verified is True
    assert result.verification_message is None
    assert result.verification_code is None
    assert (result.host, result.port, result.address) == (
        "127.0.0.1",
        server.port,
        "127.0.0.1",
    )
    assert result.server_name == "www.example.test"
    assert result.ca_bundle == str(ca_bundle)
    assert result.tls_version == "TLSv1.3"
    assert result.cipher
    assert result.certificate == x509.inspect_pem(leaf.fullchain_pem)
    assert server.connections == 1
    assert server.server_names == ["www.example.test"]
    json.dumps(result.as_dict())


async def test_endpoint_ip_address_without_server_name(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """An IP host sends no SNI and is verified against the IP SANs."""
    async with tls_server(leaf) as server:
        result = await tls.inspect_endpoint(
            "127.0.0.1", server.port, ca_bundle=str(ca_bundle)
        )
    assert result.verification is VerificationStatus.VALID
    assert server.server_names == [None]


@pytest.mark.parametrize(
    ("make", "server_name", "bundle", "status", "code"),
    [
        (lambda: certs.issue(NAMES), "example.test", False, "unknown_issuer", 20),
        (lambda: certs.self_signed(NAMES), "example.test", False, "self_signed", 18),
        (
            lambda: certs.issue(NAMES, expired=True),
            "example.test",
            True,
            "expired",
            10,
        ),
        (
            lambda: certs.issue(NAMES, not_yet_valid=True),
            "example.test",
            True,
            "not_yet_valid",
            9,
        ),
        (
            lambda: certs.issue(["other.test"]),
            "example.test",
            True,
            "name_mismatch",
            62,
        ),
        (
            lambda: certs.issue(["*.example.test"]),
            "example.test",
            True,
            "name_mismatch",
            62,
        ),
        (
            lambda: certs.issue(["*.example.test"]),
            "api.example.test",
            True,
            "valid",
            None,
        ),
        (
            lambda: certs.issue(NAMES, key_type=certs.KeyType.RSA_2048),
            "example.test",
            True,
            "valid",
            None,
        ),
    ],
)
async def test_endpoint_verification_outcomes(
    socket_enabled: None,
    tmp_path: Path,
    make: Any,
    server_name: str,
    bundle: bool,
    status: str,
    code: int | None,
) -> None:
    """The certificate is fetched even when verification fails, with the reason."""
    issued: certs.IssuedCertificate = make()
    ca_bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem") if bundle else None
    async with tls_server(issued) as server:
        result = await tls.inspect_endpoint(
            "127.0.0.1", server.port, server_name=server_name, ca_bundle=ca_bundle
        )
    assert result.verification == status
    assert result.verification_code == code
    assert result.certificate.fingerprint_sha256 == issued.fingerprint_sha256
    assert result.certificate.chain_length == 1 + len(issued.intermediates)
    if code is None:
        assert server.connections == 1
    else:
        assert result.verification_message
        assert result.verified is False
        assert server.connections == 2


async def test_endpoint_sni_selects_certificate(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """The server name picks the certificate; the default serves the rest."""
    other = certs.issue(["other.test"], key_type=certs.KeyType.EC_P384)
    async with tls_server(leaf, sni={"other.test": other}) as server:
        first = await tls.inspect_endpoint(
            "127.0.0.1", server.port, server_name="other.test", ca_bundle=ca_bundle
        )
        second = await tls.inspect_endpoint(
            "127.0.0.1", server.port, server_name="example.test", ca_bundle=ca_bundle
        )
    assert first.certificate.fingerprint_sha256 == other.fingerprint_sha256
    assert first.certificate.key_size == 384
    assert first.verified
    assert second.certificate.fingerprint_sha256 == leaf.fingerprint_sha256
    assert second.verified
    assert server.server_names == ["other.test", "example.test"]


async def test_endpoint_host_name_with_injected_resolver(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """A host name is resolved by the resolver and used as SNI, IDNA-encoded."""
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    async with tls_server(leaf) as server:
        result = await tls.inspect_endpoint(
            "WWW.Example.Test.", server.port, ca_bundle=ca_bundle, resolver=resolver
        )
    assert result.verified
    assert result.host == "www.example.test"
    assert asked == [("www.example.test", server.port)]
    assert server.server_names == ["www.example.test"]


async def test_endpoint_connection_refused(socket_enabled: None) -> None:
    """Nothing listening: refused, for every resolved address."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "127.0.0.1"]

    with refused_port() as port:
        with pytest.raises(x509.EndpointConnectionRefusedError) as err:
            await tls.inspect_endpoint("127.0.0.1", port)
        assert error_reason(err) == "connection_refused"
        assert isinstance(err.value, x509.EndpointConnectionError)
        with pytest.raises(x509.EndpointConnectionRefusedError):
            await tls.inspect_endpoint("refused.test", port, resolver=resolver)


@pytest.mark.parametrize("graceful", [False, True])
async def test_endpoint_connection_reset(socket_enabled: None, graceful: bool) -> None:
    """A server that drops the connection during the handshake."""
    async with reset_server(graceful=graceful) as server:
        with pytest.raises(x509.EndpointConnectionResetError) as err:
            await tls.inspect_endpoint("127.0.0.1", server.port)
    assert error_reason(err) == "connection_reset"
    assert server.connections == 1
    assert server.received.startswith(b"\x16\x03")  # a TLS ClientHello


async def test_endpoint_timeout(socket_enabled: None) -> None:
    """A handshake that never completes hits the timeout."""
    loop = asyncio.get_running_loop()
    async with stalling_server() as server:
        start = loop.time()
        with pytest.raises(x509.EndpointTimeoutError) as err:
            await tls.inspect_endpoint("127.0.0.1", server.port, timeout_seconds=0.3)
        elapsed = loop.time() - start
    assert error_reason(err) == "timeout"
    assert 0.25 < elapsed < 3


async def test_endpoint_plain_tcp_is_a_handshake_failure(socket_enabled: None) -> None:
    """Non-TLS bytes from the server fail the handshake."""
    async with garbage_server() as server:
        with pytest.raises(x509.EndpointHandshakeError) as err:
            await tls.inspect_endpoint("127.0.0.1", server.port)
    assert error_reason(err) == "handshake_failed"
    assert "TLS handshake failed" in str(err.value)


async def test_endpoint_name_resolution_failures() -> None:
    """Unresolvable or invalid names fail without touching the network."""

    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def empty(host: str, port: int) -> list[str]:
        return []

    cases: list[tuple[str, Any, str]] = [
        ("nowhere.test", failing, "Name or service not known"),
        ("nowhere.test", empty, "no address"),
        ("host.invalid", None, "invalid"),
        ("bad host!", None, "invalid host name"),
        ("*.example.test", None, "invalid host name"),
        ("", None, "invalid host name"),
    ]
    for host, resolver, message in cases:
        with pytest.raises(x509.EndpointNameResolutionError, match=message) as err:
            await tls.inspect_endpoint(host, 443, resolver=resolver)
        assert error_reason(err) == "name_resolution_failed"


async def test_endpoint_bad_ca_bundle(tmp_path: Path) -> None:
    """A missing or garbage CA bundle raises a file or format error."""
    with pytest.raises(x509.CertificateFileNotFoundError) as err:
        await tls.inspect_endpoint("127.0.0.1", 443, ca_bundle=tmp_path / "nope.pem")
    assert error_reason(err) == "not_found"
    garbage = certs.write_file(tmp_path / "garbage.pem", certs.GARBAGE)
    with pytest.raises(x509.CertificateFormatError) as err2:
        await tls.inspect_endpoint("127.0.0.1", 443, ca_bundle=garbage)
    assert err2.value.path == str(garbage)


async def test_endpoint_der_ca_bundle(
    socket_enabled: None, tmp_path: Path, leaf: certs.IssuedCertificate
) -> None:
    """A DER trust anchor works too."""
    from cryptography.hazmat.primitives import serialization

    root = certs.shared_pki().root.certificate
    bundle = certs.write_file(
        tmp_path / "ca.der", root.public_bytes(serialization.Encoding.DER)
    )
    async with tls_server(leaf) as server:
        result = await tls.inspect_endpoint(
            "127.0.0.1", server.port, server_name="example.test", ca_bundle=bundle
        )
    assert result.verified


async def test_endpoint_without_certificate(
    socket_enabled: None, leaf: certs.IssuedCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handshake without a peer certificate is its own error."""
    monkeypatch.setattr(tls, "_peer_chain", lambda ssl_object: [])
    async with tls_server(leaf) as server:
        with pytest.raises(x509.EndpointNoCertificateError) as err:
            await tls.inspect_endpoint("127.0.0.1", server.port)
    assert error_reason(err) == "no_certificate"


async def test_inspect_endpoints_concurrently(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """Results come back in order, errors as values, bounded concurrency."""
    running = 0
    peak = 0

    async def resolver(host: str, port: int) -> list[str]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return ["127.0.0.1"]

    with refused_port() as closed:
        async with tls_server(leaf) as good, garbage_server() as bad:
            endpoints = [
                Endpoint(f"host{i}.test", good.port, "example.test", str(ca_bundle))
                for i in range(6)
            ]
            endpoints += [
                Endpoint("refused.test", closed),
                Endpoint("garbage.test", bad.port),
                Endpoint("www.example.test", good.port),
            ]
            results = await tls.inspect_endpoints(
                endpoints, concurrency=3, resolver=resolver
            )
    assert peak <= 3
    assert len(results) == 9
    for result in results[:6]:
        assert isinstance(result, EndpointCertificate)
        assert result.verified
    assert isinstance(results[6], x509.EndpointConnectionRefusedError)
    assert isinstance(results[7], x509.EndpointHandshakeError)
    last = results[8]
    assert isinstance(last, EndpointCertificate)
    assert last.verification is VerificationStatus.UNKNOWN_ISSUER
    assert isinstance(last.certificate, CertificateInfo)


async def test_endpoint_resolved_by_the_system_resolver(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """Without an injected resolver, ``localhost`` is resolved by the system."""
    async with tls_server(leaf) as server:
        result = await tls.inspect_endpoint(
            "localhost", server.port, server_name="example.test", ca_bundle=ca_bundle
        )
    assert result.verified
    assert result.host == "localhost"
    assert result.address in ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    ("alert", "error", "message"),
    [
        (b"\x01\x00", x509.EndpointConnectionResetError, "closed during the TLS"),
        (b"\x02\x28", x509.EndpointHandshakeError, "HANDSHAKE_FAILURE"),
    ],
)
async def test_endpoint_answering_with_a_tls_alert(
    socket_enabled: None, alert: bytes, error: type[x509.EndpointError], message: str
) -> None:
    """A close_notify in answer to the ClientHello is a reset; a fatal alert a failed handshake."""
    async with garbage_server(b"\x15\x03\x03\x00\x02" + alert) as server:
        with pytest.raises(error, match=message):
            await tls.inspect_endpoint("127.0.0.1", server.port)
