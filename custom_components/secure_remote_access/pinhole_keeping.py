"""PinholeKeeper: the one owner of an entry's IPv6 pinhole on the router.

IPv6 has no address translation: the pinhole lets the internet reach this
host's own address (the one DuckDNS holds) on the port that serves the
managed certificate. Routers open pinholes only for the address that asks,
so every exchange goes out from the pinhole's address. The keeper's `Store`
is the one truth: the intent is written before AddPinhole, a close is
remembered before DeletePinhole. Our pinholes carry a lease of
`PINHOLE_LEASE`, renewed every `KEEP_INTERVAL`: one the keeper cannot close
(router away, address gone) closes by itself when the lease ends. The
pinhole follows a new address from the provider (a new prefix) and the
router's UPnP after a reboot; it is closed when the option is turned off,
the entry is removed or the managed certificate is no longer served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from homeassistant.core import HomeAssistant, callback
from homeassistant.util import dt as dt_util

from . import remote_access
from .const import DOMAIN, LOGGER
from .pinhole_state import Closing, Pinhole, PinholeState, pinhole_store
from .protocol.ipv6 import is_own_address
from .protocol.pinhole import PINHOLE_LEASE, Pinholes, open_pinholes
from .protocol.port_forward import ForwardError, Refusal
from .router_keeping import (
    CHANGE_TIMEOUT,
    KEEP_INTERVAL,
    RETRY_INTERVAL,
    Checked,
    RouterKeeper,
)

if TYPE_CHECKING:
    from .models import SecureRemoteAccessConfigEntry


@asynccontextmanager
async def _firewall_of(pinhole: Pinhole) -> AsyncIterator[Pinholes]:
    """The router's pinholes, asked from ``pinhole``'s own address (routers
    open pinholes only for the address that asks); raises `ForwardError`."""
    connector = aiohttp.TCPConnector(local_addr=(pinhole.internal_client, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        open_pinholes(
            session, pinhole.location, timeout_seconds=CHANGE_TIMEOUT
        ) as pinholes,
    ):
        yield pinholes


async def async_open_pinhole(pinhole: Pinhole) -> None:
    """Open ``pinhole`` or renew its lease (raises `ForwardError`)."""
    if not is_own_address(pinhole.internal_client):
        raise ForwardError(
            Refusal.NOT_AUTHORIZED,
            f"{pinhole.internal_client} is no address of this host",
        )
    async with _firewall_of(pinhole) as pinholes:
        await pinholes.open(pinhole.request())


async def async_close_pinhole(pinhole: Pinhole) -> None:
    """Close ``pinhole`` (raises `ForwardError`; the router may still have it).

    An address this host no longer holds cannot ask the router: its
    pinhole is left to its lease.
    """
    if not is_own_address(pinhole.internal_client):
        LOGGER.debug("%s is gone: its pinhole ends with its lease", pinhole)
        return
    async with _firewall_of(pinhole) as pinholes:
        await pinholes.close(pinhole.request())
    LOGGER.info(
        "Closed the IPv6 pinhole to [%s]:%s on the router",
        pinhole.internal_client,
        pinhole.port,
    )


def kept_by_another(
    hass: HomeAssistant, entry_id: str, pinhole: Pinhole
) -> SecureRemoteAccessConfigEntry | None:
    """The other loaded entry that keeps the same pinhole (this host's
    address, the port that serves), if any: one pinhole on the router for
    both, never closed under the other (a new DuckDNS name replacing an
    old one)."""
    entries: list[SecureRemoteAccessConfigEntry] = (
        hass.config_entries.async_loaded_entries(DOMAIN)
    )
    for entry in entries:
        if entry.entry_id == entry_id:
            continue
        wanted = entry.runtime_data.pinhole.state.wanted
        if wanted is not None and wanted.request() == pinhole.request():
            return entry
    return None


class PinholeKeeper(RouterKeeper[PinholeState]):
    """Opens, keeps and closes the entry's IPv6 pinhole; its state in a Store."""

    task_name = "keep the IPv6 pinhole"

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        checked: Checked,
    ) -> None:
        """``checked`` runs the remote-access check again after each change."""
        super().__init__(
            hass, entry, checked, pinhole_store(hass, entry.entry_id), PinholeState()
        )

    def open_port(self, address: str | None) -> int | None:
        """The port our confirmed pinhole opens for ``address`` (None: none)."""
        wanted = self.state.wanted
        if wanted is None or not self.state.confirmed or address is None:
            return None
        return wanted.port if wanted.internal_client == address else None

    @callback
    def async_start(self) -> None:
        """Keep once Home Assistant has started, then on schedule and on a new address."""
        entry = self.entry
        dns = entry.runtime_data.dns
        recorded = dns.data.ipv6 if dns.data else None

        @callback
        def _dns_updated() -> None:
            nonlocal recorded
            now = dns.data.ipv6 if dns.data else None
            if now != recorded and self.state.wanted is not None:
                self._keep_in_background()
            recorded = now

        entry.async_on_unload(dns.async_add_listener(_dns_updated))
        self._start(look=bool(self.state.wanted or self.state.closing))

    async def async_open(self, pinhole: Pinhole) -> None:
        """Open ``pinhole``, confirmed by the router (raises `ForwardError`).

        A refusal leaves nothing behind; an unknown outcome (the router
        vanished mid-change) becomes a pending close.
        """
        try:
            async with self._lock:
                await self._async_open(pinhole)
        except ForwardError:
            self._check_in_background()
            raise
        await self._checked()

    async def _async_open(self, pinhole: Pinhole) -> None:
        before = self.state
        earlier = before.wanted
        kept = self._closing_without(pinhole)
        closing = kept
        if earlier is not None and earlier != pinhole:
            closing = (*kept, _closing(earlier))
        # The intent first: a restart from here on finishes it.
        await self._async_save(PinholeState(pinhole, closing))
        try:
            await async_open_pinhole(pinhole)
        except ForwardError as err:
            if earlier == pinhole:
                before = PinholeState(None, kept)
            if err.code is None:
                # It may be there: closed when the router answers.
                before = replace(before, closing=(*kept, _closing(pinhole)))
                self._schedule(RETRY_INTERVAL)
            else:  # refused: nothing was opened, the earlier pinhole stays
                before = replace(before, closing=kept)
            await self._async_save(before)
            raise
        await self._async_save(
            PinholeState(pinhole, closing, confirmed=True, established=True)
        )
        LOGGER.info(
            "Opened an IPv6 pinhole to [%s]:%s on the router",
            pinhole.internal_client,
            pinhole.port,
        )
        await self._async_closes()
        self._schedule(RETRY_INTERVAL if self.state.closing else KEEP_INTERVAL)

    async def async_close(self) -> ForwardError | None:
        """Close our pinhole; a router that refuses or is away is asked again.

        Returns the refusal (the close stays pending until the lease ends
        it), None when done.
        """
        async with self._lock:
            wanted = self.state.wanted
            closing = self.state.closing
            if wanted is not None:
                closing = (*self._closing_without(wanted), _closing(wanted))
            await self._async_save(PinholeState(None, closing))
            refusal = await self._async_closes()
        await self._checked()
        return refusal

    def _closing_without(self, pinhole: Pinhole) -> tuple[Closing, ...]:
        return tuple(c for c in self.state.closing if c.pinhole != pinhole)

    async def _async_closes(self) -> ForwardError | None:
        """Try every pending close; keep those the router did not confirm."""
        now = dt_util.utcnow()
        left: list[Closing] = []
        first: ForwardError | None = None
        wanted = self.state.wanted
        for closing in self.state.closing:
            if closing.until <= now:
                continue  # the router's lease has closed it
            if wanted is not None and closing.pinhole.request() == wanted.request():
                # Wanted again (asked at another URL of the router): the
                # router knows one pinhole by address and port, ours to keep.
                continue
            if kept_by_another(self.hass, self.entry.entry_id, closing.pinhole):
                continue  # the other entry's now
            try:
                await self._async_close_found(closing.pinhole)
            except ForwardError as err:
                if err.reason is Refusal.NO_SUCH_PINHOLE:
                    continue
                LOGGER.debug("Closing %s: %s", closing.pinhole, err)
                left.append(closing)
                first = first or err
        if tuple(left) != self.state.closing:
            await self._async_save(replace(self.state, closing=tuple(left)))
        if left:
            self._schedule(RETRY_INTERVAL)
        return first

    def _ipv6_location(self) -> str | None:
        """The router's UPnP over IPv6 as the latest check found it."""
        result = self.entry.runtime_data.remote_access.data
        gateway = result.facts.gateway if result is not None else None
        return gateway.ipv6_location if gateway is not None else None

    async def _async_close_found(self, pinhole: Pinhole) -> None:
        """Close ``pinhole`` where the router answers today (raises `ForwardError`).

        A router whose UPnP restarted on another port keeps its firewall,
        our pinhole with it: one that does not answer at the stored
        location is asked where the latest check found it.
        """
        try:
            await async_close_pinhole(pinhole)
        except ForwardError as err:
            location = self._ipv6_location()
            if (
                err.reason not in (Refusal.UNREACHABLE, Refusal.TIMEOUT)
                or location is None
                or location == pinhole.location
            ):
                raise
            await async_close_pinhole(replace(pinhole, location=location))

    def _target(self, wanted: Pinhole, served_port: int) -> Pinhole:
        """The pinhole today: the address DuckDNS holds (when it is this host's),
        the router's UPnP as the latest check found it, the port served."""
        dns = self.entry.runtime_data.dns.data
        recorded = dns.ipv6 if dns else None
        location = self._ipv6_location()
        return replace(
            wanted,
            location=location or wanted.location,
            internal_client=recorded
            if recorded and is_own_address(recorded)
            else wanted.internal_client,
            port=served_port or wanted.port,
        )

    async def async_keep(self) -> None:
        """Finish pending closes, then renew the wanted pinhole (or close it)."""
        async with self._lock:
            await self._async_closes()
            wanted = self.state.wanted
            if wanted is None:
                return
            served, settled = await self._async_served(wanted.port)
            if served is not None:
                await self._async_ensure(wanted, self._target(wanted, served.port or 0))
                return
            if not settled:
                return
        LOGGER.warning(
            "Neither Home Assistant nor its proxy serves the managed certificate "
            "any more: the IPv6 pinhole to port %s is closed",
            wanted.port,
        )
        await self.async_close()

    async def _async_ensure(self, wanted: Pinhole, target: Pinhole) -> None:
        was_confirmed = self.state.confirmed
        if target != wanted:
            LOGGER.info(
                "Home Assistant is now at [%s]:%s: the IPv6 pinhole moves there",
                target.internal_client,
                target.port,
            )
            closing = self._closing_without(wanted)
            if target.request() != wanted.request():  # not the router's UPnP alone
                closing = (*closing, _closing(wanted))
            await self._async_save(
                replace(self.state, wanted=target, closing=closing, confirmed=False)
            )
            await self._async_closes()
        try:
            await async_open_pinhole(target)
        except ForwardError as err:
            await self._async_not_kept(
                f"the IPv6 pinhole to port {target.port}",
                err,
                was_confirmed=was_confirmed,
            )
            return
        await self._async_save(
            replace(self.state, confirmed=True, refusal=None, established=True)
        )
        self._schedule(RETRY_INTERVAL if self.state.closing else KEEP_INTERVAL)
        if not was_confirmed or target != wanted:
            await self._checked()


