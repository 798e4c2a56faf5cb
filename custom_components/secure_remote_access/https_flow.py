"""Flow steps that make Home Assistant serve (or stop serving) the managed certificate.

The same explaining screen is a step of the entry's options flow and of the
``http_without_tls`` fix flow; the "Keep serving HTTPS?", "reverted" and
"served certificate not renewed" issues have their own fix flows here.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlowResult
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowHandler, FlowResult
from homeassistant.helpers import issue_registry as ir
import probatio as vol

from .const import DOMAIN
from .https import HttpsAction, HttpsRefusedError, async_apply, async_plan
from .https_store import async_serves_managed
from .https_trial import get_https_trial, local_time
from .https_unmanaged import async_unmanaged_served
from .issues import (
    HTTPS_REVERTED,
    HTTPS_TRIAL,
    PROXY_RESTART_FAILED,
    SERVED_NOT_RENEWED,
    issue_entry_id,
)
from .models import SecureRemoteAccessConfigEntry
from .proxy import ProxyReport, async_proxies_in_front
from .proxy_restart import async_forget_proxy, async_restart_and_report

STEP_SERVE: Final = "serve_https"
STEP_STOP: Final = "stop_https"
STEP_WAITING: Final = "https_waiting"
STEP_PROXY: Final = "proxy_in_front"


def url_field(key: str) -> str:
    """The form field that updates one URL (``set_external_url``...)."""
    return f"set_{key}"


async def async_https_menu_option(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> str | None:
    """The serving step the entry's menu offers: serve, stop, or where to keep ours."""
    if (serving := await async_serves_managed(hass, entry)) is None:
        return None
    if await get_https_trial(hass).async_waiting() is not None:
        return STEP_WAITING
    return STEP_STOP if serving else STEP_SERVE


async def async_entry_to_serve(
    flow: FlowHandler[Any, Any, Any],
) -> SecureRemoteAccessConfigEntry | None:
    """The first loaded entry with a managed certificate Home Assistant does not serve."""
    entries: list[SecureRemoteAccessConfigEntry] = (
        flow.hass.config_entries.async_entries(DOMAIN)
    )
    for entry in entries:
        if entry.state is not ConfigEntryState.LOADED:
            continue
        if await async_serves_managed(flow.hass, entry) is False:
            return entry
    return None


class HttpsSteps[ResultT: FlowResult[Any, str]](FlowHandler[Any, ResultT, str]):
    """The serve_https and stop_https steps, for options and fix flows."""

    #: The proxies found in front, once the flow has warned about them.
    _proxy_report: ProxyReport | None = None
    _proxy_placeholders: dict[str, str] | None = None

    def _proxy_menu_options(self, report: ProxyReport) -> list[str]:
        """What the proxy warning offers (the options flow adds the proxy's own step)."""
        return [STEP_SERVE]

    async def _async_https_entry(self) -> SecureRemoteAccessConfigEntry | None:
        """The entry whose certificate is served."""
        raise NotImplementedError

    def _https_done(self) -> ResultT:
        """Finish once Home Assistant restarts."""
        raise NotImplementedError

    async def async_step_serve_https(
        self, user_input: dict[str, Any] | None = None
    ) -> ResultT:
        """Explain what serving HTTPS changes; write it and restart."""
        return await self._async_https_step(STEP_SERVE, HttpsAction.SERVE, user_input)

    async def async_step_stop_https(
        self, user_input: dict[str, Any] | None = None
    ) -> ResultT:
        """Explain what going back to plain HTTP changes; write it and restart."""
        return await self._async_https_step(STEP_STOP, HttpsAction.STOP, user_input)

    async def async_step_proxy_in_front(
        self, user_input: dict[str, Any] | None = None
    ) -> ResultT:
        """A proxy is in front: name it before anything switches Home Assistant."""
        if self._proxy_report is None or self._proxy_placeholders is None:
            return await self.async_step_serve_https()
        return self.async_show_menu(
            step_id=STEP_PROXY,
            menu_options=self._proxy_menu_options(self._proxy_report),
            description_placeholders=self._proxy_placeholders,
        )

    async def async_step_https_waiting(
        self, user_input: dict[str, Any] | None = None
    ) -> ResultT:
        """Our own change waits to be kept: say where (nothing else to do here)."""
        waiting = await get_https_trial(self.hass).async_waiting()
        deadline = local_time(waiting[1]) if waiting else "-"
        return self.async_abort(
            reason="https_trial_waiting",
            description_placeholders={"deadline": deadline},
        )

    async def _async_https_step(
        self, step_id: str, action: HttpsAction, user_input: dict[str, Any] | None
    ) -> ResultT:
        if (entry := await self._async_https_entry()) is None:
            return self.async_abort(reason="https_no_certificate")
        try:
            plan = await async_plan(self.hass, entry, action)
            if user_input is not None:
                chosen = [
                    change.key
                    for change in plan.url_changes
                    if user_input.get(url_field(change.key))
                ]
                await async_apply(self.hass, plan, urls=chosen)
                return self._https_done()
        except HttpsRefusedError as err:
            return self.async_abort(
                reason=err.reason, description_placeholders=err.placeholders
            )
        if action is HttpsAction.SERVE and self._proxy_report is None:
            report = await async_proxies_in_front(self.hass)
            if report.proxies:
                self._proxy_report = report
                self._proxy_placeholders = {
                    "proxies": report.names,
                    "port": str(plan.port),
                    "certificate": plan.certificate,
                    "key": plan.key,
                }
                return await self.async_step_proxy_in_front()
        fields: dict[Any, Any] = {
            vol.Optional(url_field(change.key), default=True): bool
            for change in plan.url_changes
        }
        return self.async_show_form(
            step_id=step_id,
            data_schema=vol.Schema(fields),
            description_placeholders=plan.placeholders(),
        )


