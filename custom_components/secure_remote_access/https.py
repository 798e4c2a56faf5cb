"""Serve the managed certificate from Home Assistant's own web server, safely.

Everything goes through Home Assistant's http config store: a *pending*
config is tried on the next start, and Home Assistant itself goes back to the
*stable* one (with a restart) unless the pending config is promoted within
its revert delay. This module writes the pending config, checks after the
restart that the server presents what was asked for, raises the "Keep
serving HTTPS?" issue, promotes on request and explains a revert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, cast

from homeassistant import config as conf_util
from homeassistant.components.http.config import (
    ERROR_NOT_PROMOTED,
    HTTP_CONFIG_CREATED_AT,
    HTTP_CONFIG_ERROR,
    HTTP_CONFIG_ERROR_MESSAGE,
    ActiveConfigType,
    ConfData,
    HTTPConfigStore,
    async_get_and_load_store,
)
from homeassistant.core import DOMAIN as HOMEASSISTANT_DOMAIN, CoreState, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import recorder
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .certificate_flow import allowed_directories
from .certificate_settings import CertificateSettings
from .const import CONF_DOMAINS, DOMAIN, LOGGER
from .helpers import path_is_allowed, same_file
from .issues import (
    HTTPS_REVERTED,
    HTTPS_TRIAL,
    async_delete_https_issues,
    async_raise_https_issue,
    https_reverted_issue_id,
    https_trial_issue_id,
)
from .models import SecureRemoteAccessConfigEntry
from .protocol.x509 import DEFAULT_CLOCK_SKEW, CertificateError, read_matching_pair
from .served import async_presented_serial, served_files

SSL_CERTIFICATE: Final = "ssl_certificate"
SSL_KEY: Final = "ssl_key"
SERVER_PORT: Final = "server_port"
SERVICE_RESTART: Final = "restart"
DEFAULT_HTTPS_PORT: Final = 443
_META: Final = (HTTP_CONFIG_CREATED_AT, HTTP_CONFIG_ERROR, HTTP_CONFIG_ERROR_MESSAGE)


class HttpsAction(StrEnum):
    """What a pending http config of ours does."""

    SERVE = "serve"
    STOP = "stop"


class HttpsRefusedError(Exception):
    """The change cannot be made; ``reason`` is a translated abort reason."""

    def __init__(self, reason: str, **placeholders: str) -> None:
        """Remember the reason and what its message shows."""
        super().__init__(reason)
        self.reason = reason
        self.placeholders = placeholders


@dataclass(frozen=True, slots=True)
class HttpsPlan:
    """A checked change of the http config, ready to be written."""

    action: HttpsAction
    config: ConfData
    certificate: str
    key: str
    port: int
    local_url: str
    https_url: str
    external_url: str | None
    replaces: str | None

    def placeholders(self) -> dict[str, str]:
        """What the explaining screen shows."""
        return {
            "certificate": self.certificate,
            "key": self.key,
            "port": str(self.port),
            "local_url": self.local_url,
            "https_url": self.https_url,
        }


def _settings(entry: SecureRemoteAccessConfigEntry) -> CertificateSettings | None:
    return CertificateSettings.from_options(
        list(entry.data[CONF_DOMAINS]), entry.options
    )


def _without_meta(config: ConfData) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _META}


def stable_config(store: HTTPConfigStore) -> dict[str, Any]:
    """The settings the running server was started with, without metadata.

    Refuses unless that is the stable slot: a trial runs (or just failed and
    waits for its restart), or the server runs on a fallback.
    """
    if store.active_config_type is not ActiveConfigType.STABLE:
        raise HttpsRefusedError("https_pending_exists")
    return _without_meta(store.stable)


def _without_pair(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in (SSL_CERTIFICATE, SSL_KEY)}


def _names_match(config: dict[str, Any], settings: CertificateSettings) -> bool:
    """The config serves exactly the managed pair (blocking)."""
    certificate, key = config.get(SSL_CERTIFICATE), config.get(SSL_KEY)
    return bool(
        certificate
        and key
        and same_file(certificate, settings.certificate_path)
        and same_file(key, settings.private_key_path)
    )


async def async_serves_managed(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> bool | None:
    """True when the running server serves the managed pair, None without one."""
    if (settings := _settings(entry)) is None:
        return None
    if (files := served_files(hass)) is None:
        return False
    served = {SSL_CERTIFICATE: files.certificate, SSL_KEY: files.key}
    return await hass.async_add_executor_job(_names_match, served, settings)


def _first_name(entry: SecureRemoteAccessConfigEntry) -> str:
    return str(entry.data[CONF_DOMAINS][0])


def _https_url(entry: SecureRemoteAccessConfigEntry, port: int) -> str:
    suffix = "" if port == DEFAULT_HTTPS_PORT else f":{port}"
    return f"https://{_first_name(entry)}{suffix}"


def _local_url(hass: HomeAssistant, port: int) -> str:
    api: Any = getattr(hass.config, "api", None)
    host = getattr(api, "local_ip", None) or "127.0.0.1"
    return f"http://{host}:{port}"


def _created_at(store: HTTPConfigStore) -> str | None:
    return None if store.pending is None else store.pending[HTTP_CONFIG_CREATED_AT]


async def _async_replaceable_pending(
    hass: HomeAssistant, store: HTTPConfigStore, settings: CertificateSettings
) -> str | None:
    """The created_at of a pending config we may replace: only a failed one of ours.

    Refuses when a pending config waits for its trial or promotion, or when a
    failed one came from the user or another tool.
    """
    if (pending := store.pending) is None:
        return None
    if pending[HTTP_CONFIG_ERROR] is None or (
        await hass.async_add_executor_job(_trial_action, store, settings) is None
    ):
        raise HttpsRefusedError("https_pending_exists")
    return pending[HTTP_CONFIG_CREATED_AT]


async def async_plan(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry, action: HttpsAction
) -> HttpsPlan:
    """Check everything and prepare the pending config; raise HttpsRefusedError."""
    if hass.state is not CoreState.running:
        raise HttpsRefusedError("https_not_started")
    if (settings := _settings(entry)) is None:
        raise HttpsRefusedError("https_no_certificate")
    store = await async_get_and_load_store(hass)
    replaces = await _async_replaceable_pending(hass, store, settings)
    current = stable_config(store)
    port = int(current[SERVER_PORT])
    serving = await async_serves_managed(hass, entry)
    config = dict(current)
    if action is HttpsAction.SERVE:
        if serving:
            raise HttpsRefusedError("https_already_serving")
        await hass.async_add_executor_job(_check_allowed, hass, settings)
        await _async_managed_serial(hass, settings)
        config[SSL_CERTIFICATE] = str(settings.certificate_path)
        config[SSL_KEY] = str(settings.private_key_path)
    else:
        if not serving:
            raise HttpsRefusedError("https_not_serving")
        config.pop(SSL_CERTIFICATE, None)
        config.pop(SSL_KEY, None)
    https_url = _https_url(entry, port)
    external = hass.config.external_url
    suggested = None
    if action is HttpsAction.SERVE and (not external or external.startswith("http:")):
        suggested = https_url
    return HttpsPlan(
        action=action,
        config=cast("ConfData", config),
        certificate=str(settings.certificate_path),
        key=str(settings.private_key_path),
        port=port,
        local_url=_local_url(hass, port),
        https_url=https_url,
        external_url=suggested,
        replaces=replaces,
    )


def _check_allowed(hass: HomeAssistant, settings: CertificateSettings) -> None:
    """Refuse files Home Assistant may not read (blocking: resolves links)."""
    for path in (settings.certificate_path, settings.private_key_path):
        if not path_is_allowed(hass, str(path)):
            raise HttpsRefusedError(
                "https_path_not_allowed",
                path=str(path),
                allowed=allowed_directories(hass),
            )


async def _async_managed_serial(
    hass: HomeAssistant, settings: CertificateSettings
) -> str:
    """The managed pair's serial, when it may be served; else HttpsRefusedError."""
    try:
        pair = await hass.async_add_executor_job(
            read_matching_pair, settings.certificate_path, settings.private_key_path
        )
    except CertificateError as err:
        raise HttpsRefusedError("https_certificate_unusable", error=str(err)) from err
    info = pair.certificate
    if info.not_before > dt_util.utcnow() + DEFAULT_CLOCK_SKEW:
        raise HttpsRefusedError(
            "https_certificate_not_yet_valid",
            date=f"{info.not_before:%Y-%m-%d %H:%M} UTC",
        )
    if info.is_expired(dt_util.utcnow()):
        raise HttpsRefusedError(
            "https_certificate_expired", date=f"{info.not_after:%Y-%m-%d %H:%M} UTC"
        )
    if missing := info.missing_names(settings.names):
        raise HttpsRefusedError("https_certificate_names", names=", ".join(missing))
    return info.serial_number


