"""Typed runtime data of a Secure Remote Access config entry."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigEntry

from .protocol.duckdns import DuckDnsClient


@dataclass(slots=True)
class RuntimeData:
    """What a loaded config entry holds while it runs."""

    duckdns: DuckDnsClient
    domains: list[str]


type SecureRemoteAccessConfigEntry = ConfigEntry[RuntimeData]