def async_https_fix_flow(
    issue_id: str, data: dict[str, str | int | float | None] | None
) -> ConfirmRepairFlow | None:
    """The fix flow of a serving-HTTPS issue, or None for other issues."""
    created_at = None if data is None else data.get("created_at")
    created = None if created_at is None else str(created_at)
    if issue_id.startswith(f"{HTTPS_TRIAL}_"):
        return KeepHttpsRepairFlow(created)
    if issue_id.startswith(f"{HTTPS_REVERTED}_"):
        return HttpsRevertedRepairFlow(created)
    if issue_id == SERVED_NOT_RENEWED:
        return ServedNotRenewedRepairFlow()
    if issue_entry_id(issue_id, PROXY_RESTART_FAILED):
        values = data or {}
        return ProxyRestartRepairFlow(
            str(values.get("entry_id") or ""), str(values.get("slug") or "")
        )
    return None


class _PendingConfigFlow(ConfirmRepairFlow):
    """A confirm step about one pending http config (by its created_at)."""

    def __init__(self, created_at: str | None) -> None:
        """Remember which pending config the issue is about."""
        self.created_at = created_at

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show the issue's text; act when the user confirms."""
        if user_input is None:
            return await super().async_step_confirm()
        try:
            await self._async_act()
        except HttpsRefusedError as err:
            # The config it was about is gone: so is the reason for the issue.
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
            return self.async_abort(reason=err.reason)
        return self.async_create_entry(data={})

    async def _async_act(self) -> None:
        raise NotImplementedError


class KeepHttpsRepairFlow(_PendingConfigFlow):
    """Keep serving HTTPS: promote the pending http config."""

    async def _async_act(self) -> None:
        await get_https_trial(self.hass).async_keep(self.created_at)


class HttpsRevertedRepairFlow(_PendingConfigFlow):
    """Home Assistant went back by itself: forget the failed pending config."""

    async def _async_act(self) -> None:
        await get_https_trial(self.hass).async_forget_reverted(self.created_at)


class ServedNotRenewedRepairFlow(ConfirmRepairFlow):
    """Show the ways out; submitting checks whether one was taken."""

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show the issue's text; check again when the user submits."""
        if user_input is not None and await async_unmanaged_served(self.hass):
            return self.async_abort(reason="still_served")
        return await super().async_step_confirm(user_input)


class ProxyRestartRepairFlow(ConfirmRepairFlow):
    """Restart the proxy add-on now (it failed after a renewal)."""

    def __init__(self, entry_id: str, slug: str) -> None:
        """Remember which entry's add-on to restart."""
        self.entry_id = entry_id
        self.slug = slug

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show the failure; restart and confirm when the user submits."""
        if user_input is None:
            return await super().async_step_confirm()
        entry = self.hass.config_entries.async_get_entry(self.entry_id)
        if entry is None or not self.slug:
            return self.async_abort(reason="proxy_restart_unavailable")
        result = await async_restart_and_report(self.hass, entry, self.slug)
        if result.gone:
            async_forget_proxy(self.hass, entry)
            return self.async_create_entry(data={})
        if not result.ok:
            return self.async_abort(
                reason="proxy_restart_failed",
                description_placeholders={"error": str(result.error)},
            )
        return self.async_create_entry(data={})
