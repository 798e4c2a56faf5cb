"""Certificate monitoring of local files: the managed and the served certificate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
import json
from pathlib import Path
import socket
from typing import Any
from unittest.mock import AsyncMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import async_capture_events
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.const import (
    CONF_EXPIRY_WARNING_DAYS,
    DOMAIN,
)
from custom_components.secure_remote_access.coordinator import certificates
from custom_components.secure_remote_access.renewal import (
    RenewalCoordinator,
    RenewalOutcome,
)
from tests.fakes import certs

from .monitor_common import (
    DAYS,
    EXPIRY,
    NAME,
    PROBLEM,
    certificate_issues,
    entity_id,
    guard_event_loop,
    managed_options,
    setup_entry,
    state,
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
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    name: str,
) -> None:
    """Each kind of file gives the expected sensors, reason and Repairs issue."""
    case = CASES[name]
    cert, key = _write(tmp_path, case)
    entry = await setup_entry(
        hass, aioclient_mock, managed_options(cert, key, wildcard=case.wildcard)
    )
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
    aioclient_mock: AiohttpClientMocker,
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
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))

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
    aioclient_mock: AiohttpClientMocker,
    entity_registry: er.EntityRegistry,
) -> None:
    """DuckDNS updating only, without http TLS: no certificate entities."""
    entry = await setup_entry(hass, aioclient_mock)
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
    aioclient_mock: AiohttpClientMocker,
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
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
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
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Expiring (at the configured threshold), then renewed: the issue goes."""
    leaf = certs.issue(
        [NAME], not_before=certs.now_utc() - timedelta(days=70), valid_days=20
    )
    cert, key = leaf.write(tmp_path)
    entry = await setup_entry(
        hass,
        aioclient_mock,
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
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """Files are stat'ed every minute and read again only when they changed."""
    first = certs.issue([NAME], valid_days=50)
    cert, key = first.write(tmp_path)
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
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
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """Every hour the files are read again even when nothing changed."""
    cert, key = certs.issue([NAME]).write(tmp_path)
    await setup_entry(hass, aioclient_mock, managed_options(cert, key))
    with patch.object(
        certificates,
        "read_local_certificate",
        wraps=certificates.read_local_certificate,
    ) as reads:
        await tick(hass, freezer, timedelta(minutes=61))
        assert reads.call_count == 1


async def test_renewal_refreshes_at_once(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
) -> None:
    """After a renewal the coordinator's listener makes the monitor read the files."""
    cert, key = certs.issue(
        [NAME], not_before=certs.now_utc() - timedelta(days=80), valid_days=10
    ).write(tmp_path)
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
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
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """The certificate of Home Assistant's own http server has its sensors."""
    served = certs.issue(["ha.example.test"], key_type=certs.KeyType.RSA_2048)
    cert, key = served.write(tmp_path / "http")
    await _setup_http(hass, cert, key)
    entry = await setup_entry(hass, aioclient_mock)
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
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
) -> None:
    """Without ssl_key, the key is read from the certificate file, as http does."""
    served = certs.issue(["ha.example.test"])
    combined = certs.write_file(
        tmp_path / "combined.pem", served.fullchain_pem + served.key_pem, 0o600
    )
    await _setup_http(hass, combined, None)
    entry = await setup_entry(hass, aioclient_mock)
    assert state(hass, entry, SERVED, PROBLEM).state == STATE_OFF


async def test_served_and_managed_are_the_same_file(
    hass: HomeAssistant,
    socket_enabled: None,
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """One set of entities and issues when http serves the managed certificate."""
    leaf = certs.issue([NAME])
    cert, key = leaf.write(tmp_path / "ssl")
    link = tmp_path / "link.pem"
    link.symlink_to(cert)
    await _setup_http(hass, link, key)
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
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
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    entity_registry: er.EntityRegistry,
) -> None:
    """Entities of a certificate no longer monitored leave the registry."""
    cert, key = certs.issue([NAME]).write(tmp_path)
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
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
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """Only a bug (not a bad file) makes the entities unavailable."""
    cert, key = certs.issue([NAME]).write(tmp_path)
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
    with patch.object(certificates, "read_local_certificate", side_effect=RuntimeError):
        await tick(hass, freezer, timedelta(minutes=61))
    assert state(hass, entry, MANAGED, EXPIRY).state == STATE_UNAVAILABLE
    await tick(hass, freezer, timedelta(minutes=61))
    assert state(hass, entry, MANAGED, PROBLEM).state == STATE_OFF


async def test_monitoring_bug_does_not_stop_dns_updating(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
) -> None:
    """An unexpected error at setup leaves the entry loaded, certificates unavailable."""
    cert, key = certs.issue([NAME]).write(tmp_path)
    with patch.object(certificates, "read_local_certificate", side_effect=RuntimeError):
        entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
    assert entry.state is ConfigEntryState.LOADED
    assert state(hass, entry, MANAGED, PROBLEM).state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.myhome_duckdns_org_public_ipv4_address").state == (
        "203.0.113.7"
    )


async def test_local_reads_never_block_the_event_loop(
    hass: HomeAssistant,
    socket_enabled: None,
    aioclient_mock: AiohttpClientMocker,
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
        entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
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
