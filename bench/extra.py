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


def _hass_cell(rounds: list[dict[str, Any]] | None) -> str:
    """Median of the rounds' longest stall, the worst, wake-ups over 10 ms."""
    if not rounds:
        return "not measured"
    worst = [r["worst"] for r in rounds]
    over = sum(r["over_10ms"] for r in rounds)
    samples = sum(r["samples"] for r in rounds)
    return (
        f"{fmt_s(median(worst))} (worst {fmt_s(max(worst))}; {over}/{samples} > 10 ms)"
    )


def _verdict(value: float | None) -> str:
    if value is None:
        return ""
    return "yes" if value <= STALL_TARGET else "**no**"


def loop_health(
    idle: float,
    renewal: dict[str, Any],
    monitor_stall: float | None,
    hass: dict[str, list[dict[str, Any]]],
) -> tuple[str, dict[str, float]]:
    """Section 2's table: the bare asyncio loop beside a real ``hass`` process."""

    def hass_median(key: str) -> float | None:
        rounds = hass.get(key)
        return median([r["worst"] for r in rounds]) if rounds else None

    bare_monitor = fmt_s(monitor_stall) if monitor_stall is not None else "not run"
    rows = [
        [
            "idle, nothing running (noise floor)",
            fmt_s(idle),
            _hass_cell(hass.get("idle")),
            "",
        ],
        [
            (
                f"forced renewal, RSA 4096 key ({renewal['rounds']} runs; bare loop: "
                f"{renewal['over_10ms']} of {renewal['samples']} wake-ups over 10 ms)"
            ),
            fmt_s(renewal["worst"]),
            _hass_cell(hass.get("renewal")),
            _verdict(max(renewal["worst"], hass_median("renewal") or 0)),
        ],
    ]
    for latency in (0, 50):
        key = f"endpoints_{latency}"
        rows.append(
            [
                (
                    f"refreshing 100 TLS endpoints, handshake delay {latency} ms "
                    "(`EndpointMonitor`, own loop)"
                ),
                bare_monitor + " (monitoring section, worst row)"
                if latency == 0
                else "",
                _hass_cell(hass.get(key)),
                _verdict(hass_median(key)),
            ]
        )
        rows.append(
            [
                (
                    f"the same checks on the caller's loop, delay {latency} ms "
                    "(before issue 21)"
                ),
                "",
                _hass_cell(hass.get(f"endpoints_on_loop_{latency}")),
                _verdict(hass_median(f"endpoints_on_loop_{latency}")),
            ]
        )
    text = table(
        ["while", "bare asyncio loop", "inside Home Assistant (`hass`)", "≤ 10 ms"],
        rows,
    )
    text += (
        "\n\nThe probe is a task that sleeps 1 ms in a loop and records how late "
        "each wake-up is. Bare loop: one asyncio loop running our protocol code "
        "(`AcmeClient` with the key generated in the executor, the whole issuance "
        "worst over the runs). Inside Home Assistant: the sandbox's `hass` "
        "(tests/fakes/sandbox.py: Pebble, challtestsrv, the DuckDNS stand-in) with "
        "the integration set up through the config flow over REST (RSA 4096 key) "
        "and a bench-only component (bench/sra_bench_probe, copied into the temporary "
        "configuration directory) whose action runs the probe on Home Assistant's "
        "loop during one workload: the `renew_certificate` action with "
        "`force: true`, or one refresh of an `EndpointMonitor` of the entry for "
        "100 endpoints (the options allow 50 per entry, so the component builds "
        "the monitor itself), median of 3 rounds after a warm-up. The component "
        "also samples the loop thread's stack while the probe is late, which is "
        "how the renewal's stalls were traced to the private-key check. Stalls "
        "at the idle row's level come from the machine (other processes on 2 "
        "cores), not from the code under test."
    )
    numbers = {"stall_renewal": renewal["worst"], "stall_idle": idle}
    for key in ("renewal", "endpoints_0", "endpoints_50", "idle"):
        if (value := hass_median(key)) is not None:
            numbers[f"hass_{key}"] = value
    return text, numbers


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
        times: list[float] = json.loads(Path(out.name).read_text())
        return times


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
