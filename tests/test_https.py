"""Serving the managed certificate through Home Assistant's real http config store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path
import socket
from typing import Any
from unittest.mock import patch

from aiohttp.test_utils import TestClient
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.http import make_server
from homeassistant.components.http.config import (
    AUTO_REVERT_DELAY,
    ActiveConfigType,
    HTTPConfigStore,
    async_get_and_load_store,
    async_load_config,
)
from homeassistant.core import CoreState, HomeAssistant, ServiceCall
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.https import (
    HttpsAction,
    HttpsRefusedError,
    async_plan,
    reverted_issue_id,
    trial_issue_id,
)
from custom_components.secure_remote_access.served import (
    async_presented_serial,
    served_files,
)
from tests.fakes import certs
from tests.fakes.issuer import FakeCa
from tests.fakes.sandbox import http_storage

from .monitor_common import managed_options, setup_entry

NAME = "myhome.duckdns.org"
FIX_URL = "/api/repairs/issues/fix"
HTTPS = "custom_components.secure_remote_access.https"


@pytest.fixture
def disable_http_server() -> None:
    """Let these tests run Home Assistant's real web server."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Setup:
    """The installation under test: real http, its store, an entry, restarts."""

    hass: HomeAssistant
    entry: MockConfigEntry
    store: HTTPConfigStore
    pair: certs.IssuedCertificate
    cert: Path
    key: Path
    port: int
    restarts: list[ServiceCall]
    client: TestClient

    async def restart(self) -> None:
        """What a restart does to http (the store picks the slot), then the entry."""
        await self.hass.http.stop()
        conf = await async_load_config(self.hass, {})
        server = make_server(self.hass, conf)
        try:
            await server.async_bind()
        except HomeAssistantError as err:  # as http's setup: fall back to stable
            conf = await self.store.async_get_fallback_config(err)
            server = make_server(self.hass, conf)
            await server.async_bind()
        await server.async_initialize(
            cors_origins=conf["cors_allowed_origins"],
            use_x_forwarded_for=False,
            login_threshold=conf["login_attempts_threshold"],
            is_ban_enabled=conf["ip_ban_enabled"],
            use_x_frame_options=conf["use_x_frame_options"],
        )
        await server.start()
        self.hass.http = server
        assert await self.hass.config_entries.async_reload(self.entry.entry_id)
        await self.hass.async_block_till_done()

    async def presented(self) -> str | None:
        """The serial the running server presents, None without TLS."""
        return await async_presented_serial("127.0.0.1", self.port)

    def issue(self, issue_id: str) -> ir.IssueEntry | None:
        """One of the integration's Repairs issues."""
        return ir.async_get(self.hass).async_get_issue(DOMAIN, issue_id)

    async def fix(self, issue_id: str) -> dict[str, Any]:
        """Run a fix flow through the repairs HTTP API: show, then submit."""
        resp = await self.client.post(
            FIX_URL, json={"handler": DOMAIN, "issue_id": issue_id}
        )
        assert resp.status == HTTPStatus.OK, await resp.text()
        flow = await resp.json()
        assert flow["type"] == "form", flow
        resp = await self.client.post(f"{FIX_URL}/{flow['flow_id']}", json={})
        assert resp.status == HTTPStatus.OK, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result

    async def options_step(self, step: str) -> dict[str, Any]:
        """Open the Configure menu and pick one of its options."""
        menu = await self.hass.config_entries.options.async_init(self.entry.entry_id)
        assert menu["type"] is FlowResultType.MENU
        assert step in menu["menu_options"], menu["menu_options"]
        result = await self.hass.config_entries.options.async_configure(
            menu["flow_id"], {"next_step_id": step}
        )
        return dict(result)


async def _their_pending(setup: Setup) -> None:
    """A pending change from the user or another tool (another login threshold)."""
    theirs = dict(setup.store.stable) | {"login_attempts_threshold": 9}
    await setup.store.async_set_pending(theirs)  # type: ignore[arg-type]


