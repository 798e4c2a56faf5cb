"""The installation the serving-HTTPS tests run: real http, its store, an entry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path
import socket
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from homeassistant.components.hassio.const import DATA_COMPONENT as HASSIO_DATA
from homeassistant.components.hassio.handler import HassIO
from homeassistant.components.http import make_server
from homeassistant.components.http.config import (
    HTTPConfigStore,
    async_get_and_load_store,
    async_load_config,
)
from homeassistant.components.websocket_api.http import WebsocketAPIView
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.secure_remote_access import proxy
from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.https_trial import (
    CORE_SSL_ISSUE,
    DATA_HTTPS_TRIAL,
    POLL_INTERVAL,
    async_setup_https_trial,
)
from custom_components.secure_remote_access.issues import https_trial_issue_id
from custom_components.secure_remote_access.served import async_presented_serial
from tests.common import SetupEntry, managed_options
from tests.fakes import certs
from tests.fakes.issuer import FakeCa
from tests.fakes.nginx import NginxProxyAddon
from tests.fakes.sandbox import http_storage
from tests.fakes.supervisor import FakeAddon, FakeSupervisor

NAME = "myhome.duckdns.org"
FIX_URL = "/api/repairs/issues/fix"
HTTPS = "custom_components.secure_remote_access.https_trial"


@pytest.fixture
def disable_http_server() -> None:
    """Let these tests run Home Assistant's real web server."""


def free_port() -> int:
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
    ws_client: WebSocketGenerator

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
        # websocket_api's own start-up registers its view on the new server.
        server.register_view(WebsocketAPIView())
        await server.start()
        self.hass.http = server
        if conf.get("ssl_certificate") and not (
            self.hass.config.external_url or self.hass.config.internal_url
        ):
            # What http's own start-up raises then (at EVENT_HOMEASSISTANT_START).
            ir.async_create_issue(
                self.hass,
                "http",
                CORE_SSL_ISSUE,
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key=CORE_SSL_ISSUE,
            )
        # The integration's own start-up: a fresh follower of the http store.
        if (old := self.hass.data.pop(DATA_HTTPS_TRIAL, None)) is not None:
            old.async_stop()
        if self.hass.config_entries.async_get_entry(self.entry.entry_id):
            await self.hass.config_entries.async_reload(self.entry.entry_id)
        async_setup_https_trial(self.hass)
        await self.hass.async_block_till_done()

    async def presented(self) -> str | None:
        """The serial the running server presents, None without TLS."""
        return await async_presented_serial("127.0.0.1", self.port)

    def issue(self, issue_id: str) -> ir.IssueEntry | None:
        """One of the integration's Repairs issues."""
        return ir.async_get(self.hass).async_get_issue(DOMAIN, issue_id)

    def core_ssl_issue(self) -> ir.IssueEntry | None:
        """Core's "SSL is configured without an external URL or internal URL"."""
        return ir.async_get(self.hass).async_get_issue("http", CORE_SSL_ISSUE)

    async def ws(self, command: dict[str, Any]) -> dict[str, Any]:
        """One command over Home Assistant's WebSocket API, as the frontend sends it."""
        client = await self.ws_client(self.hass)
        await client.send_json_auto_id(command)
        answer: dict[str, Any] = await client.receive_json()
        await client.close()
        return answer

    async def tick(self) -> None:
        """Let the trial follower read the store once more (it polls)."""
        async_fire_time_changed(
            self.hass, dt_util.utcnow() + POLL_INTERVAL + timedelta(seconds=1)
        )
        # Interval listeners run as background tasks.
        await self.hass.async_block_till_done(wait_background_tasks=True)

    async def promote_in_core_dialog(self) -> None:
        """Confirm in core's dialog (http/config/promote); the follower notices."""
        answer = await self.ws({"type": "http/config/promote"})
        assert answer["success"], answer
        await self.tick()

    async def renew(self) -> dict[str, Any]:
        """Force a renewal through the action; its response."""
        renewed = await self.hass.services.async_call(
            DOMAIN,
            "renew_certificate",
            {"config_entry_id": self.entry.entry_id, "force": True},
            blocking=True,
            return_response=True,
        )
        assert renewed is not None
        return dict(renewed)

    def trial_issue(self) -> ir.IssueEntry | None:
        """The entry's "Keep serving HTTPS?" issue (or one of its variants)."""
        return self.issue(https_trial_issue_id(self.entry.entry_id))

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

    async def http_without_tls_fix(self) -> dict[str, Any]:
        """The checklist's http_without_tls issue, its fix opened and confirmed."""
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            "http_without_tls",
            is_fixable=True,
            severity=ir.IssueSeverity.ERROR,
            translation_key="http_without_tls",
            translation_placeholders={"external_url": "http://example.org"},
        )
        resp = await self.client.post(
            FIX_URL, json={"handler": DOMAIN, "issue_id": "http_without_tls"}
        )
        flow = await resp.json()
        assert flow["step_id"] == "confirm", flow
        return await self.fix_step(flow, {})

    async def fix_step(
        self, flow: dict[str, Any], user_input: dict[str, Any]
    ) -> dict[str, Any]:
        """Submit one step of a fix flow through the repairs HTTP API."""
        resp = await self.client.post(f"{FIX_URL}/{flow['flow_id']}", json=user_input)
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


