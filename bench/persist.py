"""Section: renewal time with an existing dns-persist-01 record vs with dns-01.

Both in one Pebble (authorizations never reused, no bad nonces), through the
integration's own DuckDNS solver and client against the DuckDNS stand-in
(which forwards TXT values to challtestsrv), interleaved. Each order is for a
DuckDNS name and its wildcard: two authorizations, the common setup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import time

import aiohttp

from custom_components.secure_remote_access.protocol.acme import (
    AccountKey,
    AcmeClient,
    DnsPropagationChecker,
    PersistValidation,
)
from custom_components.secure_remote_access.protocol.duckdns import DuckDnsClient
from custom_components.secure_remote_access.solver import DuckDnsSolver
from tests.fakes.duckdns import FakeDuckDns, start_fake_duckdns, stop_fake_duckdns
from tests.fakes.pebble import PebbleServer

from .common import fmt_s, median, table

TOKEN = "bench-token"  # noqa: S105 - the stand-in's, not a secret
PERSIST_NAME = "bench-persist.duckdns.org"
DNS01_NAME = "bench-dns01.duckdns.org"


class _Waits(DnsPropagationChecker):
    """A propagation checker that counts its waits."""

    waits = 0

    async def wait_for_record(self, record: str, value: str, deadline: float) -> None:
        """Count, then wait."""
        self.waits += 1
        await super().wait_for_record(record, value, deadline)


async def _rounds(
    pebble: PebbleServer, rounds: int
) -> dict[str, list[tuple[float, int, int]]]:
    fake = FakeDuckDns(
        token=TOKEN,
        domains=[PERSIST_NAME, DNS01_NAME],
        challtestsrv_url=pebble.challtestsrv_url,
    )
    runner, url = await start_fake_duckdns(fake, access_log=False)
    results: dict[str, list[tuple[float, int, int]]] = {"persist": [], "dns01": []}
    try:
        async with aiohttp.ClientSession() as session:
            duckdns = DuckDnsClient(session, TOKEN, base_url=url)
            solver = DuckDnsSolver(duckdns, [PERSIST_NAME, DNS01_NAME])
            loop = asyncio.get_running_loop()
            client = AcmeClient(
                session,
                pebble.directory_url,
                await loop.run_in_executor(None, AccountKey.generate),
                user_agent="bench",
                ca_bundle=str(pebble.ca_bundle_path),
            )
            await client.register_account(terms_of_service_agreed=True)

            async def order(name: str, persist: bool) -> tuple[float, int, int]:
                checker = _Waits([pebble.dns_server], interval=0.1)
                before = len([q for q in fake.requests if "txt" in q])
                started = time.perf_counter()
                await client.issue_certificate(
                    [name, f"*.{name}"],
                    solver,
                    checker,
                    persist=PersistValidation(solver, checker) if persist else None,
                )
                writes = len([q for q in fake.requests if "txt" in q]) - before
                return time.perf_counter() - started, writes, checker.waits

            await order(PERSIST_NAME, True)  # sets the record once
            await order(DNS01_NAME, False)  # warm-up on equal terms
            for _ in range(rounds):
                results["persist"].append(await order(PERSIST_NAME, True))
                results["dns01"].append(await order(DNS01_NAME, False))
    finally:
        await stop_fake_duckdns(fake, runner)
    return results


def run(rounds: int, log: Callable[[str], None]) -> tuple[str, dict[str, float]]:
    """Time ``rounds`` renewals of each kind, interleaved, in one Pebble."""
    env = {"PEBBLE_AUTHZREUSE": "0", "PEBBLE_WFE_NONCEREJECT": "0"}
    with PebbleServer(extra_env=env) as pebble:
        results = asyncio.run(_rounds(pebble, rounds))
    rows = []
    medians: dict[str, float] = {}
    labels = {
        "persist": "dns-persist-01, record already in place",
        "dns01": "dns-01 (set, wait, answer, clear per authorization)",
    }
    for key, label in labels.items():
        times = [item[0] for item in results[key]]
        medians[key] = median(times)
        rows.append(
            [
                label,
                fmt_s(medians[key]),
                fmt_s(min(times)),
                fmt_s(max(times)),
                f"{median([item[1] for item in results[key]]):.0f}",
                f"{median([item[2] for item in results[key]]):.0f}",
            ]
        )
    log(f"    persist {medians['persist']:.3f} s, dns-01 {medians['dns01']:.3f} s")
    spread = max(item[0] for item in results["persist"]) - min(
        item[0] for item in results["persist"]
    )
    difference = medians["dns01"] - medians["persist"]
    text = "\n".join(
        [
            table(
                [
                    "renewal",
                    "median",
                    "min",
                    "max",
                    "DuckDNS TXT calls",
                    "propagation waits",
                ],
                rows,
            ),
            "",
            (
                f"{rounds} renewals of each kind, interleaved, for a DuckDNS name and "
                "its wildcard (two authorizations), in-process through the "
                "integration's client and DuckDNS solver against the DuckDNS stand-in "
                "and one Pebble that never reuses authorizations. "
                f"Difference of the medians {fmt_s(difference)}"
                + (
                    f"; smaller than the spread of the persist row ({fmt_s(spread)})."
                    if spread > abs(difference)
                    else "."
                )
                + " Against the real DuckDNS, dns-01 also waits for its name servers "
                "to show each value (seconds to minutes); dns-persist-01 waits for "
                "nothing once the record is there."
            ),
        ]
    )
    return text, {
        "persist_renewal": medians["persist"],
        "dns01_renewal": medians["dns01"],
    }


if __name__ == "__main__":
    print(run(5, print)[0])
