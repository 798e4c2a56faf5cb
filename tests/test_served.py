"""The served certificate: a hot swap that succeeds or does nothing, on HA's real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
import logging
from pathlib import Path
import socket
import ssl
from typing import Any
from unittest.mock import patch

from cryptography import x509
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access import served as served_module
from custom_components.secure_remote_access.const import (
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_PRIVATE_KEY_PATH,
    DOMAIN,
)
from custom_components.secure_remote_access.protocol.x509 import read_matching_pair
from custom_components.secure_remote_access.served import (
    ServedFiles,
    SwapResult,
    async_presented_serial,
    build_server_context,
    served_certificate,
    served_files,
)
from tests.fakes import certs
from tests.fakes.issuer import FakeCa

from .common import TOKEN, renew

NAME = "myhome.duckdns.org"
UPDATE_URL = "https://www.duckdns.org/update"


@pytest.fixture
def disable_http_server() -> Generator[None]:
    """Let these tests run Home Assistant's real web server."""
    yield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start_https(
    hass: HomeAssistant, cert: Path, key: Path | None, **extra: Any
) -> ServedFiles:
    config: dict[str, Any] = {
        "server_host": ["127.0.0.1"],
        "server_port": _free_port(),
        "ssl_certificate": str(cert),
        **extra,
    }
    if key is not None:
        config["ssl_key"] = str(key)
    assert await async_setup_component(hass, "http", {"http": config})
    await hass.http.start()
    files = served_files(hass)
    assert files is not None
    return files


def _serial(pair: certs.IssuedCertificate) -> str:
    return format(pair.certificate.serial_number, "x")


async def _presented(files: ServedFiles) -> str | None:
    return await async_presented_serial(files.host, files.port)


@pytest.fixture
def pairs() -> tuple[certs.IssuedCertificate, certs.IssuedCertificate]:
    """The pair served at start and the renewed one (different keys)."""
    return (
        certs.issue([NAME], key=certs.generate_key(slot=31)),
        certs.issue([NAME], key=certs.generate_key(slot=32)),
    )


@pytest.fixture
async def https_server(
    hass: HomeAssistant,
    tmp_path: Path,
    socket_enabled: None,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
) -> AsyncIterator[tuple[ServedFiles, Path, Path]]:
    """Home Assistant's web server serving the first of ``pairs`` over TLS.

    Yields what it serves and the certificate and key files.
    """
    cert_path, key_path = pairs[0].write(tmp_path)
    files = await _start_https(hass, cert_path, key_path)
    yield files, cert_path, key_path
    await hass.http.stop()


