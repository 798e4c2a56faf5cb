"""Sections 2 and 3: event-loop stalls, and refreshing 100 TLS endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
import gc
import json
from pathlib import Path
import ssl
import subprocess
import sys
import tempfile
import time
import tracemalloc
from types import SimpleNamespace
from typing import Any

from custom_components.secure_remote_access.protocol.tls import (
    Endpoint,
    inspect_endpoints,
)

from .common import ROOT, fmt_s, median, table

HOST = "127.0.0.1"


@contextlib.contextmanager
def tls_endpoints(count: int) -> Iterator[tuple[list[int], Path]]:
    """``count`` TLS servers in a child process; yields their ports and the CA bundle."""
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        bundle = Path(tmp) / "ca.pem"
        with subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "tls_servers.py"),
                str(count),
                str(bundle),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            ports = json.loads(proc.stdout.readline())
            try:
                yield ports, bundle
            finally:
                proc.stdin.close()
                proc.wait(timeout=10)


class LagProbe:
    """Sleeps 1 ms again and again and records how late each wake-up is."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - start - self.interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LagProbe]:
        """Probe while the block runs."""
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def worst(self) -> float:
        """The longest stall seen."""
        return max(self.lags, default=0.0)

    def over(self, limit: float) -> int:
        """How many wake-ups were later than ``limit``."""
        return sum(1 for lag in self.lags if lag > limit)


def ours(
    ports: list[int], bundle: Path, concurrency: int
) -> Callable[[], Awaitable[Any]]:
    """Our checker for every endpoint."""
    endpoints = [Endpoint(HOST, port, ca_bundle=str(bundle)) for port in ports]

    async def check() -> Any:
        results = await inspect_endpoints(endpoints, concurrency=concurrency)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise RuntimeError(f"{len(failed)} checks failed: {failed[0]!r}")
        return results

    return check


def core_sequential(ports: list[int], bundle: Path) -> Callable[[], Awaitable[Any]]:
    """Core cert_expiry's check (its own helper), one endpoint after the other.

    Core makes one config entry per host and each entry's coordinator runs this
    helper for its host; its TLS context is patched to trust the local CA.
    """
    from homeassistant.components.cert_expiry import helper

    context = ssl.create_default_context(cafile=str(bundle))
    helper.get_default_context = lambda: context  # type: ignore[attr-defined]
    hass = SimpleNamespace(loop=asyncio.get_running_loop())

    async def check() -> Any:
        return [
            await helper.get_cert_expiry_timestamp(hass, HOST, port) for port in ports
        ]  # type: ignore[arg-type]

    return check


async def _monitoring(count: int, rounds: int) -> dict[str, Any]:
    with tls_endpoints(count) as (ports, bundle):
        checks = {
            "ours": ours(ports, bundle, 10),
            "ours_seq": ours(ports, bundle, 1),
            "core": core_sequential(ports, bundle),
        }
        for check in checks.values():  # warm-up: contexts, imports, caches
            await check()
        times: dict[str, list[float]] = {name: [] for name in checks}
        stalls: dict[str, float] = dict.fromkeys(checks, 0.0)
        for _ in range(rounds):
            for name, check in checks.items():
                async with LagProbe().running() as probe:
                    start = time.perf_counter()
                    await check()
                    times[name].append(time.perf_counter() - start)
                stalls[name] = max(stalls[name], probe.worst)
        # Memory held per endpoint result (what a monitor keeps between refreshes).
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        kept = await checks["ours"]()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        added = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        del kept
    return {"times": times, "stalls": stalls, "bytes_per_endpoint": added / count}


def monitoring(count: int = 100, rounds: int = 3) -> tuple[str, dict[str, float]]:
    """Section 3, plus the stall of the 100-endpoint check for section 2."""
    data = asyncio.run(_monitoring(count, rounds))
    times = data["times"]
    core_median = median(times["core"])
    rows = []
    labels = {
        "ours": "ours: `inspect_endpoints(concurrency=10)`",
        "ours_seq": "ours, one at a time (`concurrency=1`)",
        "core": "core `cert_expiry` helper, one at a time (one entry per host)",
    }
    for name, label in labels.items():
        med = median(times[name])
        rows.append(
            [
                label,
                fmt_s(med),
                fmt_s(min(times[name])),
                fmt_s(max(times[name])),
                f"{core_median / med:.1f}x" if med else "",
                fmt_s(data["stalls"][name]),
            ]
        )
    text = table(
        ["checker", "median", "min", "max", "speed-up vs core", "longest loop stall"],
        rows,
    )
    text += (
        f"\n\n{count} TLS servers on 127.0.0.1 (one child process, certificates "
        f"from a private CA both checkers trust); {rounds} rounds after one warm-up, "
        "interleaved. Ours verifies the chain and the name and, when verification "
        "fails, fetches the chain again without it; core's helper does one "
        "verifying handshake and reads `notAfter`."
    )
    return text, {
        "monitor_ours": median(times["ours"]),
        "monitor_core": core_median,
        "stall_monitor": data["stalls"]["ours"],
        "bytes_per_endpoint": data["bytes_per_endpoint"],
    }
