"""Values and helpers of the dns-persist-01 suites."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self
from unittest.mock import patch

import aiohttp
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access.const import (
    CONF_VALIDATION_METHOD,
    VALIDATION_AUTOMATIC,
)
from custom_components.secure_remote_access.protocol.acme import DnsPropagationChecker
from tests.common import TOKEN, pebble_options, renew
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

ISSUER = "pebble.letsencrypt.org"  # Pebble's issuer domain name by default
SECOND_ISSUER = "second-issuer.example"  # the persist suites' Pebble has two
OWN = "home.persist-e2e.example.com"
OWN_RECORD = f"_validation-persist.{OWN}"
OWN_DNS01_RECORD = f"_acme-challenge.{OWN}"

type SetupPersistEntry = Callable[..., Awaitable[MockConfigEntry]]


def persist_options(
    pebble: PebbleServer, ssl_dir: Path, **extra: Any
) -> dict[str, Any]:
    return pebble_options(
        pebble, ssl_dir, **{CONF_VALIDATION_METHOD: VALIDATION_AUTOMATIC, **extra}
    )


async def renew_validating(
    hass: HomeAssistant, entry: MockConfigEntry
) -> dict[str, Any]:
    """A forced renewal whose order validated its names.

    Pebble reuses a valid authorization 1 % of the time even with
    PEBBLE_AUTHZREUSE=0 (``rand.Intn(100) > 0`` in its WFE): such an order
    validates nothing, so it is repeated (a few times at most).
    """
    result, _renewals = await renew_validating_counted(hass, entry)
    return result


async def renew_validating_counted(
    hass: HomeAssistant, entry: MockConfigEntry
) -> tuple[dict[str, Any], int]:
    """`renew_validating`, and how many renewals it took (orders to expect)."""
    for renewals in range(1, 6):
        result = await renew(hass, entry, force=True)
        if result["validation_method"] != "reused_authorization":
            return result, renewals
    raise AssertionError("Pebble reused the authorizations five times in a row")


def txt_writes(fake: FakeDuckDns) -> list[dict[str, str]]:
    return [query for query in fake.requests if "txt" in query]


class Waits:
    """Counts propagation waits (both methods) while letting them run."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> Self:
        original = DnsPropagationChecker.wait_for_record

        async def counted(
            checker: DnsPropagationChecker, record: str, value: str, deadline: float
        ) -> None:
            self.count += 1
            await original(checker, record, value, deadline)

        self._patch = patch.object(DnsPropagationChecker, "wait_for_record", counted)
        self._patch.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._patch.stop()


async def other_tool_writes(fake: FakeDuckDns, url: str, value: str) -> None:
    """Another client with the same DuckDNS token sets the TXT value."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            url,
            params={
                "domains": "myhome",
                "token": TOKEN,
                "txt": value,
                "verbose": "true",
            },
        ) as response,
    ):
        assert (await response.text()).startswith("OK")
    assert fake.records["myhome"].txt == value
