"""Sections 2 and 3: event-loop stalls, and refreshing 100 TLS endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
import contextlib
from dataclasses import dataclass, field
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
STALL_TARGET = 0.010


@contextlib.contextmanager
def tls_endpoints(count: int, delay_ms: float = 0) -> Iterator[tuple[list[int], Path]]:
    """``count`` TLS servers in a child process; yields their ports and the CA bundle."""
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        bundle = Path(tmp) / "ca.pem"
        with subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "tls_servers.py"),
                str(count),
                str(bundle),
                str(delay_ms),
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
    ports: list[int], bundle: Path, concurrency: int, own_loop: bool = False
) -> Callable[[], Awaitable[Any]]:
    """Our checker for every endpoint."""
    endpoints = [Endpoint(HOST, port, ca_bundle=str(bundle)) for port in ports]

    async def check() -> Any:
        results = await inspect_endpoints(
            endpoints, concurrency=concurrency, own_loop=own_loop
        )
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
    hass: Any = SimpleNamespace(loop=asyncio.get_running_loop())

    async def check() -> Any:
        return [
            await helper.get_cert_expiry_timestamp(hass, HOST, port) for port in ports
        ]

    return check


LATENCIES_MS = (0, 20, 50, 150)
LABELS = {
    "ours": "ours as the monitor runs it (`concurrency=10, own_loop=True`)",
    "ours_loop": "ours on the caller's loop (`concurrency=10`, before issue 21)",
    "ours_seq": "ours, one at a time (`concurrency=1`)",
    "core": "core `cert_expiry` helper, one at a time (one entry per host)",
}


@dataclass
class LatencyRow:
    """All rounds of every checker at one simulated round-trip time."""

    latency_ms: float
    times: dict[str, list[float]] = field(default_factory=dict)
    stalls: dict[str, list[float]] = field(default_factory=dict)
    over: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    idle: list[float] = field(default_factory=list)


async def _memory(check: Callable[[], Awaitable[Any]], count: int) -> float:
    """Bytes held per endpoint by one run's results (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = await check()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    added = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del kept
    return added / count


def memory_per_endpoint(count: int = 100) -> float:
    """Bytes held per endpoint by one check's results (when section 3 did not run)."""

    async def measure() -> float:
        with tls_endpoints(count) as (ports, bundle):
            check = ours(ports, bundle, 10)
            await check()
            return await _memory(check, count)

    return asyncio.run(measure())


async def _latency_row(
    latency_ms: float, count: int, rounds: int, warm_up: bool
) -> tuple[LatencyRow, float]:
    row = LatencyRow(latency_ms)
    memory = 0.0
    with tls_endpoints(count, latency_ms) as (ports, bundle):
        checks = {
            "ours": ours(ports, bundle, 10, own_loop=True),
            "ours_loop": ours(ports, bundle, 10),
            "core": core_sequential(ports, bundle),
        }
        if latency_ms == 0:
            checks["ours_seq"] = ours(ports, bundle, 1)
        if warm_up:  # contexts, imports, caches
            for check in checks.values():
                await check()
        for _ in range(rounds):
            async with LagProbe().running() as idle:
                await asyncio.sleep(1.0)
            row.idle.append(idle.worst)
            for name, check in checks.items():
                async with LagProbe().running() as probe:
                    start = time.perf_counter()
                    await check()
                    row.times.setdefault(name, []).append(time.perf_counter() - start)
                row.stalls.setdefault(name, []).append(probe.worst)
                row.over[name] = row.over.get(name, 0) + probe.over(0.010)
                row.samples[name] = row.samples.get(name, 0) + len(probe.lags)
        if warm_up:
            memory = await _memory(checks["ours_loop"], count)
    return row, memory


async def _monitoring(
    count: int, rounds: int, latencies: Sequence[float]
) -> tuple[list[LatencyRow], float]:
    rows = []
    memory = 0.0
    for index, latency in enumerate(latencies):
        row, used = await _latency_row(latency, count, rounds, warm_up=index == 0)
        rows.append(row)
        memory = memory or used
    return rows, memory


def _spread(values: Sequence[float]) -> float:
    return max(values) - min(values) if values else 0.0


def _time_cell(values: Sequence[float]) -> str:
    return f"{fmt_s(median(values))} ({fmt_s(min(values))}–{fmt_s(max(values))})"


