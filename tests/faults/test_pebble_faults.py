"""Each protocol-level fault of the simulated year, proven against real Pebble.

Half the nonces rejected, Retry-After while polling, a 5xx and a 403 for a
refused ``replaces``: Pebble 2.10 produces all of them, and the integration
(entry, renewal coordinator, ACME client) gets its certificate anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access.const import (
    CONF_CERTIFICATE_PATH,
    CONF_PRIVATE_KEY_PATH,
    DOMAIN,
)
from custom_components.secure_remote_access.protocol.acme import (
    AccountKey,
    AcmeClient,
    DnsPropagationChecker,
    transport as transport_module,
)
from custom_components.secure_remote_access.protocol.acme.errors import (
    parse_retry_after,
)
from custom_components.secure_remote_access.protocol.acme.transport import (
    AcmeResponse,
    AcmeTransport,
)
from tests.common import StartDuckDns, pebble_options, renew, setup_duckdns_entry
from tests.fakes import certs
from tests.fakes.pebble import DuckDnsLikeSolver, PebbleServer

pytestmark = [pytest.mark.pebble, pytest.mark.usefixtures("allowed_tmp_path")]

NAME = "myhome.duckdns.org"
RESULT = "sensor.myhome_duckdns_org_last_renewal_result"


@pytest.fixture(scope="module")
def flaky_pebble() -> Iterator[PebbleServer]:
    """A Pebble that rejects half of all nonces."""
    with PebbleServer(extra_env={"PEBBLE_WFE_NONCEREJECT": "50"}) as server:
        yield server


@pytest.fixture(scope="module")
def slow_pebble() -> Iterator[PebbleServer]:
    """A Pebble that validates after up to 3 s and asks for 2 s between polls."""
    with PebbleServer(
        retry_after=2,
        extra_env={
            "PEBBLE_VA_NOSLEEP": "0",
            "PEBBLE_VA_SLEEPTIME": "3",
            "PEBBLE_AUTHZREUSE": "0",
        },
    ) as server:
        yield server


@dataclass
class Seen:
    """One HTTP exchange of the ACME transport, with the wall-clock time."""

    at: datetime
    method: str
    url: str
    status: int
    retry_after: str | None
    problem: str | None


@pytest.fixture
def exchanges() -> Iterator[list[Seen]]:
    """Record every request the ACME transport sends and its answer."""
    seen: list[Seen] = []
    real = AcmeTransport.request

    async def request(self: AcmeTransport, method: str, url: str, **kwargs: Any) -> Any:
        response: AcmeResponse = await real(self, method, url, **kwargs)
        problem = None
        if response.status >= 400 and response.body:
            problem = transport_module.error_from_response(response).type
        seen.append(
            Seen(
                datetime.now(UTC),
                method,
                url,
                response.status,
                response.headers.get("Retry-After"),
                problem,
            )
        )
        return response

    with patch.object(AcmeTransport, "request", request):
        yield seen


@pytest.fixture
def entry_for(
    hass: HomeAssistant, tmp_path: Path, start_duckdns: StartDuckDns
) -> Callable[[PebbleServer], Awaitable[MockConfigEntry]]:
    """Set up an entry that manages a certificate from the given Pebble."""

    async def make(pebble: PebbleServer) -> MockConfigEntry:
        _, url = await start_duckdns(pebble)
        options = pebble_options(
            pebble,
            **{
                CONF_CERTIFICATE_PATH: str(tmp_path / "fullchain.pem"),
                CONF_PRIVATE_KEY_PATH: str(tmp_path / "privkey.pem"),
            },
        )
        return await setup_duckdns_entry(hass, url, options)

    return make


def _orders(exchanges: list[Seen]) -> list[Seen]:
    """The newOrder answers, without the badNonce ones (Pebble rejects 5 %)."""
    return [
        s
        for s in exchanges
        if s.url.endswith("/order-plz") and not (s.problem or "").endswith(":badNonce")
    ]


def _serial(path: Path) -> str:
    leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
    return format(leaf.serial_number, "x")


async def test_half_the_nonces_rejected(
    hass: HomeAssistant,
    tmp_path: Path,
    flaky_pebble: PebbleServer,
    entry_for: Callable[[PebbleServer], Awaitable[MockConfigEntry]],
    exchanges: list[Seen],
) -> None:
    """With every other nonce refused, renewals still go through at once."""
    entry = await entry_for(flaky_pebble)
    exchanges.clear()  # the first certificate, ordered right after setup

    def rejected() -> list[Seen]:
        return [s for s in exchanges if s.problem and s.problem.endswith(":badNonce")]

    # Pebble refuses at random: renew until it has refused a few (all succeed).
    results = [await renew(hass, entry, force=True)]
    while len(rejected()) < 3 and len(results) < 8:
        results.append(await renew(hass, entry, force=True))
    assert all(result["renewed"] for result in results)
    assert _serial(tmp_path / "fullchain.pem") == results[-1]["serial"]
    assert len(rejected()) >= 3, "Pebble rejected fewer nonces than asked"
    # Every rejection was retried with the nonce it carried: no extra newNonce.
    nonce_requests = [s for s in exchanges if s.method == "HEAD"]
    assert len(nonce_requests) <= len(results)  # one per renewal at most


async def test_retry_after_is_never_undercut(
    hass: HomeAssistant,
    slow_pebble: PebbleServer,
    entry_for: Callable[[PebbleServer], Awaitable[MockConfigEntry]],
    exchanges: list[Seen],
) -> None:
    """While Pebble validates, polls of an authorization or order wait its Retry-After."""
    entry = await entry_for(slow_pebble)
    for _ in range(3):
        await renew(hass, entry, force=True)
        if any(s.retry_after and s.status == 200 for s in exchanges):
            break
    waited = [s for s in exchanges if s.retry_after and s.status == 200]
    assert waited, "Pebble never asked to wait: nothing was proven"
    for index, answer in enumerate(exchanges):
        if not answer.retry_after or answer.status >= 400:
            continue
        later = [s for s in exchanges[index + 1 :] if s.url == answer.url]
        if later:
            wait_until = parse_retry_after(answer.retry_after, answer.at)
            assert wait_until is not None
            assert later[0].at >= wait_until - timedelta(milliseconds=50), (
                answer,
                later[0],
            )


async def test_replaces_of_another_accounts_certificate(
    hass: HomeAssistant,
    tmp_path: Path,
    pebble: PebbleServer,
    entry_for: Callable[[PebbleServer], Awaitable[MockConfigEntry]],
    exchanges: list[Seen],
) -> None:
    """Pebble refuses ``replaces`` for another account's certificate (403): ordered again at once."""
    entry = await entry_for(pebble)
    # The certificate on disk came from another client (another account).
    foreign = await _issue_with_another_account(hass, pebble)
    (tmp_path / "fullchain.pem").write_text(foreign[0])
    (tmp_path / "privkey.pem").write_text(foreign[1])
    exchanges.clear()
    response = await renew(hass, entry, force=True)
    assert response["renewed"] is True
    orders = _orders(exchanges)
    assert [s.status for s in orders] == [403, 201], orders
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"renewal_failed_{entry.entry_id}")
        is None
    )


