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

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util

from . import remote_access
from .const import LOGGER
from .issues import async_raise_port_forward_left
from .port_forward_state import (
    Forward,
    ForwardState,
    forward_store,
    mapping_description,
    same_router,
)
from .protocol.port_forward import (
    MAX_LEASE,
    Ensured,
    ForwardError,
    Refusal,
    open_forwarder,
    renewal_delay,
)
from .protocol.upnp import GatewayFacts
from .router_keeping import (
    CHANGE_TIMEOUT,
    KEEP_INTERVAL,
    RETRY_INTERVAL,
    Checked,
    RouterKeeper,
)

if TYPE_CHECKING:
    from .models import SecureRemoteAccessConfigEntry


async def async_remove_forward(
    session: aiohttp.ClientSession,
    forward: Forward,
    *,
    replaced_by: Forward | None = None,
) -> None:
    """Delete ``forward`` from its router if it is still ours (raises `ForwardError`).

    Where ``replaced_by`` (the wanted forward) holds the same external port,
    only a mapping on ``forward``'s own internal port is deleted, never the
    forward that replaced it.
    """
    same_port = replaced_by is not None and (
        replaced_by.external_port == forward.external_port
        and same_router(replaced_by.location, forward.location)
    )
    try:
        async with open_forwarder(
            session, forward.location, timeout_seconds=CHANGE_TIMEOUT
        ) as forwarder:
            removed = await forwarder.remove(
                forward.external_port,
                internal_client=forward.internal_client,
                description=forward.description,
                internal_port=forward.internal_port if same_port else None,
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


class PortForwardKeeper(RouterKeeper[ForwardState]):
    """Adds, keeps and removes the entry's HTTPS forward; its state in a Store."""

    task_name = "keep the port forward"

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        checked: Checked,
    ) -> None:
        """``checked`` runs the remote-access check again after each change."""
        super().__init__(
            hass, entry, checked, forward_store(hass, entry.entry_id), ForwardState()
        )
        # When our own clock says the lease granted at the last add is half
        # gone (some routers list the granted lease, not what is left).
        self._renew_at: datetime | None = None

    @property
    def external_port(self) -> int | None:
        """The external port of our forward while the router lists it."""
        wanted = self.state.wanted
        return wanted.external_port if wanted and self.state.confirmed else None

    @property
    def description(self) -> str:
        """Our mapping's description."""
        return mapping_description(self.entry.entry_id)

    @callback
    def async_start(self) -> None:
        """Look at the router once Home Assistant has started, then on schedule."""
        self._start(look=bool(self.state.wanted or self.state.removals))

    async def async_forward(
        self, location: str, internal_client: str, internal_port: int, port: int
    ) -> None:
        """Forward external ``port`` to ``internal_client:internal_port``, confirmed.

        The intent is stored first. A refusal leaves nothing behind; an
        outcome that is unknown (the router vanished mid-change) becomes a
        pending removal. Raises `ForwardError`.
        """
        try:
            async with self._lock:
                await self._async_forward(
                    Forward(
                        location, port, internal_port, internal_client, self.description
                    )
                )
        except ForwardError:
            self._check_in_background()
            raise
        await self._checked()

    async def _async_forward(self, forward: Forward) -> None:
        before = self.state
        earlier = before.wanted if before.wanted != forward else None
        kept = tuple(f for f in before.removals if f != forward)
        replaced = (*kept, earlier) if earlier else kept
        # The intent first: a restart from here on finishes it.
        await self._async_save(ForwardState(forward, replaced))
        # A refused change leaves the earlier forward as it was, and so does
        # one that asked again for the very forward kept (the no_port_forward
        # fix after a router forgot it): still kept, asked for again later.
        restored = before if before.wanted is not None else ForwardState()
        if before.wanted == forward:  # not on the router now: looked at soon
            restored = replace(before, confirmed=False)
        session = async_get_clientsession(self.hass)
        try:
            async with open_forwarder(
                session, forward.location, timeout_seconds=CHANGE_TIMEOUT
            ) as forwarder:
                added = await forwarder.add(forward.request())
        except ForwardError as err:
            if err.code is None:  # no UPnP refusal: it may be there, remove it
                removals = kept if restored.wanted == forward else (*kept, forward)
                await self._async_save(replace(restored, removals=removals))
                self._schedule(RETRY_INTERVAL)
            else:  # refused: nothing was added, the earlier forward stays
                await self._async_save(replace(restored, removals=kept))
                if restored.wanted == forward:
                    self._schedule(RETRY_INTERVAL)
            raise
        self._granted(added.lease_seconds)
        await self._async_save(
            ForwardState(forward, replaced, confirmed=True, established=True)
        )
        LOGGER.info(
            "Forwarded external port %s on the router to %s:%s (%s)",
            forward.external_port,
            forward.internal_client,
            forward.internal_port,
            forward.description,
        )
        # Renew within the lease the router granted (it may cut the one asked).
        due = _delay(added.lease_seconds)
        self._schedule(min(due, RETRY_INTERVAL) if replaced else due)

    def _gateway(self) -> GatewayFacts | None:
        """The router as the latest remote-access check found it."""
        runtime = getattr(self.entry, "runtime_data", None)
        result = runtime.remote_access.data if runtime is not None else None
        return result.facts.gateway if result is not None else None

    async def _async_follow_host(self, wanted: Forward, served_port: int) -> Forward:
        """Point our forward at this host's address and HTTPS port of today.

        A new DHCP lease (or a proxy on another port) would leave the
        forward pointing at another device: the old one is removed first
        (the router refuses a second client on the same external port).
        """
        gateway = self._gateway()
        local = (
            gateway.local_address
            if gateway is not None and same_router(gateway.location, wanted.location)
            else None
        )
        target = replace(
            wanted,
            internal_client=local or wanted.internal_client,
            internal_port=served_port or wanted.internal_port,
        )
        if target == wanted:
            return wanted
        LOGGER.info(
            "Home Assistant is now at %s:%s: the port forward of external port %s "
            "moves there",
            target.internal_client,
            target.internal_port,
            target.external_port,
        )
        await self._async_save(
            replace(
                self.state,
                wanted=target,
                removals=(*self.state.removals, wanted),
                confirmed=False,
            )
        )
        await self._async_removals()
        return target

    async def _async_follow_router(self) -> None:
        """Follow our router to the description URL the latest check found.

        A rebooted router may serve UPnP on another port (miniupnpd picks one
        at each start unless configured): same address, new location.
        """
        if (gateway := self._gateway()) is None:
            return
        location = gateway.location

        def followed(forward: Forward) -> Forward:
            if forward.location != location and same_router(forward.location, location):
                return replace(forward, location=location)
            return forward

        state = self.state
        moved = replace(
            state,
            wanted=followed(state.wanted) if state.wanted else None,
            removals=tuple(followed(forward) for forward in state.removals),
        )
        if moved != state:
            LOGGER.debug("The router's UPnP moved to %s", location)
            await self._async_save(moved)

    async def async_unforward(self) -> ForwardError | None:
        """Remove our forward; a router that refuses or is away is asked again later.

        Returns the refusal (the forward stays a pending removal), None when done.
        """
        async with self._lock:
            await self._async_follow_router()
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
            if forward == self.state.wanted:  # wanted again before it was removed
                continue
            try:
                await async_remove_forward(
                    session, forward, replaced_by=self.state.wanted
                )
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
            await self._async_follow_router()
            await self._async_removals()
            wanted = self.state.wanted
            if wanted is None:
                return
            served, settled = await self._async_served(wanted.internal_port)
            if served is not None:
                wanted = await self._async_follow_host(wanted, served.port or 0)
                await self._async_ensure(wanted)
                return
            if not settled:
                return
        LOGGER.warning(
            "Neither Home Assistant nor its proxy serves the managed certificate "
            "any more: the port forward of external port %s is removed",
            wanted.external_port,
        )
        await self.async_unforward()

    def _granted(self, lease_seconds: int) -> None:
        """The router granted ``lease_seconds`` just now: renew halfway."""
        delay = renewal_delay(lease_seconds)
        self._renew_at = (
            None if delay is None else dt_util.utcnow() + timedelta(seconds=delay)
        )

    async def _async_ensure(self, wanted: Forward) -> None:
        session = async_get_clientsession(self.hass)
        was_confirmed = self.state.confirmed
        try:
            async with open_forwarder(
                session, wanted.location, timeout_seconds=CHANGE_TIMEOUT
            ) as forwarder:
                due = self._renew_at is None or dt_util.utcnow() >= self._renew_at
                kept = await forwarder.ensure(
                    wanted.request(), renew_below=MAX_LEASE + 1 if due else None
                )
        except ForwardError as err:
            await self._async_not_kept(
                f"the port forward of external port {wanted.external_port}",
                err,
                was_confirmed=was_confirmed,
            )
            return
        if kept.action is not Ensured.PRESENT:
            self._granted(kept.entry.lease_seconds)
        if kept.action is Ensured.ADDED:
            LOGGER.info(
                "The router had forgotten the port forward of external port %s: "
                "added again",
                wanted.external_port,
            )
        await self._async_save(
            replace(self.state, confirmed=True, refusal=None, established=True)
        )
        next_look = _delay(kept.entry.lease_seconds)
        if self.state.removals:  # a removal the router did not confirm: sooner
            next_look = min(next_look, RETRY_INTERVAL)
        self._schedule(next_look)
        if not was_confirmed or kept.action is Ensured.ADDED:
            await self._checked()


