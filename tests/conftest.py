"""Shared fixtures for the Secure Remote Access tests."""

from __future__ import annotations

from collections.abc import Generator

import pytest

# Import the integration before any hass fixture runs, so that Home Assistant's
# loader finds this repository's custom_components package, not the plugin's.
from custom_components.secure_remote_access.const import DOMAIN  # noqa: F401


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    enable_custom_integrations: None,
) -> Generator[None]:
    """Let every test load custom integrations from this repository."""
    yield
