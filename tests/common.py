"""Plain helpers for the Home Assistant level tests (set-up is in conftest.py).

Like ``tests/components/<domain>/__init__.py`` in Home Assistant core: values,
builders and queries that tests call with their own arguments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from cryptography import x509
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access import certificate as certificate_module
from custom_components.secure_remote_access.account import async_acme_client
from custom_components.secure_remote_access.const import (
    CONF_ACME_CA_BUNDLE,
    CONF_ACME_DIRECTORY,
    CONF_ACME_DIRECTORY_URL,
    CONF_CERTIFICATE_PATH,
    CONF_DNS_SERVER,
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_ENDPOINTS,
    CONF_KEY_TYPE,
    CONF_PRIVATE_KEY_PATH,
    CONF_VALIDATION_METHOD,
    CONF_WILDCARD,
    CUSTOM_CA,
    DOMAIN,
    SECTION_TESTING,
    VALIDATION_DNS01,
)
from custom_components.secure_remote_access.issues import CERTIFICATE_ISSUE_KEYS
from custom_components.secure_remote_access.protocol import pairfiles as files_module
from custom_components.secure_remote_access.renewal import FIRST_CHECK_DELAY
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

UPDATE_URL = "https://www.duckdns.org/update"
TOKEN = "a7c4d0ad-114e-40ef-ba1d-d217904a50f2"
NAME = "myhome.duckdns.org"
DOMAINS = [NAME]
EXPIRY = "certificate_expiry"
DAYS = "certificate_days_remaining"
PROBLEM = "certificate_problem"
# A DuckDNS name the test CA refuses (Pebble's domain block list).
REFUSED_NAME = "refused.duckdns.org"
# A name of one's own whose challenge record delegates to a DuckDNS name.
OWN = "home.dlg-e2e.example.com"
RECORD = f"_acme-challenge.{OWN}"
TARGET = "_acme-challenge.myhome.duckdns.org"

# What the ``setup_entry`` and ``start_duckdns`` fixtures (conftest.py) return.
type SetupEntry = Callable[..., Awaitable[MockConfigEntry]]
type StartDuckDns = Callable[..., Awaitable[tuple[FakeDuckDns, str]]]


def suggested(schema: Mapping[Any, Any]) -> dict[str, Any]:
    """The values a form's schema (or one of its sections') pre-fills, by field."""
    return {
        str(key): key.description["suggested_value"]
        for key in schema
        if key.description and "suggested_value" in key.description
    }


def section_schema(schema: Mapping[Any, Any], name: str) -> Mapping[Any, Any]:
    """The fields of the form section called ``name``."""
    return next(value.schema.schema for key, value in schema.items() if key == name)


def duckdns_reply(
    ipv4: str = "203.0.113.7", ipv6: str = "", changed: bool = True
) -> str:
    """A verbose DuckDNS reply to an address update, as the real service sends it."""
    return f"OK\n{ipv4}\n{ipv6}\n{'UPDATED' if changed else 'NOCHANGE'}"


def reply_duckdns(
    aioclient_mock: AiohttpClientMocker, text: str | None = None, **kwargs: Any
) -> None:
    """From now on answer every DuckDNS update with ``text`` (default: OK, updated)."""
    aioclient_mock.clear_requests()
    aioclient_mock.get(
        UPDATE_URL, text=duckdns_reply() if text is None else text, **kwargs
    )


# The old name, still used by tests/checklist (its conftest and test_runner).
mock_duckdns = reply_duckdns


def mock_entry(options: dict[str, Any] | None = None, **data: Any) -> MockConfigEntry:
    """A config entry for one DuckDNS name (``data`` adds to or replaces its data)."""
    entry_data: dict[str, Any] = {CONF_DOMAINS: DOMAINS, CONF_TOKEN: TOKEN, **data}
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry_data[CONF_DOMAINS][0],
        unique_id=",".join(entry_data[CONF_DOMAINS]),
        data=entry_data,
        options=options or {},
    )


async def setup_integration(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Add ``entry`` (unless it is there) and set it up."""
    if hass.config_entries.async_get_entry(entry.entry_id) is None:
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def setup_duckdns_entry(
    hass: HomeAssistant,
    url: str,
    options: dict[str, Any],
    domains: list[str] | None = None,
) -> MockConfigEntry:
    """Set up an entry for ``domains`` that updates through the DuckDNS at ``url``."""
    entry = mock_entry(
        options, **{CONF_DOMAINS: domains or DOMAINS, CONF_DUCKDNS_URL: url}
    )
    await setup_integration(hass, entry)
    return entry


