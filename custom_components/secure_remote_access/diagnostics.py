"""Diagnostics: what a bug report needs, with every secret redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant

from .checklist.runner import DATA_CHECKLIST
from .const import CONF_EAB_HMAC_KEY, CONF_EAB_KID, CONF_EMAIL
from .models import SecureRemoteAccessConfigEntry
from .protocol.acme import PersistRefusal
from .status import status_diagnostics

# Secrets, and what identifies the user: the e-mail address given to the CA.
TO_REDACT = {CONF_TOKEN, CONF_EMAIL, CONF_EAB_HMAC_KEY, CONF_EAB_KID}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    dns = entry.runtime_data.dns
    return {
        "checklist": _checklist(hass),
        "entry": {
            "title": entry.title,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": async_redact_data(dict(entry.options), TO_REDACT),
        },
        "dns": {
            "last_update_success": dns.last_update_success,
            "update_interval": str(dns.update_interval),
            "ipv6_mode": dns.ipv6_mode,
            "state": asdict(dns.data) if dns.data else None,
        },
        "renewal": await _renewal(entry),
        "remote_access": _remote_access(entry),
        "certificates": {
            status.source.key: status_diagnostics(status)
            for monitor in entry.runtime_data.monitors
            for status in monitor.statuses()
        },
        "certificate_monitors": [
            {
                "name": monitor.name,
                "last_update_success": monitor.last_update_success,
                "update_interval": str(monitor.update_interval),
                "warning_days": monitor.warning_days,
                "sources": list(monitor.sources),
            }
            for monitor in entry.runtime_data.monitors
        ],
    }


def _checklist(hass: HomeAssistant) -> dict[str, Any] | None:
    """The last checklist run: ids and severities only, never placeholders."""
    runner = hass.data.get(DATA_CHECKLIST)
    if runner is None or (result := runner.result) is None:
        return None
    return {
        "last_run": runner.last_run.isoformat() if runner.last_run else None,
        "failing": {f.check_id: f.severity.value for f in result.findings},
        "passed": list(result.passed),
        "disabled": list(result.disabled),
    }


async def _renewal(entry: SecureRemoteAccessConfigEntry) -> dict[str, Any] | None:
    """The renewal coordinator's one state (last outcome included); no keys, no account."""
    if (managed := entry.runtime_data.managed) is None:
        return None
    renewal = managed.renewal
    return {
        "state": renewal.state.to_json(),
        "next_check": renewal.next_check.isoformat() if renewal.next_check else None,
        "names": list(renewal.manager.settings.names),
        "key_type": renewal.manager.settings.key_type,
        "validation_method": renewal.manager.settings.validation_method,
        # The DuckDNS names holding its dns-persist-01 record (not the record:
        # it names the account).
        "persistent_records": sorted(
            await renewal.manager.persist_records.async_records()
        ),
        "persist_refusal": _refusal(
            await renewal.manager.persist_refusals.async_get(
                renewal.manager.settings.directory_url
            )
        ),
    }


def _refusal(refusal: PersistRefusal | None) -> dict[str, Any] | None:
    """The CA's remembered refusal of dns-persist-01 (not the account it names)."""
    if refusal is None:
        return None
    return {
        "problem_type": refusal.problem_type,
        "detail": refusal.detail,
        "refused_at": refusal.refused_at.isoformat(),
        "retry_from": refusal.retry_from.isoformat(),
        "described": refusal.describe(earlier=True),
    }


def _remote_access(entry: SecureRemoteAccessConfigEntry) -> dict[str, Any] | None:
    """The last remote-access check: its response (addresses, mappings, findings)."""
    result = entry.runtime_data.remote_access.data
    return None if result is None else result.as_response()
