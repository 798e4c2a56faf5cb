"""Repairs issues and their fix flows."""

from __future__ import annotations

from typing import Final

from homeassistant.components.repairs import (
    ConfirmRepairFlow,
    RepairsFlow,
    RepairsFlowResult,
)
from homeassistant.core import DOMAIN as HOMEASSISTANT_DOMAIN, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceNotFound
from homeassistant.helpers import issue_registry as ir
import probatio as vol

from .checklist.checks import CHECKS_BY_ID
from .checklist.runner import DATA_CHECKLIST
from .const import ATTR_CONFIG_ENTRY_ID, CONF_DOMAINS, CORE_DUCKDNS_DOMAIN, DOMAIN
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


SERVICE_RENEW_CERTIFICATE: Final = "renew_certificate"
RENEW_ISSUES: Final = ("certificate_expiring", "renewal_failed")
RESTART_ISSUE: Final = "restart_required"
SERVICE_HOMEASSISTANT_RESTART: Final = "restart"


def _matches(issue_id: str, base: str) -> bool:
    """``base`` itself, or ``base`` followed by ``_`` and an entry id."""
    return issue_id == base or issue_id.startswith(f"{base}_")


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Pick the fix flow of an issue."""
    if issue_id in CHECKS_BY_ID:
        return ChecklistRepairFlow()
    if _matches(issue_id, RESTART_ISSUE):
        return RestartRepairFlow()
    for base in RENEW_ISSUES:
        if _matches(issue_id, base):
            entry_id = (data or {}).get(ATTR_CONFIG_ENTRY_ID) or (data or {}).get(
                "entry_id"
            )
            if entry_id is None and issue_id != base:
                entry_id = issue_id.removeprefix(f"{base}_")
            return RenewCertificateRepairFlow(
                None if entry_id is None else str(entry_id)
            )
    return ConfirmRepairFlow()


class _ConfirmFlow(RepairsFlow):
    """A confirm step that shows the issue's placeholders, then acts."""

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Go to the confirm step."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show the steps; act when the user confirms."""
        if user_input is not None:
            return await self._async_act()
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            description_placeholders=issue.translation_placeholders if issue else None,
        )

    async def _async_act(self) -> RepairsFlowResult:
        raise NotImplementedError


class ChecklistRepairFlow(_ConfirmFlow):
    """Show the exact steps, then check again.

    When the check passes now, the issue is gone and the flow finishes. When
    it still fails, the flow aborts, which leaves the issue in place.
    """

    async def _async_act(self) -> RepairsFlowResult:
        if (runner := self.hass.data.get(DATA_CHECKLIST)) is None:
            return self.async_abort(reason="no_entry_loaded")
        result = await runner.async_run()
        if self.issue_id in result.failing_ids:
            return self.async_abort(reason="still_failing")
        return self.async_create_entry(data={})


class RestartRepairFlow(_ConfirmFlow):
    """Restart Home Assistant so that it serves the new certificate."""

    async def _async_act(self) -> RepairsFlowResult:
        try:
            await self.hass.services.async_call(
                HOMEASSISTANT_DOMAIN, SERVICE_HOMEASSISTANT_RESTART, blocking=True
            )
        except ServiceNotFound:
            return self.async_abort(reason="restart_unavailable")
        return self.async_create_entry(data={})


class RenewCertificateRepairFlow(_ConfirmFlow):
    """Renew an entry's certificate now through the renew_certificate action."""

    def __init__(self, entry_id: str | None) -> None:
        """Remember which entry's certificate to renew."""
        self.entry_id = entry_id

    async def _async_act(self) -> RepairsFlowResult:
        if self.entry_id is None or not self.hass.services.has_service(
            DOMAIN, SERVICE_RENEW_CERTIFICATE
        ):
            return self.async_abort(reason="renew_unavailable")
        try:
            await self.hass.services.async_call(
                DOMAIN,
                SERVICE_RENEW_CERTIFICATE,
                {ATTR_CONFIG_ENTRY_ID: self.entry_id},
                blocking=True,
            )
        except HomeAssistantError as err:
            return self.async_abort(
                reason="renew_failed", description_placeholders={"error": str(err)}
            )
        return self.async_create_entry(data={})