def _closing(pinhole: Pinhole) -> Closing:
    """Close ``pinhole``; its lease (renewed at most now) ends it anyway."""
    return Closing(pinhole, dt_util.utcnow() + timedelta(seconds=PINHOLE_LEASE))


async def async_close_pinhole_found(hass: HomeAssistant, pinhole: Pinhole) -> None:
    """Close ``pinhole`` wherever its router serves UPnP today (raises `ForwardError`).

    Without an entry no check follows the router: one that does not answer
    at the stored location is looked for among the IPv6 gateways SSDP has
    seen at the same address (a new port after its UPnP restarted).
    """
    try:
        await async_close_pinhole(pinhole)
    except ForwardError as err:
        if err.reason not in (Refusal.UNREACHABLE, Refusal.TIMEOUT):
            raise
        host = urlsplit(pinhole.location).hostname
        moved = [
            location
            for location in await remote_access.async_discover_ipv6_gateways(hass, None)
            if location != pinhole.location and urlsplit(location).hostname == host
        ]
        if not moved:
            raise
        await async_close_pinhole(replace(pinhole, location=moved[0]))


async def async_remove_pinholes(hass: HomeAssistant, entry_id: str) -> None:
    """The entry is deleted: close its pinholes (the lease ends what stays)."""
    store = pinhole_store(hass, entry_id)
    state = PinholeState.from_dict(await store.async_load())
    pinholes = [
        *((state.wanted,) if state.wanted else ()),
        *(c.pinhole for c in state.closing if c.until > dt_util.utcnow()),
    ]
    for pinhole in pinholes:
        if kept_by_another(hass, entry_id, pinhole):
            continue
        try:
            await async_close_pinhole_found(hass, pinhole)
        except ForwardError as err:
            LOGGER.warning(
                "The IPv6 pinhole to [%s]:%s could not be closed (%s): the router "
                "closes it within %d hours, when its lease ends",
                pinhole.internal_client,
                pinhole.port,
                err.reason,
                PINHOLE_LEASE // 3600,
            )
    await store.async_remove()
