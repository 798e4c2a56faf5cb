"""The fix flows of Repairs issues (the issues themselves: issues.py)."""

from __future__ import annotations

from typing import Any, Final

from homeassistant.components.repairs import (
    ConfirmRepairFlow,
    RepairsFlow,
    RepairsFlowResult,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import DOMAIN as HOMEASSISTANT_DOMAIN, HomeAssistant
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceNotFound,
    ServiceValidationError,
)
from homeassistant.helpers import issue_registry as ir
import probatio as vol

from .account import account_store, async_account_replaced, async_new_account
from .certificate_flow import terms_for_display, terms_schema
from .checklist.checks import CHECKS_BY_ID
from .checklist.runner import DATA_CHECKLIST
from .const import ATTR_CONFIG_ENTRY_ID, CONF_ACCEPT_TERMS, DOMAIN
from .forward_cleanup_flow import async_cleanup_fix_flow
from .https_flow import HttpsSteps, async_entry_to_serve, async_https_fix_flow
from .issues import (
    ACCOUNT_TERMS_CHANGED,
    CERTIFICATE_EXPIRING,
    PORT_FORWARD_LEFT,
    RENEWAL_FAILED,
    RESTART_REQUIRED,
    issue_entry_id,
)
from .models import SecureRemoteAccessConfigEntry
from .port_forward_flow import ForwardHttpsRepairFlow, PortForwardLeftRepairFlow
from .protocol.acme import AcmeError, describe_acme_error
from .protocol.remote_access import Finding

SERVICE_RENEW_CERTIFICATE: Final = "renew_certificate"
RENEW_ISSUES: Final = (CERTIFICATE_EXPIRING, RENEWAL_FAILED)
SERVICE_HOMEASSISTANT_RESTART: Final = "restart"


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Pick the fix flow of an issue."""
    # Serving HTTPS (issue 18): its flows live in https_flow.py.
    if (https_flow := async_https_fix_flow(issue_id, data)) is not None:
        return https_flow
    if (cleanup := async_cleanup_fix_flow(issue_id)) is not None:
        return cleanup
    if forward_id := issue_entry_id(issue_id, Finding.NO_PORT_FORWARD.value):
        return ForwardHttpsRepairFlow(forward_id)
    if issue_id.startswith(f"{PORT_FORWARD_LEFT}_"):
        return PortForwardLeftRepairFlow(data)
    if issue_id == HTTP_WITHOUT_TLS:
        return ServeHttpsChecklistFlow()
    if issue_id in CHECKS_BY_ID:
        return ChecklistRepairFlow()
    if issue_entry_id(issue_id, RESTART_REQUIRED) is not None:
        return RestartRepairFlow()
    if (from_id := issue_entry_id(issue_id, ACCOUNT_TERMS_CHANGED)) is not None:
        values = data or {}
        return AcceptTermsRepairFlow(
            str(values.get("entry_id") or from_id), str(values.get("account") or "")
        )
    for kind in RENEW_ISSUES:
        if (from_id := issue_entry_id(issue_id, kind)) is not None:
            values = data or {}
            entry_id = values.get(ATTR_CONFIG_ENTRY_ID) or values.get("entry_id")
            if entry_id is None and from_id:
                entry_id = from_id
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


HTTP_WITHOUT_TLS: Final = "http_without_tls"


class ServeHttpsChecklistFlow(HttpsSteps[RepairsFlowResult], ChecklistRepairFlow):
    """http_without_tls: offer to serve the managed certificate, else check again."""

    async def _async_https_entry(self) -> SecureRemoteAccessConfigEntry | None:
        return await async_entry_to_serve(self)

    def _https_done(self) -> RepairsFlowResult:
        return self.async_create_entry(data={})

    async def _async_act(self) -> RepairsFlowResult:
        if await self._async_https_entry() is not None:
            return await self.async_step_serve_https()
        return await super()._async_act()


class RestartRepairFlow(_ConfirmFlow):
    """Restart Home Assistant so that it serves the new certificate."""

    async def _async_act(self) -> RepairsFlowResult:
        try:
            await self.hass.services.async_call(
                HOMEASSISTANT_DOMAIN, SERVICE_HOMEASSISTANT_RESTART, blocking=True
            )
        except ServiceNotFound:
            return self.async_abort(reason="restart_unavailable")
        except HomeAssistantError as err:  # an invalid configuration, a migration
            return self.async_abort(
                reason="restart_refused", description_placeholders={"error": str(err)}
            )
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
        except ServiceValidationError:
            # The entry is not loaded or does not manage a certificate.
            return self.async_abort(reason="renew_unavailable")
        except HomeAssistantError as err:
            return self.async_abort(
                reason="renew_failed", description_placeholders={"error": str(err)}
            )
        return self.async_create_entry(data={})


class AcceptTermsRepairFlow(RepairsFlow):
    """Show the CA's new terms; on acceptance register the new account and retry."""

    def __init__(self, entry_id: str, lost_account: str) -> None:
        """Remember whose account is gone, and which account it was."""
        self.entry_id = entry_id
        self.lost_account = lost_account

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Go to the terms step."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Show the new terms; register the account once they are accepted."""
        entry = self.hass.config_entries.async_get_entry(self.entry_id)
        managed = (
            entry.runtime_data.managed
            if entry is not None and entry.state is ConfigEntryState.LOADED
            else None
        )
        if managed is None:
            return self.async_abort(reason="renew_unavailable")
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        placeholders = dict(issue.translation_placeholders or {}) if issue else {}
        placeholders["terms"] = terms_for_display(placeholders.get("terms", ""))
        errors: dict[str, str] = {}
        if user_input is not None:
            if not user_input.get(CONF_ACCEPT_TERMS):
                errors[CONF_ACCEPT_TERMS] = "terms_required"
            else:
                directory_url = managed.manager.settings.directory_url
                try:
                    async with account_store(self.hass).replacing:
                        # Accepted in another entry's issue already: one account.
                        if not self.lost_account or not await async_account_replaced(
                            self.hass, directory_url, self.lost_account
                        ):
                            await async_new_account(self.hass, managed.manager.settings)
                except AcmeError as err:
                    return self.async_abort(
                        reason="register_failed",
                        description_placeholders={"error": describe_acme_error(err)},
                    )
                ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
                await _async_account_works_again(self.hass, directory_url)
                return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm",
            data_schema=terms_schema(),
            errors=errors,
            description_placeholders=placeholders,
        )


async def _async_account_works_again(hass: HomeAssistant, directory_url: str) -> None:
    """Every entry on the CA's account checks at once (their issues go then)."""
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        managed = entry.runtime_data.managed
        if managed is not None and managed.manager.settings.directory_url == (
            directory_url
        ):
            await managed.renewal.async_conditions_changed()
