"""Section 2: the longest event-loop stall during an RSA 4096 issuance."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from custom_components.secure_remote_access.protocol.acme import (
    AccountKey,
    AcmeClient,
    DnsPropagationChecker,
    KeyType,
)
from tests.fakes.pebble import PebbleServer

from .endpoints import LagProbe

NAMES = ("bench.duckdns.org",)


async def _renew(pebble: PebbleServer, rounds: int) -> list[LagProbe]:
    probes = []
    async with aiohttp.ClientSession() as session:

        class Solver:
            async def set_txt(self, identifier: str, value: str) -> None:
                await pebble.set_txt(f"_acme-challenge.{identifier}", value, session)

            async def clear_txt(self, identifier: str) -> None:
                await pebble.clear_txt(f"_acme-challenge.{identifier}", session)

        loop = asyncio.get_running_loop()
        key = await loop.run_in_executor(None, AccountKey.generate)
        client = AcmeClient(
            session,
            pebble.directory_url,
            key,
            user_agent="bench",
            ca_bundle=str(pebble.ca_bundle_path),
        )
        await client.register_account(terms_of_service_agreed=True)
        for _ in range(rounds):
            async with LagProbe().running() as probe:
                await client.issue_certificate(
                    NAMES,
                    Solver(),
                    DnsPropagationChecker([pebble.dns_server]),
                    key_type=KeyType.RSA_4096,
                )
            probes.append(probe)
    return probes


def run(rounds: int = 3) -> dict[str, Any]:
    """Issue ``rounds`` RSA 4096 certificates with a lag probe running."""
    with PebbleServer(extra_env={"PEBBLE_WFE_NONCEREJECT": "0"}) as pebble:
        probes = asyncio.run(_renew(pebble, rounds))
    return {
        "rounds": rounds,
        "worst": max(p.worst for p in probes),
        "samples": sum(len(p.lags) for p in probes),
        "over_10ms": sum(p.over(0.010) for p in probes),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