async def renew(
    hass: HomeAssistant, entry: MockConfigEntry, **data: Any
) -> dict[str, Any]:
    """Call ``renew_certificate`` for ``entry`` and return its response."""
    response = await hass.services.async_call(
        DOMAIN,
        "renew_certificate",
        {"config_entry_id": entry.entry_id, **data},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return response


def last_outcome(entry: MockConfigEntry) -> dict[str, Any]:
    """What the entry's last renewal check did, as the action would respond.

    The first certificate is ordered right after setup: this is its outcome.
    """
    managed = entry.runtime_data.managed
    assert managed is not None
    outcome = managed.renewal.state.last_outcome
    assert outcome is not None
    return outcome


async def deactivate_account(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    """Deactivate the entry's ACME account at the CA (RFC 8555 section 7.3.6)."""
    managed = entry.runtime_data.managed
    assert managed is not None
    client = await async_acme_client(hass, managed.manager.settings)
    url = client.account_url
    assert url is not None
    await client._post(url, {"status": "deactivated"})
    return url


async def advance(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    delta: timedelta,
    *,
    background: bool = False,
) -> None:
    """Move the clock and run what became due (with background tasks if asked)."""
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=background)


async def setup_until_first_check(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: MockConfigEntry
) -> None:
    """Set ``entry`` up and let its first renewal check run, and only that one.

    A certificate to obtain (or that does not fit) is ordered right after
    setup; a fitting one is checked within a minute.
    """
    started = dt_util.utcnow()
    await setup_integration(hass, entry)
    managed = entry.runtime_data.managed
    assert managed is not None
    checked = managed.renewal.state.last_check
    if checked is None or checked < started:
        await advance(hass, freezer, timedelta(seconds=FIRST_CHECK_DELAY[1]))


async def tick(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta
) -> None:
    """Move the clock and run what became due, background tasks included."""
    await advance(hass, freezer, delta, background=True)


def pebble_options(
    pebble: PebbleServer, ssl_dir: Path | None = None, **extra: Any
) -> dict[str, Any]:
    """Entry options that get certificates from ``pebble`` (into ``ssl_dir``).

    dns-01 unless ``extra`` says otherwise: the session's Pebble is shared, and
    a persistent record one test leaves would name another account in the next
    (tests/test_persist.py covers dns-persist-01 with a Pebble of its own).
    """
    options: dict[str, Any] = {
        CONF_ACME_DIRECTORY: pebble.directory_url,
        CONF_ACME_CA_BUNDLE: str(pebble.ca_bundle_path),
        CONF_VALIDATION_METHOD: VALIDATION_DNS01,
    }
    if ssl_dir is not None:
        options |= {
            CONF_CERTIFICATE_PATH: str(ssl_dir / "fullchain.pem"),
            CONF_PRIVATE_KEY_PATH: str(ssl_dir / "privkey.pem"),
            CONF_KEY_TYPE: "ec-p256",
            CONF_WILDCARD: False,
        }
    return {**options, CONF_DNS_SERVER: pebble.dns_server, **extra}


def certificate_form(
    pebble: PebbleServer, ssl_dir: Path, **extra: Any
) -> dict[str, Any]:
    """What a user enters in the certificate form for Pebble: another CA's URL."""
    entered = {
        **pebble_options(pebble, ssl_dir, **extra),
        CONF_ACME_DIRECTORY: CUSTOM_CA,
        CONF_ACME_DIRECTORY_URL: pebble.directory_url,
    }
    entered[SECTION_TESTING] = {CONF_DNS_SERVER: entered.pop(CONF_DNS_SERVER)}
    return entered


def managed_options(
    cert: Path, key: Path, *, wildcard: bool = False, **extra: Any
) -> dict[str, Any]:
    """Entry options that manage a certificate at ``cert`` / ``key``."""
    return {
        CONF_ACME_DIRECTORY: "https://ca.invalid/directory",
        CONF_CERTIFICATE_PATH: str(cert),
        CONF_PRIVATE_KEY_PATH: str(key),
        CONF_WILDCARD: wildcard,
        **extra,
    }


def endpoint_options(*endpoints: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Entry options that only watch remote endpoints."""
    return {CONF_ENDPOINTS: list(endpoints), **extra}


def entity_id(
    hass: HomeAssistant, entry: MockConfigEntry, source_key: str, description: str
) -> str:
    """The entity ID of one certificate entity, found by its unique ID."""
    platform = "binary_sensor" if description == PROBLEM else "sensor"
    found = er.async_get(hass).async_get_entity_id(
        platform, DOMAIN, f"{entry.entry_id}_{source_key}_{description}"
    )
    assert found is not None, (source_key, description)
    return found


def state(
    hass: HomeAssistant, entry: MockConfigEntry, source_key: str, description: str
) -> State:
    """The state of one certificate entity."""
    current = hass.states.get(entity_id(hass, entry, source_key, description))
    assert current is not None
    return current


def certificate_issues(hass: HomeAssistant, entry_id: str) -> dict[str, ir.IssueEntry]:
    """The entry's certificate issues, keyed ``<translation key>:<certificate key>``."""
    found: dict[str, ir.IssueEntry] = {}
    for (domain, issue_id), issue in ir.async_get(hass).issues.items():
        for key in CERTIFICATE_ISSUE_KEYS:
            prefix = f"{key}_{entry_id}_"
            if domain == DOMAIN and issue_id.startswith(prefix):
                found[f"{key}:{issue_id.removeprefix(prefix)}"] = issue
    return found


@contextmanager
def disk_full(writes: int | None = None) -> Iterator[None]:
    """The next ``writes`` writes of the pair (all when None) fail: disk full."""
    real_write = files_module.write_certificate_pair
    failed = 0

    def write(*args: Any, **kwargs: Any) -> Any:
        nonlocal failed
        if writes is None or failed < writes:
            failed += 1
            raise files_module.PairWriteError(
                "cannot write the new pair: No space left"
            )
        return real_write(*args, **kwargs)

    with patch.object(certificate_module, "write_certificate_pair", write):
        yield


def write_executor(path: Path, data: bytes) -> Callable[[], None]:
    """A job that writes ``data`` to ``path`` (for the executor)."""

    def write() -> None:
        path.write_bytes(data)

    return write


def read_leaf(path: Path) -> x509.Certificate:
    """The first certificate in the PEM file at ``path``."""
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def dns_names(cert: x509.Certificate) -> set[str]:
    """The DNS names a certificate is for."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(san.value.get_values_for_type(x509.DNSName))


async def update_dns(hass: HomeAssistant, entry_id: str) -> dict[str, Any] | None:
    """Call ``update_dns`` for the entry ``entry_id`` and return its response."""
    return await hass.services.async_call(
        DOMAIN,
        "update_dns",
        {"config_entry_id": entry_id},
        blocking=True,
        return_response=True,
    )