async def async_apply(
    hass: HomeAssistant, plan: HttpsPlan, *, set_external_url: bool
) -> None:
    """Write the pending config (never over another one), then restart.

    Refused before anything is written when Home Assistant would refuse the
    restart (the same checks as its restart action). The external URL changes
    only when the change is kept (`async_promote`): a revert leaves it as is.
    """
    store = await async_get_and_load_store(hass)
    if _created_at(store) != plan.replaces:
        raise HttpsRefusedError("https_pending_exists")
    if recorder.async_migration_in_progress(hass):
        raise HttpsRefusedError(
            "https_restart_blocked", error="a database upgrade is in progress"
        )
    if errors := await conf_util.async_check_ha_config_file(hass):
        raise HttpsRefusedError("https_restart_blocked", error=errors)
    await store.async_set_pending(plan.config)
    external_url = plan.external_url if set_external_url else None
    await _trial_store(hass).async_save(
        {"created_at": _created_at(store), "external_url": external_url}
    )
    LOGGER.info("Pending http config written (%s HTTPS); restarting", plan.action)
    await hass.services.async_call(HOMEASSISTANT_DOMAIN, SERVICE_RESTART)


async def async_forget_trial(hass: HomeAssistant) -> None:
    """The last entry is gone: remove the trial's store unless that trial is pending.

    While Home Assistant still tries the settings it was written for, the store
    says what keeping them does (the external URL).
    """
    trial = _trial_store(hass)
    store = await async_get_and_load_store(hass)
    pending = store.pending
    if pending is not None and pending[HTTP_CONFIG_ERROR] is None:
        kept = await trial.async_load() or {}
        if kept.get("created_at") == _created_at(store):
            return
    await trial.async_remove()


