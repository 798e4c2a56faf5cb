"""One truth for a change of the http config: Home Assistant's store.

A change the product writes is a *pending* config in Home Assistant's http
store. Whoever keeps it (the "Keep serving HTTPS?" issue, core's "Confirm new
HTTP server configuration" dialog, the WebSocket command
``http/config/promote``, the Network page) makes the pending config the
*stable* one, with its ``created_at``; whoever undoes it empties the pending
slot; Home Assistant marks one that failed its trial with an error. This
module reads those slots, at start-up, every few seconds while a trial runs,
and after every action of ours, and brings the rest in line: our issues, the
URLs the user chose to change once the change is kept, core's
``ssl_configured_without_configured_urls``.

The record (``.storage/secure_remote_access.https_trial``) holds what the
product asked for (the pending config's ``created_at``, the entry, serve or
stop, the URLs to set) and which URLs it set while serving, so that
stopping restores them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.components.http.config import (
    ERROR_NOT_PROMOTED,
    HTTP_CONFIG_CREATED_AT,
    HTTP_CONFIG_ERROR,
    HTTP_CONFIG_ERROR_MESSAGE,
    HTTPConfigStore,
    async_get_and_load_store,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .certificate_settings import CertificateSettings
from .const import DOMAIN, LOGGER
from .https_issues import async_delete_https_issues, async_raise_https_issue
from .https_store import (
    SERVER_PORT,
    HttpsAction,
    HttpsRefusedError,
    Outcome,
    async_managed_serial,
    classify,
    created_at,
    https_url,
    pending_action,
    settings_of,
)
from .https_unmanaged import async_check_unmanaged
from .https_urls import URL_KEYS, SetUrl
from .issues import (
    HTTPS_REVERTED,
    HTTPS_TRIAL,
    https_reverted_issue_id,
    https_trial_issue_id,
)
from .served import async_presented_serial, served_files

STORE_VERSION: Final = 1
POLL_INTERVAL: Final = timedelta(seconds=5)
#: Core's issue for SSL without an external or internal URL.
HTTP_DOMAIN: Final = "http"
CORE_SSL_ISSUE: Final = "ssl_configured_without_configured_urls"
DATA_HTTPS_TRIAL: HassKey[HttpsTrial] = HassKey(f"{DOMAIN}_https_trial")


@dataclass(frozen=True, slots=True)
class Trial:
    """A change of ours and what to do once it is kept."""

    created_at: str
    entry_id: str
    action: HttpsAction
    urls: dict[str, SetUrl]

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "created_at": self.created_at,
            "entry_id": self.entry_id,
            "action": self.action.value,
            "urls": {key: _url_dict(url) for key, url in self.urls.items()},
        }


def _url_dict(url: SetUrl) -> dict[str, str | None]:
    return {"before": url.before, "after": url.after}


def _urls(raw: Any) -> dict[str, SetUrl]:
    if not isinstance(raw, dict):
        return {}
    return {
        key: SetUrl(value.get("before"), value.get("after"))
        for key, value in raw.items()
        if key in URL_KEYS and isinstance(value, dict)
    }


def _trial(raw: Any) -> Trial | None:
    """A stored trial; None for none (or a record of an older version)."""
    if not isinstance(raw, dict):
        return None
    try:
        return Trial(
            str(raw["created_at"]),
            str(raw["entry_id"]),
            HttpsAction(raw["action"]),
            _urls(raw.get("urls")),
        )
    except KeyError, ValueError:
        return None


class HttpsTrial:
    """The installation's one follower of the http store for changes of ours."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Nothing is read until the first resolve."""
        self.hass = hass
        self._store: Store[dict[str, Any]] = Store(
            hass, STORE_VERSION, f"{DOMAIN}.https_trial"
        )
        self._lock = asyncio.Lock()
        self._loaded = False
        self._trial: Trial | None = None
        self._set_urls: dict[str, SetUrl] = {}
        self._unsub_poll: CALLBACK_TYPE | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        # The handshake verdict for a trial, once per running server.
        self._confirmed: tuple[str, object, bool] | None = None

    # ------------------------------------------------------------ the record

    async def _async_load(self) -> None:
        if self._loaded:
            return
        data = await self._store.async_load() or {}
        self._trial = _trial(data.get("trial"))
        self._set_urls = _urls(data.get("set_urls"))
        self._loaded = True

    async def _async_save(self) -> None:
        if self._trial is None and not self._set_urls:
            await self._store.async_remove()
            return
        await self._store.async_save(
            {
                "trial": None if self._trial is None else self._trial.as_dict(),
                "set_urls": {k: _url_dict(v) for k, v in self._set_urls.items()},
            }
        )

    async def async_set_urls(self) -> dict[str, SetUrl]:
        """The URLs the product set while serving (restored when it stops)."""
        async with self._lock:
            await self._async_load()
            return dict(self._set_urls)

    async def async_begin(self, trial: Trial) -> None:
        """Remember a change just written as the pending config."""
        async with self._lock:
            await self._async_load()
            self._trial = trial
            self._confirmed = None
            await self._async_save()

    async def async_waiting(self) -> tuple[Trial, datetime | None] | None:
        """A change of ours waiting to be tried or kept, and when it reverts."""
        async with self._lock:
            await self._async_load()
            trial = self._trial
            if trial is None:
                return None
            store = await async_get_and_load_store(self.hass)
            pending = store.pending
            if pending is None or created_at(pending) != trial.created_at:
                return None
            if pending[HTTP_CONFIG_ERROR] is not None:
                return None
            return trial, store.revert_deadline

    # -------------------------------------------------------------- resolve

    async def async_resolve(self) -> None:
        """Bring our issues, the URLs and the record in line with the store."""
        async with self._lock:
            await self._async_load()
            store = await async_get_and_load_store(self.hass)
            await self._async_resolve(store)
            self._fingerprint = _fingerprint(store)

    async def _async_resolve(self, store: HTTPConfigStore) -> None:
        hass = self.hass
        trial = self._trial
        entry = (
            None
            if trial is None
            else hass.config_entries.async_get_entry(trial.entry_id)
        )
        settings = None if entry is None else settings_of(entry)
        if trial is not None and (entry is None or settings is None):
            # Nothing would renew what it serves: nothing of ours asks to keep it.
            LOGGER.debug("Forgetting the HTTP change of a removed entry")
            async_delete_https_issues(hass, trial.entry_id, trial=True, reverted=True)
            trial = None
        if trial is None:
            trial, entry, settings = await self._async_adopt(store)
        if trial is None or entry is None or settings is None:
            await self._async_set_trial(None)
            return
        outcome = await hass.async_add_executor_job(
            classify, store, trial.created_at, trial.action, settings
        )
        if (
            outcome is Outcome.DROPPED
            and (adopted := await self._async_adopt(store, only=entry))[0] is not None
        ):
            new = adopted[0]
            assert new is not None
            if new.action is trial.action:  # the same change, saved again
                trial = replace(trial, created_at=new.created_at)
                outcome = await hass.async_add_executor_job(
                    classify, store, trial.created_at, trial.action, settings
                )
        await self._async_set_trial(trial)
        entry_id = trial.entry_id
        LOGGER.debug("HTTP change %s (%s): %s", trial.created_at, trial.action, outcome)
        if outcome is Outcome.KEPT:
            await self._async_kept(trial)
        elif outcome is Outcome.DROPPED:
            async_delete_https_issues(hass, entry_id, trial=True, reverted=True)
            await self._async_set_trial(None)
        elif outcome is Outcome.FAILED:
            async_delete_https_issues(hass, entry_id, trial=True, reverted=False)
            self._raise_reverted(store, entry_id)
        elif outcome is Outcome.WAITING:
            async_delete_https_issues(hass, entry_id, trial=True, reverted=True)
        else:
            async_delete_https_issues(hass, entry_id, trial=False, reverted=True)
            await self._async_raise_trial(store, trial, entry, settings)
        self._poll(outcome is Outcome.TRYING)

    async def _async_adopt(
        self, store: HTTPConfigStore, only: ConfigEntry[Any] | None = None
    ) -> tuple[Trial | None, ConfigEntry[Any] | None, CertificateSettings | None]:
        """A pending config that only serves or stops a managed pair is ours too.

        So is one saved from the Network page or another tool: the change is
        the same, only without URLs to set.
        """
        pending = store.pending
        if pending is None:
            return None, None, None
        entries = [only] if only else self.hass.config_entries.async_entries(DOMAIN)
        for entry in entries:
            if (settings := settings_of(entry)) is None:
                continue
            action = await self.hass.async_add_executor_job(
                pending_action, store, settings
            )
            if action is not None:
                trial = Trial(
                    pending[HTTP_CONFIG_CREATED_AT], entry.entry_id, action, {}
                )
                return trial, entry, settings
        return None, None, None

    async def _async_set_trial(self, trial: Trial | None) -> None:
        if trial == self._trial:
            return
        self._trial = trial
        await self._async_save()

    async def _async_kept(self, trial: Trial) -> None:
        """Apply what the user chose for the URLs; nothing of ours stays up."""
        hass = self.hass
        changes: dict[str, str | None] = {}
        for key, url in trial.urls.items():
            if getattr(hass.config, key) == url.before:  # nobody changed it since
                changes[key] = url.after
        if changes:
            await hass.config.async_update(**changes)
        if trial.action is HttpsAction.SERVE:
            for key in changes:
                url = trial.urls[key]
                # Replacing a URL of ours: stopping goes back to the user's.
                if (ours := self._set_urls.get(key)) and ours.after == url.before:
                    url = SetUrl(ours.before, url.after)
                self._set_urls[key] = url
        else:
            self._set_urls = {}
        ssl_served = trial.action is HttpsAction.SERVE
        if not ssl_served or hass.config.external_url or hass.config.internal_url:
            ir.async_delete_issue(hass, HTTP_DOMAIN, CORE_SSL_ISSUE)
        async_delete_https_issues(hass, trial.entry_id, trial=True, reverted=True)
        LOGGER.info(
            "The HTTP change (%s HTTPS) was kept%s",
            trial.action,
            f"; set {', '.join(sorted(changes))}" if changes else "",
        )
        self._trial = None
        await self._async_save()

    def _raise_reverted(self, store: HTTPConfigStore, entry_id: str) -> None:
        pending = store.pending
        assert pending is not None
        error = pending[HTTP_CONFIG_ERROR]
        async_raise_https_issue(
            self.hass,
            https_reverted_issue_id(entry_id),
            HTTPS_REVERTED
            if error == ERROR_NOT_PROMOTED
            else f"{HTTPS_REVERTED}_other",
            {"error": pending[HTTP_CONFIG_ERROR_MESSAGE] or str(error)},
            entry_id,
            pending[HTTP_CONFIG_CREATED_AT],
        )

    async def _async_raise_trial(
        self,
        store: HTTPConfigStore,
        trial: Trial,
        entry: ConfigEntry[Any],
        settings: CertificateSettings,
    ) -> None:
        pending = store.pending
        assert pending is not None
        confirmed = await self._async_confirmed(trial, settings)
        placeholders = {
            "deadline": local_time(store.revert_deadline),
            "https_url": https_url(entry, int(pending[SERVER_PORT])),
        }
        if not confirmed:
            key = f"{HTTPS_TRIAL}_unconfirmed"
        elif trial.action is HttpsAction.SERVE:
            key = HTTPS_TRIAL
        else:
            key = f"{HTTPS_TRIAL}_stop"
        async_raise_https_issue(
            self.hass,
            https_trial_issue_id(trial.entry_id),
            key,
            placeholders,
            trial.entry_id,
            trial.created_at,
            fixable=confirmed,
        )

    async def _async_confirmed(
        self, trial: Trial, settings: CertificateSettings
    ) -> bool:
        """The running server does what the trial asked for (one handshake per server)."""
        server = getattr(self.hass, "http", None)
        if (
            self._confirmed is not None
            and self._confirmed[0] == trial.created_at
            and self._confirmed[1] is server
        ):
            return self._confirmed[2]
        files = served_files(self.hass)
        if trial.action is HttpsAction.STOP or files is None:
            confirmed = trial.action is HttpsAction.STOP and files is None
        else:
            try:
                wanted = await async_managed_serial(self.hass, settings)
            except HttpsRefusedError as err:
                LOGGER.warning("The served certificate cannot be confirmed: %s", err)
                wanted = None
            presented = await async_presented_serial(files.host, files.port)
            if wanted is not None and presented != wanted:
                LOGGER.warning(
                    "The server presents serial %s, not %s", presented, wanted
                )
            confirmed = wanted is not None and presented == wanted
        self._confirmed = (trial.created_at, server, confirmed)
        return confirmed

    # ------------------------------------------------------------- polling

    @callback
    def _poll(self, on: bool) -> None:
        """Read the store every few seconds while a trial runs (core's dialog keeps it too)."""
        if on and self._unsub_poll is None:
            self._unsub_poll = async_track_time_interval(
                self.hass,
                self._async_tick,
                POLL_INTERVAL,
                name=f"{DOMAIN} http trial",
                cancel_on_shutdown=True,
            )
        elif not on and self._unsub_poll is not None:
            self._unsub_poll()
            self._unsub_poll = None

    async def _async_tick(self, _now: datetime) -> None:
        store = await async_get_and_load_store(self.hass)
        if _fingerprint(store) != self._fingerprint:
            await self.async_resolve()

    @callback
    def async_stop(self) -> None:
        """Stop polling."""
        self._poll(False)

    async def async_forget(self) -> None:
        """Drop the record (the trial and the URLs set), and stop polling."""
        async with self._lock:
            self._poll(False)
            self._trial = None
            self._set_urls = {}
            self._loaded = True
            await self._store.async_remove()

    # ---------------------------------------------------------- the actions

    async def async_keep(self, created: str | None) -> None:
        """Promote the pending config an issue is about; HttpsRefusedError otherwise."""
        store = await async_get_and_load_store(self.hass)
        promoted = False
        if created_at(store.pending) == created and store.pending is not None:
            try:
                await store.async_promote_pending()
                promoted = True
            except HomeAssistantError:  # it failed its trial meanwhile
                pass
        # Whatever happened meanwhile (core's dialog kept it?) is followed now.
        await self.async_resolve()
        if not promoted:
            raise HttpsRefusedError("https_nothing_to_promote")

    async def async_forget_reverted(self, created: str | None) -> None:
        """Clear the failed pending config an issue explained (only that one)."""
        store = await async_get_and_load_store(self.hass)
        pending = store.pending
        failed = pending is not None and pending[HTTP_CONFIG_ERROR] is not None
        if failed and created_at(pending) == created:
            await store.async_set_pending(None)
        await self.async_resolve()


