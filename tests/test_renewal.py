"""Automatic renewal on the CA's schedule, backoff across restarts, rotation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from cryptography import x509
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import CONF_TOKEN, EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import Context, CoreState, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, Unauthorized
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.file import WriteError
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access.certificate import (
    CertificateDelegationError,
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
    CONF_EXTRA_NAMES,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    DOMAIN,
    EVENT_CERTIFICATE_RENEWED,
)
from custom_components.secure_remote_access.issues import delegation_issue_id
from custom_components.secure_remote_access.protocol.acme import (
    IssuedCertificate,
    RenewalInfo,
)
from custom_components.secure_remote_access.protocol.delegation import (
    DelegationError,
    DelegationProblem,
)
from custom_components.secure_remote_access.renewal_state import IssuedStash
from tests.fakes import certs
from tests.fakes.issuer import FakeCa
from tests.fakes.pebble import PebbleServer

from .common import (
    NAME,
    TOKEN,
    UPDATE_URL,
    StartDuckDns,
    advance,
    disk_full,
    duckdns_reply,
    read_leaf,
    renew,
    setup_integration,
    setup_until_first_check,
)

NEXT = "sensor.myhome_duckdns_org_next_certificate_renewal"
RESULT = "sensor.myhome_duckdns_org_last_renewal_result"

# The tests write certificates into tmp_path, as into an allowlisted folder.
pytestmark = pytest.mark.usefixtures("allowed_tmp_path")


@pytest.fixture
def duckdns_response() -> dict[str, Any]:
    """The mocked DuckDNS finds the address unchanged."""
    return {"text": duckdns_reply(changed=False)}


@pytest.fixture
def fake_ca_entry(
    mock_duckdns: AiohttpClientMocker, fake_ca: FakeCa, tmp_path: Path
) -> MockConfigEntry:
    """An entry (not yet added) whose DuckDNS is mocked and whose CA is ``fake_ca``."""
    return _entry(UPDATE_URL, tmp_path, acme_directory="x")


@pytest.fixture
async def duckdns_url(start_duckdns: StartDuckDns, pebble: PebbleServer) -> str:
    """A DuckDNS stand-in publishing TXT values through challtestsrv."""
    _, url = await start_duckdns(pebble)
    return url


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


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificates(path.read_bytes())[0].serial_number


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
    fake_ca_entry: MockConfigEntry,
    lifetime: timedelta,
    expected: int,
) -> None:
    """A simulated year issues the expected number of certificates, none expires."""
    ca = fake_ca
    ca.lifetime = lifetime
    entry = fake_ca_entry
    await setup_integration(hass, entry)
    start = dt_util.utcnow()
    await advance(hass, freezer, timedelta(minutes=1))
    assert len(ca.issued) == 1
    step = timedelta(hours=6)
    while dt_util.utcnow() < start + timedelta(days=365):
        await advance(hass, freezer, step)
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
    fake_ca_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Rate limits push the retry to the CA's time; backoff survives a restart."""
    ca = fake_ca
    now = dt_util.utcnow()
    ca.failures = [
        CertificateRenewalError("too many certificates", now + timedelta(hours=3)),
        CertificateRenewalError("DNS timeout"),
        CertificateRenewalError("DNS timeout"),
    ]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    scheduler = entry.runtime_data.managed.renewal
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
    scheduler = entry.runtime_data.managed.renewal
    assert scheduler is not None
    assert scheduler.state.failures == 1
    await advance(hass, freezer, timedelta(hours=2))
    assert len(ca.failures) == 2, "retried before the CA's retry time"
    await advance(hass, freezer, timedelta(hours=1, minutes=1))
    assert len(ca.failures) == 1
    assert scheduler.state.failures == 2
    # Then 10 minutes, as the backoff says (1 min was the first step).
    await advance(hass, freezer, timedelta(minutes=9))
    assert len(ca.failures) == 1
    await advance(hass, freezer, timedelta(minutes=1, seconds=1))
    assert not ca.failures
    assert scheduler.state.failures == 3
    await advance(hass, freezer, timedelta(minutes=100, seconds=1))
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
    fake_ca_entry: MockConfigEntry,
) -> None:
    """While Home Assistant starts, no renewal runs."""
    ca = fake_ca
    hass.set_state(CoreState.starting)
    entry = fake_ca_entry
    await setup_integration(hass, entry)
    await advance(hass, freezer, timedelta(hours=1))
    assert not ca.issued
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await advance(hass, freezer, timedelta(minutes=1))
    assert len(ca.issued) == 1


