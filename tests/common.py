"""Helpers shared by the Home Assistant level tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_TOKEN
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access.const import CONF_DOMAINS, DOMAIN

UPDATE_URL = "https://www.duckdns.org/update"
TOKEN = "a7c4d0ad-114e-40ef-ba1d-d217904a50f2"
DOMAINS = ["myhome.duckdns.org"]


def suggested(schema: Mapping[Any, Any]) -> dict[str, Any]:
    """The values a form's schema (or one of its sections') pre-fills, by field."""
    return {
        str(key): key.description["suggested_value"]
        for key in schema
        if key.description and "suggested_value" in key.description
    }


def section_schema(schema: Mapping[Any, Any], name: str) -> Mapping[Any, Any]:
    """The fields of the form section called ``name``."""
    return next(value.schema.schema for key, value in schema.items() if key == name)


def duckdns_reply(
    ipv4: str = "203.0.113.7", ipv6: str = "", changed: bool = True
) -> str:
    """A verbose DuckDNS reply to an address update, as the real service sends it."""
    return f"OK\n{ipv4}\n{ipv6}\n{'UPDATED' if changed else 'NOCHANGE'}"


def mock_duckdns(
    aioclient_mock: AiohttpClientMocker, text: str | None = None, **kwargs: Any
) -> None:
    """Answer every DuckDNS update request with ``text`` (default: OK, updated)."""
    aioclient_mock.clear_requests()
    aioclient_mock.get(
        UPDATE_URL, text=duckdns_reply() if text is None else text, **kwargs
    )


def mock_entry(**data: Any) -> MockConfigEntry:
    """A config entry for one DuckDNS name."""
    entry_data: dict[str, Any] = {CONF_DOMAINS: DOMAINS, CONF_TOKEN: TOKEN, **data}
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry_data[CONF_DOMAINS][0],
        unique_id=",".join(entry_data[CONF_DOMAINS]),
        data=entry_data,
    )
