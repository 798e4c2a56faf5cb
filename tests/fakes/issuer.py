"""A stand-in for the certificate manager's order step, for scheduler tests.

It writes a fresh pair valid from Home Assistant's (possibly frozen) now,
through the real verified writer, and answers ARI from ``windows``. The
simulated year of faults uses a real ACME server stand-in instead
(``tests/faults``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import timedelta
from typing import Any

from homeassistant.util import dt as dt_util

from custom_components.secure_remote_access.certificate import CertificateManager
from custom_components.secure_remote_access.protocol.acme import (
    IssuedCertificate,
    RenewalInfo,
)
from tests.fakes import certs


class FakeCa:
    """Stands in for the order: a fresh pair valid from the frozen now.

    ``failures`` are raised by the next orders, one each; ``windows`` are the
    ARI windows by serial; ``delay`` is how long (simulated) each order takes;
    ``gate``, when set, holds every order until it is set.
    """

    def __init__(self, lifetime: timedelta) -> None:
        """Issue certificates of ``lifetime``."""
        self.lifetime = lifetime
        self.issued: list[tuple[Any, Any]] = []
        self.failures: list[BaseException] = []
        self.orders = 0
        self.replaces: list[bool] = []
        self.windows: dict[str, RenewalInfo] = {}
        self.ari_calls = 0
        self.delay: timedelta | None = None
        self.freezer: Any = None
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.max_running = 0
        self.cancelled = 0
        #: How far the CA's clock is ahead of Home Assistant's.
        self.clock_ahead = timedelta(0)

    async def issue(
        self, manager: CertificateManager, current: Any, replaces: bool
    ) -> Any:
        self.orders += 1
        self.replaces.append(replaces)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay is not None:
                self.freezer.tick(self.delay)
            if self.failures:
                raise self.failures.pop(0)
            return await self._write(manager)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    async def _write(self, manager: CertificateManager) -> IssuedCertificate:
        """The CA's answer: a pair valid from now (the coordinator writes it)."""
        # Under freezegun, cryptography only accepts the patched datetime class.
        now = (
            dt.datetime.fromtimestamp(dt_util.utcnow().timestamp(), dt.UTC)
            + self.clock_ahead
        )
        pair = certs.issue(
            list(manager.settings.names),
            not_before=now,
            not_after=now + self.lifetime,
            # The key type the order asked for, as a CA's certificate has it.
            key=certs.generate_key(
                certs.KeyType(manager.settings.key_type), slot=len(self.issued) % 3
            ),
        )
        self.issued.append((now, now + self.lifetime))
        return IssuedCertificate.from_json(
            {
                "fullchain_pem": pair.fullchain_pem.decode(),
                "private_key_pem": pair.key_pem.decode(),
                "names": list(manager.settings.names),
            }
        )

    async def renewal_info(self, current: Any) -> RenewalInfo | None:
        self.ari_calls += 1
        return self.windows.get(current.serial)