def _failed_issue(
    issue_registry: ir.IssueRegistry, entry: MockConfigEntry
) -> ir.IssueEntry | None:
    return issue_registry.async_get_issue(DOMAIN, f"renewal_failed_{entry.entry_id}")


async def test_the_first_minute_looks_pending_not_broken(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """While the first certificate is ordered: no problem, and the time of that order."""
    fake_ca.gate = asyncio.Event()
    entry = fake_ca_entry
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    while fake_ca.running == 0:  # ordered right after setup, waiting at the gate
        await asyncio.sleep(0)
    status = hass.states.get(
        "binary_sensor.myhome_duckdns_org_managed_certificate_status"
    )
    assert status is not None
    assert (status.state, status.attributes["reason"]) == ("off", "not_issued_yet")
    first = entry.runtime_data.managed.renewal.next_check
    assert first is not None
    assert dt_util.parse_datetime(hass.states.get(NEXT).state) == first.replace(
        microsecond=0
    )
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    assert device is not None
    # The CA by its address, said to be one ("DuckDNS and x" read like a product).
    assert device.model == "DuckDNS and the ACME CA at x"
    fake_ca.gate.set()
    await hass.async_block_till_done()
    status = hass.states.get(
        "binary_sensor.myhome_duckdns_org_managed_certificate_status"
    )
    assert (status.state, status.attributes["reason"]) == ("off", "ok")


async def test_unexpected_error_is_a_visible_failure_and_retried(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any exception: counted, shown, logged once with its traceback, retried."""
    fake_ca.failures = [RuntimeError("boom"), KeyError("x")]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    assert fake_ca.orders == 1
    assert hass.states.get(RESULT).state == "failed"
    issue = _failed_issue(issue_registry, entry)
    assert issue is not None
    assert "unexpected error (RuntimeError)" in issue.translation_placeholders["detail"]
    assert "boom" not in issue.translation_placeholders["detail"]
    # The timer was re-armed: the retry runs a minute later, and fails again.
    await advance(hass, freezer, timedelta(minutes=1, seconds=1))
    assert fake_ca.orders == 2
    assert entry.runtime_data.managed.renewal.state.failures == 2
    unexpected = [r for r in caplog.records if "Unexpected error" in r.getMessage()]
    assert len(unexpected) == 1
    assert unexpected[0].exc_info is not None
    await advance(hass, freezer, timedelta(minutes=10, seconds=1))
    assert fake_ca.orders == 3
    assert hass.states.get(RESULT).state == "renewed"
    assert _failed_issue(issue_registry, entry) is None


async def test_slow_failure_is_retried_from_when_it_ended(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A failure after a 120 s DNS wait stays visible; the retry comes a minute later."""
    fake_ca.freezer = freezer
    fake_ca.delay = timedelta(seconds=120)
    fake_ca.failures = [CertificateRenewalError("TXT record not visible in time")]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    ended = dt_util.utcnow()
    state = entry.runtime_data.managed.renewal.state
    assert (state.failures, state.last_check) == (1, ended)
    assert state.next_attempt == ended + timedelta(minutes=1)
    await hass.async_block_till_done()
    assert fake_ca.orders == 1, "retried at once"
    assert hass.states.get(RESULT).state == "failed"
    assert _failed_issue(issue_registry, entry) is not None
    fake_ca.delay = None
    await advance(hass, freezer, timedelta(seconds=59))
    assert fake_ca.orders == 1
    await advance(hass, freezer, timedelta(seconds=2))
    assert fake_ca.orders == 2
    assert hass.states.get(RESULT).state == "renewed"


async def test_replaces_is_sent_on_the_first_attempt_only(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """A retry never names the old certificate again (certmagic's rule)."""
    fake_ca.failures = [CertificateRenewalError("HTTP 500")]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    await advance(hass, freezer, timedelta(minutes=1, seconds=1))
    assert fake_ca.replaces == [True, False]
    await renew(hass, entry, force=True)
    assert fake_ca.replaces == [True, False, True]


async def test_ari_window_of_another_certificate_is_ignored(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """After an ARI renewal, restarts never order again for the old window."""
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    assert fake_ca.orders == 1
    first = format(_serial(tmp_path / "fullchain.pem"), "x")
    now = dt_util.utcnow()
    fake_ca.windows[first] = RenewalInfo(
        start=now - timedelta(days=2), end=now - timedelta(days=1)
    )
    await advance(hass, freezer, timedelta(days=1, hours=1))
    assert fake_ca.orders == 2, "the CA's window was not followed"
    renewal = entry.runtime_data.managed.renewal
    assert renewal.state.ari_serial != first
    # A crash right after the write would leave the old window in storage.
    await renewal._async_update(
        ari_serial=first,
        ari_start=now - timedelta(days=2),
        ari_end=now - timedelta(days=1),
        renew_at=now - timedelta(days=1, hours=12),
        ari_next_poll=now + timedelta(days=30),
    )
    for _ in range(3):
        assert await hass.config_entries.async_reload(entry.entry_id)
        await advance(hass, freezer, timedelta(minutes=2))
    assert fake_ca.orders == 2
    assert hass.states.get(RESULT).state == "not_due"


async def test_emergency_floor_beats_a_late_ari_window(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """An ARI window after expiry is overruled when 1/20 of the lifetime is left."""
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    not_before, not_after = fake_ca.issued[0]
    serial = format(_serial(tmp_path / "fullchain.pem"), "x")
    fake_ca.windows[serial] = RenewalInfo(
        start=not_after + timedelta(days=10), end=not_after + timedelta(days=11)
    )
    floor = not_after - (not_after - not_before) / 20
    while dt_util.utcnow() < floor - timedelta(hours=13):
        await advance(hass, freezer, timedelta(hours=12))
    assert fake_ca.orders == 1, "renewed before the floor although ARI said later"
    await advance(hass, freezer, floor - dt_util.utcnow() + timedelta(seconds=1))
    assert fake_ca.orders == 2
    outcome = entry.runtime_data.managed.renewal.state.last_outcome
    assert outcome is not None
    assert outcome["reason"] == "emergency"


async def test_nothing_is_sent_before_the_cas_retry_after(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """A rate limit stops orders and ARI polls, forced ones too, until Retry-After."""
    retry_after = dt_util.utcnow() + timedelta(hours=3)
    fake_ca.failures = [CertificateRenewalError("rateLimited", retry_after)]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    assert fake_ca.orders == 1
    ari_calls = fake_ca.ari_calls
    with pytest.raises(HomeAssistantError) as err:
        await renew(hass, entry, force=True)
    assert err.value.translation_key == "renewal_waiting"
    assert entry.runtime_data.managed.renewal.state.failures == 1, (
        "a refusal is no failure"
    )
    await advance(hass, freezer, retry_after - dt_util.utcnow() - timedelta(minutes=1))
    assert (fake_ca.orders, fake_ca.ari_calls) == (1, ari_calls)
    await advance(hass, freezer, timedelta(minutes=2))
    assert fake_ca.orders == 2
    assert hass.states.get(RESULT).state == "renewed"


async def test_actions_are_for_administrators(
    hass: HomeAssistant,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    hass_read_only_user: MockUser,
) -> None:
    """A non-admin user can neither renew, nor update DNS, nor read the findings."""
    entry = fake_ca_entry
    await setup_integration(hass, entry)
    assert fake_ca.orders == 1  # the first certificate, right after setup
    context = Context(user_id=hass_read_only_user.id)
    for service, data in (
        ("renew_certificate", {"config_entry_id": entry.entry_id, "force": True}),
        ("update_dns", {"config_entry_id": entry.entry_id}),
        ("run_security_checks", {}),
    ):
        with pytest.raises(Unauthorized):
            await hass.services.async_call(
                DOMAIN,
                service,
                data,
                blocking=True,
                context=context,
                return_response=service == "run_security_checks",
            )
    assert fake_ca.orders == 1


async def test_unload_cancels_the_running_order(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """A reload while an order runs cancels it; the reloaded entry orders alone."""
    fake_ca.gate = asyncio.Event()
    entry = fake_ca_entry
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    # The first certificate is ordered right after setup.
    while fake_ca.running == 0:  # the order has started and waits at the gate
        await asyncio.sleep(0)
    assert await hass.config_entries.async_reload(entry.entry_id)
    assert fake_ca.cancelled == 1
    fake_ca.gate.set()
    await advance(hass, freezer, timedelta(minutes=1))
    assert fake_ca.orders == 2
    assert fake_ca.max_running == 1
    assert len(fake_ca.issued) == 1
    assert hass.states.get(RESULT).state == "renewed"


async def test_a_failed_write_never_costs_a_new_order(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The certificate the CA issued is kept and written by the retry, not ordered again."""
    entry = fake_ca_entry
    with disk_full(writes=2):
        await setup_until_first_check(hass, freezer, entry)
        assert fake_ca.orders == 1
        assert hass.states.get(RESULT).state == "failed"
        assert (
            "No space left"
            in _failed_issue(issue_registry, entry).translation_placeholders["detail"]
        )
        await advance(hass, freezer, timedelta(minutes=1, seconds=1))
        assert fake_ca.orders == 1, "ordered again instead of writing the kept one"
        assert hass.states.get(RESULT).state == "failed"
        # A restart in between: the certificate is kept in private storage.
        assert await hass.config_entries.async_reload(entry.entry_id)
        await advance(hass, freezer, timedelta(minutes=11))
    assert fake_ca.orders == 1
    assert hass.states.get(RESULT).state == "renewed"
    assert len(fake_ca.issued) == 1
    assert _serial(tmp_path / "fullchain.pem") is not None
    assert not await entry.runtime_data.managed.renewal._stash.async_load()


async def test_deleting_the_entry_deletes_a_kept_certificate(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """A certificate kept for writing (it holds a private key) goes with its entry."""
    entry = fake_ca_entry
    with disk_full():
        await setup_until_first_check(hass, freezer, entry)
    assert hass.states.get(RESULT).state == "failed"
    assert await IssuedStash(hass, entry.entry_id).async_load() is not None
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert await IssuedStash(hass, entry.entry_id).async_load() is None


@pytest.mark.usefixtures("mock_duckdns")
async def test_nothing_is_ordered_when_the_pair_cannot_be_written(
    hass: HomeAssistant,
    tmp_path: Path,
) -> None:
    """A file where the key's directory should be: an error before any CA request."""
    (tmp_path / "keys").write_text("not a directory")
    entry = _entry(
        UPDATE_URL,
        tmp_path,
        acme_directory="https://127.0.0.1:9/dir",
        private_key_path=str(tmp_path / "keys" / "privkey.pem"),
    )
    hass.set_state(CoreState.starting)  # no timer-driven check in the way
    await setup_integration(hass, entry)
    with pytest.raises(HomeAssistantError) as err:
        await renew(hass, entry)
    detail = err.value.translation_placeholders["detail"]
    assert "keys" in detail and "connection refused" not in detail


async def test_a_clock_behind_the_ca_does_not_lose_the_certificate(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A certificate valid from the CA's now, a day ahead of ours, is written."""
    fake_ca.clock_ahead = timedelta(days=1)
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    assert (fake_ca.orders, hass.states.get(RESULT).state) == (1, "renewed")
    assert "clock is 1440 minutes behind" in caplog.text


async def test_a_timer_waiting_behind_an_action_keeps_the_backoff(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """The retry timer fires while a manual retry runs; it does not order again at once."""
    fake_ca.failures = [
        CertificateRenewalError("HTTP 500"),
        CertificateRenewalError("HTTP 500"),
    ]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    assert fake_ca.orders == 1
    fake_ca.gate = asyncio.Event()
    action = hass.async_create_task(renew(hass, entry))
    while fake_ca.running == 0:
        await asyncio.sleep(0)
    freezer.tick(timedelta(minutes=1, seconds=1))  # the retry timer's time
    async_fire_time_changed(hass)
    await asyncio.sleep(0)
    fake_ca.gate.set()
    with pytest.raises(HomeAssistantError):
        await action
    await hass.async_block_till_done()
    assert fake_ca.orders == 2, (
        "the queued timer ordered at the instant the action failed"
    )
    assert entry.runtime_data.managed.renewal.state.failures == 2


async def test_a_clock_that_was_a_year_ahead_does_not_stall_renewal(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """A failure while the clock was ahead: after the correction, retries resume."""
    entry = fake_ca_entry
    hass.set_state(CoreState.starting)
    await setup_integration(hass, entry)
    year = dt_util.utcnow() + timedelta(days=365)
    renewal = entry.runtime_data.managed.renewal
    await renewal._async_update(
        failures=1, failed_order=True, next_attempt=year, retry_after=year
    )
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    # The first check finds the far times and resets them; the retry follows.
    await advance(hass, freezer, timedelta(minutes=1))
    assert renewal.next_check is not None
    assert renewal.next_check <= dt_util.utcnow() + timedelta(minutes=1)
    await advance(hass, freezer, timedelta(minutes=1, seconds=1))
    assert fake_ca.orders == 1
    assert hass.states.get(RESULT).state == "renewed"


async def test_broken_stored_dates_do_not_stop_renewal(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A hand-edited state file with dates without a zone or impossible ones."""
    entry = fake_ca_entry
    hass_storage[f"{DOMAIN}.renewal_{entry.entry_id}"] = {
        "version": 1,
        "key": f"{DOMAIN}.renewal_{entry.entry_id}",
        "data": {
            "failures": 1,
            "next_attempt": "2020-01-01T00:00:00",
            "ari_next_poll": "2025-13-01T00:00:00",
        },
    }
    await setup_until_first_check(hass, freezer, entry)
    assert fake_ca.orders == 1
    assert hass.states.get(RESULT).state == "renewed"


async def test_retry_after_survives_a_certificate_copied_in(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """A rate limit, then someone copies a good certificate in: still no request early."""
    retry_after = dt_util.utcnow() + timedelta(days=2)
    fake_ca.failures = [CertificateRenewalError("rateLimited", retry_after)]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    certs.issue([NAME], key=certs.generate_key(slot=23)).write(tmp_path)
    ari_calls = fake_ca.ari_calls
    response = await renew(hass, entry)
    assert response is not None
    assert response["renewed"] is False
    state = entry.runtime_data.managed.renewal.state
    assert state.retry_after == retry_after
    assert fake_ca.ari_calls == ari_calls, "asked the CA inside its Retry-After"


async def test_a_failed_check_that_was_not_due_orders_nothing(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """An error while checking a certificate that is not due: its retry only checks."""
    certs.issue([NAME], key=certs.generate_key(slot=24)).write(tmp_path)
    entry = fake_ca_entry
    with patch.object(
        CertificateManager, "async_decide", side_effect=RuntimeError("resolver broke")
    ):
        await setup_until_first_check(hass, freezer, entry)
    assert hass.states.get(RESULT).state == "failed"
    await advance(hass, freezer, timedelta(minutes=1, seconds=1))
    assert fake_ca.orders == 0
    assert hass.states.get(RESULT).state == "not_due"


async def test_action_reports_a_cancelled_renewal(
    hass: HomeAssistant,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """The action waiting on an order the entry's unload cancelled gets a clear error."""
    fake_ca.gate = asyncio.Event()
    entry = fake_ca_entry
    hass.set_state(CoreState.starting)  # no timer-driven check in the way
    await setup_integration(hass, entry)
    call = hass.async_create_task(renew(hass, entry, force=True))
    while fake_ca.running == 0:
        await asyncio.sleep(0)
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(HomeAssistantError) as err:
        await call
    assert err.value.translation_key == "renewal_cancelled"


# --- Against Pebble: short-lived certificates and ARI ------------------------------


def _pebble_options(pebble: PebbleServer, **extra: Any) -> dict[str, Any]:
    return {
        CONF_ACME_DIRECTORY: pebble.directory_url,
        CONF_ACME_CA_BUNDLE: str(pebble.ca_bundle_path),
        CONF_DNS_SERVER: pebble.dns_server,
        **extra,
    }


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
    await setup_until_first_check(hass, freezer, entry)
    cert_path = tmp_path / "fullchain.pem"
    first = _serial(cert_path)
    leaf = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc < timedelta(days=7)
    assert hass.states.get(RESULT).state == "renewed"
    next_renewal = dt_util.parse_datetime(hass.states.get(NEXT).state)
    assert next_renewal is not None
    assert next_renewal < leaf.not_valid_after_utc

    # Jump to a day before expiry: the scheduler renews on its own.
    await advance(
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
    await setup_until_first_check(hass, freezer, entry)
    cert_path = tmp_path / "fullchain.pem"
    first = _serial(cert_path)
    scheduler = entry.runtime_data.managed.renewal
    assert scheduler is not None
    await advance(hass, freezer, timedelta(hours=1))
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
    await advance(hass, freezer, timedelta(hours=13))
    assert _serial(cert_path) != first
    assert hass.states.get(RESULT).state == "renewed"


async def test_renewal_failure_raises_translated_error(
    hass: HomeAssistant,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """The action surfaces the CA's reason and the scheduler records the failure."""
    ca = fake_ca
    ca.failures = [CertificateRenewalError("rejectedIdentifier")] * 2
    entry = fake_ca_entry
    await setup_integration(hass, entry)  # the first order fails
    with pytest.raises(HomeAssistantError) as err:
        await renew(hass, entry)
    assert err.value.translation_placeholders == {"detail": "rejectedIdentifier"}
    assert entry.runtime_data.managed.renewal.state.failures == 2


# --- the certificate kept for writing, and the issues around failures ---


async def test_kept_certificate_of_another_ca_is_not_installed(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """Staging CA, the write fails; the user switches to the production CA.

    The certificate kept from the staging CA must not be installed for the
    production CA (it would be served, untrusted, for 60 days).
    """
    entry = fake_ca_entry  # acme_directory "x"
    with disk_full():
        await setup_until_first_check(hass, freezer, entry)
    assert fake_ca.orders == 1
    assert await IssuedStash(hass, entry.entry_id).async_load() is not None
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_ACME_DIRECTORY: "https://prod/dir"}
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await advance(hass, freezer, timedelta(minutes=2))
    assert hass.states.get(RESULT).state == "renewed"
    assert fake_ca.orders == 2, "installed the certificate of the previous CA"


async def test_kept_certificate_older_than_the_one_on_disk_is_not_installed(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """The write fails, the user copies a newer certificate in by hand.

    When that one is due, the old kept certificate (which expires sooner than
    the one it replaces) must not be installed over it.
    """
    entry = fake_ca_entry
    with disk_full():
        await setup_until_first_check(hass, freezer, entry)
        kept = await IssuedStash(hass, entry.entry_id).async_load()
        assert kept is not None
        # By hand: a 100-day certificate, due after ~67 days, outliving the kept one.
        hand = certs.issue([NAME], key=certs.generate_key(slot=25), valid_days=100)
        hand.write(tmp_path)
    hand_not_after = read_leaf(tmp_path / "fullchain.pem").not_valid_after_utc
    await advance(hass, freezer, timedelta(minutes=2))
    assert hass.states.get(RESULT).state == "not_due"
    renewed = async_capture_events(hass, EVENT_CERTIFICATE_RENEWED)
    while not renewed:
        await advance(hass, freezer, timedelta(hours=6))
    first = renewed[0].data
    assert first["serial"] != kept.issued.serial_hex, (
        f"installed the kept certificate (until {kept.issued.not_after}) over one "
        f"valid until {hand_not_after}"
    )


async def test_a_kept_certificate_that_cannot_be_saved_is_not_ordered_again(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """A real full disk: neither the pair nor .storage can be written.

    Home Assistant's Store logs a WriteError and returns: the kept
    certificate is silently lost, and every retry orders a new one.
    """
    real_write = Store._async_write_data

    async def write_data(store: Store, data: dict[str, Any]) -> None:
        if store.key.startswith(f"{DOMAIN}.issued_"):
            raise WriteError(OSError(28, "No space left on device"))
        await real_write(store, data)

    entry = fake_ca_entry
    with disk_full(), patch.object(Store, "_async_write_data", write_data):
        await setup_until_first_check(hass, freezer, entry)
        assert fake_ca.orders == 1
        await advance(hass, freezer, timedelta(minutes=1, seconds=1))
        await advance(hass, freezer, timedelta(minutes=10, seconds=1))
        await advance(hass, freezer, timedelta(minutes=100, seconds=1))
    assert hass.states.get(RESULT).state == "failed"
    assert fake_ca.orders == 1, (
        f"{fake_ca.orders} certificates issued for one renewal (5 per week allowed)"
    )


async def test_renewal_failed_issue_is_shown_again_after_a_restart(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A rate limit for three days, then Home Assistant restarts.

    The next attempt (which would raise the issue again) is three days away:
    meanwhile Repairs must still say that renewing fails.
    """
    retry_after = dt_util.utcnow() + timedelta(days=3)
    fake_ca.failures = [CertificateRenewalError("rateLimited", retry_after)]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    assert _failed_issue(issue_registry, entry) is not None
    # A restart: the registry is saved and loaded again, then the entry set up.
    await issue_registry._store.async_save(issue_registry._data_to_save())
    await issue_registry._async_load()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await advance(hass, freezer, timedelta(minutes=2))
    assert entry.runtime_data.managed.renewal.state.failures == 1
    assert hass.states.get(RESULT).state == "failed"
    issue = _failed_issue(issue_registry, entry)
    assert issue is not None and issue.active, (
        "renewals fail, but Repairs shows nothing until the retry in three days"
    )


async def test_a_long_retry_after_is_not_taken_for_a_clock_jump(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    caplog: Any,
) -> None:
    """Retry-After of 3 days (Let's Encrypt sends such): next_attempt is 3 days out.

    `sanitized` caps next_attempt at 25 h, so the next check "resets" it to
    now + 1 min: a false "clock jumped" warning, and the next-renewal sensor
    shows a time 3 days too early.
    """
    retry_after = dt_util.utcnow() + timedelta(days=3)
    fake_ca.failures = [CertificateRenewalError("rateLimited", retry_after)]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    renewal = entry.runtime_data.managed.renewal
    assert renewal.state.next_attempt == retry_after
    await advance(hass, freezer, timedelta(hours=13))  # one scheduled check
    assert fake_ca.orders == 1
    assert "clock jumped" not in caplog.text
    assert renewal.next_renewal == retry_after, (
        f"next renewal shown as {renewal.next_renewal}, really {retry_after}"
    )


async def test_turning_certificates_off_clears_the_renewal_failed_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """No certificate managed any more: its failing-renewal issue must go."""
    fake_ca.failures = [CertificateRenewalError("HTTP 500")]
    entry = fake_ca_entry
    await setup_until_first_check(hass, freezer, entry)
    assert _failed_issue(issue_registry, entry) is not None
    options = {k: v for k, v in entry.options.items() if k != CONF_ACME_DIRECTORY}
    hass.config_entries.async_update_entry(entry, options=options)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.managed is None
    assert _failed_issue(issue_registry, entry) is None, (
        "renewal_failed issue left for an entry that renews nothing"
    )


@pytest.mark.usefixtures("mock_duckdns")
async def test_an_unrelated_failure_does_not_hide_a_broken_delegation(
    hass: HomeAssistant,
    tmp_path: Path,
    fake_ca: FakeCa,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The CNAME is broken (issue shown); then a run fails before it checks the
    delegation at all. `_async_failed` deletes the delegation issue anyway."""
    own = "home.example.com"
    certs.issue([NAME, own], key=certs.generate_key(slot=26)).write(tmp_path)
    entry = _entry(
        UPDATE_URL,
        tmp_path,
        acme_directory="x",
        **{CONF_EXTRA_NAMES: [own]},
    )
    hass.set_state(CoreState.starting)  # only the calls below run
    broken = CertificateDelegationError(
        DelegationError(
            f"_acme-challenge.{own}",
            "_acme-challenge.myhome.duckdns.org",
            None,
            DelegationProblem.MISSING,
        )
    )
    with patch.object(
        CertificateManager, "async_check_delegations", side_effect=broken
    ):
        await setup_integration(hass, entry)
        renewal = entry.runtime_data.managed.renewal
        outcome = await renewal.async_run()
        assert outcome.renewed is False
        issue_id = delegation_issue_id(entry.entry_id)
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
        # A transient failure before any delegation check (reading the pair).
        with (
            patch.object(
                CertificateManager, "async_decide", side_effect=OSError("EIO")
            ),
            pytest.raises(CertificateRenewalError),
        ):
            await renewal.async_run()
        assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None, (
            "the delegation is still broken, but its issue was deleted"
        )


async def test_kept_certificate_in_the_older_stash_format_is_written(
    hass: HomeAssistant,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A certificate kept by an older version (settings as one text) is still used."""
    entry = fake_ca_entry  # acme_directory "x", ECDSA P-256, no profile
    pair = certs.issue([NAME], key=certs.generate_key(slot=25))
    kept = IssuedCertificate.from_json(
        {
            "fullchain_pem": pair.fullchain_pem.decode(),
            "private_key_pem": pair.key_pem.decode(),
            "names": [NAME],
        }
    )
    hass_storage[f"{DOMAIN}.issued_{entry.entry_id}"] = {
        "version": 1,
        "key": f"{DOMAIN}.issued_{entry.entry_id}",
        "data": {**kept.to_json(), "ordered_for": "x ec-p256 "},
    }
    await setup_integration(hass, entry)
    assert fake_ca.orders == 0, "ordered again instead of writing the kept one"
    assert _serial(tmp_path / "fullchain.pem") == int(kept.serial_hex, 16)


async def test_conditions_changed_ends_the_backoff_at_once(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    fake_ca_entry: MockConfigEntry,
) -> None:
    """A new account or a fix: the next attempt is now, not in 100 minutes."""
    fake_ca.failures = [CertificateRenewalError("accountDoesNotExist")] * 3
    entry = fake_ca_entry
    await setup_integration(hass, entry)
    await advance(hass, freezer, timedelta(minutes=1, seconds=1))
    await advance(hass, freezer, timedelta(minutes=10, seconds=1))
    renewal = entry.runtime_data.managed.renewal
    assert renewal.state.failures == 3
    assert renewal.state.next_attempt == dt_util.utcnow() + timedelta(minutes=100)
    await renewal.async_conditions_changed()
    await hass.async_block_till_done()
    assert fake_ca.orders == 4
    assert renewal.state.failures == 0
    assert hass.states.get(RESULT).state == "renewed"
