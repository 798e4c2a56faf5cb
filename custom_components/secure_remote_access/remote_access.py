"""RemoteAccessCoordinator: the one owner of an entry's remote-access check.

Runs after the DuckDNS addresses change, every six hours and on the
``check_remote_access`` action. Collects the facts (DNS from DuckDNS's own
servers, the router through UPnP IGD, a hairpin probe), judges them with
`protocol.remote_access.judge` and syncs the Repairs issues.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
import ipaddress
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from homeassistant.components import network
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.hassio import is_hassio
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .const import (
    CONF_DNS_SERVER,
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_UPNP_LOCATION,
    DOMAIN,
    LOGGER,
)
from .protocol import upnp
from .protocol.dnsutil import lookup_addresses
from .protocol.duckdns import DEFAULT_UPDATE_URL
from .protocol.ipv6 import is_public_ipv6, is_unique_local_ipv6
from .protocol.remote_access import (
    HTTP_PORT,
    HTTPS_PORT,
    SSH_PORT,
    Facts,
    Hairpin,
    Judgement,
    RemoteAccessState,
    hairpin_probe,
    is_public_ipv4,
    judge,
    mappings_to_host,
    mismatched_names,
    probe_ports,
)
from .remote_access_issues import (
    async_router_issues_raised,
    async_sync_remote_access_issues,
)
from .remote_access_memory import RemoteAccessMemory
from .served import served_files

if TYPE_CHECKING:
    from .coordinator import DnsCoordinator
    from .models import SecureRemoteAccessConfigEntry

REMOTE_ACCESS_INTERVAL: Final = timedelta(hours=6)
#: While a name resolves elsewhere, look again this often (the issue waits 15 min).
MISMATCH_RECHECK: Final = timedelta(minutes=5)
#: SSDP answers arrive seconds after start: a first run that found no gateway
#: is repeated this soon, once.
DISCOVERY_RECHECK: Final = timedelta(minutes=2)
DEFAULT_HA_PORT: Final = 8123
NO_DISCOVERY: Final = "ssdp_not_loaded"
GATEWAY_TIMEOUT: float = upnp.DEFAULT_TIMEOUT

#: Where the hairpin probe connects for a public address (None: to it).
#: Tests play the router's hairpin NAT here.
hairpin_loopback: Callable[[str], str] | None = None


async def _async_ssdp_locations(hass: HomeAssistant) -> list[tuple[str | None, str]]:
    """(UDN, description URL) of every location SSDP has seen for a gateway.

    Home Assistant's SSDP keeps one entry per device: ``ssdp_location`` is
    where it answered last (over IPv4 or IPv6), ``ssdp_all_locations`` all.
    """
    from homeassistant.components import ssdp

    found: set[tuple[str | None, str]] = set()
    for search_target in upnp.IGD_SEARCH_TARGETS:
        for info in await ssdp.async_get_discovery_info_by_st(hass, search_target):
            for location in (info.ssdp_location, *info.ssdp_all_locations):
                if location:
                    found.add((info.ssdp_udn, location))
    return sorted(found, key=lambda item: item[1])


def _is_ipv4_location(location: str) -> bool:
    try:
        return ipaddress.ip_address(urlsplit(location).hostname or "").version == 4
    except ValueError:
        return False


async def async_discover_gateways(hass: HomeAssistant) -> list[str] | None:
    """Description URLs of the gateways Home Assistant's SSDP has seen.

    IPv4 ones first: the check and port forwards work over IPv4 (this
    host's address towards the router is the forward's internal client).
    None when SSDP discovery is not loaded. Sends nothing itself.
    """
    if "ssdp" not in hass.config.components:
        return None
    locations = {location for _udn, location in await _async_ssdp_locations(hass)}
    return sorted(
        locations, key=lambda location: (not _is_ipv4_location(location), location)
    )


async def async_discover_ipv6_gateways(
    hass: HomeAssistant, udn: str | None
) -> list[str]:
    """Description URLs at a global or unique local IPv6 address SSDP has seen
    for device ``udn`` (None: any device; global ones first), among all the
    locations Home Assistant keeps for it.

    Either serves: the request comes from the pinhole's own global address
    wherever it goes. miniupnpd announces the address its LAN had when it
    started: the unique local one on a router (OpenWrt) that booted before
    the provider delegated its prefix.
    """
    if "ssdp" not in hass.config.components:
        return []
    locations: set[tuple[bool, str]] = set()
    for device, location in await _async_ssdp_locations(hass):
        if udn is not None and device not in (udn, None):
            continue
        host = urlsplit(location).hostname or ""
        if is_public_ipv6(host) or is_unique_local_ipv6(host):
            locations.add((not is_public_ipv6(host), location))
    return [location for _local, location in sorted(locations)]


@dataclass(frozen=True, slots=True)
class RemoteAccessResult:
    """One run's facts and their judgement."""

    facts: Facts
    judgement: Judgement
    checked_at: datetime

    @property
    def state(self) -> RemoteAccessState:
        """The sensor's state."""
        return self.judgement.state

    def attributes(self) -> dict[str, Any]:
        """The sensor's attributes."""
        gateway = self.facts.gateway
        return {
            "public_address": self.facts.recorded_ipv4,
            "router_wan_address": gateway.wan_address if gateway else None,
            "mappings": [
                {
                    "external_port": m.external_port,
                    "internal_port": m.internal_port,
                    "protocol": m.protocol,
                }
                for m in mappings_to_host(self.facts)
            ],
            "hairpin": self.facts.hairpin.value,
            "reason": self.judgement.reason,
            "wan_connection": gateway.connection if gateway else None,
            "router": gateway.router_name if gateway else None,
        }

    def as_response(self) -> dict[str, Any]:
        """The action's response: the attributes, the state, the findings."""
        return {
            "state": self.state.value,
            **self.attributes(),
            "resolved": {k: list(v) for k, v in self.facts.resolved.items()},
            "findings": sorted(finding.value for finding in self.judgement.findings),
            "ipv6_pinhole_port": self.facts.ipv6_pinhole_port,
            "checked_at": self.checked_at.isoformat(),
        }


