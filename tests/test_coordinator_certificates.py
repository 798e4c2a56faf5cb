"""The certificate coordinator: local files, served certificates and remote endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
import contextlib
from dataclasses import dataclass
from datetime import timedelta
import json
from pathlib import Path
import socket
from typing import Any
from unittest.mock import AsyncMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.secure_remote_access.const import (
    CONF_ENDPOINTS,
    CONF_EXPIRY_WARNING_DAYS,
    DOMAIN,
)
from custom_components.secure_remote_access.coordinator import (
    EndpointMonitor,
    certificates,
)
from custom_components.secure_remote_access.renewal import (
    RenewalCoordinator,
    RenewalOutcome,
)
from tests.blocking import guard_event_loop
from tests.fakes import certs
from tests.fakes.tls_server import (
    FakeServer,
    garbage_server,
    refused_port,
    reset_server,
    stalling_server,
    tls_server,
)
from tests.translations_guard import issue_placeholders

from .common import (
    DAYS,
    EXPIRY,
    NAME,
    PROBLEM,
    SetupEntry,
    certificate_issues,
    endpoint_options,
    entity_id,
    managed_options,
    state,
    suggested,
    tick,
    write_executor,
)

MANAGED = "managed"
SERVED = "served"


@dataclass(frozen=True)
class Case:
    """A certificate pair on disk and what the monitor should make of it."""

    cert: Callable[[], bytes | None]
    key: Callable[[], bytes | None]
    reason: str | None
    issue: str | None = None
    wildcard: bool = False


@pytest.fixture(autouse=True)
def no_automatic_renewal() -> Iterator[None]:
    """These tests watch files; the renewal scheduler (tested elsewhere) stays idle."""
    with patch.object(RenewalCoordinator, "_async_started", AsyncMock()):
        yield


def _pair(leaf: certs.IssuedCertificate) -> tuple[Callable[[], bytes], ...]:
    return (lambda: leaf.fullchain_pem), (lambda: leaf.key_pem)


def _case(
    make: Callable[[], certs.IssuedCertificate],
    reason: str | None,
    issue: str | None = None,
    *,
    der: bool = False,
    key: Callable[[certs.IssuedCertificate], bytes | None] | None = None,
    wildcard: bool = False,
) -> Case:
    made: dict[str, certs.IssuedCertificate] = {}

    def leaf() -> certs.IssuedCertificate:
        if "leaf" not in made:
            made["leaf"] = make()
        return made["leaf"]

    return Case(
        cert=lambda: leaf().cert_der if der else leaf().fullchain_pem,
        key=lambda: key(leaf()) if key else leaf().key_pem,
        reason=reason,
        issue=issue,
        wildcard=wildcard,
    )


def _broken_chain() -> bytes:
    leaf = certs.issue([NAME])
    return leaf.cert_pem + certs.other_pki().intermediate.cert_pem


CASES: dict[str, Case] = {
    "valid_ec": _case(lambda: certs.issue([NAME]), "ok"),
    "valid_ec_p384": _case(
        lambda: certs.issue([NAME], key_type=certs.KeyType.EC_P384), "ok"
    ),
    "valid_rsa": _case(
        lambda: certs.issue([NAME], key_type=certs.KeyType.RSA_2048), "ok"
    ),
    "der": _case(lambda: certs.issue([NAME]), "ok", der=True),
    "self_signed": _case(lambda: certs.self_signed([NAME]), "ok"),
    "wildcard_parent": _case(lambda: certs.issue(["*.duckdns.org"]), "ok"),
    "wildcard_option": _case(
        lambda: certs.issue([NAME, f"*.{NAME}"]), "ok", wildcard=True
    ),
    "wildcard_missing": _case(
        lambda: certs.issue([NAME]),
        "name_mismatch",
        "certificate_name_mismatch",
        wildcard=True,
    ),
    "expired": _case(
        lambda: certs.issue([NAME], expired=True), "expired", "certificate_expired"
    ),
    "not_yet_valid": _case(
        lambda: certs.issue([NAME], not_yet_valid=True), "not_yet_valid"
    ),
    "wrong_names": _case(
        lambda: certs.issue(["other.duckdns.org"]),
        "name_mismatch",
        "certificate_name_mismatch",
    ),
    "mismatched_key": _case(
        lambda: certs.issue([NAME]),
        "key_mismatch",
        "certificate_key_mismatch",
        key=lambda leaf: leaf.with_key(certs.generate_key(slot=1)).key_pem,
    ),
    "missing_key": _case(
        lambda: certs.issue([NAME]),
        "key_unreadable",
        "certificate_unreadable",
        key=lambda leaf: None,
    ),
    "garbage_key": _case(
        lambda: certs.issue([NAME]),
        "key_unreadable",
        "certificate_unreadable",
        key=lambda leaf: certs.GARBAGE,
    ),
    "garbage": Case(
        cert=lambda: certs.GARBAGE,
        key=lambda: certs.issue([NAME]).key_pem,
        reason="invalid_format",
        issue="certificate_unreadable",
    ),
    "empty": Case(
        cert=lambda: b"",
        key=lambda: certs.issue([NAME]).key_pem,
        reason="empty",
        issue="certificate_unreadable",
    ),
    "broken_chain": Case(
        cert=_broken_chain,
        key=lambda: certs.issue([NAME]).key_pem,
        reason="chain_invalid",
    ),
    # Not a problem: the renewal is about to obtain it.
    "not_issued_yet": Case(
        cert=lambda: None, key=lambda: None, reason="not_issued_yet"
    ),
}


def _write(tmp_path: Path, case: Case) -> tuple[Path, Path]:
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    if (data := case.cert()) is not None:
        certs.write_file(cert, data)
    if (data := case.key()) is not None:
        certs.write_file(key, data, 0o600)
    return cert, key


@pytest.mark.parametrize("name", list(CASES))
async def test_managed_certificate(
    hass: HomeAssistant,
    tmp_path: Path,
    name: str,
    setup_entry: SetupEntry,
) -> None:
    """Each kind of file gives the expected sensors, reason and Repairs issue."""
    case = CASES[name]
    cert, key = _write(tmp_path, case)
    entry = await setup_entry(managed_options(cert, key, wildcard=case.wildcard))
    problem = state(hass, entry, MANAGED, PROBLEM)
    healthy = case.reason in ("ok", "not_issued_yet")
    assert problem.state == (STATE_OFF if healthy else STATE_ON)
    assert problem.attributes["reason"] == case.reason
    assert problem.attributes["path"] == str(cert)
    expiry = state(hass, entry, MANAGED, EXPIRY)
    days = state(hass, entry, MANAGED, DAYS)
    if case.reason in ("invalid_format", "empty", "not_issued_yet"):
        assert expiry.state == days.state == "unknown"
        assert "error" in problem.attributes
        assert "subject" not in problem.attributes
    else:
        assert expiry.state == problem.attributes["not_after"]
        assert int(days.state) == problem.attributes["days_remaining"]
    issues = certificate_issues(hass, entry.entry_id)
    assert list(issues) == ([f"{case.issue}:{MANAGED}"] if case.issue else [])


async def test_valid_managed_certificate_in_detail(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    tmp_path: Path,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Names, units, attributes and the device of a healthy managed certificate."""
    now = certs.now_utc()
    leaf = certs.issue(
        [NAME, "203.0.113.7"],
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=60, hours=5),
        serial=0xC0FFEE,
    )
    cert, key = leaf.write(tmp_path)
    entry = await setup_entry(managed_options(cert, key))

    expiry = state(hass, entry, MANAGED, EXPIRY)
    assert expiry.entity_id == "sensor.myhome_duckdns_org_managed_certificate_expiry"
    assert expiry.state == (now + timedelta(days=60, hours=5)).isoformat()
    assert expiry.attributes["device_class"] == "timestamp"
    days = state(hass, entry, MANAGED, DAYS)
    assert days.state == "60"
    assert days.attributes["unit_of_measurement"] == "d"
    assert days.attributes["state_class"] == "measurement"
    assert (
        days.attributes["friendly_name"] == f"{NAME} Managed certificate days remaining"
    )
    problem = state(hass, entry, MANAGED, PROBLEM)
    assert (
        problem.entity_id
        == "binary_sensor.myhome_duckdns_org_managed_certificate_status"
    )
    assert problem.state == STATE_OFF
    assert problem.attributes["device_class"] == "problem"
    assert problem.attributes["subject"] == f"CN={NAME},O=SRA Tests"
    assert problem.attributes["issuer"] == "CN=SRA Test Intermediate CA,O=SRA Tests"
    assert problem.attributes["serial_number"] == "c0ffee"
    assert problem.attributes["names"] == [NAME, "203.0.113.7"]
    assert problem.attributes["not_before"] == (now - timedelta(days=1)).isoformat()
    assert problem.attributes["days_remaining"] == 60
    assert "missing_names" not in problem.attributes
    assert "error" not in problem.attributes

    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    assert device is not None
    for description in (EXPIRY, DAYS, PROBLEM):
        registered = entity_registry.async_get(
            entity_id(hass, entry, MANAGED, description)
        )
        assert registered is not None
        assert registered.device_id == device.id
        assert registered.unique_id == f"{entry.entry_id}_managed_{description}"


