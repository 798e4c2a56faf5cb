"""The checklist runner: one per Home Assistant instance, shared by all entries.

The checks are about the installation, not about an entry: the first loaded
entry creates the runner and the last one tears it down. It runs once Home
Assistant has started, every six hours, and (debounced) when users, the core
configuration or the set of entries change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from homeassistant.auth import EVENT_USER_ADDED, EVENT_USER_REMOVED, EVENT_USER_UPDATED
from homeassistant.const import EVENT_CORE_CONFIG_UPDATE, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.start import async_at_started
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from custom_components.secure_remote_access.const import (
    CONF_DISABLED_CHECKS,
    DOMAIN,
    LOGGER,
)
from custom_components.secure_remote_access.issues import async_sync_checklist_issues

from .checks import CHECK_IDS, evaluate
from .models import ChecklistResult
from .snapshot import async_collect_snapshot

if TYPE_CHECKING:
    from custom_components.secure_remote_access.models import (
        SecureRemoteAccessConfigEntry,
    )

DATA_CHECKLIST: Final[HassKey[ChecklistRunner]] = HassKey(f"{DOMAIN}_checklist")
RUN_INTERVAL: Final = timedelta(hours=6)
DEBOUNCE_COOLDOWN: Final = 10.0
CHANGE_EVENTS: Final = (
    EVENT_USER_ADDED,
    EVENT_USER_REMOVED,
    EVENT_USER_UPDATED,
    EVENT_CORE_CONFIG_UPDATE,
)


class ChecklistRunner:
    """Collects a snapshot, runs the checks and keeps the Repairs issues in sync."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create an idle runner; ``async_add_entry`` starts it."""
        self.hass = hass
        self.result: ChecklistResult | None = None
        self.last_run: datetime | None = None
        self._entries: dict[str, SecureRemoteAccessConfigEntry] = {}
        self._key_files: list[str] = []
        self._listeners: list[CALLBACK_TYPE] = []
        self._unsubs: list[CALLBACK_TYPE] = []
        self._unsub_stop: CALLBACK_TYPE | None = None
        self._lock = asyncio.Lock()
        self._debouncer: Debouncer[Coroutine[Any, Any, ChecklistResult]] = Debouncer(
            hass,
            LOGGER,
            cooldown=DEBOUNCE_COOLDOWN,
            immediate=True,
            function=self.async_run,
        )
        self._started = False

    @property
    def disabled_checks(self) -> frozenset[str]:
        """The checks any loaded entry turned off."""
        return frozenset(
            check_id
            for entry in self._entries.values()
            for check_id in entry.options.get(CONF_DISABLED_CHECKS, [])
            if check_id in CHECK_IDS
        )

    @callback
    def async_add_entry(self, entry: SecureRemoteAccessConfigEntry) -> None:
        """Count a loaded entry in; the first one starts the schedule."""
        self._entries[entry.entry_id] = entry
        if self._started:
            self.async_request_run()
            return
        self._started = True
        self._unsubs = [
            async_at_started(self.hass, self._async_at_started),
            async_track_time_interval(
                self.hass,
                self._async_interval,
                RUN_INTERVAL,
                name=f"{DOMAIN} security checklist",
                cancel_on_shutdown=True,
            ),
            *(
                self.hass.bus.async_listen(event_type, self._async_on_change)
                for event_type in CHANGE_EVENTS
            ),
        ]
        self._unsub_stop = self.hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_STOP, self._async_on_stop
        )

    @callback
    def async_remove_entry(self, entry: SecureRemoteAccessConfigEntry) -> None:
        """Count an unloaded entry out; the last one stops the runner."""
        self._entries.pop(entry.entry_id, None)
        if self._entries:
            self.async_request_run()
        else:
            self.async_shutdown()

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call ``update`` after every run; return the function that stops it."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def async_add_key_file(self, path: str) -> CALLBACK_TYPE:
        """Have the permission check cover a private key file we manage."""
        self._key_files.append(path)
        self.async_request_run()
        return lambda: self._key_files.remove(path)

    @callback
    def async_request_run(self) -> None:
        """Run soon; requests within the cooldown collapse into one run."""
        self._debouncer.async_schedule_call()

    async def async_run(self) -> ChecklistResult:
        """Run every check now, sync the issues and notify the listeners."""
        async with self._lock:
            snapshot = await async_collect_snapshot(self.hass, self._key_files)
            result = evaluate(snapshot, self.disabled_checks)
            self.result = result
            self.last_run = dt_util.utcnow()
            async_sync_checklist_issues(self.hass, result)
        LOGGER.debug(
            "Security checklist: %d failing (%s), %d passed",
            len(result.findings),
            ", ".join(result.failing_ids),
            len(result.passed),
        )
        for update in list(self._listeners):
            update()
        return result

    @callback
    def async_shutdown(self) -> None:
        """Stop the schedule and the listeners."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs = []
        if self._unsub_stop is not None:
            self._unsub_stop()
            self._unsub_stop = None
        self._debouncer.async_shutdown()
        if self.hass.data.get(DATA_CHECKLIST) is self:
            del self.hass.data[DATA_CHECKLIST]

    @callback
    def _async_at_started(self, hass: HomeAssistant) -> None:
        self.async_request_run()

    @callback
    def _async_interval(self, now: datetime) -> None:
        self.async_request_run()

    @callback
    def _async_on_change(self, event: Event) -> None:
        self.async_request_run()

    @callback
    def _async_on_stop(self, event: Event) -> None:
        self._unsub_stop = None
        self.async_shutdown()


@callback
def async_get_runner(hass: HomeAssistant) -> ChecklistRunner:
    """The instance's runner, created on first use."""
    if (runner := hass.data.get(DATA_CHECKLIST)) is None:
        runner = hass.data[DATA_CHECKLIST] = ChecklistRunner(hass)
    return runner
