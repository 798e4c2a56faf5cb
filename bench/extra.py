"""Sections 2, 4 and 5: event-loop health, footprint, DuckDNS traffic."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
from typing import Any

from .common import ROOT, fmt_s, median, table
from .endpoints import LagProbe

STALL_TARGET = 0.010


async def _idle(seconds: float) -> LagProbe:
    async with LagProbe().running() as probe:
        await asyncio.sleep(seconds)
    return probe


def baseline(seconds: float = 5.0) -> float:
    """The longest stall of an idle event loop: this machine's noise floor."""
    return asyncio.run(_idle(seconds)).worst


def loop_health(
    idle: float, renewal: dict[str, Any], monitor_stall: float
) -> tuple[str, dict[str, float]]:
    """Section 2's table."""

    def verdict(value: float) -> str:
        return "yes" if value <= STALL_TARGET else "**no**"

    rows = [
        ["idle loop, nothing running (noise floor)", fmt_s(idle), verdict(idle)],
        [
            (
                f"RSA 4096 issuance against Pebble ({renewal['rounds']} runs; "
                f"{renewal['over_10ms']} of {renewal['samples']} wake-ups over 10 ms)"
            ),
            fmt_s(renewal["worst"]),
            verdict(renewal["worst"]),
        ],
        [
            "checking 100 TLS endpoints (`inspect_endpoints`, concurrency 10)",
            fmt_s(monitor_stall),
            verdict(monitor_stall),
        ],
    ]
    text = table(["while", "longest stall", "≤ 10 ms"], rows)
    text += (
        "\n\nThe probe is a task that sleeps 1 ms in a loop and records how late "
        "each wake-up is. Measured in one asyncio loop running our protocol code "
        "(the code the integration runs inside Home Assistant's loop: `AcmeClient` "
        "with the key generated in the executor, `inspect_endpoints`), not in a "
        "full Home Assistant process. The idle row is the same probe with nothing "
        "else to do: stalls at that level come from the machine (other processes "
        "on 2 cores), not from the code under test."
    )
    return text, {"stall_renewal": renewal["worst"], "stall_idle": idle}


def setup_times() -> list[float]:
    """Setup time of one config entry, 5 times, in HA's pytest harness."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:randomly",
                str(ROOT / "bench" / "ha_setup.py"),
            ],
            env={**os.environ, "BENCH_OUT": out.name},
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=300,
        )
        return json.loads(Path(out.name).read_text())


def footprint(bytes_per_endpoint: float) -> tuple[str, dict[str, float]]:
    """Section 4's table."""
    times = setup_times()
    rows = [
        [
            "setup of one config entry (DuckDNS only, answered by the harness's mock)",
            f"median {fmt_s(median(times))} (first, with imports: {fmt_s(times[0])})",
        ],
        [
            "memory held per monitored endpoint (result of one check, tracemalloc)",
            f"{bytes_per_endpoint / 1024:.1f} KiB",
        ],
    ]
    text = table(["what", "measured"], rows)
    text += (
        "\n\nSetup time: `hass.config_entries.async_setup` + `async_block_till_done` "
        f"in Home Assistant's test harness (pytest-homeassistant-custom-component), "
        f"{len(times)} fresh instances. Memory: tracemalloc difference before and "
        "after keeping the results of one `inspect_endpoints` run over 100 endpoints, "
        "divided by 100 (Python allocations only)."
    )
    return text, {"setup": median(times)}


def duckdns() -> tuple[str, dict[str, float]]:
    """Section 5: computed from the intervals (no traffic to DuckDNS is sent)."""
    from custom_components.secure_remote_access.const import DEFAULT_UPDATE_INTERVAL

    per_day = 24 * 60 // DEFAULT_UPDATE_INTERVAL
    rows = [
        [
            f"ours (update every {DEFAULT_UPDATE_INTERVAL} min)",
            str(per_day),
            str(2 * per_day),
        ],
        ["DuckDNS add-on (`seconds: 300`, sleep after each round)", "≤ 288", "≤ 576"],
    ]
    text = table(["updater", "requests/day, IPv4", "requests/day, IPv4 + IPv6"], rows)
    text += (
        "\n\nSame traffic as the add-on, not less: both send one IPv4 update per "
        "interval and, with IPv6, a second request (DuckDNS stops detecting IPv4 "
        "when `ipv6=` is sent). The add-on's figures come from home-assistant/addons "
        "`duckdns/config.yaml` (`seconds: 300`) and "
        "`duckdns/rootfs/etc/s6-overlay/s6-rc.d/duckdns/run` (two `curl` calls, "
        "then `sleep ${WAIT_TIME}`); it sleeps after the requests, so a little under "
        "288. Ours backs off after failures (fewer requests then). Computed from the "
        "intervals, not measured on the wire."
    )
    return text, {}
