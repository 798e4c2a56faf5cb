"""What the remote-access check remembers between runs, across restarts.

Its one owner is the entry's `RemoteAccessCoordinator`: since when a name
resolves elsewhere, since when no gateway answered (and whether one ever
did), and the ports behind each port finding. Kept in a Home Assistant
`Store` per entry, so that a reload or a restart judges from where the last
run left off.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .protocol.remote_access import PORT_FINDINGS, Finding

STORAGE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Memory:
    """The clocks and evidence one run hands to the next."""

    #: Since when a name resolves to another address than the recorded one.
    mismatch_since: datetime | None = None
    #: Since when no gateway answered.
    gateway_lost_since: datetime | None = None
    #: Whether a gateway ever answered this entry's check.
    gateway_answered: bool = False
    #: The external ports behind each port finding still raised.
    port_evidence: dict[Finding, frozenset[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "mismatch_since": _iso(self.mismatch_since),
            "gateway_lost_since": _iso(self.gateway_lost_since),
            "gateway_answered": self.gateway_answered,
            "port_evidence": {
                finding.value: sorted(ports)
                for finding, ports in self.port_evidence.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Memory:
        """Read the stored form; whatever makes no sense is forgotten."""
        if not isinstance(data, dict):
            return cls()
        evidence: dict[Finding, frozenset[int]] = {}
        stored = data.get("port_evidence")
        for key, ports in (stored if isinstance(stored, dict) else {}).items():
            if key in PORT_FINDINGS and isinstance(ports, list):
                evidence[Finding(key)] = frozenset(
                    port for port in ports if isinstance(port, int)
                )
        return cls(
            mismatch_since=_time(data.get("mismatch_since")),
            gateway_lost_since=_time(data.get("gateway_lost_since")),
            gateway_answered=data.get("gateway_answered") is True,
            port_evidence=evidence,
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(value: object) -> datetime | None:
    return dt_util.parse_datetime(value) if isinstance(value, str) else None


class RemoteAccessMemory:
    """The stored `Memory` of one entry; loaded once, saved when it changes."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Bind to the entry's store (loaded lazily)."""
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.remote_access_{entry_id}"
        )
        self._memory: Memory | None = None

    async def async_load(self) -> Memory:
        """What the last run (of this or an earlier start) remembered."""
        if self._memory is None:
            self._memory = Memory.from_dict(await self._store.async_load())
        return self._memory

    async def async_update(self, **changes: Any) -> Memory:
        """Change and save; nothing is written when nothing changed."""
        current = await self.async_load()
        updated = replace(current, **changes)
        if updated != current:
            self._memory = updated
            await self._store.async_save(updated.as_dict())
        return updated

    async def async_remove(self) -> None:
        """Delete the store (the entry is removed)."""
        self._memory = Memory()
        await self._store.async_remove()
