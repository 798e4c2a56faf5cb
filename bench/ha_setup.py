"""Setup time of one config entry in Home Assistant's test harness.

Run by scripts/bench as ``pytest bench/ha_setup.py`` (outside tests/, so not in
the suite); writes the timings to $BENCH_OUT as JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import time

import pytest

from custom_components.secure_remote_access.const import DOMAIN  # noqa: F401
from tests.common import mock_duckdns, mock_entry

TIMES: list[float] = []


@pytest.mark.parametrize("attempt", range(5))
async def test_setup_time(
    hass: object, aioclient_mock: object, enable_custom_integrations: None, attempt: int
) -> None:
    """Set up one entry (DuckDNS answered by the harness's mock) and time it."""
    del attempt
    mock_duckdns(aioclient_mock)  # type: ignore[arg-type]
    entry = mock_entry()
    entry.add_to_hass(hass)  # type: ignore[arg-type]
    start = time.perf_counter()
    assert await hass.config_entries.async_setup(entry.entry_id)  # type: ignore[attr-defined]
    await hass.async_block_till_done()  # type: ignore[attr-defined]
    TIMES.append(time.perf_counter() - start)
    Path(os.environ.get("BENCH_OUT", "/dev/null")).write_text(json.dumps(TIMES))  # noqa: ASYNC240
