"""Automatic renewal on the CA's schedule, backoff across restarts, rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
import datetime as dt
from datetime import timedelta
from pathlib import Path
import socket
from typing import Any
from unittest.mock import patch

from cryptography import x509
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import CONF_TOKEN, EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.secure_remote_access.certificate import (
    CertificateManager,
    CertificateRenewalError,
)
from custom_components.secure_remote_access.const import (
    CONF_ACME_CA_BUNDLE,
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_DNS_SERVER,
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    DOMAIN,
)
from custom_components.secure_remote_access.protocol.files import write_certificate_pair
from custom_components.secure_remote_access.served import (
    SwapResult,
    async_presented_serial,
    served_certificate,
    served_files,
)
from tests.fakes import certs
from tests.fakes.duckdns import FakeDuckDns, start_fake_duckdns, stop_fake_duckdns
from tests.fakes.pebble import PebbleServer

from .common import TOKEN

NAME = "myhome.duckdns.org"
# Build the test CA before any test freezes time (cryptography rejects
# datetimes of the real class while freezegun's class is patched in).
certs.shared_pki()
NEXT = "sensor.myhome_duckdns_org_next_certificate_renewal"
RESULT = "sensor.myhome_duckdns_org_last_renewal_result"


@pytest.fixture
async def duckdns_url(socket_enabled: None, pebble: PebbleServer) -> AsyncIterator[str]:
    """A DuckDNS stand-in publishing TXT values through challtestsrv."""
    fake = FakeDuckDns(
        token=TOKEN, domains=["myhome"], challtestsrv_url=pebble.challtestsrv_url
    )
    runner, url = await start_fake_duckdns(fake)
    yield url
    await stop_fake_duckdns(fake, runner)


def _entry(url: str, ssl_dir: Path, **options: Any) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=NAME,
        unique_id=NAME,
        data={CONF_DOMAINS: [NAME], CONF_TOKEN: TOKEN, CONF_DUCKDNS_URL: url},
        options={
            CONF_CERTIFICATE_PATH: str(ssl_dir / "fullchain.pem"),
            CONF_PRIVATE_KEY_PATH: str(ssl_dir / "privkey.pem"),
            **options,
        },
    )


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    if hass.config_entries.async_get_entry(entry.entry_id) is None:
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def _advance(hass: HomeAssistant, freezer: Any, delta: timedelta) -> None:
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificates(path.read_bytes())[0].serial_number


# --- A fake CA for long simulations: certificates valid from "now" ----------------


class FakeCa:
    """Stands in for issuance: writes a fresh pair valid from the frozen now."""

    def __init__(self, lifetime: timedelta) -> None:
        """Issue certificates of ``lifetime``."""
        self.lifetime = lifetime
        self.issued: list[tuple[Any, Any]] = []
        self.failures: list[BaseException] = []
        self.orders = 0

    async def issue(self, manager: CertificateManager, current: Any) -> Any:
        self.orders += 1
        if self.failures:
            raise self.failures.pop(0)
        # Under freezegun, cryptography only accepts the patched datetime class.
        now = dt.datetime.fromtimestamp(dt_util.utcnow().timestamp(), dt.UTC)
        pair = certs.issue(
            list(manager.settings.names),
            not_before=now,
            not_after=now + self.lifetime,
            key=certs.generate_key(slot=len(self.issued) % 3),
        )
        await manager.hass.async_add_executor_job(
            lambda: write_certificate_pair(
                manager.settings.certificate_path,
                manager.settings.private_key_path,
                pair.fullchain_pem,
                pair.key_pem,
                expected_names=manager.settings.names,
                now=now,
            )
        )
        self.issued.append((now, now + self.lifetime))
        return _Issued(pair, now, now + self.lifetime, manager.settings.names)


class _Issued:
    def __init__(self, pair: Any, not_before: Any, not_after: Any, names: Any) -> None:
        self.names = names
        self.not_before = not_before
        self.not_after = not_after
        self.serial_hex = format(
            x509.load_pem_x509_certificate(pair.fullchain_pem).serial_number, "x"
        )
        self.profile = None


@pytest.fixture
def fake_ca() -> Generator[FakeCa]:
    """Patch issuance and ARI with a fake CA (90-day certificates by default)."""
    ca = FakeCa(timedelta(days=90))

    async def issue(
        self: CertificateManager, current: Any, *, replaces: bool = True
    ) -> Any:
        return await ca.issue(self, current)

    async def no_ari(self: CertificateManager, current: Any) -> None:
        return None

    with (
        patch.object(CertificateManager, "async_issue", issue),
        patch.object(CertificateManager, "async_renewal_info", no_ari),
    ):
        yield ca


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [
        (timedelta(days=90), 7),  # days 0, 60, ..., 360
        (timedelta(days=45), 13),  # every 30 days
        (timedelta(days=6), 122),  # half the lifetime: every 3 days
    ],
)
async def test_one_year_never_expires(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    aioclient_mock: Any,
    lifetime: timedelta,
    expected: int,
) -> None:
    """A simulated year issues the expected number of certificates, none expires."""
    aioclient_mock.get(
        "https://www.duckdns.org/update", text="OK\n203.0.113.7\n\nNOCHANGE"
    )
    ca = fake_ca
    ca.lifetime = lifetime
    entry = _entry("https://www.duckdns.org/update", tmp_path, acme_directory="x")
    await _setup(hass, entry)
    start = dt_util.utcnow()
    await _advance(hass, freezer, timedelta(minutes=1))
    assert len(ca.issued) == 1
    step = timedelta(hours=6)
    while dt_util.utcnow() < start + timedelta(days=365):
        await _advance(hass, freezer, step)
        now = dt_util.utcnow()
        assert any(nb <= now < na for nb, na in ca.issued[-1:]), "certificate expired"
    assert len(ca.issued) == expected
    state = hass.states.get(RESULT)
    assert state is not None
    assert state.state in ("renewed", "not_due")


async def test_failures_back_off_across_restart(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    aioclient_mock: Any,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Rate limits push the retry to the CA's time; backoff survives a restart."""
    aioclient_mock.get(
        "https://www.duckdns.org/update", text="OK\n203.0.113.7\n\nNOCHANGE"
    )
    ca = fake_ca
    now = dt_util.utcnow()
    ca.failures = [
        CertificateRenewalError("too many certificates", now + timedelta(hours=3)),
        CertificateRenewalError("DNS timeout"),
        CertificateRenewalError("DNS timeout"),
    ]
    entry = _entry("https://www.duckdns.org/update", tmp_path, acme_directory="x")
    await _setup(hass, entry)
    await _advance(hass, freezer, timedelta(minutes=1))
    scheduler = entry.runtime_data.renewal
    assert scheduler is not None
    assert scheduler.state.failures == 1
    assert scheduler.state.next_attempt == now + timedelta(hours=3)
    assert hass.states.get(RESULT).state == "failed"
    assert dt_util.parse_datetime(hass.states.get(NEXT).state) == (
        now + timedelta(hours=3)
    ).replace(microsecond=0)
    issue = issue_registry.async_get_issue(DOMAIN, f"renewal_failed_{entry.entry_id}")
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.is_fixable
    assert issue.translation_placeholders["detail"] == "too many certificates"
    assert TOKEN not in str(issue.translation_placeholders)

    # A restart keeps the failure count and the next attempt.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    scheduler = entry.runtime_data.renewal
    assert scheduler is not None
    assert scheduler.state.failures == 1
    await _advance(hass, freezer, timedelta(hours=2))
    assert len(ca.failures) == 2, "retried before the CA's retry time"
    await _advance(hass, freezer, timedelta(hours=1, minutes=1))
    assert len(ca.failures) == 1
    assert scheduler.state.failures == 2
    # Then 10 minutes, as the backoff says (1 min was the first step).
    await _advance(hass, freezer, timedelta(minutes=9))
    assert len(ca.failures) == 1
    await _advance(hass, freezer, timedelta(minutes=1, seconds=1))
    assert not ca.failures
    assert scheduler.state.failures == 3
    await _advance(hass, freezer, timedelta(minutes=100, seconds=1))
    assert len(ca.issued) == 1
    assert scheduler.state.failures == 0
    assert hass.states.get(RESULT).state == "renewed"
    assert (
        issue_registry.async_get_issue(DOMAIN, f"renewal_failed_{entry.entry_id}")
        is None
    )


