"""What the integration put on (or asked of) the router, in its stored form.

`Forward` is one mapping we made or mean to make, `ForwardState` the
keeper's whole truth (the wanted forward, pending removals), kept in the
entry's `Store`. Whatever a damaged file holds that makes no sense is
forgotten, never sent to the router.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import ipaddress
from typing import Any, Final
from urllib.parse import urlsplit

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN
from .protocol.port_forward import DEFAULT_LEASE, MappingRequest, Owner

STORAGE_VERSION: Final = 1
DESCRIPTION_PREFIX: Final = "Secure Remote Access"


def same_router(location: str, other: str) -> bool:
    """Whether two description URLs are served by the same router (its address)."""
    return urlsplit(location).hostname == urlsplit(other).hostname


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
            forward = cls(
                str(data["location"]),
                int(data["external_port"]),
                int(data["internal_port"]),
                str(data["internal_client"]),
                str(data["description"]),
            )
            ipaddress.ip_address(forward.internal_client)
        except KeyError, TypeError, ValueError:
            return None
        # External port 0 is every port on many routers: never ask for it.
        ports = (forward.external_port, forward.internal_port)
        return forward if all(0 < port < 65536 for port in ports) else None


@dataclass(frozen=True, slots=True)
class ForwardState:
    """What is (meant to be) on the router: the wanted forward, pending removals."""

    wanted: Forward | None = None
    removals: tuple[Forward, ...] = ()
    #: The router listed `wanted` at the last look.
    confirmed: bool = False
    #: Why the last look or change failed (a `Refusal` value), None when it did not.
    refusal: str | None = field(default=None, compare=False)
    #: The router has listed `wanted` at least once (False: an intent only).
    established: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "wanted": self.wanted.as_dict() if self.wanted else None,
            "removals": [forward.as_dict() for forward in self.removals],
            "confirmed": self.confirmed,
            "established": self.established,
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
        wanted = Forward.from_dict(data.get("wanted"))
        return cls(
            wanted,
            removals,
            data.get("confirmed") is True,
            # Stored before the flag existed: an unconfirmed forward may have
            # worked for months (its router away at the last look), and that
            # version asked for it until the router took it: so does this one.
            established=data.get("established", wanted is not None) is True,
        )


def forward_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """The Store of the entry's forwards (the keeper's one truth)."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.port_forward_{entry_id}")
