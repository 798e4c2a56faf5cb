"""Shared fixtures for the Secure Remote Access tests."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest

# Import the integration before any hass fixture runs, so that Home Assistant's
# loader finds this repository's custom_components package, not the plugin's.
from custom_components.secure_remote_access.certificate import CertificateManager
from custom_components.secure_remote_access.const import DOMAIN  # noqa: F401
from tests.blocking import detect_blocking_calls
from tests.fakes import certs
from tests.fakes.issuer import FakeCa
from tests.fakes.pebble import DEFAULT_BLOCKLIST, PebbleServer

# Build the test CA before any test freezes time (cryptography rejects
# datetimes of the real class while freezegun's class is patched in).
certs.shared_pki()

# A DuckDNS name the test CA refuses (Pebble's domain block list).
REFUSED_NAME = "refused.duckdns.org"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    enable_custom_integrations: None,
) -> Generator[None]:
    """Let every test load custom integrations from this repository."""
    yield


@pytest.fixture(autouse=True)
def no_blocking_calls_in_the_loop() -> Generator[None]:
    """Fail a test in which our code blocked the event loop (file, TLS, sleep...)."""
    with detect_blocking_calls() as calls:
        yield
    assert not calls.found, "blocking calls in the event loop:\n" + "\n".join(
        dict.fromkeys(calls.found)
    )


@pytest.fixture(scope="session")
def pebble() -> Iterator[PebbleServer]:
    """A Pebble + challtestsrv pair shared by the whole session."""
    with PebbleServer(domain_blocklist=(*DEFAULT_BLOCKLIST, REFUSED_NAME)) as server:
        yield server


@pytest.fixture(scope="session")
def pebble_eab() -> Iterator[PebbleServer]:
    """A Pebble that requires External Account Binding (keys: DEFAULT_EAB_KEYS)."""
    with PebbleServer(eab_required=True) as server:
        yield server


@pytest.fixture
def fake_ca() -> Generator[FakeCa]:
    """Patch the manager's order and ARI with a fake CA (90-day certificates)."""
    ca = FakeCa(timedelta(days=90))

    async def issue(
        self: CertificateManager, current: Any, *, replaces: bool = True
    ) -> Any:
        return await ca.issue(self, current, replaces)

    async def renewal_info(self: CertificateManager, current: Any) -> Any:
        return await ca.renewal_info(current)

    with (
        patch.object(CertificateManager, "async_order", issue),
        patch.object(CertificateManager, "async_renewal_info", renewal_info),
    ):
        yield ca