def _times_table(rows: Sequence[LatencyRow]) -> tuple[str, list[str]]:
    notes = []
    lines = []
    for row in rows:
        core = row.times["core"]
        ours_t = row.times["ours"]
        ratio = median(ours_t) / median(core)
        difference = abs(median(core) - median(ours_t))
        if max(_spread(core), _spread(ours_t)) > difference:
            notes.append(
                f"at {row.latency_ms:.0f} ms the spread of the rounds is larger "
                "than the difference between ours and core"
            )
        lines.append(
            [
                f"{row.latency_ms:.0f} ms",
                _time_cell(core),
                _time_cell(ours_t),
                f"**{ratio:.2f}x**",
                _time_cell(row.times["ours_loop"]),
                _time_cell(row.times["ours_seq"]) if "ours_seq" in row.times else "–",
            ]
        )
    headers = [
        "handshake delay",
        "core, sequential",
        "ours (monitor: own loop)",
        "ours / core",
        "ours on the caller's loop",
        "ours, `concurrency=1`",
    ]
    return table(headers, lines), notes


def _stall_cell(row: LatencyRow, name: str) -> str:
    values = row.stalls[name]
    return (
        f"{fmt_s(median(values))} (worst {fmt_s(max(values))}; "
        f"{row.over[name]}/{row.samples[name]} > 10 ms)"
    )


def _stalls_table(rows: Sequence[LatencyRow]) -> tuple[str, list[str]]:
    notes = []
    lines = []
    for row in rows:
        values = row.stalls["ours"]
        if min(values) <= STALL_TARGET < max(values):
            notes.append(
                f"at {row.latency_ms:.0f} ms the rounds of the monitor's stall lie "
                "on both sides of 10 ms: the spread is larger than the margin"
            )
        lines.append(
            [
                f"{row.latency_ms:.0f} ms",
                _stall_cell(row, "ours"),
                "yes" if median(values) <= STALL_TARGET else "**no**",
                _stall_cell(row, "ours_loop"),
                _stall_cell(row, "core"),
                f"{fmt_s(median(row.idle))} (worst {fmt_s(max(row.idle))})",
            ]
        )
    headers = [
        "handshake delay",
        "ours (monitor: own loop)",
        "≤ 10 ms",
        "ours on the caller's loop",
        "core, sequential",
        "idle loop, 1 s before each round",
    ]
    return table(headers, lines), notes


def monitoring(
    count: int = 100, rounds: int = 3, latencies: Sequence[float] = LATENCIES_MS
) -> tuple[str, dict[str, float]]:
    """Section 3: time and loop stall of checking ``count`` endpoints per latency."""
    rows, memory = asyncio.run(_monitoring(count, rounds, latencies))
    times, time_notes = _times_table(rows)
    stalls, stall_notes = _stalls_table(rows)
    text = (
        f"Time to check {count} endpoints (median of {rounds} rounds, min–max):\n\n"
        + times
        + f"\n\nLongest event-loop stall while checking {count} endpoints (median "
        f"of the {rounds} rounds' longest, the worst round, and the wake-ups later "
        "than 10 ms of all of them):\n\n"
        + stalls
        + f"\n\n{count} TLS servers on 127.0.0.1 in one child process, "
        "certificates from a private CA both checkers trust. Each server waits "
        "the handshake delay after accepting a connection before it reads the "
        "ClientHello: the client sees every handshake take one simulated round "
        "trip longer (a real network also delays the TCP connect, about one more "
        "round trip). Rounds interleave the checkers; one warm-up run each "
        "before the first row. Ours verifies the chain and the name and, when "
        "verification fails, fetches the chain again without it; core's helper "
        "does one verifying handshake on the loop and reads `notAfter`."
    )
    if notes := time_notes + stall_notes:
        text += "\n\nSpread: " + "; ".join(notes) + "."
    by_latency = {row.latency_ms: row for row in rows}
    headline: dict[str, float] = {"bytes_per_endpoint": memory}
    if 50 in by_latency:
        row = by_latency[50]
        headline["monitor_ratio_50"] = median(row.times["ours"]) / median(
            row.times["core"]
        )
    headline["stall_monitor"] = max(median(row.stalls["ours"]) for row in rows)
    headline["stall_monitor_loop"] = max(
        median(row.stalls["ours_loop"]) for row in rows
    )
    headline["stall_monitor_idle"] = max(median(row.idle) for row in rows)
    return text, headline
