"""Fix flows end to end through the repairs HTTP API."""

from __future__ import annotations

from http import HTTPStatus
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.checklist.checks import CHECK_IDS
from custom_components.secure_remote_access.const import DOMAIN
from tests.translations_guard import issue_placeholders

from .conftest import Installation

FIX_URL = "/api/repairs/issues/fix"


@pytest.fixture
async def client(
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> TestClient:
    """An admin's client of the repairs API."""
    assert await async_setup_component(hass, "repairs", {})
    return await hass_client()


async def _start(client: TestClient, issue_id: str) -> dict[str, Any]:
    resp = await client.post(FIX_URL, json={"handler": DOMAIN, "issue_id": issue_id})
    assert resp.status == HTTPStatus.OK, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def _submit(client: TestClient, flow_id: str) -> dict[str, Any]:
    resp = await client.post(f"{FIX_URL}/{flow_id}", json={})
    assert resp.status == HTTPStatus.OK, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def _step_text(hass: HomeAssistant, issue_id: str, flow: dict[str, Any]) -> str:
    """The English text of a fix flow's step, placeholders filled in."""
    strings = await async_get_translations(hass, "en", "issues", [DOMAIN])
    key = (
        f"component.{DOMAIN}.issues.{issue_id}.fix_flow.step."
        f"{flow['step_id']}.description"
    )
    return strings[key].format(**flow["description_placeholders"])


def test_every_fix_flow_starts_with_why_it_matters() -> None:
    """The why of each checklist issue is on the first (only) step of its fix.

    A fixable issue has no description of its own: clicking it opens the fix
    flow, so its first step is all the user reads.
    """
    strings = json.loads(
        (
            Path(__file__).parents[2]
            / "custom_components/secure_remote_access/translations/en.json"
        ).read_text()
    )
    for check_id in CHECK_IDS:
        issue = strings["issues"][check_id]
        assert "description" not in issue, check_id
        step = issue["fix_flow"]["step"]["confirm"]["description"]
        why, how = step.split("\n\n", 1)
        assert why.startswith("Why it matters: "), check_id
        assert "submit to check again" in how.lower(), check_id
        # The check's label in the options is the issue's title: one wording.
        assert strings["selector"]["check_ids"]["options"][check_id] == issue["title"]
    mfa = strings["issues"]["admin_without_mfa"]["fix_flow"]["step"]["confirm"]
    assert "For each of" not in mfa["description"]
    assert "(s)" not in json.dumps(strings)


def _create_fixable(
    hass: HomeAssistant,
    issue_id: str,
    *,
    key: str | None = None,
    severity: ir.IssueSeverity = ir.IssueSeverity.WARNING,
    data: dict[str, str] | None = None,
) -> None:
    """Create a fixable issue of this domain (translation key: ``key`` or the id).

    Every placeholder of its texts is filled with its own name.
    """
    key = key or issue_id
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        data=data,
        is_fixable=True,
        severity=severity,
        translation_key=key,
        translation_placeholders=issue_placeholders(key),
    )


def _issue(hass: HomeAssistant, issue_id: str) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id)


async def test_checklist_fix_flow_rechecks(
    hass: HomeAssistant, installation: Installation, client: TestClient
) -> None:
    """The confirm step shows the steps; submit re-checks and keeps or clears."""
    installation.key.chmod(0o644)
    await installation.run()
    assert _issue(hass, "private_key_world_readable") is not None

    flow = await _start(client, "private_key_world_readable")
    assert flow["type"] == "form"
    assert flow["step_id"] == "confirm"
    assert flow["description_placeholders"] == {
        "paths": str(installation.key),
        "modes": "0644",
    }
    # The first step a user sees says why it matters, then how to fix it.
    text = await _step_text(hass, "private_key_world_readable", flow)
    assert text.startswith("Why it matters: The private key")
    assert f"chmod 600 on {installation.key}" in text
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "abort"
    assert result["reason"] == "still_failing"
    assert _issue(hass, "private_key_world_readable") is not None

    installation.key.chmod(0o600)
    flow = await _start(client, "private_key_world_readable")
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "create_entry"
    assert _issue(hass, "private_key_world_readable") is None


async def test_checklist_fix_flow_without_entry(
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
    client: TestClient,
) -> None:
    """An issue left after the entries unloaded cannot re-check: it aborts."""
    installation.key.chmod(0o644)
    await installation.run()
    assert await hass.config_entries.async_unload(entry.entry_id)
    flow = await _start(client, "private_key_world_readable")
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "abort"
    assert result["reason"] == "no_entry_loaded"
    assert _issue(hass, "private_key_world_readable") is not None


async def test_restart_fix_flow(hass: HomeAssistant, client: TestClient) -> None:
    """restart_required restarts Home Assistant once confirmed."""
    calls: list[ServiceCall] = []

    async def restart(call: ServiceCall) -> None:
        calls.append(call)

    _create_fixable(hass, "restart_required")
    flow = await _start(client, "restart_required")
    assert flow["step_id"] == "confirm"
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "abort"
    assert result["reason"] == "restart_unavailable"
    assert _issue(hass, "restart_required") is not None

    async def refuse(call: ServiceCall) -> None:
        raise HomeAssistantError("the configuration is not valid")

    hass.services.async_register("homeassistant", "restart", refuse)
    flow = await _start(client, "restart_required")
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "abort"
    assert result["reason"] == "restart_refused"
    assert "not valid" in result["description_placeholders"]["error"]
    assert _issue(hass, "restart_required") is not None

    hass.services.async_register("homeassistant", "restart", restart)
    flow = await _start(client, "restart_required")
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "create_entry"
    assert len(calls) == 1
    assert _issue(hass, "restart_required") is None


