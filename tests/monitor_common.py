"""Helpers for the certificate monitoring tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
from datetime import timedelta
import os
from pathlib import Path
import threading
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant import block_async_io
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access.const import (
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_ENDPOINTS,
    CONF_PRIVATE_KEY_PATH,
    CONF_WILDCARD,
    DOMAIN,
)
from custom_components.secure_remote_access.issues import CERTIFICATE_ISSUE_KEYS
from tests.fakes import certs

from .common import mock_duckdns, mock_entry

# Build the session's test CAs now, before any test freezes time: cryptography
# rejects real datetimes next to freezegun's fake ones.
certs.shared_pki()
certs.other_pki()

NAME = "myhome.duckdns.org"
EXPIRY = "certificate_expiry"
DAYS = "certificate_days_remaining"
PROBLEM = "certificate_problem"


def managed_options(
    cert: Path, key: Path, *, wildcard: bool = False, **extra: Any
) -> dict[str, Any]:
    """Entry options that manage a certificate at ``cert`` / ``key``."""
    return {
        CONF_ACME_DIRECTORY: "https://ca.invalid/directory",
        CONF_CERTIFICATE_PATH: str(cert),
        CONF_PRIVATE_KEY_PATH: str(key),
        CONF_WILDCARD: wildcard,
        **extra,
    }


def endpoint_options(*endpoints: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Entry options that only watch remote endpoints."""
    return {CONF_ENDPOINTS: list(endpoints), **extra}


async def setup_entry(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    options: dict[str, Any] | None = None,
    *,
    wait_background: bool = True,
) -> MockConfigEntry:
    """Add and set up an entry with ``options``; DuckDNS answers OK."""
    mock_duckdns(aioclient_mock)
    entry = mock_entry()
    entry.add_to_hass(hass)
    if options:
        hass.config_entries.async_update_entry(entry, options=options)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=wait_background)
    return entry


def entity_id(
    hass: HomeAssistant, entry: MockConfigEntry, source_key: str, description: str
) -> str:
    """The entity ID of one certificate entity, found by its unique ID."""
    platform = "binary_sensor" if description == PROBLEM else "sensor"
    found = er.async_get(hass).async_get_entity_id(
        platform, DOMAIN, f"{entry.entry_id}_{source_key}_{description}"
    )
    assert found is not None, (source_key, description)
    return found


def state(
    hass: HomeAssistant, entry: MockConfigEntry, source_key: str, description: str
) -> State:
    """The state of one certificate entity."""
    current = hass.states.get(entity_id(hass, entry, source_key, description))
    assert current is not None
    return current


def certificate_issues(hass: HomeAssistant, entry_id: str) -> dict[str, ir.IssueEntry]:
    """The entry's certificate issues, keyed ``<translation key>:<certificate key>``."""
    found: dict[str, ir.IssueEntry] = {}
    for (domain, issue_id), issue in ir.async_get(hass).issues.items():
        for key in CERTIFICATE_ISSUE_KEYS:
            prefix = f"{key}_{entry_id}_"
            if domain == DOMAIN and issue_id.startswith(prefix):
                found[f"{key}:{issue_id.removeprefix(prefix)}"] = issue
    return found


async def tick(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta
) -> None:
    """Move the clock and run what became due."""
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


def write_executor(path: Path, data: bytes) -> Callable[[], None]:
    """A job that writes ``data`` to ``path`` (for the executor)."""

    def write() -> None:
        path.write_bytes(data)

    return write


@contextlib.contextmanager
def guard_event_loop(watched: Path) -> Iterator[list[str]]:
    """Enable Home Assistant's blocking-call detection and watch ``os`` calls.

    Inside, a blocking ``open``, ``Path.read_bytes``, ``SSLContext.load_*``...
    in the event loop thread raises. Yields the list of ``os.open`` /
    ``os.stat`` calls on paths under ``watched`` made in the event loop
    thread (those are not covered by the detection; it must stay empty).
    Write test files before entering, or through the executor.
    """
    block_async_io.enable()
    loop_thread = threading.get_ident()
    calls: list[str] = []
    prefix = str(watched)

    def guarded(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread and os.fspath(path).startswith(
                prefix
            ):
                calls.append(f"{real.__name__}({path})")
            return real(path, *args, **kwargs)

        return wrapper

    try:
        with (
            patch("os.open", guarded(os.open)),
            patch("os.stat", guarded(os.stat)),
        ):
            yield calls
    finally:
        blocked = block_async_io._BLOCKED_CALLS.calls
        for call in blocked:
            setattr(call.object, call.function, call.original_func)
        blocked.clear()
