"""Issue one certificate with our ACME client, as a stand-alone process.

Used by the issuance benchmark so that our client is timed like certbot and
lego: a whole process, interpreter start-up included. Only the protocol
package is imported (it has no Home Assistant imports); the integration's
``__init__`` is skipped because inside Home Assistant it is already loaded.

Arguments: DIRECTORY_URL CA_BUNDLE CHALLTESTSRV_URL DNS_SERVER KEY_TYPE NAME...
Prints one JSON line: {"in_process": seconds, "serial": hex}.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import sys
import time
import types

ROOT = Path(__file__).resolve().parents[1]


def _load_protocol_only() -> None:
    """Make ``custom_components.secure_remote_access`` a bare namespace (no HA import)."""
    for name, path in (
        ("custom_components", ROOT / "custom_components"),
        (
            "custom_components.secure_remote_access",
            ROOT / "custom_components" / "secure_remote_access",
        ),
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module


class ChalltestsrvSolver:
    """Publish dns-01 TXT values through challtestsrv's HTTP API."""

    def __init__(self, session: object, base_url: str) -> None:
        self._session = session
        self._base = base_url

    async def _post(self, path: str, payload: dict[str, str]) -> None:
        async with self._session.post(  # type: ignore[attr-defined]
            self._base + path, data=json.dumps(payload)
        ) as resp:
            resp.raise_for_status()

    async def set_txt(self, identifier: str, value: str) -> None:
        """Add the TXT value of ``_acme-challenge.<identifier>``."""
        host = f"_acme-challenge.{identifier.removeprefix('*.')}."
        await self._post("/set-txt", {"host": host, "value": value})

    async def clear_txt(self, identifier: str) -> None:
        """Remove the TXT values of ``_acme-challenge.<identifier>``."""
        host = f"_acme-challenge.{identifier.removeprefix('*.')}."
        await self._post("/clear-txt", {"host": host})


async def issue(
    directory_url: str,
    ca_bundle: str,
    challtestsrv_url: str,
    dns_server: str,
    key_type: str,
    names: list[str],
) -> dict[str, object]:
    """Register a fresh account and issue one certificate; returns timing and serial."""
    import aiohttp

    from custom_components.secure_remote_access.protocol.acme import (
        AccountKey,
        AcmeClient,
        DnsPropagationChecker,
        KeyType,
    )

    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        loop = asyncio.get_running_loop()
        key = await loop.run_in_executor(None, AccountKey.generate)
        options = {}
        if poll := os.environ.get("BENCH_POLL_INTERVAL"):
            options["poll_interval"] = float(poll)
        client = AcmeClient(
            session,
            directory_url,
            key,
            user_agent="bench",
            ca_bundle=ca_bundle,
            **options,
        )
        await client.register_account(terms_of_service_agreed=True)
        issued = await client.issue_certificate(
            names,
            ChalltestsrvSolver(session, challtestsrv_url),
            DnsPropagationChecker([dns_server]),
            key_type=KeyType(key_type),
        )
    return {"in_process": time.perf_counter() - start, "serial": issued.serial_hex}


def main() -> None:
    """Parse the arguments, issue, print JSON."""
    _load_protocol_only()
    directory_url, ca_bundle, chall, dns, key_type, *names = sys.argv[1:]
    result = asyncio.run(issue(directory_url, ca_bundle, chall, dns, key_type, names))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