class RemoteAccessCoordinator(DataUpdateCoordinator[RemoteAccessResult]):
    """Checks whether the home is reachable and what is exposed."""

    config_entry: SecureRemoteAccessConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        dns: DnsCoordinator,
    ) -> None:
        """Run every six hours; `async_start` wires the DNS trigger."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"Remote access {entry.title}",
            update_interval=REMOTE_ACCESS_INTERVAL,
        )
        self._dns = dns
        self.names: list[str] = list(entry.data[CONF_DOMAINS])
        self.memory = RemoteAccessMemory(hass, entry.entry_id)
        self._last_recorded: tuple[str | None, str | None] | None = None
        self._discovery_rechecked = False
        self._lock = asyncio.Lock()

    @callback
    def async_start(self) -> None:
        """Run once Home Assistant started (SSDP searched), then on DNS changes."""
        entry = self.config_entry
        entry.async_on_unload(self._dns.async_add_listener(self._dns_updated))

        @callback
        def _started(_hass: HomeAssistant) -> None:
            entry.async_create_background_task(
                self.hass, self.async_refresh(), "first remote-access check"
            )

        entry.async_on_unload(async_at_started(self.hass, _started))

    @callback
    def _dns_updated(self) -> None:
        state = self._dns.data
        recorded = (state.ipv4, state.ipv6) if state else (None, None)
        if self._last_recorded is not None and recorded != self._last_recorded:
            self.config_entry.async_create_background_task(
                self.hass, self.async_refresh(), "remote-access check after DNS"
            )

    async def async_check_now(self) -> RemoteAccessResult:
        """Run the check now (the action) and return its result."""
        await self.async_refresh()
        if not self.last_update_success or self.data is None:
            # The coordinator logged the exception with its traceback; the
            # user sees a translated message without raw exception text.
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="remote_access_check_failed",
            )
        return self.data

    async def _async_update_data(self) -> RemoteAccessResult:
        async with self._lock:
            return await self._run()

    async def _run(self) -> RemoteAccessResult:
        dns = self._dns.data
        ipv4, ipv6 = (dns.ipv4, dns.ipv6) if dns else (None, None)
        self._last_recorded = (ipv4, ipv6)
        now = dt_util.utcnow()
        memory = await self.memory.async_load()
        resolved = await self._resolve()
        unanswered = frozenset(self.names) - resolved.keys()
        mismatch_since = memory.mismatch_since
        if mismatched_names(resolved, ipv4, ipv6):
            mismatch_since = mismatch_since or now
        elif not unanswered:
            mismatch_since = None
        # A name without answer may still resolve elsewhere: the clock (and
        # with it the short interval) stays as it was.
        self.update_interval = (
            REMOTE_ACCESS_INTERVAL if mismatch_since is None else MISMATCH_RECHECK
        )
        ssh_ports, ssh_known = await self._ssh_password_ports()
        wanted = (
            *sorted({p for ports in memory.port_evidence.values() for p in ports}),
            HTTP_PORT,
            HTTPS_PORT,
            home_assistant_port(self.hass),
            SSH_PORT,
            *sorted(ssh_ports),
        )
        gateway, reason, detail = await self._gateway(wanted)
        lost_since = None if gateway else memory.gateway_lost_since or now
        # Open router issues: one answered before the memory was kept (upgrade).
        answered_before = memory.gateway_answered or async_router_issues_raised(
            self.hass, self.config_entry.entry_id
        )
        self._log_gateway(memory.gateway_lost_since, answered_before, reason, detail)
        if reason == upnp.GatewayReason.NO_GATEWAY and not self._discovery_rechecked:
            self._discovery_rechecked = True
            self.update_interval = min(self.update_interval, DISCOVERY_RECHECK)
        facts = Facts(
            recorded_ipv4=ipv4,
            recorded_ipv6=ipv6,
            resolved=resolved,
            unanswered=unanswered,
            mismatch_since=mismatch_since,
            gateway=gateway,
            gateway_reason=reason,
            # A router that never answered has gone nowhere: "no_gateway" stays.
            gateway_lost_since=lost_since if answered_before else None,
            host_addresses=await self._host_addresses(),
            ha_port=home_assistant_port(self.hass),
            serves_https=served_files(self.hass) is not None,
            ssh_password_ports=ssh_ports,
            ssh_addons_known=ssh_known,
            port_evidence=memory.port_evidence,
            ipv6_pinhole_port=self.config_entry.runtime_data.pinhole.open_port(ipv6),
        )
        facts = replace(facts, hairpin=await self._hairpin(facts))
        judgement = judge(facts, now)
        LOGGER.debug("Remote access of %s: %s", self.names, judgement)
        async_sync_remote_access_issues(
            self.hass,
            self.config_entry.entry_id,
            judgement.findings,
            judgement.evaluated,
        )
        await self.memory.async_update(
            mismatch_since=mismatch_since,
            gateway_lost_since=lost_since,
            gateway_answered=answered_before or gateway is not None,
            port_evidence=dict(judgement.evidence),
        )
        return RemoteAccessResult(facts, judgement, now)

    def _log_gateway(
        self,
        lost_since: datetime | None,
        answered_before: bool,
        reason: str | None,
        detail: str,
    ) -> None:
        """One warning when a gateway stops answering (or answers nonsense from
        the start), one line when it answers again; nothing in between."""
        if reason is None:
            if lost_since is not None and answered_before:
                LOGGER.info("The UPnP gateway of %s answers again", self.names[0])
            return
        if lost_since is not None:
            return  # the same outage, across restarts too
        if answered_before or reason not in (
            NO_DISCOVERY,
            upnp.GatewayReason.NO_GATEWAY,
        ):
            LOGGER.warning(
                "The remote-access check of %s cannot read the router (%s%s); its "
                "findings are kept until it answers, at most a day",
                self.names[0],
                reason,
                f": {detail}" if detail else "",
            )

    async def _resolve(self) -> dict[str, tuple[str, ...]]:
        """A and AAAA of each name from DuckDNS's servers (or the testing server)."""
        entry = self.config_entry
        server = entry.options.get(CONF_DNS_SERVER)
        custom_duckdns = entry.data.get(CONF_DUCKDNS_URL, DEFAULT_UPDATE_URL) != (
            DEFAULT_UPDATE_URL
        )
        if custom_duckdns and not server:
            return {}  # a DuckDNS stand-in: the public DNS knows nothing of it
        resolved: dict[str, tuple[str, ...]] = {}
        for name in self.names:
            addresses = await lookup_addresses(name, [server] if server else None)
            if addresses is not None:
                resolved[name] = addresses
        return resolved

    async def _gateway(
        self, wanted_ports: tuple[int, ...]
    ) -> tuple[upnp.GatewayFacts | None, str | None, str]:
        """The first gateway that answers; else why none did, and how."""
        testing: str | None = self.config_entry.data.get(CONF_UPNP_LOCATION)
        locations = [testing] if testing else await async_discover_gateways(self.hass)
        if locations is None:
            return None, NO_DISCOVERY, ""
        if not locations:
            return None, upnp.GatewayReason.NO_GATEWAY, ""
        session = async_get_clientsession(self.hass)
        reason: str = upnp.GatewayReason.NO_GATEWAY
        detail = ""
        for location in locations[:2]:
            try:
                facts = await upnp.query_gateway(
                    session,
                    location,
                    timeout_seconds=GATEWAY_TIMEOUT,
                    wanted_ports=wanted_ports,
                )
            except upnp.GatewayError as err:
                LOGGER.debug("UPnP gateway %s: %s", location, err, exc_info=True)
                reason, detail = err.reason, f"{location}: {err.detail}"
                continue
            local = await self.hass.async_add_executor_job(
                upnp.local_address_towards, location
            )
            return (
                replace(
                    facts,
                    local_address=local,
                    ipv6_location=await self._ipv6_location(facts),
                ),
                None,
                "",
            )
        return None, reason, detail

    async def _ipv6_location(self, gateway: upnp.GatewayFacts) -> str | None:
        """The router's description URL over IPv6, where pinholes are asked for.

        SSDP over IPv6 finds it; its description must name the same device.
        """
        if not gateway.pinholes or gateway.udn is None:
            return None
        session = async_get_clientsession(self.hass)
        for location in (await async_discover_ipv6_gateways(self.hass, gateway.udn))[
            :2
        ]:
            try:
                udn = await upnp.gateway_udn(
                    session, location, timeout_seconds=GATEWAY_TIMEOUT
                )
            except upnp.GatewayError as err:
                LOGGER.debug("UPnP gateway %s: %s", location, err)
                continue
            if udn == gateway.udn:
                return location
        return None

    async def _host_addresses(self) -> frozenset[str]:
        adapters = await network.async_get_adapters(self.hass)
        return frozenset(
            address["address"]
            for adapter in adapters
            if adapter["enabled"]
            for address in adapter["ipv4"]
        )

    async def _ssh_password_ports(self) -> tuple[frozenset[int], bool]:
        """Host ports of SSH add-ons taking passwords; whether all were read."""
        if not is_hassio(self.hass):
            return frozenset(), True
        from .checklist.snapshot import async_read_ssh_addons

        addons, complete = await async_read_ssh_addons(self.hass)
        ports = frozenset(
            addon.host_port
            for addon in addons
            if addon.running and addon.password_login and addon.host_port is not None
        )
        return ports, complete

    async def _hairpin(self, facts: Facts) -> Hairpin:
        gateway = facts.gateway
        public = facts.recorded_ipv4
        if (
            gateway is None
            or public is None
            or gateway.wan_address != public
            or not is_public_ipv4(public)
        ):
            return Hairpin.NOT_TRIED
        ours = frozenset(
            status.info.fingerprint_sha256
            for status in self.config_entry.runtime_data.certificates.statuses()
            if status.info is not None
        )
        if not ours:
            return Hairpin.NOT_TRIED
        loopback = hairpin_loopback
        if loopback is None and self.config_entry.data.get(CONF_UPNP_LOCATION):
            # A test gateway plays the router: its loopback leads to its host.
            host = urlsplit(gateway.location).hostname or public
            loopback = lambda _public: host  # noqa: E731
        return await hairpin_probe(
            public, probe_ports(facts), self.names[0], ours, loopback=loopback
        )


def home_assistant_port(hass: HomeAssistant) -> int:
    """The port Home Assistant's own web server listens on."""
    http: Any = getattr(hass, "http", None)
    port = getattr(http, "server_port", None)
    return int(port) if port else DEFAULT_HA_PORT
