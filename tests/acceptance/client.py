"""A small client for Home Assistant's REST and WebSocket APIs, as the frontend uses them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import time
from typing import Any

import aiohttp

from tests.fakes.sandbox import Sandbox

USERNAME = "admin"
PASSWORD = "sandbox-password-1"
DOMAIN = "secure_remote_access"


class ApiError(AssertionError):
    """Home Assistant answered with an unexpected status."""


@dataclass
class HassClient:
    """An authenticated session against a running Home Assistant."""

    base_url: str
    session: aiohttp.ClientSession
    token: str = ""
    _ws_id: int = field(default=0, init=False)

    @property
    def client_id(self) -> str:
        """The OAuth client id the frontend uses: its own address."""
        return f"{self.base_url}/"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self, method: str, path: str, payload: Any = None, *, expect: int = 200
    ) -> Any:
        """Send JSON, return the decoded JSON answer; fail on another status."""
        async with self.session.request(
            method,
            self.base_url + path,
            json=payload,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=120),
        ) as response:
            text = await response.text()
            if response.status != expect:
                raise ApiError(f"{method} {path}: HTTP {response.status}: {text}")
            return await response.json() if text else None

    async def onboard(self, *, all_steps: bool = True) -> None:
        """Create the owner like the onboarding page does, and log in."""
        steps = await self.request("GET", "/api/onboarding")
        assert {"step": "user", "done": False} in steps, steps
        created = await self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": "Sandbox Admin",
                "username": USERNAME,
                "password": PASSWORD,
                "language": "en",
            },
        )
        async with self.session.post(
            self.base_url + "/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": created["auth_code"],
                "client_id": self.client_id,
            },
        ) as response:
            assert response.status == 200, await response.text()
            self.token = (await response.json())["access_token"]
        if all_steps:
            await self.request("POST", "/api/onboarding/core_config", {})
            await self.request("POST", "/api/onboarding/analytics", {})
            await self.request(
                "POST",
                "/api/onboarding/integration",
                {
                    "client_id": self.client_id,
                    "redirect_uri": f"{self.base_url}/?auth_callback=1",
                },
            )
            steps = await self.request("GET", "/api/onboarding")
            assert all(step["done"] for step in steps), steps

    async def flow_step(self, flow_id: str, user_input: dict[str, Any]) -> Any:
        """Submit one step of a config flow."""
        return await self.request(
            "POST", f"/api/config/config_entries/flow/{flow_id}", user_input
        )

    async def call_service(
        self, domain: str, service: str, data: dict[str, Any]
    ) -> Any:
        """Call an action and return its response."""
        answer = await self.request(
            "POST", f"/api/services/{domain}/{service}?return_response", data
        )
        return answer["service_response"]

    async def states(self) -> list[dict[str, Any]]:
        """Every entity state."""
        result: list[dict[str, Any]] = await self.request("GET", "/api/states")
        return result

    async def entries(self) -> list[dict[str, Any]]:
        """The integration's config entries."""
        result: list[dict[str, Any]] = await self.request(
            "GET", f"/api/config/config_entries/entry?domain={DOMAIN}"
        )
        return result

    async def wait_entry_loaded(self, timeout: float = 60) -> dict[str, Any]:
        """Wait until the (single) entry is loaded."""
        deadline = time.monotonic() + timeout
        while True:
            entries = await self.entries()
            if entries and entries[0]["state"] == "loaded":
                return entries[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"entry not loaded: {entries}")
            await asyncio.sleep(0.5)

    async def ws_command(self, command: dict[str, Any]) -> Any:
        """Open the WebSocket API, authenticate, send one command, return its result."""
        async with self.session.ws_connect(
            self.base_url.replace("http", "ws", 1) + "/api/websocket"
        ) as ws:
            assert (await ws.receive_json())["type"] == "auth_required"
            await ws.send_json({"type": "auth", "access_token": self.token})
            assert (await ws.receive_json())["type"] == "auth_ok"
            self._ws_id += 1
            await ws.send_json({"id": self._ws_id, **command})
            answer = await ws.receive_json(timeout=30)
            assert answer["id"] == self._ws_id
            assert answer["success"], answer
            return answer["result"]


def suggested(form: dict[str, Any]) -> dict[str, Any]:
    """The values the frontend pre-fills: defaults and suggested values."""
    values: dict[str, Any] = {}
    for item in form["data_schema"]:
        if "default" in item:
            values[item["name"]] = item["default"]
        suggestion = (item.get("description") or {}).get("suggested_value")
        if suggestion is not None:
            values[item["name"]] = suggestion
    return values


def section_fields(form: dict[str, Any], name: str) -> list[str]:
    """The fields of one of the form's sections, as the frontend receives them."""
    for item in form["data_schema"]:
        if item["name"] == name:
            assert item["type"] == "expandable" and not item["expanded"], item
            return [field["name"] for field in item["schema"]]
    raise AssertionError(f"no section {name} in {form['data_schema']}")


async def add_integration(client: HassClient, sandbox: Sandbox) -> dict[str, Any]:
    """Run the config flow over REST as the frontend does."""
    values = sandbox.values()
    form = await client.request(
        "POST", "/api/config/config_entries/flow", {"handler": DOMAIN}
    )
    assert form["type"] == "form" and form["step_id"] == "user", form
    assert section_fields(form, "testing") == ["duckdns_url", "upnp_location"], form
    flow_id = form["flow_id"]
    menu = await client.flow_step(
        flow_id,
        {
            **suggested(form),
            "domain": values["domain"],
            "token": values["token"],
            "testing": {
                "duckdns_url": values["duckdns_url"],
                "upnp_location": values["upnp_location"],
            },
        },
    )
    assert menu["type"] == "menu" and menu["step_id"] == "certificates", menu
    assert menu["menu_options"] == ["certificate", "skip_certificate"]
    form = await client.flow_step(flow_id, {"next_step_id": "certificate"})
    assert form["type"] == "form" and form["step_id"] == "certificate", form
    assert section_fields(form, "testing") == ["dns_server"], form
    terms = await client.flow_step(
        flow_id,
        {
            **suggested(form),
            **{
                key: values[key]
                for key in (
                    "acme_directory",
                    "acme_directory_url",
                    "acme_ca_bundle",
                    "profile",
                    "certificate_path",
                    "private_key_path",
                )
            },
            "testing": {"dns_server": values["dns_server"]},
        },
    )
    assert terms["type"] == "form" and terms["step_id"] == "terms", terms
    assert not terms["errors"], terms
    created = await client.flow_step(flow_id, {"accept_terms": True})
    assert created["type"] == "create_entry", created
    assert created["title"] == "myhome.duckdns.org"
    result: dict[str, Any] = created["result"]
    return result


async def onboard_with_entry(client: HassClient, sandbox: Sandbox) -> str:
    """Onboard, add the integration over REST, wait until it is loaded: its id."""
    await client.onboard()
    entry = await add_integration(client, sandbox)
    await client.wait_entry_loaded()
    entry_id: str = entry["entry_id"]
    return entry_id