async def test_nothing_runs_before_start(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    aioclient_mock: Any,
) -> None:
    """While Home Assistant starts, no renewal runs."""
    aioclient_mock.get(
        "https://www.duckdns.org/update", text="OK\n203.0.113.7\n\nNOCHANGE"
    )
    ca = fake_ca
    hass.set_state(CoreState.starting)
    entry = _entry("https://www.duckdns.org/update", tmp_path, acme_directory="x")
    await _setup(hass, entry)
    await _advance(hass, freezer, timedelta(hours=1))
    assert not ca.issued
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await _advance(hass, freezer, timedelta(minutes=1))
    assert len(ca.issued) == 1


# --- Against Pebble: short-lived certificates and ARI ------------------------------


def _pebble_options(pebble: PebbleServer, **extra: Any) -> dict[str, Any]:
    return {
        CONF_ACME_DIRECTORY: pebble.directory_url,
        CONF_ACME_CA_BUNDLE: str(pebble.ca_bundle_path),
        CONF_DNS_SERVER: pebble.dns_server,
        **extra,
    }


@pytest.fixture
def ticking() -> Generator[Any]:
    """Time travel that keeps the clock running.

    Talking to a real CA needs real waits (polling with Retry-After), which a
    stopped clock would never finish.
    """
    with freeze_time(dt_util.utcnow(), tick=True) as frozen:
        yield frozen


