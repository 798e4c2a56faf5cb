"""Forwarding HTTPS from the internet on the router, through Home Assistant.

The router is the project's gateway on 127.0.0.1 (`tests.fakes.igd`, the
``home`` fixture): its mapping list is read back directly, and it plays the
error replies of real routers. Whether Home Assistant (or its proxy) serves
the managed certificate is issue 28's `async_who_serves_managed`, told here.
Faults first: refusals, another host on the port, a router that reboots,
vanishes mid-change or is away when the entry is deleted, a restart in the
middle of adding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
import logging
from pathlib import Path
import socket
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.repairs import DOMAIN as REPAIRS
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.secure_remote_access import (
    port_forward_flow,
    port_forwarding,
    remote_access,
    router_keeping,
)
from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.port_forward_state import (
    Forward,
    ForwardState,
    mapping_description,
)
from custom_components.secure_remote_access.proxy import CertificateServer
from tests.fakes import certs
from tests.fakes.igd import Mapping
from tests.fakes.issuer import FakeCa
from tests.fakes.tls_server import tls_server

from .common import NAME, advance, managed_options
from .remote_home import LOCAL, Home
from .restart import restarted
from .translations_guard import strings

SERVED_BY_HA = CertificateServer("Home Assistant", 8123)
OTHER_HOST = "127.0.0.9"


@contextmanager
def served(server: CertificateServer | None = SERVED_BY_HA) -> Iterator[None]:
    """Who serves the managed certificate; the router loops back to us."""

    async def who(*_args: Any) -> CertificateServer | None:
        return server

    with (
        patch.object(port_forward_flow, "async_who_serves_managed", who),
        patch.object(router_keeping, "async_who_serves_managed", who),
        patch.object(remote_access, "hairpin_loopback", lambda _address: LOCAL),
        patch.object(port_forwarding, "CHANGE_TIMEOUT", 2.0),
    ):
        yield


@pytest.fixture
def https(home: Home) -> Iterator[Home]:
    """Home Assistant serves the managed certificate on port 8123."""
    with served():
        yield home


async def _setup(home: Home, tmp_path: Path, names: tuple[str, ...] = (NAME,)) -> Any:
    cert, key = certs.issue(list(names)).write(tmp_path)
    return await home.setup(managed_options(cert, key))


async def _menu(home: Home) -> list[str]:
    assert home.entry is not None
    menu = await home.hass.config_entries.options.async_init(home.entry.entry_id)
    home.hass.config_entries.options.async_abort(menu["flow_id"])
    return list(menu["menu_options"])


async def _step(home: Home, step: str) -> dict[str, Any]:
    """Open the options flow's ``step`` (its first screen)."""
    assert home.entry is not None
    options = home.hass.config_entries.options
    menu = await options.async_init(home.entry.entry_id)
    return dict(await options.async_configure(menu["flow_id"], {"next_step_id": step}))


async def _submit(home: Home, form: dict[str, Any], **values: Any) -> dict[str, Any]:
    options = home.hass.config_entries.options
    return dict(await options.async_configure(form["flow_id"], values))


async def _forward(home: Home, port: int = 443) -> dict[str, Any]:
    form = await _step(home, "forward_https")
    assert form["type"] is FlowResultType.FORM, form
    return await _submit(home, form, external_port=port, consent=True)


def _ours(home: Home, port: int = 443) -> Mapping:
    assert home.entry is not None
    return Mapping(
        port, "TCP", 8123, LOCAL, mapping_description(home.entry.entry_id), True, 3600
    )


def _listed(home: Home) -> list[tuple[int, str, str]]:
    """The router's list: external port, internal client, description."""
    return [
        (m.external_port, m.internal_client, m.description)
        for m in home.igd.state.mappings
    ]


def _store(hass_storage: dict[str, Any], entry_id: str, state: ForwardState) -> None:
    """The keeper's Store file as a restart finds it."""
    key = f"{DOMAIN}.port_forward_{entry_id}"
    hass_storage[key] = {
        "version": 1,
        "minor_version": 1,
        "key": key,
        "data": state.as_dict(),
    }


async def _later(home: Home, delta: timedelta) -> None:
    async_fire_time_changed(home.hass, dt_util.utcnow() + delta)
    await home.hass.async_block_till_done(wait_background_tasks=True)


# ----------------------------------------------------------------- forward