async def test_no_certificate_entities_without_sources(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    """DuckDNS updating only, without http TLS: no certificate entities."""
    entry = await setup_entry()
    unique_ids = {
        entity.unique_id
        for entity in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    }
    assert not any("certificate" in unique_id for unique_id in unique_ids)
    assert entry.runtime_data.certificates is not None
    assert entry.runtime_data.certificates.data == {}
    assert entry.runtime_data.endpoints is not None
    assert entry.runtime_data.endpoints.data is None


async def test_days_remaining_crosses_21_for_an_automation(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """The guide's automation "below 21 days" fires when a day passes, no reread."""
    now = certs.now_utc()
    freezer.move_to(now)  # whole seconds, like certificate dates
    leaf = certs.issue(
        [NAME],
        not_before=now - timedelta(days=68),
        not_after=now + timedelta(days=21, minutes=30),
    )
    cert, key = leaf.write(tmp_path)
    entry = await setup_entry(managed_options(cert, key))
    days_entity = entity_id(hass, entry, MANAGED, DAYS)
    assert hass.states.get(days_entity).state == "21"
    events = async_capture_events(hass, "certificate_renewal_needed")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "triggers": {
                    "trigger": "numeric_state",
                    "entity_id": days_entity,
                    "below": 21,
                },
                "actions": {"event": "certificate_renewal_needed"},
            }
        },
    )
    with patch.object(
        certificates,
        "read_local_certificate",
        wraps=certificates.read_local_certificate,
    ) as reads:
        await tick(hass, freezer, timedelta(minutes=29))
        assert hass.states.get(days_entity).state == "21"
        await tick(hass, freezer, timedelta(minutes=2))
        assert hass.states.get(days_entity).state == "20"
        assert reads.call_count == 0  # judged again, not read again
    assert len(events) == 1
    # The expiring threshold (14 days) and the expiry happen on time too.
    await tick(hass, freezer, timedelta(days=6, hours=23, minutes=58))  # 14 d 1 min
    assert certificate_issues(hass, entry.entry_id) == {}
    await tick(hass, freezer, timedelta(minutes=1))  # 14 days left: expiring
    issues = certificate_issues(hass, entry.entry_id)
    assert list(issues) == ["certificate_expiring:managed"]
    assert (
        issues["certificate_expiring:managed"].translation_placeholders["days"] == "14"
    )
    await tick(hass, freezer, timedelta(days=14, minutes=1))
    assert list(certificate_issues(hass, entry.entry_id)) == [
        "certificate_expired:managed"
    ]
    problem = state(hass, entry, MANAGED, PROBLEM)
    assert problem.attributes["reason"] == "expired"
    assert hass.states.get(days_entity).state == "-1"


