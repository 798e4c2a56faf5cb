"""Snapshots of the binary sensors of an entry that manages a certificate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeassistant.const import Platform


async def test_entities(
    assert_platform_snapshot: Callable[[Platform], Awaitable[None]],
) -> None:
    """Every binary sensor's registry entry and state."""
    await assert_platform_snapshot(Platform.BINARY_SENSOR)