def _serial(pair: certs.IssuedCertificate) -> str:
    return format(pair.certificate.serial_number, "x")


async def _setup(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    aioclient_mock: AiohttpClientMocker,
    hass_client: ClientSessionGenerator,
    tmp_path: Path,
    *,
    serving: bool = False,
    pair: certs.IssuedCertificate | None = None,
) -> Setup:
    pair = pair or certs.issue([NAME])
    cert, key = pair.write(tmp_path / "ssl")
    hass.config.allowlist_external_dirs = {str(tmp_path / "ssl")}
    port = _free_port()
    hass_storage["http"] = http_storage(port)
    if serving:
        stable: dict[str, Any] = hass_storage["http"]["data"]["stable"]
        stable |= {"ssl_certificate": str(cert), "ssl_key": str(key)}
    assert await async_setup_component(hass, "http", {})
    await hass.http.start()
    assert await async_setup_component(hass, "repairs", {})
    client = await hass_client()
    restarts = async_mock_service(hass, "homeassistant", "restart")
    entry = await setup_entry(hass, aioclient_mock, managed_options(cert, key))
    store = await async_get_and_load_store(hass)
    return Setup(hass, entry, store, pair, cert, key, port, restarts, client)


type MakeSetup = Callable[..., Awaitable[Setup]]


@pytest.fixture
def make_setup(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    aioclient_mock: AiohttpClientMocker,
    hass_client: ClientSessionGenerator,
    tmp_path: Path,
    fake_ca: FakeCa,
    socket_enabled: None,
) -> MakeSetup:
    """Set up the installation; ``serving=True`` starts with the managed pair."""

    async def make(**kwargs: Any) -> Setup:
        return await _setup(
            hass, hass_storage, aioclient_mock, hass_client, tmp_path, **kwargs
        )

    return make


@pytest.fixture
async def plain(make_setup: MakeSetup) -> Setup:
    """Plain HTTP, and an entry that manages a valid certificate."""
    return await make_setup()


@pytest.fixture
async def serving(make_setup: MakeSetup) -> Setup:
    """HTTPS with the managed pair from the stable slot."""
    return await make_setup(serving=True)


