"""PortForwardKeeper: the one owner of an entry's HTTPS port forward on the router.

The keeper's `Store` is the one truth of what the integration put on (or
asked of) the router: the wanted forward and pending removals. The intent
is written before AddPortMapping, a removal is remembered before
DeletePortMapping: a restart in the middle of either, or a router that is
away, is finished at the next keep (every hour, every five minutes while a
change is pending, and halfway through each lease). Only the mapping with
our description and this host as internal client is ever changed
(`protocol.port_forward`). An entry removed while the router does not answer
leaves a Repairs issue that names the forward.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.storage import Store

from .const import DOMAIN, LOGGER
from .issues import async_raise_port_forward_left
from .protocol.port_forward import (
    DEFAULT_LEASE,
    Ensured,
    ForwardError,
    MappingRequest,
    Owner,
    Refusal,
    open_forwarder,
    renewal_delay,
)
from .proxy import async_who_serves_managed

if TYPE_CHECKING:
    from .models import SecureRemoteAccessConfigEntry

STORAGE_VERSION: Final = 1
DESCRIPTION_PREFIX: Final = "Secure Remote Access"
#: How often a forward is looked at when nothing is due (a rebooted router).
KEEP_INTERVAL: Final = timedelta(hours=1)
#: How soon a change the router did not take is tried again.
RETRY_INTERVAL: Final = timedelta(minutes=5)
#: One change with its read-back (several SOAP exchanges).
CHANGE_TIMEOUT: float = 30.0


def mapping_description(entry_id: str) -> str:
    """The description our mapping carries on the router (names entry and product)."""
    return f"{DESCRIPTION_PREFIX} {entry_id[:8]}"


@dataclass(frozen=True, slots=True)
class Forward:
    """One mapping the integration made (or means to make) on one router."""

    location: str
    external_port: int
    internal_port: int
    internal_client: str
    description: str

    def request(self) -> MappingRequest:
        """What `PortForwarder` adds and keeps."""
        return MappingRequest(
            self.external_port,
            self.internal_port,
            Owner(self.description, self.internal_client),
            DEFAULT_LEASE,
        )

    def as_dict(self) -> dict[str, str | int]:
        """The stored form."""
        return {
            "location": self.location,
            "external_port": self.external_port,
            "internal_port": self.internal_port,
            "internal_client": self.internal_client,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: object) -> Forward | None:
        """The stored form read back; None when it makes no sense."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                str(data["location"]),
                int(data["external_port"]),
                int(data["internal_port"]),
                str(data["internal_client"]),
                str(data["description"]),
            )
        except KeyError, TypeError, ValueError:
            return None


@dataclass(frozen=True, slots=True)
class ForwardState:
    """What is (meant to be) on the router: the wanted forward, pending removals."""

    wanted: Forward | None = None
    removals: tuple[Forward, ...] = ()
    #: The router listed `wanted` at the last look.
    confirmed: bool = False
    #: Why the last look or change failed (a `Refusal` value), None when it did not.
    refusal: str | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "wanted": self.wanted.as_dict() if self.wanted else None,
            "removals": [forward.as_dict() for forward in self.removals],
            "confirmed": self.confirmed,
        }

    @classmethod
    def from_dict(cls, data: object) -> ForwardState:
        """The stored form read back; whatever makes no sense is forgotten."""
        if not isinstance(data, dict):
            return cls()
        stored = data.get("removals")
        removals = tuple(
            forward
            for item in (stored if isinstance(stored, list) else [])
            if (forward := Forward.from_dict(item)) is not None
        )
        return cls(
            Forward.from_dict(data.get("wanted")),
            removals,
            data.get("confirmed") is True,
        )


def _store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.port_forward_{entry_id}")