def _fingerprint(store: HTTPConfigStore) -> tuple[Any, ...]:
    pending = store.pending
    return (
        created_at(store.stable),
        created_at(pending),
        None if pending is None else pending[HTTP_CONFIG_ERROR],
        store.active_config_type,
    )


def local_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return f"{dt_util.as_local(moment):%H:%M}"


async def async_forget_trial(hass: HomeAssistant) -> None:
    """The last entry is gone: nothing follows a change any more; its record goes."""
    await get_https_trial(hass).async_forget()


def get_https_trial(hass: HomeAssistant) -> HttpsTrial:
    """The installation's trial follower."""
    if (trial := hass.data.get(DATA_HTTPS_TRIAL)) is None:
        trial = hass.data[DATA_HTTPS_TRIAL] = HttpsTrial(hass)
    return trial


async def async_check_at_start(hass: HomeAssistant) -> None:
    """What a start-up of the integration checks, whatever its entries' state."""
    await get_https_trial(hass).async_resolve()
    await async_check_unmanaged(hass)


@callback
def async_setup_https_trial(hass: HomeAssistant) -> None:
    """From the integration's own start-up: check once Home Assistant has started."""

    async def _at_started(_hass: HomeAssistant) -> None:
        await async_check_at_start(hass)

    async_at_started(hass, _at_started)
