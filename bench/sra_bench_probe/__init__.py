"""Bench-only: measure event-loop stalls inside a real Home Assistant.

Copied by ``scripts/bench`` into its temporary configuration directory, never
shipped. The action ``sra_bench_probe.measure`` runs one workload while a task
on Home Assistant's loop sleeps 1 ms again and again, and answers with the
longest wake-up delay seen. Workloads: ``idle`` (nothing, ``seconds`` long),
``renewal`` (the integration's ``renew_certificate`` action with
``force: true``), ``endpoints`` (an `EndpointMonitor` of the entry for the
given endpoints, refreshed once) and ``endpoints_on_loop`` (the same checks
with ``inspect_endpoints`` on this loop, as before issue 21).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from pathlib import Path
import sys
import threading
import time
import traceback
from typing import Any

from homeassistant.core import HomeAssistant, ServiceCall, SupportsResponse
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

DOMAIN = "sra_bench_probe"
INTEGRATION = "secure_remote_access"
# Set up by an empty ``sra_bench_probe:`` line in configuration.yaml.
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)


class LagProbe:
    """Sleeps 1 ms again and again and records how late each wake-up is.

    A watchdog thread samples the loop thread's stack whenever the probe is
    more than 10 ms late, so that a stall can be attributed to its code.
    """

    def __init__(self) -> None:
        """Start with no samples."""
        self.lags: list[float] = []
        self.stacks: collections.Counter[str] = collections.Counter()
        self._tick = time.perf_counter()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()

    async def run(self) -> None:
        """Probe until cancelled."""
        watchdog = threading.Thread(target=self._watch, name="sra-bench-watchdog")
        watchdog.start()
        try:
            while True:
                start = self._tick = time.perf_counter()
                await asyncio.sleep(0.001)
                self.lags.append(time.perf_counter() - start - 0.001)
        finally:
            self._stop.set()
            await asyncio.get_running_loop().run_in_executor(None, watchdog.join)

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            if time.perf_counter() - self._tick > 0.011:
                frame = sys._current_frames().get(self._loop_thread)  # noqa: SLF001
                if frame is not None:
                    summary = traceback.extract_stack(frame)[-6:]
                    self.stacks[
                        " <- ".join(
                            f"{Path(f.filename).name}:{f.lineno} {f.name}"
                            for f in reversed(summary)
                        )
                    ] += 1


async def _workload(hass: HomeAssistant, call: ServiceCall) -> dict[str, Any]:
    what = call.data["what"]
    if what == "idle":
        await asyncio.sleep(float(call.data.get("seconds", 3)))
        return {}
    entry = hass.config_entries.async_get_entry(call.data["config_entry_id"])
    assert entry is not None
    if what == "renewal":
        answer = await hass.services.async_call(
            INTEGRATION,
            "renew_certificate",
            {"config_entry_id": entry.entry_id, "force": True},
            blocking=True,
            return_response=True,
        )
        assert answer is not None and answer.get("renewed"), answer
        return {"serial": answer.get("serial")}
    from custom_components.secure_remote_access.coordinator import EndpointMonitor
    from custom_components.secure_remote_access.protocol.endpoint_list import (
        EndpointOption,
    )
    from custom_components.secure_remote_access.protocol.tls import (
        Endpoint,
        inspect_endpoints,
    )

    options = [
        EndpointOption(item["host"], int(item["port"]), item.get("ca_bundle"))
        for item in call.data["endpoints"]
    ]
    if what == "endpoints_on_loop":
        results = await inspect_endpoints(
            [Endpoint(o.host, o.port, ca_bundle=o.ca_bundle) for o in options]
        )
        failed = sum(1 for result in results if isinstance(result, Exception))
        return {"failed": failed}
    monitor = EndpointMonitor(hass, entry, options)
    try:
        await monitor.async_refresh()
        data = monitor.data or {}
        failed = sum(1 for obs in data.values() if obs.info is None)
        return {"failed": failed, "checked": len(data)}
    finally:
        await monitor.async_shutdown()


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the measuring action."""
    del config

    async def measure(call: ServiceCall) -> dict[str, Any]:
        probe = LagProbe()
        task = hass.async_create_background_task(probe.run(), "sra bench probe")
        await asyncio.sleep(0)
        start = time.perf_counter()
        try:
            extra = await _workload(hass, call)
        finally:
            elapsed = time.perf_counter() - start
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return {
            **extra,
            "elapsed": elapsed,
            "worst": max(probe.lags, default=0.0),
            "samples": len(probe.lags),
            "over_10ms": sum(1 for lag in probe.lags if lag > 0.010),
            # Where the loop thread was while the probe was late (2 ms samples).
            "stall_stacks": probe.stacks.most_common(5),
        }

    hass.services.async_register(
        DOMAIN, "measure", measure, supports_response=SupportsResponse.ONLY
    )
    return True
