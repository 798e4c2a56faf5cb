"""The DuckDNS coordinator: keeps the entry's names pointing at the home."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from homeassistant.components import network
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from custom_components.secure_remote_access.const import (
    CONF_DOMAINS,
    CONF_IPV6_ADDRESS,
    CONF_IPV6_MODE,
    CONF_UPDATE_INTERVAL,
    DEFAULT_UPDATE_INTERVAL,
    DNS_BACKOFF,
    DOMAIN,
    LOGGER,
    Ipv6Mode,
)
from custom_components.secure_remote_access.protocol.duckdns import (
    DuckDnsAuthError,
    DuckDnsClient,
    DuckDnsError,
)
from custom_components.secure_remote_access.protocol.ipv6 import (
    choose_public_ipv6,
    read_address_flags,
)

if TYPE_CHECKING:
    from custom_components.secure_remote_access.models import (
        SecureRemoteAccessConfigEntry,
    )


@dataclass(frozen=True, slots=True)
class DnsState:
    """What DuckDNS last recorded for the entry's names, and how updating goes."""

    ipv4: str | None
    ipv6: str | None
    changed: bool
    last_success: datetime
    failures: int = 0
    last_error: str | None = None

    @property
    def failing(self) -> bool:
        """True while updates fail."""
        return self.failures > 0


class DnsUpdateError(HomeAssistantError):
    """DuckDNS could not be updated (translated)."""


class DnsCoordinator(DataUpdateCoordinator[DnsState]):
    """Keeps every DuckDNS name of one entry pointing at the home."""

    config_entry: SecureRemoteAccessConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        client: DuckDnsClient,
    ) -> None:
        """Create the coordinator with the interval from the entry's options."""
        self.interval = timedelta(
            minutes=entry.options.get(CONF_UPDATE_INTERVAL, DEFAULT_UPDATE_INTERVAL)
        )
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"DuckDNS {entry.title}",
            update_interval=self.interval,
            always_update=False,
        )
        self.client = client
        self.domains: list[str] = list(entry.data[CONF_DOMAINS])
        self.ipv6_mode = Ipv6Mode(entry.options.get(CONF_IPV6_MODE, Ipv6Mode.OFF))
        self.fixed_ipv6: str | None = entry.options.get(CONF_IPV6_ADDRESS)

    async def async_update_now(self) -> DnsState:
        """Update DuckDNS now; raise a translated error when it fails."""
        try:
            state = await self._update()
        except DuckDnsAuthError as err:
            self.config_entry.async_start_reauth(self.hass)
            raise DnsUpdateError(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except DuckDnsError as err:
            raise DnsUpdateError(
                translation_domain=DOMAIN,
                translation_key="dns_update_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        self.async_set_updated_data(state)
        return state

    async def _async_update_data(self) -> DnsState:
        try:
            state = await self._update()
        except DuckDnsAuthError as err:
            # Stops polling until the user enters a working token.
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except DuckDnsError as err:
            return self._failed(err)
        return state

    async def _update(self) -> DnsState:
        result = await self.client.update(self.domains)
        ipv6 = await self._ipv6_address()
        recorded_ipv6 = result.ipv6
        changed = result.changed
        if ipv6 is not None:
            # Sending ipv6 disables DuckDNS's IPv4 detection: its own request.
            ipv6_result = await self.client.update(self.domains, ipv6=ipv6)
            recorded_ipv6 = ipv6_result.ipv6
            changed = changed or ipv6_result.changed
        previous = self.data
        if previous is not None and previous.failing:
            LOGGER.info(
                "DuckDNS updates for %s work again after %d failed attempts",
                ", ".join(self.domains),
                previous.failures,
            )
        self.update_interval = self.interval
        return DnsState(
            ipv4=result.ipv4,
            ipv6=recorded_ipv6 if self.ipv6_mode is not Ipv6Mode.OFF else None,
            changed=changed,
            last_success=dt_util.utcnow(),
        )

    def _failed(self, err: DuckDnsError) -> DnsState:
        previous = self.data
        if previous is None:
            # Nothing is known yet: entities have nothing to show.
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="dns_update_failed",
                translation_placeholders={"error": str(err)},
                retry_after=DNS_BACKOFF[0].total_seconds(),
            ) from err
        failures = previous.failures + 1
        if failures == 1:
            LOGGER.warning(
                "DuckDNS updates for %s fail (%s); retrying with backoff",
                ", ".join(self.domains),
                err,
            )
        else:
            LOGGER.debug("DuckDNS update failed again (%d): %s", failures, err)
        self.update_interval = DNS_BACKOFF[min(failures, len(DNS_BACKOFF)) - 1]
        return replace(previous, failures=failures, last_error=str(err))

    async def _ipv6_address(self) -> str | None:
        if self.ipv6_mode is Ipv6Mode.FIXED:
            return self.fixed_ipv6
        if self.ipv6_mode is Ipv6Mode.OFF:
            return None
        adapters = await network.async_get_adapters(self.hass)
        candidates = [
            address["address"]
            for adapter in adapters
            if adapter["enabled"]
            for address in adapter["ipv6"]
        ]
        flags = await self.hass.async_add_executor_job(read_address_flags)
        address = choose_public_ipv6(candidates, flags)
        if address is None:
            LOGGER.debug("No public IPv6 address among %s", candidates)
        return address
