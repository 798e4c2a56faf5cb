"""Fixtures for the acceptance tests: a real ``hass`` process and the sandbox.

These tests never use the in-process ``hass`` fixture, so the autouse fixture
of ``tests/conftest.py`` that needs it is replaced here.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import pytest_socket

from tests.fakes.pebble import _free_port
from tests.fakes.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> Generator[None]:
    """No in-process Home Assistant here: the tests talk to a real one."""
    yield


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Pebble, challtestsrv, DuckDNS and a booted ``hass`` on free ports."""
    # Module-scoped: pytest-socket's guard is on while fixtures are set up,
    # and the services' listening sockets outlive a single test.
    pytest_socket.enable_socket()
    config_dir = tmp_path_factory.mktemp("hass") / "config"
    with Sandbox(config_dir, hass_port=_free_port()) as box:
        box.start_hass()
        yield box
        code = box.stop_hass()
        assert code in (0, None), box.log_tail()  # None: a test stopped it