async def async_remove_forward(
    session: aiohttp.ClientSession, forward: Forward
) -> None:
    """Delete ``forward`` from its router if it is still ours (raises `ForwardError`)."""
    try:
        async with open_forwarder(
            session, forward.location, timeout_seconds=CHANGE_TIMEOUT
        ) as forwarder:
            removed = await forwarder.remove(
                forward.external_port,
                internal_client=forward.internal_client,
                description=forward.description,
            )
    except ForwardError as err:
        if err.reason is not Refusal.NOT_OURS:
            raise
        # Ours is gone: the port now holds another host's or program's forward.
        LOGGER.debug("Not removed, not ours: %s", err.detail)
        return
    if removed is not None:
        LOGGER.info(
            "Removed the port forward of external port %s to %s:%s from the router",
            forward.external_port,
            forward.internal_client,
            forward.internal_port,
        )


class PortForwardKeeper:
    """Adds, keeps and removes the entry's HTTPS forward; its state in a Store."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        checked: Callable[[], Awaitable[object]],
    ) -> None:
        """``checked`` runs the remote-access check again after each change."""
        self.hass = hass
        self.entry = entry
        self._checked = checked
        self._store = _store(hass, entry.entry_id)
        self.state = ForwardState()
        self._unsub_timer: CALLBACK_TYPE | None = None
        # One change or look at a time (a flow and the schedule).
        self._lock = asyncio.Lock()

    @property
    def external_port(self) -> int | None:
        """The external port of our forward while the router lists it."""
        wanted = self.state.wanted
        return wanted.external_port if wanted and self.state.confirmed else None

    @property
    def description(self) -> str:
        """Our mapping's description."""
        return mapping_description(self.entry.entry_id)

    async def async_load(self) -> None:
        """Read what an earlier run put on the router."""
        self.state = ForwardState.from_dict(await self._store.async_load())

    async def _async_save(self, state: ForwardState) -> None:
        self.state = state
        await self._store.async_save(state.as_dict())

    @callback
    def async_start(self) -> None:
        """Look at the router once Home Assistant has started, then on schedule."""
        entry = self.entry
        entry.async_on_unload(self._cancel_timer)
        state = self.state
        if not (state.wanted or state.removals):
            return

        @callback
        def _started(_hass: HomeAssistant) -> None:
            entry.async_create_background_task(
                self.hass, self.async_keep(), "keep the port forward"
            )

        entry.async_on_unload(async_at_started(self.hass, _started))

    @callback
    def _cancel_timer(self) -> None:
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    @callback
    def _schedule(self, delay: timedelta) -> None:
        self._cancel_timer()

        @callback
        def _due(_now: Any) -> None:
            self._unsub_timer = None
            self.entry.async_create_background_task(
                self.hass, self.async_keep(), "keep the port forward"
            )

        self._unsub_timer = async_call_later(self.hass, delay, _due)

    async def async_forward(
        self, location: str, internal_client: str, internal_port: int, port: int
    ) -> None:
        """Forward external ``port`` to ``internal_client:internal_port``, confirmed.

        The intent is stored first. A refusal leaves nothing behind; an
        outcome that is unknown (the router vanished mid-change) becomes a
        pending removal. Raises `ForwardError`.
        """
        async with self._lock:
            await self._async_forward(
                Forward(
                    location, port, internal_port, internal_client, self.description
                )
            )
        await self._checked()

    async def _async_forward(self, forward: Forward) -> None:
        earlier = self.state.wanted if self.state.wanted != forward else None
        kept = tuple(f for f in self.state.removals if f != forward)
        replaced = (*kept, earlier) if earlier else kept
        # The intent first: a restart from here on finishes it.
        await self._async_save(ForwardState(forward, replaced))
        session = async_get_clientsession(self.hass)
        try:
            async with open_forwarder(
                session, forward.location, timeout_seconds=CHANGE_TIMEOUT
            ) as forwarder:
                await forwarder.add(forward.request())
        except ForwardError as err:
            if err.code is None:  # no UPnP refusal: it may be there, remove it
                await self._async_save(ForwardState(earlier, (*kept, forward)))
                self._schedule(RETRY_INTERVAL)
            else:  # refused: nothing was added, the earlier forward stays
                await self._async_save(ForwardState(earlier, kept))
            raise
        await self._async_save(ForwardState(forward, replaced, confirmed=True))
        LOGGER.info(
            "Forwarded external port %s on the router to %s:%s (%s)",
            forward.external_port,
            forward.internal_client,
            forward.internal_port,
            forward.description,
        )
        self._schedule(_delay(DEFAULT_LEASE) if not replaced else RETRY_INTERVAL)

    async def async_unforward(self) -> ForwardError | None:
        """Remove our forward; a router that refuses or is away is asked again later.

        Returns the refusal (the forward stays a pending removal), None when done.
        """
        async with self._lock:
            wanted = self.state.wanted
            if wanted is not None:
                await self._async_save(
                    ForwardState(None, (*self.state.removals, wanted))
                )
            refusal = await self._async_removals()
        await self._checked()
        return refusal

    async def _async_removals(self) -> ForwardError | None:
        """Try every pending removal; keep those the router did not confirm."""
        session = async_get_clientsession(self.hass)
        left: list[Forward] = []
        first: ForwardError | None = None
        for forward in self.state.removals:
            try:
                await async_remove_forward(session, forward)
            except ForwardError as err:
                LOGGER.debug("Removing %s: %s", forward, err)
                left.append(forward)
                first = first or err
        if tuple(left) != self.state.removals:
            await self._async_save(replace(self.state, removals=tuple(left)))
        if left:
            self._schedule(RETRY_INTERVAL)
        return first

    async def async_keep(self) -> None:
        """Finish pending removals, then keep the wanted forward (or drop it)."""
        async with self._lock:
            await self._async_removals()
            wanted = self.state.wanted
            if wanted is None:
                return
            served = await async_who_serves_managed(self.hass, self.entry)
            if served is not None:
                await self._async_ensure(wanted)
                return
        LOGGER.warning(
            "Neither Home Assistant nor its proxy serves the managed certificate "
            "any more: the port forward of external port %s is removed",
            wanted.external_port,
        )
        await self.async_unforward()

    async def _async_ensure(self, wanted: Forward) -> None:
        session = async_get_clientsession(self.hass)
        was_confirmed = self.state.confirmed
        try:
            async with open_forwarder(
                session, wanted.location, timeout_seconds=CHANGE_TIMEOUT
            ) as forwarder:
                kept = await forwarder.ensure(wanted.request())
        except ForwardError as err:
            if self.state.refusal is None:
                LOGGER.warning(
                    "The port forward of external port %s cannot be kept (%s); "
                    "trying again every %d minutes",
                    wanted.external_port,
                    err.reason,
                    RETRY_INTERVAL.seconds // 60,
                )
            LOGGER.debug("Keeping %s: %s", wanted, err.detail)
            await self._async_save(
                replace(self.state, confirmed=False, refusal=err.reason.value)
            )
            self._schedule(RETRY_INTERVAL)
            if was_confirmed:
                await self._checked()
            return
        if kept.action is Ensured.ADDED:
            LOGGER.info(
                "The router had forgotten the port forward of external port %s: "
                "added again",
                wanted.external_port,
            )
        await self._async_save(replace(self.state, confirmed=True, refusal=None))
        self._schedule(_delay(kept.entry.lease_seconds))
        if not was_confirmed or kept.action is Ensured.ADDED:
            await self._checked()


def _delay(lease_seconds: int) -> timedelta:
    """When to look again: halfway through the lease, at least every hour."""
    half = renewal_delay(lease_seconds)
    if half is None:
        return KEEP_INTERVAL
    return min(KEEP_INTERVAL, timedelta(seconds=half))


async def async_remove_forwards(hass: HomeAssistant, entry_id: str) -> None:
    """The entry is deleted: remove its forwards; a Repairs issue names what stays."""
    store = _store(hass, entry_id)
    state = ForwardState.from_dict(await store.async_load())
    forwards = (*((state.wanted,) if state.wanted else ()), *state.removals)
    session = async_get_clientsession(hass)
    for forward in forwards:
        try:
            await async_remove_forward(session, forward)
        except ForwardError as err:
            LOGGER.warning(
                "The port forward of external port %s to %s could not be removed "
                "from the router (%s): remove it on the router",
                forward.external_port,
                forward.internal_client,
                err.reason,
            )
            async_raise_port_forward_left(hass, entry_id, forward.as_dict())
    await store.async_remove()
