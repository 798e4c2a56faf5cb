"""Acceptance: one fix flow from plain HTTP to HTTPS on a real ``hass`` process.

Obtains a certificate from Pebble, runs the ``http_without_tls`` fix flow over
the REST API, lets Home Assistant restart (the process exits with code 100;
the harness starts it again, as a supervisor would), reaches it over HTTPS
with a client that trusts Pebble's root and verifies the name, keeps the new
settings through the "Keep serving HTTPS?" fix flow, restarts again and finds
HTTPS still served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import json
import socket
import ssl
import time
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
import pytest
from pytest_homeassistant_custom_component.common import get_scheduled_timer_handles

from tests.acceptance.client import DOMAIN, HassClient, onboard_with_entry
from tests.fakes.pebble import HOST
from tests.fakes.sandbox import FQDN, Sandbox

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(420)]

RESTART_EXIT_CODE = 100
FIX_URL = "/api/repairs/issues/fix"


class _LocalName(AbstractResolver):
    """Resolves the DuckDNS name to the sandbox's address, as DuckDNS would."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        assert host == FQDN, host
        return [
            {
                "hostname": host,
                "host": HOST,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        """Nothing to release."""


@asynccontextmanager
async def _https_session(root_pem: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A session that trusts Pebble's root and verifies the name; closed cleanly."""
    context = ssl.create_default_context(cadata=root_pem)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, resolver=_LocalName())
    ) as session:
        yield session
    # Closing starts each TLS shutdown; wait until the server answered it.
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 30
    while any(
        "_check_shutdown_timeout" in repr(handle)
        for handle in get_scheduled_timer_handles(loop)
        if not handle.cancelled()
    ):
        assert time.monotonic() < deadline, "a TLS shutdown did not finish"
        await asyncio.sleep(0.05)


async def _wait_https(
    session: aiohttp.ClientSession, url: str, sandbox: Sandbox
) -> None:
    """Until Home Assistant answers over verified HTTPS (or its process ends)."""
    deadline = time.monotonic() + sandbox.boot_timeout
    while True:
        assert sandbox.hass_process is not None
        assert sandbox.hass_process.poll() is None, sandbox.log_tail()
        try:
            async with session.get(f"{url}/manifest.json") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectorCertificateError:
            raise
        except aiohttp.ClientError, OSError:
            pass
        assert time.monotonic() < deadline, sandbox.log_tail()
        await asyncio.sleep(0.25)


async def _wait_restart_exit(sandbox: Sandbox) -> int:
    process = sandbox.hass_process
    assert process is not None
    return await asyncio.to_thread(process.wait, 120)


async def _fix(client: HassClient, issue_id: str, *steps: dict[str, Any]) -> Any:
    """Start a fix flow and submit ``steps`` one by one; the last answer."""
    flow = await client.request(
        "POST", FIX_URL, {"handler": DOMAIN, "issue_id": issue_id}
    )
    for user_input in steps:
        assert flow["type"] == "form", flow
        flow = await client.request("POST", f"{FIX_URL}/{flow['flow_id']}", user_input)
    return flow


async def _issue_ids(client: HassClient) -> set[str]:
    result = await client.ws_command({"type": "repairs/list_issues"})
    return {
        issue["issue_id"] for issue in result["issues"] if issue["domain"] == DOMAIN
    }


async def _wait_issue(client: HassClient, issue_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while issue_id not in await _issue_ids(client):
        assert time.monotonic() < deadline, await _issue_ids(client)
        await asyncio.sleep(0.5)


def _stored_http(sandbox: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (sandbox.config_dir / ".storage" / "http").read_text()
    )["data"]
    return data


async def test_one_fix_flow_to_https(sandbox: Sandbox, socket_enabled: None) -> None:
    """Plain HTTP, fix flow, restart, HTTPS verified, keep, restart: still HTTPS."""
    https_url = f"https://{FQDN}:{sandbox.hass_port}"
    async with aiohttp.ClientSession() as session:
        client = HassClient(sandbox.url, session)
        entry_id = await onboard_with_entry(client, sandbox)
        issued = await client.call_service(
            DOMAIN, "renew_certificate", {"config_entry_id": entry_id}
        )
        assert issued["serial"], issued
        # Reachable from the internet over plain HTTP: the checklist says so.
        await client.ws_command(
            {"type": "config/core/update", "external_url": f"http://{FQDN}"}
        )
        await client.call_service(DOMAIN, "run_security_checks", {})
        assert "http_without_tls" in await _issue_ids(client)
        result = await _fix(client, "http_without_tls", {}, {"set_external_url": True})
        assert result["type"] == "create_entry", result
        token = client.token
        root = await sandbox.pebble.root_pem(0)

    assert await _wait_restart_exit(sandbox) == RESTART_EXIT_CODE, sandbox.log_tail()
    pending = _stored_http(sandbox)["pending"]
    assert pending["ssl_certificate"] == str(sandbox.certificate_path)
    assert pending["ssl_key"] == str(sandbox.private_key_path)
    sandbox.start_hass(wait=False)
    async with _https_session(root) as session:
        await _wait_https(session, https_url, sandbox)
        client = HassClient(https_url, session, token=token)
        await client.wait_entry_loaded()
        config = await client.request("GET", "/api/config")
        assert config["external_url"] == f"http://{FQDN}"  # set once kept
        await _wait_issue(client, f"https_trial_{entry_id}")
        result = await _fix(client, f"https_trial_{entry_id}", {})
        assert result["type"] == "create_entry", result
        assert f"https_trial_{entry_id}" not in await _issue_ids(client)
        config = await client.request("GET", "/api/config")
        assert config["external_url"] == https_url
        # The sandbox gateway forwards Home Assistant's port, HTTPS now: the
        # hairpin probe meets our certificate and nothing is plain any more.
        remote = await client.call_service(
            DOMAIN, "check_remote_access", {"config_entry_id": entry_id}
        )
        assert remote["state"] == "reachable", remote
        assert remote["hairpin"] == "reached_us", remote
        assert "plain_http_forwarded" not in remote["findings"], remote
        assert f"plain_http_forwarded_{entry_id}" not in await _issue_ids(client)
    stored = _stored_http(sandbox)
    assert stored["pending"] is None
    assert stored["stable"]["ssl_certificate"] == str(sandbox.certificate_path)

    assert sandbox.stop_hass() == 0, sandbox.log_tail()
    sandbox.start_hass(wait=False)
    async with _https_session(root) as session:
        await _wait_https(session, https_url, sandbox)
        client = HassClient(https_url, session, token=token)
        await client.wait_entry_loaded()
        assert not {
            issue_id
            for issue_id in await _issue_ids(client)
            if issue_id.startswith(("https_trial", "https_reverted"))
        }