async def test_repairs_appear_and_clear(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    issue_registry: ir.IssueRegistry,
    setup_entry: SetupEntry,
) -> None:
    """Expiring (at the configured threshold), then renewed: the issue goes."""
    leaf = certs.issue(
        [NAME], not_before=certs.now_utc() - timedelta(days=70), valid_days=20
    )
    cert, key = leaf.write(tmp_path)
    entry = await setup_entry(
        managed_options(cert, key, **{CONF_EXPIRY_WARNING_DAYS: 30}),
    )
    issue_id = f"certificate_expiring_{entry.entry_id}_managed"
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.is_fixable
    assert issue.data == {"entry_id": entry.entry_id, "certificate": "managed"}
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["certificate"] == str(cert)
    assert issue.translation_placeholders["entry"] == NAME
    assert issue.translation_placeholders["days"] == "19"
    assert issue.translation_placeholders["date"].endswith(" UTC")
    placeholders = json.dumps(issue.translation_placeholders)
    assert "PRIVATE" not in placeholders

    # Renewed on disk: the minutely file watch reads it again.
    fresh = certs.issue([NAME], valid_days=90)
    await hass.async_add_executor_job(fresh.write, tmp_path)
    await tick(hass, freezer, timedelta(minutes=1))
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert state(hass, entry, MANAGED, PROBLEM).state == STATE_OFF

    # Replaced by an expired one: critical, not fixable.
    expired = certs.issue([NAME], expired=True)
    await hass.async_add_executor_job(expired.write, tmp_path)
    await tick(hass, freezer, timedelta(minutes=1))
    issue = issue_registry.async_get_issue(
        DOMAIN, f"certificate_expired_{entry.entry_id}_managed"
    )
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.CRITICAL
    assert not issue.is_fixable
    assert len(certificate_issues(hass, entry.entry_id)) == 1

    # Deleting the entry deletes its issues.
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert certificate_issues(hass, entry.entry_id) == {}