def _delay(lease_seconds: int) -> timedelta:
    """When to look again: halfway through the lease, at least every hour."""
    half = renewal_delay(lease_seconds)
    if half is None:
        return KEEP_INTERVAL
    return min(KEEP_INTERVAL, timedelta(seconds=half))


async def async_remove_forward_found(hass: HomeAssistant, forward: Forward) -> None:
    """Remove ``forward`` from its router, wherever it serves UPnP today.

    Without an entry no check follows the router: one that does not answer
    at the stored address is looked for among the gateways SSDP has seen
    (same address, new port after a reboot). Raises `ForwardError`.
    """
    session = async_get_clientsession(hass)
    try:
        await async_remove_forward(session, forward)
    except ForwardError as err:
        if err.reason not in (Refusal.UNREACHABLE, Refusal.TIMEOUT):
            raise
        found = await remote_access.async_discover_gateways(hass) or []
        moved = [
            location
            for location in found
            if location != forward.location and same_router(location, forward.location)
        ]
        if not moved:
            raise
        await async_remove_forward(session, replace(forward, location=moved[0]))


async def async_remove_forwards(hass: HomeAssistant, entry_id: str) -> None:
    """The entry is deleted: remove its forwards; a Repairs issue names what stays."""
    store = forward_store(hass, entry_id)
    state = ForwardState.from_dict(await store.async_load())
    forwards = (*((state.wanted,) if state.wanted else ()), *state.removals)
    for forward in forwards:
        try:
            await async_remove_forward_found(hass, forward)
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