async def test_swap_after_renewal_without_restart(
    hass: HomeAssistant,
    allowed_tmp_path: Path,
    fake_ca: FakeCa,
    aioclient_mock: Any,
    issue_registry: ir.IssueRegistry,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
    https_server: tuple[ServedFiles, Path, Path],
) -> None:
    """The running server presents the renewed certificate at once."""
    aioclient_mock.get(UPDATE_URL, text="OK\n203.0.113.7\n\nNOCHANGE")
    old, other = pairs
    files, cert_path, key_path = https_server
    live = hass.http.context
    assert await _presented(files) == _serial(old)

    entry = MockConfigEntry(
        domain=DOMAIN,
        title=NAME,
        unique_id=NAME,
        data={CONF_DOMAINS: [NAME], CONF_TOKEN: TOKEN, CONF_DUCKDNS_URL: UPDATE_URL},
        options={
            CONF_ACME_DIRECTORY: "x",
            CONF_CERTIFICATE_PATH: str(cert_path),
            CONF_PRIVATE_KEY_PATH: str(key_path),
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    response = await renew(hass, entry, force=True)
    assert response is not None
    assert await _presented(files) == response["serial"]
    assert hass.http.context is live, "the live context is never replaced"
    assert issue_registry.async_get_issue(DOMAIN, "restart_required") is None

    # A certificate replaced behind our back is picked up too.
    other.write(allowed_tmp_path)
    served = served_certificate(hass)
    assert await served.async_check() is SwapResult.ROTATED
    assert await _presented(files) == _serial(other)
    assert await served.async_check() is SwapResult.UP_TO_DATE


async def test_half_copied_pair_is_never_served(
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
    https_server: tuple[ServedFiles, Path, Path],
) -> None:
    """A new certificate next to the old key: keep serving, warn once, swap when complete."""
    old, new = pairs
    files, cert_path, key_path = https_server
    served = served_certificate(hass)
    certs.write_file(cert_path, new.fullchain_pem)  # the key is copied later
    with caplog.at_level(logging.WARNING):
        assert await served.async_check() is SwapResult.KEY_MISMATCH
        assert await served.async_check() is SwapResult.KEY_MISMATCH
    assert await _presented(files) == _serial(old)
    assert caplog.text.count("does not belong to the certificate") == 1
    certs.write_file(key_path, new.key_pem, 0o600)
    assert await served.async_check() is SwapResult.ROTATED
    assert await _presented(files) == _serial(new)


async def test_key_in_the_certificate_file(
    hass: HomeAssistant,
    tmp_path: Path,
    socket_enabled: None,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
) -> None:
    """Without ssl_key, Home Assistant reads the key from the certificate file."""
    old, new = pairs
    combined = certs.write_file(
        tmp_path / "combined.pem", old.fullchain_pem + old.key_pem
    )
    files = await _start_https(hass, combined, None)
    certs.write_file(combined, new.fullchain_pem + new.key_pem)
    assert await served_certificate(hass).async_check() is SwapResult.ROTATED
    assert await _presented(files) == _serial(new)
    await hass.http.stop()


async def test_failed_preparation_keeps_the_old_pair(
    hass: HomeAssistant,
    tmp_path: Path,
    issue_registry: ir.IssueRegistry,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
    https_server: tuple[ServedFiles, Path, Path],
) -> None:
    """When the new context cannot be built, nothing changes and a restart is asked for."""
    old, new = pairs
    files, cert_path, key_path = https_server
    new.write(tmp_path)
    with patch.object(
        served_module,
        "build_server_context",
        side_effect=ssl.SSLError("PEM lib"),
    ):
        result = await served_module.async_swap_after_renewal(hass, cert_path, key_path)
    assert result is SwapResult.RESTART_REQUIRED
    assert await _presented(files) == _serial(old)
    issue = issue_registry.async_get_issue(DOMAIN, "restart_required")
    assert issue is not None
    assert issue.is_fixable
    # A later successful swap clears it.
    result = await served_module.async_swap_after_renewal(hass, cert_path, key_path)
    assert result is SwapResult.ROTATED
    assert issue_registry.async_get_issue(DOMAIN, "restart_required") is None


async def test_unconfirmed_swap_goes_back(
    hass: HomeAssistant,
    tmp_path: Path,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
    https_server: tuple[ServedFiles, Path, Path],
) -> None:
    """If the handshake does not show the new serial, the previous context stays."""
    old, new = pairs
    files, cert_path, key_path = https_server
    new.write(tmp_path)
    real = served_module.async_presented_serial
    answers = iter([_serial(old), "ffff"])

    async def presented(host: str, port: int) -> str | None:
        return next(answers, None) or await real(host, port)

    with patch.object(served_module, "async_presented_serial", presented):
        assert (
            await served_certificate(hass).async_check() is SwapResult.RESTART_REQUIRED
        )
    assert await _presented(files) == _serial(old)


async def test_another_sni_callback_is_left_alone(
    hass: HomeAssistant,
    tmp_path: Path,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
    https_server: tuple[ServedFiles, Path, Path],
) -> None:
    """A server context with someone else's SNI callback is never taken over."""
    old, new = pairs
    files, cert_path, key_path = https_server
    hass.http.context.sni_callback = lambda *_: None
    new.write(tmp_path)
    assert await served_certificate(hass).async_check() is SwapResult.RESTART_REQUIRED
    assert await _presented(files) == _serial(old)


async def test_without_a_live_context_only_a_restart_helps(
    hass: HomeAssistant,
    tmp_path: Path,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
    https_server: tuple[ServedFiles, Path, Path],
) -> None:
    """No TLS context in the running server: the restart issue, nothing else."""
    old, new = pairs
    _, cert_path, key_path = https_server
    context, hass.http.context = hass.http.context, None
    new.write(tmp_path)
    assert await served_certificate(hass).async_check() is SwapResult.RESTART_REQUIRED
    hass.http.context = context


async def test_nothing_to_swap_without_tls(hass: HomeAssistant) -> None:
    """Without TLS files in Home Assistant's server there is nothing to swap."""
    assert served_files(hass) is None
    assert await served_certificate(hass).async_check() is SwapResult.NOT_SERVED


def test_fresh_context_follows_home_assistants_settings(tmp_path: Path) -> None:
    """Profile and client-certificate requirement carry over to the fresh context."""
    pair = certs.issue([NAME])
    cert_path, key_path = pair.write(tmp_path)
    bundle = certs.shared_pki().write_bundle(tmp_path / "clients.pem")
    loaded = read_matching_pair(cert_path, key_path)
    modern = build_server_context(loaded, None, None)
    assert modern.verify_mode is ssl.CERT_NONE
    assert modern.minimum_version >= ssl.TLSVersion.TLSv1_2
    strict = build_server_context(loaded, "intermediate", str(bundle))
    assert strict.verify_mode is ssl.CERT_REQUIRED
    assert [
        x509.load_der_x509_certificate(der).subject
        for der in strict.get_ca_certs(binary_form=True)
    ] == [certs.shared_pki().root.certificate.subject]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clients.pem",
        "fullchain.pem",
        "privkey.pem",
    ]