async def test_forward_https_with_consent(
    https: Home, fake_ca: FakeCa, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The screen names what is exposed; nothing changes before consent; then
    the router lists our mapping, the sensor shows the port, and the check
    after the change reaches our certificate through the forwarded port."""
    issued = certs.issue([NAME])
    cert, key = issued.write(tmp_path)
    async with tls_server(issued) as server:
        entry = await https.setup(managed_options(cert, key))
        assert https.state() == "no_port_forward"
        assert "forward_https" in await _menu(https)
        form = await _step(https, "forward_https")
        assert form["description_placeholders"] == {
            "router": "Test gateway",
            "wan_address": "203.0.113.7",
            "internal": f"{LOCAL}:8123",
            "server": "Home Assistant",
            "names": NAME,
            "description": f"Secure Remote Access {entry.entry_id[:8]}",
            "detail": "",
        }
        unconsented = await _submit(https, form, external_port=443, consent=False)
        assert unconsented["errors"] == {"consent": "forward_consent_required"}
        assert https.igd.state.mappings == []
        with caplog.at_level(logging.INFO):
            # The "router" loops back to the TLS server on its external port.
            done = await _submit(
                https, unconsented, external_port=server.port, consent=True
            )
        assert https.attributes()["hairpin"] == "reached_us"
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "forward_added"
    assert done["description_placeholders"]["url"] == f"https://{NAME}:{server.port}"
    assert https.igd.state.mappings == [_ours(https, server.port)]
    assert https.attributes()["forwarded_https_port"] == server.port
    assert https.state() == "reachable"
    added = [r for r in caplog.records if "Forwarded external port" in r.message]
    assert len(added) == 1
    assert await _menu(https) == [
        "dns", "certificate", "endpoints", "checks", "certificate_off",
        "serve_https", "forward_https_off",
    ]  # fmt: skip


async def test_a_port_taken_by_another_host_is_an_error_on_the_port(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """443 goes to another host: refused on the field, theirs untouched; 8443 works."""
    https.igd.state.mappings = [Mapping(443, "TCP", 443, OTHER_HOST, "web server")]
    await _setup(https, tmp_path)
    refused = await _forward(https, 443)
    assert refused["type"] is FlowResultType.FORM
    assert refused["errors"] == {"external_port": "forward_port_taken"}
    assert OTHER_HOST in refused["description_placeholders"]["detail"]
    done = await _submit(https, refused, external_port=8443, consent=True)
    assert done["reason"] == "forward_added"
    assert done["description_placeholders"]["url"] == f"https://{NAME}:8443"
    assert _listed(https) == [
        (443, OTHER_HOST, "web server"),
        (8443, LOCAL, _ours(https).description),
    ]
    assert https.attributes()["forwarded_https_port"] == 8443


@pytest.mark.parametrize(
    ("router", "field", "error"),
    [
        ({"add_error": 606}, "external_port", "forward_not_authorized"),
        ({"mode": "read_only"}, "external_port", "forward_not_authorized"),
        # An old IGDv1 router's 718 for a port its rules refuse (none holds it).
        ({"add_error": 718}, "external_port", "forward_not_authorized"),
        ({"add_error": 724}, "external_port", "forward_same_port_required"),
        ({"permanent_only": True}, "base", "forward_permanent_only"),
        ({"add_error": 501}, "base", "forward_action_failed"),
        ({"add_error": 401}, "base", "forward_not_supported"),
        ({"add_error": 729}, "base", "forward_refused"),
        ({"lists_additions": False}, "base", "forward_not_confirmed"),
    ],
)
async def test_every_refusal_is_said_and_leaves_nothing(
    https: Home,
    fake_ca: FakeCa,
    tmp_path: Path,
    router: dict[str, Any],
    field: str,
    error: str,
) -> None:
    """The router's refusal is a translated error; its list is as before."""
    await _setup(https, tmp_path)
    for name, value in router.items():
        setattr(https.igd.state, name, value)
    refused = await _forward(https, 443)
    assert refused["errors"] == {field: error}
    assert https.igd.state.mappings == []
    assert "forwarded_https_port" not in https.attributes()
    assert "forward_https" in await _menu(https)


@pytest.mark.parametrize(
    ("router", "shown", "hidden"),
    [
        ({"mode": "garbage_soap"}, None, "mismatched tag"),
        ({"mappings": [Mapping(443, "TCP", 443, OTHER_HOST, "web server")]},
         f"\n\nexternal port 443 goes to {OTHER_HOST}:443", None),
    ],
)  # fmt: skip
async def test_the_refused_screen_reads_as_text(
    https: Home,
    fake_ca: FakeCa,
    tmp_path: Path,
    router: dict[str, Any],
    shown: str | None,
    hidden: str | None,
) -> None:
    """The router's own answer (who holds the port) is a paragraph of its
    own; a parser's message about a broken reply is not shown at all."""
    await _setup(https, tmp_path)
    for name, value in router.items():
        setattr(https.igd.state, name, value)
    refused = await _forward(https, 443)
    text = strings()["options"]["step"]["forward_https"]["description"].format(
        **refused["description_placeholders"]
    )
    assert text.startswith("Secure Remote Access adds one port forward")
    if shown is not None:
        assert shown in text
    if hidden is not None:
        assert hidden not in text
        assert text.endswith("adds it again.")


@pytest.mark.parametrize(
    ("server", "names", "missing"),
    [
        (None, (NAME,), "served"),
        (SERVED_BY_HA, ("other.duckdns.org",), "certificate"),
    ],
)
async def test_offered_only_when_safe(
    home: Home,
    fake_ca: FakeCa,
    tmp_path: Path,
    server: CertificateServer | None,
    names: tuple[str, ...],
    missing: str,
) -> None:
    """Not served, or a certificate for other names: the step says which is missing."""
    with served(server):
        await _setup(home, tmp_path, names)
        refused = await _step(home, "forward_https")
    assert refused["reason"] == "forward_not_safe"
    conditions = refused["description_placeholders"]
    assert conditions[missing] == "✘"
    assert {k for k in ("served", "certificate", "login_ban", "no_critical")
            if conditions[k] == "✘"} == {missing}  # fmt: skip
    assert home.igd.state.mappings == []


async def test_behind_carrier_grade_nat_points_elsewhere(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """A shared WAN address: a forward cannot help, the step says so."""
    https.igd.state.wan_address = "100.64.0.7"
    await _setup(https, tmp_path)
    refused = await _step(https, "forward_https")
    assert refused["reason"] == "forward_behind_cgnat"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("hang", "forward_no_router"),
        ("refuse", "forward_router_hides_address"),
    ],
)
async def test_without_the_routers_answers_nothing_is_forwarded(
    https: Home, fake_ca: FakeCa, tmp_path: Path, mode: str, reason: str
) -> None:
    """No router answered the check, or one answered but refused to tell its
    WAN address (carrier-grade NAT cannot be ruled out): the step says which."""
    https.igd.state.mode = mode
    await _setup(https, tmp_path)
    refused = await _step(https, "forward_https")
    assert refused["reason"] == reason
    https.igd.state.mode = "ok"
    assert https.igd.state.mappings == []