def _trial_store(hass: HomeAssistant) -> Store[dict[str, str | None]]:
    """What to do once the trial is kept (by the pending config's created_at)."""
    return Store(hass, 1, f"{DOMAIN}.https_trial")


def _trial_action(
    store: HTTPConfigStore, settings: CertificateSettings
) -> HttpsAction | None:
    """What the pending config does with the managed pair, if that is all (blocking).

    Ours only when nothing but the two paths differs from the stable config:
    a change of the user or another tool that also uses our files is theirs.
    """
    if (pending := store.pending) is None:
        return None
    new, old = _without_meta(pending), _without_meta(store.stable)
    if _without_pair(new) != _without_pair(old):
        return None
    if _names_match(new, settings) and not _names_match(old, settings):
        return HttpsAction.SERVE
    if _names_match(old, settings) and SSL_CERTIFICATE not in new:
        return HttpsAction.STOP
    return None


async def async_check_trial(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> None:
    """After a start: confirm a trial of ours, or explain its revert."""
    entry_id = entry.entry_id
    store = await async_get_and_load_store(hass)
    settings = _settings(entry)
    action = None
    if settings is not None:
        action = await hass.async_add_executor_job(_trial_action, store, settings)
    pending = store.pending
    if action is None or pending is None:
        async_delete_https_issues(hass, entry_id, trial=True, reverted=True)
        return
    assert settings is not None
    if (error := pending[HTTP_CONFIG_ERROR]) is not None:
        async_delete_https_issues(hass, entry_id, trial=True, reverted=False)
        async_raise_https_issue(
            hass,
            https_reverted_issue_id(entry_id),
            HTTPS_REVERTED
            if error == ERROR_NOT_PROMOTED
            else f"{HTTPS_REVERTED}_other",
            {"error": pending[HTTP_CONFIG_ERROR_MESSAGE] or error},
            entry_id,
            pending[HTTP_CONFIG_CREATED_AT],
        )
        return
    async_delete_https_issues(hass, entry_id, trial=False, reverted=True)
    if store.active_config_type is not ActiveConfigType.PENDING:
        async_delete_https_issues(hass, entry_id, trial=True, reverted=False)
        return
    confirmed = await _async_confirmed(hass, settings, action)
    deadline = store.revert_deadline
    placeholders = {
        "deadline": _local_time(deadline),
        "https_url": _https_url(entry, int(pending[SERVER_PORT])),
    }
    if not confirmed:
        key = f"{HTTPS_TRIAL}_unconfirmed"
    else:
        key = HTTPS_TRIAL if action is HttpsAction.SERVE else f"{HTTPS_TRIAL}_stop"
    async_raise_https_issue(
        hass,
        https_trial_issue_id(entry_id),
        key,
        placeholders,
        entry_id,
        pending[HTTP_CONFIG_CREATED_AT],
        fixable=confirmed,
    )


async def _async_confirmed(
    hass: HomeAssistant, settings: CertificateSettings, action: HttpsAction
) -> bool:
    """The running server does what the trial asked for."""
    files = served_files(hass)
    if action is HttpsAction.STOP or files is None:
        return action is HttpsAction.STOP and files is None
    try:
        wanted = await _async_managed_serial(hass, settings)
    except HttpsRefusedError as err:
        LOGGER.warning("The served certificate cannot be confirmed: %s", err.reason)
        return False
    presented = await async_presented_serial(files.host, files.port)
    if presented != wanted:
        LOGGER.warning("The server presents serial %s, not %s", presented, wanted)
    return presented == wanted


def _local_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return f"{dt_util.as_local(moment):%H:%M}"


async def async_promote(hass: HomeAssistant, created_at: str | None) -> None:
    """Promote the pending config the issue is about; HttpsRefusedError otherwise."""
    store = await async_get_and_load_store(hass)
    if _created_at(store) != created_at or store.pending is None:
        raise HttpsRefusedError("https_nothing_to_promote")
    try:
        await store.async_promote_pending()
    except HomeAssistantError as err:  # it failed its trial meanwhile
        raise HttpsRefusedError("https_nothing_to_promote") from err
    trial = _trial_store(hass)
    kept = await trial.async_load() or {}
    if kept.get("created_at") == created_at and (url := kept.get("external_url")):
        await hass.config.async_update(external_url=url)
    await trial.async_remove()


async def async_forget_reverted(hass: HomeAssistant, created_at: str | None) -> None:
    """Clear the failed pending config the issue explained (only that one)."""
    store = await async_get_and_load_store(hass)
    pending = store.pending
    failed = pending is not None and pending[HTTP_CONFIG_ERROR] is not None
    if failed and _created_at(store) == created_at:
        await store.async_set_pending(None)
        await _trial_store(hass).async_remove()