async def their_pending(setup: Setup) -> None:
    """A pending change from the user or another tool (another login threshold)."""
    theirs = dict(setup.store.stable) | {"login_attempts_threshold": 9}
    await setup.store.async_set_pending(theirs)  # type: ignore[arg-type]


def serial_of(pair: certs.IssuedCertificate) -> str:
    return format(pair.certificate.serial_number, "x")


async def build_setup(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    setup_entry: SetupEntry,
    hass_client: ClientSessionGenerator,
    hass_ws_client: WebSocketGenerator,
    tmp_path: Path,
    *,
    serving: bool = False,
    pair: certs.IssuedCertificate | None = None,
    http_settings: dict[str, Any] | None = None,
) -> Setup:
    pair = pair or certs.issue([NAME])
    cert, key = pair.write(tmp_path / "ssl")
    hass.config.allowlist_external_dirs = {str(tmp_path / "ssl")}
    port = free_port()
    hass_storage["http"] = http_storage(port)
    hass_storage["http"]["data"]["stable"] |= http_settings or {}
    if serving:
        stable: dict[str, Any] = hass_storage["http"]["data"]["stable"]
        stable |= {"ssl_certificate": str(cert), "ssl_key": str(key)}
    assert await async_setup_component(hass, "http", {})
    await hass.http.start()
    assert await async_setup_component(hass, "repairs", {})
    assert await async_setup_component(hass, "websocket_api", {})
    client = await hass_client()
    restarts = async_mock_service(hass, "homeassistant", "restart")
    entry = await setup_entry(managed_options(cert, key))
    store = await async_get_and_load_store(hass)
    return Setup(
        hass, entry, store, pair, cert, key, port, restarts, client, hass_ws_client
    )


type MakeSetup = Callable[..., Awaitable[Setup]]


@pytest.fixture
def hass_config_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A configuration directory of its own, with a valid configuration.yaml.

    Serving HTTPS restarts Home Assistant, which first checks that file. The
    certificate stays outside it (in ``tmp_path``), like an ``/ssl`` folder.
    """
    config_dir = tmp_path_factory.mktemp("config")
    (config_dir / "configuration.yaml").write_text("homeassistant:\n", encoding="utf-8")
    return str(config_dir)


@pytest.fixture
def make_setup(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    setup_entry: SetupEntry,
    hass_client: ClientSessionGenerator,
    hass_ws_client: WebSocketGenerator,
    tmp_path: Path,
    fake_ca: FakeCa,
    socket_enabled: None,
) -> MakeSetup:
    """Set up the installation; ``serving=True`` starts with the managed pair."""

    async def make(**kwargs: Any) -> Setup:
        return await build_setup(
            hass,
            hass_storage,
            setup_entry,
            hass_client,
            hass_ws_client,
            tmp_path,
            **kwargs,
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


async def serve(setup: Setup, **user_input: Any) -> None:
    """Serve through the entry's Configure menu (the boxes as given, else ticked)."""
    form = await setup.options_step("serve_https")
    assert form["type"] is FlowResultType.FORM
    result = await setup.hass.config_entries.options.async_configure(
        form["flow_id"], user_input
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_restarting"


async def stop(setup: Setup, **user_input: Any) -> dict[str, Any]:
    """Stop serving through the entry's Configure menu; the form it showed."""
    form = await setup.options_step("stop_https")
    assert form["type"] is FlowResultType.FORM, form
    result = await setup.hass.config_entries.options.async_configure(
        form["flow_id"], user_input
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_restarting"
    return form


@dataclass
class OsSupervisor:
    """Home Assistant OS's Supervisor (the stand-in) as the hassio integration sees it."""

    supervisor: FakeSupervisor
    ssl_dir: Path

    def nginx(self, setup: Setup, **options: Any) -> FakeAddon:
        """Install the NGINX proxy add-on (real nginx), reading /ssl as configured."""
        service = NginxProxyAddon(
            ssl_dir=self.ssl_dir,
            run_dir=self.ssl_dir.parent / "nginx",
            upstream_port=setup.port,
            options={
                "domain": NAME,
                "certfile": "fullchain.pem",
                "keyfile": "privkey.pem",
                **options,
            },
        )
        return self.supervisor.add(
            FakeAddon(
                "core_nginx_proxy",
                "NGINX Home Assistant SSL proxy",
                options=dict(service.options),
                network={"443/tcp": service.port, "80/tcp": None},
                service=service,
            )
        )


@pytest.fixture
async def os_supervisor(
    hass: HomeAssistant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    socket_enabled: None,
) -> AsyncIterator[OsSupervisor]:
    """The Supervisor stand-in behind the hassio integration's real client.

    ``/ssl`` of the add-ons is the test's ssl folder (on Home Assistant OS the
    Supervisor maps the same folder into Home Assistant and the add-ons).
    """
    # A session of its own: the tests' DuckDNS mock replaces Home Assistant's.
    async with (
        FakeSupervisor().serve() as supervisor,
        aiohttp.ClientSession() as session,
    ):
        monkeypatch.setenv("SUPERVISOR_TOKEN", supervisor.token)
        monkeypatch.setattr(proxy, "ADDON_SSL_DIR", tmp_path / "ssl")
        hass.data[HASSIO_DATA] = HassIO(hass.loop, session, supervisor.ip)
        hass.config.components.add("hassio")
        yield OsSupervisor(supervisor, tmp_path / "ssl")
        hass.config.components.remove("hassio")