# -------------------------------------------------------------------- keep


async def test_kept_renewed_and_added_again_after_a_reboot(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """Halfway through the lease it is renewed; a router that forgot it gets it again."""
    await _setup(https, tmp_path)
    await _forward(https)
    https.igd.state.mappings[0].lease_seconds = 600  # what the router has left
    await _later(https, timedelta(minutes=31))
    assert https.igd.state.mappings[0].lease_seconds == 3600
    https.igd.state.mappings = []  # a reboot
    await _later(https, timedelta(minutes=62))
    assert https.igd.state.mappings == [_ours(https)]
    assert https.attributes()["forwarded_https_port"] == 443


async def test_a_refused_fix_after_a_reboot_keeps_the_forward(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """The router rebooted and forgot our forward: the check raises
    "nothing forwards to HTTPS" before the keeper's next look. Its fix asks
    for the same forward while the router is still settling (501): the form
    says so, and the forward is still ours to keep, asked for again five
    minutes later (not forgotten, with nothing forwarding any more)."""
    entry = await _setup(https, tmp_path)
    await _forward(https)
    https.igd.state.mappings = []  # a reboot
    https.igd.state.add_error = 501
    with patch.object(remote_access, "served_files", lambda _hass: object()):
        await entry.runtime_data.remote_access.async_refresh()
        await https.hass.async_block_till_done()
    issue_id = f"no_port_forward_{entry.entry_id}"
    assert ir.async_get(https.hass).async_get_issue(DOMAIN, issue_id) is not None
    await async_setup_component(https.hass, REPAIRS, {})
    flows = https.hass.data[REPAIRS]["flow_manager"]
    form = await flows.async_init(DOMAIN, data={"issue_id": issue_id})
    refused = await flows.async_configure(
        form["flow_id"], {"external_port": 443, "consent": True}
    )
    assert refused["errors"] == {"base": "forward_action_failed"}
    await https.hass.async_block_till_done(wait_background_tasks=True)
    # The sensor no longer shows the forward the router lost.
    assert "forwarded_https_port" not in https.attributes()
    https.igd.state.add_error = None
    await _later(https, timedelta(minutes=6))
    assert https.igd.state.mappings == [_ours(https)]
    assert https.attributes()["forwarded_https_port"] == 443


async def test_renewed_on_a_router_that_lists_the_granted_lease(
    https: Home, fake_ca: FakeCa, tmp_path: Path, freezer: FrozenDateTimeFactory
) -> None:
    """The router lists the hour it granted, not what is left of it (linux-igd):
    renewed all the same before the hour ends, every time."""
    await _setup(https, tmp_path)
    await _forward(https)
    assert https.igd.state.additions == 1
    for renewals in (1, 2, 3):
        await advance(https.hass, freezer, timedelta(minutes=31), background=True)
        await advance(https.hass, freezer, timedelta(minutes=29), background=True)
        assert https.igd.state.additions == 1 + renewals
    assert https.attributes()["forwarded_https_port"] == 443


async def test_a_router_that_grants_a_shorter_lease(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """The router grants 60 s for the hour asked: renewed within that minute,
    not half an hour later when the mapping is long gone."""
    await _setup(https, tmp_path)
    https.igd.state.lease_limit = 60
    await _forward(https)
    assert https.igd.state.mappings[0].lease_seconds == 60
    https.igd.state.mappings[0].lease_seconds = 25  # what the router has left
    await _later(https, timedelta(seconds=35))
    assert https.igd.state.mappings[0].lease_seconds == 60
    https.igd.state.mappings[0].lease_seconds = 25
    await _later(https, timedelta(seconds=70))
    assert https.igd.state.mappings[0].lease_seconds == 60
    assert https.attributes()["forwarded_https_port"] == 443


async def test_a_router_that_comes_back_on_another_port(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """Rebooted, the router forgot the forward and serves UPnP on a new port
    (miniupnpd's http_port=0): the forward is added there again."""
    await _setup(https, tmp_path)
    await _forward(https)
    await https.igd.stop()
    https.igd.state.mappings = []
    await https.igd.start()
    await _later(https, timedelta(minutes=61))
    await _later(https, timedelta(minutes=67))
    assert https.igd.state.mappings == [_ours(https)]
    assert https.attributes()["forwarded_https_port"] == 443
    form = await _step(https, "forward_https_off")
    assert (await _submit(https, form))["reason"] == "forward_removed"
    assert https.igd.state.mappings == []


async def test_home_assistant_on_a_new_address_after_a_power_cut(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """The router gave this host another address: the forward follows it,
    and the one to the old address (now maybe another device) goes."""
    await _setup(https, tmp_path)
    await _forward(https)
    https.igd.state.mappings[0].lease_seconds = 600
    with patch.object(
        remote_access.upnp, "local_address_towards", lambda _location: OTHER_HOST
    ):
        await https.check()
        await _later(https, timedelta(minutes=61))
    assert _listed(https) == [(443, OTHER_HOST, _ours(https).description)]
    form = await _step(https, "forward_https_off")
    assert form["description_placeholders"]["internal"] == f"{OTHER_HOST}:8123"
    assert (await _submit(https, form))["reason"] == "forward_removed"
    assert https.igd.state.mappings == []


async def test_a_router_away_for_a_while(
    https: Home, fake_ca: FakeCa, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Away: one warning, the port leaves the sensor; back: ours is added again."""
    await _setup(https, tmp_path)
    await _forward(https)
    await https.igd.stop()
    await _later(https, timedelta(minutes=61))
    await _later(https, timedelta(minutes=67))
    warnings = [r for r in caplog.records if "cannot be kept" in r.message]
    assert len(warnings) == 1
    assert "forwarded_https_port" not in https.attributes()
    https.igd.state.mappings = []
    await https.igd.start(https.igd.port)
    await _later(https, timedelta(minutes=73))
    assert https.igd.state.mappings == [_ours(https)]
    assert https.attributes()["forwarded_https_port"] == 443


async def test_removed_when_https_is_no_longer_served(
    home: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """Home Assistant went back to plain HTTP: the forward goes at the next look
    (at once: it would expose plain HTTP)."""
    with served():
        await _setup(home, tmp_path)
        await _forward(home)
    with served(None):
        await _later(home, timedelta(minutes=61))
        assert home.igd.state.mappings == []
        assert "forward_https_off" not in await _menu(home)
    assert "forwarded_https_port" not in home.attributes()


async def test_kept_while_the_proxy_add_on_restarts(
    home: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """At one look the proxy add-on is restarting (an update), or the
    Supervisor does not answer: the forward stays; it goes only when HTTPS
    is still not served at the next look."""
    proxy = CertificateServer("NGINX Home Assistant SSL proxy", 443)
    with served(proxy):
        await _setup(home, tmp_path)
        await _forward(home)
    with served(None):
        await _later(home, timedelta(minutes=61))
    with served(proxy):
        await _later(home, timedelta(minutes=67))
        await _later(home, timedelta(minutes=130))
    assert _listed(home) == [(443, LOCAL, _ours(home).description)]
    assert home.attributes()["forwarded_https_port"] == 443
    assert "forward_https_off" in await _menu(home)


# ------------------------------------------------------------------ remove


async def test_stop_forwarding_removes_only_ours(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """The off step deletes our mapping, never another host's."""
    await _setup(https, tmp_path)
    await _forward(https)
    https.igd.state.mappings.append(Mapping(9000, "TCP", 9000, OTHER_HOST, "nas"))
    form = await _step(https, "forward_https_off")
    assert form["description_placeholders"] == {
        "port": "443",
        "internal": f"{LOCAL}:8123",
    }
    done = await _submit(https, form)
    assert done["reason"] == "forward_removed"
    assert _listed(https) == [(9000, OTHER_HOST, "nas")]
    assert "forwarded_https_port" not in https.attributes()
    assert https.state() == "no_port_forward"
    assert "forward_https" in await _menu(https)


async def test_a_port_another_host_took_meanwhile_is_left_alone(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """After a reboot another device holds our port: stopping deletes nothing."""
    await _setup(https, tmp_path)
    await _forward(https)
    https.igd.state.mappings = [Mapping(443, "TCP", 443, OTHER_HOST, "camera")]
    form = await _step(https, "forward_https_off")
    done = await _submit(https, form)
    assert done["reason"] == "forward_removed"
    assert _listed(https) == [(443, OTHER_HOST, "camera")]
    await _later(https, timedelta(minutes=6))
    assert _listed(https) == [(443, OTHER_HOST, "camera")]


async def test_stopping_while_the_router_is_away(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """The removal waits for the router; it is done once it answers again."""
    await _setup(https, tmp_path)
    await _forward(https)
    form = await _step(https, "forward_https_off")
    await https.igd.stop()
    pending = await _submit(https, form)
    assert pending["reason"] == "forward_removal_pending"
    assert pending["description_placeholders"]["reason"] == (
        "the router did not answer, or its answer was not UPnP"
    )
    assert "forward_https" in await _menu(https)
    await https.igd.start(https.igd.port)
    await _later(https, timedelta(minutes=6))
    assert https.igd.state.mappings == []


async def test_a_router_that_vanishes_in_the_middle_of_adding(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """Added, then no answer: an error, and what it may have added is removed later."""
    await _setup(https, tmp_path)
    https.igd.state.after_changes = ["hang"]
    refused = await _forward(https)
    assert refused["errors"] == {"base": "forward_router_unreachable"}
    assert [m.external_port for m in https.igd.state.mappings] == [443]
    https.igd.state.mode = "ok"
    await _later(https, timedelta(minutes=6))
    assert https.igd.state.mappings == []
    assert "forward_https" in await _menu(https)


async def test_a_router_that_cuts_our_name_keeps_nothing(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """The router lists the forward under a cut name: not confirmed, and, as
    the error says, nothing is kept: the forward it did add is removed."""
    await _setup(https, tmp_path)
    https.igd.state.description_limit = 16
    refused = await _forward(https)
    assert refused["errors"] == {"base": "forward_not_confirmed"}
    https.igd.state.mappings.append(Mapping(9000, "TCP", 8123, LOCAL, "Secure"))
    await _later(https, timedelta(minutes=6))
    assert _listed(https) == [(9000, LOCAL, "Secure")]
    assert "forward_https" in await _menu(https)


async def test_deleting_the_entry_removes_the_forward(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """The entry goes, and so does its forward (no issue is left)."""
    entry = await _setup(https, tmp_path)
    await _forward(https)
    assert await https.hass.config_entries.async_remove(entry.entry_id)
    await https.hass.async_block_till_done()
    assert https.igd.state.mappings == []
    assert not [key for key in ir.async_get(https.hass).issues if key[0] == DOMAIN]


async def test_deleting_the_entry_while_the_router_is_away(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """A Repairs issue names the forward; its fix removes it once the router answers."""
    entry = await _setup(https, tmp_path)
    await _forward(https)
    await https.igd.stop()
    assert await https.hass.config_entries.async_remove(entry.entry_id)
    await https.hass.async_block_till_done()
    issue_id = f"port_forward_left_{entry.entry_id}_443"
    issue = ir.async_get(https.hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders == {
        "external_port": "443",
        "internal_client": LOCAL,
        "internal_port": "8123",
        "description": _ours(https).description,
    }
    fix = await _fix(https, issue_id)
    assert fix["reason"] == "forward_left_refused"
    assert fix["description_placeholders"]["reason"] == (
        "the router did not answer, or its answer was not UPnP"
    )
    await https.igd.start(https.igd.port)
    fixed = await _fix(https, issue_id)
    assert fixed["type"] is FlowResultType.CREATE_ENTRY
    assert https.igd.state.mappings == []
    assert ir.async_get(https.hass).async_get_issue(DOMAIN, issue_id) is None


async def test_a_left_forward_on_a_router_back_on_another_port(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """The entry was deleted while the router was away; the router comes back
    serving UPnP on a new port: the fix finds it there and removes the forward."""
    entry = await _setup(https, tmp_path)
    await _forward(https)
    await https.igd.stop()
    assert await https.hass.config_entries.async_remove(entry.entry_id)
    await https.hass.async_block_till_done()
    await https.igd.start()
    issue_id = f"port_forward_left_{entry.entry_id}_443"
    fixed = await _fix(https, issue_id)
    assert fixed["type"] is FlowResultType.CREATE_ENTRY
    assert https.igd.state.mappings == []
    assert ir.async_get(https.hass).async_get_issue(DOMAIN, issue_id) is None


async def _fix(home: Home, issue_id: str) -> dict[str, Any]:
    await async_setup_component(home.hass, REPAIRS, {})
    flows = home.hass.data[REPAIRS]["flow_manager"]
    form = await flows.async_init(DOMAIN, data={"issue_id": issue_id})
    assert form["step_id"] == "confirm"
    return dict(await flows.async_configure(form["flow_id"], {}))


async def test_remove_this_forward_on_our_own_forward_stops_it(
    https: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """HTTPS was forwarded on external port 80: the port-80 issue's 'Remove
    this forward' stops our forward for good, it is not added back."""
    entry = await _setup(https, tmp_path)
    assert (await _forward(https, 80))["reason"] == "forward_added"
    issue_id = f"port_80_forwarded_{entry.entry_id}"
    assert ir.async_get(https.hass).async_get_issue(DOMAIN, issue_id) is not None
    await async_setup_component(https.hass, REPAIRS, {})
    flows = https.hass.data[REPAIRS]["flow_manager"]
    menu = await flows.async_init(DOMAIN, data={"issue_id": issue_id})
    done = await flows.async_configure(
        menu["flow_id"], {"next_step_id": "remove_forward"}
    )
    assert done["type"] is FlowResultType.CREATE_ENTRY
    await _later(https, timedelta(minutes=61))
    await _later(https, timedelta(minutes=122))
    assert https.igd.state.mappings == []
    assert "forward_https" in await _menu(https)


# ----------------------------------------------------------------- restart


@pytest.mark.parametrize("router_has_it", [True, False])
async def test_a_restart_in_the_middle_of_adding(
    https: Home,
    fake_ca: FakeCa,
    tmp_path: Path,
    hass_storage: dict[str, Any],
    router_has_it: bool,
) -> None:
    """The intent was stored, the answer never came: after the restart the
    forward is confirmed (or added) and shown."""
    entry = await _setup(https, tmp_path)
    forward = Forward(https.igd.location, 443, 8123, LOCAL, _ours(https).description)
    async with restarted(https.hass, hass_storage) as hass:
        _store(hass_storage, entry.entry_id, ForwardState(forward))
        if router_has_it:
            https.igd.state.mappings = [_ours(https)]
        await https.restart(hass)
        assert https.igd.state.mappings == [_ours(https)]
        assert https.attributes()["forwarded_https_port"] == 443


@pytest.mark.parametrize(
    ("established", "error", "given_up"),
    [(False, 606, True), (True, 606, False), (False, 501, False)],
)
async def test_a_refused_intent_after_a_restart_is_given_up(
    https: Home,
    fake_ca: FakeCa,
    tmp_path: Path,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    established: bool,
    error: int,
    given_up: bool,
) -> None:
    """Home Assistant stopped while adding; after the restart the router
    refuses the port (606): the forward it never listed is given up (one
    warning, the menu offers forwarding again), not asked for every five
    minutes. A forward it listed before is kept asking for, and so is one
    a busy router failed (501 ActionFailed may pass)."""
    entry = await _setup(https, tmp_path)
    forward = Forward(https.igd.location, 443, 8123, LOCAL, _ours(https).description)
    https.igd.state.add_error = error
    async with restarted(https.hass, hass_storage) as hass:
        _store(
            hass_storage,
            entry.entry_id,
            ForwardState(forward, established=established),
        )
        await https.restart(hass)
        await _later(https, timedelta(minutes=6))
        loaded = hass.config_entries.async_get_entry(entry.entry_id)
        assert loaded is not None
        kept = loaded.runtime_data.port_forward.state.wanted
        menu = await _menu(https)
    gave_up = [r for r in caplog.records if "it is given up" in r.message]
    if given_up:
        assert kept is None
        assert "forward_https" in menu
        assert len(gave_up) == 1
    else:
        assert kept == forward
        assert "forward_https_off" in menu
        assert gave_up == []
    assert https.igd.state.mappings == []


async def test_a_removal_the_router_did_not_take_is_asked_again_soon(
    https: Home, fake_ca: FakeCa, tmp_path: Path, hass_storage: dict[str, Any]
) -> None:
    """The wanted forward is fine but the router kept an old one it said it
    deleted: the old one is asked for again five minutes later, not at the
    wanted forward's next hourly look."""
    entry = await _setup(https, tmp_path)
    description = _ours(https).description
    wanted = Forward(https.igd.location, 443, 8123, LOCAL, description)
    old = Forward(https.igd.location, 8443, 8123, LOCAL, description)
    async with restarted(https.hass, hass_storage) as hass:
        _store(
            hass_storage,
            entry.entry_id,
            ForwardState(wanted, (old,), confirmed=True, established=True),
        )
        https.igd.state.mappings = [_ours(https), _ours(https, 8443)]
        https.igd.state.keeps_deleted = True
        await https.restart(hass)
        assert sorted(https.igd.state.mappings, key=lambda m: m.external_port) == [
            _ours(https),
            _ours(https, 8443),
        ]
        https.igd.state.keeps_deleted = False
        await _later(https, timedelta(minutes=6))
        assert https.igd.state.mappings == [_ours(https)]


async def test_a_forward_stored_by_the_previous_version_is_kept_after_a_refusal(
    https: Home,
    fake_ca: FakeCa,
    tmp_path: Path,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The previous version stored no "established": a forward that worked
    for months but whose router was away at the last look before the update
    was stored unconfirmed. After the update the rebooted router refuses
    once (501 ActionFailed) and then takes it: the forward is still kept
    (added again five minutes later), never given up as an intent."""
    entry = await _setup(https, tmp_path)
    forward = Forward(https.igd.location, 443, 8123, LOCAL, _ours(https).description)
    https.igd.state.add_error = 501
    async with restarted(https.hass, hass_storage) as hass:
        _store(hass_storage, entry.entry_id, ForwardState(forward))
        stored = hass_storage[f"{DOMAIN}.port_forward_{entry.entry_id}"]["data"]
        del stored["established"]
        await https.restart(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
        https.igd.state.add_error = None
        await _later(https, timedelta(minutes=6))
        menu = await _menu(https)
    assert [r for r in caplog.records if "it is given up" in r.message] == []
    assert "forward_https_off" in menu
    assert [(m.external_port, m.internal_port) for m in https.igd.state.mappings] == [
        (443, 8123)
    ]


@pytest.mark.parametrize("old_port", [8000, 8123])
async def test_an_old_removal_never_deletes_the_forward_that_replaced_it(
    https: Home,
    fake_ca: FakeCa,
    tmp_path: Path,
    hass_storage: dict[str, Any],
    old_port: int,
) -> None:
    """The forward moved from Home Assistant's old port to 8123 on the same
    external port (or moved away and back while the router was away); the old
    one is still to be removed: the router's forward to 8123 is left in
    place, never deleted and added again."""
    entry = await _setup(https, tmp_path)
    description = _ours(https).description
    wanted = Forward(https.igd.location, 443, 8123, LOCAL, description)
    old = Forward(https.igd.location, 443, old_port, LOCAL, description)
    async with restarted(https.hass, hass_storage) as hass:
        _store(hass_storage, entry.entry_id, ForwardState(wanted, (old,)))
        https.igd.state.mappings = [_ours(https)]
        await https.restart(hass)
        await _later(https, timedelta(minutes=6))
        assert https.igd.state.mappings == [_ours(https)]
        assert https.igd.state.deletions == 0
        assert https.attributes()["forwarded_https_port"] == 443


@pytest.mark.parametrize(
    ("external_port", "internal_port"), [(0, 8123), (443, 0), (70000, 8123)]
)
async def test_a_stored_forward_that_makes_no_sense_is_not_added(
    https: Home,
    fake_ca: FakeCa,
    tmp_path: Path,
    hass_storage: dict[str, Any],
    external_port: int,
    internal_port: int,
) -> None:
    """A damaged or hand-edited Store file asks for external port 0 (on many
    routers: every port) or another impossible port: nothing is added."""
    entry = await _setup(https, tmp_path)
    description = _ours(https).description
    forward = Forward(
        https.igd.location, external_port, internal_port, LOCAL, description
    )
    async with restarted(https.hass, hass_storage) as hass:
        _store(hass_storage, entry.entry_id, ForwardState(forward, (forward,)))
        await https.restart(hass)
        await _later(https, timedelta(minutes=61))
        assert https.igd.state.mappings == []
        assert "forward_https" in await _menu(https)


# ------------------------------------------------------- no_port_forward


@pytest.fixture
def disable_http_server() -> None:
    """Let these tests run Home Assistant's real web server (when they set it up)."""


async def test_https_served_but_not_forwarded_offers_the_forward(
    home: Home, fake_ca: FakeCa, tmp_path: Path
) -> None:
    """Home Assistant's real server serves the managed pair, nothing forwards to
    it: a Repairs issue whose fix forwards it; the check then reaches us."""
    issued = certs.issue([NAME])
    cert, key = issued.write(tmp_path)
    with socket.socket() as probe:
        probe.bind((LOCAL, 0))
        port = int(probe.getsockname()[1])
    http = {
        "server_host": [LOCAL],
        "server_port": port,
        "ssl_certificate": str(cert),
        "ssl_key": str(key),
        "ip_ban_enabled": True,
        "login_attempts_threshold": 5,
    }
    assert await async_setup_component(home.hass, "http", {"http": http})
    await home.hass.http.start()
    # The hairpin probe meets a TLS server of its own (on the external port),
    # not Home Assistant's, which would log the probe's early close.
    async with tls_server(issued) as hairpin:
        with served(CertificateServer("Home Assistant", port)):
            done = await _fix_no_port_forward(home, cert, key, port, hairpin.port)
    assert done["reason"] == "forward_added"
    assert home.igd.state.mappings[0].internal_port == port
    assert home.attributes()["hairpin"] == "reached_us"
    assert home.state() == "reachable"
    assert home.entry is not None
    issue_id = f"no_port_forward_{home.entry.entry_id}"
    assert ir.async_get(home.hass).async_get_issue(DOMAIN, issue_id) is None


async def _fix_no_port_forward(
    home: Home, cert: Path, key: Path, port: int, external_port: int
) -> dict[str, Any]:
    """Set the entry up, find the issue and forward through its fix flow."""
    entry = await home.setup(managed_options(cert, key))
    issue_id = f"no_port_forward_{entry.entry_id}"
    issue = ir.async_get(home.hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable
    await async_setup_component(home.hass, REPAIRS, {})
    flows = home.hass.data[REPAIRS]["flow_manager"]
    form = await flows.async_init(DOMAIN, data={"issue_id": issue_id})
    assert form.get("step_id") == "forward_https", form
    assert form["description_placeholders"]["internal"] == f"{LOCAL}:{port}"
    return dict(
        await flows.async_configure(
            form["flow_id"], {"external_port": external_port, "consent": True}
        )
    )
