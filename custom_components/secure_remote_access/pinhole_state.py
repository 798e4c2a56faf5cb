"""The IPv6 pinhole the integration opened (or means to open), in its stored form.

`Pinhole` is one pinhole on one router, `PinholeState` the keeper's whole
truth (the wanted pinhole, pending closes with the time the router's lease
ends them anyway), kept in the entry's `Store`. Whatever a damaged file
holds that makes no sense is forgotten, never sent to the router.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
import ipaddress
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .protocol.pinhole import PINHOLE_LEASE, PinholeRequest

STORAGE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Pinhole:
    """A pinhole for TCP ``port`` of ``internal_client`` on the router at ``location``."""

    location: str
    internal_client: str
    port: int

    def request(self) -> PinholeRequest:
        """What `Pinholes.open` opens and keeps."""
        return PinholeRequest(self.internal_client, self.port)

    def as_dict(self) -> dict[str, str | int]:
        """The stored form."""
        return {
            "location": self.location,
            "internal_client": self.internal_client,
            "port": self.port,
        }

    @classmethod
    def from_dict(cls, data: object) -> Pinhole | None:
        """The stored form read back; None when it makes no sense."""
        if not isinstance(data, dict):
            return None
        try:
            pinhole = cls(
                str(data["location"]), str(data["internal_client"]), int(data["port"])
            )
            ipaddress.IPv6Address(pinhole.internal_client)
        except KeyError, TypeError, ValueError:
            return None
        return pinhole if 0 < pinhole.port < 65536 else None


@dataclass(frozen=True, slots=True)
class Closing:
    """A pinhole to close; after ``until`` the router's lease has closed it."""

    pinhole: Pinhole
    until: datetime

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {**self.pinhole.as_dict(), "until": self.until.isoformat()}

    @classmethod
    def from_dict(cls, data: object) -> Closing | None:
        """The stored form read back; None when it makes no sense."""
        pinhole = Pinhole.from_dict(data)
        until = (
            dt_util.parse_datetime(str(data.get("until")))
            if isinstance(data, dict)
            else None
        )
        if pinhole is None or until is None or until.tzinfo is None:
            return None
        # No close is pending longer than the longest lease we ask for.
        latest = dt_util.utcnow() + timedelta(seconds=PINHOLE_LEASE)
        return cls(pinhole, min(until, latest))


@dataclass(frozen=True, slots=True)
class PinholeState:
    """The wanted pinhole, whether the router confirmed it, and pending closes."""

    wanted: Pinhole | None = None
    closing: tuple[Closing, ...] = ()
    confirmed: bool = False
    #: Why the router did not keep the wanted pinhole (a `Refusal` value).
    refusal: str | None = None
    #: The router has confirmed `wanted` at least once (False: an intent only).
    established: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "wanted": self.wanted.as_dict() if self.wanted else None,
            "closing": [closing.as_dict() for closing in self.closing],
            "confirmed": self.confirmed,
            "refusal": self.refusal,
            "established": self.established,
        }

    @classmethod
    def from_dict(cls, data: object) -> PinholeState:
        """The stored form read back (nothing stored: nothing wanted)."""
        if not isinstance(data, dict):
            return cls()
        closing = data.get("closing")
        found = [
            Closing.from_dict(item)
            for item in (closing if isinstance(closing, list) else ())
        ]
        wanted = Pinhole.from_dict(data.get("wanted"))
        refusal = data.get("refusal")
        confirmed = wanted is not None and data.get("confirmed") is True
        return cls(
            wanted,
            tuple(item for item in found if item is not None),
            confirmed=confirmed,
            refusal=refusal if isinstance(refusal, str) else None,
            # Stored before the flag existed: kept asking for, as then.
            established=wanted is not None and data.get("established", True) is True,
        )


def pinhole_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """The Store of the entry's IPv6 pinhole."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.pinhole_{entry_id}")