async def test_shortlived_certificate_renews_by_itself(
    hass: HomeAssistant,
    ticking: Any,
    tmp_path: Path,
    pebble: PebbleServer,
    duckdns_url: str,
) -> None:
    """A 6-day certificate is issued after start and renewed before it expires."""
    freezer = ticking
    entry = _entry(
        duckdns_url, tmp_path, **_pebble_options(pebble, **{CONF_PROFILE: "shortlived"})
    )
    await _setup(hass, entry)
    await _advance(hass, freezer, timedelta(minutes=1))
    cert_path = tmp_path / "fullchain.pem"
    first = _serial(cert_path)
    leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc < timedelta(days=7)
    assert hass.states.get(RESULT).state == "renewed"
    next_renewal = dt_util.parse_datetime(hass.states.get(NEXT).state)
    assert next_renewal is not None
    assert next_renewal < leaf.not_valid_after_utc

    # Jump to a day before expiry: the scheduler renews on its own.
    await _advance(
        hass, freezer, leaf.not_valid_after_utc - dt_util.utcnow() - timedelta(days=1)
    )
    assert _serial(cert_path) != first


async def test_ari_window_moves_renewal(
    hass: HomeAssistant,
    ticking: Any,
    tmp_path: Path,
    pebble: PebbleServer,
    duckdns_url: str,
) -> None:
    """When the CA moves the ARI window into the past, the renewal follows it."""
    freezer = ticking
    entry = _entry(duckdns_url, tmp_path, **_pebble_options(pebble))
    await _setup(hass, entry)
    await _advance(hass, freezer, timedelta(minutes=1))
    cert_path = tmp_path / "fullchain.pem"
    first = _serial(cert_path)
    scheduler = entry.runtime_data.renewal
    assert scheduler is not None
    await _advance(hass, freezer, timedelta(hours=1))
    assert _serial(cert_path) == first, "a 90-day certificate is not due yet"

    now = dt_util.utcnow()
    await pebble.set_renewal_info(
        cert_path.read_text(),
        {
            "suggestedWindow": {
                "start": (now - timedelta(days=2)).isoformat(),
                "end": (now - timedelta(days=1)).isoformat(),
            },
            "explanationURL": "https://ca.example/incident",
        },
    )
    await _advance(hass, freezer, timedelta(hours=13))
    assert _serial(cert_path) != first
    assert hass.states.get(RESULT).state == "renewed"


# --- Rotation into the running server --------------------------------------------


@pytest.fixture
def disable_http_server() -> Generator[None]:
    """Let these tests run Home Assistant's real web server."""
    yield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start_http(hass: HomeAssistant, cert: Path, key: Path) -> int:
    port = _free_port()
    assert await async_setup_component(
        hass,
        "http",
        {
            "http": {
                "server_host": ["127.0.0.1"],
                "server_port": port,
                "ssl_certificate": str(cert),
                "ssl_key": str(key),
            }
        },
    )
    await hass.http.start()
    return port


async def test_rotation_after_renewal_without_restart(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    aioclient_mock: Any,
    socket_enabled: None,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The running server presents the renewed certificate at once."""
    aioclient_mock.get(
        "https://www.duckdns.org/update", text="OK\n203.0.113.7\n\nNOCHANGE"
    )
    old = certs.issue([NAME])
    cert_path, key_path = old.write(tmp_path)
    await _start_http(hass, cert_path, key_path)
    files = served_files(hass)
    assert files is not None
    assert await async_presented_serial(files.host, files.port) == format(
        _serial(cert_path), "x"
    )

    entry = _entry("https://www.duckdns.org/update", tmp_path, acme_directory="x")
    await _setup(hass, entry)
    response = await hass.services.async_call(
        DOMAIN,
        "renew_certificate",
        {"config_entry_id": entry.entry_id, "force": True},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert await async_presented_serial(files.host, files.port) == response["serial"]
    assert issue_registry.async_get_issue(DOMAIN, "restart_required") is None

    # A certificate replaced behind our back is picked up too.
    other = certs.issue([NAME], key=certs.generate_key(slot=7))
    other.write(tmp_path)
    served = served_certificate(hass)
    assert await served.async_check() is SwapResult.ROTATED
    assert await async_presented_serial(files.host, files.port) == format(
        _serial(cert_path), "x"
    )
    assert await served.async_check() is SwapResult.UP_TO_DATE
    await hass.http.stop()


async def test_rotation_not_needed_without_tls(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Without TLS files in Home Assistant's server there is nothing to rotate."""
    assert served_files(hass) is None
    assert await served_certificate(hass).async_check() is SwapResult.NOT_SERVED


async def test_renewal_failure_raises_translated_error(
    hass: HomeAssistant,
    tmp_path: Path,
    fake_ca: FakeCa,
    aioclient_mock: Any,
) -> None:
    """The action surfaces the CA's reason and the scheduler records the failure."""
    aioclient_mock.get(
        "https://www.duckdns.org/update", text="OK\n203.0.113.7\n\nNOCHANGE"
    )
    ca = fake_ca
    ca.failures = [CertificateRenewalError("rejectedIdentifier")]
    entry = _entry("https://www.duckdns.org/update", tmp_path, acme_directory="x")
    await _setup(hass, entry)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "renew_certificate",
            {"config_entry_id": entry.entry_id},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_placeholders == {"detail": "rejectedIdentifier"}
    assert entry.runtime_data.renewal.state.failures == 1