async def _serve(setup: Setup, **user_input: Any) -> None:
    form = await setup.options_step("serve_https")
    assert form["type"] is FlowResultType.FORM
    result = await setup.hass.config_entries.options.async_configure(
        form["flow_id"], user_input
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_restarting"


async def test_serve_writes_the_pending_config_and_restarts(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The explaining screen, then exactly the two paths added, and a restart."""
    stable_before = dict(plain.store.stable)
    form = await plain.options_step("serve_https")
    assert form["type"] is FlowResultType.FORM
    placeholders = form["description_placeholders"]
    assert placeholders["certificate"] == str(plain.cert)
    assert placeholders["key"] == str(plain.key)
    assert placeholders["port"] == str(plain.port)
    assert placeholders["https_url"] == f"https://{NAME}:{plain.port}"
    assert placeholders["local_url"].startswith("http://")
    assert "set_external_url" in form["data_schema"].schema
    assert not plain.restarts

    result = await hass.config_entries.options.async_configure(
        form["flow_id"], {"set_external_url": True}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_restarting"

    pending = plain.store.pending
    assert pending is not None
    expected = {
        **{k: v for k, v in stable_before.items() if k != "created_at"},
        "ssl_certificate": str(plain.cert),
        "ssl_key": str(plain.key),
    }
    assert {k: v for k, v in pending.items() if k != "created_at"} == expected
    assert plain.store.stable == stable_before
    assert len(plain.restarts) == 1
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"
    # Until the restart, the running server is unchanged.
    assert served_files(hass) is None


async def test_trial_confirmed_then_kept_through_the_fix_flow(
    hass: HomeAssistant, plain: Setup
) -> None:
    """After the restart the managed serial is presented; Keep promotes it."""
    await _serve(plain)  # the external URL box is ticked by default
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.PENDING
    assert await plain.presented() == _serial(plain.pair)
    issue = plain.issue(trial_issue_id(plain.entry.entry_id))
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_key == "https_trial"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["https_url"] == f"https://{NAME}:{plain.port}"

    result = await plain.fix(trial_issue_id(plain.entry.entry_id))
    assert result["type"] == "create_entry", result
    assert plain.store.pending is None
    assert plain.store.revert_deadline is None
    assert plain.store.stable["ssl_certificate"] == str(plain.cert)
    assert plain.issue(trial_issue_id(plain.entry.entry_id)) is None

    # Another restart: still HTTPS, from the stable slot, nothing to confirm.
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.STABLE
    assert await plain.presented() == _serial(plain.pair)
    assert plain.issue(trial_issue_id(plain.entry.entry_id)) is None
    assert len(plain.restarts) == 1

    # A renewal is served at once, without another restart.
    renewed = await hass.services.async_call(
        DOMAIN,
        "renew_certificate",
        {"config_entry_id": plain.entry.entry_id, "force": True},
        blocking=True,
        return_response=True,
    )
    assert renewed is not None
    assert renewed["serial"] != _serial(plain.pair)
    assert await plain.presented() == renewed["serial"]
    assert len(plain.restarts) == 1
    await hass.http.stop()


async def test_nobody_confirms_and_home_assistant_goes_back(
    hass: HomeAssistant, plain: Setup, freezer: FrozenDateTimeFactory
) -> None:
    """Past the revert delay the store marks it not_promoted and restarts."""
    await _serve(plain)
    await plain.restart()
    assert plain.issue(trial_issue_id(plain.entry.entry_id)) is not None
    freezer.tick(AUTO_REVERT_DELAY + timedelta(seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(plain.restarts) == 2
    assert plain.store.pending is not None
    assert plain.store.pending["error"] == "not_promoted"
    # Too late to keep it: the fix flow refuses and changes nothing.
    result = await plain.fix(trial_issue_id(plain.entry.entry_id))
    assert result["type"] == "abort"
    assert result["reason"] == "https_nothing_to_promote"
    assert plain.store.pending["error"] == "not_promoted"
    assert plain.issue(trial_issue_id(plain.entry.entry_id)) is None
    # Until the restart the trial's server still runs: no new change yet.
    with pytest.raises(HttpsRefusedError, match="https_pending_exists"):
        await async_plan(hass, plain.entry, HttpsAction.SERVE)

    await plain.restart()
    assert served_files(hass) is None
    assert await plain.presented() is None
    assert plain.issue(trial_issue_id(plain.entry.entry_id)) is None
    reverted = plain.issue(reverted_issue_id(plain.entry.entry_id))
    assert reverted is not None
    assert reverted.translation_key == "https_reverted"
    # Dismissing it forgets the failed config; serving can be tried again.
    result = await plain.fix(reverted_issue_id(plain.entry.entry_id))
    assert result["type"] == "create_entry", result
    assert plain.store.pending is None
    await _serve(plain)
    assert plain.store.pending is not None
    await hass.http.stop()


async def test_another_pending_config_is_never_overwritten(
    hass: HomeAssistant, plain: Setup
) -> None:
    """A change waiting from the user or another tool: refuse, touch nothing."""
    await _their_pending(plain)
    waiting = dict(plain.store.pending or {})
    result = await plain.options_step("serve_https")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_pending_exists"
    assert plain.store.pending == waiting
    assert not plain.restarts


async def test_pending_config_appearing_while_the_form_is_open(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The check repeats on submit."""
    form = await plain.options_step("serve_https")
    await _their_pending(plain)
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_pending_exists"
    assert plain.store.pending is not None
    assert plain.store.pending["login_attempts_threshold"] == 9
    assert not plain.restarts


async def test_not_started_yet(hass: HomeAssistant, plain: Setup) -> None:
    """While Home Assistant starts, the flow asks to try again later."""
    hass.set_state(CoreState.starting)
    result = await plain.options_step("serve_https")
    hass.set_state(CoreState.running)
    assert result["reason"] == "https_not_started"


@pytest.mark.parametrize(
    ("pair", "reason"),
    [
        (lambda: certs.issue([NAME], expired=True), "https_certificate_expired"),
        (lambda: certs.issue(["other.duckdns.org"]), "https_certificate_names"),
    ],
)
async def test_unusable_certificate_is_refused(
    hass: HomeAssistant, make_setup: MakeSetup, pair: Any, reason: str
) -> None:
    """An expired certificate or one without the names is never served."""
    setup = await make_setup(pair=pair())
    result = await setup.options_step("serve_https")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason
    assert setup.store.pending is None


async def test_missing_or_unreadable_paths_are_refused(
    hass: HomeAssistant, plain: Setup
) -> None:
    """A missing file, and files Home Assistant may not read."""
    plain.key.unlink()
    result = await plain.options_step("serve_https")
    assert result["reason"] == "https_certificate_unusable"
    hass.config.allowlist_external_dirs = set()
    result = await plain.options_step("serve_https")
    assert result["reason"] == "https_path_not_allowed"
    placeholders = result["description_placeholders"]
    assert placeholders["path"] == str(plain.cert)
    assert hass.config.config_dir in placeholders["allowed"]
    assert plain.store.pending is None


async def test_unconfirmed_serial_is_not_offered_for_keeping(
    hass: HomeAssistant, plain: Setup
) -> None:
    """When the server does not present the managed serial, nothing to keep."""
    await _serve(plain)
    with patch(f"{HTTPS}.async_presented_serial", return_value="ffff"):
        await plain.restart()
    issue = plain.issue(trial_issue_id(plain.entry.entry_id))
    assert issue is not None
    assert issue.translation_key == "https_trial_unconfirmed"
    assert not issue.is_fixable
    await hass.http.stop()


async def test_config_that_cannot_be_applied_is_explained(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Files gone before the restart: Home Assistant stays on HTTP, we say why."""
    await _serve(plain)
    plain.cert.unlink()
    await plain.restart()
    assert served_files(hass) is None
    reverted = plain.issue(reverted_issue_id(plain.entry.entry_id))
    assert reverted is not None
    assert reverted.translation_key == "https_reverted_other"
    assert reverted.translation_placeholders is not None
    assert str(plain.cert) in reverted.translation_placeholders["error"]
    await hass.http.stop()


async def test_stop_serving(hass: HomeAssistant, serving: Setup) -> None:
    """The reverse: the two paths removed, restart, confirm plain HTTP, keep it."""
    setup = serving
    assert await setup.presented() == _serial(setup.pair)
    stable_before = dict(setup.store.stable)
    form = await setup.options_step("stop_https")
    assert form["type"] is FlowResultType.FORM
    assert "set_external_url" not in form["data_schema"].schema
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_restarting"
    pending = setup.store.pending
    assert pending is not None
    assert {k: v for k, v in pending.items() if k != "created_at"} == {
        k: v
        for k, v in stable_before.items()
        if k not in ("created_at", "ssl_certificate", "ssl_key")
    }
    assert len(setup.restarts) == 1

    await setup.restart()
    assert served_files(hass) is None
    issue = setup.issue(trial_issue_id(setup.entry.entry_id))
    assert issue is not None
    assert issue.translation_key == "https_trial_stop"
    result = await setup.fix(trial_issue_id(setup.entry.entry_id))
    assert result["type"] == "create_entry"
    assert "ssl_certificate" not in setup.store.stable
    result = await setup.options_step("serve_https")
    assert result["type"] is FlowResultType.FORM
    await hass.http.stop()


async def test_http_without_tls_fix_flow_serves_the_certificate(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The checklist issue's fix: why it matters, then the same explaining screen."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        "http_without_tls",
        is_fixable=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key="http_without_tls",
        translation_placeholders={"external_url": "http://example.org"},
    )
    resp = await plain.client.post(
        FIX_URL, json={"handler": DOMAIN, "issue_id": "http_without_tls"}
    )
    flow = await resp.json()
    assert flow["step_id"] == "confirm"
    resp = await plain.client.post(f"{FIX_URL}/{flow['flow_id']}", json={})
    flow = await resp.json()
    assert flow["step_id"] == "serve_https", flow
    assert flow["description_placeholders"]["certificate"] == str(plain.cert)
    resp = await plain.client.post(
        f"{FIX_URL}/{flow['flow_id']}", json={"set_external_url": False}
    )
    result = await resp.json()
    assert result["type"] == "create_entry", result
    assert plain.store.pending is not None
    assert plain.store.pending["ssl_certificate"] == str(plain.cert)
    assert hass.config.external_url is None
    assert len(plain.restarts) == 1


async def test_changes_of_others_are_not_ours_to_confirm(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Another tool's trial gets no issue of ours; its failed config is not replaced."""
    await _their_pending(plain)
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.PENDING
    assert plain.issue(trial_issue_id(plain.entry.entry_id)) is None
    failed = plain.store.pending
    assert failed is not None
    failed["error"] = "not_promoted"
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.STABLE
    assert plain.issue(reverted_issue_id(plain.entry.entry_id)) is None
    result = await plain.options_step("serve_https")
    assert result["reason"] == "https_pending_exists"
    await hass.http.stop()


async def test_our_failed_config_can_be_replaced(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Trying again after a revert replaces our own failed pending config."""
    await _serve(plain)
    first = plain.store.pending
    assert first is not None
    first["error"] = "not_promoted"
    await _serve(plain)
    assert plain.store.pending is not None
    assert plain.store.pending["error"] is None
    assert len(plain.restarts) == 2


async def test_reload_before_the_restart_raises_nothing(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Written but not yet tried: there is nothing to confirm yet."""
    await _serve(plain)
    assert await hass.config_entries.async_reload(plain.entry.entry_id)
    await hass.async_block_till_done()
    assert plain.issue(trial_issue_id(plain.entry.entry_id)) is None


async def test_certificate_expired_before_the_restart_is_not_confirmed(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Home Assistant serves it, but an expired certificate is nothing to keep."""
    await _serve(plain)
    certs.issue([NAME], key=plain.pair.key, expired=True).write(plain.cert.parent)
    await plain.restart()
    issue = plain.issue(trial_issue_id(plain.entry.entry_id))
    assert issue is not None
    assert issue.translation_key == "https_trial_unconfirmed"
    await hass.http.stop()


async def test_menu_and_plan_follow_what_is_served(
    hass: HomeAssistant, serving: Setup
) -> None:
    """Serve is offered while not served, Stop while served; odd calls refuse."""
    setup = serving
    menu = await hass.config_entries.options.async_init(setup.entry.entry_id)
    assert "serve_https" not in menu["menu_options"]
    with pytest.raises(HttpsRefusedError, match="https_already_serving"):
        await async_plan(hass, setup.entry, HttpsAction.SERVE)
    hass.config_entries.async_update_entry(setup.entry, options={})
    await hass.async_block_till_done()
    menu = await hass.config_entries.options.async_init(setup.entry.entry_id)
    assert "serve_https" not in menu["menu_options"]
    assert "stop_https" not in menu["menu_options"]
    with pytest.raises(HttpsRefusedError, match="https_no_certificate"):
        await async_plan(hass, setup.entry, HttpsAction.STOP)
    await hass.http.stop()


async def test_stop_refused_while_not_serving(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Nothing to stop over plain HTTP."""
    with pytest.raises(HttpsRefusedError, match="https_not_serving"):
        await async_plan(hass, plain.entry, HttpsAction.STOP)
