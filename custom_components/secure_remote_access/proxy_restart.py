"""Keep a proxy add-on's certificate fresh: restart it after every renewal.

Opt-in per entry (``proxy_addon`` option, set in the options flow by an
administrator). After a renewal wrote a new certificate, the Supervisor
restarts the add-on; the restart is confirmed by the add-on's state and,
where it reads the managed files and its HTTPS port is reachable from Home
Assistant, by a TLS handshake that must present the new serial number. A
failure raises a Repairs issue whose fix restarts it again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

from aiohasupervisor import SupervisorError, SupervisorNotFoundError
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import CONF_PROXY_ADDON, DOMAIN, LOGGER
from .https_store import (
    HttpsRefusedError,
    async_managed_serial,
    first_name,
    settings_of,
)
from .issues import PROXY_RESTART_FAILED, _async_create, proxy_restart_issue_id
from .models import SecureRemoteAccessConfigEntry
from .proxy import RUNNING, proxy_from_info, reads_managed, supervisor_client
from .renewal_state import RenewalOutcome
from .served import async_presented_serial

#: The Supervisor waits up to 120 s for an add-on to start; a little more here.
RESTART_TIMEOUT: Final = 150.0
#: An add-on the user stopped.
STOPPED: Final = "stopped"
#: Handshakes after the restart (the proxy may need a moment to listen).
CONFIRM_ATTEMPTS: Final = 5
CONFIRM_DELAY: Final = 2.0


@dataclass(frozen=True, slots=True)
class RestartResult:
    """What a restart of the proxy add-on did."""

    name: str
    error: str | None = None
    not_running: bool = False
    """Stopped on purpose: left stopped (it reads the files when started)."""
    gone: bool = False
    """Not installed any more: nothing to restart, ever."""

    @property
    def ok(self) -> bool:
        """Restarted and, where it can be checked, serving the managed certificate."""
        return self.error is None


async def _async_confirm(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry, slug: str
) -> RestartResult:
    """Ask the Supervisor for the state, then shake hands where possible."""
    info = await supervisor_client(hass).addons.addon_info(slug)
    name = info.name
    proxy = proxy_from_info(slug, name, info.options, info.network)
    if str(info.state) != RUNNING:
        return RestartResult(name, f"it is {info.state} after the restart")
    settings = settings_of(entry)
    if proxy is None or proxy.tls_port is None or settings is None:
        return RestartResult(name)
    if not await hass.async_add_executor_job(
        reads_managed, proxy, settings.certificate_path, settings.private_key_path
    ):
        return RestartResult(name)  # it reads other files: nothing to compare
    try:
        wanted = await async_managed_serial(hass, settings)
    except HttpsRefusedError:
        return RestartResult(name)  # the certificate's own issue says why
    presented = None
    for attempt in range(CONFIRM_ATTEMPTS):
        if attempt:
            await asyncio.sleep(CONFIRM_DELAY)
        presented = await async_presented_serial(
            "127.0.0.1", proxy.tls_port, first_name(entry)
        )
        if presented == wanted:
            return RestartResult(name)
    found = f"serial {presented}" if presented else "no TLS handshake"
    return RestartResult(
        name, f"port {proxy.tls_port} answers with {found}, not serial {wanted}"
    )


async def async_restart_proxy(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry, slug: str
) -> RestartResult:
    """Restart the add-on through the Supervisor and confirm it serves; never raises."""
    addons = supervisor_client(hass).addons
    try:
        async with asyncio.timeout(RESTART_TIMEOUT):
            # The Supervisor's restart starts a stopped add-on too.
            info = await addons.addon_info(slug)
            if str(info.state) == STOPPED:
                return RestartResult(info.name, not_running=True)
            await addons.restart_addon(slug)
            return await _async_confirm(hass, entry, slug)
    except TimeoutError:
        return RestartResult(
            slug, f"the Supervisor did not answer within {RESTART_TIMEOUT:g} s"
        )
    except SupervisorNotFoundError as err:
        return RestartResult(slug, str(err) or "it is not installed", gone=True)
    except SupervisorError as err:
        return RestartResult(slug, str(err) or type(err).__name__)


async def async_restart_and_report(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry, slug: str
) -> RestartResult:
    """Restart, log one line, and raise or clear the Repairs issue."""
    result = await async_restart_proxy(hass, entry, slug)
    issue_id = proxy_restart_issue_id(entry.entry_id)
    if result.not_running:
        LOGGER.info("%s is stopped: not restarted after the renewal", result.name)
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return result
    if result.ok:
        LOGGER.info("Restarted %s: it serves the renewed certificate", result.name)
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return result
    LOGGER.warning("Restarting the add-on %s failed: %s", slug, result.error)
    _async_create(
        hass,
        issue_id,
        PROXY_RESTART_FAILED,
        ir.IssueSeverity.ERROR,
        {"name": result.name, "slug": slug, "error": str(result.error)},
        fixable=True,
        persistent=True,
        data={"entry_id": entry.entry_id, "slug": slug},
    )
    return result


@callback
def async_forget_proxy(hass: HomeAssistant, entry: ConfigEntry[Any]) -> None:
    """The chosen add-on is not installed any more: stop restarting it."""
    options = {k: v for k, v in entry.options.items() if k != CONF_PROXY_ADDON}
    hass.config_entries.async_update_entry(entry, options=options)
    ir.async_delete_issue(hass, DOMAIN, proxy_restart_issue_id(entry.entry_id))
    LOGGER.info("The proxy add-on is gone: no longer restarted after renewals")


@callback
def async_setup_proxy_restart(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> CALLBACK_TYPE | None:
    """Restart the chosen add-on after each renewal; None when none is chosen."""
    slug = entry.options.get(CONF_PROXY_ADDON)
    managed = entry.runtime_data.managed
    if not slug or managed is None:
        ir.async_delete_issue(hass, DOMAIN, proxy_restart_issue_id(entry.entry_id))
        return None

    @callback
    def _renewed(_outcome: RenewalOutcome) -> None:
        # The option as it is now: the fix of a gone add-on removes it.
        if entry.options.get(CONF_PROXY_ADDON) != slug:
            return
        entry.async_create_background_task(
            hass,
            async_restart_and_report(hass, entry, str(slug)),
            f"{DOMAIN} restart {slug}",
        )

    return managed.renewal.async_on_renewed(_renewed)