async def test_file_change_is_picked_up_within_a_minute(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """Files are stat'ed every minute and read again only when they changed."""
    first = certs.issue([NAME], valid_days=50)
    cert, key = first.write(tmp_path)
    entry = await setup_entry(managed_options(cert, key))
    assert state(hass, entry, MANAGED, DAYS).state == "49"
    with patch.object(
        certificates,
        "read_local_certificate",
        wraps=certificates.read_local_certificate,
    ) as reads:
        await tick(hass, freezer, timedelta(minutes=1))
        assert reads.call_count == 0
        second = certs.issue([NAME], valid_days=80)
        await hass.async_add_executor_job(write_executor(cert, second.fullchain_pem))
        await tick(hass, freezer, timedelta(minutes=1))
        assert reads.call_count == 1
    assert state(hass, entry, MANAGED, DAYS).state == "79"
    # A deleted file is noticed too.
    await hass.async_add_executor_job(cert.unlink)
    await tick(hass, freezer, timedelta(minutes=1))
    problem = state(hass, entry, MANAGED, PROBLEM)
    assert (problem.state, problem.attributes["reason"]) == (
        STATE_OFF,
        "not_issued_yet",
    )
    assert state(hass, entry, MANAGED, EXPIRY).state == "unknown"


async def test_hourly_reread_without_changes(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """Every hour the files are read again even when nothing changed."""
    cert, key = certs.issue([NAME]).write(tmp_path)
    await setup_entry(managed_options(cert, key))
    with patch.object(
        certificates,
        "read_local_certificate",
        wraps=certificates.read_local_certificate,
    ) as reads:
        await tick(hass, freezer, timedelta(minutes=61))
        assert reads.call_count == 1


async def test_renewal_refreshes_at_once(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    tmp_path: Path,
) -> None:
    """After a renewal the coordinator's listener makes the monitor read the files."""
    cert, key = certs.issue(
        [NAME], not_before=certs.now_utc() - timedelta(days=80), valid_days=10
    ).write(tmp_path)
    entry = await setup_entry(managed_options(cert, key))
    assert state(hass, entry, MANAGED, PROBLEM).attributes["reason"] == "expiring"
    fresh = certs.issue([NAME], valid_days=90)
    await hass.async_add_executor_job(fresh.write, tmp_path)
    renewal = entry.runtime_data.managed.renewal
    assert renewal is not None
    outcome = RenewalOutcome(
        renewed=True,
        reason="lifetime",
        names=(NAME,),
        not_after=fresh.certificate.not_valid_after_utc,
        serial=None,
        profile=None,
    )
    for listener in list(renewal._renewed_listeners):
        listener(outcome)
    await hass.async_block_till_done()
    assert state(hass, entry, MANAGED, PROBLEM).state == STATE_OFF
    assert certificate_issues(hass, entry.entry_id) == {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _setup_http(hass: HomeAssistant, cert: Path, key: Path | None) -> None:
    config: dict[str, Any] = {
        "ssl_certificate": str(cert),
        "server_port": _free_port(),
        "server_host": ["127.0.0.1"],
    }
    if key is not None:
        config["ssl_key"] = str(key)
    assert await async_setup_component(hass, "http", {"http": config})


async def test_served_certificate(
    hass: HomeAssistant,
    socket_enabled: None,
    setup_entry: SetupEntry,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """The certificate of Home Assistant's own http server has its sensors."""
    served = certs.issue(["ha.example.test"], key_type=certs.KeyType.RSA_2048)
    cert, key = served.write(tmp_path / "http")
    await _setup_http(hass, cert, key)
    entry = await setup_entry()
    expiry = state(hass, entry, SERVED, EXPIRY)
    assert expiry.entity_id == "sensor.myhome_duckdns_org_served_certificate_expiry"
    assert expiry.state == served.certificate.not_valid_after_utc.isoformat()
    problem = state(hass, entry, SERVED, PROBLEM)
    assert problem.state == STATE_OFF  # names are not judged for the served one
    assert problem.attributes["path"] == str(cert)
    # The file is broken later (Home Assistant would not start with it).
    await hass.async_add_executor_job(write_executor(cert, certs.GARBAGE))
    await tick(hass, freezer, timedelta(minutes=1))
    problem = state(hass, entry, SERVED, PROBLEM)
    assert problem.attributes["reason"] == "invalid_format"
    issues = certificate_issues(hass, entry.entry_id)
    assert list(issues) == ["certificate_unreadable:served"]
    assert issues["certificate_unreadable:served"].translation_placeholders[
        "certificate"
    ] == str(cert)


async def test_served_certificate_with_key_in_the_same_file(
    hass: HomeAssistant,
    socket_enabled: None,
    setup_entry: SetupEntry,
    tmp_path: Path,
) -> None:
    """Without ssl_key, the key is read from the certificate file, as http does."""
    served = certs.issue(["ha.example.test"])
    combined = certs.write_file(
        tmp_path / "combined.pem", served.fullchain_pem + served.key_pem, 0o600
    )
    await _setup_http(hass, combined, None)
    entry = await setup_entry()
    assert state(hass, entry, SERVED, PROBLEM).state == STATE_OFF


async def test_served_and_managed_are_the_same_file(
    hass: HomeAssistant,
    socket_enabled: None,
    setup_entry: SetupEntry,
    tmp_path: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """One set of entities and issues when http serves the managed certificate."""
    leaf = certs.issue([NAME])
    cert, key = leaf.write(tmp_path / "ssl")
    link = tmp_path / "link.pem"
    link.symlink_to(cert)
    await _setup_http(hass, link, key)
    entry = await setup_entry(managed_options(cert, key))
    monitors = entry.runtime_data.certificates
    assert monitors is not None
    assert list(monitors.sources) == [MANAGED]
    assert monitors.sources[MANAGED].served
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    managed = diagnostics["certificates"][MANAGED]
    assert managed["served"] is True
    assert managed["kind"] == "managed"
    assert managed["problems"] == []
    assert managed["certificate"]["serial_number"] == format(
        leaf.certificate.serial_number, "x"
    )
    assert diagnostics["certificate_monitors"][0]["sources"] == [MANAGED]
    assert "PRIVATE KEY" not in json.dumps(diagnostics)


async def test_stale_local_entities_are_removed(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    tmp_path: Path,
    entity_registry: er.EntityRegistry,
) -> None:
    """Entities of a certificate no longer monitored leave the registry."""
    cert, key = certs.issue([NAME]).write(tmp_path)
    entry = await setup_entry(managed_options(cert, key))
    served = entity_registry.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{entry.entry_id}_served_certificate_expiry",
        config_entry=entry,
    )
    managed = entity_id(hass, entry, MANAGED, EXPIRY)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entity_registry.async_get(served.entity_id) is None
    assert entity_registry.async_get(managed) is not None
    # Certificates turned off: the managed entities go too.
    hass.config_entries.async_update_entry(entry, options={})
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entity_registry.async_get(managed) is None


async def test_unexpected_error_makes_entities_unavailable(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """Only a bug (not a bad file) makes the entities unavailable."""
    cert, key = certs.issue([NAME]).write(tmp_path)
    entry = await setup_entry(managed_options(cert, key))
    with patch.object(certificates, "read_local_certificate", side_effect=RuntimeError):
        await tick(hass, freezer, timedelta(minutes=61))
    assert state(hass, entry, MANAGED, EXPIRY).state == STATE_UNAVAILABLE
    await tick(hass, freezer, timedelta(minutes=61))
    assert state(hass, entry, MANAGED, PROBLEM).state == STATE_OFF


async def test_monitoring_bug_does_not_stop_dns_updating(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    tmp_path: Path,
) -> None:
    """An unexpected error at setup leaves the entry loaded, certificates unavailable."""
    cert, key = certs.issue([NAME]).write(tmp_path)
    with patch.object(certificates, "read_local_certificate", side_effect=RuntimeError):
        entry = await setup_entry(managed_options(cert, key))
    assert entry.state is ConfigEntryState.LOADED
    assert state(hass, entry, MANAGED, PROBLEM).state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.myhome_duckdns_org_public_ipv4_address").state == (
        "203.0.113.7"
    )


async def test_local_reads_never_block_the_event_loop(
    hass: HomeAssistant,
    socket_enabled: None,
    setup_entry: SetupEntry,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """Setup, the file watch, rereads and renewals read files in the executor."""
    cert, key = certs.issue([NAME]).write(tmp_path / "managed")
    served_cert, served_key = certs.issue(["ha.example.test"]).write(
        tmp_path / "served"
    )
    await _setup_http(hass, served_cert, served_key)
    replacement = certs.issue([NAME], valid_days=30)
    with guard_event_loop(tmp_path) as loop_calls:
        entry = await setup_entry(managed_options(cert, key))
        await hass.async_add_executor_job(
            write_executor(cert, replacement.fullchain_pem)
        )
        await tick(hass, freezer, timedelta(minutes=1))
        # The hourly read (not by the clock: http would revert its trial config).
        certificates = entry.runtime_data.certificates
        assert certificates is not None
        await certificates.async_refresh()
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
    assert loop_calls == []
    assert state(hass, entry, MANAGED, DAYS).state == "29"
    assert state(hass, entry, SERVED, PROBLEM).state == STATE_OFF


HOST = "example.test"


async def _resolve(host: str, port: int) -> list[str]:
    """Every name under .test is this machine; nothing else resolves."""
    if host == "test" or host.endswith(".test"):
        return ["127.0.0.1"]
    raise OSError(f"unknown host {host}")


@pytest.fixture(autouse=True)
def local_names() -> Iterator[None]:
    """Resolve *.test to 127.0.0.1 and keep handshakes short."""
    with (
        patch.object(EndpointMonitor, "resolver", _resolve),
        patch.object(EndpointMonitor, "timeout", 3.0),
    ):
        yield


def _endpoint(host: str, port: int, ca_bundle: Path | None = None) -> dict[str, Any]:
    option: dict[str, Any] = {"host": host, "port": port}
    if ca_bundle is not None:
        option["ca_bundle"] = str(ca_bundle)
    return option


def _key(host: str, port: int) -> str:
    return f"endpoint_{host}:{port}"


@contextlib.asynccontextmanager
async def _refused() -> AsyncIterator[FakeServer]:
    with refused_port() as port:
        yield FakeServer("127.0.0.1", port)


@dataclass(frozen=True)
class RemoteCase:
    """A server, how the endpoint is configured, and what should be reported."""

    serve: Callable[[], contextlib.AbstractAsyncContextManager[FakeServer]]
    reason: str | None
    issue: str | None = None
    host: str = HOST
    bundle: bytes | None = None
    timeout: float = 3.0
    has_certificate: bool = True


def _served(leaf: Callable[[], certs.IssuedCertificate]) -> Callable[..., Any]:
    return lambda: tls_server(leaf())


def _pki_bundle() -> bytes:
    return certs.shared_pki().bundle_pem


_SELF_SIGNED = certs.self_signed([HOST])

REMOTE_CASES: dict[str, RemoteCase] = {
    "private_ca_with_bundle": RemoteCase(
        _served(lambda: certs.issue([HOST])), None, bundle=_pki_bundle()
    ),
    "private_ca_without_bundle": RemoteCase(
        _served(lambda: certs.issue([HOST])), "untrusted"
    ),
    "self_signed": RemoteCase(_served(lambda: _SELF_SIGNED), "self_signed"),
    "self_signed_trusted_by_itself": RemoteCase(
        _served(lambda: _SELF_SIGNED), None, bundle=_SELF_SIGNED.cert_pem
    ),
    "rsa": RemoteCase(
        _served(lambda: certs.issue([HOST], key_type=certs.KeyType.RSA_2048)),
        None,
        bundle=_pki_bundle(),
    ),
    "wildcard": RemoteCase(
        _served(lambda: certs.issue([f"*.{HOST}"])),
        None,
        host=f"www.{HOST}",
        bundle=_pki_bundle(),
    ),
    "ip_address": RemoteCase(
        _served(lambda: certs.issue(["127.0.0.1"])),
        None,
        host="127.0.0.1",
        bundle=_pki_bundle(),
    ),
    "wrong_names": RemoteCase(
        _served(lambda: certs.issue(["other.test"])),
        "name_mismatch",
        "certificate_name_mismatch",
        bundle=_pki_bundle(),
    ),
    "wrong_names_untrusted": RemoteCase(
        _served(lambda: certs.issue(["other.test"])),
        "name_mismatch",
        "certificate_name_mismatch",
    ),
    "expired": RemoteCase(
        _served(lambda: certs.issue([HOST], expired=True)),
        "expired",
        "certificate_expired",
        bundle=_pki_bundle(),
    ),
    "expiring": RemoteCase(
        _served(
            lambda: certs.issue(
                [HOST], not_before=certs.now_utc() - timedelta(days=85), valid_days=5
            )
        ),
        "expiring",
        "certificate_expiring",
        bundle=_pki_bundle(),
    ),
    "not_yet_valid": RemoteCase(
        _served(lambda: certs.issue([HOST], not_yet_valid=True)),
        "not_yet_valid",
        bundle=_pki_bundle(),
    ),
    "refused": RemoteCase(_refused, "connection_refused", has_certificate=False),
    "reset": RemoteCase(reset_server, "connection_reset", has_certificate=False),
    "slow_handshake": RemoteCase(
        stalling_server, "timeout", timeout=0.3, has_certificate=False
    ),
    "not_tls": RemoteCase(garbage_server, "handshake_failed", has_certificate=False),
    "unresolvable": RemoteCase(
        _refused,
        "name_resolution_failed",
        host="nowhere.invalid",
        has_certificate=False,
    ),
    "unknown_name": RemoteCase(
        _refused,
        "name_resolution_failed",
        host="nas.example.com",
        has_certificate=False,
    ),
}


async def _check_remote(
    setup_entry: SetupEntry,
    tmp_path: Path,
    case: RemoteCase,
) -> tuple[MockConfigEntry, str]:
    bundle = None
    if case.bundle is not None:
        bundle = certs.write_file(tmp_path / "ca.pem", case.bundle)
    with patch.object(EndpointMonitor, "timeout", case.timeout):
        async with case.serve() as server:
            entry = await setup_entry(
                endpoint_options(_endpoint(case.host, server.port, bundle)),
            )
    return entry, _key(case.host, server.port)


@pytest.mark.parametrize("name", list(REMOTE_CASES))
async def test_remote_endpoint(
    hass: HomeAssistant,
    socket_enabled: None,
    setup_entry: SetupEntry,
    tmp_path: Path,
    name: str,
) -> None:
    """Each server gives the expected sensors, reason and Repairs issue."""
    case = REMOTE_CASES[name]
    entry, key = await _check_remote(setup_entry, tmp_path, case)
    problem = state(hass, entry, key, PROBLEM)
    assert problem.state == (STATE_ON if case.reason else STATE_OFF)
    assert problem.attributes["reason"] == (case.reason or "ok")
    expiry = state(hass, entry, key, EXPIRY)
    days = state(hass, entry, key, DAYS)
    if case.has_certificate:
        # Reported whatever the trust: the fix for cert_expiry's private CAs.
        assert expiry.state == problem.attributes["not_after"]
        assert int(days.state) == problem.attributes["days_remaining"]
        assert problem.attributes["verification"] is not None
    else:
        assert expiry.state == days.state == STATE_UNKNOWN
        assert problem.attributes["verification"] is None
        assert problem.attributes["error"]
    issues = certificate_issues(hass, entry.entry_id)
    assert list(issues) == ([f"{case.issue}:{key}"] if case.issue else [])
    for issue in issues.values():
        assert not issue.is_fixable
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["certificate"] == key.removeprefix(
            "endpoint_"
        )


async def test_endpoint_device_and_entities(
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: Path,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
    setup_entry: SetupEntry,
) -> None:
    """An endpoint has its own service device, linked to the entry's device."""
    leaf = certs.issue([HOST], serial=0xBEEF)
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    async with tls_server(leaf) as server:
        entry = await setup_entry(
            endpoint_options(_endpoint(HOST, server.port, bundle)),
        )
    assert server.server_names == [HOST]  # SNI carries the configured name
    label = f"{HOST}:{server.port}"
    key = _key(HOST, server.port)
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, f"{entry.entry_id}_{label}"), entry.entry_id
    )
    parent = device_registry.async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    assert device is not None
    assert parent is not None
    assert device.name == label
    assert device.entry_type is dr.DeviceEntryType.SERVICE
    assert device.via_device_id == parent.id
    expiry = state(hass, entry, key, EXPIRY)
    assert expiry.entity_id == f"sensor.example_test_{server.port}_certificate_expiry"
    assert expiry.attributes["friendly_name"] == f"{label} Certificate expiry"
    assert expiry.state == leaf.certificate.not_valid_after_utc.isoformat()
    problem = state(hass, entry, key, PROBLEM)
    assert problem.entity_id == (
        f"binary_sensor.example_test_{server.port}_certificate_status"
    )
    assert problem.attributes["verification"] == "valid"
    assert problem.attributes["serial_number"] == "beef"
    assert "path" not in problem.attributes
    for description in (EXPIRY, DAYS, PROBLEM):
        registered = entity_registry.async_get(entity_id(hass, entry, key, description))
        assert registered is not None
        assert registered.device_id == device.id
        assert registered.unique_id == f"{entry.entry_id}_{key}_{description}"


async def test_sni_picks_the_certificate(
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: Path,
    setup_entry: SetupEntry,
) -> None:
    """Two names on one server: each endpoint sees its own certificate."""
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    default = certs.issue(["default.test"])
    other = certs.issue([HOST], valid_days=30)
    async with tls_server(default, sni={HOST: other}) as server:
        entry = await setup_entry(
            endpoint_options(
                _endpoint(HOST, server.port, bundle),
                _endpoint("default.test", server.port, bundle),
            ),
        )
    assert sorted(server.server_names, key=str) == ["default.test", HOST]
    assert state(hass, entry, _key(HOST, server.port), DAYS).state == "29"
    assert state(hass, entry, _key("default.test", server.port), DAYS).state == "89"


async def test_ca_bundle_gone(
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: Path,
    setup_entry: SetupEntry,
) -> None:
    """A CA bundle removed after it was configured is reported as such."""
    missing = tmp_path / "gone.pem"
    garbage = certs.write_file(tmp_path / "garbage.pem", certs.GARBAGE)
    async with tls_server(certs.issue([HOST])) as server:
        entry = await setup_entry(
            endpoint_options(
                _endpoint(HOST, server.port, missing),
                _endpoint("www.test", server.port, garbage),
            ),
        )
    for key in (_key(HOST, server.port), _key("www.test", server.port)):
        problem = state(hass, entry, key, PROBLEM)
        assert problem.attributes["reason"] == "ca_bundle_unreadable"
    assert certificate_issues(hass, entry.entry_id) == {}


async def test_endpoints_checked_every_6_hours(
    hass: HomeAssistant,
    socket_enabled: None,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    setup_entry: SetupEntry,
) -> None:
    """Checks repeat every 6 hours, at most 10 handshakes at a time."""
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    async with tls_server(certs.issue([HOST])) as server:
        with patch.object(
            certificates, "inspect_endpoints", wraps=certificates.inspect_endpoints
        ) as inspect:
            entry = await setup_entry(
                endpoint_options(_endpoint(HOST, server.port, bundle)),
            )
            assert server.handshakes == 1
            await tick(hass, freezer, timedelta(hours=5, minutes=59))
            assert server.handshakes == 1
            await tick(hass, freezer, timedelta(minutes=2))
            assert server.handshakes == 2
        assert inspect.call_args.kwargs["concurrency"] == 10
        assert inspect.call_args.kwargs["own_loop"] is True
    # The server is gone: the next check reports it, the entities stay.
    await tick(hass, freezer, timedelta(hours=6, minutes=1))
    problem = state(hass, entry, _key(HOST, server.port), PROBLEM)
    assert problem.attributes["reason"] == "connection_refused"


async def test_first_check_runs_after_setup(
    hass: HomeAssistant,
    socket_enabled: None,
    issue_registry: ir.IssueRegistry,
    setup_entry: SetupEntry,
) -> None:
    """Setup does not wait for handshakes; issues wait for the first check."""
    async with stalling_server() as server:
        key = _key(HOST, server.port)
        mock_entry_id = "01JMONITORENTRY0000000000"
        for issue_id in (
            f"certificate_expired_{mock_entry_id}_{key}",
            f"certificate_expired_{mock_entry_id}_endpoint_removed.test:443",
        ):
            ir.async_create_issue(
                hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.CRITICAL,
                translation_key="certificate_expired",
                translation_placeholders=issue_placeholders("certificate_expired"),
            )
        with patch("tests.common.MockConfigEntry", wraps=MockConfigEntry) as make_entry:
            make_entry.side_effect = lambda **kwargs: MockConfigEntry(
                entry_id=mock_entry_id, **kwargs
            )
            entry = await setup_entry(
                endpoint_options(_endpoint(HOST, server.port)),
                wait_background=False,
            )
        assert entry.entry_id == mock_entry_id
        assert state(hass, entry, key, EXPIRY).state == STATE_UNKNOWN
        assert state(hass, entry, key, PROBLEM).state == STATE_UNKNOWN
        # Not checked yet: its issue stays; the removed endpoint's goes.
        assert list(certificate_issues(hass, entry.entry_id)) == [
            f"certificate_expired:{key}"
        ]
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED


async def _options_flow(
    hass: HomeAssistant, entry: MockConfigEntry, user_input: dict[str, Any]
) -> dict[str, Any]:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert "endpoints" in result["menu_options"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "endpoints"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "endpoints"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], user_input
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    return dict(result)


def _entities_of(hass: HomeAssistant, device_id: str) -> list[str]:
    return [
        entity.entity_id
        for entity in er.async_entries_for_device(er.async_get(hass), device_id)
    ]


async def test_options_flow_adds_and_removes_endpoints(
    hass: HomeAssistant,
    socket_enabled: None,
    setup_entry: SetupEntry,
    tmp_path: Path,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Endpoints added in the options get devices; removed ones lose them."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    cert, key = certs.issue(["myhome.duckdns.org"]).write(tmp_path / "ssl")
    entry = await setup_entry(managed_options(cert, key))
    async with tls_server(certs.issue([HOST])) as server:
        port = server.port
        text = (
            f"Example.TEST:{port} ca={bundle}\n\n"
            f"  127.0.0.1:{port}  \n"
            f"example.test.:{port}\n"
        )
        result = await _options_flow(
            hass, entry, {CONF_ENDPOINTS: text, CONF_EXPIRY_WARNING_DAYS: 21.0}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_ENDPOINTS] == [
        {"host": HOST, "port": port, "ca_bundle": str(bundle)},
        {"host": "127.0.0.1", "port": port},
    ]
    assert entry.options[CONF_EXPIRY_WARNING_DAYS] == 21
    assert entry.options["certificate_path"] == str(cert)  # other options kept
    devices = {
        label: device_registry.async_get_device_by_identifier(
            (DOMAIN, f"{entry.entry_id}_{label}"), entry.entry_id
        )
        for label in (f"{HOST}:{port}", f"127.0.0.1:{port}")
    }
    assert all(devices.values())
    assert state(hass, entry, _key(HOST, port), PROBLEM).state == STATE_OFF
    kept = devices[f"{HOST}:{port}"]
    removed = devices[f"127.0.0.1:{port}"]
    assert kept is not None
    assert removed is not None
    removed_entities = _entities_of(hass, removed.id)
    assert len(removed_entities) == 3

    # The form shows the list as lines; dropping one removes its device.
    flow = await hass.config_entries.options.async_init(entry.entry_id)
    flow = await hass.config_entries.options.async_configure(
        flow["flow_id"], {"next_step_id": "endpoints"}
    )
    schema = flow["data_schema"].schema
    prefilled = suggested(schema)
    assert prefilled[CONF_ENDPOINTS] == f"{HOST}:{port} ca={bundle}\n127.0.0.1:{port}"
    assert prefilled[CONF_EXPIRY_WARNING_DAYS] == 21
    result = await hass.config_entries.options.async_configure(
        flow["flow_id"],
        {CONF_ENDPOINTS: f"{HOST}:{port} ca={bundle}", CONF_EXPIRY_WARNING_DAYS: 21},
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert device_registry.async_get(removed.id) is None
    assert all(
        er.async_get(hass).async_get(entity) is None for entity in removed_entities
    )
    assert device_registry.async_get(kept.id) is not None
    assert len(_entities_of(hass, kept.id)) == 3


@pytest.mark.parametrize(
    ("text", "error", "detail"),
    [
        ("http://example.test/", "invalid_endpoint", "1: “http://example.test/”"),
        ("ok.test\nexample.test:0", "invalid_endpoint", "2: “example.test:0”"),
        ("example.test:65536", "invalid_endpoint", "example.test:65536"),
        ("example.test:https", "invalid_endpoint", "example.test:https"),
        ("exa mple.test", "invalid_endpoint", "exa mple.test"),
        ("example.test ca=", "invalid_endpoint", "example.test ca="),
        ("-bad-.test", "invalid_endpoint", "-bad-.test"),
        ("[example.test]:443", "invalid_endpoint", "[example.test]:443"),
        ("\n".join(f"host{n}.test" for n in range(51)), "too_many_endpoints", "51"),
        ("example.test ca=relative.pem", "ca_bundle_not_allowed", "relative.pem"),
        ("example.test ca=/etc/ssl/certs/x.pem", "ca_bundle_not_allowed", "/etc/ssl/"),
        ("example.test ca={tmp}/missing.pem", "ca_bundle_unreadable", "missing.pem"),
        ("example.test ca={tmp}/garbage.pem", "ca_bundle_unreadable", "garbage"),
    ],
)
async def test_options_flow_errors(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    tmp_path: Path,
    text: str,
    error: str,
    detail: str,
) -> None:
    """Bad lines (each with its number), too many endpoints and unusable CA bundles."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    certs.write_file(tmp_path / "garbage.pem", certs.GARBAGE)
    entry = await setup_entry()
    result = await _options_flow(
        hass,
        entry,
        {
            CONF_ENDPOINTS: text.replace("{tmp}", str(tmp_path)),
            CONF_EXPIRY_WARNING_DAYS: 14,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_ENDPOINTS: error}
    assert detail in result["description_placeholders"]["detail"]
    if error == "ca_bundle_not_allowed":  # the error lists where bundles may be
        assert str(tmp_path) in result["description_placeholders"]["allowed"]
    assert CONF_ENDPOINTS not in entry.options
    # What was typed stays in the form.
    assert suggested(result["data_schema"].schema)[CONF_ENDPOINTS] == text.replace(
        "{tmp}", str(tmp_path)
    )


async def test_options_flow_with_no_endpoints(
    hass: HomeAssistant, setup_entry: SetupEntry
) -> None:
    """An empty list and just a new threshold are fine."""
    entry = await setup_entry()
    result = await _options_flow(hass, entry, {CONF_EXPIRY_WARNING_DAYS: 30})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_ENDPOINTS: [], CONF_EXPIRY_WARNING_DAYS: 30}
    assert entry.runtime_data.certificates is not None
    assert entry.runtime_data.certificates.warning_days == 30


async def test_delete_endpoint_device(
    hass: HomeAssistant,
    socket_enabled: None,
    hass_ws_client: WebSocketGenerator,
    device_registry: dr.DeviceRegistry,
    setup_entry: SetupEntry,
) -> None:
    """Deleting an endpoint's device in the UI stops watching the endpoint."""
    assert await async_setup_component(hass, "config", {})
    with refused_port() as first, refused_port() as second:
        entry = await setup_entry(
            endpoint_options(_endpoint(HOST, first), _endpoint(HOST, second)),
        )
    client = await hass_ws_client(hass)

    async def remove(device_id: str) -> dict[str, Any]:
        await client.send_json_auto_id(
            {"type": "config/device_registry/remove", "device_id": device_id}
        )
        response: dict[str, Any] = await client.receive_json()
        await hass.async_block_till_done(wait_background_tasks=True)
        return response

    def device(identifier: str) -> dr.DeviceEntry | None:
        return device_registry.async_get_device_by_identifier(
            (DOMAIN, identifier), entry.entry_id
        )

    first_device = device(f"{entry.entry_id}_{HOST}:{first}")
    assert first_device is not None
    assert (await remove(first_device.id))["success"]
    assert entry.options[CONF_ENDPOINTS] == [{"host": HOST, "port": second}]
    assert device(f"{entry.entry_id}_{HOST}:{first}") is None
    assert device(f"{entry.entry_id}_{HOST}:{second}") is not None
    assert entry.state is ConfigEntryState.LOADED

    # A device left from an endpoint removed earlier goes without a reload.
    leftover = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, f"{entry.entry_id}_gone.test:443")},
    )
    assert (await remove(leftover.id))["success"]
    assert entry.options[CONF_ENDPOINTS] == [{"host": HOST, "port": second}]

    # The entry's own device cannot be deleted.
    own = device(entry.entry_id)
    assert own is not None
    assert not (await remove(own.id))["success"]


async def test_stale_endpoint_devices_are_removed_at_setup(
    hass: HomeAssistant,
    setup_entry: SetupEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Devices of endpoints no longer listed go when the entry sets up."""
    entry = await setup_entry()
    stale = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, f"{entry.entry_id}_gone.test:443")},
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert device_registry.async_get(stale.id) is None
    assert (
        device_registry.async_get_device_by_identifier(
            (DOMAIN, entry.entry_id), entry.entry_id
        )
        is not None
    )


async def test_endpoint_checks_never_block_the_event_loop(
    hass: HomeAssistant,
    socket_enabled: None,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    setup_entry: SetupEntry,
) -> None:
    """CA bundles are read in the executor: in the checks and in the form."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    leaf = certs.issue([HOST])
    async with tls_server(leaf) as server:
        with guard_event_loop(tmp_path) as loop_calls:
            entry = await setup_entry(
                endpoint_options(_endpoint(HOST, server.port, bundle)),
            )
            await tick(hass, freezer, timedelta(hours=6, minutes=1))
            result = await _options_flow(
                hass,
                entry,
                {
                    CONF_ENDPOINTS: f"{HOST}:{server.port} ca={bundle}",
                    CONF_EXPIRY_WARNING_DAYS: 14,
                },
            )
        assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loop_calls == []
    assert server.handshakes == 3
    assert state(hass, entry, _key(HOST, server.port), PROBLEM).state == STATE_OFF


def test_remote_cases_cover_the_reasons() -> None:
    """The endpoint cases exercise every reason a remote check can give."""
    reasons: Sequence[str | None] = [case.reason for case in REMOTE_CASES.values()]
    for reason in (
        "connection_refused",
        "connection_reset",
        "timeout",
        "handshake_failed",
        "name_resolution_failed",
        "self_signed",
        "untrusted",
        "expired",
        "expiring",
        "not_yet_valid",
        "name_mismatch",
        None,
    ):
        assert reason in reasons