async def test_replaces_of_another_cas_certificate(
    hass: HomeAssistant,
    tmp_path: Path,
    pebble: PebbleServer,
    entry_for: Callable[[PebbleServer], Awaitable[MockConfigEntry]],
    exchanges: list[Seen],
) -> None:
    """A certificate of another CA: Pebble refuses its ``replaces`` (400), ordered again at once."""
    entry = await entry_for(pebble)
    certs.issue([NAME], key=certs.generate_key(slot=71)).write(tmp_path)
    exchanges.clear()
    response = await renew(hass, entry, force=True)
    assert response["renewed"] is True
    orders = _orders(exchanges)
    assert [s.status for s in orders] == [400, 201], orders


async def test_server_error_on_replaces_is_retried_without_it(
    hass: HomeAssistant,
    tmp_path: Path,
    pebble: PebbleServer,
    entry_for: Callable[[PebbleServer], Awaitable[MockConfigEntry]],
    exchanges: list[Seen],
) -> None:
    """Pebble answers 500 for a serial it never issued: ordered again at once without."""
    entry = await entry_for(pebble)
    # Pebble's own issuer, a serial it never issued (a CA reinstalled, a lost store).
    intermediate = x509.load_pem_x509_certificate(
        (await pebble.intermediate_pem()).encode()
    )
    key_id = intermediate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest
    pair = certs.issue([NAME], key=certs.generate_key(slot=72))
    leaf = _with_authority_key_id(pair.certificate, key_id)
    certs.write_file(tmp_path / "fullchain.pem", certs.to_pem([leaf]))
    certs.write_file(tmp_path / "privkey.pem", pair.key_pem, 0o600)
    exchanges.clear()
    response = await renew(hass, entry, force=True)
    assert response["renewed"] is True
    assert [s.status for s in _orders(exchanges)] == [500, 201]
    assert hass.states.get(RESULT).state == "renewed"


def _with_authority_key_id(leaf: x509.Certificate, key_id: bytes) -> x509.Certificate:
    """``leaf`` re-signed (by the test CA) with another Authority Key Identifier."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(leaf.issuer)
        .public_key(leaf.public_key())
        .serial_number(leaf.serial_number)
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_after_utc)
    )
    for extension in leaf.extensions:
        if isinstance(extension.value, x509.AuthorityKeyIdentifier):
            continue
        builder = builder.add_extension(extension.value, extension.critical)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier(key_id, None, None), critical=False
    )
    issuer = certs.shared_pki().intermediate
    return builder.sign(issuer.key, hashes.SHA256())


async def _issue_with_another_account(
    hass: HomeAssistant, pebble: PebbleServer
) -> tuple[str, str]:
    client = AcmeClient(
        async_get_clientsession(hass),
        pebble.directory_url,
        AccountKey.generate(),
        user_agent="another-client/1.0",
        ssl_context=pebble.ssl_context(),
    )
    await client.register_account(terms_of_service_agreed=True)
    issued = await client.issue_certificate(
        [NAME],
        DuckDnsLikeSolver(pebble),
        DnsPropagationChecker([pebble.dns_server], interval=0.05),
    )
    return issued.fullchain_pem, issued.private_key_pem
