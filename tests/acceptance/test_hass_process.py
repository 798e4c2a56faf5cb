"""Acceptance: the product through a real ``hass`` process and its public APIs.

Boots Home Assistant with the sandbox services (Pebble, challtestsrv, the
DuckDNS stand-in), onboards over REST, adds the integration through the
config-flow REST API as the frontend does, calls the actions, reads states,
lists Repairs over the WebSocket API, then restarts Home Assistant and checks
that the entry, the ACME account and the certificate survived.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from cryptography import x509
import pytest

from tests.acceptance.client import DOMAIN, HassClient, onboard_with_entry
from tests.fakes.sandbox import FQDN as NAME_FQDN, NAME, PUBLIC_IPV4, Sandbox

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(300)]


def _by_serial(states: list[dict[str, Any]], serial: str) -> dict[str, Any]:
    """The managed certificate's status sensor (its attributes name the serial)."""
    matches = [
        state
        for state in states
        if state["entity_id"].startswith("binary_sensor.")
        and state["attributes"].get("serial_number") == serial
    ]
    assert len(matches) == 1, [s["entity_id"] for s in states]
    return matches[0]


def _state(states: list[dict[str, Any]], entity_id: str) -> dict[str, Any]:
    found = [state for state in states if state["entity_id"] == entity_id]
    assert found, f"{entity_id} not in {[s['entity_id'] for s in states]}"
    return found[0]


def _serial_hex(value: str) -> int:
    return int(value.replace(":", ""), 16)


async def test_product_through_rest_and_websocket(
    sandbox: Sandbox, socket_enabled: None
) -> None:
    """Onboard, add, issue, read, list repairs, restart: everything survives."""
    async with aiohttp.ClientSession() as session:
        client = HassClient(sandbox.url, session)
        entry_id = await onboard_with_entry(client, sandbox)

        # DNS: the flow's check and the entry's first update reached DuckDNS.
        dns = await client.call_service(
            DOMAIN, "update_dns", {"config_entry_id": entry_id}
        )
        assert dns["ipv4"] == PUBLIC_IPV4, dns
        assert sandbox.duckdns.records[NAME].ipv4 == PUBLIC_IPV4

        # A certificate from Pebble, through DNS-01 via the DuckDNS TXT record.
        issued = await client.call_service(
            DOMAIN, "renew_certificate", {"config_entry_id": entry_id}
        )
        assert issued["names"] == ["myhome.duckdns.org"], issued
        assert issued["serial"] and issued["not_after"], issued
        assert any("txt" in query for query in sandbox.duckdns.requests)
        certificate = x509.load_pem_x509_certificates(
            sandbox.certificate_path.read_bytes()
        )[0]
        assert _serial_hex(issued["serial"]) == certificate.serial_number
        assert sandbox.private_key_path.stat().st_mode & 0o077 == 0

        # The entities, as /api/states shows them.
        states = await client.states()
        status = _by_serial(states, issued["serial"])
        assert status["state"] == "off", status
        prefix = (
            status["entity_id"].removeprefix("binary_sensor.").removesuffix("_status")
        )
        expiry = _state(states, f"sensor.{prefix}_expiry")
        days = _state(states, f"sensor.{prefix}_days_remaining")
        assert int(days["state"]) >= 80, days
        findings = [
            state
            for state in states
            if state["entity_id"].startswith("sensor.")
            and "failing_checks" in state["attributes"]
        ]
        assert len(findings) == 1, findings

        # The security checklist and its Repairs issues (WebSocket API).
        checks = await client.call_service(DOMAIN, "run_security_checks", {})
        failing = {finding["id"] for finding in checks["findings"]}
        # The sandbox keeps http's default login threshold: nobody is ever banned.
        assert "login_ban_disabled" in failing, checks
        result = await client.ws_command({"type": "repairs/list_issues"})
        ours = {
            issue["issue_id"] for issue in result["issues"] if issue["domain"] == DOMAIN
        }
        assert failing <= ours, (failing, ours)

        # The remote-access check against the sandbox's UPnP gateway: Home
        # Assistant's plain-HTTP port is forwarded; the hairpin probe reaches
        # the gateway's host (127.0.0.1), where no TLS answers.
        remote = await client.call_service(
            DOMAIN, "check_remote_access", {"config_entry_id": entry_id}
        )
        assert remote["state"] == "reachable", remote
        assert remote["router_wan_address"] == PUBLIC_IPV4, remote
        assert remote["mappings"] == [
            {
                "external_port": sandbox.hass_port,
                "internal_port": sandbox.hass_port,
                "protocol": "TCP",
            }
        ], remote
        assert remote["hairpin"] == "no_answer", remote
        assert PUBLIC_IPV4 in remote["resolved"][NAME_FQDN], remote
        assert remote["findings"] == ["plain_http_forwarded"], remote
        result = await client.ws_command({"type": "repairs/list_issues"})
        assert f"plain_http_forwarded_{entry_id}" in {
            issue["issue_id"] for issue in result["issues"]
        }
        sensor = next(
            state
            for state in await client.states()
            if state["entity_id"].endswith("_remote_access")
        )
        assert sensor["state"] == "reachable", sensor

    # Restart: a clean stop (SIGTERM) and a new process on the same storage.
    assert sandbox.stop_hass() == 0, sandbox.log_tail()
    sandbox.start_hass()
    async with aiohttp.ClientSession() as session:
        client = HassClient(sandbox.url, session, token=client.token)
        entry = await client.wait_entry_loaded()
        assert entry["entry_id"] == entry_id
        again = await client.call_service(
            DOMAIN, "renew_certificate", {"config_entry_id": entry_id}
        )
        # Not due, same certificate: the account and the certificate survived.
        assert again["renewed"] is False, again
        assert again["serial"] == issued["serial"], (again, issued)
        states = await client.states()
        assert _by_serial(states, issued["serial"])["state"] == "off"
        assert _state(states, expiry["entity_id"])["state"] == expiry["state"]
