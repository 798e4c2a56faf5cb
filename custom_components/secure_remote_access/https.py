"""Serve the managed certificate from Home Assistant's own web server, safely.

Everything goes through Home Assistant's http config store: a *pending*
config is tried on the next start, and Home Assistant itself goes back to the
*stable* one (with a restart) unless the pending config is promoted within
its revert delay. This module checks a change (serve or stop), says what it
breaks (the URLs that stop working), writes it and restarts; `https_trial`
follows it from there, whoever keeps or undoes it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohasupervisor import SupervisorError
from homeassistant import config as conf_util
from homeassistant.components.http.config import (
    HTTP_CONFIG_CREATED_AT,
    HTTP_CONFIG_ERROR,
    KEY_PENDING,
    STORAGE_KEY,
    STORAGE_MINOR_VERSION,
    STORAGE_VERSION,
    ActiveConfigType,
    ConfData,
    HTTPConfigStore,
    async_get_and_load_store,
)
from homeassistant.core import DOMAIN as HOMEASSISTANT_DOMAIN, CoreState, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import recorder
from homeassistant.helpers.storage import Store

from .certificate_flow import allowed_directories
from .certificate_settings import CertificateSettings
from .const import LOGGER
from .helpers import path_is_allowed
from .https_issues import async_delete_restart_refused, async_raise_restart_refused
from .https_store import (
    SERVER_PORT,
    SSL_CERTIFICATE,
    SSL_KEY,
    HttpsAction,
    HttpsRefusedError,
    async_managed_serial,
    async_serves_managed,
    created_at,
    https_url,
    pending_action,
    settings_of,
    without_meta,
)
from .https_trial import Trial, get_https_trial, local_time
from .https_urls import (
    EXTERNAL_URL,
    INTERNAL_URL,
    SetUrl,
    UrlChange,
    changes_for_serving,
    changes_for_stopping,
)
from .models import SecureRemoteAccessConfigEntry
from .protocol.x509 import CertificateError, read_certificate_file

SERVICE_RESTART: Final = "restart"

__all__ = [
    "HttpsAction",
    "HttpsPlan",
    "HttpsRefusedError",
    "async_apply",
    "async_plan",
    "async_serves_managed",
]


@dataclass(frozen=True, slots=True)
class HttpsPlan:
    """A checked change of the http config, ready to be written."""

    action: HttpsAction
    entry_id: str
    config: ConfData
    certificate: str
    key: str
    port: int
    local_url: str
    https_url: str
    url_changes: tuple[UrlChange, ...]
    replaces: str | None

    def placeholders(self) -> dict[str, str]:
        """What the explaining screen shows (its URL fields included)."""
        values = {
            "certificate": self.certificate,
            "key": self.key,
            "port": str(self.port),
            "local_url": self.local_url,
            "https_url": self.https_url,
        }
        for key in (EXTERNAL_URL, INTERNAL_URL):
            change = self.change(key)
            values[key] = (change.current if change else None) or "-"
            values[f"new_{key}"] = (change.new if change else None) or "-"
        return values

    def change(self, key: str) -> UrlChange | None:
        """What the change offers for one URL, if it breaks it."""
        return next((c for c in self.url_changes if c.key == key), None)


def stable_config(store: HTTPConfigStore) -> dict[str, Any]:
    """The settings the running server was started with, without metadata.

    Refuses unless that is the stable slot: a trial runs (or just failed and
    waits for its restart), or the server runs on a fallback.
    """
    if store.active_config_type is not ActiveConfigType.STABLE:
        raise HttpsRefusedError("https_pending_exists")
    return without_meta(store.stable)


def _local_url(hass: HomeAssistant, port: int) -> str:
    api: Any = getattr(hass.config, "api", None)
    host = getattr(api, "local_ip", None) or "127.0.0.1"
    return f"http://{host}:{port}"


async def _async_replaceable_pending(
    hass: HomeAssistant, store: HTTPConfigStore, settings: CertificateSettings
) -> str | None:
    """The created_at of a pending config we may replace: only a failed one of ours.

    Refuses when our own change waits (pointing to where to keep it), when a
    pending config waits for its trial or promotion, or when a failed one came
    from the user or another tool.
    """
    if (waiting := await get_https_trial(hass).async_waiting()) is not None:
        raise HttpsRefusedError("https_trial_waiting", deadline=local_time(waiting[1]))
    if (pending := store.pending) is None:
        return None
    if pending[HTTP_CONFIG_ERROR] is None or (
        await hass.async_add_executor_job(pending_action, store, settings) is None
    ):
        raise HttpsRefusedError("https_pending_exists")
    return created_at(pending)


async def async_plan(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry, action: HttpsAction
) -> HttpsPlan:
    """Check everything and prepare the pending config; raise HttpsRefusedError."""
    if hass.state is not CoreState.running:
        raise HttpsRefusedError("https_not_started")
    if (settings := settings_of(entry)) is None:
        raise HttpsRefusedError("https_no_certificate")
    store = await async_get_and_load_store(hass)
    replaces = await _async_replaceable_pending(hass, store, settings)
    current = stable_config(store)
    port = int(current[SERVER_PORT])
    serving = await async_serves_managed(hass, entry)
    config = dict(current)
    address = https_url(entry, port)
    urls = {
        EXTERNAL_URL: hass.config.external_url,
        INTERNAL_URL: hass.config.internal_url,
    }
    if action is HttpsAction.SERVE:
        if serving:
            raise HttpsRefusedError("https_already_serving")
        await hass.async_add_executor_job(_check_allowed, hass, settings)
        await async_managed_serial(hass, settings)
        try:
            info = await hass.async_add_executor_job(
                read_certificate_file, settings.certificate_path
            )
        except CertificateError as err:  # rewritten since it was checked
            raise HttpsRefusedError(
                "https_certificate_unusable", error=str(err)
            ) from err
        config[SSL_CERTIFICATE] = str(settings.certificate_path)
        config[SSL_KEY] = str(settings.private_key_path)
        changes = changes_for_serving(urls, port, address, info.covers)
    else:
        if not serving:
            raise HttpsRefusedError("https_not_serving")
        config.pop(SSL_CERTIFICATE, None)
        config.pop(SSL_KEY, None)
        set_urls = await get_https_trial(hass).async_set_urls()
        changes = changes_for_stopping(urls, port, set_urls)
    return HttpsPlan(
        action=action,
        entry_id=entry.entry_id,
        config=cast("ConfData", config),
        certificate=str(settings.certificate_path),
        key=str(settings.private_key_path),
        port=port,
        local_url=_local_url(hass, port),
        https_url=address,
        url_changes=tuple(changes),
        replaces=replaces,
    )


async def _async_pending_on_disk(hass: HomeAssistant) -> str | None:
    """The created_at of the pending config as ``.storage/http`` holds it."""
    saved: Store[dict[str, Any]] = Store(
        hass, STORAGE_VERSION, STORAGE_KEY, minor_version=STORAGE_MINOR_VERSION
    )
    try:
        data = await saved.async_load()
    except Exception as err:  # noqa: BLE001 - any unreadable file is a failed write
        LOGGER.debug("Reading back .storage/http failed: %r", err)
        return None
    pending = (data or {}).get(KEY_PENDING)
    return pending.get(HTTP_CONFIG_CREATED_AT) if isinstance(pending, dict) else None


def _check_allowed(hass: HomeAssistant, settings: CertificateSettings) -> None:
    """Refuse files Home Assistant may not read (blocking: resolves links)."""
    for path in (settings.certificate_path, settings.private_key_path):
        if not path_is_allowed(hass, str(path)):
            raise HttpsRefusedError(
                "https_path_not_allowed",
                path=str(path),
                allowed=allowed_directories(hass),
            )


async def async_apply(
    hass: HomeAssistant, plan: HttpsPlan, *, urls: Collection[str]
) -> None:
    """Write the pending config (never over another one), then restart.

    Refused before anything is written when Home Assistant would refuse the
    restart (the same checks as its restart action). The chosen ``urls``
    change only once the change is kept: a revert leaves them as they are.
    """
    store = await async_get_and_load_store(hass)
    if created_at(store.pending) != plan.replaces:
        raise HttpsRefusedError("https_pending_exists")
    if recorder.async_migration_in_progress(hass):
        raise HttpsRefusedError(
            "https_restart_blocked", error="a database upgrade is in progress"
        )
    if errors := await conf_util.async_check_ha_config_file(hass):
        raise HttpsRefusedError("https_restart_blocked", error=errors)
    await store.async_set_pending(plan.config)
    written = created_at(store.pending)
    assert written is not None
    on_disk = await _async_pending_on_disk(hass)
    if created_at(store.pending) != written:  # another change came meanwhile
        raise HttpsRefusedError("https_pending_exists")
    if on_disk != written:
        # Home Assistant's store logs a failed write and carries on: the
        # restart would start on the old file, as if nothing was asked.
        await store.async_set_pending(None)
        LOGGER.warning("Home Assistant could not save its HTTP settings")
        raise HttpsRefusedError("https_write_failed")
    chosen = {
        change.key: SetUrl(change.current, change.new)
        for change in plan.url_changes
        if change.key in urls
    }
    await get_https_trial(hass).async_begin(
        Trial(written, plan.entry_id, plan.action, chosen)
    )
    LOGGER.info("Pending http config written (%s HTTPS); restarting", plan.action)
    async_delete_restart_refused(hass)
    # Not awaited here: on Home Assistant OS the Supervisor answers an
    # accepted restart only as it stops Core, and the flow must answer first.
    hass.async_create_background_task(
        _async_restart_or_withdraw(hass, store, written),
        "restart for the new http config",
    )


async def _async_restart_or_withdraw(
    hass: HomeAssistant, store: HTTPConfigStore, written: str
) -> None:
    """Restart; when that is refused, withdraw the change and say so.

    Otherwise it would wait for whichever restart comes next, days later.
    """
    try:
        await hass.services.async_call(
            HOMEASSISTANT_DOMAIN, SERVICE_RESTART, blocking=True
        )
    except (HomeAssistantError, SupervisorError) as err:
        if hass.is_stopping:  # the restart is under way after all
            return
        error = str(err) or type(err).__name__
        LOGGER.warning("Home Assistant refused to restart: %s", error)
        if created_at(store.pending) == written:
            await store.async_set_pending(None)
        await get_https_trial(hass).async_resolve()
        async_raise_restart_refused(hass, error)
