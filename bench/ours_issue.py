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
from typing import Any

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
    account_text: str | None,
) -> dict[str, object]:
    """Register a fresh account and issue one certificate; returns timing and serial."""
    import aiohttp

    from custom_components.secure_remote_access.protocol.acme import (
        AccountKey,
        AcmeClient,
        DnsPropagationChecker,
        KeyType,
    )

    saved = json.loads(account_text) if account_text else None
    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        loop = asyncio.get_running_loop()
        if saved is not None:
            key = AccountKey.from_pem(saved["key"])
        else:
            key = await loop.run_in_executor(None, AccountKey.generate)
        options: dict[str, Any] = {}
        if poll := os.environ.get("BENCH_POLL_INTERVAL"):
            options["poll_interval"] = float(poll)
        client = AcmeClient(
            session,
            directory_url,
            key,
            user_agent="bench",
            ca_bundle=ca_bundle,
            account_url=saved["url"] if saved else None,
            **options,
        )
        if saved is None:
            await client.register_account(terms_of_service_agreed=True)
            saved = {"key": key.to_pem(), "url": client.account_url}
        issued = await client.issue_certificate(
            names,
            ChalltestsrvSolver(session, challtestsrv_url),
            DnsPropagationChecker([dns_server]),
            key_type=KeyType(key_type),
        )
    return {
        "in_process": time.perf_counter() - start,
        "serial": issued.serial_hex,
        "account": saved,
    }


def main() -> None:
    """Parse the arguments, issue, print JSON."""
    _load_protocol_only()
    directory_url, ca_bundle, chall, dns, key_type, *names = sys.argv[1:]
    # BENCH_ACCOUNT: a JSON file keeping the account (key and URL) between
    # runs, as the integration keeps it between renewals; absent: a new one.
    account = os.environ.get("BENCH_ACCOUNT")
    account_file = Path(account) if account else None
    text = account_file.read_text() if account_file and account_file.is_file() else None
    result = asyncio.run(
        issue(directory_url, ca_bundle, chall, dns, key_type, names, text)
    )
    if account_file is not None and text is None:
        account_file.write_text(json.dumps(result["account"]))
    del result["account"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
