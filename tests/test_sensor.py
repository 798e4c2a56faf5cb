"""Snapshots of the sensors of an entry that manages a certificate; its device."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeassistant.const import Platform
import pytest

from custom_components.secure_remote_access.entity import entry_model


async def test_entities(
    assert_platform_snapshot: Callable[[Platform], Awaitable[None]],
) -> None:
    """Every sensor's registry entry and state."""
    await assert_platform_snapshot(Platform.SENSOR)


@pytest.mark.parametrize(
    ("directory", "model"),
    [
        (None, "DuckDNS"),
        ("letsencrypt", "DuckDNS and Let's Encrypt"),
        ("letsencrypt_staging", "DuckDNS and Let's Encrypt (staging)"),
        (
            "https://127.0.0.1:14000/dir",
            "DuckDNS and the ACME CA at 127.0.0.1:14000",
        ),
        (
            "https://ca.home.arpa/acme/acme/directory",
            "DuckDNS and the ACME CA at ca.home.arpa",
        ),
    ],
)
def test_device_model_names_the_ca(directory: str | None, model: str) -> None:
    """The device card reads "<model> by Secure Remote Access": another CA is
    named as one, by its address (not "DuckDNS and 127.0.0.1")."""
    options = {} if directory is None else {"acme_directory": directory}
    assert entry_model(options) == model
