"""The persistent validation records an entry set in DuckDNS (dns-persist-01).

While its record is there the entry owns the DuckDNS name's one TXT value:
the record is written once (protocol/acme/persist.py) and cleared when the
entry is removed, switches to dns-01 only, stops managing a certificate or
no longer has the DuckDNS name. This class is the one owner of that fact.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN, LOGGER
from .protocol.acme import DnsPropagationChecker, PersistRefusal
from .protocol.duckdns import DuckDnsClient, DuckDnsError
from .protocol.names import persist_record_name

STORAGE_VERSION: Final = 1


class PersistRecords:
    """Which DuckDNS names hold a persistent record this entry wrote, and its value."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Bind to the entry's store (loaded lazily)."""
        self._store: Store[dict[str, str]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.persist_{entry_id}", atomic_writes=True
        )
        self._records: dict[str, str] | None = None

    async def async_records(self) -> dict[str, str]:
        """DuckDNS name -> the persistent record written there."""
        if self._records is None:
            stored = await self._store.async_load()
            self._records = {
                str(domain): str(value)
                for domain, value in (stored or {}).items()
                if isinstance(value, str)
            }
        return dict(self._records)

    async def async_written(self, domain: str, value: str) -> None:
        """Remember a record just written."""
        records = await self.async_records()
        records[domain] = value
        self._records = records
        await self._store.async_save(records)

    async def async_release(
        self,
        duckdns: DuckDnsClient,
        keep: Collection[str] = (),
        nameservers: Sequence[str] | None = None,
    ) -> list[str]:
        """Clear the records of every DuckDNS name not in ``keep``.

        A name whose TXT value now holds another value (another tool wrote it)
        is left alone. Returns the names that could not be looked up or
        cleared: they stay remembered, for the next try.
        """
        records = await self.async_records()
        checker = DnsPropagationChecker(nameservers)
        failed: list[str] = []
        for domain, value in list(records.items()):
            if domain in keep:
                continue
            texts = await checker.query_txt(persist_record_name(domain))
            if texts is None:  # unknown: never clear someone else's value
                LOGGER.warning(
                    "Could not look up the persistent validation record of %s; "
                    "not cleared",
                    domain,
                )
                failed.append(domain)
                continue
            if texts and value not in texts:
                LOGGER.info(
                    "The TXT record of %s now holds another value; left alone", domain
                )
            else:
                try:
                    await duckdns.clear_txt(domain)
                except DuckDnsError as err:
                    LOGGER.warning(
                        "Could not clear the persistent validation record of %s "
                        "(clear its TXT record at duckdns.org): %s",
                        domain,
                        err,
                    )
                    failed.append(domain)
                    continue
                LOGGER.info("Cleared the persistent validation record of %s", domain)
            del records[domain]
        if records != self._records:
            self._records = records
            await self._store.async_save(records)
        return failed

    async def async_forget(self, domains: Collection[str]) -> None:
        """Forget records a dns-01 order overwrote (and cleared)."""
        records = await self.async_records()
        if not records.keys() & set(domains):
            return
        self._records = {k: v for k, v in records.items() if k not in domains}
        await self._store.async_save(self._records)

    async def async_remove(self) -> None:
        """Delete the store (the entry is removed)."""
        self._records = {}
        await self._store.async_remove()


class PersistRefusals:
    """The CA's last refusal of the entry's dns-persist-01 record, per CA directory.

    While one applies (30 days, the same account, the same challenges),
    orders use dns-01 at once; kept in a store so that a restart, even in
    the middle of the fallback, never tries the refused record again.
    """

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Bind to the entry's store (loaded lazily)."""
        self._store: Store[dict[str, dict[str, str]]] = Store(
            hass,
            STORAGE_VERSION,
            f"{DOMAIN}.persist_refusals_{entry_id}",
            atomic_writes=True,
        )
        self._refusals: dict[str, PersistRefusal] | None = None

    async def _async_load(self) -> dict[str, PersistRefusal]:
        if self._refusals is None:
            stored = await self._store.async_load() or {}
            self._refusals = {
                str(directory): refusal
                for directory, data in stored.items()
                if (refusal := PersistRefusal.from_json(data)) is not None
            }
        return self._refusals

    async def async_get(self, directory_url: str) -> PersistRefusal | None:
        """The last refusal by the CA at ``directory_url``, if any."""
        return (await self._async_load()).get(directory_url)

    async def async_remember(self, directory_url: str, refusal: PersistRefusal) -> None:
        """Keep a refusal (replacing the CA's earlier one)."""
        refusals = await self._async_load()
        refusals[directory_url] = refusal
        await self._store.async_save(
            {directory: item.to_json() for directory, item in refusals.items()}
        )

    async def async_remove(self) -> None:
        """Delete the store (the entry is removed)."""
        self._refusals = {}
        await self._store.async_remove()
