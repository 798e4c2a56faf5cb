"""Certificate monitoring of remote endpoints, served by local TLS servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.secure_remote_access.const import (
    CONF_ENDPOINTS,
    CONF_EXPIRY_WARNING_DAYS,
    DOMAIN,
)
from custom_components.secure_remote_access.coordinator import (
    EndpointMonitor,
    certificates,
)
from tests.fakes import certs
from tests.fakes.tls_server import (
    FakeServer,
    garbage_server,
    refused_port,
    reset_server,
    stalling_server,
    tls_server,
)

from .common import suggested
from .monitor_common import (
    DAYS,
    EXPIRY,
    PROBLEM,
    certificate_issues,
    endpoint_options,
    entity_id,
    guard_event_loop,
    managed_options,
    setup_entry,
    state,
    tick,
)

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
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    case: RemoteCase,
) -> tuple[MockConfigEntry, str]:
    bundle = None
    if case.bundle is not None:
        bundle = certs.write_file(tmp_path / "ca.pem", case.bundle)
    with patch.object(EndpointMonitor, "timeout", case.timeout):
        async with case.serve() as server:
            entry = await setup_entry(
                hass,
                aioclient_mock,
                endpoint_options(_endpoint(case.host, server.port, bundle)),
            )
    return entry, _key(case.host, server.port)


@pytest.mark.parametrize("name", list(REMOTE_CASES))
async def test_remote_endpoint(
    hass: HomeAssistant,
    socket_enabled: None,
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    name: str,
) -> None:
    """Each server gives the expected sensors, reason and Repairs issue."""
    case = REMOTE_CASES[name]
    entry, key = await _check_remote(hass, aioclient_mock, tmp_path, case)
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
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """An endpoint has its own service device, linked to the entry's device."""
    leaf = certs.issue([HOST], serial=0xBEEF)
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    async with tls_server(leaf) as server:
        entry = await setup_entry(
            hass,
            aioclient_mock,
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
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
) -> None:
    """Two names on one server: each endpoint sees its own certificate."""
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    default = certs.issue(["default.test"])
    other = certs.issue([HOST], valid_days=30)
    async with tls_server(default, sni={HOST: other}) as server:
        entry = await setup_entry(
            hass,
            aioclient_mock,
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
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
) -> None:
    """A CA bundle removed after it was configured is reported as such."""
    missing = tmp_path / "gone.pem"
    garbage = certs.write_file(tmp_path / "garbage.pem", certs.GARBAGE)
    async with tls_server(certs.issue([HOST])) as server:
        entry = await setup_entry(
            hass,
            aioclient_mock,
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
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """Checks repeat every 6 hours, at most 10 handshakes at a time."""
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    async with tls_server(certs.issue([HOST])) as server:
        with patch.object(
            certificates, "inspect_endpoints", wraps=certificates.inspect_endpoints
        ) as inspect:
            entry = await setup_entry(
                hass,
                aioclient_mock,
                endpoint_options(_endpoint(HOST, server.port, bundle)),
            )
            assert server.handshakes == 1
            await tick(hass, freezer, timedelta(hours=5, minutes=59))
            assert server.handshakes == 1
            await tick(hass, freezer, timedelta(minutes=2))
            assert server.handshakes == 2
        assert inspect.call_args.kwargs["concurrency"] == 10
    # The server is gone: the next check reports it, the entities stay.
    await tick(hass, freezer, timedelta(hours=6, minutes=1))
    problem = state(hass, entry, _key(HOST, server.port), PROBLEM)
    assert problem.attributes["reason"] == "connection_refused"


async def test_first_check_runs_after_setup(
    hass: HomeAssistant,
    socket_enabled: None,
    aioclient_mock: AiohttpClientMocker,
    issue_registry: ir.IssueRegistry,
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
            )
        with patch("tests.common.MockConfigEntry", wraps=MockConfigEntry) as make_entry:
            make_entry.side_effect = lambda **kwargs: MockConfigEntry(
                entry_id=mock_entry_id, **kwargs
            )
            entry = await setup_entry(
                hass,
                aioclient_mock,
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
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Endpoints added in the options get devices; removed ones lose them."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    cert, key = certs.issue(["myhome.duckdns.org"]).write(tmp_path / "ssl")
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
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
        ("example.test ca=relative.pem", "path_not_allowed", "relative.pem"),
        ("example.test ca=/etc/ssl/certs/x.pem", "path_not_allowed", "/etc/ssl/"),
        ("example.test ca={tmp}/missing.pem", "ca_bundle_unreadable", "missing.pem"),
        ("example.test ca={tmp}/garbage.pem", "ca_bundle_unreadable", "garbage"),
    ],
)
async def test_options_flow_errors(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    text: str,
    error: str,
    detail: str,
) -> None:
    """Bad lines (each with its number), too many endpoints and unusable CA bundles."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    certs.write_file(tmp_path / "garbage.pem", certs.GARBAGE)
    entry = await setup_entry(hass, aioclient_mock)
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
    assert CONF_ENDPOINTS not in entry.options
    # What was typed stays in the form.
    assert suggested(result["data_schema"].schema)[CONF_ENDPOINTS] == text.replace(
        "{tmp}", str(tmp_path)
    )


async def test_options_flow_with_no_endpoints(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """An empty list and just a new threshold are fine."""
    entry = await setup_entry(hass, aioclient_mock)
    result = await _options_flow(hass, entry, {CONF_EXPIRY_WARNING_DAYS: 30})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_ENDPOINTS: [], CONF_EXPIRY_WARNING_DAYS: 30}
    assert entry.runtime_data.certificates is not None
    assert entry.runtime_data.certificates.warning_days == 30


async def test_delete_endpoint_device(
    hass: HomeAssistant,
    socket_enabled: None,
    aioclient_mock: AiohttpClientMocker,
    hass_ws_client: WebSocketGenerator,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Deleting an endpoint's device in the UI stops watching the endpoint."""
    assert await async_setup_component(hass, "config", {})
    with refused_port() as first, refused_port() as second:
        entry = await setup_entry(
            hass,
            aioclient_mock,
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
    aioclient_mock: AiohttpClientMocker,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Devices of endpoints no longer listed go when the entry sets up."""
    entry = await setup_entry(hass, aioclient_mock)
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
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    """CA bundles are read in the executor: in the checks and in the form."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem")
    leaf = certs.issue([HOST])
    async with tls_server(leaf) as server:
        with guard_event_loop(tmp_path) as loop_calls:
            entry = await setup_entry(
                hass,
                aioclient_mock,
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
