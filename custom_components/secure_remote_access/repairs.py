"""Repairs issues and their fix flows."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import CONF_DOMAINS, CORE_DUCKDNS_DOMAIN, DOMAIN
from .models import SecureRemoteAccessConfigEntry
from .protocol.duckdns import InvalidDomainError, normalize_domain


@callback
def async_check_duplicate_updater(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> None:
    """Warn when core's duckdns integration updates one of the entry's names too."""
    ours = set(entry.data[CONF_DOMAINS])
    shared: set[str] = set()
    for other in hass.config_entries.async_entries(CORE_DUCKDNS_DOMAIN):
        raw = str(other.data.get("domain", ""))
        try:
            name = normalize_domain(raw)
        except InvalidDomainError:
            continue
        if name in ours:
            shared.add(name)
    issue_id = f"duplicate_duckdns_updater_{entry.entry_id}"
    if shared:
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="duplicate_duckdns_updater",
            translation_placeholders={"names": ", ".join(sorted(shared))},
        )
    else:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