@pytest.mark.parametrize(
    ("issue_id", "key", "data"),
    [
        ("certificate_expiring", "managed_certificate_expiring", "entry_id"),
        ("renewal_failed", "renewal_failed", "config_entry_id"),
        ("certificate_expiring_{entry_id}", "managed_certificate_expiring", None),
    ],
)
async def test_renew_fix_flow(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    client: TestClient,
    issue_id: str,
    key: str,
    data: str | None,
) -> None:
    """Renew now calls renew_certificate for the issue's entry."""
    calls: list[ServiceCall] = []

    async def renew(call: ServiceCall) -> None:
        calls.append(call)
        if len(calls) == 1:
            raise HomeAssistantError("DuckDNS answered KO")

    issue_id = issue_id.format(entry_id=entry.entry_id)
    _create_fixable(
        hass,
        issue_id,
        key=key,
        severity=ir.IssueSeverity.ERROR,
        data={data: entry.entry_id} if data else None,
    )
    flow = await _start(client, issue_id)
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "abort"
    assert result["reason"] == "renew_unavailable"

    hass.services.async_register(DOMAIN, "renew_certificate", renew)
    flow = await _start(client, issue_id)
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "abort"
    assert result["reason"] == "renew_failed"
    assert result["description_placeholders"] == {"error": "DuckDNS answered KO"}
    assert _issue(hass, issue_id) is not None

    flow = await _start(client, issue_id)
    result = await _submit(client, flow["flow_id"])
    assert result["type"] == "create_entry"
    assert [call.data for call in calls] == [{"config_entry_id": entry.entry_id}] * 2
    assert _issue(hass, issue_id) is None


async def test_renew_fix_flow_without_entry_id(
    hass: HomeAssistant, client: TestClient
) -> None:
    """Without an entry id there is nothing to renew."""
    hass.services.async_register(DOMAIN, "renew_certificate", lambda call: None)
    _create_fixable(hass, "renewal_failed", severity=ir.IssueSeverity.ERROR)
    flow = await _start(client, "renewal_failed")
    result = await _submit(client, flow["flow_id"])
    assert result["reason"] == "renew_unavailable"


async def test_other_fixable_issue_gets_a_confirm_flow(
    hass: HomeAssistant, client: TestClient, every_screen_translated: list[str]
) -> None:
    """Unknown fixable issues fall back to Home Assistant's confirm flow."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        "something_else",
        is_fixable=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key="something_else",
    )
    flow = await _start(client, "something_else")
    assert flow["step_id"] == "confirm"
    result = await _submit(client, flow["flow_id"])
    # The guard sees what the user would see: an issue without text.
    assert set(every_screen_translated) == {
        "issue something_else: issues.something_else: no translation",
        (
            "flow secure_remote_access step init: "
            "issues.something_else.fix_flow: no translation"
        ),
    }
    every_screen_translated.clear()
    assert result["type"] == "create_entry"


def _frontend_config_texts() -> dict[str, Any]:
    """The English texts of the installed frontend's Settings pages, flattened."""
    import hass_frontend

    folder = Path(hass_frontend.where()) / "static" / "translations"
    texts: dict[str, Any] = {}
    for directory in (folder, folder / "config"):
        # en-<hash>.json (not en-GB-<hash>.json)
        (path,) = (p for p in directory.glob("en-*.json") if "en-GB" not in p.name)
        stack: list[tuple[str, Any]] = [("", json.loads(path.read_text()))]
        while stack:
            prefix, node = stack.pop()
            if isinstance(node, dict):
                stack.extend(
                    (f"{prefix}.{key}" if prefix else key, value)
                    for key, value in node.items()
                )
            else:
                texts[prefix] = node
    return texts


@pytest.mark.parametrize(
    ("check_id", "labels"),
    [
        (
            "login_ban_disabled",
            (
                "caption",
                "sections.ip_banning",
                "fields.ip_ban_enabled",
                "fields.login_attempts_unlimited",
                "fields.login_attempts_threshold",
            ),
        ),
        (
            "x_frame_options_disabled",
            ("caption", "sections.advanced", "fields.use_x_frame_options"),
        ),
        (
            "trusted_proxies_too_broad",
            ("caption", "sections.reverse_proxy", "fields.trusted_proxies"),
        ),
        (
            "http_without_tls",
            (
                "caption",
                "sections.ssl",
                "fields.ssl_certificate",
                "fields.ssl_key",
                "fields.use_x_forwarded_for",
                "fields.trusted_proxies",
            ),
        ),
    ],
)
def test_network_page_steps_use_the_frontends_labels(
    check_id: str, labels: tuple[str, ...]
) -> None:
    """Steps on Settings > System > Network name what the installed frontend shows.

    Home Assistant 2026.10 has IP banning on already and shows the threshold
    only once "Unlimited login attempts" is off; saving asks "Save and restart"
    and the restart asks to confirm the new configuration.
    """
    frontend = _frontend_config_texts()
    http = "ui.panel.config.network.http"
    strings = json.loads(
        (
            Path(__file__).parents[2]
            / "custom_components/secure_remote_access/translations/en.json"
        ).read_text()
    )
    step = strings["issues"][check_id]["fix_flow"]["step"]["confirm"]["description"]
    for label in labels:
        assert frontend[f"{http}.{label}"] in step, label
    assert frontend[f"{http}.save"] in step
    assert frontend[f"{http}.save_confirm.confirm"] in step
    assert frontend["ui.dialogs.http_pending_config.title"] in step
