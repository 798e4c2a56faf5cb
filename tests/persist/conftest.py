"""Fixtures of the dns-persist-01 suites: a Pebble of their own and its DuckDNS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.common import StartDuckDns, setup_duckdns_entry
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

from .common import (
    ISSUER,
    OWN_DNS01_RECORD,
    OWN_RECORD,
    SECOND_ISSUER,
    SetupPersistEntry,
    persist_options,
)


@pytest.fixture(scope="package")
def pebble() -> Iterator[PebbleServer]:
    """This package's Pebble (instead of the session's): it validates every
    authorization afresh (no reuse) and has two issuer names (the first is
    Pebble's default)."""
    with PebbleServer(
        extra_env={"PEBBLE_AUTHZREUSE": "0"}, caa_identities=(ISSUER, SECOND_ISSUER)
    ) as server:
        yield server


@pytest.fixture
async def fake(
    start_duckdns: StartDuckDns, pebble: PebbleServer
) -> AsyncIterator[tuple[FakeDuckDns, str]]:
    """DuckDNS for this Pebble (its TXT values are gone after each test)."""
    yield await start_duckdns(pebble, ["myhome", "cabin"])
    await pebble.clear_cname(OWN_RECORD)
    await pebble.clear_cname(OWN_DNS01_RECORD)


@pytest.fixture
def persist_entry(
    hass: HomeAssistant,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> SetupPersistEntry:
    """Set up an entry validating automatically through this module's Pebble."""

    async def setup(
        domains: list[str] | None = None, directory: str | None = None, **extra: Any
    ) -> MockConfigEntry:
        options = persist_options(pebble, ssl_dir, **extra)
        if directory is not None:
            options["acme_directory"] = directory
        return await setup_duckdns_entry(hass, fake[1], options, domains=domains)

    return setup
